//! The OpenAPI description of Herald's HTTP API, served at `GET /openapi.json`.
//!
//! Handlers carry their own `#[utoipa::path]` annotations and declare the shapes they read
//! and answer next to them; this module only gathers them and names the security schemes.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::event::Receipt;
use crate::domain::tenant::{NewTenant, Retention, TenantPatch};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .build(),
            )
        };
        components.add_security_scheme("admin_token", bearer("admin token"));
        components.add_security_scheme("api_key", bearer("hk_…"));
        components.add_security_scheme("user_token", bearer("JWT"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-tenant real-time notifications: publish over HTTP, deliver over SSE."),
    paths(
        super::admin::tenants::create_tenant,
        super::admin::tenants::list_tenants,
        super::admin::tenants::get_tenant,
        super::admin::tenants::update_tenant,
        super::admin::tenants::delete_tenant,
        super::admin::keys::create_api_key,
        super::admin::keys::list_api_keys,
        super::admin::keys::revoke_api_key,
        super::admin::keys::create_signing_key,
        super::admin::keys::list_signing_keys,
        super::admin::keys::revoke_signing_key,
        super::publish::publish,
        super::history::history,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::stream::stream,
        super::session::open,
        super::session::close,
    ),
    components(schemas(NewTenant, TenantPatch, Retention, Receipt)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operator", description = "Tenants and their keys; admin token"),
        (name = "tenant backend", description = "Publishing and history; API key"),
        (name = "browser", description = "A user's stream; user JWT from the session cookie or a bearer header"),
        (name = "health", description = "Probes, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
