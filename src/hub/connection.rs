//! A stream served by its own task: the opening frames, the replay from the log, then
//! (on actix-web's path) the live events from its queue, with keep-alives, token expiry
//! and shutdown along the way.
//!
//! The connection registers with the hub *before* it reads the log (see `hub::open`), so
//! an event committed during the replay is both in the log and in the live queue; the
//! live rules (`hub::live`) drop every seq already sent, and the stream gets each event
//! exactly once, in order. Replay reads one page at a time, only when the client has taken
//! the previous one, so any backlog streams with back-pressure and is never held in memory
//! whole. On Herald's own path the task stops once the stream has caught up and hands its
//! socket to the shard (`hub::shard::handover`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::live::{LiveStream, Taken};
use super::{Queued, Subscription};
use crate::domain::inbox::Unread;
use crate::shutdown::Shutdown;
use crate::sse;
use crate::store::Store;
use crate::store::log::StreamSelector;

pub struct Connection {
    /// Frames to send before anything else (`retry:`, a position, a reset).
    opening: Option<Bytes>,
    replaying: bool,
    /// The catch-up failed (the browser reconnects and resumes).
    failed: bool,
    /// The unread count read with the log's position, for a stream with nothing to replay.
    unread_at_start: Option<Unread>,
    store: Store,
    tenant_id: i64,
    epoch: String,
    selector: StreamSelector,
    replay_page: u64,
    pub(super) subscription: Subscription,
    /// When the user's token runs out (Unix seconds).
    pub(super) expires_at: i64,
    pub(super) task: LiveTask,
}

/// Where a new connection starts.
pub struct Start {
    pub opening: Bytes,
    /// Replay what comes after `after_seq` first (a resume), or go straight to live.
    pub replay: bool,
    pub after_seq: i64,
    /// The user's unread count, if it was read with the log's position at `after_seq`.
    pub unread: Option<Unread>,
}

pub struct ConnectionParts {
    pub store: Store,
    pub tenant_id: i64,
    pub epoch: String,
    pub selector: StreamSelector,
    pub replay_page: u64,
    pub subscription: Subscription,
    pub keepalive_every: Duration,
    /// When the user's token runs out (Unix seconds).
    pub expires_at: i64,
    pub shutdown: Shutdown,
}

impl Connection {
    pub fn new(parts: ConnectionParts, start: Start) -> Connection {
        let live = LiveStream::new(start.after_seq, Instant::now());
        let expires_in = crate::domain::time_until(parts.expires_at);
        Connection {
            opening: Some(start.opening),
            replaying: start.replay,
            failed: false,
            unread_at_start: start.unread,
            store: parts.store,
            tenant_id: parts.tenant_id,
            epoch: parts.epoch,
            selector: parts.selector,
            replay_page: parts.replay_page,
            subscription: parts.subscription,
            expires_at: parts.expires_at,
            task: LiveTask::new(live, parts.keepalive_every, expires_in, parts.shutdown),
        }
    }

    /// The body as a stream of chunks, for actix-web.
    pub fn into_body(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
        futures_util::stream::unfold(self, |mut connection| async move {
            connection
                .next_chunk()
                .await
                .map(|chunk| (Ok(chunk), connection))
        })
    }

    /// The next chunk to write, or `None` when the stream ends. Cancel-safe: a call dropped
    /// before it completes loses nothing.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.catch_up_chunk().await {
            return Some(chunk);
        }
        if !self.is_caught_up() {
            return None;
        }
        loop {
            match self.task.next(&mut self.subscription.frames).await {
                LiveChunk::Bytes(chunk) => return Some(chunk),
                LiveChunk::Over => return None,
                LiveChunk::Recount => {
                    let unread = self.unread_now().await?;
                    if let Some(frame) = self.task.recounted(unread) {
                        return Some(frame);
                    }
                }
            }
        }
    }

    /// The opening, the replay, and then the user's unread count, chunk by chunk; `None`
    /// once the stream has caught up with the log (or has ended: see `is_caught_up`).
    /// Cancel-safe.
    pub async fn catch_up_chunk(&mut self) -> Option<Bytes> {
        if let Some(opening) = self.opening.take() {
            return Some(opening);
        }
        if self.failed {
            return None;
        }
        if self.replaying {
            // A last page may be empty: then the count comes at once.
            if let Some(chunk) = self.replay_step().await {
                return Some(chunk);
            }
            if self.failed || self.replaying {
                return None;
            }
        }
        if !self.task.live.is_counted() {
            return self.count_step().await;
        }
        None
    }

    /// Everything before the live part has been sent, and the stream has not failed.
    pub(super) fn is_caught_up(&self) -> bool {
        !self.failed && !self.replaying && self.opening.is_none() && self.task.live.is_counted()
    }

    /// The user's unread count, taken after the replay: `event: inbox`.
    async fn count_step(&mut self) -> Option<Bytes> {
        for _ in 0..3 {
            let unread = self.unread_now().await?;
            // Taken after everything replayed, so never older than it; if it were, again.
            if let Ok(frame) = self.task.live.start_count(unread, Instant::now()) {
                return Some(frame);
            }
        }
        tracing::error!("the unread count stays behind the replay; ending the stream");
        self.failed = true;
        None
    }

    /// The user's unread count from the database; a failure ends the stream (the browser
    /// reconnects and the count is taken again).
    async fn unread_now(&mut self) -> Option<Unread> {
        if let Some(unread) = self.unread_at_start.take() {
            return Some(unread);
        }
        let user = self.selector.user.as_ref()?;
        match self.store.inbox_unread(self.tenant_id, user).await {
            Ok(unread) => Some(unread),
            Err(error) => {
                tracing::error!(%error, "the unread count failed; ending the stream");
                self.failed = true;
                None
            }
        }
    }

    /// One page of the log after what was sent; `None` once the replay has caught up.
    async fn replay_step(&mut self) -> Option<Bytes> {
        let page = self
            .store
            .read_after(
                self.tenant_id,
                &self.epoch,
                &self.selector,
                self.task.live.last_seq(),
                self.replay_page,
            )
            .await;
        let events = match page {
            Ok(events) => events,
            Err(error) => {
                // The browser reconnects with the last id it got and the replay resumes.
                tracing::error!(%error, "replay failed; ending the stream");
                self.failed = true;
                return None;
            }
        };
        if (events.len() as u64) < self.replay_page {
            self.replaying = false;
        }
        let last = events.last()?;
        self.task.live.replayed(last.id.seq, Instant::now());
        let mut chunk = BytesMut::new();
        for event in &events {
            chunk.extend_from_slice(&sse::encode(event));
        }
        Some(chunk.freeze())
    }
}

