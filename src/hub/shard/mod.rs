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
//! Committed groups wait in per-tenant turns (`fair::Turns`): each turn hands out a slice
//! of one tenant's deliveries, then the mailbox is let in, so one tenant's broadcasts to
//! thousands of streams cannot hold up another tenant's single event for long. A tenant's
//! own events keep their order; a tenant more than `stream.queue_capacity` groups behind
//! has its streams here closed as slow (they resume from the log).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::deadlines::{Clock, Deadlines};
use super::index::Listeners;
use super::reactor::Reactor;
use super::sink::{Ending, Sink};
use super::slots::TenantSlots;
use super::{Delivery, Frames, HubError, HubStats};
use crate::config::StreamSettings;
use crate::fair::Turns;
use crate::shutdown::Shutdown;

mod owned;

pub(super) use owned::Attach;

pub(super) struct Shard {
    connections: HashMap<u64, Connection>,
    listeners: Listeners,
    stats: Arc<HubStats>,
    slots: Arc<TenantSlots>,
    /// How many commit groups a stream may have waiting before it counts as slow.
    backlog_limit: usize,
    /// Per connection, the frames of the group being delivered (kept to reuse its memory).
    pending: HashMap<u64, Frames>,
    /// Committed groups waiting for their tenant's turn (see `Deliver`).
    waiting: Turns<Run>,
    /// A `Work` message is on its way.
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
}

struct Connection {
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
    ) -> std::io::Result<Self> {
        let keepalive_every = Duration::from_secs_f64(settings.keepalive_secs);
        let clock = Clock::for_keepalive(keepalive_every);
        Ok(Shard {
            connections: HashMap::new(),
            listeners: Listeners::default(),
            stats,
            slots,
            backlog_limit: settings.queue_capacity,
            pending: HashMap::new(),
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
        })
    }

    /// Takes a connection out of the indexes.
    fn remove(&mut self, id: u64) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        self.listeners.remove(
            id,
            connection.tenant_id,
            &connection.user,
            &connection.topics,
        );
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
            self.slots.release(connection.tenant_id, id);
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
                && let Err(ending) =
                    connection
                        .sink
                        .take(frames, now, &self.stats, self.backlog_limit)
            {
                ended.push((id, ending));
            }
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
    pub sender: mpsc::Sender<Frames>,
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
                connection.sink.last(&end.last);
            }
            self.end(id, Ending::Over);
        }
    }
}

/// A group of committed events, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Deliver(pub Arc<Vec<Delivery>>);

impl Handler<Deliver> for Shard {
    type Result = ();

    fn handle(&mut self, Deliver(batch): Deliver, ctx: &mut Context<Self>) {
        // Only queued here, per tenant: handing out is `Work`'s, a turn at a time. So the
        // mailbox empties at once into the tenants' queues, and a tenant whose groups
        // arrive faster than they can be handed out cannot put another tenant's event
        // behind all of them.
        let mut start = 0;
        while start < batch.len() {
            let tenant_id = batch[start].tenant_id;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|d| d.tenant_id == tenant_id)
                    .count();
            let queued = self.waiting.push(
                tenant_id,
                Run {
                    batch: batch.clone(),
                    next: start,
                    end,
                },
            );
            if queued > self.backlog_limit {
                self.too_far_behind(tenant_id);
            }
            start = end;
        }
        if !self.working {
            self.working = true;
            ctx.notify(Work);
        }
    }
}

/// The most hand-offs (a delivery to one stream) in a tenant's turn.
const HANDOFFS_PER_TURN: usize = 32_768;

/// Part of a committed group, one tenant's deliveries `next..end`, not yet handed out.
struct Run {
    batch: Arc<Vec<Delivery>>,
    next: usize,
    end: usize,
}

/// Hands out the next tenant's turn of what waits, then lets the mailbox in (new streams,
/// other tenants' groups) before the next turn.
#[derive(Message)]
#[rtype(result = "()")]
struct Work;

impl Handler<Work> for Shard {
    type Result = ();

    fn handle(&mut self, _: Work, ctx: &mut Context<Self>) {
        let listeners = &self.listeners;
        let turn = self.waiting.turn(|runs| {
            let run = runs.front_mut()?;
            let start = run.next;
            let mut handoffs = 0;
            while run.next < run.end && (run.next == start || handoffs < HANDOFFS_PER_TURN) {
                handoffs += listeners.of(&run.batch[run.next]).len().max(1);
                run.next += 1;
            }
            let slice = (run.batch.clone(), start..run.next);
            if run.next == run.end {
                runs.pop_front();
            }
            Some(slice)
        });
        if let Some(Some((batch, range))) = turn {
            self.deliver(&batch[range]);
        }
        if self.waiting.is_empty() {
            self.working = false;
        } else {
            ctx.notify(Work);
        }
    }
}

impl Shard {
    /// A tenant's groups arrive faster than this shard hands them out: its streams here end
    /// as too slow (they reconnect and resume from the log, missing nothing) and what waited
    /// for them goes.
    fn too_far_behind(&mut self, tenant_id: i64) {
        self.waiting.remove(tenant_id);
        let streams: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| c.tenant_id == tenant_id)
            .map(|(&id, _)| id)
            .collect();
        tracing::warn!(
            tenant_id,
            streams = streams.len(),
            "a tenant publishes faster than its streams can be served; they resume from the log"
        );
        for id in streams {
            self.end(id, Ending::Slow);
        }
    }

    /// Hands `deliveries` (one commit group, or a slice of one) to their listeners.
    fn deliver(&mut self, deliveries: &[Delivery]) {
        let mut ended = Vec::new();
        let mut reached = TenantTally::default();
        if let [delivery] = deliveries {
            // One event: straight to each listener, without gathering per connection.
            let now = self.clock.now();
            let listeners = self.listeners.of(delivery);
            reached.add(delivery.tenant_id, listeners.len());
            for &id in listeners {
                if let Some(connection) = self.connections.get_mut(&id)
                    && let Err(ending) = connection.sink.take(
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
            for delivery in deliveries {
                let listeners = self.listeners.of(delivery);
                reached.add(delivery.tenant_id, listeners.len());
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
        reached.record(&self.stats);
        for (id, ending) in ended {
            // A queue's task sees its queue close and ends the stream; the browser then
            // reconnects and resumes from the log.
            self.end(id, ending);
        }
    }
}

/// Events handed to streams in one delivery, per tenant: a batch is nearly always one
/// tenant's, so runs are summed here and the shared counts are touched once per run.
#[derive(Default)]
struct TenantTally {
    run: Option<(i64, u64)>,
    runs: Vec<(i64, u64)>,
}

impl TenantTally {
    fn add(&mut self, tenant_id: i64, streams: usize) {
        match &mut self.run {
            Some((tenant, count)) if *tenant == tenant_id => *count += streams as u64,
            run => {
                if let Some(done) = run.take() {
                    self.runs.push(done);
                }
                *run = Some((tenant_id, streams as u64));
            }
        }
    }

    fn record(mut self, stats: &HubStats) {
        self.runs.extend(self.run.take());
        self.runs.retain(|(_, count)| *count > 0);
        if !self.runs.is_empty() {
            stats.delivered_to.add(self.runs);
        }
    }
}
