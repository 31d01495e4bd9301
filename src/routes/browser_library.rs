//! `GET /herald.js`: the browser library (`clients/js`), the very bytes its npm package
//! ships, so that a tenant's page can import it from the Herald it talks to.
//!
//! A module script is fetched in CORS mode from any origin (without credentials, so `*` is
//! safe); caches keep it for a while and then revalidate it by its `ETag`.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

const LIBRARY: &[u8] = include_bytes!("../../clients/js/dist/herald.js");
const CACHE_CONTROL: &str = "public, max-age=600";

/// A strong validator: the start of the library's SHA-256, quoted.
static ETAG: LazyLock<String> =
    LazyLock::new(|| format!("\"{}\"", hex::encode(&Sha256::digest(LIBRARY)[..12])));

/// The library; 304 when `If-None-Match` names its current `ETag` (or is `*`).
#[utoipa::path(get, path = "/herald.js", tag = "browser",
    params(("If-None-Match" = Option<String>, Header, description = "ETags the cache holds")),
    responses(
        (status = 200, content_type = "text/javascript",
            description = "the ES module (`connect`, `HeraldError`); `ETag`, `Cache-Control: public, max-age=600`, `Access-Control-Allow-Origin: *`"),
        (status = 304, description = "the cached copy is current"),
    ))]
pub(super) async fn herald_js(request: HttpRequest) -> HttpResponse {
    let cached = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .any(|list| names_etag(list, &ETAG));
    let mut response = match cached {
        true => HttpResponse::NotModified().finish(),
        false => HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .body(LIBRARY),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ETAG, ETAG.as_str()),
        (header::CACHE_CONTROL, CACHE_CONTROL),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, RFC 9110).
pub(super) fn names_etag(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_compared_weakly() {
        let etag = ETAG.as_str();
        let names = |list: &str| names_etag(list, etag);
        assert!(names(etag));
        assert!(names(&format!("W/{etag}")));
        assert!(names(&format!("\"old\", {etag}")));
        assert!(names("*"));
        assert!(!names("\"old\""));
        assert!(!names(""));
        assert!(!names(etag.trim_matches('"')));
    }
}
