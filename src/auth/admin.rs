//! The operator's admin token.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{AuthError, bearer_token};
use crate::error::ApiError;
use crate::state::AppState;

/// Proof that the request carries the admin token.
pub struct Operator;

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Operator, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
    }
}

fn authenticate(request: &HttpRequest) -> Result<Operator, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(&"application state missing"))?;
    let token = bearer_token(request)?;
    if state.admin_token.matches(token) {
        Ok(Operator)
    } else {
        Err(AuthError::InvalidAdminToken.into())
    }
}
