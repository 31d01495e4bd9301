//! HTTP handlers only: each one turns a request into calls on the store and the log, and
//! their results into a response. Rules live in `crate::domain`, credentials in
//! `crate::auth`, and error-to-status mapping in `crate::error`.

pub mod admin;
mod browser_library;
mod console;
mod embedded;
mod health;
pub(crate) mod history;
pub(crate) mod inbox;
mod json;
pub mod openapi;
mod own_tenant;
mod presence;
pub mod publish;
pub(crate) mod receipts;
mod session;
pub(crate) mod stream;
mod tail;
pub(crate) mod usage;
pub(crate) mod webhooks;

use actix_web::{HttpResponse, web};

use crate::error::{ApiError, ErrorCode};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .configure(health::configure)
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_json)))
        .service(resource("/herald.js", "GET").route(web::get().to(browser_library::herald_js)))
        .service(resource("/console", "GET").route(web::get().to(console::page)))
        .service(resource("/console/console.js", "GET").route(web::get().to(console::script)))
        .service(resource("/console/console.css", "GET").route(web::get().to(console::style)))
        .configure(admin::configure)
        .service(
            // The browser's routes: the only ones with CORS, decided per tenant.
            web::scope("/t/{slug}")
                .wrap(actix_web::middleware::from_fn(
                    crate::auth::cors::tenant_cors,
                ))
                .service(
                    resource("/session", "POST, DELETE")
                        .route(web::post().to(session::open))
                        .route(web::delete().to(session::close)),
                )
                .service(resource("/stream", "GET").route(web::get().to(stream::stream)))
                .service(resource("/inbox", "GET").route(web::get().to(inbox::browser_list)))
                .service(resource("/inbox/read", "POST").route(web::post().to(inbox::browser_read)))
                .service(
                    resource("/inbox/unread", "POST").route(web::post().to(inbox::browser_unread)),
                )
                .service(
                    resource("/receipts", "POST").route(web::post().to(receipts::record_receipts)),
                ),
        )
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            resource("/v1/events", "GET, POST")
                .route(web::post().to(publish::publish))
                .route(web::get().to(history::history)),
        )
        .service(
            resource("/v1/events/{id}/fallback", "DELETE")
                .route(web::delete().to(receipts::cancel_fallback)),
        )
        .service(resource("/v1/tail", "GET").route(web::get().to(tail::tail)))
        .service(resource("/v1/tenant", "GET").route(web::get().to(own_tenant::own_tenant)))
        .service(resource("/v1/usage", "GET").route(web::get().to(usage::own_usage)))
        .service(resource("/v1/receipts", "GET").route(web::get().to(receipts::list_receipts)))
        .service(resource("/v1/inbox", "GET").route(web::get().to(inbox::backend_list)))
        .service(resource("/v1/inbox/read", "POST").route(web::post().to(inbox::backend_read)))
        .service(resource("/v1/inbox/unread", "POST").route(web::post().to(inbox::backend_unread)))
        .service(
            resource("/v1/presence", "GET, POST")
                .route(web::get().to(presence::user_presence))
                .route(web::post().to(presence::users_presence)),
        )
        .service(
            resource("/v1/webhooks", "GET, POST")
                .route(web::post().to(webhooks::create_webhook))
                .route(web::get().to(webhooks::list_webhooks)),
        )
        .service(
            resource("/v1/webhooks/{id}", "GET, PATCH, DELETE")
                .route(web::get().to(webhooks::get_webhook))
                .route(web::patch().to(webhooks::update_webhook))
                .route(web::delete().to(webhooks::delete_webhook)),
        )
        .service(
            resource("/v1/webhooks/{id}/rotate-secret", "POST")
                .route(web::post().to(webhooks::rotate_webhook_secret)),
        )
        .service(
            resource("/v1/webhooks/{id}/test", "POST")
                .route(web::post().to(webhooks::deliveries::send_test_message)),
        )
        .service(
            resource("/v1/webhooks/{id}/deliveries", "GET")
                .route(web::get().to(webhooks::deliveries::list_deliveries)),
        )
        .service(
            resource("/v1/webhooks/{id}/deliveries/{message_id}/retry", "POST")
                .route(web::post().to(webhooks::deliveries::retry_delivery)),
        );
}

/// A path and the methods it answers (`allow`, as the `Allow` header lists them); any other
/// method gets `405 method_not_allowed`.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this path answers {allow}"),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

/// Unknown paths answer in the same JSON shape as every other error.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}
