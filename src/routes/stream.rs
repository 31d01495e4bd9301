//! `GET /t/{slug}/stream`: a user's live event stream, resumable with `Last-Event-ID`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::cors::request_tenant;
use crate::auth::jwt::{self, UserIdentity};
use crate::auth::{AuthError, bearer_token};
use crate::domain::Invalid;
use crate::domain::event::{EventId, validate_name};
use crate::domain::tenant::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::hub::HubError;
use crate::hub::connection::{Connection, ConnectionParts, Start};
use crate::sse;
use crate::state::AppState;
use crate::store::log::{LogPosition, StreamSelector};

/// The cookie `POST /t/{slug}/session` sets.
pub const SESSION_COOKIE: &str = "herald_session";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated topics to stream; each must be allowed by the token's `topics`.
    topics: Option<String>,
    /// Where to resume when the `Last-Event-ID` header cannot be sent.
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// Opens the stream. Identity: `Authorization: Bearer <user JWT>`, else the session
/// cookie. Resume: `Last-Event-ID`, else `?lastEventId=`.
#[utoipa::path(get, path = "/t/{slug}/stream", tag = "browser",
    params(("slug" = String, Path), ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id"), StreamQuery),
    responses(
        (status = 200, description = "text/event-stream: `retry:`, then events (`id:`, `event:`, `data:`); Herald's own types are `reset` and `session-expired`", content_type = "text/event-stream"),
        (status = 401, description = "missing or invalid user token", body = ErrorBody),
        (status = 403, description = "a topic the token does not allow", body = ErrorBody),
        (status = 404, description = "no such tenant", body = ErrorBody),
        (status = 429, description = "too many open streams for this user or tenant", body = ErrorBody),
    ),
    security(("user_token" = [])))]
pub async fn stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = request_tenant(&request, &state, &slug).await?;
    let identity = authenticate(&state, &tenant, &request).await?;
    let query = web::Query::<StreamQuery>::from_query(request.query_string())
        .map_err(crate::error::query_error)?;
    let topics = requested_topics(query.topics.as_deref(), &identity)?;
    let resume_from = request
        .headers()
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.last_event_id.clone())
        .filter(|id| !id.is_empty());

    // Register first, read the log's position second: every event committed after the
    // registration reaches the queue, and everything before it is in the log.
    let subscription = state
        .hub
        .subscribe(tenant.id, &identity.user, topics.clone())
        .await
        .map_err(|error| match error {
            HubError::TooManyForUser | HubError::TooManyForTenant => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                error.to_string(),
            ),
            HubError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "Herald is shutting down; reconnect shortly",
            ),
        })?;
    let position = state
        .store
        .log_position(tenant.id)
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(&slug))?;
    let settings = &state.settings.stream;
    let start = starting_point(resume_from.as_deref(), &position, settings.retry_ms);
    let connection = Connection::new(
        ConnectionParts {
            store: state.store.clone(),
            tenant_id: tenant.id,
            epoch: position.epoch.clone(),
            selector: StreamSelector {
                user: Some(identity.user.clone()),
                topics,
            },
            replay_page: settings.replay_page,
            subscription,
            keepalive_every: Duration::from_secs_f64(settings.keepalive_secs),
            expires_at: identity.expires_at,
            shutdown: state.shutdown.clone(),
        },
        start,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(connection.into_body()))
}

/// The user token from `Authorization: Bearer`, else from the session cookie.
async fn authenticate(
    state: &AppState,
    tenant: &Tenant,
    request: &HttpRequest,
) -> Result<UserIdentity, ApiError> {
    let token = match bearer_token(request) {
        Ok(token) => token.to_owned(),
        Err(_) => request
            .cookie(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .ok_or(AuthError::MissingCredentials)?,
    };
    Ok(jwt::verify(&state.store, tenant, &token, &state.settings.jwt).await?)
}

fn requested_topics(list: Option<&str>, identity: &UserIdentity) -> Result<Vec<String>, ApiError> {
    let mut topics: Vec<String> = Vec::new();
    for topic in list.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
        validate_name(topic, Invalid::Topic, "topic")?;
        if !identity.allows_topic(topic) {
            return Err(AuthError::TopicNotAllowed(topic.to_owned()).into());
        }
        if !topics.iter().any(|t| t == topic) {
            topics.push(topic.to_owned());
        }
    }
    Ok(topics)
}

/// Decides how the stream opens: resume after a valid id, or start at the log's head —
/// with a `reset` first when the id cannot be resumed from exactly (the page must then
/// refetch its state). Either way the opening carries an id, so that a reconnect resumes
/// from here even if no event came in between.
fn starting_point(resume_from: Option<&str>, position: &LogPosition, retry_ms: u64) -> Start {
    let head = position.next_seq - 1;
    let head_id = EventId {
        epoch: position.epoch.clone(),
        seq: head,
    }
    .to_string();
    let retry = sse::retry(retry_ms);
    let reset = |reason: &str| {
        let frame = sse::control(sse::RESET, &json!({ "reason": reason }), Some(&head_id));
        Start {
            opening: [retry.clone(), frame].concat().into(),
            replay: false,
            after_seq: head,
        }
    };
    let Some(text) = resume_from else {
        return Start {
            opening: [retry.clone(), sse::position(&head_id)].concat().into(),
            replay: false,
            after_seq: head,
        };
    };
    let Ok(id) = text.parse::<EventId>() else {
        return reset("malformed_id");
    };
    if id.epoch != position.epoch {
        return reset("unknown_epoch");
    }
    if id.seq > head {
        return reset("id_in_the_future");
    }
    if id.seq < position.pruned_seq {
        return reset("history_expired");
    }
    Start {
        opening: retry,
        replay: true,
        after_seq: id.seq,
    }
}
