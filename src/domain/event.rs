//! Events: where they go (`Target`), what they are called (`EventId`), and the rules a
//! published event must meet before it is stored.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Invalid, ValidationError};
use crate::config::LimitSettings;

/// The stream an event is stored in: one user's, one topic's, or the tenant's broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    User(String),
    Topic(String),
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
            Target::User(name) | Target::Topic(name) => name,
            Target::Broadcast => "",
        }
    }

    /// Rebuilds a target from its two stored columns.
    pub fn from_columns(kind: &str, name: &str) -> Option<Target> {
        match kind {
            "user" => Some(Target::User(name.to_owned())),
            "topic" => Some(Target::Topic(name.to_owned())),
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
        let valid_seq =
            !seq.is_empty() && seq.len() <= 19 && seq.bytes().all(|b| b.is_ascii_digit());
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
    pub event_type: String,
    /// The published `data` value as compact JSON.
    pub data: String,
}

/// What the publish API answers for each stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub id: String,
    /// The one stream this event went to: `{"user"}`, `{"topic"}` or `{"broadcast": true}`.
    #[schema(value_type = Object)]
    pub to: Value,
    #[serde(rename = "type")]
    pub event_type: String,
}

pub const DEFAULT_EVENT_TYPE: &str = "message";

/// Parses a `POST /v1/events` body — one event, or `{"events": [...]}` — into one
/// `NewEvent` per recipient stream, in order. The first broken rule rejects the whole body.
pub fn parse_publish(
    body: &Value,
    limits: &LimitSettings,
) -> Result<Vec<NewEvent>, ValidationError> {
    let Value::Object(object) = body else {
        return Err(ValidationError::new(
            Invalid::Body,
            "the body must be a JSON object: one event, or {\"events\": [...]}",
        ));
    };
    let single;
    let items: &[Value] = match object.get("events") {
        Some(Value::Array(items)) => {
            if object.len() != 1 {
                return Err(ValidationError::new(
                    Invalid::Body,
                    "a batch body has only the field `events`",
                ));
            }
            items
        }
        Some(_) => {
            return Err(ValidationError::new(
                Invalid::Body,
                "`events` must be an array",
            ));
        }
        None => {
            single = [body.clone()];
            &single
        }
    };
    if items.is_empty() {
        return Err(ValidationError::new(
            Invalid::EmptyBatch,
            "`events` is empty",
        ));
    }
    if items.len() > limits.max_batch_events {
        return Err(ValidationError::new(
            Invalid::TooManyEvents,
            format!(
                "a batch holds at most {} events, this one has {}",
                limits.max_batch_events,
                items.len()
            ),
        ));
    }
    let batch = object.contains_key("events");
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let located = |e: ValidationError| if batch { e.at(index) } else { e };
        parse_event(item, limits, &mut events).map_err(located)?;
        if events.len() > limits.max_recipients_per_request {
            return Err(located(ValidationError::new(
                Invalid::TooManyRecipients,
                format!(
                    "one request may reach at most {} recipient streams",
                    limits.max_recipients_per_request
                ),
            )));
        }
    }
    Ok(events)
}

