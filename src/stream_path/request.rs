//! One set of rules for opening an event stream, whichever path the request came by
//! (actix-web's route or Herald's own handler): the user token from `Authorization: Bearer`
//! or else the session cookie, the topics it may stream, where to resume, the caps — and
//! then the hub's `open_stream`. The tenant and its CORS decision come first, from
//! `auth::cors::tenant_for_origin`.

use std::sync::atomic::Ordering;

use serde::Deserialize;
use tracing::Instrument;

use crate::auth::{AuthError, browser_token, jwt};
use crate::domain::names::TopicList;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::hub::HubError;
use crate::hub::StreamCaps;
use crate::hub::connection::Connection;
use crate::state::AppState;
use crate::tail::Notice;
use crate::traces;

/// The cookie `POST /t/{slug}/session` sets.
pub const SESSION_COOKIE: &str = "herald_session";

/// Which path served a stream (counted in `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPath {
    /// Herald's own HTTP/1.1 stream handler (a fresh plain-HTTP connection).
    Herald,
    /// actix-web's route (TLS, HTTP/2, or a keep-alive connection that began with another
    /// request).
    Actix,
}

/// What a stream request carries, read by either path.
#[derive(Debug, Default)]
pub struct StreamRequest<'a> {
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
    /// The session cookie's value.
    pub session_cookie: Option<&'a str>,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The `Last-Event-ID` header's value.
    pub last_event_id: Option<&'a str>,
    /// The `Sec-Fetch-Mode` header's value: how a browser says it made the request.
    pub fetch_mode: Option<&'a str>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Topics to stream besides the user's events and broadcasts, at most 64 separated by
    /// `,`; each must be allowed by the token's `topics`.
    #[param(value_type = Option<crate::domain::names::TopicListQuery>)]
    topics: Option<String>,
    /// Where to resume when the `Last-Event-ID` header cannot be sent.
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// Authenticates the request for `tenant` and opens its stream on the hub.
pub async fn open(
    state: &AppState,
    tenant: &Tenant,
    request: StreamRequest<'_>,
    path: StreamPath,
) -> Result<Connection, ApiError> {
    let (identity, topics, query_last_event_id) = async {
        let token = browser_token(
            request.authorization,
            request.session_cookie,
            request.fetch_mode,
        )?;
        let identity = jwt::verify(&state.credentials, tenant, token, &state.settings.jwt).await?;
        let query: StreamQuery = crate::query::parse(request.query)?;
        let topics = TopicList::parse(query.topics.as_deref())?;
        if let Some(topic) = topics.iter().find(|topic| !identity.allows_topic(topic)) {
            return Err(ApiError::from(AuthError::TopicNotAllowed(
                topic.to_string(),
            )));
        }
        Ok((identity, topics, query.last_event_id))
    }
    .instrument(traces::auth())
    .await?;
    let resume_from = request
        .last_event_id
        .or(query_last_event_id.as_deref())
        .filter(|id| !id.is_empty());
    let caps = StreamCaps::of(&tenant.limits.effective(&state.settings.tenant_defaults));
    let opened = state
        .hub
        .open_stream(tenant.id, &identity, topics, resume_from, caps)
        .instrument(traces::subscribe())
        .await;
    let reason = match &opened {
        Err(HubError::TooManyForUser) => Some("too_many_for_user"),
        Err(HubError::TooManyForTenant) => Some("too_many_for_tenant"),
        _ => None,
    };
    if let Some(reason) = reason {
        let user = identity.user.as_str().to_owned();
        state
            .hub
            .tail()
            .notice(tenant.id, Notice::StreamRefused { user, reason });
    }
    let connection = opened?;
    let opened = &state.hub.stats().opened;
    let counter = match path {
        StreamPath::Herald => &opened.herald,
        StreamPath::Actix => &opened.actix,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(connection)
}
