//! A connection's first request head, read without consuming it: does it open an event
//! stream, and what does the stream handler need from it?
//!
//! Only a complete, well-formed `GET /t/{slug}/stream` in HTTP/1.1 counts as a stream; every
//! other head (another route or method, HTTP/1.0, a head still arriving, one too large or
//! malformed) is left to actix-web, which answers it as it answers any request — so a bad
//! head gets the same 4xx on either path. Header values that are not text are ignored, as
//! the actix path ignores them, except `Origin` and `Last-Event-ID`, read as lossy text
//! on both paths (so they match nothing and resume from nowhere).

/// The largest head the router waits for; a larger one goes to actix-web (which refuses it).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most headers a stream head may carry (actix-web's limit too).
const MAX_HEADERS: usize = 96;
const STREAM_PREFIX: &[u8] = b"GET /t/";

/// What the bytes read so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// The head may still become a stream request: wait for more bytes.
    Incomplete,
    /// Anything but a stream request: actix-web's.
    Other,
    /// A stream request, for Herald's own handler.
    Stream(StreamHead),
}

/// What the stream handler takes from a stream request's head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHead {
    /// The head's length in bytes, request line to blank line.
    pub len: usize,
    pub slug: String,
    /// The query string, without `?`.
    pub query: String,
    pub origin: Option<String>,
    pub authorization: Option<String>,
    pub last_event_id: Option<String>,
    /// Every `Cookie` header, in order.
    pub cookies: Vec<String>,
    pub fetch_mode: Option<String>,
    /// The W3C `traceparent` a caller's trace continues with.
    pub traceparent: Option<String>,
}

/// Classifies the start of a connection's bytes.
pub fn classify(bytes: &[u8]) -> Peeked {
    let prefix = bytes.len().min(STREAM_PREFIX.len());
    if bytes[..prefix] != STREAM_PREFIX[..prefix] {
        return Peeked::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD_BYTES => return Peeked::Incomplete,
        Ok(httparse::Status::Partial) | Err(_) => return Peeked::Other,
    };
    if request.version != Some(1) {
        return Peeked::Other;
    }
    let Some(target) = request.path else {
        return Peeked::Other;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(slug) = path
        .strip_prefix("/t/")
        .and_then(|rest| rest.strip_suffix("/stream"))
    else {
        return Peeked::Other;
    };
    // A slug with an escape or a slash is the router's business, not a prefix match's.
    if slug.is_empty() || slug.contains(['/', '%']) {
        return Peeked::Other;
    }
    let mut head = StreamHead {
        len,
        slug: slug.to_owned(),
        query: query.to_owned(),
        ..StreamHead::default()
    };
    for header in request.headers.iter() {
        // Text or not, an Origin is checked (one that is not text matches no allowed one)
        // and a Last-Event-ID is resumed from (one that is not text is malformed: `reset`).
        let lossy = || String::from_utf8_lossy(header.value).into_owned();
        if header.name.eq_ignore_ascii_case("origin") {
            head.origin.get_or_insert_with(lossy);
            continue;
        }
        if header.name.eq_ignore_ascii_case("last-event-id") {
            head.last_event_id.get_or_insert_with(lossy);
            continue;
        }
        let Ok(value) = std::str::from_utf8(header.value) else {
            continue;
        };
        let first = |slot: &mut Option<String>| {
            slot.get_or_insert_with(|| value.to_owned());
        };
        match header.name.to_ascii_lowercase().as_str() {
            "authorization" => first(&mut head.authorization),
            "cookie" => head.cookies.push(value.to_owned()),
            "sec-fetch-mode" => first(&mut head.fetch_mode),
            "traceparent" => first(&mut head.traceparent),
            _ => {}
        }
    }
    Peeked::Stream(head)
}

/// The value of the cookie `name` among `Cookie` headers (`a=1; b=2`).
pub fn cookie<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(head: &str) -> StreamHead {
        match classify(head.as_bytes()) {
            Peeked::Stream(head) => head,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn a_stream_request_is_read_with_what_the_handler_needs() {
        let text = "GET /t/acme/stream?topics=a,b HTTP/1.1\r\nHost: h\r\n\
                    Origin: https://app.example.com\r\nAuthorization: Bearer t\r\n\
                    Last-Event-ID: ep-4\r\nCookie: a=1; herald_session=tok\r\n\r\npipelined";
        let head = stream(text);
        assert_eq!(head.len, text.len() - "pipelined".len());
        assert_eq!(head.slug, "acme");
        assert_eq!(head.query, "topics=a,b");
        assert_eq!(head.origin.as_deref(), Some("https://app.example.com"));
        assert_eq!(head.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(head.last_event_id.as_deref(), Some("ep-4"));
        assert_eq!(cookie(&head.cookies, "herald_session"), Some("tok"));
        assert_eq!(cookie(&head.cookies, "herald"), None);
    }

    #[test]
    fn everything_else_is_left_to_actix() {
        for other in [
            "POST /t/acme/stream HTTP/1.1\r\n\r\n",
            "GET /t/acme/stream HTTP/1.0\r\n\r\n",
            "GET /t/acme/session HTTP/1.1\r\n\r\n",
            "GET /t//stream HTTP/1.1\r\n\r\n",
            "GET /t/a/b/stream HTTP/1.1\r\n\r\n",
            "GET /t/a%2Db/stream HTTP/1.1\r\n\r\n",
            "GET /v1/events HTTP/1.1\r\n\r\n",
            "GET /t/acme/stream HTTP/1.1\r\nBad Header\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(classify(other.as_bytes()), Peeked::Other, "{other:?}");
        }
    }

    #[test]
    fn a_head_still_arriving_is_waited_for_up_to_the_limit() {
        assert_eq!(classify(b"GE"), Peeked::Incomplete);
        assert_eq!(classify(b"GET /t/acme/str"), Peeked::Incomplete);
        assert_eq!(
            classify(b"GET /t/acme/stream HTTP/1.1\r\nHost: h\r\n"),
            Peeked::Incomplete
        );
        let mut huge = b"GET /t/acme/stream HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_HEAD_BYTES, b'x');
        assert_eq!(classify(&huge), Peeked::Other);
    }

    #[test]
    fn header_values_that_are_not_text_are_ignored_but_a_resume_id_is_kept_as_malformed() {
        let mut bytes = b"GET /t/acme/stream HTTP/1.1\r\nAuthorization: ".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\r\nLast-Event-ID: ");
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\r\n\r\n");
        match classify(&bytes) {
            Peeked::Stream(head) => {
                assert_eq!(head.authorization, None);
                assert_eq!(head.last_event_id.as_deref(), Some("\u{fffd}\u{fffd}"));
            }
            other => panic!("{other:?}"),
        }
    }
}
