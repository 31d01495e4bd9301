//! The publish body: its wire shape, declared once for the handler and the OpenAPI
//! document, and its reading into one `NewEvent` per recipient stream.
//!
//! Serde reads the shape and the newtypes (`UserId`, `Topic`, `EventType`) check each name
//! as it is read; where a read fails says which rule was broken (`to.users[1]` → an invalid
//! user id), and a batch's errors name the index of the first bad event. The rules that
//! need the configured limits (data size, batch size, recipients) come after.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_path_to_error::Segment;
use utoipa::ToSchema;

use crate::config::LimitSettings;
use crate::domain::event::{EventType, NewEvent, Target};
use crate::domain::names::{Topic, UserId};
use crate::domain::receipt::Fallback;
use crate::domain::{Invalid, ValidationError};

const TO_SHAPE: &str = "`to` must be one of {\"user\": id}, {\"users\": [ids]}, \
                        {\"topic\": name}, {\"broadcast\": true}";

/// Where an event goes: exactly one of these forms.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum To {
    User(UserId),
    /// One stored event per user, in this order.
    Users(Vec<UserId>),
    Topic(Topic),
    /// Every stream of the tenant.
    Broadcast(BroadcastFlag),
}

/// `"broadcast": true` — the only value it takes.
#[derive(Debug)]
pub struct BroadcastFlag;

impl utoipa::PartialSchema for BroadcastFlag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .into()
    }
}

impl ToSchema for BroadcastFlag {}

impl<'de> Deserialize<'de> for BroadcastFlag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match bool::deserialize(deserializer)? {
            true => Ok(BroadcastFlag),
            false => Err(serde::de::Error::custom("`broadcast` must be true")),
        }
    }
}

/// One event to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Required; optional here only so that its absence is reported as a bad `to`.
    #[serde(default)]
    #[schema(value_type = To, required = true)]
    pub to: Option<To>,
    /// The SSE event name; default `message`.
    #[serde(rename = "type", default)]
    pub event_type: Option<EventType>,
    /// Any JSON value (absent: null), at most `limits.max_event_data_bytes` as compact
    /// JSON; a string goes on the wire as its text.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub data: Option<Value>,
    /// Also an item of each recipient's inbox, unread until marked read (with `to.user`,
    /// `to.users` or `to.broadcast`; not with a topic).
    #[serde(default)]
    pub inbox: bool,
    /// With `to.user` or `to.users`: for each recipient, a `notification.unseen` webhook
    /// message unless the fact `unless` has happened `after_secs` after the publish.
    #[serde(default)]
    pub fallback: Option<FallbackIn>,
}

/// A publish's `fallback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackIn {
    /// Seconds after the publish, 1–604800.
    #[serde(default, deserialize_with = "crate::domain::optional_whole_number")]
    #[schema(value_type = i64, minimum = 1, maximum = 604800, required = true)]
    pub after_secs: Option<i64>,
    /// The fact that cancels it; default `seen`. `read` needs `inbox: true`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(delivered|seen|read)$")]
    pub unless: Option<String>,
}

/// A batch of events, committed together in this order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub events: Vec<EventIn>,
}

/// One event, or a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PublishBody {
    Single(EventIn),
    Batch(Batch),
}

