//! The `demo` tenant that a first `local` start creates, so a newcomer can publish and
//! stream at once.

use serde::Serialize;

use crate::domain::keys::SigningKeySpec;
use crate::domain::limits::TenantLimits;
use crate::domain::tenant::{NewTenant, Retention};
use crate::store::{Store, StoreError};

pub const DEMO_SLUG: &str = "demo";

/// The demo page's origin: where `herald serve` serves it in `local`.
pub fn demo_origin(port: u16) -> String {
    format!("http://localhost:{port}")
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoCredentials {
    pub tenant: String,
    pub origin: String,
    pub api_key: String,
    pub signing_kid: String,
    pub signing_secret: String,
}

/// Creates the demo tenant with an API key and an HS256 key, but only in an empty database:
/// an operator's data is never touched.
pub async fn seed_tenant(
    store: &Store,
    page_port: u16,
) -> Result<Option<DemoCredentials>, StoreError> {
    if store.count_tenants().await? > 0 {
        return Ok(None);
    }
    let new = NewTenant {
        slug: DEMO_SLUG.into(),
        name: Some("Demo".into()),
        allowed_origins: vec![demo_origin(page_port)],
        retention: Retention::default(),
        limits: None,
    };
    let Some(tenant) = store.create_tenant(&new, &TenantLimits::default()).await? else {
        return Ok(None);
    };
    let (_, api_key) = store.create_api_key(tenant.id, "demo").await?;
    let signing = store
        .create_signing_key(tenant.id, SigningKeySpec::hs256())
        .await?;
    Ok(Some(DemoCredentials {
        origin: demo_origin(page_port),
        tenant: tenant.slug,
        api_key,
        signing_kid: signing.kid,
        signing_secret: signing.secret.unwrap_or_default(),
    }))
}