/// Queue entries gathered into one chunk, at most (beyond the first).
const LIVE_BATCH: usize = 64;

/// The live half as a task runs it: the stream's rules, fed from its queue and its timers.
pub(super) struct LiveTask {
    pub(super) live: LiveStream<Instant>,
    keepalive_every: Duration,
    /// Fires at (or after) the keep-alive's deadline. It is moved only when it fires, not
    /// on every frame: a busy stream would otherwise re-file its timer for each event.
    keepalive: Pin<Box<Sleep>>,
    expiry: Pin<Box<Sleep>>,
    /// Completes when Herald shuts down. Made once, so the wait stays registered across
    /// wake-ups instead of re-registering with the shared watch on every one.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    over: bool,
    /// The user's unread count must be taken afresh before anything else.
    recount: bool,
}

/// What a live task does next.
pub(super) enum LiveChunk {
    /// Write these bytes.
    Bytes(Bytes),
    /// Take the user's unread count afresh and give it to `recounted`.
    Recount,
    /// The stream is over.
    Over,
}

/// What woke a live task up.
enum Wake {
    ShuttingDown,
    Queued(Option<Queued>),
    Expired,
    Idle,
}

impl LiveTask {
    pub(super) fn new(
        live: LiveStream<Instant>,
        keepalive_every: Duration,
        expires_in: Duration,
        shutdown: Shutdown,
    ) -> LiveTask {
        LiveTask {
            live,
            keepalive_every,
            keepalive: Box::pin(tokio::time::sleep(keepalive_every)),
            expiry: Box::pin(tokio::time::sleep(expires_in)),
            shutdown: Box::pin(shutdown.wait()),
            over: false,
            recount: false,
        }
    }

    /// The next bytes to write, once there are some. Cancel-safe.
    pub(super) async fn next(&mut self, queue: &mut mpsc::Receiver<Queued>) -> LiveChunk {
        let mut out = Vec::new();
        loop {
            if self.over {
                return LiveChunk::Over;
            }
            if self.recount {
                return LiveChunk::Recount;
            }
            // Frames first: a woken stream with frames waiting takes them without touching
            // the other three (the shutdown wait locks a list shared by every stream).
            let wake = tokio::select! {
                biased;
                entry = queue.recv() => Wake::Queued(entry),
                _ = &mut self.shutdown => Wake::ShuttingDown,
                _ = &mut self.expiry => Wake::Expired,
                _ = &mut self.keepalive => Wake::Idle,
            };
            let now = Instant::now();
            match wake {
                // The hub closed the queue: the stream could not keep up.
                Wake::ShuttingDown | Wake::Queued(None) => self.over = true,
                Wake::Queued(Some(entry)) => {
                    let mut taken = self.live.take(entry, now, &mut out);
                    while taken == Taken::Live && out.len() < LIVE_BATCH {
                        let Ok(more) = queue.try_recv() else {
                            break;
                        };
                        taken = self.live.take(more, now, &mut out);
                    }
                    self.after(taken);
                }
                Wake::Expired => {
                    let taken = self.live.expired(&mut out);
                    self.after(taken);
                }
                Wake::Idle => {
                    let next = self.live.idle(now, self.keepalive_every, false, &mut out);
                    self.keepalive.as_mut().reset(next);
                }
            }
            if !out.is_empty() {
                return LiveChunk::Bytes(concat(out));
            }
        }
    }

    /// The user's unread count, taken afresh: its frame, if it changed.
    pub(super) fn recounted(&mut self, unread: crate::domain::inbox::Unread) -> Option<Bytes> {
        self.recount = false;
        let mut out = Vec::new();
        let taken = self
            .live
            .take(Queued::Inbox(unread), Instant::now(), &mut out);
        self.after(taken);
        out.pop()
    }

    fn after(&mut self, taken: Taken) {
        match taken {
            Taken::Live => {}
            Taken::Recount => self.recount = true,
            Taken::Over => self.over = true,
        }
    }
}

/// One chunk from several frames; a lone frame is passed on without a copy.
fn concat(mut frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut chunk = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
    for frame in &frames {
        chunk.extend_from_slice(frame);
    }
    chunk.freeze()
}
