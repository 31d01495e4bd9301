//! `GET /t/{slug}/stream` on actix-web: streams over TLS or HTTP/2, and over keep-alive
//! connections that began with another request. (A fresh plain-HTTP connection is served by
//! Herald's own handler, `crate::stream_path`.) The rules are `stream_path::request::open`'s.

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing::Instrument;

use crate::auth::cors::request_tenant;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::stream_path::request::{SESSION_COOKIE, StreamPath, StreamQuery, StreamRequest, open};
use crate::traces;

/// Opens the stream. Identity: `Authorization: Bearer <user JWT>`, else the session
/// cookie. Resume: `Last-Event-ID`, else `?lastEventId=`.
#[utoipa::path(get, path = "/t/{slug}/stream", tag = "browser",
    params(
        ("slug" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the opening joins the caller's trace (a malformed one is ignored)"),
        StreamQuery,
    ),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "`retry:`, then events (`id:`, `event:`, `data:`); Herald's own types are `reset` and `session-expired`"),
        (status = 401, description = "missing or invalid user token", body = ErrorBody),
        (status = 403, description = "a topic the token does not allow, an origin the tenant does not allow, or the session cookie on a request that is not an EventSource's (`Sec-Fetch-Mode` other than `cors`)", body = ErrorBody),
        (status = 404, description = "no such tenant", body = ErrorBody),
        (status = 422, description = "a topic that is not a valid name, or more than 64", body = ErrorBody),
        (status = 429, description = "too many open streams for this user or tenant", body = ErrorBody),
    ),
    security(("user_token" = [])))]
pub async fn stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let trace = traces::stream_open(&slug, text(request.headers(), "traceparent"));
    opened(&state, &request, &slug).instrument(trace).await
}

/// The stream's answer; its replay and live events are written by its body.
async fn opened(
    state: &AppState,
    request: &HttpRequest,
    slug: &str,
) -> Result<HttpResponse, ApiError> {
    let tenant = request_tenant(request, state, slug).await?;
    let cookie = request.cookie(SESSION_COOKIE);
    let headers = request.headers();
    let stream_request = StreamRequest {
        authorization: text(headers, AUTHORIZATION.as_str()),
        session_cookie: cookie.as_ref().map(|cookie| cookie.value()),
        query: request.query_string(),
        // One that is not text is malformed, and gets `reset` like any other unusable id.
        last_event_id: headers
            .get("last-event-id")
            .map(|value| value.to_str().unwrap_or(NOT_TEXT)),
        fetch_mode: text(headers, "sec-fetch-mode"),
    };
    let connection = open(state, &tenant, stream_request, StreamPath::Actix).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(connection.into_body()))
}

/// What a header that is not text reads as (as `String::from_utf8_lossy` reads it).
const NOT_TEXT: &str = "\u{fffd}";

/// A header's value, when it is text.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
