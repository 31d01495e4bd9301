//! The operator API under `/admin`: tenants (`tenants`) and their API and signing keys
//! (`keys`). Every route takes the admin token; the answers' shapes are declared next to
//! the handlers that give them.

pub(crate) mod keys;
pub(crate) mod tenants;

use actix_web::web;
use utoipa::IntoResponses;

use super::resource;
use crate::error::ErrorBody;
use keys::{
    create_api_key, create_signing_key, list_api_keys, list_signing_keys, revoke_api_key,
    revoke_signing_key,
};
use tenants::{create_tenant, delete_tenant, get_tenant, list_tenants, update_tenant};

pub use keys::{
    ApiKeyList, ApiKeyView, CreatedApiKey, CreatedSigningKey, NewApiKey, NewSigningKey,
};
pub use keys::{SigningKeyList, SigningKeyView};
pub use tenants::{TenantList, TenantView};

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        resource("/admin/usage", "GET").route(web::get().to(super::usage::deployment_usage)),
    );
    config.service(
        web::scope("/admin/tenants")
            .service(
                resource("", "GET, POST")
                    .route(web::post().to(create_tenant))
                    .route(web::get().to(list_tenants)),
            )
            .service(
                resource("/{slug}", "GET, PATCH, DELETE")
                    .route(web::get().to(get_tenant))
                    .route(web::patch().to(update_tenant))
                    .route(web::delete().to(delete_tenant)),
            )
            .service(
                resource("/{slug}/usage", "GET").route(web::get().to(super::usage::tenant_usage)),
            )
            .service(
                resource("/{slug}/api-keys", "GET, POST")
                    .route(web::post().to(create_api_key))
                    .route(web::get().to(list_api_keys)),
            )
            .service(
                resource("/{slug}/api-keys/{id}", "DELETE").route(web::delete().to(revoke_api_key)),
            )
            .service(
                resource("/{slug}/signing-keys", "GET, POST")
                    .route(web::post().to(create_signing_key))
                    .route(web::get().to(list_signing_keys)),
            )
            .service(
                resource("/{slug}/signing-keys/{kid}", "DELETE")
                    .route(web::delete().to(revoke_signing_key)),
            )
            .service(
                resource("/{slug}/webhooks", "GET")
                    .route(web::get().to(super::webhooks::list_tenant_webhooks)),
            ),
    );
}

/// What every operator route may answer besides its own outcome.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
pub(super) enum OperatorErrors {
    /// Missing or wrong admin token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// ... and every operator route under `/admin/tenants/{slug}`.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
pub(super) enum TenantRouteErrors {
    /// Missing or wrong admin token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such tenant (or key).
    #[response(status = 404)]
    NotFound(ErrorBody),
}
