//! The notification inbox: `GET /t/{slug}/inbox`, `POST /t/{slug}/inbox/read|unread` for
//! the signed-in user (cookie or Bearer user token, CORS as the stream), and the same under
//! `/v1/inbox?user=U` for the tenant's backend (API key). Read state and the count are
//! `store::inbox`'s.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::history::{cursor_seq, page_limit};
use super::json::json;
use crate::auth::{AuthError, Publisher, browser_user};
use crate::domain::event::{EventId, EventIdText};
use crate::domain::names::UserId;
use crate::domain::tenant::Tenant;
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody};
use crate::metrics;
use crate::state::AppState;
use crate::store::inbox::{InboxPage, Marking};

const DEFAULT_LIMIT: u64 = 50;
/// The most ids one read or unread request names.
pub const MAX_IDS: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// An item's id: the page holds older items only.
    #[param(value_type = Option<EventIdText>)]
    before: Option<String>,
    /// Items per page; default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Only unread items.
    unread: Option<bool>,
}

/// The backend's inbox query: whose inbox, and the page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackendInboxQuery {
    /// Whose inbox.
    #[param(value_type = UserId)]
    user: String,
    #[param(value_type = Option<EventIdText>)]
    before: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    unread: Option<bool>,
}

/// The backend's read and unread requests: whose inbox.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Whose inbox.
    #[param(value_type = UserId)]
    user: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxItemOut {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// The published value, exactly as stored: any JSON value.
    #[schema(value_type = Value)]
    data: Box<RawValue>,
    #[schema(format = DateTime)]
    created_at: String,
    read: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxPageOut {
    /// Newest first.
    items: Vec<InboxItemOut>,
    /// The user's unread items, all of them (not only this page's).
    unread: i64,
    /// The `before` for the next page; null on the last page.
    next: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnreadOut {
    unread: i64,
}

/// `{"ids": [...]}` to mark those items, or (read only) `{"all": true}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkBody {
    /// Item ids (at most 1,000); ids that are not this user's inbox items are ignored.
    #[schema(value_type = Option<Vec<EventIdText>>, max_items = 1000)]
    ids: Option<Vec<String>>,
    /// With `true`: every item up to now (read only).
    all: Option<bool>,
}

#[utoipa::path(get, path = "/t/{slug}/inbox", tag = "browser",
    params(("slug" = String, Path), InboxQuery),
    responses(
        (status = 200, body = InboxPageOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an origin not in allowed_origins, or the session cookie on a request that is not the page's script's (`Sec-Fetch-Mode` other than `cors`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, description = "`before` names a position the log no longer holds: read again without it", body = ErrorBody),
    ),
    security(("user_token" = [])))]
pub async fn browser_list(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = browser_user(&state, &request, &slug).await?;
    let query: InboxQuery = crate::query::parse(request.query_string())?;
    list(&state, &tenant, &user, query).await
}

#[utoipa::path(get, path = "/v1/inbox", tag = "tenant backend",
    params(BackendInboxQuery),
    responses(
        (status = 200, body = InboxPageOut),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 410, description = "`before` names a position the log no longer holds: read again without it", body = ErrorBody),
        (status = 422, description = "an invalid user id", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn backend_list(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: BackendInboxQuery = crate::query::parse(request.query_string())?;
    let user = UserId::parse(query.user.as_str())?;
    let page = InboxQuery {
        before: query.before,
        limit: query.limit,
        unread: query.unread,
    };
    list(&state, &publisher.tenant, &user, page).await
}

async fn list(
    state: &AppState,
    tenant: &Tenant,
    user: &UserId,
    query: InboxQuery,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit, DEFAULT_LIMIT)?;
    let position = state.log_position(tenant).await?;
    let before_seq = match &query.before {
        None => i64::MAX,
        // Any item older than `before` is still here to list when `before` is.
        Some(before) => cursor_seq(&position, before)?,
    };
    let page = state
        .store
        .inbox_page(
            tenant.id,
            &position.epoch,
            user,
            before_seq,
            limit,
            query.unread.unwrap_or(false),
        )
        .await?;
    metrics::INBOX_LISTED.fetch_add(1, Ordering::Relaxed);
    Ok(HttpResponse::Ok().json(page_out(page)?))
}

