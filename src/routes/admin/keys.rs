//! `/admin/tenants/{slug}/api-keys` and `…/signing-keys`: a tenant's credentials. An API key
//! and an HS256 secret are shown once, in the answer that creates them; revocation takes
//! effect at once.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::TenantRouteErrors;
use crate::auth::Operator;
use crate::domain::format_ms;
use crate::domain::keys::{ApiKey, SigningKey, SigningKeySpec};
use crate::domain::names::check_display_name;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::json;
use crate::sse;
use crate::state::AppState;
use crate::store::keys::KeyKind;

/// The most characters of an API key's name.
const MAX_KEY_NAME_CHARS: usize = 100;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Default `default`.
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,100}$")]
    pub name: Option<String>,
}

/// An API key as lists show it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        ApiKeyView {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            created_at: format_ms(key.created_at),
            last_used_at: key.last_used_at.map(format_ms),
            revoked_at: key.revoked_at.map(format_ms),
        }
    }
}

/// The API key appears in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    /// `hk_…`: store it now, Herald keeps only its hash.
    pub key: String,
    pub prefix: String,
    pub created_at: String,
}

impl CreatedApiKey {
    pub fn new(record: ApiKey, key: String) -> CreatedApiKey {
        CreatedApiKey {
            id: record.id,
            name: record.name,
            key,
            prefix: record.prefix,
            created_at: format_ms(record.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKey {
    /// HS256 (default), ES256, EdDSA or RS256.
    #[schema(value_type = Option<Algorithm>)]
    pub alg: Option<String>,
    /// Required for ES256, EdDSA and RS256; absent for HS256.
    pub public_key_pem: Option<String>,
}

/// The algorithms a signing key may have, as the document names them.
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)] // a schema only
enum Algorithm {
    HS256,
    ES256,
    EdDSA,
    RS256,
}

/// A signing key as lists show it: never an HS256 secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKey)]
pub struct SigningKeyView {
    pub kid: String,
    #[schema(example = "HS256")]
    pub alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&SigningKey> for SigningKeyView {
    fn from(key: &SigningKey) -> Self {
        SigningKeyView {
            kid: key.kid.clone(),
            alg: key.alg.as_str(),
            public_key_pem: key.public_key_pem.clone(),
            created_at: format_ms(key.created_at),
            revoked_at: key.revoked_at.map(format_ms),
        }
    }
}

/// A new signing key; an HS256 secret appears in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSigningKey {
    #[serde(flatten)]
    pub key: SigningKeyView,
    /// HS256 only: the HMAC key, used as its UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<SigningKey> for CreatedSigningKey {
    fn from(key: SigningKey) -> Self {
        CreatedSigningKey {
            key: SigningKeyView::from(&key),
            secret: key.secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SigningKeyList {
    pub signing_keys: Vec<SigningKeyView>,
}

#[utoipa::path(post, path = "/admin/tenants/{slug}/api-keys", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body(content = Option<NewApiKey>),
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 422, body = ErrorBody),
        TenantRouteErrors,
    ),
    security(("admin_token" = [])))]
pub async fn create_api_key(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Option<NewApiKey> =
        json::optional_json(&request, payload, &state.settings.server).await?;
    let tenant = state.tenant(&slug).await?;
    let name = body
        .and_then(|b| b.name)
        .unwrap_or_else(|| "default".into());
    check_display_name(&name, MAX_KEY_NAME_CHARS, "key name")?;
    let (record, key) = state.store.create_api_key(tenant.id, &name).await?;
    Ok(HttpResponse::Created().json(CreatedApiKey::new(record, key)))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/api-keys", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses((status = 200, body = ApiKeyList), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn list_api_keys(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    let keys = state.store.list_api_keys(tenant.id).await?;
    let api_keys = keys.into_iter().map(ApiKeyView::from).collect();
    Ok(HttpResponse::Ok().json(ApiKeyList { api_keys }))
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}/api-keys/{id}", tag = "operator",
    params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "revoked at once"), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn revoke_api_key(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, KeyKind::Api, path.into_inner()).await
}

#[utoipa::path(post, path = "/admin/tenants/{slug}/signing-keys", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body(content = Option<NewSigningKey>),
    responses(
        (status = 201, body = CreatedSigningKey),
        (status = 422, body = ErrorBody),
        TenantRouteErrors,
    ),
    security(("admin_token" = [])))]
pub async fn create_signing_key(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Option<NewSigningKey> =
        json::optional_json(&request, payload, &state.settings.server).await?;
    let tenant = state.tenant(&slug).await?;
    let spec = match body {
        None => SigningKeySpec::hs256(),
        Some(body) => SigningKeySpec::parse(body.alg.as_deref(), body.public_key_pem)?,
    };
    let key = state.store.create_signing_key(tenant.id, spec).await?;
    Ok(HttpResponse::Created().json(CreatedSigningKey::from(key)))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/signing-keys", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses((status = 200, body = SigningKeyList), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn list_signing_keys(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    let keys = state.store.list_signing_keys(tenant.id).await?;
    let signing_keys = keys.iter().map(SigningKeyView::from).collect();
    Ok(HttpResponse::Ok().json(SigningKeyList { signing_keys }))
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}/signing-keys/{kid}", tag = "operator",
    params(("slug" = String, Path), ("kid" = String, Path)),
    responses((status = 204, description = "revoked at once"), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn revoke_signing_key(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, KeyKind::Signing, path.into_inner()).await
}

/// Revokes one of the tenant's keys of `kind`.
async fn revoke(
    state: &AppState,
    kind: KeyKind,
    (slug, id): (String, String),
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    if state.store.revoke_key(kind, tenant.id, &id).await? {
        match kind {
            KeyKind::Signing => state.end_streams(tenant.id, Some(&id), sse::KEY_REVOKED),
            KeyKind::Api => state.tenant_changed(tenant.id),
        }
        return Ok(HttpResponse::NoContent().finish());
    }
    let (code, what) = match kind {
        KeyKind::Api => (ErrorCode::ApiKeyNotFound, "API key"),
        KeyKind::Signing => (ErrorCode::SigningKeyNotFound, "signing key"),
    };
    Err(ApiError::new(
        code,
        format!("`{slug}` has no {what} `{id}`"),
    ))
}
