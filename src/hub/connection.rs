//! One SSE connection's life: the opening frames, the replay from the log, then live
//! events from the hub, with keep-alives, token expiry and shutdown along the way.
//!
//! The connection registers with the hub *before* it reads the log (see `hub::open`), so
//! an event committed during the replay is both in the log and in the live queue: the live
//! side drops every seq it has already sent, and the stream gets each event exactly once,
//! in order. Replay reads one page at a time, only when the
//! client has taken the previous one, so any backlog streams with back-pressure and is
//! never held in memory whole.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use super::Subscription;
use super::inbox::InboxCount;
use crate::shutdown::Shutdown;
use crate::sse;
use crate::store::Store;
use crate::store::log::StreamSelector;

/// What woke a live connection up.
enum Wake {
    ShuttingDown,
    Queued(Option<super::Queued>),
    Expired,
    Idle,
}

/// Frames gathered from the live queue into one chunk, at most (beyond the first group).
const LIVE_BATCH: usize = 64;

pub struct Connection {
    /// Frames to send before anything else (`retry:`, a position, a reset).
    opening: Option<Bytes>,
    replaying: bool,
    done: bool,
    store: Store,
    tenant_id: i64,
    epoch: String,
    selector: StreamSelector,
    replay_page: u64,
    /// The highest seq sent so far (or the position the stream started from).
    last_seq: i64,
    /// The user's unread count as this stream last sent it; `None` until it has been
    /// counted after the replay.
    inbox: Option<InboxCount>,
    /// A count arrived that is older than what the stream has sent: take it afresh.
    recount: bool,
    subscription: Subscription,
    keepalive_every: Duration,
    /// When the user's token runs out (Unix seconds).
    expires_at: i64,
    /// When the stream last sent something: a keep-alive goes out `keepalive_every` after it.
    last_sent: Instant,
    /// Fires at (or after) the keep-alive's deadline. It is moved only when it fires, not
    /// on every frame: a busy stream would otherwise re-file its timer for each event.
    keepalive: Pin<Box<Sleep>>,
    expiry: Pin<Box<Sleep>>,
    /// Completes when Herald shuts down. Made once, so the wait stays registered across
    /// wake-ups instead of re-registering with the shared watch on every one.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Where a new connection starts.
pub struct Start {
    pub opening: Bytes,
    /// Replay what comes after `after_seq` first (a resume), or go straight to live.
    pub replay: bool,
    pub after_seq: i64,
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
        Connection {
            opening: Some(start.opening),
            replaying: start.replay,
            done: false,
            store: parts.store,
            tenant_id: parts.tenant_id,
            epoch: parts.epoch,
            selector: parts.selector,
            replay_page: parts.replay_page,
            last_seq: start.after_seq,
            inbox: None,
            recount: false,
            subscription: parts.subscription,
            keepalive_every: parts.keepalive_every,
            expires_at: parts.expires_at,
            last_sent: Instant::now(),
            keepalive: Box::pin(tokio::time::sleep(parts.keepalive_every)),
            expiry: Box::pin(tokio::time::sleep(crate::domain::time_until(
                parts.expires_at,
            ))),
            shutdown: Box::pin(parts.shutdown.wait()),
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
        if self.done {
            return None;
        }
        self.live_step().await
    }

    /// The opening, the replay, and then the user's unread count, chunk by chunk; `None`
    /// once the stream has caught up with the log (or has ended: see `hand_over`).
    /// Cancel-safe.
    pub async fn catch_up_chunk(&mut self) -> Option<Bytes> {
        if let Some(opening) = self.opening.take() {
            return Some(opening);
        }
        if self.done {
            return None;
        }
        if self.replaying {
            // A last page may be empty: then the count comes at once.
            if let Some(chunk) = self.replay_step().await {
                return Some(chunk);
            }
            if self.done || self.replaying {
                return None;
            }
        }
        if self.inbox.is_none() {
            return self.count_step().await;
        }
        None
    }

    /// The user's unread count, taken after the replay: `event: inbox`.
    async fn count_step(&mut self) -> Option<Bytes> {
        for _ in 0..3 {
            let unread = self.unread_now().await?;
            // Taken after everything replayed, so never older than it; if it were, again.
            if let Ok(count) = InboxCount::start(unread, self.last_seq) {
                self.inbox = Some(count);
                self.last_sent = Instant::now();
                return Some(count.frame());
            }
        }
        tracing::error!("the unread count stays behind the replay; ending the stream");
        self.done = true;
        None
    }

    /// The user's unread count from the database; a failure ends the stream (the browser
    /// reconnects and the count is taken again).
    async fn unread_now(&mut self) -> Option<crate::domain::inbox::Unread> {
        let user = self.selector.user.as_ref()?;
        match self.store.inbox_unread(self.tenant_id, user).await {
            Ok(unread) => Some(unread),
            Err(error) => {
                tracing::error!(%error, "the unread count failed; ending the stream");
                self.done = true;
                None
            }
        }
    }

