//! The group-commit writer: it takes every append request that is waiting (tenants in
//! turns), commits them all in one transaction (the cost of a commit is paid once for the
//! whole group), tells the `CommitListener`, and only then answers each request. A group
//! that failed in a way that may have committed anyway is read back before the tenant's
//! next one is delivered (`Unsure`).
//!
//! On SQLite the writer is a thread of its own that commits through the log's own
//! connection (`sqlite`), blocking on the disk: a publish crosses from the HTTP worker to
//! this thread and back, nothing between. On PostgreSQL it is a task that commits through
//! the pool (`group`), where each statement is a round trip on the network anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Span;

use super::group::commit_group;
use super::idempotency::{IdempotencyClaim, InFlight};
use super::sqlite::SqliteLog;
use super::{AppendOutcome, AppendRejection, CommitListener};
use crate::domain::event::NewEvent;
use crate::domain::log::LoggedEvent;
use crate::fair::Turns;
use crate::store::{Store, StoreError, WriterHeld};
use crate::traces;

/// The most events one group commit takes; more wait for the next one.
const MAX_GROUP_EVENTS: usize = 5_000;
/// The most events read back after a commit whose outcome was unknown (one group's worth,
/// with room for other nodes' events between; beyond it the broker's catch-up reads on).
const UNSURE_READ: u64 = 2 * MAX_GROUP_EVENTS as u64;
/// How many append requests may wait for the writer before publishers are held back.
const QUEUE_DEPTH: usize = 4_096;

pub(super) struct AppendJob {
    pub(super) tenant_id: i64,
    pub(super) events: Vec<NewEvent>,
    pub(super) claim: Option<IdempotencyClaim>,
    /// The publish's span (`traces`); a disabled span when it is not traced.
    pub(super) trace: Span,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// Counts of what the writer has done since it started.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Transactions committed.
    pub groups: AtomicU64,
    /// Append requests answered by those transactions.
    pub requests: AtomicU64,
    /// Events written.
    pub events: AtomicU64,
}

/// The handle publishers append through; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    jobs: mpsc::Sender<AppendJob>,
    stats: Arc<LogStats>,
    /// Idempotency keys whose request is being appended right now on this node. (Across
    /// nodes the key's primary key makes the later transaction wait and replay instead.)
    in_flight: InFlight,
}