fn parse_event(
    item: &Value,
    limits: &LimitSettings,
    out: &mut Vec<NewEvent>,
) -> Result<(), ValidationError> {
    let Value::Object(fields) = item else {
        return Err(ValidationError::new(
            Invalid::Body,
            "an event must be a JSON object",
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "to" | "type" | "data"))
    {
        return Err(ValidationError::new(
            Invalid::Body,
            format!("unknown field `{unknown}`; an event has `to`, `type` and `data`"),
        ));
    }
    let targets = parse_to(fields.get("to"), limits)?;
    let event_type = match fields.get("type") {
        None | Some(Value::Null) => DEFAULT_EVENT_TYPE.to_owned(),
        Some(Value::String(name)) => {
            validate_event_type(name)?;
            name.clone()
        }
        Some(_) => {
            return Err(ValidationError::new(
                Invalid::EventType,
                "`type` must be a string",
            ));
        }
    };
    let data = fields.get("data").unwrap_or(&Value::Null).to_string();
    if data.len() > limits.max_event_data_bytes {
        return Err(ValidationError::new(
            Invalid::DataTooLarge,
            format!(
                "`data` is {} bytes as JSON; the limit is {}",
                data.len(),
                limits.max_event_data_bytes
            ),
        ));
    }
    out.extend(targets.into_iter().map(|target| NewEvent {
        target,
        event_type: event_type.clone(),
        data: data.clone(),
    }));
    Ok(())
}

fn parse_to(to: Option<&Value>, limits: &LimitSettings) -> Result<Vec<Target>, ValidationError> {
    const SHAPE: &str = "`to` must be one of {\"user\": id}, {\"users\": [ids]}, \
                         {\"topic\": name}, {\"broadcast\": true}";
    let Some(Value::Object(to)) = to else {
        return Err(ValidationError::new(Invalid::Target, SHAPE));
    };
    let only = |to: &Map<String, Value>| -> Result<(String, Value), ValidationError> {
        match to.iter().next() {
            Some((key, value)) if to.len() == 1 => Ok((key.clone(), value.clone())),
            _ => Err(ValidationError::new(Invalid::Target, SHAPE)),
        }
    };
    let (key, value) = only(to)?;
    match (key.as_str(), value) {
        ("user", Value::String(user)) => {
            validate_name(&user, Invalid::User, "user id")?;
            Ok(vec![Target::User(user)])
        }
        ("users", Value::Array(users)) => {
            if users.is_empty() {
                return Err(ValidationError::new(Invalid::Target, "`to.users` is empty"));
            }
            if users.len() > limits.max_users_per_event {
                return Err(ValidationError::new(
                    Invalid::TooManyRecipients,
                    format!(
                        "`to.users` holds at most {} ids",
                        limits.max_users_per_event
                    ),
                ));
            }
            users
                .into_iter()
                .map(|user| match user {
                    Value::String(user) => {
                        validate_name(&user, Invalid::User, "user id")?;
                        Ok(Target::User(user))
                    }
                    _ => Err(ValidationError::new(
                        Invalid::User,
                        "a user id must be a string",
                    )),
                })
                .collect()
        }
        ("topic", Value::String(topic)) => {
            validate_name(&topic, Invalid::Topic, "topic")?;
            Ok(vec![Target::Topic(topic)])
        }
        ("broadcast", Value::Bool(true)) => Ok(vec![Target::Broadcast]),
        _ => Err(ValidationError::new(Invalid::Target, SHAPE)),
    }
}

/// User ids and topic names: 1–256 characters, no control characters (so they can never
/// break a line of the wire format or a log line).
pub fn validate_name(name: &str, kind: Invalid, what: &str) -> Result<(), ValidationError> {
    let length = name.chars().count();
    if length == 0 || length > 256 {
        return Err(ValidationError::new(
            kind,
            format!("a {what} is 1 to 256 characters, this one has {length}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            kind,
            format!("a {what} may not contain control characters"),
        ));
    }
    Ok(())
}

/// Event types become the SSE `event:` field: `[A-Za-z0-9_.:-]{1,64}`.
pub fn validate_event_type(name: &str) -> Result<(), ValidationError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            Invalid::EventType,
            "`type` must match [A-Za-z0-9_.:-]{1,64}",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitSettings {
        LimitSettings {
            max_event_data_bytes: 64,
            max_batch_events: 3,
            max_recipients_per_request: 5,
            max_users_per_event: 4,
        }
    }

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
    fn users_fan_out_in_order() {
        let body = serde_json::json!({"to": {"users": ["a", "b"]}, "type": "mail", "data": "hi"});
        let events = parse_publish(&body, &limits()).unwrap();
        assert_eq!(
            events.iter().map(|e| e.target.clone()).collect::<Vec<_>>(),
            vec![Target::User("a".into()), Target::User("b".into())]
        );
        assert_eq!(events[0].data, "\"hi\"");
    }

    #[test]
    fn a_bad_event_in_a_batch_names_its_index() {
        let body = serde_json::json!({"events": [
            {"to": {"user": "a"}},
            {"to": {"user": "a"}, "type": "bad\nname"}
        ]});
        let error = parse_publish(&body, &limits()).unwrap_err();
        assert_eq!(error.kind, Invalid::EventType);
        assert_eq!(error.index, Some(1));
    }

    #[test]
    fn recipients_are_capped_across_the_batch() {
        let body = serde_json::json!({"events": [
            {"to": {"users": ["a", "b", "c"]}},
            {"to": {"users": ["d", "e", "f"]}}
        ]});
        let error = parse_publish(&body, &limits()).unwrap_err();
        assert_eq!(error.kind, Invalid::TooManyRecipients);
    }
}
