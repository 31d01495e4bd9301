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
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .configure(admin::configure)
        .service(
            // The browser's routes: the only ones with CORS, decided per tenant.
            web::scope("/t/{slug}")
                .wrap(actix_web::middleware::from_fn(
                    crate::auth::cors::tenant_cors,
                ))
                .route("/session", web::post().to(session::open))
                .route("/session", web::delete().to(session::close))
                .route("/stream", web::get().to(stream::stream)),
        )
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::resource("/v1/events")
                .route(web::post().to(publish::publish))
                .route(web::get().to(history::history)),
        );
}

/// Unknown paths and methods answer in the same JSON shape as every other error.
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
