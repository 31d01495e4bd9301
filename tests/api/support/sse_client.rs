//! A test-side SSE client over reqwest: it parses the bytes on the wire the way the HTML
//! standard's EventSource does, including what no event listener sees but a reconnect
//! depends on — `lastEventId` moves on every `id:` line, even in a frame without data.
//! (eventsource-stream parses the same way but keeps that id to itself.) Herald's
//! `event: inbox` counts are kept apart (`inbox_counts`, `next_inbox`), so the tests of
//! other events read those alone.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: String,
}

pub struct SseStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>>>>,
    buffer: Vec<u8>,
    ready: VecDeque<SseEvent>,
    data: String,
    event_type: String,
    id_buffer: String,
    /// What a browser would send as `Last-Event-ID` on reconnecting.
    pub last_event_id: String,
    pub retry_ms: Option<u64>,
    pub comments: usize,
    pub ended: bool,
    /// Every unread count the stream sent, in order.
    pub inbox_counts: Vec<i64>,
    /// How many of them `next_inbox` has returned.
    inbox_taken: usize,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        SseStream {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
            ready: VecDeque::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry_ms: None,
            comments: 0,
            ended: false,
            inbox_counts: Vec::new(),
            inbox_taken: 0,
        }
    }

    /// The next unread count the stream sends, or `None` if none came within `wait`.
    pub async fn next_inbox(&mut self, wait: Duration) -> Option<i64> {
        self.read_until(wait, |stream| {
            let count = *stream.inbox_counts.get(stream.inbox_taken)?;
            stream.inbox_taken += 1;
            Some(count)
        })
        .await
    }

    /// Reads chunks until `take` finds what it wants; `None` if the stream ended or
    /// nothing did within `wait`.
    async fn read_until<T>(
        &mut self,
        wait: Duration,
        mut take: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(found) = take(self) {
                return Some(found);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
            }
        }
    }

    /// Reads the unread counts sent until one equals `count`; false if none did within
    /// `wait`.
    pub async fn wait_for_inbox(&mut self, count: i64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_inbox(left).await {
                Some(got) if got == count => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// The next event, or `None` if the stream ended or nothing came within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<SseEvent> {
        self.read_until(wait, |stream| stream.ready.pop_front())
            .await
    }

    /// Events already parsed but not yet taken: a browser would have dispatched them, and
    /// `last_event_id` already counts them.
    pub fn drain_parsed(&mut self) -> Vec<SseEvent> {
        self.ready.drain(..).collect()
    }

    /// Reads until `count` events came (or `wait` passed between two of them).
    pub async fn take(&mut self, count: usize, wait: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while events.len() < count {
            match self.next_event(wait).await {
                Some(event) => events.push(event),
                None => break,
            }
        }
        events
    }

    /// Reads (and keeps) whatever arrives until the stream ends; false if it is still
    /// open after `wait`.
    pub async fn wait_for_end(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
            }
        }
        true
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        // Lines end with CRLF, LF or CR; a CR at the very end may be the first half of a CRLF.
        loop {
            let Some(end) = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r') else {
                return;
            };
            let width = match (self.buffer[end], self.buffer.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => return,
                _ => 1,
            };
            let line: Vec<u8> = self.buffer.drain(..end + width).take(end).collect();
            self.line(&String::from_utf8_lossy(&line));
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event_type = value.to_owned(),
            "id" if !value.contains('\0') => self.id_buffer = value.to_owned(),
            "retry" => self.retry_ms = value.parse().ok().or(self.retry_ms),
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        self.last_event_id = self.id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        let event = std::mem::take(&mut self.event_type);
        if event == "inbox" {
            let count: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            let count = count["unread"]
                .as_i64()
                .expect("an inbox event has `unread`");
            self.inbox_counts.push(count);
            return;
        }
        self.ready.push_back(SseEvent {
            id: self.last_event_id.clone(),
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
        });
    }
}
