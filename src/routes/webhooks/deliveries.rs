//! An endpoint's messages: a test message sent on request, the deliveries log with every
//! attempt, and a message attempted again by hand.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::not_found;
use crate::auth::Publisher;
use crate::domain::format_ms;
use crate::domain::webhook::MessageType;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::history::page_limit;
use crate::state::AppState;
use crate::store::webhooks::{Delivery, NewMessage, Recipients};
use crate::traces;

const DEFAULT_DELIVERIES: u64 = 50;

#[derive(Serialize, ToSchema)]
pub struct TestMessage {
    pub message_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    #[schema(format = DateTime)]
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: Vec<AttemptOut>,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryOut>,
    /// `before` for the next (older) page; null on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// A message id: the page holds older messages only.
    before: Option<String>,
}

impl From<Delivery> for DeliveryOut {
    fn from(delivery: Delivery) -> DeliveryOut {
        DeliveryOut {
            message_id: delivery.message_id,
            kind: delivery.kind,
            status: delivery.status,
            attempts: delivery
                .attempts
                .into_iter()
                .map(|a| AttemptOut {
                    at: format_ms(a.at),
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
            next_attempt_at: delivery.next_attempt_at.map(format_ms),
        }
    }
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "tenant backend",
    params(
        ("id" = String, Path),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: sent on with the message (a malformed one is ignored)"),
    ),
    responses(
        (status = 202, body = TestMessage, description = "a `webhook.test` message is on its way"),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn send_test_message(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let message = NewMessage {
        data: serde_json::json!({"webhook_id": id.as_str()}),
        traceparent: traces::valid_traceparent(request.headers()),
    };
    let ids = state
        .store
        .enqueue_webhook(
            publisher.tenant.id,
            MessageType::Test,
            &[message],
            Recipients::Endpoint(&id),
        )
        .await?;
    let message_id = ids.into_iter().next().ok_or_else(|| not_found(&id))?;
    state.outbox.wake();
    Ok(HttpResponse::Accepted().json(TestMessage { message_id }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "tenant backend",
    params(("id" = String, Path), DeliveriesQuery),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
        (status = 422, description = "an invalid `limit`", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_deliveries(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: DeliveriesQuery = crate::query::parse(request.query_string())?;
    let limit = page_limit(query.limit, DEFAULT_DELIVERIES)?;
    let endpoint = state
        .store
        .webhook(publisher.tenant.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let (page, more) = state
        .store
        .webhook_deliveries(&endpoint.id, query.before.as_deref(), limit)
        .await?;
    let next = more
        .then(|| page.last().map(|d| d.message_id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryPage {
        deliveries: page.into_iter().map(DeliveryOut::from).collect(),
        next,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{message_id}/retry", tag = "tenant backend",
    params(("id" = String, Path), ("message_id" = String, Path)),
    responses(
        (status = 202, description = "attempted again now, whatever its state"),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant, or no such message of it", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn retry_delivery(
    publisher: Publisher,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, message_id) = path.into_inner();
    let endpoint = state
        .store
        .webhook(publisher.tenant.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if !state.store.retry_webhook(&endpoint.id, &message_id).await? {
        return Err(ApiError::new(
            ErrorCode::MessageNotFound,
            format!("webhook `{id}` has no message `{message_id}`"),
        ));
    }
    state.outbox.wake();
    Ok(HttpResponse::Accepted().finish())
}
