//! `/admin/tenants`: create, list, read, change and remove tenants.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{OperatorErrors, TenantRouteErrors};
use crate::auth::Operator;
use crate::domain::format_ms;
use crate::domain::tenant::{NewTenant, Retention, Tenant, TenantPatch};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::json;
use crate::sse;
use crate::state::AppState;

/// A tenant as the operator API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub retention: Retention,
    pub created_at: String,
}

impl From<Tenant> for TenantView {
    fn from(tenant: Tenant) -> Self {
        TenantView {
            slug: tenant.slug,
            name: tenant.name,
            allowed_origins: tenant.allowed_origins,
            retention: tenant.retention,
            created_at: format_ms(tenant.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

impl TenantList {
    pub fn new(tenants: Vec<Tenant>) -> TenantList {
        TenantList {
            tenants: tenants.into_iter().map(TenantView::from).collect(),
        }
    }
}

#[utoipa::path(post, path = "/admin/tenants", tag = "operator",
    request_body = NewTenant,
    responses(
        (status = 201, body = TenantView),
        (status = 409, description = "slug taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
        OperatorErrors,
    ),
    security(("admin_token" = [])))]
pub async fn create_tenant(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body: NewTenant = json::json(&request, payload, &state.settings.server).await?;
    body.validate()?;
    match state.store.create_tenant(&body).await? {
        Some(tenant) => Ok(HttpResponse::Created().json(TenantView::from(tenant))),
        None => Err(ApiError::new(
            ErrorCode::SlugTaken,
            format!("a tenant `{}` exists already", body.slug),
        )),
    }
}

#[utoipa::path(get, path = "/admin/tenants", tag = "operator",
    responses((status = 200, body = TenantList), OperatorErrors),
    security(("admin_token" = [])))]
pub async fn list_tenants(
    _: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenants = state.store.list_tenants().await?;
    Ok(HttpResponse::Ok().json(TenantList::new(tenants)))
}

#[utoipa::path(get, path = "/admin/tenants/{slug}", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses((status = 200, body = TenantView), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn get_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}

#[utoipa::path(patch, path = "/admin/tenants/{slug}", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = TenantPatch,
    responses(
        (status = 200, body = TenantView),
        (status = 422, body = ErrorBody),
        TenantRouteErrors,
    ),
    security(("admin_token" = [])))]
pub async fn update_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut patch: TenantPatch = json::json(&request, payload, &state.settings.server).await?;
    patch.validate()?;
    match state.store.update_tenant(&slug, &patch).await? {
        Some(tenant) => {
            state.tenant_changed(tenant.id);
            Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
        }
        None => Err(ApiError::tenant_not_found(&slug)),
    }
}

#[utoipa::path(delete, path = "/admin/tenants/{slug}", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 204, description = "removed with its keys and events"),
        TenantRouteErrors,
    ),
    security(("admin_token" = [])))]
pub async fn delete_tenant(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    if state.store.delete_tenant(&slug).await? {
        state.end_streams(tenant.id, None, sse::TENANT_REMOVED);
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::tenant_not_found(&slug))
    }
}
