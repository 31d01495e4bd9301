//! Who is calling: the operator (admin token) or a tenant's backend (API key).
//!
//! Both are actix extractors, so a handler that names `Operator` or `Publisher` among its
//! arguments cannot run for a caller without those credentials. Browser identities are
//! user JWTs (`jwt`), from the session cookie or an `Authorization: Bearer` header.

mod admin;
mod api_key;
mod browser;
pub mod cors;
pub mod jwt;

pub use admin::Operator;
pub use api_key::{HERALD_TENANT, Publisher};
pub use browser::browser_user;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("send credentials as Authorization: Bearer <token>")]
    MissingCredentials,
    #[error("the admin token is not valid")]
    InvalidAdminToken,
    #[error("the API key is unknown or revoked")]
    InvalidApiKey,
    #[error("the admin token acts on a tenant's API only with `Herald-Tenant: <slug>`")]
    TenantUnnamed,
    /// A user token that does not verify; the reason is safe to show.
    #[error("the user token is not valid: {0}")]
    InvalidToken(&'static str),
    #[error("the user token does not allow topic `{0}`")]
    TopicNotAllowed(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let code = match error {
            AuthError::MissingCredentials | AuthError::TenantUnnamed => {
                ErrorCode::MissingCredentials
            }
            AuthError::InvalidAdminToken => ErrorCode::InvalidAdminToken,
            AuthError::InvalidApiKey => ErrorCode::InvalidApiKey,
            AuthError::InvalidToken(_) => ErrorCode::InvalidToken,
            AuthError::TopicNotAllowed(_) => ErrorCode::TopicNotAllowed,
        };
        ApiError::new(code, error.to_string())
    }
}

/// The user token of a browser's request to `/t/{slug}/…`: its `Authorization: Bearer …`,
/// or else the session cookie. A browser sends the cookie with any request to Herald, an
/// `<img>` or a link of another site's page included; only a request the page's script
/// made (`Sec-Fetch-Mode: cors`: its EventSource, its fetch) may use it. Clients that send
/// no Sec-Fetch-Mode are not browsers that do, and non-browser clients use Bearer.
pub fn browser_token<'a>(
    authorization: Option<&'a str>,
    session_cookie: Option<&'a str>,
    fetch_mode: Option<&str>,
) -> Result<&'a str, crate::error::ApiError> {
    if let Ok(token) = bearer_of(authorization) {
        return Ok(token);
    }
    let cookie = session_cookie.ok_or(AuthError::MissingCredentials)?;
    if fetch_mode.is_some_and(|mode| mode != "cors") {
        return Err(crate::error::ApiError::new(
            crate::error::ErrorCode::OriginNotAllowed,
            "the session cookie is taken only from the page's own script (EventSource, fetch)",
        ));
    }
    Ok(cookie)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(request: &HttpRequest) -> Result<&str, AuthError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    bearer_of(header)
}

/// The token of an `Authorization` header's value, `Bearer <token>`.
pub fn bearer_of(header: Option<&str>) -> Result<&str, AuthError> {
    let (scheme, token) = header
        .ok_or(AuthError::MissingCredentials)?
        .split_once(' ')
        .ok_or(AuthError::MissingCredentials)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MissingCredentials);
    }
    Ok(token.trim())
}
