//! The live tail: a tenant's events as they are committed, and what Herald did about the
//! tenant (a stream closed as too slow, a publish refused by the rate limit, a webhook
//! attempt that failed), for whoever watches — `GET /v1/tail`, which the console shows.
//!
//! It costs one atomic load per commit group while nobody watches any tenant. A watcher
//! has a bounded queue of ready SSE frames: one that reads slower than its tenant
//! publishes loses frames — counted, and told in a `dropped` frame before the next one it
//! gets — and never slows delivery or the commit that produced them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::domain::format_ms;
use crate::domain::log::LoggedEvent;
use crate::sse;

/// Frames a watcher may have waiting.
const QUEUE: usize = 512;
/// Watchers one tenant may have at once.
pub const MAX_WATCHERS_PER_TENANT: usize = 16;

/// Something Herald did about a tenant, shown in its tail beside its events.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A stream of `user` could not keep up and was closed (it resumes from the log).
    StreamClosedSlow { user: String },
    /// A publish of `events` events was refused by the rate limit.
    RateLimited { events: u64, retry_after_secs: u64 },
    /// A stream open was refused: the tenant or the user has as many as allowed.
    StreamRefused { user: String, reason: &'static str },
    /// An attempt to deliver a webhook message failed.
    WebhookFailed {
        endpoint_id: String,
        message_id: String,
        message_type: String,
        status_code: Option<u16>,
        error: String,
    },
}

impl Notice {
    fn to_json(&self, at: i64) -> Value {
        let mut body = match self {
            Notice::StreamClosedSlow { user } => {
                json!({"kind": "stream_closed_slow", "user": user})
            }
            Notice::RateLimited {
                events,
                retry_after_secs,
            } => {
                json!({"kind": "rate_limited", "events": events, "retry_after_secs": retry_after_secs})
            }
            Notice::StreamRefused { user, reason } => {
                json!({"kind": "stream_refused", "user": user, "reason": reason})
            }
            Notice::WebhookFailed {
                endpoint_id,
                message_id,
                message_type,
                status_code,
                error,
            } => json!({
                "kind": "webhook_failed", "endpoint_id": endpoint_id, "message_id": message_id,
                "type": message_type, "status_code": status_code, "error": error,
            }),
        };
        body["at"] = json!(format_ms(at));
        body
    }
}

struct Watcher {
    id: u64,
    frames: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
    changed: Arc<Notify>,
}

/// Every watcher of every tenant on this node.
#[derive(Default)]
pub struct Tail {
    /// Watchers of any tenant: zero keeps the commit path to one load.
    watching: AtomicUsize,
    watchers: Mutex<HashMap<i64, Vec<Watcher>>>,
    next_id: AtomicU64,
}

