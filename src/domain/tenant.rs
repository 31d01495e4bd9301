//! Tenants: slugs, allowed browser origins and retention, and the rules for each.

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

use super::limits::{LimitsPatch, TenantLimits};
use super::names::check_display_name;
use super::{Invalid, ValidationError};

/// The most characters of a tenant's name.
const MAX_NAME_CHARS: usize = 200;

/// A tenant as Herald keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub retention: Retention,
    /// The tenant's own limits (the server's defaults fill in the rest).
    pub limits: TenantLimits,
    /// The log's epoch: the first part of every event id.
    pub epoch: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// How much history a tenant keeps; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Events older than this many seconds are pruned; null: no age limit.
    #[serde(default, deserialize_with = "super::optional_whole_number")]
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub max_age_secs: Option<i64>,
    /// Only this many of the newest events are kept; null: no count limit.
    #[serde(default, deserialize_with = "super::optional_whole_number")]
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub max_events: Option<i64>,
}

impl Retention {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.max_age_secs.is_some_and(|v| v < 1) || self.max_events.is_some_and(|v| v < 1) {
            return Err(ValidationError::new(
                Invalid::Retention,
                "retention limits must be positive (or absent for no limit)",
            ));
        }
        Ok(())
    }
}

/// `POST /admin/tenants`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    #[schema(value_type = Slug)]
    pub slug: String,
    /// Default: the slug.
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,200}$")]
    pub name: Option<String>,
    /// Browser origins allowed to open this tenant's streams with credentials.
    #[serde(default)]
    #[schema(max_items = 100, value_type = Vec<Origin>)]
    pub allowed_origins: Vec<String>,
    #[serde(default, deserialize_with = "object")]
    pub retention: Retention,
    /// Absent fields: the server's defaults.
    #[serde(default, deserialize_with = "optional_object")]
    pub limits: Option<LimitsPatch>,
}

impl NewTenant {
    /// Checks every field, and writes each origin as browsers send it.
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        validate_slug(&self.slug)?;
        if let Some(name) = &self.name {
            check_display_name(name, MAX_NAME_CHARS, "name")?;
        }
        self.allowed_origins = parse_origins(&self.allowed_origins)?;
        self.retention.validate()
    }
}

/// `PATCH /admin/tenants/{slug}`: absent fields stay as they are. The slug is immutable.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,200}$")]
    pub name: Option<String>,
    #[schema(max_items = 100, value_type = Option<Vec<Origin>>)]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "optional_object")]
    pub retention: Option<Retention>,
    /// A field given replaces the tenant's, `null` returns it to the server's default.
    #[serde(default, deserialize_with = "optional_object")]
    pub limits: Option<LimitsPatch>,
}

/// A struct read from a JSON object only: serde's derive would also read it from an array
/// of its fields in order, so `{"retention": [1, 1]}` would set both limits.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<T, D::Error> {
    from_object(serde_json::Map::deserialize(deserializer)?)
}

fn optional_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?
        .map(from_object)
        .transpose()
}

fn from_object<T: DeserializeOwned, E: de::Error>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, E> {
    T::deserialize(serde_json::Value::Object(object)).map_err(E::custom)
}

super::pattern_schema!(
    /// An allowed origin in the OpenAPI document.
    Origin,
    ORIGIN_PATTERN,
    "https://app.example.com"
);

impl TenantPatch {
    /// Checks every field given, and writes each origin as browsers send it.
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            check_display_name(name, MAX_NAME_CHARS, "name")?;
        }
        if let Some(origins) = &self.allowed_origins {
            self.allowed_origins = Some(parse_origins(origins)?);
        }
        if let Some(retention) = &self.retention {
            retention.validate()?;
        }
        Ok(())
    }
}

/// A slug as its schema says.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";

super::pattern_schema!(
    /// A tenant's slug in the OpenAPI document.
    Slug,
    SLUG_PATTERN,
    "acme"
);

