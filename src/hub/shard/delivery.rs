//! Handing committed groups out to a shard's streams, one tenant's turn at a time.
//!
//! A group arriving (`Deliver`) is only queued, split into runs of one tenant's events, in
//! that tenant's queue (`fair::Turns`); so the mailbox empties at once, and a tenant whose
//! groups arrive faster than they can be handed out cannot put another tenant's event
//! behind all of them. A group joins the tenant's last run while that run waits for its
//! first turn (up to `RUN_EVENTS`), so a tenant with many small groups waiting gets them
//! out in one turn and each stream in one write. Each `TakeTurn` message then does one bounded
//! turn of the next tenant's front run and lets the mailbox in before the next.
//!
//! A run is handed out in two phases, both of which a turn may stop in: gathering, per
//! stream, the run's frames it listens to, then writing each stream its frames in one go.
//! A broadcast of ten events to 9,000 streams is so cut into turns of about a hundred
//! streams, while each stream still gets its ten frames in one write. A tenant's own events
//! keep their order: its next run waits until this one is written out. A tenant more than
//! `stream.queue_capacity` groups behind has its streams here closed as slow (they resume
//! from the log).

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use actix::{AsyncContext, Context, Handler, Message};
use opentelemetry::trace::SpanContext;

use super::Shard;
use crate::hub::sink::Ending;
use crate::hub::{Delivery, Queued};
use crate::traces;

/// How much one turn does: a frame gathered for a stream costs 1, writing a stream its
/// frames `WRITE_COST` more (a system call or a task's wake-up, the dearer part). About a
/// hundred streams' writes: a millisecond or two, some more when the cores are saturated.
const TURN_WORK: usize = 4_096;
const WRITE_COST: usize = 32;

/// A group of committed events, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::hub) struct Deliver(pub Arc<Vec<Delivery>>);

/// The most events one run gathers: groups arriving while a tenant's run waits join it up
/// to this many, so a tenant behind gets its groups out in fewer, larger writes.
const RUN_EVENTS: usize = 1_024;

/// One tenant's events of one or more committed groups, handed out together: each stream
/// gets its frames of the whole run in one write.
pub(super) struct Run {
    /// Each group's deliveries `next..end` of that tenant, in commit order.
    slices: Vec<Slice>,
    /// The slice being gathered; `slices.len()` once all are.
    at: usize,
    events: usize,
    /// Its first turn has come: what it hands out is settled.
    begun: bool,
    /// Per stream, the frames gathered so far.
    gathered: HashMap<u64, Queued>,
    /// Once all are gathered: the streams still to be written, with their frames.
    writes: Vec<(u64, Queued)>,
    /// The trace of a traced publish among its events: the next write is traced in it.
    trace: Option<Arc<SpanContext>>,
}

struct Slice {
    batch: Arc<Vec<Delivery>>,
    next: usize,
    end: usize,
}

impl Run {
    fn new(slice: Slice) -> Run {
        Run {
            events: slice.end - slice.next,
            trace: slice.trace(),
            slices: vec![slice],
            at: 0,
            begun: false,
            gathered: HashMap::new(),
            writes: Vec::new(),
        }
    }

    /// Adds a later group's slice to a run not yet begun, if it stays within `RUN_EVENTS`.
    fn join(&mut self, slice: Slice) -> Result<(), Slice> {
        let events = self.events + (slice.end - slice.next);
        if self.begun || events > RUN_EVENTS {
            return Err(slice);
        }
        self.events = events;
        if self.trace.is_none() {
            self.trace = slice.trace();
        }
        self.slices.push(slice);
        Ok(())
    }
}

impl Slice {
    /// The trace of the first traced publish among its events.
    fn trace(&self) -> Option<Arc<SpanContext>> {
        if !traces::on() {
            return None;
        }
        self.batch[self.next..self.end]
            .iter()
            .find_map(|delivery| delivery.trace.clone())
    }
}

/// A finished run's emptied collections, kept so the next run reuses their memory.
#[derive(Default)]
pub(super) struct Spare {
    gathered: HashMap<u64, Queued>,
    writes: Vec<(u64, Queued)>,
}

impl Handler<Deliver> for Shard {
    type Result = ();

