//! The OpenAPI description of Herald's HTTP API, served at `GET /openapi.json`.
//!
//! Handlers carry their own `#[utoipa::path]` annotations; this module gathers them and
//! adds the shapes that only exist on the wire (bodies Herald parses by hand, list
//! wrappers, the error body).

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::domain::event::Receipt;
use crate::domain::tenant::{NewTenant, Retention, Tenant, TenantPatch};
pub use crate::error::ErrorBody;
use crate::routes::history::HistoryEvent;
use crate::store::keys::{ApiKeyInfo, SigningKeyInfo};

/// Where an event goes: exactly one of these forms.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum To {
    User { user: String },
    Users { users: Vec<String> },
    Topic { topic: String },
    Broadcast { broadcast: bool },
}

/// One event to publish.
#[derive(Serialize, ToSchema)]
pub struct EventIn {
    pub to: To,
    /// The SSE event name, `[A-Za-z0-9_.:-]{1,64}`; default `message`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Any JSON value; a string goes on the wire as its text.
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Value>,
}

/// One event, or a batch of at most 1000.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PublishBody {
    Single(EventIn),
    Batch { events: Vec<EventIn> },
}

/// One receipt per recipient stream, in order.
#[derive(Serialize, ToSchema)]
pub struct PublishAnswer {
    pub events: Vec<Receipt>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// The `after` for the next page; null on the last page.
    pub next: Option<String>,
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

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
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
        super::admin::create_tenant,
        super::admin::list_tenants,
        super::admin::get_tenant,
        super::admin::update_tenant,
        super::admin::delete_tenant,
        super::admin::create_api_key,
        super::admin::list_api_keys,
        super::admin::revoke_api_key,
        super::admin::create_signing_key,
        super::admin::list_signing_keys,
        super::admin::revoke_signing_key,
        super::publish::publish,
        super::history::history,
        super::health::healthz,
        super::health::readyz,
        super::stream::stream,
        super::session::open,
        super::session::close,
    ),
    components(schemas(NewTenant, TenantPatch, Retention, Tenant, ApiKeyInfo, SigningKeyInfo, Receipt)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operator", description = "Tenants and their keys; admin token"),
        (name = "tenant backend", description = "Publishing and history; API key"),
        (name = "browser", description = "A user's stream; user JWT from the session cookie or a bearer header"),
        (name = "health", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
