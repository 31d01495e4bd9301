//! Who a browser's request to `/t/{slug}/…` is for: the user of its token (the session
//! cookie or `Authorization: Bearer`), verified against the tenant the path names.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use super::cors::request_tenant;
use super::{browser_token, jwt};
use crate::domain::names::UserId;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_path::request::SESSION_COOKIE;

/// The tenant and the user a browser request is for.
pub async fn browser_user(
    state: &AppState,
    request: &HttpRequest,
    slug: &str,
) -> Result<(Tenant, UserId), ApiError> {
    let tenant = request_tenant(request, state, slug).await?;
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let cookie = request.cookie(SESSION_COOKIE);
    let token = browser_token(
        text(AUTHORIZATION.as_str()),
        cookie.as_ref().map(|cookie| cookie.value()),
        text("sec-fetch-mode"),
    )?;
    let identity = jwt::verify(&state.credentials, &tenant, token, &state.settings.jwt).await?;
    Ok((tenant, identity.user))
}
