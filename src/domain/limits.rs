//! A tenant's limits: how fast it may publish, how many streams it may hold, how large its
//! events and its log may grow. What a tenant sets is kept as given (`TenantLimits`, each
//! field optional); what applies is that over the server's defaults (`EffectiveLimits`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{Invalid, ValidationError};

/// The highest publish rate a tenant may be given, in events per second.
const MAX_PUBLISH_PER_SEC: u64 = 1_000_000;
/// The largest burst, in events.
const MAX_PUBLISH_BURST: u64 = 10_000_000;
/// The most streams a tenant may be allowed, deployment-wide.
const MAX_STREAMS: u64 = 100_000_000;
/// The most streams one user may be allowed.
const MAX_STREAMS_PER_USER: u64 = 100_000;
/// The most events a tenant may keep (the log's seqs are `i64`).
const MAX_STORED_EVENTS: u64 = i64::MAX as u64;
/// The most webhook endpoints a tenant may be allowed.
const MAX_WEBHOOKS: u64 = 1_000;

/// A tenant's own limits; `None`: the server's default. Stored as JSON naming only the
/// fields set (the pruner finds tenants with their own `max_stored_events` by its name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_per_sec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_streams_per_user: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_data_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stored_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_webhooks: Option<u64>,
}

/// The limits that apply to a tenant, as tenant answers show them (and as the
/// configuration's `[tenant_defaults]` gives them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EffectiveLimits {
    /// Stored events per second (each entry of a publish answer counts one).
    pub publish_per_sec: u64,
    /// Events a tenant may publish at once after a pause.
    pub publish_burst: u64,
    /// Open streams, deployment-wide.
    pub max_streams: u64,
    /// Open streams of one user, deployment-wide.
    pub max_streams_per_user: u64,
    /// Largest `data` of one event, as compact JSON.
    pub max_event_data_bytes: u64,
    /// The oldest events beyond this many are pruned; null: no such limit.
    #[serde(default)]
    pub max_stored_events: Option<u64>,
    /// Webhook endpoints.
    pub max_webhooks: u64,
}

impl TenantLimits {
    /// What applies: each field set here, else the default.
    pub fn effective(&self, defaults: &EffectiveLimits) -> EffectiveLimits {
        EffectiveLimits {
            publish_per_sec: self.publish_per_sec.unwrap_or(defaults.publish_per_sec),
            publish_burst: self.publish_burst.unwrap_or(defaults.publish_burst),
            max_streams: self.max_streams.unwrap_or(defaults.max_streams),
            max_streams_per_user: self
                .max_streams_per_user
                .unwrap_or(defaults.max_streams_per_user),
            max_event_data_bytes: self
                .max_event_data_bytes
                .unwrap_or(defaults.max_event_data_bytes),
            max_stored_events: self.max_stored_events.or(defaults.max_stored_events),
            max_webhooks: self.max_webhooks.unwrap_or(defaults.max_webhooks),
        }
    }

    /// These limits with `patch` applied — a field given replaces, `null` returns it to the
    /// default, an absent one stays — each within its bounds (`max_event_data_bytes` within
    /// the server's own largest, `server_max_data`).
    pub fn patched(
        &self,
        patch: &LimitsPatch,
        server_max_data: u64,
    ) -> Result<TenantLimits, ValidationError> {
        let field = |name: &str, change: &Option<Value>, current: Option<u64>, max: u64| {
            let value = match change {
                None => return Ok(current),
                Some(Value::Null) => return Ok(None),
                Some(value) => super::whole_number(value).and_then(|n| u64::try_from(n).ok()),
            };
            match value {
                Some(value) if (1..=max).contains(&value) => Ok(Some(value)),
                _ => Err(ValidationError::new(
                    Invalid::Limits,
                    format!(
                        "limits.{name} is a whole number from 1 to {max}, or null for the default"
                    ),
                )),
            }
        };
        Ok(TenantLimits {
            publish_per_sec: field(
                "publish_per_sec",
                &patch.publish_per_sec,
                self.publish_per_sec,
                MAX_PUBLISH_PER_SEC,
            )?,
            publish_burst: field(
                "publish_burst",
                &patch.publish_burst,
                self.publish_burst,
                MAX_PUBLISH_BURST,
            )?,
            max_streams: field(
                "max_streams",
                &patch.max_streams,
                self.max_streams,
                MAX_STREAMS,
            )?,
            max_streams_per_user: field(
                "max_streams_per_user",
                &patch.max_streams_per_user,
                self.max_streams_per_user,
                MAX_STREAMS_PER_USER,
            )?,
            max_event_data_bytes: field(
                "max_event_data_bytes",
                &patch.max_event_data_bytes,
                self.max_event_data_bytes,
                server_max_data,
            )?,
            max_stored_events: field(
                "max_stored_events",
                &patch.max_stored_events,
                self.max_stored_events,
                MAX_STORED_EVENTS,
            )?,
            max_webhooks: field(
                "max_webhooks",
                &patch.max_webhooks,
                self.max_webhooks,
                MAX_WEBHOOKS,
            )?,
        })
    }
}

