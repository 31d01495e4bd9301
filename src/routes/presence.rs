//! `/v1/presence`: whether users are online, deployment-wide — at least one open stream
//! on any node — how many streams they have, and when their last stream closed.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::json;
use crate::auth::Publisher;
use crate::domain::names::UserId;
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The most users one `POST /v1/presence` asks about.
pub const MAX_USERS: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    #[param(value_type = UserId)]
    user: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    #[schema(value_type = Vec<UserId>, max_items = 1000)]
    users: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPresence {
    pub user: String,
    /// At least one open stream of the user, on any node.
    pub online: bool,
    pub streams: u64,
    /// When their last stream closed; null if never (or never since they came online).
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceList {
    pub users: Vec<UserPresence>,
}

async fn presence_of(
    state: &AppState,
    tenant_id: i64,
    users: Vec<String>,
) -> Result<Vec<UserPresence>, ApiError> {
    let streams = state.hub.user_streams(tenant_id, &users).await;
    let seen = state.store.presence(tenant_id, &users).await?;
    Ok(users
        .into_iter()
        .zip(streams)
        .zip(seen)
        .map(|((user, streams), seen)| UserPresence {
            user,
            online: streams > 0,
            streams,
            last_seen_at: seen.and_then(|s| s.last_seen_at).map(format_ms),
        })
        .collect())
}

#[utoipa::path(get, path = "/v1/presence", tag = "tenant backend",
    params(PresenceQuery),
    responses(
        (status = 200, body = UserPresence),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 422, description = "an invalid user id", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn user_presence(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: PresenceQuery = crate::query::parse(request.query_string())?;
    let user = UserId::parse(query.user.as_str())?;
    let mut found =
        presence_of(&state, publisher.tenant.id, vec![user.as_str().to_owned()]).await?;
    let one = found
        .pop()
        .ok_or_else(|| ApiError::internal(&"presence of no user"))?;
    Ok(HttpResponse::Ok().json(one))
}

#[utoipa::path(post, path = "/v1/presence", tag = "tenant backend",
    request_body = PresenceRequest,
    responses(
        (status = 200, body = PresenceList, description = "in the order asked"),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 422, description = "an invalid user id, or more than 1000", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn users_presence(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PresenceRequest = json(&request, payload, &state.settings.server).await?;
    if body.users.len() > MAX_USERS {
        return Err(ValidationError::new(
            Invalid::User,
            format!("ask about at most {MAX_USERS} users at once"),
        )
        .into());
    }
    let mut users = Vec::with_capacity(body.users.len());
    for (index, user) in body.users.iter().enumerate() {
        let user = UserId::parse(user.as_str())
            .map_err(|e| ValidationError::new(e.kind, format!("users[{index}]: {}", e.message)))?;
        users.push(user.as_str().to_owned());
    }
    let users = presence_of(&state, publisher.tenant.id, users).await?;
    Ok(HttpResponse::Ok().json(PresenceList { users }))
}
