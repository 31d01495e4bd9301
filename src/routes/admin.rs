//! The operator API under `/admin`: tenants and their API and signing keys.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::Operator;
use crate::domain::keys::SigningAlgorithm;
use crate::domain::tenant::{NewTenant, Tenant, TenantPatch};
use crate::domain::{Invalid, ValidationError};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::optional_json;
use crate::state::AppState;
use crate::store::keys::{ApiKeyInfo, SigningKeyInfo};

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin/tenants")
            .route("", web::post().to(create_tenant))
            .route("", web::get().to(list_tenants))
            .route("/{slug}", web::get().to(get_tenant))
            .route("/{slug}", web::patch().to(update_tenant))
            .route("/{slug}", web::delete().to(delete_tenant))
            .route("/{slug}/api-keys", web::post().to(create_api_key))
            .route("/{slug}/api-keys", web::get().to(list_api_keys))
            .route("/{slug}/api-keys/{id}", web::delete().to(revoke_api_key))
            .route("/{slug}/signing-keys", web::post().to(create_signing_key))
            .route("/{slug}/signing-keys", web::get().to(list_signing_keys))
            .route(
                "/{slug}/signing-keys/{kid}",
                web::delete().to(revoke_signing_key),
            ),
    );
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct SigningKeyList {
    pub signing_keys: Vec<SigningKeyInfo>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: Option<String>,
}

/// The API key appears in this answer only.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    /// `hk_…`: store it now, Herald keeps only its hash.
    pub key: String,
    pub prefix: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKey {
    /// HS256 (default), ES256, EdDSA or RS256.
    pub alg: Option<String>,
    /// Required for ES256, EdDSA and RS256; absent for HS256.
    pub public_key_pem: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedSigningKey {
    pub kid: String,
    pub alg: String,
    /// HS256 only, shown once: the HMAC key, used as its UTF-8 text.
    pub secret: Option<String>,
    pub public_key_pem: Option<String>,
    pub created_at: String,
}

#[utoipa::path(post, path = "/admin/tenants", tag = "operator", request_body = NewTenant, responses((status = 201, body = Tenant), (status = 409, description = "slug taken", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn create_tenant(
    _: Operator,
    state: web::Data<AppState>,
    body: web::Json<NewTenant>,
) -> Result<HttpResponse, ApiError> {
    body.validate()?;
    match state.store.create_tenant(&body).await? {
        Some(tenant) => Ok(HttpResponse::Created().json(tenant)),
        None => Err(ApiError::new(
            ErrorCode::SlugTaken,
            format!("a tenant `{}` exists already", body.slug),
        )),
    }
}

#[utoipa::path(get, path = "/admin/tenants", tag = "operator", responses((status = 200, body = TenantList), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn list_tenants(
    _: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenants = state.store.list_tenants().await?;
    Ok(HttpResponse::Ok().json(json!({ "tenants": tenants })))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), responses((status = 200, body = Tenant), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn get_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.tenant(&slug).await?))
}

#[utoipa::path(patch, path = "/admin/tenants/{slug}", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), request_body = TenantPatch, responses((status = 200, body = Tenant), (status = 422, body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn update_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    patch: web::Json<TenantPatch>,
) -> Result<HttpResponse, ApiError> {
    patch.validate()?;
    match state.store.update_tenant(&slug, &patch).await? {
        Some(tenant) => Ok(HttpResponse::Ok().json(tenant)),
        None => Err(ApiError::tenant_not_found(&slug)),
    }
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), responses((status = 204, description = "removed with its keys and events"), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn delete_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if state.store.delete_tenant(&slug).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::tenant_not_found(&slug))
    }
}

#[utoipa::path(post, path = "/admin/tenants/{slug}/api-keys", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), request_body(content = Option<NewApiKey>), responses((status = 201, body = CreatedApiKey), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn create_api_key(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Option<NewApiKey> = optional_json(&request, &body)?;
    let tenant = state.tenant(&slug).await?;
    let name = body
        .and_then(|b| b.name)
        .unwrap_or_else(|| "default".into());
    validate_key_name(&name)?;
    let (info, key) = state.store.create_api_key(tenant.id, &name).await?;
    Ok(HttpResponse::Created().json(json!({
        "id": info.id,
        "name": info.name,
        "key": key,
        "prefix": info.prefix,
        "created_at": info.created_at,
    })))
}

fn validate_key_name(name: &str) -> Result<(), ValidationError> {
    let length = name.chars().count();
    if length == 0 || length > 100 || name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            Invalid::Name,
            "a key name is 1 to 100 characters without control characters",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/api-keys", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), responses((status = 200, body = ApiKeyList), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn list_api_keys(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    let keys = state.store.list_api_keys(tenant.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "api_keys": keys })))
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}/api-keys/{id}", tag = "operator", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 204, description = "revoked at once"), (status = 404, body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn revoke_api_key(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, id) = path.into_inner();
    let tenant = state.tenant(&slug).await?;
    if state.store.revoke_api_key(tenant.id, &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(
            ErrorCode::ApiKeyNotFound,
            format!("`{slug}` has no API key `{id}`"),
        ))
    }
}

#[utoipa::path(post, path = "/admin/tenants/{slug}/signing-keys", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), request_body(content = Option<NewSigningKey>), responses((status = 201, body = CreatedSigningKey), (status = 422, body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn create_signing_key(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Option<NewSigningKey> = optional_json(&request, &body)?;
    let tenant = state.tenant(&slug).await?;
    let (alg, pem) = match body {
        None => (SigningAlgorithm::Hs256, None),
        Some(body) => {
            let alg = SigningAlgorithm::parse(body.alg.as_deref().unwrap_or("HS256"))?;
            match (alg, body.public_key_pem) {
                (SigningAlgorithm::Hs256, None) => (alg, None),
                (alg, Some(pem)) => {
                    alg.validate_public_key(&pem)?;
                    (alg, Some(pem))
                }
                (alg, None) => {
                    return Err(ValidationError::new(
                        Invalid::PublicKey,
                        format!("{} keys need public_key_pem", alg.as_str()),
                    )
                    .into());
                }
            }
        }
    };
    let key = state.store.create_signing_key(tenant.id, alg, pem).await?;
    let mut answer =
        serde_json::to_value(SigningKeyInfo::from(&key)).map_err(|e| ApiError::internal(&e))?;
    if let Some(secret) = &key.secret {
        answer["secret"] = json!(secret);
    }
    Ok(HttpResponse::Created().json(answer))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/signing-keys", tag = "operator", params(("slug" = String, Path, description = "the tenant's slug")), responses((status = 200, body = SigningKeyList), (status = 404, description = "no such tenant", body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn list_signing_keys(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    let keys: Vec<SigningKeyInfo> = state
        .store
        .list_signing_keys(tenant.id)
        .await?
        .iter()
        .map(SigningKeyInfo::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "signing_keys": keys })))
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}/signing-keys/{kid}", tag = "operator", params(("slug" = String, Path), ("kid" = String, Path)), responses((status = 204, description = "revoked at once"), (status = 404, body = ErrorBody), (status = 401, description = "missing or wrong admin token", body = ErrorBody)), security(("admin_token" = [])))]
pub(super) async fn revoke_signing_key(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, kid) = path.into_inner();
    let tenant = state.tenant(&slug).await?;
    if state.store.revoke_signing_key(tenant.id, &kid).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(
            ErrorCode::SigningKeyNotFound,
            format!("`{slug}` has no signing key `{kid}`"),
        ))
    }
}
