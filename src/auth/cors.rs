//! Per-tenant CORS on `/t/{slug}/…`: the only routes a browser calls from another origin.
//!
//! A request with an `Origin` that is in the tenant's `allowed_origins` gets that origin
//! echoed back with `Access-Control-Allow-Credentials: true` — never `*`, which browsers
//! refuse with credentials anyway. Any other origin gets a 403 and no CORS headers at all,
//! so the browser reports a CORS failure and the page learns nothing. Preflights are
//! answered here, before routing. A request without `Origin` is not a cross-origin browser
//! request and passes untouched. (actix-cors decides from a fixed or synchronous list and
//! answers refusals its own way; the allow-list here lives in the tenant's record.)

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};

use crate::domain::tenant::Tenant;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const ALLOWED_METHODS: &str = "GET, POST, DELETE";
const ALLOWED_HEADERS: &str = "Authorization, Last-Event-ID, Content-Type";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

pub async fn tenant_cors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let tenant = match find_tenant(&request).await {
        Ok(tenant) => tenant,
        Err(error) => return Ok(request.into_response(error.error_response())),
    };
    let allowed = origin.to_str().is_ok_and(|origin| {
        tenant
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
    });
    if !allowed {
        let refusal = ApiError::new(
            ErrorCode::OriginNotAllowed,
            "this origin is not in the tenant's allowed_origins",
        );
        return Ok(request.into_response(refusal.error_response()));
    }
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
            .finish();
        request.into_response(answer)
    } else {
        next.call(request).await?.map_into_boxed_body()
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}

async fn find_tenant(request: &ServiceRequest) -> Result<Tenant, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(&"application state missing"))?;
    state
        .tenant(request.match_info().get("slug").unwrap_or_default())
        .await
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
    state.tenant(slug).await
}
