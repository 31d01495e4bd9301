//! A verified user: who, until when, and which topics their token lets them stream.

use super::names::Topic;
use super::names::UserId;

#[derive(Debug, Clone)]
pub struct UserIdentity {
    pub user: UserId,
    /// Unix seconds.
    pub expires_at: i64,
    /// Topic names or `prefix:*` patterns, from the token's `topics` claim.
    pub topic_patterns: Vec<String>,
    /// The signing key that vouched for the token (its `kid`): revoking it ends the
    /// streams it opened.
    pub key_id: String,
}

impl UserIdentity {
    /// Whether the token allows `topic`: an exact name, or a `prefix:*` pattern.
    pub fn allows_topic(&self, topic: &Topic) -> bool {
        let topic = topic.as_str();
        self.topic_patterns
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) if prefix.ends_with(':') => topic.starts_with(prefix),
                _ => pattern == topic,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        let identity = UserIdentity {
            user: UserId::parse("u").unwrap(),
            expires_at: 0,
            topic_patterns: vec!["stock:*".into(), "news".into(), "*".into()],
            key_id: "k".into(),
        };
        let allows = |t: &str| identity.allows_topic(&Topic::parse(t).unwrap());
        assert!(allows("stock:AAPL"));
        assert!(allows("news"));
        assert!(!allows("stocks"));
        assert!(!allows("newsroom"));
        assert!(!allows("weather"), "a bare * is not a pattern");
    }
}