/// A watcher's end: frames to write, how many were dropped since it last looked, and a
/// signal that the tenant changed (a key revoked, the tenant removed: the watcher checks
/// its credential again). Dropping it stops the watching.
pub struct Watching {
    pub frames: mpsc::Receiver<Bytes>,
    pub dropped: Arc<AtomicU64>,
    pub changed: Arc<Notify>,
    tail: Arc<Tail>,
    tenant_id: i64,
    id: u64,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = self.tail.lock();
        if let Some(list) = watchers.get_mut(&self.tenant_id) {
            list.retain(|w| w.id != self.id);
            if list.is_empty() {
                watchers.remove(&self.tenant_id);
            }
        }
        self.tail.watching.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tail {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<Watcher>>> {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching a tenant; `None` when it has `MAX_WATCHERS_PER_TENANT` already.
    pub fn watch(self: &Arc<Self>, tenant_id: i64) -> Option<Watching> {
        let mut watchers = self.lock();
        let list = watchers.entry(tenant_id).or_default();
        if list.len() >= MAX_WATCHERS_PER_TENANT {
            return None;
        }
        let (sender, frames) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let changed = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        list.push(Watcher {
            id,
            frames: sender,
            dropped: dropped.clone(),
            changed: changed.clone(),
        });
        self.watching.fetch_add(1, Ordering::Relaxed);
        Some(Watching {
            frames,
            dropped,
            changed,
            tail: self.clone(),
            tenant_id,
            id,
        })
    }

    fn watched(&self) -> bool {
        self.watching.load(Ordering::Relaxed) > 0
    }

    /// A committed group: each event goes to its tenant's watchers.
    pub fn committed(&self, events: &[&LoggedEvent]) {
        if !self.watched() {
            return;
        }
        let watchers = self.lock();
        for event in events {
            if let Some(list) = watchers.get(&event.tenant_id) {
                send(list, || event_frame(event));
            }
        }
    }

    /// The tenant's settings or keys changed, or it is gone: its watchers check their
    /// credentials again.
    pub fn changed(&self, tenant_id: i64) {
        if !self.watched() {
            return;
        }
        if let Some(list) = self.lock().get(&tenant_id) {
            for watcher in list {
                watcher.changed.notify_one();
            }
        }
    }

    /// Something Herald did about a tenant.
    pub fn notice(&self, tenant_id: i64, notice: Notice) {
        if !self.watched() {
            return;
        }
        let watchers = self.lock();
        if let Some(list) = watchers.get(&tenant_id) {
            send(list, || {
                let data = notice.to_json(crate::domain::now_ms());
                sse::control("notice", &data, None)
            });
        }
    }
}

/// Hands a frame, made once, to each watcher that has room; counts it dropped for the rest.
fn send(list: &[Watcher], frame: impl FnOnce() -> Bytes) {
    if list.is_empty() {
        return;
    }
    let frame = frame();
    for watcher in list {
        if watcher.frames.try_send(frame.clone()).is_err() {
            watcher.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An event as the tail shows it: where it went, its size and its data.
#[derive(serde::Serialize)]
struct TailEvent<'a> {
    id: String,
    to: Value,
    #[serde(rename = "type")]
    event_type: &'a str,
    size: usize,
    inbox: bool,
    created_at: String,
    /// The stored compact JSON, as it is: not parsed again on the commit's path.
    data: &'a RawValue,
}

fn event_frame(event: &LoggedEvent) -> Bytes {
    let null = RawValue::NULL;
    let body = TailEvent {
        id: event.id.to_string(),
        to: event.target.to_json(),
        event_type: &event.event_type,
        size: event.data.len(),
        inbox: event.inbox,
        created_at: format_ms(event.created_at),
        data: serde_json::from_str(&event.data).unwrap_or(null),
    };
    let mut frame = String::new();
    let json = serde_json::to_string(&body).unwrap_or_default();
    sse::write_event(&mut frame, None, "event", &json);
    Bytes::from(frame)
}

/// The frame that says how many frames a slow watcher lost.
pub fn dropped_frame(count: u64) -> Bytes {
    sse::control("dropped", &json!({ "count": count }), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{EventId, Target};

    fn event(tenant_id: i64, seq: i64) -> LoggedEvent {
        LoggedEvent {
            tenant_id,
            id: EventId {
                epoch: "e".into(),
                seq,
            },
            target: Target::Broadcast,
            event_type: "message".into(),
            data: "{\"n\":1}".into(),
            created_at: 0,
            inbox: false,
            trace: None,
        }
    }

    #[test]
    fn a_watcher_gets_its_tenant_s_events_and_counts_what_it_had_no_room_for() {
        let tail = Arc::new(Tail::default());
        let mut watching = tail.watch(1).expect("room");
        let events: Vec<LoggedEvent> = (1..=QUEUE as i64 + 3).map(|seq| event(1, seq)).collect();
        let other = event(2, 1);
        let mut refs: Vec<&LoggedEvent> = events.iter().collect();
        refs.push(&other);
        tail.committed(&refs);
        assert_eq!(watching.dropped.load(Ordering::Relaxed), 3);
        let first = watching.frames.try_recv().expect("a frame");
        let text = std::str::from_utf8(&first).unwrap();
        assert!(text.starts_with("event: event\ndata: {"), "{text}");
        assert!(text.contains("\"id\":\"e-1\""), "{text}");
        assert!(text.contains("\"data\":{\"n\":1}"), "{text}");
        drop(watching);
        assert!(!tail.watched());
        assert!(tail.lock().is_empty());
    }

    #[test]
    fn a_tenant_has_at_most_its_watchers() {
        let tail = Arc::new(Tail::default());
        let held: Vec<Watching> = (0..MAX_WATCHERS_PER_TENANT)
            .map(|_| tail.watch(7).expect("room"))
            .collect();
        assert!(tail.watch(7).is_none());
        assert!(tail.watch(8).is_some());
        drop(held);
        assert!(tail.watch(7).is_some());
    }
}
