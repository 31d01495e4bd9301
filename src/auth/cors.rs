//! Per-tenant CORS on `/t/{slug}/…`: the only routes a browser calls from another origin.
//!
//! A request with an `Origin` that is in the tenant's `allowed_origins` gets that origin
//! echoed back with `Access-Control-Allow-Credentials: true` — never `*`, which browsers
//! refuse with credentials anyway. Any other origin gets a 403 and no CORS headers at all,
//! so the browser reports a CORS failure and the page learns nothing. A request without
//! `Origin` is not a cross-origin browser request and passes untouched. The decision
//! (`tenant_for_origin`) and the headers (`CORS_HEADERS`) serve both stream paths: the
//! actix-web middleware here, and Herald's own stream handler. (actix-cors decides from a
//! fixed or synchronous list and answers refusals its own way; the allow-list here lives in
//! the tenant's record.)
//!
//! Preflights are answered here, before routing, with `Connection: close`: a browser then
//! opens the `EventSource` that follows on a fresh connection, which Herald's own stream
//! handler takes.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};

use crate::domain::tenant::Tenant;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const ALLOWED_METHODS: &str = "GET, POST, DELETE";
const ALLOWED_HEADERS: &str = "Authorization, Last-Event-ID, Content-Type";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The headers an answer to an allowed origin carries, besides
/// `Access-Control-Allow-Origin` (the origin itself).
pub const CORS_HEADERS: [(&str, &str); 2] = [
    ("access-control-allow-credentials", "true"),
    ("vary", "Origin"),
];

/// The tenant of a `/t/{slug}/…` request, if `origin` (the request's `Origin`, when it has
/// one) may call it: `tenant_not_found`, or `origin_not_allowed` when it may not.
pub async fn tenant_for_origin(
    state: &AppState,
    slug: &str,
    origin: Option<&str>,
) -> Result<Tenant, ApiError> {
    let tenant = state.stream_tenant(slug).await?;
    match origin {
        Some(origin) if !tenant.allowed_origins.iter().any(|a| a == origin) => Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            "this origin is not in the tenant's allowed_origins",
        )),
        _ => Ok(tenant),
    }
}

pub async fn tenant_cors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    // An Origin that is not text matches no allowed origin.
    let origin_text = origin.to_str().unwrap_or("\u{fffd}");
    let slug = request.match_info().get("slug").unwrap_or_default();
    let tenant = match request.app_data::<web::Data<AppState>>() {
        Some(state) => tenant_for_origin(state, slug, Some(origin_text)).await,
        None => Err(ApiError::internal(&"application state missing")),
    };
    let tenant = match tenant {
        Ok(tenant) => tenant,
        Err(error) => return Ok(request.into_response(error.error_response())),
    };
    request.extensions_mut().insert(tenant);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let answer = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
            .force_close()
            .finish();
        request.into_response(answer)
    } else {
        next.call(request).await?.map_into_boxed_body()
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    for (name, value) in CORS_HEADERS {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(response)
}

/// The tenant of a `/t/{slug}/…` request: the one the CORS check found, or a lookup.
pub async fn request_tenant(
    request: &actix_web::HttpRequest,
    state: &AppState,
    slug: &str,
) -> Result<Tenant, ApiError> {
    if let Some(tenant) = request.extensions().get::<Tenant>() {
        return Ok(tenant.clone());
    }
    state.stream_tenant(slug).await
}