    fn handle(&mut self, Deliver(batch): Deliver, ctx: &mut Context<Self>) {
        let mut start = 0;
        while start < batch.len() {
            let tenant_id = batch[start].tenant_id;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|d| d.tenant_id == tenant_id)
                    .count();
            let slice = Slice {
                batch: batch.clone(),
                next: start,
                end,
            };
            let joined = match self.waiting.last_mut(tenant_id) {
                Some(run) => run.join(slice),
                None => Err(slice),
            };
            if let Err(slice) = joined {
                self.waiting.push(tenant_id, Run::new(slice));
            }
            let behind: usize = self
                .waiting
                .waiting(tenant_id)
                .map(|r| r.slices.len())
                .sum();
            if behind > self.backlog_limit {
                self.too_far_behind(tenant_id);
            }
            start = end;
        }
        if !self.working {
            self.working = true;
            ctx.notify(TakeTurn);
        }
    }
}

/// Does a turn of the next tenant's front run, then lets the mailbox in (new streams,
/// other tenants' groups, sockets ready) before the next.
#[derive(Message)]
#[rtype(result = "()")]
struct TakeTurn;

impl Handler<TakeTurn> for Shard {
    type Result = ();

    fn handle(&mut self, _: TakeTurn, ctx: &mut Context<Self>) {
        if let Some((tenant_id, mut run)) = self.waiting.pop() {
            if self.turn(tenant_id, &mut run, ctx) {
                self.spare.keep(run);
            } else {
                self.waiting.put_back(tenant_id, run);
            }
        }
        if self.waiting.is_empty() {
            self.working = false;
        } else {
            ctx.notify(TakeTurn);
        }
    }
}

impl Shard {
    /// Hands out up to a turn's work of `run`; true when all of it is handed out.
    fn turn(&mut self, tenant_id: i64, run: &mut Run, ctx: &mut Context<Self>) -> bool {
        run.begun = true;
        let mut work = 0;
        let mut reached = 0;
        while run.at < run.slices.len() && work < TURN_WORK {
            let streams = self.gather(run);
            reached += streams as u64;
            work += streams.max(1);
        }
        let now = self.clock.now();
        while work < TURN_WORK
            && let Some((id, frames)) = run.writes.pop()
        {
            work += WRITE_COST + frames.as_slice().len();
            let traced = run
                .trace
                .take()
                .map(|parent| traces::stream_write(&parent, frames.as_slice().len()));
            let _traced = traced.as_ref().map(|span| span.enter());
            // A stream that cannot take them ends; a queue's task then ends it, and the
            // browser reconnects and resumes from the log.
            self.send_to(id, frames, now, ctx);
        }
        if reached > 0 {
            self.stats.delivered_to.add([(tenant_id, reached)]);
        }
        run.at == run.slices.len() && run.writes.is_empty()
    }

    /// Gathers the run's next delivery for its listeners; returns how many there are. The
    /// last delivery moves what was gathered to the writes.
    fn gather(&mut self, run: &mut Run) -> usize {
        let index = run.at;
        let slice = &mut run.slices[index];
        let at = slice.next;
        slice.next += 1;
        if slice.next == slice.end {
            run.at += 1;
        }
        let last = run.at == run.slices.len();
        let delivery = &run.slices[index].batch[at];
        let listeners = self.listeners.of(delivery);
        if run.writes.capacity() == 0 {
            run.writes = mem::take(&mut self.spare.writes);
        }
        if run.gathered.is_empty() && last {
            // A run of one event (or its last event with nothing before it): no gathering.
            run.writes.extend(
                listeners
                    .iter()
                    .map(|&id| (id, Queued::One(delivery.frame.clone()))),
            );
            return listeners.len();
        }
        if run.gathered.capacity() == 0 {
            run.gathered = mem::take(&mut self.spare.gathered);
        }
        for &id in listeners {
            match run.gathered.get_mut(&id) {
                Some(frames) => frames.push(delivery.frame.clone()),
                None => {
                    run.gathered.insert(id, Queued::One(delivery.frame.clone()));
                }
            }
        }
        if last {
            run.writes.extend(run.gathered.drain());
        }
        listeners.len()
    }

    /// A tenant's groups arrive faster than this shard hands them out: its streams here end
    /// as too slow (they reconnect and resume from the log, missing nothing) and what waited
    /// for them goes.
    fn too_far_behind(&mut self, tenant_id: i64) {
        self.waiting.remove(tenant_id);
        let streams = self.tenant_stream_ids(tenant_id, |_| true);
        tracing::warn!(
            tenant_id,
            streams = streams.len(),
            "a tenant publishes faster than its streams can be served; they resume from the log"
        );
        for id in streams {
            self.end(id, Ending::Slow);
        }
    }
}

impl Spare {
    /// Keeps a finished run's (empty) collections if they hold more memory than these.
    fn keep(&mut self, run: Run) {
        if run.gathered.capacity() > self.gathered.capacity() {
            self.gathered = run.gathered;
        }
        if run.writes.capacity() > self.writes.capacity() {
            self.writes = run.writes;
        }
    }
}
