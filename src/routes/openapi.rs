//! The OpenAPI description of Herald's HTTP API, served at `GET /openapi.json`.
//!
//! Handlers carry their own `#[utoipa::path]` annotations and declare the shapes they read
//! and answer next to them; this module gathers them, names the security schemes, and
//! completes the document with what every operation may answer (405, 500, 503, the body and
//! query errors, the admin token's way into a tenant's API) and with the configured limits — so that the document says exactly what the
//! server does, which the contract tests and schemathesis in CI hold it to.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::config::LimitSettings;
use crate::domain::event::{EventIdText, PublishedEvent};
use crate::domain::names::{IdempotencyKeyText, TopicListQuery};
use crate::domain::tenant::{NewTenant, Retention, Slug, TenantPatch};
use crate::error::ErrorCode;
use crate::state::AppState;

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
        components.add_security_scheme(
            "herald_tenant",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::HERALD_TENANT,
                "with the admin token instead of an API key: the slug of the tenant to act as",
            ))),
        );
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
        super::usage::tenant_usage,
        super::usage::deployment_usage,
        super::usage::own_usage,
        super::own_tenant::own_tenant,
        super::tail::tail,
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
        super::inbox::browser_list,
        super::inbox::browser_read,
        super::inbox::browser_unread,
        super::browser_library::herald_js,
        super::console::page,
        super::console::script,
        super::console::style,
        super::inbox::backend_list,
        super::inbox::backend_read,
        super::inbox::backend_unread,
        super::webhooks::create_webhook,
        super::webhooks::list_webhooks,
        super::webhooks::get_webhook,
        super::webhooks::update_webhook,
        super::webhooks::delete_webhook,
        super::webhooks::rotate_webhook_secret,
        super::webhooks::deliveries::send_test_message,
        super::webhooks::deliveries::list_deliveries,
        super::webhooks::deliveries::retry_delivery,
        super::webhooks::list_tenant_webhooks,
        super::presence::user_presence,
        super::presence::users_presence,
        super::receipts::record_receipts,
        super::receipts::list_receipts,
        super::receipts::cancel_fallback,
    ),
    components(schemas(NewTenant, TenantPatch, Retention, PublishedEvent, Slug, TopicListQuery, EventIdText, IdempotencyKeyText, super::history::Order)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operator", description = "Tenants and their keys; admin token"),
        (name = "tenant backend", description = "Publishing, history, users' inboxes, presence and receipts, fallbacks, webhook endpoints; API key"),
        (name = "browser", description = "A user's stream, inbox and receipts; user JWT from the session cookie or a bearer header"),
        (name = "health", description = "Probes, metrics and this document"),
        (name = "console", description = "Herald Console, the web page served at /console"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.settings.limits))
}

/// The document as served: what the handlers declare, completed with what every operation
/// may answer and with this server's configured limits.
pub fn document(limits: &LimitSettings) -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    complete_operations(&mut document);
    let schemas = &mut document["components"]["schemas"];
    apply_limits(schemas, limits);
    refine_schemas(schemas);
    document
}

/// The paths whose answers never wait for the database.
const WITHOUT_DATABASE: [&str; 8] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/herald.js",
    "/console",
    "/console/console.js",
    "/console/console.css",
];

/// Adds to each operation the answers every operation of its kind may give, where it does
/// not declare them itself: 405 and 500 everywhere, 503 wherever the database is asked, the
/// body errors wherever a body is read, 400 wherever a query is read; gives every answer a
/// description and every `slug` the slug's schema.
fn complete_operations(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let as_tenant = takes_api_key(operation);
            if as_tenant && let Some(security) = operation["security"].as_array_mut() {
                security.push(json!({"admin_token": [], "herald_tenant": []}));
            }
            let reads_body = operation.get("requestBody").is_some();
            let reads_query = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters.iter_mut().filter(|p| p["name"] == "slug") {
                    parameter["schema"] = json!({"$ref": "#/components/schemas/Slug"});
                }
            }
            let body_content = operation
                .get_mut("requestBody")
                .and_then(|body| body.get_mut("content"))
                .and_then(Value::as_object_mut);
            if let Some(content) = body_content {
                for media in content.values_mut() {
                    not_nullable(&mut media["schema"]);
                }
            }
            let mut answers: Vec<(u16, &str)> = vec![
                (
                    405,
                    "a method this path does not answer; `Allow` lists those it does",
                ),
                (
                    500,
                    "Herald failed to handle the request; it has been logged",
                ),
            ];
            if !WITHOUT_DATABASE.contains(&path.as_str()) {
                answers.push((
                    503,
                    "`storage_full` or `storage_unavailable` (the database is full, does not answer or fails to write: nothing was acknowledged; retry after `Retry-After` seconds), or `shutting_down`",
                ));
            }
            if reads_body {
                answers.extend([
                    (400, "the body is not JSON, or an object in it repeats a key"),
                    (408, "the body did not arrive within `server.body_timeout_secs`; the connection is closed"),
                    (413, "the body is larger than `server.max_body_bytes`"),
                    (415, "a body not sent as `application/json`"),
                    (422, "the body is not an object of the documented shape, or breaks a rule"),
                ]);
            }
            if as_tenant {
                answers.push((
                    404,
                    "`tenant_not_found`: `Herald-Tenant` names no tenant (the admin token's way)",
                ));
            }
            if reads_query {
                answers.push((
                    400,
                    "a query that is not UTF-8 text or not of the documented shape",
                ));
            }
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, description) in answers {
                let key = status.to_string();
                if !responses.contains_key(&key) {
                    responses.insert(key, error_answer(status, description));
                }
            }
            for (status, response) in responses.iter_mut() {
                if response.get("description").is_none() {
                    let reason = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("an answer");
                    response["description"] = json!(reason);
                }
            }
        }
    }
}

