//! The demo tenant's web app, served in `local` on its own port (8081): the page, and
//! `POST /token`, which mints a user token as a tenant's backend would. Development only:
//! the configuration refuses `demo.enabled` in production.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::json;

use super::DEMO_SLUG;
use crate::auth::jwt::{MintError, mint_user_token};
use crate::config::Settings;
use crate::domain::names::UserId;
use crate::error::{ApiError, ErrorCode};
use crate::routes::resource;
use crate::store::Store;

const PAGE: &str = include_str!("index.html");
const TOKEN_TTL_SECS: i64 = 3600;

struct DemoState {
    store: Store,
    audience: String,
    page: String,
}

/// Starts the demo server on `listener`; Herald's API is on `api_port` of the same host.
pub fn page_server(
    listener: TcpListener,
    settings: &Settings,
    store: Store,
    api_port: u16,
) -> std::io::Result<Server> {
    let page = PAGE
        .replace("__HERALD_URL__", &format!("http://localhost:{api_port}"))
        .replace("__TENANT__", DEMO_SLUG);
    let state = web::Data::new(DemoState {
        store,
        audience: settings.jwt.audience.clone(),
        page,
    });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(resource("/", "GET").route(web::get().to(index)))
            .service(resource("/token", "POST").route(web::post().to(token)))
            .service(resource("/favicon.ico", "GET").route(web::get().to(HttpResponse::NoContent)))
            .default_service(web::to(crate::routes::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn index(state: web::Data<DemoState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(state.page.clone())
}

#[derive(Deserialize)]
struct TokenRequest {
    user: String,
}

/// What a tenant's backend does for its logged-in user: a short-lived token for Herald.
async fn token(
    state: web::Data<DemoState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(body.user.as_str())?;
    let tenant = state
        .store
        .tenant(DEMO_SLUG)
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(DEMO_SLUG))?;
    let topics = vec!["stock:*".to_owned()];
    let minted = mint_user_token(
        &state.store,
        tenant.id,
        &user,
        topics,
        TOKEN_TTL_SECS,
        &state.audience,
    )
    .await
    .map_err(|error| match error {
        MintError::NoHs256Key => ApiError::new(
            ErrorCode::SigningKeyNotFound,
            "the demo tenant has no HS256 key",
        ),
        error => ApiError::internal(&error),
    })?;
    Ok(HttpResponse::Ok().json(json!({ "token": minted.token })))
}
