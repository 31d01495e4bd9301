//! HTTP handlers only: each one turns a request into calls on the store and the log, and
//! their results into a response. Rules live in `crate::domain`, credentials in
//! `crate::auth`, and error-to-status mapping in `crate::error`.

pub mod admin;
mod health;
pub(crate) mod history;
pub mod openapi;
pub mod publish;
mod session;
pub(crate) mod stream;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .configure(health::configure)
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_json)))
        .configure(admin::configure)
        .service(
            // The browser's routes: the only ones with CORS, decided per tenant.
            web::scope("/t/{slug}")
                .wrap(actix_web::middleware::from_fn(
                    crate::auth::cors::tenant_cors,
                ))
                .service(
                    resource("/session", "POST, DELETE")
                        .route(web::post().to(session::open))
                        .route(web::delete().to(session::close)),
                )
                .service(resource("/stream", "GET").route(web::get().to(stream::stream))),
        )
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            resource("/v1/events", "GET, POST")
                .route(web::post().to(publish::publish))
                .route(web::get().to(history::history)),
        );
}

/// A path and the methods it answers (`allow`, as the `Allow` header lists them); any other
/// method gets `405 method_not_allowed`.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this path answers {allow}"),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

/// Unknown paths answer in the same JSON shape as every other error.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}

/// A JSON body that may be left out entirely (an empty body means `None`). Anything sent
/// must be well-formed JSON of the right shape: a broken body is an error, never ignored.
pub fn optional_json<T: DeserializeOwned>(
    request: &HttpRequest,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if request.content_type() != "application/json" {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| crate::error::json_error(actix_web::error::JsonPayloadError::Deserialize(e)))
}