/// `"limits"` in a `POST` or `PATCH` of a tenant: each field a whole number, `null` (the
/// default), or absent (in a `PATCH`: unchanged). Read as JSON and judged by
/// `TenantLimits::patched`, so that any bad value is `invalid_limits` naming its field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub publish_per_sec: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 10000000)]
    pub publish_burst: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000000)]
    pub max_streams: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000)]
    pub max_streams_per_user: Option<Value>,
    /// At most the server's `limits.max_event_data_bytes`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub max_event_data_bytes: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 9223372036854775807_u64)]
    pub max_stored_events: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    pub max_webhooks: Option<Value>,
}

/// A field that is present, `null` included (absent fields stay `None` by `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> EffectiveLimits {
        EffectiveLimits {
            publish_per_sec: 1000,
            publish_burst: 2000,
            max_streams: 100_000,
            max_streams_per_user: 32,
            max_event_data_bytes: 65536,
            max_stored_events: None,
            max_webhooks: 20,
        }
    }

    #[test]
    fn a_patch_sets_resets_or_keeps_each_field() {
        let set = TenantLimits {
            publish_per_sec: Some(5),
            max_stored_events: Some(10),
            ..TenantLimits::default()
        };
        let patch: LimitsPatch =
            serde_json::from_str(r#"{"publish_per_sec": null, "publish_burst": 7}"#).unwrap();
        let patched = set.patched(&patch, 65536).unwrap();
        assert_eq!(patched.publish_per_sec, None, "null: back to the default");
        assert_eq!(patched.publish_burst, Some(7));
        assert_eq!(patched.max_stored_events, Some(10), "absent: unchanged");
        let effective = patched.effective(&defaults());
        assert_eq!(effective.publish_per_sec, 1000);
        assert_eq!(effective.publish_burst, 7);
        assert_eq!(effective.max_stored_events, Some(10));
    }

    #[test]
    fn a_bad_value_is_invalid_limits_naming_the_field() {
        for (patch, field) in [
            (r#"{"publish_per_sec": 0}"#, "publish_per_sec"),
            (r#"{"max_streams": -1}"#, "max_streams"),
            (r#"{"max_streams": 1.5}"#, "max_streams"),
            (r#"{"max_streams": 0.0}"#, "max_streams"),
            (r#"{"max_streams_per_user": "9"}"#, "max_streams_per_user"),
            (r#"{"publish_burst": 10000001}"#, "publish_burst"),
            (r#"{"max_event_data_bytes": 65537}"#, "max_event_data_bytes"),
        ] {
            let patch: LimitsPatch = serde_json::from_str(patch).unwrap();
            let error = TenantLimits::default().patched(&patch, 65536).unwrap_err();
            assert_eq!(error.kind, Invalid::Limits);
            assert!(error.message.contains(field), "{}", error.message);
        }
        assert!(serde_json::from_str::<LimitsPatch>(r#"{"speed": 1}"#).is_err());
        // JSON Schema's integers include 3.0.
        let patch: LimitsPatch = serde_json::from_str(r#"{"max_streams": 3.0}"#).unwrap();
        let limits = TenantLimits::default().patched(&patch, 65536).unwrap();
        assert_eq!(limits.max_streams, Some(3));
    }
}
