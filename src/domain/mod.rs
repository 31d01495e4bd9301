//! Herald's own vocabulary, free of HTTP and SQL: tenants, event targets, event ids, and
//! the rules that decide whether input is acceptable.
//!
//! Everything a caller sends is checked here before it reaches the store, so that nothing a
//! publisher sends can break the SSE framing or another tenant's data.

pub mod event;
pub mod identity;
pub mod inbox;
pub mod keys;
pub mod limits;
pub mod log;
pub mod names;
pub mod receipt;
pub mod tenant;
mod validation;
pub mod webhook;

pub use validation::{Invalid, ValidationError};

/// A string type of the OpenAPI document whose pattern is the very constant the server
/// checks, so the two cannot drift apart.
macro_rules! pattern_schema {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $example:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .examples([$example])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use pattern_schema;

/// A JSON number that is a whole number, `388` or `388.0` alike (JSON Schema's `integer`
/// is both), within what a double holds exactly.
pub fn whole_number(value: &serde_json::Value) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    })
}

/// Reads an optional whole number as `whole_number` does.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => whole_number(&value)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("`{value}` is not a whole number"))),
    }
}

/// Milliseconds since the Unix epoch: how Herald stores every timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How long until the Unix second `unix_secs` (a token's `exp`); zero once it has passed.
pub fn time_until(unix_secs: i64) -> std::time::Duration {
    let remaining = unix_secs.saturating_sub(now_ms() / 1000);
    std::time::Duration::from_secs(u64::try_from(remaining).unwrap_or(0))
}

/// RFC 3339 text for a stored timestamp, as the API shows it.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