    /// A count that was older than what the stream had sent, taken afresh.
    async fn recount_step(&mut self) -> Option<Bytes> {
        self.recount = false;
        let unread = self.unread_now().await?;
        let count = self.inbox.as_mut()?;
        match count.update(unread, self.last_seq) {
            Ok(true) => Some(count.frame()),
            Ok(false) => None,
            Err(_) => {
                self.recount = true;
                None
            }
        }
    }

    /// A stream that has caught up gives its socket to its hub shard, which writes the
    /// live part (see `hub::shard`); one that has ended drops it and answers `false`.
    pub fn hand_over(self, socket: std::net::TcpStream) -> bool {
        if self.done || self.replaying || self.opening.is_some() || self.inbox.is_none() {
            return false;
        }
        self.subscription
            .hand_over(socket, self.last_seq, self.expires_at, self.inbox);
        true
    }

    /// One page of the log after `last_seq`; `None` once the replay has caught up.
    async fn replay_step(&mut self) -> Option<Bytes> {
        let page = self
            .store
            .read_after(
                self.tenant_id,
                &self.epoch,
                &self.selector,
                self.last_seq,
                self.replay_page,
            )
            .await;
        let events = match page {
            Ok(events) => events,
            Err(error) => {
                // The browser reconnects with the last id it got and the replay resumes.
                tracing::error!(%error, "replay failed; ending the stream");
                self.done = true;
                return None;
            }
        };
        if (events.len() as u64) < self.replay_page {
            self.replaying = false;
        }
        let last = events.last()?;
        self.last_seq = last.id.seq;
        let mut chunk = BytesMut::new();
        for event in &events {
            chunk.extend_from_slice(&sse::encode(event));
        }
        self.last_sent = Instant::now();
        Some(chunk.freeze())
    }

    async fn live_step(&mut self) -> Option<Bytes> {
        loop {
            if self.recount {
                let frame = self.recount_step().await;
                if self.done {
                    return None;
                }
                if let Some(frame) = frame {
                    self.last_sent = Instant::now();
                    return Some(frame);
                }
            }
            // Frames first: a woken stream with frames waiting takes them without touching
            // the other three (the shutdown wait locks a list shared by every stream).
            let wake = tokio::select! {
                biased;
                frames = self.subscription.frames.recv() => Wake::Queued(frames),
                _ = &mut self.shutdown => Wake::ShuttingDown,
                _ = &mut self.expiry => Wake::Expired,
                _ = &mut self.keepalive => Wake::Idle,
            };
            match wake {
                Wake::ShuttingDown => return None,
                // The hub closed this connection: it could not keep up.
                Wake::Queued(None) => return None,
                Wake::Queued(Some(frames)) => {
                    let mut chunk = Vec::new();
                    let mut counted = self.take_new(frames, &mut chunk);
                    while chunk.len() < LIVE_BATCH && !self.done {
                        let Ok(more) = self.subscription.frames.try_recv() else {
                            break;
                        };
                        counted |= self.take_new(more, &mut chunk);
                    }
                    if counted && !self.done {
                        chunk.extend(self.inbox.map(|count| count.frame()));
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.last_sent = Instant::now();
                    return Some(concat(chunk));
                }
                Wake::Expired => {
                    self.done = true;
                    return Some(sse::session_expired(sse::TOKEN_EXPIRED));
                }
                Wake::Idle => {
                    let due = self.last_sent + self.keepalive_every;
                    if due > Instant::now() {
                        // Something went out since the timer was set: wait from there.
                        self.keepalive.as_mut().reset(due);
                        continue;
                    }
                    self.last_sent = Instant::now();
                    self.keepalive
                        .as_mut()
                        .reset(self.last_sent + self.keepalive_every);
                    return Some(sse::keep_alive());
                }
            }
        }
    }

    /// Keeps the frames this stream has not sent yet (the replay may have sent some);
    /// true when the user's unread count changed with them.
    fn take_new(&mut self, frames: super::Queued, chunk: &mut Vec<Bytes>) -> bool {
        let mut counted = false;
        let mut keep = |frame: super::LiveFrame| {
            if frame.seq > self.last_seq {
                self.last_seq = frame.seq;
                if let Some(count) = &mut self.inbox {
                    counted |= count.sending(&frame);
                }
                chunk.push(frame.bytes);
            }
        };
        match frames {
            super::Queued::One(frame) => keep(frame),
            super::Queued::Many(frames) => frames.into_iter().for_each(keep),
            super::Queued::End(last) => {
                chunk.push(last);
                self.done = true;
            }
            super::Queued::Recount => self.recount = self.inbox.is_some(),
            super::Queued::Inbox(unread) => {
                if let Some(count) = &mut self.inbox {
                    match count.update(unread, self.last_seq) {
                        Ok(changed) => counted = changed,
                        Err(_) => self.recount = true,
                    }
                }
            }
        }
        counted
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
