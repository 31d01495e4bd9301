//! `GET /console`: Herald Console, the web page operators and tenants' engineers use to
//! watch and steer Herald (`clients/console`, built into these three files). It talks to
//! Herald only through the public API, with the credential it holds in the tab.
//!
//! The files are the console's own origin's: a strict Content-Security-Policy (scripts and
//! styles from here only, no inline script, no framing), no MIME sniffing, no referrer.
//! Browsers revalidate them by `ETag` each time, so an upgraded Herald serves its own.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::embedded::EmbeddedFile;

static INDEX: EmbeddedFile = EmbeddedFile::new(
    include_bytes!("../../clients/console/dist/index.html"),
    "text/html; charset=utf-8",
);
static JS: EmbeddedFile = EmbeddedFile::new(
    include_bytes!("../../clients/console/dist/console.js"),
    "text/javascript; charset=utf-8",
);
static CSS: EmbeddedFile = EmbeddedFile::new(
    include_bytes!("../../clients/console/dist/console.css"),
    "text/css; charset=utf-8",
);

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The console's page.
#[utoipa::path(get, path = "/console", tag = "console",
    responses(
        (status = 200, content_type = "text/html", description = "the console's page; `Content-Security-Policy`, `ETag`"),
        (status = 304, description = "the cached copy is current"),
    ))]
pub(super) async fn page(request: HttpRequest) -> HttpResponse {
    serve(&request, &INDEX)
}

/// The console's script.
#[utoipa::path(get, path = "/console/console.js", tag = "console",
    responses(
        (status = 200, content_type = "text/javascript", description = "the console's ES module"),
        (status = 304, description = "the cached copy is current"),
    ))]
pub(super) async fn script(request: HttpRequest) -> HttpResponse {
    serve(&request, &JS)
}

/// The console's style sheet.
#[utoipa::path(get, path = "/console/console.css", tag = "console",
    responses(
        (status = 200, content_type = "text/css", description = "the console's style sheet"),
        (status = 304, description = "the cached copy is current"),
    ))]
pub(super) async fn style(request: HttpRequest) -> HttpResponse {
    serve(&request, &CSS)
}

fn serve(request: &HttpRequest, file: &EmbeddedFile) -> HttpResponse {
    file.serve(
        request,
        &[
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
    )
}
