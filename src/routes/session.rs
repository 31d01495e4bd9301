//! `POST/DELETE /t/{slug}/session`: put a user token into an HttpOnly cookie for the
//! browser's EventSource, which cannot send headers.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::bearer_token;
use crate::auth::cors::request_tenant;
use crate::auth::jwt;
use crate::config::CookieSettings;
use crate::domain::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::stream_path::request::SESSION_COOKIE;

/// The `Set-Cookie` value: the cookie is scoped to the tenant's path, so two tenants'
/// sessions live side by side in one browser. (Written out here because the cookie crate
/// actix-web uses predates the `Partitioned` attribute.)
fn session_cookie(slug: &str, value: &str, max_age: i64, settings: &CookieSettings) -> String {
    let mut cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/t/{slug}; Max-Age={max_age}; HttpOnly; SameSite={}",
        settings.same_site.as_str()
    );
    if settings.secure {
        cookie.push_str("; Secure");
    }
    if settings.partitioned {
        cookie.push_str("; Partitioned");
    }
    cookie
}

/// Verifies the user token and answers with it as the session cookie, until it expires.
#[utoipa::path(post, path = "/t/{slug}/session", tag = "browser",
    params(("slug" = String, Path)),
    responses(
        (status = 204, description = "Set-Cookie: herald_session=…; HttpOnly; Secure; \
            SameSite=None; Partitioned; Path=/t/{slug}; Max-Age=<until exp>"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an origin not in allowed_origins", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("user_token" = [])))]
pub async fn open(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = request_tenant(&request, &state, &slug).await?;
    let token = bearer_token(&request)?;
    let identity = jwt::verify(&state.credentials, &tenant, token, &state.settings.jwt)
        .await
        .map_err(ApiError::from)?;
    let max_age = (identity.expires_at - now_ms() / 1000).max(0);
    let cookie = session_cookie(&tenant.slug, token, max_age, &state.settings.cookie);
    // `Connection: close`: the page's EventSource, which comes next, then opens a fresh
    // connection, which Herald's own stream handler takes.
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .force_close()
        .finish())
}

/// Clears the session cookie.
#[utoipa::path(delete, path = "/t/{slug}/session", tag = "browser",
    params(("slug" = String, Path)),
    responses(
        (status = 204, description = "the cookie cleared"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn close(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = request_tenant(&request, &state, &slug).await?;
    let cookie = session_cookie(&tenant.slug, "", 0, &state.settings.cookie);
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}
