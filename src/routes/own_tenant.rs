//! `GET /v1/tenant`: the tenant an API key belongs to, as the operator sees it — how a
//! backend (or the console, signed in with a key) learns its slug, origins and limits.

use actix_web::{HttpResponse, web};

use crate::auth::Publisher;
use crate::error::ApiError;
use crate::routes::admin::TenantView;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/tenant", tag = "tenant backend",
    responses(
        (status = 200, body = TenantView),
        (status = 401, description = "missing or wrong API key", body = crate::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn own_tenant(
    publisher: Publisher,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let defaults = &state.settings.tenant_defaults;
    Ok(HttpResponse::Ok().json(TenantView::new(publisher.tenant, defaults)))
}
