//! `POST /v1/events`: a tenant backend publishes one event or a batch.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Publisher;
use crate::domain::event::{Receipt, parse_publish};
use crate::domain::{Invalid, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::log::{AppendOutcome, IdempotencyClaim, LoggedEvent};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Where an event goes: exactly one of these forms.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum To {
    User { user: String },
    Users { users: Vec<String> },
    Topic { topic: String },
    Broadcast { broadcast: bool },
}

/// One event to publish.
#[derive(Serialize, ToSchema)]
pub struct EventIn {
    pub to: To,
    /// The SSE event name, `[A-Za-z0-9_.:-]{1,64}`; default `message`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Any JSON value; a string goes on the wire as its text.
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Value>,
}

/// One event, or a batch of at most 1000.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PublishBody {
    Single(EventIn),
    Batch { events: Vec<EventIn> },
}

/// One receipt per recipient stream, in order.
#[derive(Serialize, ToSchema)]
pub struct PublishAnswer {
    pub events: Vec<Receipt>,
}

/// Answers 201 only after the events are committed: an acknowledged event is durable.
#[utoipa::path(post, path = "/v1/events", tag = "tenant backend", request_body = PublishBody, params(("Idempotency-Key" = Option<String>, Header, description = "retry safely for 24 h")), responses((status = 201, body = PublishAnswer, headers(("Idempotent-Replayed" = String, description = "true when this is the first answer again"))), (status = 400, body = ErrorBody), (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody), (status = 409, description = "same Idempotency-Key in flight", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])))]
pub async fn publish(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    // The body is read only once the API key checks out: a stranger learns nothing from
    // how a body is judged.
    let body = web::Json::<Value>::from_request(&request, &mut payload.into_inner()).await?;
    Ok(append(&publisher, &state, &request, &body).await?)
}

async fn append(
    publisher: &Publisher,
    state: &AppState,
    request: &HttpRequest,
    body: &Value,
) -> Result<HttpResponse, ApiError> {
    let events = parse_publish(body, &state.settings.limits)?;
    let claim = idempotency_claim(request, body)?;
    let outcome = state.log.append(publisher.tenant.id, events, claim).await?;
    match outcome {
        AppendOutcome::Committed(events) => {
            let receipts: Vec<Receipt> = events.iter().map(LoggedEvent::receipt).collect();
            Ok(HttpResponse::Created().json(json!({ "events": receipts })))
        }
        AppendOutcome::Replayed(receipts) => Ok(HttpResponse::Created()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(json!({ "events": receipts }))),
        AppendOutcome::KeyReused => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different body",
        )),
        AppendOutcome::InFlight => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_flight",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )),
        AppendOutcome::TenantGone => Err(crate::auth::AuthError::InvalidApiKey.into()),
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
    let key = header
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ValidationError::new(
                Invalid::IdempotencyKey,
                "Idempotency-Key is 1 to 255 visible ASCII characters",
            )
        })?;
    let request_hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    Ok(Some(IdempotencyClaim {
        key: key.to_owned(),
        request_hash,
    }))
}
