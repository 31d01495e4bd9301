//! One hub shard: an actor owning the connections that hash to it, indexed by tenant, then
//! by user, topic and broadcast, and delivering each commit group to them.
//!
//! A connection is one of two kinds. A stream served by a task of its own (actix-web's
//! path, and Herald's path while a new stream replays) has a queue: the shard puts each
//! group's frames in it. A stream whose socket has been handed over (`Attach`) is the
//! shard's alone: the shard writes frames straight to the socket, sends its keep-alives
//! and its `session-expired` from the shard's clock, and notices its peer leaving from
//! the shard's poller (`owned`) — an idle stream costs its entry here and nothing else.
//! Who listens to what is `hub::index`; where frames go, `hub::sink`.
//!
//! Committed groups wait in per-tenant turns and are handed out a slice at a time
//! (`delivery`), so one tenant's broadcasts to thousands of streams cannot hold up another
//! tenant's single event for long.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::deadlines::{Clock, Deadlines};
use super::index::ListenerIndex;
use super::reactor::Reactor;
use super::sink::{Ending, Sent, Sink};
use super::slots::TenantSlots;
use super::{HubError, HubStats, Queued};
use crate::config::StreamSettings;
use crate::fair::Turns;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::tail::{Notice, Tail};

mod delivery;
mod handover;
mod inbox;
mod owned;

pub(super) use delivery::Deliver;
use delivery::{Run, Spare};
pub use handover::Handover;
pub(super) use inbox::{InboxChanged, InboxPruned};

pub(super) struct Shard {
    streams: HashMap<u64, ShardStream>,
    listeners: ListenerIndex,
    stats: Arc<HubStats>,
    slots: Arc<TenantSlots>,
    /// How many commit groups a stream may have waiting before it counts as slow.
    backlog_limit: usize,
    /// Committed groups waiting for their tenant's turn (see `delivery`).
    waiting: Turns<Run>,
    /// The memory of the last run handed out, for the next.
    spare: Spare,
    /// A `TakeTurn` message is on its way.
    working: bool,
    reactor: Reactor,
    clock: Clock,
    keepalive_ticks: u64,
    keepalives: Deadlines,
    expiries: Deadlines,
    shutdown: Option<Shutdown>,
    stopping: bool,
    /// Where bytes a peer sends are read to and dropped.
    scratch: Box<[u8]>,
    /// Where the bytes for an owned socket are gathered before they are written.
    out: Vec<Bytes>,
    /// Where a stream's unread count is taken afresh.
    store: Store,
    /// Streams closed as slow are told to whoever watches their tenant.
    tail: Arc<Tail>,
}

struct ShardStream {
    tenant_id: i64,
    user: String,
    topics: Vec<String>,
    /// The signing key that vouched for the stream's token.
    key_id: Box<str>,
    sink: Sink,
}

impl Shard {
    pub(super) fn new(
        stats: Arc<HubStats>,
        slots: Arc<TenantSlots>,
        settings: &StreamSettings,
        shutdown: Shutdown,
        store: Store,
        tail: Arc<Tail>,
    ) -> std::io::Result<Self> {
        let keepalive_every = Duration::from_secs_f64(settings.keepalive_secs);
        let clock = Clock::for_keepalive(keepalive_every);
        Ok(Shard {
            streams: HashMap::new(),
            listeners: ListenerIndex::default(),
            stats,
            slots,
            backlog_limit: settings.queue_capacity,
            spare: Spare::default(),
            waiting: Turns::default(),
            working: false,
            reactor: Reactor::new()?,
            keepalive_ticks: clock.ticks(keepalive_every).max(1),
            clock,
            keepalives: Deadlines::default(),
            expiries: Deadlines::default(),
            shutdown: Some(shutdown),
            stopping: false,
            scratch: vec![0; 4096].into_boxed_slice(),
            out: Vec::new(),
            store,
            tail,
        })
    }

    /// The tenant's streams on this shard that satisfy `keep`.
    fn tenant_stream_ids(&self, tenant_id: i64, keep: impl Fn(&ShardStream) -> bool) -> Vec<u64> {
        self.streams
            .iter()
            .filter(|(_, c)| c.tenant_id == tenant_id && keep(c))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Takes a connection out of the indexes.
    fn remove(&mut self, id: u64) -> Option<ShardStream> {
        let connection = self.streams.remove(&id)?;
        self.stats.streams_open.fetch_sub(1, Ordering::Relaxed);
        self.listeners.remove(
            id,
            connection.tenant_id,
            &connection.user,
            &connection.topics,
        );
        Some(connection)
    }

    /// Gives stream `id` one entry of its queue at tick `now`, and does what that leaves to do: an
    /// unread count older than what the stream has sent is taken afresh, and a stream
    /// that cannot take it ends.
    fn send_to(&mut self, id: u64, entry: Queued, now: u64, ctx: &mut Context<Self>) -> Sent {
        let Some(connection) = self.streams.get_mut(&id) else {
            return Sent::Ended(Ending::Gone);
        };
        let sent = connection
            .sink
            .take(entry, now, &self.stats, self.backlog_limit, &mut self.out);
        match sent {
            Sent::Live => {}
            Sent::Recount => self.recount(id, ctx),
            Sent::Ended(ending) => self.end(id, ending),
        }
        sent
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
            self.slots.release(connection.tenant_id, id);
        }
        if ending == Ending::Slow {
            self.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
            let user = connection.user.clone();
            self.tail
                .notice(connection.tenant_id, Notice::StreamClosedSlow { user });
            tracing::info!(connection = id, "closed a stream that could not keep up");
        }
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

#[derive(Message)]
#[rtype(result = "Result<(), HubError>")]
pub(super) struct Register {
    pub id: u64,
    pub tenant_id: i64,
    pub user: String,
    pub topics: Vec<String>,
    pub key_id: Box<str>,
    pub sender: mpsc::Sender<Queued>,
    /// The most streams the user may hold.
    pub max_per_user: usize,
}

impl Handler<Register> for Shard {
    type Result = Result<(), HubError>;

    fn handle(&mut self, register: Register, _: &mut Context<Self>) -> Self::Result {
        self.listeners.add(
            register.id,
            register.tenant_id,
            &register.user,
            &register.topics,
            register.max_per_user,
        )?;
        self.stats.streams_open.fetch_add(1, Ordering::Relaxed);
        self.streams.insert(
            register.id,
            ShardStream {
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
        let ending = self.tenant_stream_ids(end.tenant_id, |c| {
            end.key_id.as_deref().is_none_or(|key| *c.key_id == *key)
        });
        for id in ending {
            if let Some(connection) = self.streams.get_mut(&id) {
                connection.sink.last(end.last.clone(), &mut self.out);
            }
            self.end(id, Ending::Over);
        }
    }
}
