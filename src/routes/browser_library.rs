//! `GET /herald.js`: the browser library (`clients/js`), the very bytes its npm package
//! ships, so that a tenant's page can import it from the Herald it talks to.
//!
//! A module script is fetched in CORS mode from any origin (without credentials, so `*` is
//! safe); caches keep it for a while and then revalidate it by its `ETag`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::embedded::EmbeddedFile;

static LIBRARY: EmbeddedFile = EmbeddedFile::new(
    include_bytes!("../../clients/js/dist/herald.js"),
    "text/javascript; charset=utf-8",
);

/// The library; 304 when `If-None-Match` names its current `ETag` (or is `*`).
#[utoipa::path(get, path = "/herald.js", tag = "browser",
    params(("If-None-Match" = Option<String>, Header, description = "ETags the cache holds")),
    responses(
        (status = 200, content_type = "text/javascript",
            description = "the ES module (`connect`, `HeraldError`); `ETag`, `Cache-Control: public, max-age=600`, `Access-Control-Allow-Origin: *`"),
        (status = 304, description = "the cached copy is current"),
    ))]
pub(super) async fn herald_js(request: HttpRequest) -> HttpResponse {
    LIBRARY.serve(
        &request,
        &[
            (header::CACHE_CONTROL, "public, max-age=600"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    )
}
