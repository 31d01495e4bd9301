//! `/v1/webhooks`: a tenant's backend manages its own webhook endpoints with its API key —
//! create (the secret shown once), list, change, remove, rotate the secret, send a test
//! message, read the deliveries log and retry a message — and the operator lists a
//! tenant's (`/admin/tenants/{slug}/webhooks`). What is sent, and how, is
//! `crate::webhooks`'s; an endpoint's messages are `deliveries`.

pub(crate) mod deliveries;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::TenantRouteErrors;
use super::json::json;
use crate::auth::{Operator, Publisher};
use crate::domain::webhook::{
    Endpoint, EndpointPatch, MAX_DESCRIPTION_CHARS, Subscription, WebhookUrl,
};
use crate::domain::{Invalid, ValidationError, format_ms};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::store::webhooks::CreateError;

/// How long the secret a rotation replaces still signs.
const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where messages are posted: `https` (in production, a public host).
    #[schema(format = "uri")]
    pub url: String,
    /// The message types it gets, or `["*"]` for all.
    #[schema(value_type = Vec<WebhookEventName>)]
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(format = "uri")]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<WebhookEventName>>)]
    pub events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `false` enables a disabled endpoint again (its failures are forgotten); `true`
    /// disables it.
    pub disabled: Option<bool>,
}

/// A message type, or `*`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only
enum WebhookEventName {
    #[serde(rename = "*")]
    All,
    #[serde(rename = "webhook.test")]
    Test,
    #[serde(rename = "user.online")]
    UserOnline,
    #[serde(rename = "user.offline")]
    UserOffline,
    #[serde(rename = "notification.unseen")]
    NotificationUnseen,
}

/// An endpoint, without its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Set while it gets nothing: after a `410`, after failing for
    /// `webhooks.disable_after_secs`, or when disabled by request.
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    /// `gone`, `failing` or `disabled`.
    pub disabled_reason: Option<String>,
}

impl From<Endpoint> for WebhookView {
    fn from(endpoint: Endpoint) -> WebhookView {
        WebhookView {
            events: endpoint.subscription.names(),
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description,
            created_at: format_ms(endpoint.created_at),
            disabled_at: endpoint.disabled_at.map(format_ms),
            disabled_reason: endpoint.disabled_reason,
        }
    }
}

/// A new endpoint: its secret appears in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verifies every message's `webhook-signature`.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new `whsec_…`; the one before also signs for 24 hours.
    pub secret: String,
}

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFound, format!("no webhook `{id}`"))
}

fn description(text: Option<String>) -> Result<Option<String>, ValidationError> {
    match text {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => Err(ValidationError::new(
            Invalid::Name,
            format!("a description is at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "tenant backend",
    request_body = NewWebhook,
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 422, description = "`invalid_webhook_url`, `invalid_webhook_events`, or `too_many_webhooks` (the tenant's `max_webhooks`)", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_webhook(
    publisher: Publisher,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: NewWebhook = json(&request, payload, &state.settings.server).await?;
    let url = WebhookUrl::parse(&body.url, state.settings.webhooks.targets())?;
    let subscription = Subscription::parse(&body.events)?;
    let description = description(body.description)?.unwrap_or_default();
    let max = publisher
        .tenant
        .limits
        .effective(&state.settings.tenant_defaults)
        .max_webhooks;
    let tenant_id = publisher.tenant.id;
    match state
        .store
        .create_webhook(tenant_id, &url, &subscription, &description, max)
        .await
    {
        Ok(endpoint) => {
            let secret = endpoint.secret.as_str().to_owned();
            Ok(HttpResponse::Created().json(CreatedWebhook {
                webhook: WebhookView::from(endpoint),
                secret,
            }))
        }
        Err(CreateError::TooMany(count)) => Err(ApiError::new(
            ErrorCode::TooManyWebhooks,
            format!(
                "the tenant has {count} webhook endpoints, as many as its `max_webhooks` allows"
            ),
        )),
        Err(CreateError::Store(error)) => Err(error.into()),
    }
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "tenant backend",
    responses(
        (status = 200, body = WebhookList),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_webhooks(
    publisher: Publisher,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list_of(&state, publisher.tenant.id).await
}

async fn list_of(state: &AppState, tenant_id: i64) -> Result<HttpResponse, ApiError> {
    let webhooks = state.store.webhooks(tenant_id).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        webhooks: webhooks.into_iter().map(WebhookView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/webhooks", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses((status = 200, body = WebhookList), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn list_tenant_webhooks(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    list_of(&state, tenant.id).await
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "tenant backend",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = WebhookView),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn get_webhook(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state
        .store
        .webhook(publisher.tenant.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(endpoint)))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "tenant backend",
    params(("id" = String, Path)),
    request_body = WebhookPatch,
    responses(
        (status = 200, body = WebhookView),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
        (status = 422, description = "`invalid_webhook_url` or `invalid_webhook_events`", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn update_webhook(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: WebhookPatch = json(&request, payload, &state.settings.server).await?;
    let targets = state.settings.webhooks.targets();
    let patch = EndpointPatch {
        url: body
            .url
            .map(|url| WebhookUrl::parse(&url, targets))
            .transpose()?,
        subscription: body.events.map(|e| Subscription::parse(&e)).transpose()?,
        description: description(body.description)?,
        disabled: body.disabled,
    };
    let endpoint = state
        .store
        .update_webhook(publisher.tenant.id, &id, patch)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(endpoint)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "tenant backend",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "removed: nothing more is sent to it"),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.store.delete_webhook(publisher.tenant.id, &id).await? {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(not_found(&id)),
    }
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "tenant backend",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "no such webhook of this tenant", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn rotate_webhook_secret(
    publisher: Publisher,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let secret = state
        .store
        .rotate_webhook_secret(publisher.tenant.id, &id, ROTATION_OVERLAP_MS)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret: secret.as_str().to_owned(),
    }))
}
