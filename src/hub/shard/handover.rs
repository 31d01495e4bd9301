//! The handover: a stream on Herald's own path that has caught up gives its socket to its
//! shard, which writes the live part from then on.
//!
//! The socket changes type on the way, one owner at a time:
//! 1. a `tokio::net::TcpStream`, while the stream's task answers the request and writes
//!    the opening and the replay (`stream_path::handler`, `hub::connection`);
//! 2. a `std::net::TcpStream` (`Connection::hand_over`), which crosses to the shard's
//!    thread in the `Attach` message together with the stream's queue — what was
//!    delivered while it caught up — and its live state (`hub::live`);
//! 3. a `mio::net::TcpStream`, registered with the shard's poller (`hub::reactor`);
//! 4. a `StreamSocket` in the stream's `OwnedStream` (`hub::sink`), written without
//!    blocking (`hub::socket`) until either side ends the stream.
//!
//! From the moment the handover starts the shard, not the task, unregisters the stream
//! and gives the tenant's slot back.

use actix::{Context, Handler, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shard;
use crate::hub::connection::Connection;
use crate::hub::live::LiveStream;
use crate::hub::sink::{Ending, OwnedStream, Sent, Sink};
use crate::hub::socket::StreamSocket;
use crate::hub::{Queued, Subscription};

/// What became of a stream handed over.
#[derive(Debug)]
pub enum Handover {
    /// Its shard writes it now.
    Live,
    /// It had ended while it caught up (its expiry, a revocation, a shutdown, a failure).
    Ended,
    /// The socket could not be taken from the runtime.
    Failed(std::io::Error),
}

impl Connection {
    /// Gives a stream that has caught up (`catch_up_chunk` said `None`) to its shard, with
    /// its socket.
    pub fn hand_over(self, socket: tokio::net::TcpStream) -> Handover {
        if !self.is_caught_up() {
            return Handover::Ended;
        }
        match socket.into_std() {
            Ok(socket) => {
                self.subscription
                    .hand_over(socket, self.task.live, self.expires_at);
                Handover::Live
            }
            Err(error) => Handover::Failed(error),
        }
    }
}

impl Subscription {
    fn hand_over(
        mut self,
        socket: std::net::TcpStream,
        live: LiveStream<Instant>,
        expires_at: i64,
    ) {
        self.guard.handed_over = true;
        self.guard.shard.do_send(Attach {
            id: self.guard.id,
            tenant_id: self.guard.tenant_id,
            socket,
            queued: self.frames,
            live,
            expires_at,
        });
    }
}

/// A stream that has caught up hands its socket to the shard, with the queue that holds
/// what was delivered meanwhile.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::hub) struct Attach {
    id: u64,
    tenant_id: i64,
    socket: std::net::TcpStream,
    queued: mpsc::Receiver<Queued>,
    live: LiveStream<Instant>,
    /// When the stream's token runs out (Unix seconds).
    expires_at: i64,
}

impl Handler<Attach> for Shard {
    type Result = ();

    fn handle(&mut self, attach: Attach, ctx: &mut Context<Self>) {
        let Attach {
            id,
            tenant_id,
            socket,
            mut queued,
            live,
            expires_at,
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
            while let Ok(entry) = queued.try_recv() {
                if let Queued::End(last) = entry {
                    let _ = socket.send([last], usize::MAX);
                }
            }
            socket.close();
            self.slots.release(tenant_id, id);
            return;
        };
        let now = self.clock.now();
        connection.sink = Sink::Socket(OwnedStream {
            socket: StreamSocket::new(socket),
            live: live.on_clock(now),
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
        while let Ok(entry) = queued.try_recv() {
            match self.send_to(id, entry, now, ctx) {
                Sent::Live | Sent::Recount => {}
                Sent::Ended(_) => return,
            }
        }
        let expiry = self.clock.ticks(crate::domain::time_until(expires_at));
        self.expiries.file(now + expiry, id);
        self.keepalives.file(now + self.keepalive_ticks, id);
    }
}
