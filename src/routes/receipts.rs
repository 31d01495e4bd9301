//! Receipts and fallbacks: `POST /t/{slug}/receipts` (a page tells what it got and what was
//! seen; cookie or Bearer user token, CORS as the stream), `GET /v1/receipts` (the tenant's
//! backend asks what happened to events with a user) and `DELETE /v1/events/{id}/fallback`
//! (it cancels what is pending of a publish's fallback). The facts are `store::receipts`'.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::json;
use crate::auth::{Publisher, browser_user};
use crate::domain::event::{EventId, EventIdText};
use crate::domain::names::UserId;
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::store::receipts::{Receipt, ReceiptRequest};

/// The most `seen` ids one browser receipt names.
pub const MAX_SEEN: usize = 1000;
/// The most ids one `GET /v1/receipts` asks about.
pub const MAX_ASKED: usize = 100;

/// What a page tells: every event of its user's stream up to `delivered` reached it, and
/// the events `seen` were seen. Ids that are not the user's events are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// An event id: it and every earlier event of the user's stream were delivered. Text
    /// that is no event id of the user's is ignored.
    delivered: Option<String>,
    /// Event ids handed to a listener of a visible page, or named by the app (≤ 1,000);
    /// text that is no event id of the user's is ignored.
    #[schema(max_items = 1000)]
    seen: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/t/{slug}/receipts", tag = "browser",
    params(("slug" = String, Path)),
    request_body = ReceiptBody,
    responses(
        (status = 204, description = "recorded (ids that are not the user's events change nothing)"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an origin not in allowed_origins, or the session cookie on a request that is not the page's script's", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "not of this shape, or more than 1,000 `seen` ids", body = ErrorBody),
        (status = 503, description = "the storage cannot record it now", body = ErrorBody),
    ),
    security(("user_token" = [])))]
pub async fn record_receipts(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = browser_user(&state, &request, &slug).await?;
    let body: ReceiptBody = json(&request, payload, &state.settings.server).await?;
    let seen = body.seen.unwrap_or_default();
    if seen.len() > MAX_SEEN {
        return Err(ValidationError::new(
            Invalid::Receipts,
            format!(
                "`seen` holds at most {MAX_SEEN} ids, this one has {}",
                seen.len()
            ),
        )
        .into());
    }
    // An id that does not parse names no event of the user's: it is ignored like one of
    // another user's.
    let delivered = body.delivered.and_then(|id| id.parse::<EventId>().ok());
    let seen: Vec<EventId> = seen.iter().filter_map(|id| id.parse().ok()).collect();
    if delivered.is_some() || !seen.is_empty() {
        state
            .receipts
            .record(ReceiptRequest {
                tenant_id: tenant.id,
                user,
                delivered,
                seen,
            })
            .await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsQuery {
    /// Whose receipts.
    #[param(value_type = UserId)]
    user: String,
    /// Event ids, comma-separated (1–100).
    #[param(
        pattern = "^[A-Za-z0-9]{1,32}-[0-9]{1,18}(,[A-Za-z0-9]{1,32}-[0-9]{1,18}){0,99}$",
        example = "01jd5x2k7q3m9v8n4b6c1a0z2y-42,01jd5x2k7q3m9v8n4b6c1a0z2y-43"
    )]
    ids: String,
}

/// A fallback's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct FallbackOut {
    /// `pending`, `fired` (`notification.unseen` was written), `skipped` (the fact had
    /// happened) or `cancelled`.
    #[schema(pattern = "^(pending|fired|skipped|cancelled)$")]
    status: String,
    #[schema(pattern = "^(delivered|seen|read)$")]
    unless: String,
    after_secs: i64,
    /// When it falls due (pending) or was decided.
    #[schema(format = DateTime)]
    at: Option<String>,
}

/// What Herald knows of one event with the user; null where it has not happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptOut {
    id: String,
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
    #[schema(format = DateTime)]
    seen_at: Option<String>,
    #[schema(format = DateTime)]
    read_at: Option<String>,
    /// The event's fallback for the user, if it was published with one.
    fallback: Option<FallbackOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptList {
    /// In the order asked.
    receipts: Vec<ReceiptOut>,
}

fn receipt_out(id: String, receipt: Receipt) -> ReceiptOut {
    let facts = receipt.facts;
    ReceiptOut {
        id,
        delivered_at: facts.delivered_at.map(format_ms),
        seen_at: facts.seen_at.map(format_ms),
        read_at: facts.read_at.map(format_ms),
        fallback: receipt.fallback.map(|f| FallbackOut {
            status: f.outcome.unwrap_or_else(|| "pending".to_owned()),
            unless: f.unless.as_str().to_owned(),
            after_secs: f.after_secs,
            at: f.due_at.or(f.settled_at).map(format_ms),
        }),
    }
}

#[utoipa::path(get, path = "/v1/receipts", tag = "tenant backend",
    params(ReceiptsQuery),
    responses(
        (status = 200, body = ReceiptList),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 422, description = "an invalid user id; no ids, more than 100, or one that is not an event id", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_receipts(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: ReceiptsQuery = crate::query::parse(request.query_string())?;
    let user = UserId::parse(query.user.as_str())?;
    let invalid =
        |message: String| ApiError::from(ValidationError::new(Invalid::Receipts, message));
    let texts: Vec<&str> = query.ids.split(',').collect();
    if texts.len() > MAX_ASKED {
        return Err(invalid(format!(
            "`ids` holds at most {MAX_ASKED} ids, this one has {}",
            texts.len()
        )));
    }
    let mut ids = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let id: EventId = text
            .parse()
            .map_err(|()| invalid(format!("`ids[{index}]` is not an event id")))?;
        ids.push(id);
    }
    let tenant = &publisher.tenant;
    let position = state.log_position(tenant).await?;
    let receipts = state
        .store
        .receipts(tenant.id, &position.epoch, user.as_str(), &ids)
        .await?;
    let receipts = texts
        .iter()
        .zip(receipts)
        .map(|(text, receipt)| receipt_out((*text).to_owned(), receipt))
        .collect();
    Ok(HttpResponse::Ok().json(ReceiptList { receipts }))
}

#[utoipa::path(delete, path = "/v1/events/{id}/fallback", tag = "tenant backend",
    params(("id" = EventIdText, Path, description = "any event of the publish")),
    responses(
        (status = 204, description = "nothing of the publish's fallback is pending any more"),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such event in the tenant's log", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn cancel_fallback(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(ErrorCode::EventNotFound, "no such event");
    let id: EventId = id.parse().map_err(|()| not_found())?;
    let tenant = &publisher.tenant;
    let position = state.log_position(tenant).await?;
    if id.epoch != position.epoch {
        return Err(not_found());
    }
    match state.store.cancel_fallback(tenant.id, id.seq).await? {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(not_found()),
    }
}
