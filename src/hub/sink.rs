//! Where a shard sends a stream's frames: the queue of the task that serves the stream, or
//! the stream's socket, once the shard owns it.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::inbox::{InboxCount, Stale};
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
    /// The highest seq written.
    pub last_seq: i64,
    /// The tick of the last write: the keep-alive is due a keep-alive interval after it.
    pub last_sent: u64,
    /// The user's unread count as the stream last sent it.
    pub inbox: Option<InboxCount>,
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
    /// Queues or writes one group's frames (with the user's unread count after them when
    /// they change it); `now` is the shard's tick. `Ok(Err(Stale))`: an unread count came
    /// that is older than what the stream has sent; it must be taken afresh.
    pub(super) fn take(
        &mut self,
        frames: Queued,
        now: u64,
        stats: &HubStats,
        backlog_limit: usize,
    ) -> Result<Result<(), Stale>, Ending> {
        match self {
            Sink::Queue(sender) => {
                let count = frames.as_slice().len() as u64;
                match sender.try_send(frames) {
                    Ok(()) => {
                        stats.delivered.fetch_add(count, Ordering::Relaxed);
                        Ok(Ok(()))
                    }
                    Err(TrySendError::Full(_)) => Err(Ending::Slow),
                    // The stream has ended already; its unregistration is on its way.
                    Err(TrySendError::Closed(_)) => Err(Ending::Gone),
                }
            }
            Sink::Socket(owned) => {
                if let Queued::Inbox(unread) = frames {
                    let Some(count) = &mut owned.inbox else {
                        return Ok(Ok(()));
                    };
                    return match count.update(unread, owned.last_seq) {
                        Ok(true) => {
                            owned.last_sent = now;
                            let frame = count.frame();
                            owned
                                .socket
                                .send([&frame], backlog_limit)
                                .map(Ok)
                                .map_err(Ending::from)
                        }
                        Ok(false) => Ok(Ok(())),
                        Err(stale) => Ok(Err(stale)),
                    };
                }
                // The replay may have sent some of them already.
                let frames = frames.as_slice();
                let fresh = &frames[frames.partition_point(|f| f.seq <= owned.last_seq)..];
                let Some(last) = fresh.last() else {
                    return Ok(Ok(()));
                };
                owned.last_seq = last.seq;
                owned.last_sent = now;
                stats
                    .delivered
                    .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                let mut counted = false;
                if let Some(count) = &mut owned.inbox {
                    for frame in fresh {
                        counted |= count.sending(frame);
                    }
                }
                let count = owned.inbox.filter(|_| counted).map(|count| count.frame());
                owned
                    .socket
                    .send(
                        fresh.iter().map(|f| &f.bytes).chain(count.as_ref()),
                        backlog_limit,
                    )
                    .map(Ok)
                    .map_err(Ending::from)
            }
        }
    }

    /// The stream's last frame, best effort: a stream too far behind to take it is ended
    /// all the same.
    pub(super) fn last(&mut self, frame: &bytes::Bytes) {
        match self {
            Sink::Queue(sender) => {
                let _ = sender.try_send(Queued::End(frame.clone()));
            }
            Sink::Socket(owned) => {
                let _ = owned.socket.send([frame], usize::MAX);
            }
        }
    }
}
