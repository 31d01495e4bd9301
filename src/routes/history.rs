//! `GET /v1/events`: what a user's stream would replay, for a tenant backend.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::AuthError;
use crate::auth::Publisher;
use crate::domain::event::EventId;
use crate::domain::log::Unresumable;
use crate::domain::names::{TopicList, UserId};
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::store::log::StreamSelector;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    user: String,
    after: Option<String>,
    limit: Option<u64>,
    /// Comma-separated topic names.
    topics: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    id: String,
    #[schema(value_type = Object)]
    to: serde_json::Value,
    #[serde(rename = "type")]
    event_type: String,
    /// The published value, exactly as stored.
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// The `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "tenant backend",
    params(HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 410, description = "cursor from another epoch or older than retained", body = ErrorBody),
        (status = 422, description = "an invalid user id or topic", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn history(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Parsed only once the API key checks out, like the publish body.
    let query: HistoryQuery = crate::query::parse(request.query_string())?;
    let tenant = &publisher.tenant;
    let user = UserId::parse(query.user.as_str())?;
    let topics = TopicList::parse(query.topics.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(
            ValidationError::new(Invalid::Limit, format!("limit is 1 to {MAX_LIMIT}")).into(),
        );
    }
    let position = state
        .store
        .log_position(tenant.id)
        .await?
        .ok_or(AuthError::InvalidApiKey)?;
    let after_seq = match &query.after {
        None => 0,
        Some(after) => {
            let id: EventId = after.parse().map_err(|()| {
                ValidationError::new(Invalid::Cursor, format!("`{after}` is not an event id"))
            })?;
            position
                .resume_after(&id)
                .map_err(|unresumable| cursor_refusal(unresumable, after))?
        }
    };
    let selector = StreamSelector {
        user: Some(user),
        topics,
    };
    // One more than asked tells whether there is a next page.
    let mut events = state
        .store
        .read_after(tenant.id, &position.epoch, &selector, after_seq, limit + 1)
        .await?;
    let more = events.len() as u64 > limit;
    events.truncate(limit as usize);
    let next = if more {
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let events = events
        .into_iter()
        .map(|e| {
            Ok(HistoryEvent {
                id: e.id.to_string(),
                to: e.target.to_json(),
                event_type: e.event_type,
                data: RawValue::from_string(e.data).map_err(|e| ApiError::internal(&e))?,
                created_at: format_ms(e.created_at),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(HistoryPage { events, next }))
}

/// Why `after` cannot be read from: a cursor into what the log no longer holds is gone
/// (410), one beyond its end is wrong (400).
fn cursor_refusal(unresumable: Unresumable, after: &str) -> ApiError {
    match unresumable {
        Unresumable::UnknownEpoch | Unresumable::Expired => ApiError::new(
            ErrorCode::CursorExpired,
            "events after this id are no longer all kept (the log was reset or pruned); \
             read again without `after`",
        ),
        Unresumable::InTheFuture => ValidationError::new(
            Invalid::Cursor,
            format!("`{after}` is beyond the end of the log"),
        )
        .into(),
    }
}
