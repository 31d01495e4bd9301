//! Where a shard sends a stream's frames: the queue of the task that serves the stream, or
//! the stream's socket, once the shard owns it.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::socket::{Stop, StreamSocket};
use super::{Frames, HubStats};

pub(super) enum Sink {
    /// A stream served by its own task: frames go to its queue.
    Queue(mpsc::Sender<Frames>),
    /// A stream whose socket the shard owns.
    Socket(OwnedStream),
}

pub(super) struct OwnedStream {
    pub socket: StreamSocket,
    /// The highest seq written.
    pub last_seq: i64,
    /// The tick of the last write: the keep-alive is due a keep-alive interval after it.
    pub last_sent: u64,
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

impl Sink {
    /// Queues or writes one group's frames; `now` is the shard's tick.
    pub(super) fn take(
        &mut self,
        frames: Frames,
        now: u64,
        stats: &HubStats,
        backlog_limit: usize,
    ) -> Result<(), Ending> {
        match self {
            Sink::Queue(sender) => {
                let count = frames.as_slice().len() as u64;
                match sender.try_send(frames) {
                    Ok(()) => {
                        stats.delivered.fetch_add(count, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(TrySendError::Full(_)) => Err(Ending::Slow),
                    // The stream has ended already; its unregistration is on its way.
                    Err(TrySendError::Closed(_)) => Err(Ending::Gone),
                }
            }
            Sink::Socket(owned) => {
                // The replay may have sent some of them already.
                let frames = frames.as_slice();
                let fresh = &frames[frames.partition_point(|f| f.seq <= owned.last_seq)..];
                let Some(last) = fresh.last() else {
                    return Ok(());
                };
                owned.last_seq = last.seq;
                owned.last_sent = now;
                stats
                    .delivered
                    .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                owned
                    .socket
                    .send(fresh.iter().map(|f| &f.bytes), backlog_limit)
                    .map_err(Ending::from)
            }
        }
    }

    /// The stream's last frame, best effort: a stream too far behind to take it is ended
    /// all the same.
    pub(super) fn last(&mut self, frame: &bytes::Bytes) {
        match self {
            Sink::Queue(sender) => {
                let _ = sender.try_send(Frames::End(frame.clone()));
            }
            Sink::Socket(owned) => {
                let _ = owned.socket.send([frame], usize::MAX);
            }
        }
    }
}
