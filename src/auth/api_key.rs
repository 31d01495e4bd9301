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
    /// The admin token, acting as the tenant `Herald-Tenant` named.
    Operator {
        slug: String,
    },
}

impl Credential {
    /// The tenant the credential stands for now, if any.
    async fn tenant(&self, state: &AppState) -> Result<Option<Tenant>, ApiError> {
        Ok(match self {
            Credential::ApiKey(key) => state.credentials.api_key_tenant(key).await?,
            Credential::Operator { slug } => state.credentials.tenant(slug).await?,
        })
    }
}

impl Publisher {
    /// Whether the credential still stands for the tenant: the key is not revoked, the
    /// tenant not removed. A request that lasts (the tail) asks when the tenant changed.
    pub async fn still_valid(&self, state: &AppState) -> Result<bool, ApiError> {
        let tenant = self.credential.tenant(state).await?;
        Ok(tenant.is_some_and(|tenant| tenant.id == self.tenant.id))
    }
}

/// The header that names the tenant the admin token acts as.
pub const HERALD_TENANT: &str = "Herald-Tenant";

impl Publisher {
    /// The publisher `request`'s bearer credential names, or why none.
    pub async fn of(request: &HttpRequest) -> Result<Publisher, ApiError> {
        let state = request
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::internal(&"application state missing"))?;
        let key = bearer_token(request)?;
        let credential = if key.starts_with(API_KEY_PREFIX) {
            Credential::ApiKey(key.to_owned())
        } else if state.admin_token.matches(key) {
            let Some(slug) = request.headers().get(HERALD_TENANT) else {
                return Err(AuthError::TenantUnnamed.into());
            };
            let slug = slug.to_str().unwrap_or_default().to_owned();
            Credential::Operator { slug }
        } else {
            return Err(AuthError::InvalidApiKey.into());
        };
        match (credential.tenant(state).await?, &credential) {
            (Some(tenant), _) => Ok(Publisher { tenant, credential }),
            (None, Credential::ApiKey(_)) => Err(AuthError::InvalidApiKey.into()),
            (None, Credential::Operator { slug }) => Err(ApiError::tenant_not_found(slug)),
        }
    }
}

impl FromRequest for Publisher {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Publisher, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { Publisher::of(&request).await })
    }
}
