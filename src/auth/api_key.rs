//! Tenant API keys (`hk_…`): the credential of a tenant's backend.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{AuthError, bearer_token};
use crate::domain::keys::API_KEY_PREFIX;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// A request authenticated by a live API key, and the tenant the key belongs to. Every
/// tenant-backend handler acts on this tenant only: isolation starts here.
///
/// The operator may act as any tenant too: the admin token with `Herald-Tenant: <slug>`
/// (what the console does). The admin token can make that tenant an API key anyway; this
/// spares it one.
pub struct Publisher {
    pub tenant: Tenant,
    /// What it showed, for a long request to check again (`still_valid`).
    credential: Credential,
}

enum Credential {
    ApiKey(String),
    Operator,
}

impl Publisher {
    /// Whether the credential still stands for the tenant: the key is not revoked, the
    /// tenant not removed. A request that lasts (the tail) asks when the tenant changed.
    pub async fn still_valid(&self, state: &AppState) -> Result<bool, ApiError> {
        let tenant = match &self.credential {
            Credential::ApiKey(key) => state.credentials.api_key_tenant(key).await?,
            Credential::Operator => state.credentials.tenant(&self.tenant.slug).await?,
        };
        Ok(tenant.is_some_and(|tenant| tenant.id == self.tenant.id))
    }
}

/// The header that names the tenant the admin token acts as.
pub const HERALD_TENANT: &str = "Herald-Tenant";

impl FromRequest for Publisher {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Publisher, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let state = request
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal(&"application state missing"))?;
            let key = bearer_token(&request)?;
            if key.starts_with(API_KEY_PREFIX) {
                return match state.credentials.api_key_tenant(key).await? {
                    Some(tenant) => Ok(Publisher {
                        tenant,
                        credential: Credential::ApiKey(key.to_owned()),
                    }),
                    None => Err(AuthError::InvalidApiKey.into()),
                };
            }
            if !state.admin_token.matches(key) {
                return Err(AuthError::InvalidApiKey.into());
            }
            let Some(slug) = request.headers().get(HERALD_TENANT) else {
                return Err(AuthError::TenantUnnamed.into());
            };
            let slug = slug.to_str().unwrap_or_default();
            match state.credentials.tenant(slug).await? {
                Some(tenant) => Ok(Publisher {
                    tenant,
                    credential: Credential::Operator,
                }),
                None => Err(ApiError::tenant_not_found(slug)),
            }
        })
    }
}
