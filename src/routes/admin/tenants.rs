//! `/admin/tenants`: create, list, read, change and remove tenants.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{OperatorErrors, TenantRouteErrors};
use crate::auth::Operator;
use crate::domain::format_ms;
use crate::domain::limits::{EffectiveLimits, TenantLimits};
use crate::domain::tenant::{NewTenant, Retention, Slug, Tenant, TenantPatch, validate_slug};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::history::page_limit;
use crate::routes::json;
use crate::sse;
use crate::state::AppState;
use crate::store::cut_page;

/// The largest event `data` this server takes: no tenant's limit may exceed it.
fn server_max_data(state: &AppState) -> u64 {
    state.settings.limits.max_event_data_bytes as u64
}

/// A tenant as the operator API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub retention: Retention,
    /// The limits that apply: the tenant's own over the server's defaults.
    pub limits: EffectiveLimits,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl TenantView {
    /// `tenant` as answers show it, its limits over `defaults`.
    pub fn new(tenant: Tenant, defaults: &EffectiveLimits) -> Self {
        TenantView {
            slug: tenant.slug,
            name: tenant.name,
            allowed_origins: tenant.allowed_origins,
            retention: tenant.retention,
            limits: tenant.limits.effective(defaults),
            created_at: format_ms(tenant.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
    /// The `after` for the next page when `limit` was given and more follow; else null.
    pub next: Option<String>,
}

impl TenantList {
    pub fn new(tenants: Vec<Tenant>, defaults: &EffectiveLimits) -> TenantList {
        TenantList {
            tenants: tenants
                .into_iter()
                .map(|t| TenantView::new(t, defaults))
                .collect(),
            next: None,
        }
    }
}

/// A page of the tenant list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantPage {
    /// Tenants per page (1–1000); without it, every tenant.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// A slug: the page starts after it.
    #[param(value_type = Option<Slug>)]
    after: Option<String>,
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
    let limits = TenantLimits::default().patched(
        &body.limits.clone().unwrap_or_default(),
        server_max_data(&state),
    )?;
    match state.store.create_tenant(&body, &limits).await? {
        Some(tenant) => {
            Ok(HttpResponse::Created()
                .json(TenantView::new(tenant, &state.settings.tenant_defaults)))
        }
        None => Err(ApiError::new(
            ErrorCode::SlugTaken,
            format!("a tenant `{}` exists already", body.slug),
        )),
    }
}

#[utoipa::path(get, path = "/admin/tenants", tag = "operator",
    params(TenantPage),
    responses(
        (status = 200, body = TenantList),
        (status = 400, description = "`invalid_query` (an `after` that is no slug) or `invalid_limit`", body = ErrorBody),
        OperatorErrors,
    ),
    security(("admin_token" = [])))]
pub async fn list_tenants(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page: TenantPage = crate::query::parse(request.query_string())?;
    if let Some(after) = &page.after
        && validate_slug(after).is_err()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`after` is a tenant's slug, not `{after}`"),
        ));
    }
    let limit = match page.limit {
        Some(limit) => Some(page_limit(Some(limit), limit)?),
        None => None,
    };
    // One more than asked tells whether there is a next page.
    let mut tenants = state
        .store
        .list_tenants_after(page.after.as_deref(), limit.map(|n| n + 1))
        .await?;
    let more = limit.is_some_and(|limit| cut_page(&mut tenants, limit));
    let next = more
        .then(|| tenants.last().map(|t| t.slug.clone()))
        .flatten();
    let mut list = TenantList::new(tenants, &state.settings.tenant_defaults);
    list.next = next;
    Ok(HttpResponse::Ok().json(list))
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
    Ok(HttpResponse::Ok().json(TenantView::new(tenant, &state.settings.tenant_defaults)))
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
    let limits = match &patch.limits {
        None => None,
        Some(change) => {
            let current = state.tenant(&slug).await?.limits;
            Some(current.patched(change, server_max_data(&state))?)
        }
    };
    match state
        .store
        .update_tenant(&slug, &patch, limits.as_ref())
        .await?
    {
        Some(tenant) => {
            state.tenant_changed(tenant.id);
            Ok(HttpResponse::Ok().json(TenantView::new(tenant, &state.settings.tenant_defaults)))
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
        // This node's bucket and counts for it go too (freeing its /metrics label for
        // another tenant).
        state.budget.forget(tenant.id);
        state.usage.forget(tenant.id);
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::tenant_not_found(&slug))
    }
}
