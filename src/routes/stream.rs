//! `GET /t/{slug}/stream`: a user's live event stream, resumable with `Last-Event-ID`.
//! The route authenticates and answers; the hub decides where the stream starts.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::cors::request_tenant;
use crate::auth::jwt;
use crate::auth::{AuthError, bearer_token};
use crate::domain::names::TopicList;
use crate::error::{ApiError, ErrorBody, query_error};
use crate::state::AppState;

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
    params(
        ("slug" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id"),
        StreamQuery,
    ),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "`retry:`, then events (`id:`, `event:`, `data:`); Herald's own types are `reset` and `session-expired`"),
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
    let token = match bearer_token(&request) {
        Ok(token) => token.to_owned(),
        Err(_) => request
            .cookie(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .ok_or(AuthError::MissingCredentials)?,
    };
    let identity = jwt::verify(&state.store, &tenant, &token, &state.settings.jwt).await?;
    let query =
        web::Query::<StreamQuery>::from_query(request.query_string()).map_err(query_error)?;
    let topics = TopicList::parse(query.topics.as_deref())?;
    if let Some(topic) = topics.iter().find(|topic| !identity.allows_topic(topic)) {
        return Err(AuthError::TopicNotAllowed(topic.to_string()).into());
    }
    let resume_from = request
        .headers()
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .or(query.last_event_id.as_deref())
        .filter(|id| !id.is_empty());
    let connection = state
        .hub
        .open_stream(tenant.id, &identity, topics, resume_from)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(connection.into_body()))
}
