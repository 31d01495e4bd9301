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
pub struct Publisher {
    pub tenant: Tenant,
}

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
            if !key.starts_with(API_KEY_PREFIX) {
                return Err(AuthError::InvalidApiKey.into());
            }
            match state.credentials.api_key_tenant(key).await? {
                Some(tenant) => Ok(Publisher { tenant }),
                None => Err(AuthError::InvalidApiKey.into()),
            }
        })
    }
}
