//! `GET /v1/events`: what a user's stream would replay, for a tenant backend — oldest first
//! from a position, or (`order=newest`) its latest events paged back.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::AuthError;
use crate::auth::Publisher;
use crate::domain::event::EventId;
use crate::domain::event::EventIdText;
use crate::domain::log::{LogPosition, Unresumable};
use crate::domain::names::{TopicList, TopicListQuery, UserId};
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::store::cut_page;
use crate::store::log::{SeqRange, StreamSelector};

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Whose stream.
    #[param(value_type = UserId)]
    user: String,
    /// An event id: the page starts after it (oldest first only).
    #[param(value_type = Option<EventIdText>)]
    after: Option<String>,
    /// An event id: the page starts before it (`order=newest` only).
    #[param(value_type = Option<EventIdText>)]
    before: Option<String>,
    /// `oldest` (the default: from the start, or after `after`) or `newest` (from the
    /// log's head, or before `before`, going back).
    order: Option<Order>,
    /// Events per page; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Topics whose events the stream would carry besides the user's and broadcasts:
    /// at most 64 names separated by `,`.
    #[param(value_type = Option<TopicListQuery>)]
    topics: Option<String>,
}

/// The order of a history page: from the oldest (the stream's replay order) or the newest.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Oldest,
    Newest,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    id: String,
    #[schema(value_type = crate::routes::publish::To)]
    to: serde_json::Value,
    #[serde(rename = "type")]
    event_type: String,
    /// The published value, exactly as stored: any JSON value.
    #[schema(value_type = Value)]
    data: Box<RawValue>,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// The `after` (or with `order=newest`, the `before`) for the next page; null on the
    /// last page.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "tenant backend",
    params(HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, description = "`invalid_query` (a query of another shape, or `after` with `order=newest`, or `before` without it) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 410, description = "`after` names a position the log no longer holds (another epoch, pruned, or beyond its end): read again without it", body = ErrorBody),
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
    let limit = page_limit(query.limit, DEFAULT_LIMIT)?;
    let position = state
        .store
        .log_position(tenant.id)
        .await?
        .ok_or(AuthError::InvalidApiKey)?;
    let range = match (query.order.unwrap_or_default(), &query.after, &query.before) {
        (Order::Oldest, None, None) => SeqRange::After(0),
        (Order::Oldest, Some(after), None) => SeqRange::After(cursor_seq(&position, after)?),
        (Order::Newest, None, None) => SeqRange::Before(position.next_seq),
        // The cursor names the last (oldest) event read; the next page is below it.
        (Order::Newest, None, Some(before)) => SeqRange::Before(cursor_seq(&position, before)?),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "`after` goes with the oldest-first order, `before` with `order=newest`",
            ));
        }
    };
    let selector = StreamSelector {
        user: Some(user),
        topics,
    };
    // One more than asked tells whether there is a next page.
    let mut events = state
        .store
        .read_stream(tenant.id, &position.epoch, &selector, range, limit + 1)
        .await?;
    let more = cut_page(&mut events, limit);
    let next = more
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
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

/// A page's `limit`: `default` when absent, else 1 to `MAX_LIMIT`.
pub(super) fn page_limit(limit: Option<u64>, default: u64) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(
            ValidationError::new(Invalid::Limit, format!("limit is 1 to {MAX_LIMIT}")).into(),
        );
    }
    Ok(limit)
}

/// The seq of a page cursor (an event id) the log still holds everything after.
pub(super) fn cursor_seq(position: &LogPosition, cursor: &str) -> Result<i64, ApiError> {
    let id: EventId = cursor.parse().map_err(|()| {
        ValidationError::new(Invalid::Cursor, format!("`{cursor}` is not an event id"))
    })?;
    position.resume_after(&id).map_err(cursor_refusal)
}

/// Why `after` cannot be read from: the log no longer holds what follows it, or never held
/// it (a cursor beyond the end: the log was restored from an older copy, say). Either way
/// the reader must start again without `after`, as a stream gets `reset`.
fn cursor_refusal(unresumable: Unresumable) -> ApiError {
    let why = match unresumable {
        Unresumable::UnknownEpoch | Unresumable::Expired => {
            "events after this id are no longer all kept (the log was reset or pruned)"
        }
        Unresumable::InTheFuture => "this id is beyond the end of the log",
    };
    ApiError::new(
        ErrorCode::CursorExpired,
        format!("{why}; read again without `after`"),
    )
}
