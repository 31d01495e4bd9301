//! The settings of what Herald sends back: webhooks (`[webhooks]`) and presence
//! (`[presence]`).

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seconds to wait after each failed attempt; once they are spent the message has
    /// failed. A TOML list, or from the environment a comma-separated list or one number.
    #[serde(deserialize_with = "seconds_list")]
    pub retry_schedule_secs: Vec<f64>,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_secs: f64,
    /// Delivered and failed messages (and their attempts) are kept this long.
    pub keep_deliveries_secs: u64,
    /// Endpoints on loopback, private and link-local addresses, and plain `http`.
    pub allow_private_targets: bool,
    /// The longest an attempt may take, answer included.
    pub timeout_secs: f64,
    /// Attempts in flight on this node at once, and for one endpoint.
    pub workers: usize,
    pub per_endpoint: usize,
    /// How often each node looks for due messages (it is woken at once for its own).
    pub poll_secs: f64,
}

impl WebhookSettings {
    pub fn targets(&self) -> crate::domain::webhook::Targets {
        match self.allow_private_targets {
            true => crate::domain::webhook::Targets::AnyAddress,
            false => crate::domain::webhook::Targets::PublicOnly,
        }
    }
}

/// A list of seconds as TOML gives it, or as the environment does: `5,300,1800` or `5`.
fn seconds_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<f64>),
        One(f64),
        Text(String),
    }
    match Given::deserialize(deserializer)? {
        Given::List(list) => Ok(list),
        Given::One(one) => Ok(vec![one]),
        Given::Text(text) => text
            .split(',')
            .map(|part| part.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a list of seconds"))),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    /// A user with no open stream for this long goes offline (`user.offline`); one back
    /// within it never went.
    pub offline_grace_secs: f64,
}

/// Seconds: finite and not negative.
fn seconds(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

impl WebhookSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let positive = |value: f64| seconds(value) && value > 0.0;
        let valid = self.retry_schedule_secs.iter().all(|s| seconds(*s))
            && positive(self.timeout_secs)
            && positive(self.poll_secs)
            && seconds(self.disable_after_secs)
            && self.workers > 0
            && self.per_endpoint > 0;
        if !valid {
            return Err(ConfigError::Invalid(
                "webhooks: retry_schedule_secs and disable_after_secs are seconds (0 or more); \
                 timeout_secs, poll_secs, workers and per_endpoint are above 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl PresenceSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !seconds(self.offline_grace_secs) {
            return Err(ConfigError::Invalid(
                "presence.offline_grace_secs is seconds (0 or more)".into(),
            ));
        }
        Ok(())
    }
}