impl PublishBody {
    /// Reads a body — one event, or `{"events": [...]}` — into one `NewEvent` per recipient
    /// stream, in order. The first broken rule rejects the whole body.
    pub fn parse(body: &Value, limits: &LimitSettings) -> Result<Vec<NewEvent>, ValidationError> {
        let Value::Object(object) = body else {
            return Err(ValidationError::new(
                Invalid::Body,
                "the body must be a JSON object: one event, or {\"events\": [...]}",
            ));
        };
        let items = match object.contains_key("events") {
            true => {
                // serde would read an event from an array of its fields too.
                let mut events = object["events"].as_array().into_iter().flatten();
                if let Some(index) = events.position(|event| !event.is_object()) {
                    return Err(ValidationError::new(
                        Invalid::Body,
                        "each event of `events` is a JSON object",
                    )
                    .at(index));
                }
                read::<Batch>(body)?.events
            }
            false => vec![read::<EventIn>(body)?],
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
        for (index, item) in items.into_iter().enumerate() {
            let located = |e: ValidationError| if batch { e.at(index) } else { e };
            item.into_events(index, limits, &mut events)
                .map_err(located)?;
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
}

impl EventIn {
    fn into_events(
        self,
        item: usize,
        limits: &LimitSettings,
        out: &mut Vec<NewEvent>,
    ) -> Result<(), ValidationError> {
        let fallback = match (&self.fallback, &self.to) {
            (None, _) => None,
            (Some(fallback), Some(To::User(_) | To::Users(_))) => Some(Fallback::parse(
                fallback.after_secs,
                fallback.unless.as_deref(),
                self.inbox,
            )?),
            (Some(_), _) => {
                return Err(ValidationError::new(
                    Invalid::Fallback,
                    "`fallback` goes with `to.user` or `to.users`: a topic or broadcast has no \
                     single recipient to fall back for",
                ));
            }
        };
        let targets = match self.to {
            None => return Err(ValidationError::new(Invalid::Target, TO_SHAPE)),
            Some(To::User(user)) => vec![Target::User(user)],
            Some(To::Users(users)) => {
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
                // Each user once: a repeated id would store and deliver the event twice.
                let mut seen = std::collections::HashSet::new();
                users
                    .into_iter()
                    .filter(|user| seen.insert(user.clone()))
                    .map(Target::User)
                    .collect()
            }
            Some(To::Topic(_)) if self.inbox => {
                return Err(ValidationError::new(
                    Invalid::Inbox,
                    "`inbox` goes with `to.user`, `to.users` or `to.broadcast`: a topic has no inbox",
                ));
            }
            Some(To::Topic(topic)) => vec![Target::Topic(topic)],
            Some(To::Broadcast(BroadcastFlag)) => vec![Target::Broadcast],
        };
        let data = self.data.unwrap_or(Value::Null).to_string();
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
        let event_type = self.event_type.unwrap_or_default();
        out.extend(targets.into_iter().map(|target| NewEvent {
            target,
            event_type: event_type.clone(),
            data: data.clone(),
            inbox: self.inbox,
            fallback,
            item,
        }));
        Ok(())
    }
}

/// Reads `T` from `body`; a failure becomes the error of the rule it broke, located at
/// its event in a batch.
fn read<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path: Vec<&Segment> = error.path().iter().collect();
        let (index, within) = match path.as_slice() {
            [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "events" => {
                (Some(*index), rest)
            }
            all => (None, all),
        };
        let name = |segment: &Segment| match segment {
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Seq { .. } | Segment::Unknown => String::new(),
        };
        let names: Vec<String> = within.iter().map(|s| name(s)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let message = error.inner().to_string();
        let error = match names.as_slice() {
            ["to", "user" | "users", ..] => ValidationError::new(Invalid::User, message),
            ["to", "topic", ..] => ValidationError::new(Invalid::Topic, message),
            ["to", ..] => ValidationError::new(Invalid::Target, format!("{TO_SHAPE} ({message})")),
            ["type", ..] => ValidationError::new(Invalid::EventType, message),
            ["fallback", ..] => ValidationError::new(Invalid::Fallback, message),
            _ => ValidationError::new(Invalid::Body, message),
        };
        match index {
            Some(index) => error.at(index),
            None => error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> LimitSettings {
        LimitSettings {
            max_event_data_bytes: 64,
            max_batch_events: 3,
            max_recipients_per_request: 5,
            max_users_per_event: 4,
        }
    }

    fn refusal(body: Value) -> ValidationError {
        PublishBody::parse(&body, &limits()).unwrap_err()
    }

    #[test]
    fn users_fan_out_in_order_each_once() {
        let body = json!({"to": {"users": ["a", "b", "a"]}, "type": "mail", "data": "hi"});
        let events = PublishBody::parse(&body, &limits()).unwrap();
        let users: Vec<&str> = events.iter().map(|e| e.target.name()).collect();
        assert_eq!(users, ["a", "b"]);
        assert_eq!(events[0].data, "\"hi\"");
        assert_eq!(events[0].event_type.as_str(), "mail");
    }

    #[test]
    fn each_broken_rule_names_itself() {
        let cases = [
            (json!({"data": 1}), Invalid::Target),
            (json!({"to": {}}), Invalid::Target),
            (json!({"to": {"user": "u", "topic": "t"}}), Invalid::Target),
            (json!({"to": {"broadcast": false}}), Invalid::Target),
            (json!({"to": {"users": []}}), Invalid::Target),
            (json!({"to": {"user": ""}}), Invalid::User),
            (json!({"to": {"users": ["a", 7]}}), Invalid::User),
            (json!({"to": {"topic": "a\u{7}"}}), Invalid::Topic),
            (json!({"to": {"user": "u"}, "type": 5}), Invalid::EventType),
            (json!({"to": {"user": "u"}, "tpye": "x"}), Invalid::Body),
            (
                json!({"to": {"user": "u"}, "data": "x".repeat(64)}),
                Invalid::DataTooLarge,
            ),
            (json!({"events": 5}), Invalid::Body),
            (json!({"events": []}), Invalid::EmptyBatch),
            (json!([1]), Invalid::Body),
        ];
        for (body, kind) in cases {
            assert_eq!(refusal(body.clone()).kind, kind, "{body}");
        }
    }

    #[test]
    fn a_bad_event_in_a_batch_names_its_index() {
        let error = refusal(json!({"events": [
            {"to": {"user": "a"}},
            {"to": {"user": "a"}, "type": "bad\nname"}
        ]}));
        assert_eq!(error.kind, Invalid::EventType);
        assert_eq!(error.index, Some(1));
        assert!(
            error.message.starts_with("events[1]: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn recipients_are_capped_across_the_batch() {
        let error = refusal(json!({"events": [
            {"to": {"users": ["a", "b", "c"]}},
            {"to": {"users": ["d", "e", "f"]}}
        ]}));
        assert_eq!(error.kind, Invalid::TooManyRecipients);
        assert_eq!(error.index, Some(1));
    }
}