/// Whether an operation is a tenant's backend's: it takes an API key, or the admin token
/// with `Herald-Tenant`.
fn takes_api_key(operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .is_some_and(|alternatives| alternatives.iter().any(|a| a.get("api_key").is_some()))
}

/// An error answer in the shared shape; a 405 also says which methods the path answers.
fn error_answer(status: u16, description: &str) -> Value {
    let mut answer = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    if status == 405 {
        answer["headers"] = json!({
            "Allow": {"required": true, "schema": {"type": "string"},
                      "description": "the methods this path answers"},
        });
    }
    if status == 503 {
        answer["headers"] = json!({
            "Retry-After": {"schema": {"type": "string"},
                            "description": "whole seconds; on the storage codes"},
        });
    }
    answer
}

/// An optional body is left out, never `null`: `oneOf [T, null]` becomes `T`.
fn not_nullable(schema: &mut Value) {
    let Some(choices) = schema["oneOf"].as_array() else {
        return;
    };
    let kept: Vec<&Value> = choices.iter().filter(|c| c["type"] != "null").collect();
    if let [only] = kept.as_slice() {
        *schema = (*only).clone();
    }
}

/// The configured limits, where a schema can say them.
fn apply_limits(schemas: &mut Value, limits: &LimitSettings) {
    let events = &mut schemas["Batch"]["properties"]["events"];
    events["minItems"] = json!(1);
    events["maxItems"] = json!(limits.max_batch_events);
    if let Some(forms) = schemas["To"]["oneOf"].as_array_mut() {
        for form in forms.iter_mut() {
            // Exactly one key: `{"user": …, "topic": …}` is no target.
            form["additionalProperties"] = json!(false);
            if let Some(users) = form["properties"].get_mut("users") {
                users["minItems"] = json!(1);
                users["maxItems"] = json!(limits.max_users_per_event);
            }
        }
    }
    schemas["LimitsPatch"]["properties"]["max_event_data_bytes"]["maximum"] =
        json!(limits.max_event_data_bytes);
    schemas["EventIn"]["properties"]["data"]["description"] = json!(format!(
        "Any JSON value (absent: null), at most {} bytes as compact JSON; a string goes on \
         the wire as its text.",
        limits.max_event_data_bytes
    ));
}

/// What the derived schemas cannot say of themselves.
fn refine_schemas(schemas: &mut Value) {
    schemas["PublishedEvent"]["properties"]["to"] = json!({"$ref": "#/components/schemas/To"});
    schemas["EventIn"]["allOf"] = json!([
        // A topic has no inbox.
        {"not": {
            "required": ["to", "inbox"],
            "properties": {"to": {"required": ["topic"]}, "inbox": {"const": true}}
        }},
        // A fallback is for the recipients of `to.user` or `to.users` only.
        {"not": {
            "required": ["to", "fallback"],
            "properties": {
                "to": {"anyOf": [{"required": ["topic"]}, {"required": ["broadcast"]}]},
                "fallback": {"type": "object"}
            }
        }},
        // Only an inbox item is read.
        {"not": {
            "required": ["fallback"],
            "properties": {
                "fallback": {"type": "object", "required": ["unless"],
                             "properties": {"unless": {"const": "read"}}},
                "inbox": {"not": {"const": true}}
            }
        }},
    ]);
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    schemas["ErrorDetail"]["properties"]["code"]["enum"] = json!(codes);
}
