//! The Server-Sent Events wire format.
//!
//! An event is encoded once, into one `Bytes` buffer, and that buffer is shared by every
//! connection it goes to (cloning `Bytes` only bumps a reference count). Validation upstream
//! keeps newlines out of ids and event types; `data` may hold any text, so every line
//! break in it (LF, CR or CRLF, all of which SSE parsers accept) starts a new `data:` line.

use std::borrow::Cow;
use std::fmt::Write;

use bytes::Bytes;
use serde_json::Value;

use crate::domain::log::LoggedEvent;

pub use crate::domain::event::{INBOX, RESET, SESSION_EXPIRED};

/// `retry:` tells the browser how long to wait before reconnecting.
pub fn retry(milliseconds: u64) -> Bytes {
    Bytes::from(format!("retry: {milliseconds}\n\n"))
}

/// A frame with only an `id:` line: it moves the browser's `lastEventId` (so a reconnect
/// resumes from here) without firing any listener.
pub fn position(id: &str) -> Bytes {
    Bytes::from(format!("id: {id}\n\n"))
}

/// The idle comment that keeps proxies from timing the stream out and lets Herald notice
/// a peer that has gone.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// Why a session ends, in its `session-expired` event.
pub const TOKEN_EXPIRED: &str = "the session's token has expired";
pub const KEY_REVOKED: &str = "the signing key of the session's token was revoked";
pub const TENANT_REMOVED: &str = "the tenant was removed";

/// The last frame of a stream whose session is over.
pub fn session_expired(reason: &str) -> Bytes {
    control(
        SESSION_EXPIRED,
        &serde_json::json!({ "reason": reason }),
        None,
    )
}

/// A user's unread count (see `hub::inbox`): no `id:`, so it never moves the stream's
/// resume position.
pub fn inbox(unread: i64) -> Bytes {
    control(INBOX, &serde_json::json!({ "unread": unread }), None)
}

/// A stored event as SSE: `id:`, `event:`, `data:` lines and the blank line.
pub fn encode(event: &LoggedEvent) -> Bytes {
    let mut frame = String::with_capacity(event.data.len() + 64);
    write_event(
        &mut frame,
        Some(&event.id.to_string()),
        &event.event_type,
        &event.data,
    );
    Bytes::from(frame)
}

/// A Herald-defined event (`reset`, `session-expired`) with JSON data.
pub fn control(event_type: &str, data: &Value, id: Option<&str>) -> Bytes {
    let mut frame = String::new();
    write_event(&mut frame, id, event_type, &data.to_string());
    Bytes::from(frame)
}

/// Appends one event to `out`. `json_data` is the stored compact JSON: a JSON string goes
/// on the wire as its text, anything else as the JSON itself.
pub fn write_event(out: &mut String, id: Option<&str>, event_type: &str, json_data: &str) {
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "event: {event_type}");
    let text: Cow<str> = if json_data.starts_with('"') {
        serde_json::from_str::<String>(json_data)
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(json_data))
    } else {
        Cow::Borrowed(json_data)
    };
    let mut rest: &str = &text;
    loop {
        match rest.find(['\r', '\n']) {
            Some(at) => {
                let _ = writeln!(out, "data: {}", &rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                let _ = writeln!(out, "data: {rest}");
                break;
            }
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &str) -> String {
        let mut out = String::new();
        write_event(&mut out, Some("e-1"), "mail", data);
        out
    }

    #[test]
    fn json_values_go_out_compact_and_strings_as_their_text() {
        assert_eq!(
            frame(r#"{"a":1}"#),
            "id: e-1\nevent: mail\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(frame(r#""hi""#), "id: e-1\nevent: mail\ndata: hi\n\n");
        assert_eq!(frame("null"), "id: e-1\nevent: mail\ndata: null\n\n");
    }

    #[test]
    fn every_line_break_starts_a_data_line() {
        let stored = serde_json::to_string("a\nb\r\nc\rd\n").unwrap();
        assert_eq!(
            frame(&stored),
            "id: e-1\nevent: mail\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
        );
    }
}