impl EventLog {
    /// Starts the writer: on SQLite a thread of its own, else a task on the current runtime
    /// (whose I/O the thread uses too). It ends when every handle is dropped.
    pub fn start(store: Store, listener: Arc<dyn CommitListener>) -> Result<EventLog, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(LogStats::default());
        let writer = Writer {
            store: store.clone(),
            stats: stats.clone(),
            listener,
        };
        match open_sqlite(&store) {
            Some(log) => {
                let runtime = Handle::current();
                let committer = Committer::Sqlite { log, held: None };
                std::thread::Builder::new()
                    .name("herald-log".into())
                    .spawn(move || runtime.block_on(writer.run(queue, committer)))
                    .map_err(|e| {
                        StoreError::Setup(format!("cannot start the log's writer thread: {e}"))
                    })?;
            }
            None => {
                tokio::spawn(writer.run(queue, Committer::Pool));
            }
        }
        Ok(EventLog {
            jobs,
            stats,
            in_flight: InFlight::default(),
        })
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Appends `events` for one tenant and returns once they are committed (or once it is
    /// known that nothing will be written). `trace` is the publish's span, under which the
    /// commit and the hand-off to the hub are traced.
    pub async fn append(
        &self,
        tenant_id: i64,
        events: Vec<NewEvent>,
        claim: Option<IdempotencyClaim>,
        trace: &Span,
    ) -> Result<AppendOutcome, StoreError> {
        let _guard = match &claim {
            None => None,
            Some(claim) => match self.in_flight.hold(tenant_id, claim.key.as_str()) {
                Some(guard) => Some(guard),
                None => return Ok(AppendOutcome::Rejected(AppendRejection::InFlight)),
            },
        };
        let (reply, answer) = oneshot::channel();
        let job = AppendJob {
            tenant_id,
            events,
            claim,
            trace: trace.clone(),
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The log's own SQLite connection, when the store is a SQLite file it can open.
fn open_sqlite(store: &Store) -> Option<SqliteLog> {
    let file = store.sqlite_file()?;
    match SqliteLog::open(file) {
        Ok(log) => Some(log),
        Err(error) => {
            tracing::warn!(%error, "the event log commits through the connection pool");
            None
        }
    }
}

/// How a group reaches the database.
enum Committer {
    /// Through the store's pool (sea-orm).
    Pool,
    /// Through the log's own SQLite connection, holding the pool's writer connection
    /// meanwhile (`Held`).
    Sqlite { log: SqliteLog, held: Option<Held> },
}

/// The pool's writer connection, kept by the SQLite writer from one group to the next while
/// publishes keep coming: handing it back costs the pool a round trip to its driver's
/// thread, and the writer waits for that before it may take it again. Other writers of the
/// process wait meanwhile, for at most `HOLD_MAX` plus a commit (the pool hands its
/// connection out in the order it was asked for).
struct Held {
    _connection: Option<WriterHeld>,
    since: Instant,
}

/// The longest the SQLite writer keeps the pool's writer connection while it commits group
/// after group.
const HOLD_MAX: Duration = Duration::from_millis(4);
/// How long the SQLite writer keeps it once no publish is waiting.
const HOLD_IDLE: Duration = Duration::from_millis(1);

impl Committer {
    async fn commit(
        &mut self,
        store: &Store,
        group: &mut [AppendJob],
        first_seqs: &mut HashMap<i64, i64>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        match self {
            Committer::Pool => commit_group(store, group, first_seqs).await,
            Committer::Sqlite { log, held } => {
                if held.as_ref().is_some_and(|h| h.since.elapsed() >= HOLD_MAX) {
                    *held = None;
                }
                if held.is_none() {
                    *held = Some(Held {
                        _connection: store.hold_writer().await?,
                        since: Instant::now(),
                    });
                }
                log.commit(group, first_seqs)
            }
        }
    }

    /// Until when the writer may wait for the next publish before it lets go of what it
    /// holds (`release`).
    fn hold_until(&self) -> Option<Instant> {
        match self {
            Committer::Sqlite {
                held: Some(held), ..
            } => Some((held.since + HOLD_MAX).min(Instant::now() + HOLD_IDLE)),
            _ => None,
        }
    }

    fn release(&mut self) {
        if let Committer::Sqlite { held, .. } = self {
            *held = None;
        }
    }

    /// The next append request; `None` once every handle is dropped.
    async fn next_job(&mut self, queue: &mut mpsc::Receiver<AppendJob>) -> Option<AppendJob> {
        if let Some(deadline) = self.hold_until() {
            if let Ok(job) = tokio::time::timeout_at(deadline, queue.recv()).await {
                return job;
            }
            self.release();
        }
        queue.recv().await
    }
}

/// What the writer answers to, whichever way it commits.
struct Writer {
    store: Store,
    stats: Arc<LogStats>,
    listener: Arc<dyn CommitListener>,
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<AppendJob>, mut committer: Committer) {
        let mut waiting = RoundRobin::default();
        let mut unsure = Unsure::default();
        loop {
            if waiting.is_empty() {
                match committer.next_job(&mut queue).await {
                    Some(job) => waiting.push(job),
                    None => return,
                }
            }
            // Everything that is waiting, up to the queue's depth (beyond it publishers
            // wait on the channel).
            while waiting.len() < QUEUE_DEPTH {
                match queue.try_recv() {
                    Ok(job) => waiting.push(job),
                    Err(_) => break,
                }
            }
            let mut group = waiting.take_group(MAX_GROUP_EVENTS);
            let group_events: usize = group.iter().map(|job| job.events.len()).sum();
            let mut first_seqs = HashMap::new();
            let commit_spans = traced(&group, |trace| {
                traces::commit(trace, group.len(), group_events)
            });
            let committed = committer
                .commit(&self.store, &mut group, &mut first_seqs)
                .await;
            drop(commit_spans);
            match committed {
                Ok(mut outcomes) => {
                    let handoff_spans = traced(&group, traces::handoff);
                    if !handoff_spans.is_empty() {
                        mark_traced(&group, &mut outcomes);
                    }
                    self.store.health().recovered();
                    let committed: Vec<&LoggedEvent> = outcomes
                        .iter()
                        .filter_map(|outcome| match outcome {
                            AppendOutcome::Committed(events) => Some(events.iter()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    let earlier = unsure.resolve(&self.store, &committed).await;
                    if !earlier.is_empty() {
                        self.listener.committed(&earlier.iter().collect::<Vec<_>>());
                    }
                    self.listener.committed(&committed);
                    drop(handoff_spans);
                    self.count(group.len(), group_events);
                    for (job, outcome) in group.into_iter().zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, requests = group.len(), "group commit failed");
                    if let Some(fault) = error.fault() {
                        self.store.health().failed(fault);
                    }
                    unsure.failed(first_seqs);
                    for job in group {
                        // Each request gets the same answer: a storage fault is retried later.
                        let _ = job.reply.send(Err(error.for_another_waiter()));
                    }
                }
            }
        }
    }

    fn count(&self, requests: usize, events: usize) {
        let stats = &self.stats;
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(requests as u64, Ordering::Relaxed);
        stats.events.fetch_add(events as u64, Ordering::Relaxed);
        tracing::trace!(requests, events, "group committed");
    }
}

/// A span from `make` for each request of the group whose publish is traced; none (and
/// nothing allocated) while traces are off.
fn traced(group: &[AppendJob], make: impl Fn(&Span) -> Span) -> Vec<Span> {
    group
        .iter()
        .filter(|job| !job.trace.is_disabled())
        .map(|job| make(&job.trace))
        .collect()
}

/// Gives the committed events of traced publishes their publish's place in its trace, so
/// the hub can trace a delivery of theirs.
fn mark_traced(group: &[AppendJob], outcomes: &mut [AppendOutcome]) {
    for (job, outcome) in group.iter().zip(outcomes) {
        if let AppendOutcome::Committed(events) = outcome
            && let Some(context) = traces::sampled_context(&job.trace)
        {
            for event in events {
                event.trace = Some(context.clone());
            }
        }
    }
}

/// Tenants whose group failed in a way that may have committed it all the same: a
/// connection lost during `COMMIT` leaves the outcome unknown (PostgreSQL may have
/// committed it before the answer was lost). Their publishers were told it failed, but
/// streams must still get whatever did commit, in order: the tenant's next commit here
/// first reads what lies between the failed group's first seq and its own.
#[derive(Default)]
struct Unsure(HashMap<i64, i64>);

impl Unsure {
    /// A group failed; `first_seqs` are the seqs it began at, per tenant.
    fn failed(&mut self, first_seqs: HashMap<i64, i64>) {
        for (tenant, seq) in first_seqs {
            let first = self.0.entry(tenant).or_insert(seq);
            *first = (*first).min(seq);
        }
    }

    /// The events committed since a failed group of a tenant in `committed` began, before
    /// `committed`'s own; they are read from the log (failing that, only a reconnecting
    /// stream gets them).
    async fn resolve(&mut self, store: &Store, committed: &[&LoggedEvent]) -> Vec<LoggedEvent> {
        let mut earlier = Vec::new();
        if self.0.is_empty() {
            return earlier;
        }
        // A tenant's events are in seq order: its first one here takes the entry, and
        // the rest find none.
        for event in committed {
            let Some(from) = self.0.remove(&event.tenant_id) else {
                continue;
            };
            if event.id.seq <= from {
                continue;
            }
            let read = store
                .read_range(
                    event.tenant_id,
                    &event.id.epoch,
                    from - 1,
                    event.id.seq - 1,
                    UNSURE_READ,
                )
                .await;
            match read {
                Ok(events) => earlier.extend(events),
                Err(error) => {
                    tracing::error!(%error, "cannot read events of a commit whose outcome was unknown")
                }
            }
        }
        earlier
    }
}

/// The append requests waiting for the writer, per tenant, taken in turns (`fair::Turns`):
/// each group takes one request of each tenant in rotation until it is full, so a tenant
/// publishing large batches as fast as it may fills its share of each group, not the whole
/// of it, and one event of another tenant waits for at most one group. A tenant's own
/// requests keep their order.
#[derive(Default)]
struct RoundRobin(Turns<AppendJob>);

impl RoundRobin {
    fn push(&mut self, job: AppendJob) {
        self.0.push(job.tenant_id, job);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next group: at least one request, and requests in turn while the group has
    /// fewer than `max_events` events.
    fn take_group(&mut self, max_events: usize) -> Vec<AppendJob> {
        let mut group: Vec<AppendJob> = Vec::new();
        let mut events = 0;
        loop {
            let took = self.0.turn(|queue| {
                let fits = queue
                    .front()
                    .is_some_and(|job| group.is_empty() || events + job.events.len() <= max_events);
                // One that does not fit waits for the next group, at the back of the line.
                if !fits {
                    return false;
                }
                let Some(job) = queue.pop_front() else {
                    return false;
                };
                events += job.events.len();
                group.push(job);
                true
            });
            if took != Some(true) {
                return group;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{EventType, Target};
    use crate::domain::names::UserId;

    fn job(tenant_id: i64, events: usize) -> AppendJob {
        let event = NewEvent {
            target: Target::User(UserId::parse("u").unwrap()),
            event_type: EventType::default(),
            data: "null".into(),
            inbox: false,
            fallback: None,
            item: 0,
        };
        AppendJob {
            tenant_id,
            events: vec![event; events],
            claim: None,
            trace: Span::none(),
            reply: oneshot::channel().0,
        }
    }

    fn tenants(group: &[AppendJob]) -> Vec<(i64, usize)> {
        group
            .iter()
            .map(|j| (j.tenant_id, j.events.len()))
            .collect()
    }

    #[test]
    fn a_tenant_s_large_batches_take_turns_with_others_small_ones() {
        let mut waiting = RoundRobin::default();
        for _ in 0..5 {
            waiting.push(job(1, 1000));
        }
        waiting.push(job(2, 1));
        waiting.push(job(2, 1));
        waiting.push(job(3, 1));
        // Tenant 1 was first, but tenants 2 and 3 get their turn in its first group.
        assert_eq!(
            tenants(&waiting.take_group(2000)),
            [(1, 1000), (2, 1), (3, 1)]
        );
        assert_eq!(tenants(&waiting.take_group(2000)), [(2, 1), (1, 1000)]);
        assert_eq!(tenants(&waiting.take_group(2000)), [(1, 1000), (1, 1000)]);
        assert_eq!(tenants(&waiting.take_group(2000)), [(1, 1000)]);
        assert!(waiting.is_empty());
        // A request larger than a group still makes one of its own.
        waiting.push(job(1, 5000));
        assert_eq!(tenants(&waiting.take_group(2000)), [(1, 5000)]);
    }
}
