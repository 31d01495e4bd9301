//! A shard's own readiness poller for the stream sockets it owns.
//!
//! A socket handed to a shard is registered here (edge-triggered: readable, writable, peer
//! closed) under its connection id, so one poller serves every stream of the shard and no
//! stream needs a task or a waker of its own. The poller's descriptor is itself watched by
//! the shard thread's tokio runtime: when any socket becomes ready, the shard is woken once
//! and takes every ready socket in one go (`Reactor::ready`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;

use futures_util::Stream;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tokio::io::unix::AsyncFd;

/// How many ready sockets one poll takes at most; more are taken by the next.
const EVENTS_PER_POLL: usize = 1024;

pub(super) struct Reactor {
    poll: Poll,
    events: Events,
}

/// What happened to one socket.
pub(super) struct SocketEvent {
    pub id: u64,
    pub readable: bool,
    pub writable: bool,
    /// The peer closed its side or the socket failed.
    pub closed: bool,
}

impl Reactor {
    pub(super) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS_PER_POLL),
        })
    }

    pub(super) fn register(&self, socket: &mut TcpStream, id: u64) -> io::Result<()> {
        self.poll.registry().register(
            socket,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub(super) fn deregister(&self, socket: &mut TcpStream) {
        // Closing the socket removes it as well; this only makes it immediate.
        let _ = self.poll.registry().deregister(socket);
    }

    /// Every socket ready now, without waiting. Called until it returns fewer than
    /// `EVENTS_PER_POLL`, so nothing ready is left behind.
    pub(super) fn ready(&mut self, out: &mut Vec<SocketEvent>) -> usize {
        if let Err(error) = self
            .poll
            .poll(&mut self.events, Some(std::time::Duration::ZERO))
            && error.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(%error, "polling stream sockets failed");
            return 0;
        }
        let before = out.len();
        out.extend(self.events.iter().map(|event| SocketEvent {
            id: event.token().0 as u64,
            readable: event.is_readable(),
            writable: event.is_writable(),
            closed: event.is_read_closed() || event.is_error(),
        }));
        out.len() - before
    }

    pub(super) fn full(taken: usize) -> bool {
        taken >= EVENTS_PER_POLL
    }

    /// Yields each time some registered socket may have become ready. Made on the shard's
    /// thread: the runtime watching the poller is that thread's.
    pub(super) fn wake_ups(&self) -> io::Result<impl Stream<Item = ()> + 'static> {
        // The runtime watches a duplicate of the poller's descriptor (the same poller), which
        // it owns and closes itself.
        // SAFETY: the poller's descriptor is open while `self.poll` lives, past this call.
        let poller =
            unsafe { BorrowedFd::borrow_raw(self.poll.as_raw_fd()) }.try_clone_to_owned()?;
        // SAFETY: `poller` is an open descriptor owned by the `AsyncFd` for its whole life.
        let watched =
            unsafe { AsyncFd::register_with_interest(poller, tokio::io::Interest::READABLE) }
                .map_err(|error| error.into_parts().1)?;
        let watched = Rc::new(watched);
        Ok(futures_util::stream::unfold(
            watched,
            |watched| async move {
                let mut guard = watched.readable().await.ok()?;
                // Cleared before the shard drains the poller: whatever becomes ready while it
                // does wakes it again, so nothing waits unseen.
                guard.clear_ready();
                drop(guard);
                Some(((), watched))
            },
        ))
    }
}
