//! A file Herald serves from its own binary (`/herald.js`, the console's files): its bytes,
//! its type, and a strong `ETag` — the start of its SHA-256 — by which caches revalidate it;
//! `If-None-Match` naming it (or `*`) is answered 304 without the body.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

pub(super) struct EmbeddedFile {
    bytes: &'static [u8],
    content_type: &'static str,
    /// Taken on first use.
    etag: OnceLock<String>,
}

impl EmbeddedFile {
    pub(super) const fn new(bytes: &'static [u8], content_type: &'static str) -> EmbeddedFile {
        EmbeddedFile {
            bytes,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// The file, or 304; with `headers` besides its `ETag`.
    pub(super) fn serve(
        &self,
        request: &HttpRequest,
        headers: &[(HeaderName, &str)],
    ) -> HttpResponse {
        let etag = self.etag.get_or_init(|| strong_etag(self.bytes)).as_str();
        let cached = request
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|value| value.to_str().ok())
            .any(|list| names_etag(list, etag));
        let mut response = match cached {
            true => HttpResponse::NotModified().finish(),
            false => HttpResponse::Ok()
                .content_type(self.content_type)
                .body(self.bytes),
        };
        let answer = response.headers_mut();
        for (name, value) in std::iter::once((header::ETAG, etag)).chain(headers.iter().cloned()) {
            if let Ok(value) = HeaderValue::from_str(value) {
                answer.insert(name, value);
            }
        }
        response
    }
}

/// A strong validator: the start of the bytes' SHA-256, quoted.
fn strong_etag(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..12]))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, RFC 9110).
fn names_etag(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_compared_weakly() {
        let etag = strong_etag(b"a file");
        let names = |list: &str| names_etag(list, &etag);
        assert!(names(&etag));
        assert!(names(&format!("W/{etag}")));
        assert!(names(&format!("\"old\", {etag}")));
        assert!(names("*"));
        assert!(!names("\"old\""));
        assert!(!names(""));
        assert!(!names(etag.trim_matches('"')));
    }
}
