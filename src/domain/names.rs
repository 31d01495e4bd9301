//! Names a caller hands Herald, parsed once at the edge: user ids, topics, topic lists,
//! idempotency keys and display names. Each type can only hold a valid value, so what
//! reaches the hub and the store needs no second check.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Invalid, ValidationError};

/// The most characters of a user id or a topic.
const MAX_NAME_CHARS: usize = 256;

/// The most topics one stream or history read may name.
pub const MAX_TOPICS: usize = 64;

/// User ids and topic names: 1–256 characters, no control characters (so they can never
/// break a line of the wire format or a log line), none of `forbidden`.
fn check_name(
    name: &str,
    kind: Invalid,
    what: &str,
    forbidden: &[char],
) -> Result<(), ValidationError> {
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            kind,
            format!("a {what} is 1 to {MAX_NAME_CHARS} characters, this one has {length}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            kind,
            format!("a {what} may not contain control characters"),
        ));
    }
    if let Some(found) = name.chars().find(|c| forbidden.contains(c)) {
        return Err(ValidationError::new(
            kind,
            format!("a {what} may not contain `{found}`"),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $what:literal, $forbidden:expr, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, min_length = 1, max_length = 256, pattern = $pattern)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: impl Into<String>) -> Result<Self, ValidationError> {
                let text = text.into();
                check_name(&text, $kind, $what, $forbidden)?;
                Ok($name(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(text: String) -> Result<Self, ValidationError> {
                $name::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// Whose stream: the tenant's own id for one of its users.
    UserId,
    Invalid::User,
    "user id",
    &[],
    "^[^\\x00-\\x1F\\x7F-\\x9F]+$"
);
name_type!(
    /// A topic many users may stream (`stock:AAPL`). No `,`: streams and history name their
    /// topics as a comma-separated list.
    Topic,
    Invalid::Topic,
    "topic",
    &[','],
    "^[^\\x00-\\x1F\\x7F-\\x9F,]+$"
);

super::pattern_schema!(
    /// A `topics` query in the OpenAPI document: empty, or 1 to `MAX_TOPICS` topics
    /// separated by `,`.
    TopicListQuery,
    TOPIC_LIST_PATTERN,
    "news,stock:AAPL"
);

/// A `topics` query as its schema says.
pub const TOPIC_LIST_PATTERN: &str =
    "^([^\\x00-\\x1F\\x7F-\\x9F,]{1,256}(,[^\\x00-\\x1F\\x7F-\\x9F,]{1,256}){0,63})?$";

/// The topics a stream or a history read asks for: comma-separated in a query, at most
/// `MAX_TOPICS` names (repeats counted), each one valid; each topic kept once, in the order
/// given. An empty list is no topics; an empty name between commas is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicList(Vec<Topic>);

impl TopicList {
    /// `a,b,c`.
    pub fn parse(list: Option<&str>) -> Result<TopicList, ValidationError> {
        let list = list.unwrap_or("");
        if list.is_empty() {
            return Ok(TopicList::default());
        }
        if list.split(',').count() > MAX_TOPICS {
            return Err(ValidationError::new(
                Invalid::Topic,
                format!("at most {MAX_TOPICS} topics at once"),
            ));
        }
        let mut topics: Vec<Topic> = Vec::new();
        for part in list.split(',') {
            let topic = Topic::parse(part)?;
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        Ok(TopicList(topics))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|t| t.as_str().to_owned()).collect()
    }
}

super::pattern_schema!(
    /// An `Idempotency-Key` in the OpenAPI document.
    IdempotencyKeyText,
    "^[!-~]{1,255}$",
    "order-42-shipped"
);

/// A publish request's `Idempotency-Key`: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<IdempotencyKey, ValidationError> {
        if (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(text.to_owned()))
        } else {
            Err(ValidationError::new(
                Invalid::IdempotencyKey,
                "Idempotency-Key is 1 to 255 visible ASCII characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name people read — a tenant's, an API key's: 1 to `max` characters without control
/// characters.
pub fn check_display_name(name: &str, max: usize, what: &str) -> Result<(), ValidationError> {
    let length = name.chars().count();
    if length == 0 || length > max || name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            Invalid::Name,
            format!("a {what} is 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_to_256_characters_without_control_characters() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("ü".repeat(256)).is_ok());
        for bad in ["", "a\nb", "a\u{7}b"] {
            assert_eq!(
                UserId::parse(bad).unwrap_err().kind,
                Invalid::User,
                "{bad:?}"
            );
        }
        assert_eq!(
            Topic::parse("t".repeat(257)).unwrap_err().kind,
            Invalid::Topic
        );
    }

    #[test]
    fn topic_lists_keep_each_topic_once_and_refuse_empty_names() {
        let list = TopicList::parse(Some("a,b,a")).unwrap();
        assert_eq!(list.names(), ["a", "b"]);
        assert_eq!(TopicList::parse(None).unwrap(), TopicList::default());
        assert_eq!(TopicList::parse(Some("")).unwrap(), TopicList::default());
        for bad in ["a,b\u{1}", "a,,b", ",a", "a,"] {
            assert!(TopicList::parse(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_topic_has_no_comma_and_a_list_names_at_most_max_topics() {
        assert_eq!(Topic::parse("a,b").unwrap_err().kind, Invalid::Topic);
        assert!(UserId::parse("a,b").is_ok(), "user ids may hold commas");
        let most: Vec<String> = (0..MAX_TOPICS).map(|i| format!("t{i}")).collect();
        assert!(TopicList::parse(Some(&most.join(","))).is_ok());
        for too_many in [
            format!("{},t0", most.join(",")),
            format!("{},one-more", most.join(",")),
        ] {
            assert_eq!(
                TopicList::parse(Some(&too_many)).unwrap_err().kind,
                Invalid::Topic,
                "repeats count towards the limit"
            );
        }
    }

    /// The patterns the OpenAPI document publishes say what the parsers accept.
    #[test]
    fn the_published_patterns_are_the_rules() {
        let schema = serde_json::to_value(<UserId as utoipa::PartialSchema>::schema()).unwrap();
        let user = regex_lite::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        let list = regex_lite::Regex::new(TOPIC_LIST_PATTERN).unwrap();
        let long = "t".repeat(256);
        let too_long = "t".repeat(257);
        let most: Vec<String> = (0..MAX_TOPICS).map(|i| format!("t{i}")).collect();
        let too_many = format!("{},x", most.join(","));
        for sample in [
            "",
            "a",
            "a,b",
            "a,,b",
            ",",
            "a,",
            "é,ü",
            "a\u{85}",
            "a\u{7f}",
            "a b",
            &long,
            &too_long,
            &most.join(","),
            &too_many,
        ] {
            assert_eq!(
                list.is_match(sample),
                TopicList::parse(Some(sample)).is_ok(),
                "topics {sample:?}"
            );
            if sample.chars().count() <= 256 && !sample.is_empty() {
                assert_eq!(
                    user.is_match(sample),
                    UserId::parse(sample).is_ok(),
                    "user {sample:?}"
                );
            }
        }
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42").is_ok());
        for bad in ["", "a b", "ключ", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
