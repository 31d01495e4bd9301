//! One hub shard: an actor owning the connections that hash to it, indexed by tenant, then
//! by user, topic and broadcast, and delivering each commit group to them.
//!
//! A connection is one of two kinds. A stream served by a task of its own (actix-web's
//! path, and Herald's path while a new stream replays) has a queue: the shard puts each
//! group's frames in it. A stream whose socket has been handed over (`Attach`) is the
//! shard's alone: the shard writes frames straight to the socket, sends its keep-alives
//! and its `session-expired` from the shard's clock, and notices its peer leaving from
//! the shard's poller — an idle stream costs its entry here and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, StreamHandler};
use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::deadlines::{Clock, Deadlines};
use super::reactor::{Reactor, Readiness};
use super::slots::TenantSlots;
use super::socket::{Stop, StreamSocket};
use super::{Delivery, Frames, HubError, HubStats};
use crate::config::StreamSettings;
use crate::domain::event::Target;
use crate::shutdown::Shutdown;
use crate::sse;

pub(super) struct Shard {
    connections: HashMap<u64, Connection>,
    tenants: HashMap<i64, TenantIndex>,
    stats: Arc<HubStats>,
    slots: Arc<TenantSlots>,
    max_per_user: usize,
    /// How many commit groups a stream may have waiting before it counts as slow.
    backlog_limit: usize,
    /// Per connection, the frames of the group being delivered (kept to reuse its memory).
    pending: HashMap<u64, Frames>,
    reactor: Reactor,
    clock: Clock,
    keepalive_ticks: u64,
    keepalives: Deadlines,
    expiries: Deadlines,
    shutdown: Option<Shutdown>,
    stopping: bool,
    /// Where bytes a peer sends are read to and dropped.
    scratch: Box<[u8]>,
}

struct Connection {
    tenant_id: i64,
    user: String,
    topics: Vec<String>,
    /// The signing key that vouched for the stream's token.
    key_id: Box<str>,
    sink: Sink,
}

enum Sink {
    /// A stream served by its own task: frames go to its queue.
    Queue(mpsc::Sender<Frames>),
    /// A stream whose socket this shard owns.
    Socket(OwnedStream),
}

struct OwnedStream {
    socket: StreamSocket,
    /// The highest seq written.
    last_seq: i64,
    /// The tick of the last write: the keep-alive is due a keep-alive interval after it.
    last_sent: u64,
}

