//! Liveness and readiness probes, and the Prometheus scrape.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::resource;
use crate::state::AppState;
use crate::store::Store;
use crate::store::fault::Fault;

/// How long `/readyz` waits for the database before calling it unreachable.
const READINESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/healthz", "GET").route(web::get().to(healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(readyz)));
}

/// `/healthz`: the process serves requests.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// `/readyz`: what this node depends on, and whether it answers.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (serving without Redis: events from other nodes arrive through
    /// the periodic catch-up, and rate limits are this node's share) or `unavailable`.
    pub status: &'static str,
    /// `ok`; `unavailable` (it does not answer, or fails to read or write its files);
    /// `full` (the event log's last commit found no space left, and there is still none).
    pub database: &'static str,
    /// With several nodes only: `ok` or `unreachable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
    /// With several nodes only: `shared` (the deployment's buckets in Redis) or
    /// `node share` (this node's share of each limit, while Redis does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<&'static str>,
}

/// 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "running", body = Liveness)))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// 200 when the database answers and takes writes — `degraded` if, with several nodes,
/// Redis does not (the node still serves, so publishing never stops because Redis blinked)
/// — and 503 when the database does not answer, or the event log's last commit failed for
/// a fault of the storage that a test write (`Store::probe`) still finds.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "the database answers and takes writes; `status` says whether Redis does too", body = Readiness),
        (status = 503, description = "the database does not answer, or its storage is full or failing (`database` says which)", body = Readiness),
    ))]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = database_readiness(&state.store).await;
    let connected = state.broker.connected();
    let redis = connected.map(|connected| match connected {
        true => "ok",
        false => "unreachable",
    });
    let rate_limits = connected.map(|_| match state.budget.degraded() {
        false => "shared",
        true => "node share",
    });
    let whole = redis.is_none_or(|redis| redis == "ok") && rate_limits != Some("node share");
    let answer = Readiness {
        status: match (database, whole) {
            ("ok", true) => "ready",
            ("ok", false) => "degraded",
            _ => "unavailable",
        },
        database,
        redis,
        rate_limits,
    };
    if database == "ok" {
        HttpResponse::Ok().json(answer)
    } else {
        HttpResponse::ServiceUnavailable().json(answer)
    }
}

/// `ok`, `unavailable` or `full`. A probe must answer quickly even when the pool waits for
/// a database that is gone, or the writer for a lock another process holds.
async fn database_readiness(store: &Store) -> &'static str {
    let answered = tokio::time::timeout(READINESS_WAIT, async {
        store.ping().await?;
        match store.health().current() {
            None => Ok(()),
            Some(_) => store.probe().await,
        }
    })
    .await;
    match answered {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the storage is not ready");
            error.fault().unwrap_or(Fault::Unavailable).as_str()
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within {READINESS_WAIT:?}");
            Fault::Unavailable.as_str()
        }
    }
}

/// Prometheus metrics, read from the live counters at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "the Prometheus text format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::metrics::render(&state);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
