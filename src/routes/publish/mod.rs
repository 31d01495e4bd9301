//! `POST /v1/events`: a tenant backend publishes one event or a batch.

mod body;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Publisher;
use crate::domain::ValidationError;
use crate::domain::event::Receipt;
use crate::domain::log::LoggedEvent;
use crate::domain::names::{IdempotencyKey, IdempotencyKeyText};
use crate::error::{ApiError, ErrorBody};
use crate::routes::json;
use crate::state::AppState;
use crate::store::log::{AppendOutcome, IdempotencyClaim};

pub use body::{Batch, BroadcastFlag, EventIn, PublishBody, To};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One receipt per recipient stream, in order.
#[derive(Serialize, ToSchema)]
pub struct PublishAnswer {
    pub events: Vec<Receipt>,
}

/// Answers 201 only after the events are committed: an acknowledged event is durable.
#[utoipa::path(post, path = "/v1/events", tag = "tenant backend",
    request_body = PublishBody,
    params(("Idempotency-Key" = Option<IdempotencyKeyText>, Header, description = "retry safely for 24 h")),
    responses(
        (status = 201, body = PublishAnswer, headers(
            ("Idempotent-Replayed" = String, description = "true when this is the first answer again"),
        )),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 409, description = "same Idempotency-Key in flight", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn publish(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json::json_object(&request, payload, &state.settings.server).await?;
    append(&publisher, &state, &request, &body).await
}

async fn append(
    publisher: &Publisher,
    state: &AppState,
    request: &HttpRequest,
    body: &Value,
) -> Result<HttpResponse, ApiError> {
    let events = PublishBody::parse(body, &state.settings.limits)?;
    let claim = idempotency_claim(request, body)?;
    let outcome = state.log.append(publisher.tenant.id, events, claim).await?;
    match outcome {
        AppendOutcome::Committed(events) => {
            let events = events.iter().map(LoggedEvent::receipt).collect();
            Ok(HttpResponse::Created().json(PublishAnswer { events }))
        }
        AppendOutcome::Replayed(receipts) => Ok(HttpResponse::Created()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(PublishAnswer { events: receipts })),
        AppendOutcome::Rejected(rejection) => Err(rejection.into()),
    }
}

/// The request's `Idempotency-Key` with a digest of its body. The digest is taken over the
/// parsed JSON written back compactly with sorted keys, so two bodies that differ only in
/// spacing or key order count as the same body.
fn idempotency_claim(
    request: &HttpRequest,
    body: &Value,
) -> Result<Option<IdempotencyClaim>, ValidationError> {
    let Some(header) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = IdempotencyKey::parse(header.to_str().unwrap_or_default())?;
    let request_hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    Ok(Some(IdempotencyClaim { key, request_hash }))
}