impl Connection {
    /// Queues or writes one group's frames for this connection.
    fn take(
        &mut self,
        frames: Frames,
        now: u64,
        stats: &HubStats,
        backlog_limit: usize,
    ) -> Result<(), Ending> {
        match &mut self.sink {
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
}

/// Why the shard ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// It could not keep up.
    Slow,
    /// Its peer left, or its task did.
    Gone,
    /// Its token expired, or Herald is stopping.
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

/// Who listens to what, within one tenant, on this shard.
#[derive(Default)]
struct TenantIndex {
    users: HashMap<String, Vec<u64>>,
    topics: HashMap<String, Vec<u64>>,
    broadcast: Vec<u64>,
}

impl TenantIndex {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.topics.is_empty() && self.broadcast.is_empty()
    }
}

fn remove_id(list: &mut Vec<u64>, id: u64) {
    if let Some(at) = list.iter().position(|&x| x == id) {
        list.swap_remove(at);
    }
}

fn remove_from_map(map: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    if let Some(list) = map.get_mut(key) {
        remove_id(list, id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

impl Shard {
    pub(super) fn new(
        stats: Arc<HubStats>,
        slots: Arc<TenantSlots>,
        settings: &StreamSettings,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let keepalive_every = Duration::from_secs_f64(settings.keepalive_secs);
        let clock = Clock::for_keepalive(keepalive_every);
        Ok(Shard {
            connections: HashMap::new(),
            tenants: HashMap::new(),
            stats,
            slots,
            max_per_user: settings.max_connections_per_user,
            backlog_limit: settings.queue_capacity,
            pending: HashMap::new(),
            reactor: Reactor::new()?,
            keepalive_ticks: clock.ticks(keepalive_every).max(1),
            clock,
            keepalives: Deadlines::default(),
            expiries: Deadlines::default(),
            shutdown: Some(shutdown),
            stopping: false,
            scratch: vec![0; 4096].into_boxed_slice(),
        })
    }

    /// Takes a connection out of the indexes.
    fn remove(&mut self, id: u64) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(index) = self.tenants.get_mut(&connection.tenant_id) {
            remove_from_map(&mut index.users, &connection.user, id);
            for topic in &connection.topics {
                remove_from_map(&mut index.topics, topic, id);
            }
            remove_id(&mut index.broadcast, id);
            if index.is_empty() {
                self.tenants.remove(&connection.tenant_id);
            }
        }
        Some(connection)
    }

    /// Ends a stream. A queue's task sees its queue close (and gives the tenant's slot back
    /// itself); an owned socket is closed here.
    fn end(&mut self, id: u64, ending: Ending) {
        let Some(connection) = self.remove(id) else {
            return;
        };
        if let Sink::Socket(mut owned) = connection.sink {
            self.reactor.deregister(owned.socket.socket_mut());
            owned.socket.close();
            self.slots.release(connection.tenant_id);
        }
        if ending == Ending::Slow {
            self.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(connection = id, "closed a stream that could not keep up");
        }
    }

    /// Hands each connection its frames of this group; notes those that could not take them.
    fn flush(&mut self, ended: &mut Vec<(u64, Ending)>) {
        let now = self.clock.now();
        for (id, frames) in self.pending.drain() {
            if let Some(connection) = self.connections.get_mut(&id)
                && let Err(ending) = connection.take(frames, now, &self.stats, self.backlog_limit)
            {
                ended.push((id, ending));
            }
        }
    }

    /// The connections on this shard that `delivery` goes to.
    fn listeners<'a>(tenants: &'a HashMap<i64, TenantIndex>, delivery: &Delivery) -> &'a [u64] {
        let Some(index) = tenants.get(&delivery.tenant_id) else {
            return &[];
        };
        let listeners = match &delivery.target {
            Target::User(user) => index.users.get(user.as_str()),
            Target::Topic(topic) => index.topics.get(topic.as_str()),
            Target::Broadcast => Some(&index.broadcast),
        };
        listeners.map_or(&[], Vec::as_slice)
    }

    /// Keep-alives and expiries that have come due.
    fn tick(&mut self) {
        let now = self.clock.now();
        let mut due = Vec::new();
        self.expiries.take_due(now, &mut due);
        for id in due.drain(..) {
            if let Some(owned) = self.owned(id) {
                // Best effort: a stream too backlogged to take it is closed all the same,
                // and its page learns of the expiry when it reconnects.
                let expired = sse::session_expired(sse::TOKEN_EXPIRED);
                let _ = owned.socket.send([&expired], usize::MAX);
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
        match &mut self.connections.get_mut(&id)?.sink {
            Sink::Socket(owned) => Some(owned),
            Sink::Queue(_) => None,
        }
    }

    /// Sockets that have become readable, writable or closed.
    fn poll_sockets(&mut self) {
        let mut ready = Vec::new();
        loop {
            let taken = self.reactor.ready(&mut ready);
            for Readiness {
                id,
                readable,
                writable,
                closed,
            } in ready.drain(..)
            {
                let Some(Connection {
                    sink: Sink::Socket(owned),
                    ..
                }) = self.connections.get_mut(&id)
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
    fn stop_streams(&mut self) {
        self.stopping = true;
        let owned: Vec<u64> = self
            .connections
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

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.reactor.wake_ups() {
            Ok(wake_ups) => {
                ctx.add_stream(wake_ups);
            }
            Err(error) => tracing::error!(%error, "cannot watch stream sockets"),
        }
        ctx.run_interval(self.clock.tick(), |shard, _| shard.tick());
        if let Some(shutdown) = self.shutdown.take() {
            ctx.spawn(
                actix::fut::wrap_future(shutdown.wait())
                    .map(|(), shard: &mut Shard, _| shard.stop_streams()),
            );
        }
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

#[derive(Message)]
#[rtype(result = "Result<(), HubError>")]
pub(super) struct Register {
    pub id: u64,
    pub tenant_id: i64,
    pub user: String,
    pub topics: Vec<String>,
    pub key_id: Box<str>,
    pub sender: mpsc::Sender<Frames>,
}

impl Handler<Register> for Shard {
    type Result = Result<(), HubError>;

    fn handle(&mut self, register: Register, _: &mut Context<Self>) -> Self::Result {
        let index = self.tenants.entry(register.tenant_id).or_default();
        let same_user = index.users.get(&register.user).map_or(0, Vec::len);
        if same_user >= self.max_per_user {
            if index.is_empty() {
                self.tenants.remove(&register.tenant_id);
            }
            return Err(HubError::TooManyForUser);
        }
        index
            .users
            .entry(register.user.clone())
            .or_default()
            .push(register.id);
        for topic in &register.topics {
            index
                .topics
                .entry(topic.clone())
                .or_default()
                .push(register.id);
        }
        index.broadcast.push(register.id);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.connections.insert(
            register.id,
            Connection {
                tenant_id: register.tenant_id,
                user: register.user,
                topics: register.topics,
                key_id: register.key_id,
                sink: Sink::Queue(register.sender),
            },
        );
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Unregister {
    pub id: u64,
}

impl Handler<Unregister> for Shard {
    type Result = ();

    fn handle(&mut self, unregister: Unregister, _: &mut Context<Self>) {
        self.remove(unregister.id);
    }
}

/// A session is over for some of a tenant's streams (see `Hub::end_streams`).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct EndStreams {
    pub tenant_id: i64,
    /// Only the streams this signing key vouched for; all of the tenant's without one.
    pub key_id: Option<String>,
    /// Their last frame.
    pub last: Bytes,
}

impl Handler<EndStreams> for Shard {
    type Result = ();

    fn handle(&mut self, end: EndStreams, _: &mut Context<Self>) {
        let ending: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.tenant_id == end.tenant_id
                    && end.key_id.as_deref().is_none_or(|key| *c.key_id == *key)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in ending {
            if let Some(connection) = self.connections.get_mut(&id) {
                // Best effort, as for an expired token: a stream too far behind to take its
                // last frame is ended all the same.
                match &mut connection.sink {
                    Sink::Queue(sender) => {
                        let _ = sender.try_send(Frames::End(end.last.clone()));
                    }
                    Sink::Socket(owned) => {
                        let _ = owned.socket.send([&end.last], usize::MAX);
                    }
                }
            }
            self.end(id, Ending::Over);
        }
    }
}

/// A stream that has caught up hands its socket to the shard, with the queue that holds
/// what was delivered meanwhile. From here on the shard gives the tenant's slot back.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Attach {
    pub id: u64,
    pub tenant_id: i64,
    pub socket: std::net::TcpStream,
    pub queued: mpsc::Receiver<Frames>,
    /// The highest seq the stream has sent.
    pub last_seq: i64,
    /// When the stream's token runs out (Unix seconds).
    pub expires_at: i64,
}

impl Handler<Attach> for Shard {
    type Result = ();

    fn handle(&mut self, attach: Attach, _: &mut Context<Self>) {
        let Attach {
            id,
            tenant_id,
            socket,
            mut queued,
            last_seq,
            expires_at,
        } = attach;
        let mut socket = mio::net::TcpStream::from_std(socket);
        // Each event goes out as it comes, not held back for the peer's acknowledgement.
        let _ = socket.set_nodelay(true);
        let registered = self.reactor.register(&mut socket, id);
        let Some(connection) = self.connections.get_mut(&id) else {
            // Ended while it caught up (too slow, its session over, or Herald is stopping):
            // the client reconnects and resumes. A session that is over says so first.
            self.reactor.deregister(&mut socket);
            let mut socket = StreamSocket::new(socket);
            while let Ok(frames) = queued.try_recv() {
                if let Frames::End(last) = frames {
                    let _ = socket.send([&last], usize::MAX);
                }
            }
            socket.close();
            self.slots.release(tenant_id);
            return;
        };
        let now = self.clock.now();
        connection.sink = Sink::Socket(OwnedStream {
            socket: StreamSocket::new(socket),
            last_seq,
            last_sent: now,
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
        let mut ended = Vec::new();
        while let Ok(frames) = queued.try_recv() {
            self.pending.insert(id, frames);
            self.flush(&mut ended);
        }
        for (id, ending) in ended {
            self.end(id, ending);
        }
        let now_secs = crate::domain::now_ms() / 1000;
        let remaining = u64::try_from(expires_at - now_secs).unwrap_or(0);
        self.expiries
            .file(now + self.clock.ticks(Duration::from_secs(remaining)), id);
        self.keepalives.file(now + self.keepalive_ticks, id);
    }
}

/// A group of committed events, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Deliver(pub Arc<Vec<Delivery>>);

impl Handler<Deliver> for Shard {
    type Result = ();

    fn handle(&mut self, Deliver(batch): Deliver, _: &mut Context<Self>) {
        let mut ended = Vec::new();
        if let [delivery] = batch.as_slice() {
            // One event: straight to each listener, without gathering per connection.
            let now = self.clock.now();
            for &id in Shard::listeners(&self.tenants, delivery) {
                if let Some(connection) = self.connections.get_mut(&id)
                    && let Err(ending) = connection.take(
                        Frames::One(delivery.frame.clone()),
                        now,
                        &self.stats,
                        self.backlog_limit,
                    )
                {
                    ended.push((id, ending));
                }
            }
        } else {
            for delivery in batch.iter() {
                let listeners = Shard::listeners(&self.tenants, delivery);
                for &id in listeners {
                    match self.pending.get_mut(&id) {
                        Some(frames) => frames.push(delivery.frame.clone()),
                        None => {
                            self.pending.insert(id, Frames::One(delivery.frame.clone()));
                        }
                    }
                }
            }
            self.flush(&mut ended);
        }
        for (id, ending) in ended {
            // A queue's task sees its queue close and ends the stream; the browser then
            // reconnects and resumes from the log.
            self.end(id, ending);
        }
    }
}

/// The shared frames for one write.
impl Frames {
    fn as_slice(&self) -> &[super::LiveFrame] {
        match self {
            Frames::One(frame) => std::slice::from_ref(frame),
            Frames::Many(frames) => frames,
            Frames::End(_) => &[],
        }
    }
}