/// Slugs: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn validate_slug(slug: &str) -> Result<(), ValidationError> {
    let bytes = slug.as_bytes();
    let valid = (1..=63).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            Invalid::Slug,
            "a slug must match [a-z0-9][a-z0-9-]{0,62}",
        ))
    }
}

/// An allowed origin as browsers send it: `http` or `https`, a lower-case host name (its
/// last label starting with a letter) or a dotted IPv4 address, and a port only where it is
/// not the scheme's default — no path, no wildcard, no IPv6 literal. The OpenAPI document
/// publishes this very pattern.
pub const ORIGIN_PATTERN: &str = concat!(
    "^https?://",
    "(([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
    "|(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?$",
);

/// The most allowed origins of one tenant.
pub const MAX_ORIGINS: usize = 100;

fn origin_pattern() -> &'static regex_lite::Regex {
    static PATTERN: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex_lite::Regex::new(ORIGIN_PATTERN).expect("ORIGIN_PATTERN is a valid regex")
    })
}

/// Origins are compared byte for byte with the browser's `Origin` header, so each must be
/// written as a browser sends it (`ORIGIN_PATTERN`). A default port (`:443` for https,
/// `:80` for http) is dropped, as browsers drop it.
pub fn parse_origins(origins: &[String]) -> Result<Vec<String>, ValidationError> {
    if origins.len() > MAX_ORIGINS {
        return Err(ValidationError::new(
            Invalid::Origin,
            format!("at most {MAX_ORIGINS} allowed origins"),
        ));
    }
    origins.iter().map(|origin| parse_origin(origin)).collect()
}

fn parse_origin(origin: &str) -> Result<String, ValidationError> {
    if origin_pattern().is_match(origin) {
        let exact = origin
            .strip_suffix(":443")
            .filter(|_| origin.starts_with("https:"))
            .or_else(|| {
                origin
                    .strip_suffix(":80")
                    .filter(|_| origin.starts_with("http:"))
            })
            .unwrap_or(origin);
        return Ok(exact.to_owned());
    }
    let message = if origin.contains('*') {
        format!("`{origin}`: wildcards never match; list each origin as browsers send it")
    } else {
        // Say what a browser would send, where that can be told.
        let exact = url::Url::parse(origin)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .map(|url| url.origin().ascii_serialization())
            .filter(|exact| origin_pattern().is_match(exact));
        match exact {
            Some(exact) => {
                format!("`{origin}` is not an origin as browsers send it; did you mean `{exact}`?")
            }
            None => format!(
                "`{origin}` is not an http(s) origin like https://app.example.com \
                 (a lower-case host name or IPv4 address, and a port)"
            ),
        }
    };
    Err(ValidationError::new(Invalid::Origin, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["a", "demo", "acme-2", "0x"] {
            assert!(validate_slug(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_must_be_as_browsers_send_them() {
        let good = [
            "https://app.example.com",
            "http://localhost:8081",
            "http://127.0.0.1:3000",
            "https://a-b.c0.example",
        ];
        let parsed = parse_origins(&good.map(String::from)).unwrap();
        assert_eq!(parsed, good);
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "https://App.example.com",
            "app.example.com",
            "ftp://x",
            "null",
            "http://[::1]:8080",
            "https://a.com:65536",
            "https://-a.com",
            "http://1.2.3",
            "http://256.1.1.1",
        ] {
            assert!(parse_origins(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_default_port_is_dropped_as_browsers_drop_it() {
        let parsed = parse_origins(&[
            "https://a.com:443".into(),
            "http://a.com:80".into(),
            "http://a.com:443".into(),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            ["https://a.com", "http://a.com", "http://a.com:443"]
        );
    }

    #[test]
    fn a_near_miss_is_told_what_browsers_send() {
        let error = parse_origins(&["https://App.example.com/".into()]).unwrap_err();
        assert!(
            error
                .message
                .contains("did you mean `https://app.example.com`"),
            "{}",
            error.message
        );
    }
}
