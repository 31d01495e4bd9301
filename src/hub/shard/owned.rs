//! The sockets a shard owns: a stream that has caught up hands its socket over (`Attach`);
//! from then on the shard writes its frames, sends its keep-alives and its
//! `session-expired` from the shard's clock (`tick`), learns of its peer leaving from the
//! shard's poller (`poll_sockets`), and closes it when Herald stops.

use actix::{Context, Handler, Message, StreamHandler};
use tokio::sync::mpsc;

use super::{Shard, ShardStream};
use crate::hub::Queued;
use crate::hub::inbox::InboxCount;
use crate::hub::reactor::{Reactor, SocketEvent};
use crate::hub::sink::{Ending, OwnedStream, Sink};
use crate::hub::socket::StreamSocket;
use crate::sse;

impl Shard {
    /// Keep-alives and expiries that have come due.
    pub(super) fn tick(&mut self) {
        let now = self.clock.now();
        let mut due = Vec::new();
        self.expiries.take_due(now, &mut due);
        for id in due.drain(..) {
            if let Some(connection) = self.streams.get_mut(&id) {
                connection
                    .sink
                    .last(&sse::session_expired(sse::TOKEN_EXPIRED));
                self.end(id, Ending::Over);
            }
        }
        self.keepalives.take_due(now, &mut due);
        let keepalive = sse::keep_alive();
        let every = self.keepalive_ticks;
        for id in due.drain(..) {
            let Some(owned) = self.owned(id) else {
                continue;
            };
            let next = if owned.last_sent + every > now {
                owned.last_sent + every
            } else if owned.socket.is_backlogged() {
                // Bytes are on their way already.
                now + every
            } else {
                owned.last_sent = now;
                if let Err(stop) = owned.socket.send([&keepalive], usize::MAX) {
                    self.end(id, stop.into());
                    continue;
                }
                now + every
            };
            self.keepalives.file(next, id);
        }
    }

    fn owned(&mut self, id: u64) -> Option<&mut OwnedStream> {
        match &mut self.streams.get_mut(&id)?.sink {
            Sink::Socket(owned) => Some(owned),
            Sink::Queue(_) => None,
        }
    }

    /// Sockets that have become readable, writable or closed.
    pub(super) fn poll_sockets(&mut self) {
        let mut ready = Vec::new();
        loop {
            let taken = self.reactor.ready(&mut ready);
            for SocketEvent {
                id,
                readable,
                writable,
                closed,
            } in ready.drain(..)
            {
                let Some(ShardStream {
                    sink: Sink::Socket(owned),
                    ..
                }) = self.streams.get_mut(&id)
                else {
                    continue;
                };
                let mut outcome = Ok(());
                if readable || closed {
                    outcome = owned.socket.discard_input(&mut self.scratch);
                }
                if outcome.is_ok() && writable {
                    outcome = owned.socket.writable();
                }
                if let Err(stop) = outcome {
                    self.end(id, stop.into());
                }
            }
            if !Reactor::full(taken) {
                return;
            }
        }
    }

    /// Herald is stopping: every owned stream ends now (queues end with their tasks).
    pub(super) fn stop_streams(&mut self) {
        self.stopping = true;
        let owned: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, connection)| matches!(connection.sink, Sink::Socket(_)))
            .map(|(&id, _)| id)
            .collect();
        for id in owned {
            self.end(id, Ending::Over);
        }
        self.keepalives.clear();
        self.expiries.clear();
    }
}

/// The poller has something ready.
impl StreamHandler<()> for Shard {
    fn handle(&mut self, (): (), _: &mut Context<Self>) {
        self.poll_sockets();
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("stopped watching stream sockets");
    }
}

/// A stream that has caught up hands its socket to the shard, with the queue that holds
/// what was delivered meanwhile. From here on the shard gives the tenant's slot back.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::hub) struct Attach {
    pub id: u64,
    pub tenant_id: i64,
    pub socket: std::net::TcpStream,
    pub queued: mpsc::Receiver<Queued>,
    /// The highest seq the stream has sent.
    pub last_seq: i64,
    /// When the stream's token runs out (Unix seconds).
    pub expires_at: i64,
    /// The user's unread count as the stream last sent it.
    pub inbox: Option<InboxCount>,
}

impl Handler<Attach> for Shard {
    type Result = ();

    fn handle(&mut self, attach: Attach, ctx: &mut Context<Self>) {
        let Attach {
            id,
            tenant_id,
            socket,
            mut queued,
            last_seq,
            expires_at,
            inbox,
        } = attach;
        let mut socket = mio::net::TcpStream::from_std(socket);
        // Each event goes out as it comes, not held back for the peer's acknowledgement.
        let _ = socket.set_nodelay(true);
        let registered = self.reactor.register(&mut socket, id);
        let Some(connection) = self.streams.get_mut(&id) else {
            // Ended while it caught up (too slow, its session over, or Herald is stopping):
            // the client reconnects and resumes. A session that is over says so first.
            self.reactor.deregister(&mut socket);
            let mut socket = StreamSocket::new(socket);
            while let Ok(frames) = queued.try_recv() {
                if let Queued::End(last) = frames {
                    let _ = socket.send([&last], usize::MAX);
                }
            }
            socket.close();
            self.slots.release(tenant_id, id);
            return;
        };
        let now = self.clock.now();
        connection.sink = Sink::Socket(OwnedStream {
            socket: StreamSocket::new(socket),
            last_seq,
            last_sent: now,
            inbox,
        });
        if let Err(error) = registered {
            tracing::error!(%error, "cannot watch a stream socket");
            self.end(id, Ending::Gone);
            return;
        }
        if self.stopping {
            self.end(id, Ending::Over);
            return;
        }
        // What was delivered while the stream caught up, less what its replay sent.
        while let Ok(frames) = queued.try_recv() {
            if let Queued::Inbox(unread) = frames {
                self.inbox_count(id, unread, ctx);
                continue;
            }
            let Some(connection) = self.streams.get_mut(&id) else {
                return;
            };
            if let Err(ending) = connection
                .sink
                .take(frames, now, &self.stats, self.backlog_limit)
            {
                self.end(id, ending);
                return;
            }
        }
        let expiry = self.clock.ticks(crate::domain::time_until(expires_at));
        self.expiries.file(now + expiry, id);
        self.keepalives.file(now + self.keepalive_ticks, id);
    }
}