fn page_out(page: InboxPage) -> Result<InboxPageOut, ApiError> {
    let items = page
        .items
        .into_iter()
        .map(|item| {
            Ok(InboxItemOut {
                id: item.id.to_string(),
                event_type: item.event_type,
                data: RawValue::from_string(item.data).map_err(|e| ApiError::internal(&e))?,
                created_at: format_ms(item.created_at),
                read: item.read,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(InboxPageOut {
        items,
        unread: page.unread.count,
        next: page.next.map(|id| id.to_string()),
    })
}

/// Read or unread: the request's `ids` (or `all`, for read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Read,
    Unread,
}

macro_rules! mark_routes {
    ($browser:ident, $backend:ident, $mark:expr, $browser_path:literal, $backend_path:literal, $what:literal) => {
        #[utoipa::path(post, path = $browser_path, tag = "browser",
            params(("slug" = String, Path)),
            request_body = MarkBody,
            responses(
                (status = 200, description = $what, body = UnreadOut),
                (status = 401, body = ErrorBody),
                (status = 403, description = "an origin not in allowed_origins, or the session cookie on a request that is not the page's script's", body = ErrorBody),
                (status = 404, body = ErrorBody),
                (status = 422, description = "neither `ids` nor `all`, more than 1,000 ids, or an id that is not an event id", body = ErrorBody),
            ),
            security(("user_token" = [])))]
        pub async fn $browser(
            state: web::Data<AppState>,
            request: HttpRequest,
            slug: web::Path<String>,
            payload: web::Payload,
        ) -> Result<HttpResponse, ApiError> {
            let (tenant, user) = browser_user(&state, &request, &slug).await?;
            let body: MarkBody = json(&request, payload, &state.settings.server).await?;
            mark(&state, &tenant, &user, $mark, body).await
        }

        #[utoipa::path(post, path = $backend_path, tag = "tenant backend",
            params(UserQuery),
            request_body = MarkBody,
            responses(
                (status = 200, description = $what, body = UnreadOut),
                (status = 400, body = ErrorBody),
                (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
                (status = 422, description = "an invalid user id; neither `ids` nor `all`, more than 1,000 ids, or an id that is not an event id", body = ErrorBody),
            ),
            security(("api_key" = [])))]
        pub async fn $backend(
            publisher: Publisher,
            state: web::Data<AppState>,
            request: HttpRequest,
            payload: web::Payload,
        ) -> Result<HttpResponse, ApiError> {
            let query: UserQuery = crate::query::parse(request.query_string())?;
            let user = UserId::parse(query.user.as_str())?;
            let body: MarkBody = json(&request, payload, &state.settings.server).await?;
            mark(&state, &publisher.tenant, &user, $mark, body).await
        }
    };
}

mark_routes!(
    browser_read,
    backend_read,
    Mark::Read,
    "/t/{slug}/inbox/read",
    "/v1/inbox/read",
    "the items are read; the user's unread count after"
);
mark_routes!(
    browser_unread,
    backend_unread,
    Mark::Unread,
    "/t/{slug}/inbox/unread",
    "/v1/inbox/unread",
    "the items are unread; the user's unread count after"
);

async fn mark(
    state: &AppState,
    tenant: &Tenant,
    user: &UserId,
    mark: Mark,
    body: MarkBody,
) -> Result<HttpResponse, ApiError> {
    let invalid = |message: String| ApiError::from(ValidationError::new(Invalid::Inbox, message));
    let marking = match (body.ids, body.all, mark) {
        (None, Some(true), Mark::Read) => Marking::AllRead,
        (Some(ids), None, _) => {
            if ids.len() > MAX_IDS {
                return Err(invalid(format!(
                    "at most {MAX_IDS} ids per request, this one has {}",
                    ids.len()
                )));
            }
            let position = state
                .store
                .log_position(tenant.id)
                .await?
                .ok_or(AuthError::InvalidApiKey)?;
            let mut seqs = Vec::with_capacity(ids.len());
            for (index, id) in ids.iter().enumerate() {
                let id: EventId = id
                    .parse()
                    .map_err(|()| invalid(format!("`ids[{index}]` is not an event id")))?;
                // An id of another epoch names no item of this log.
                if id.epoch == position.epoch {
                    seqs.push(id.seq);
                }
            }
            match mark {
                Mark::Read => Marking::Read(seqs),
                Mark::Unread => Marking::Unread(seqs),
            }
        }
        (_, _, Mark::Read) => {
            return Err(invalid(
                "send `{\"ids\": [...]}` or `{\"all\": true}`".to_owned(),
            ));
        }
        (_, _, Mark::Unread) => return Err(invalid("send `{\"ids\": [...]}`".to_owned())),
    };
    let unread = state.store.inbox_mark(tenant.id, user, marking).await?;
    metrics::INBOX_MARKED.fetch_add(1, Ordering::Relaxed);
    state.inbox_changed(tenant.id, user, unread);
    Ok(HttpResponse::Ok().json(UnreadOut {
        unread: unread.count,
    }))
}
