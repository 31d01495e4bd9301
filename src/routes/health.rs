//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::startup::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "running")))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "the database answers"), (status = 503, description = "the database does not answer")))]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready", "database": "ok" })),
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": "unreachable" }))
        }
    }
}

/// Prometheus metrics, read from the live counters at scrape time.
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::metrics::render(&state);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
