//! Where a shard sends a stream's frames: the queue of the task that serves the stream, or
//! the stream's socket, once the shard owns it. An owned socket runs the live rules
//! (`hub::live`) on the shard's clock; this file only moves their bytes.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::live::{LiveStream, Taken};
use super::socket::{Stop, StreamSocket};
use super::{HubStats, Queued};

pub(super) enum Sink {
    /// A stream served by its own task: frames go to its queue.
    Queue(mpsc::Sender<Queued>),
    /// A stream whose socket the shard owns.
    Socket(OwnedStream),
}

pub(super) struct OwnedStream {
    pub socket: StreamSocket,
    /// The live rules, on the shard's tick.
    pub live: LiveStream<u64>,
}

/// Why the shard ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// It could not keep up.
    Slow,
    /// Its peer left, or its task did.
    Gone,
    /// Its session is over (its token expired, its key was revoked), or Herald is stopping.
    Over,
}

impl From<Stop> for Ending {
    fn from(stop: Stop) -> Ending {
        match stop {
            Stop::Gone => Ending::Gone,
            Stop::Slow => Ending::Slow,
        }
    }
}

/// What became of a stream given something to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// It goes on.
    Live,
    /// It goes on; its user's unread count must be taken afresh (see `hub::live::Taken`).
    Recount,
    /// It ends, and why.
    Ended(Ending),
}

impl Sink {
    /// Queues or writes one entry: a group's frames (with the user's unread count after
    /// them when they change it), a count, or a last frame; `now` is the shard's tick and
    /// `out` scratch space for the bytes.
    pub(super) fn take(
        &mut self,
        entry: Queued,
        now: u64,
        stats: &HubStats,
        backlog_limit: usize,
        out: &mut Vec<Bytes>,
    ) -> Sent {
        let frames = entry.as_slice().len() as u64;
        let sent = match self {
            Sink::Queue(sender) => match sender.try_send(entry) {
                Ok(()) => Sent::Live,
                Err(TrySendError::Full(_)) => Sent::Ended(Ending::Slow),
                // The stream has ended already; its unregistration is on its way.
                Err(TrySendError::Closed(_)) => Sent::Ended(Ending::Gone),
            },
            Sink::Socket(owned) => {
                let taken = owned.live.take(entry, now, out);
                owned.write(taken, out, backlog_limit)
            }
        };
        if !matches!(sent, Sent::Ended(Ending::Slow | Ending::Gone)) {
            stats.delivered.fetch_add(frames, Ordering::Relaxed);
        }
        sent
    }

    /// The stream's last frame, best effort: a stream too far behind to take it is ended
    /// all the same.
    pub(super) fn last(&mut self, frame: Bytes, out: &mut Vec<Bytes>) {
        match self {
            Sink::Queue(sender) => {
                let _ = sender.try_send(Queued::End(frame));
            }
            Sink::Socket(owned) => {
                let taken = owned.live.take(Queued::End(frame), 0, out);
                owned.write(taken, out, usize::MAX);
            }
        }
    }
}

impl OwnedStream {
    /// A keep-alive deadline came at tick `now`: the tick of the next one.
    pub(super) fn idle(
        &mut self,
        now: u64,
        every: u64,
        out: &mut Vec<Bytes>,
    ) -> Result<u64, Ending> {
        let next = self.live.idle(now, every, self.socket.is_backlogged(), out);
        match self.write(Taken::Live, out, usize::MAX) {
            Sent::Ended(ending) => Err(ending),
            Sent::Live | Sent::Recount => Ok(next),
        }
    }

    /// The stream's token ran out: its last frame goes out.
    pub(super) fn expired(&mut self, out: &mut Vec<Bytes>) {
        let taken = self.live.expired(out);
        self.write(taken, out, usize::MAX);
    }

    /// Writes what the live rules pushed to `out` (emptying it).
    fn write(&mut self, taken: Taken, out: &mut Vec<Bytes>, backlog_limit: usize) -> Sent {
        if !out.is_empty()
            && let Err(stop) = self.socket.send(out.drain(..), backlog_limit)
        {
            return Sent::Ended(stop.into());
        }
        match taken {
            Taken::Live => Sent::Live,
            Taken::Recount => Sent::Recount,
            Taken::Over => Sent::Ended(Ending::Over),
        }
    }
}
