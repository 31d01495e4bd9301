//! Tenants: slugs, allowed browser origins and retention, and the rules for each.

use serde::{Deserialize, Serialize};

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
    /// The log's epoch: the first part of every event id.
    pub epoch: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// How much history a tenant keeps; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub max_age_secs: Option<i64>,
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
    pub slug: String,
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub retention: Retention,
}

impl NewTenant {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_slug(&self.slug)?;
        if let Some(name) = &self.name {
            check_display_name(name, MAX_NAME_CHARS, "name")?;
        }
        validate_origins(&self.allowed_origins)?;
        self.retention.validate()
    }
}

/// `PATCH /admin/tenants/{slug}`: absent fields stay as they are. The slug is immutable.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub retention: Option<Retention>,
}

impl TenantPatch {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            check_display_name(name, MAX_NAME_CHARS, "name")?;
        }
        if let Some(origins) = &self.allowed_origins {
            validate_origins(origins)?;
        }
        if let Some(retention) = &self.retention {
            retention.validate()?;
        }
        Ok(())
    }
}

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

/// Origins are compared byte for byte with the browser's `Origin` header, so each must be
/// written exactly as a browser sends it: `scheme://host[:port]`, no path, no wildcard.
pub fn validate_origins(origins: &[String]) -> Result<(), ValidationError> {
    if origins.len() > 100 {
        return Err(ValidationError::new(
            Invalid::Origin,
            "at most 100 allowed origins",
        ));
    }
    for origin in origins {
        if origin.contains('*') {
            return Err(ValidationError::new(
                Invalid::Origin,
                format!("`{origin}`: wildcards never match; list each origin as browsers send it"),
            ));
        }
        let serialized = url::Url::parse(origin)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .map(|url| url.origin().ascii_serialization());
        match serialized {
            Some(exact) if exact == *origin => {}
            Some(exact) => {
                return Err(ValidationError::new(
                    Invalid::Origin,
                    format!(
                        "`{origin}` is not an origin as browsers send it; did you mean `{exact}`?"
                    ),
                ));
            }
            None => {
                return Err(ValidationError::new(
                    Invalid::Origin,
                    format!("`{origin}` is not an http(s) origin like https://app.example.com"),
                ));
            }
        }
    }
    Ok(())
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
    fn origins_must_be_exact() {
        assert!(
            validate_origins(&[
                "https://app.example.com".into(),
                "http://localhost:8081".into()
            ])
            .is_ok()
        );
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "app.example.com",
            "ftp://x",
            "https://a.com:443",
            "null",
        ] {
            assert!(validate_origins(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
