//! Events: where they go (`Target`), what they are called (`EventId`) and what type they
//! carry (`EventType`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names::{Topic, UserId};
use super::receipt::Fallback;
use super::{Invalid, ValidationError};

/// The stream an event is stored in: one user's, one topic's, or the tenant's broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    User(UserId),
    Topic(Topic),
    Broadcast,
}

impl Target {
    /// The `target_kind` column value.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::User(_) => "user",
            Target::Topic(_) => "topic",
            Target::Broadcast => "broadcast",
        }
    }

    /// The `target` column value (empty for broadcasts).
    pub fn name(&self) -> &str {
        match self {
            Target::User(user) => user.as_str(),
            Target::Topic(topic) => topic.as_str(),
            Target::Broadcast => "",
        }
    }

    /// Rebuilds a target from its two stored columns; `None` for anything Herald would
    /// not have stored.
    pub fn from_columns(kind: &str, name: &str) -> Option<Target> {
        match kind {
            "user" => UserId::parse(name).ok().map(Target::User),
            "topic" => Topic::parse(name).ok().map(Target::Topic),
            "broadcast" => Some(Target::Broadcast),
            _ => None,
        }
    }

    /// The API's `to` object for this single stream.
    pub fn to_json(&self) -> Value {
        match self {
            Target::User(user) => serde_json::json!({ "user": user }),
            Target::Topic(topic) => serde_json::json!({ "topic": topic }),
            Target::Broadcast => serde_json::json!({ "broadcast": true }),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// The most digits of an id's seq: any count of them is an `i64`, and a log reaches
/// 10^18 events never.
const MAX_SEQ_DIGITS: usize = 18;

/// An event id as its schema says.
pub const EVENT_ID_PATTERN: &str = "^[A-Za-z0-9]{1,32}-[0-9]{1,18}$";

super::pattern_schema!(
    /// An event id in the OpenAPI document.
    EventIdText,
    EVENT_ID_PATTERN,
    "01jd5x2k7q3m9v8n4b6c1a0z2y-42"
);

/// An event's position: the tenant log's epoch and its sequence number, written
/// `<epoch>-<seq>`. Callers treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    pub epoch: String,
    pub seq: i64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

impl FromStr for EventId {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (epoch, seq) = text.rsplit_once('-').ok_or(())?;
        let valid_epoch = !epoch.is_empty()
            && epoch.len() <= 32
            && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
        let valid_seq = !seq.is_empty()
            && seq.len() <= MAX_SEQ_DIGITS
            && seq.bytes().all(|b| b.is_ascii_digit());
        if !valid_epoch || !valid_seq {
            return Err(());
        }
        // Seq 0 is a valid position: before the first event.
        let seq = seq.parse::<i64>().map_err(|_| ())?;
        Ok(EventId {
            epoch: epoch.to_owned(),
            seq,
        })
    }
}

/// A validated event for one stream, ready to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub target: Target,
    pub event_type: EventType,
    /// The published `data` value as compact JSON.
    pub data: String,
    /// Also an item of the recipient's inbox.
    pub inbox: bool,
    /// Send `notification.unseen` unless its fact happens in time.
    pub fallback: Option<Fallback>,
    /// Which event of the publish request this stream's copy is of: the copies of one
    /// `users` event share it (and their fallback).
    pub item: usize,
}

/// What the publish API answers for each stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PublishedEvent {
    pub id: String,
    /// The one stream this event went to: `{"user"}`, `{"topic"}` or `{"broadcast": true}`
    /// (the document refers to the publish body's `To` here).
    #[schema(value_type = Object)]
    pub to: Value,
    #[serde(rename = "type")]
    pub event_type: String,
}

/// An event's type, which becomes the SSE `event:` field: `[A-Za-z0-9_.:-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(
    value_type = String,
    pattern = "^(?!(reset|session-expired|inbox)$)[A-Za-z0-9_.:-]{1,64}$",
    example = "mail"
)]
pub struct EventType(String);

/// Event types Herald sends on a stream itself; tenants may not publish them.
pub const RESET: &str = "reset";
pub const SESSION_EXPIRED: &str = "session-expired";
pub const INBOX: &str = "inbox";
const HERALD_TYPES: [&str; 3] = [RESET, SESSION_EXPIRED, INBOX];

impl EventType {
    pub fn parse(name: impl Into<String>) -> Result<EventType, ValidationError> {
        let name = name.into();
        if HERALD_TYPES.contains(&name.as_str()) {
            return Err(ValidationError::new(
                Invalid::EventType,
                format!("`{name}` is an event type Herald sends itself"),
            ));
        }
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if valid {
            Ok(EventType(name))
        } else {
            Err(ValidationError::new(
                Invalid::EventType,
                "`type` must match [A-Za-z0-9_.:-]{1,64}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Default for EventType {
    fn default() -> Self {
        EventType(DEFAULT_EVENT_TYPE.to_owned())
    }
}

impl TryFrom<String> for EventType {
    type Error = ValidationError;

    fn try_from(name: String) -> Result<Self, ValidationError> {
        EventType::parse(name)
    }
}

impl From<EventType> for String {
    fn from(name: EventType) -> String {
        name.0
    }
}

/// The type of an event published without one.
pub const DEFAULT_EVENT_TYPE: &str = "message";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_reject_garbage() {
        let id: EventId = "ab12cd-42".parse().unwrap();
        assert_eq!(
            id,
            EventId {
                epoch: "ab12cd".into(),
                seq: 42
            }
        );
        assert_eq!(id.to_string(), "ab12cd-42");
        assert_eq!(
            "ab-0".parse::<EventId>().unwrap().seq,
            0,
            "before the first event"
        );
        for bad in [
            "",
            "42",
            "-42",
            "ab-",
            "ab--1",
            "a b-1",
            "ab-1x",
            "ab-99999999999999999999",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn event_types_cannot_break_the_wire_format() {
        assert!(EventType::parse("stock.tick:v2_a-b").is_ok());
        for reserved in HERALD_TYPES {
            assert!(EventType::parse(reserved).is_err(), "{reserved}");
        }
        for bad in ["", "a b", "mail\ndata: x", &"t".repeat(65)] {
            assert!(EventType::parse(bad).is_err(), "{bad:?}");
        }
    }
}
