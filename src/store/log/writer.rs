//! The group-commit writer: one task takes every append request that is waiting (tenants
//! in turns), commits them all in one transaction (`group`: the cost of a commit is paid
//! once for the whole group), tells the `CommitListener`, and only then answers each
//! request. A group that failed in a way that may have committed anyway is read back before
//! the tenant's next one is delivered (`Unsure`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::group::commit_group;
use super::idempotency::{IdempotencyClaim, InFlight};
use super::sqlite::{Committed, SqliteLog};
use super::{AppendOutcome, AppendRejection, CommitListener};
use crate::domain::event::NewEvent;
use crate::domain::log::LoggedEvent;
use crate::fair::Turns;
use crate::store::{Store, StoreError};

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
    /// Starts the writer task on the current runtime. It ends when every handle is dropped.
    pub fn start(store: Store, listener: Arc<dyn CommitListener>) -> EventLog {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(LogStats::default());
        tokio::spawn(run_writer(store, queue, stats.clone(), listener));
        EventLog {
            jobs,
            stats,
            in_flight: InFlight::default(),
        }
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Appends `events` for one tenant and returns once they are committed (or once it is
    /// known that nothing will be written).
    pub async fn append(
        &self,
        tenant_id: i64,
        events: Vec<NewEvent>,
        claim: Option<IdempotencyClaim>,
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
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run_writer(
    store: Store,
    mut queue: mpsc::Receiver<AppendJob>,
    stats: Arc<LogStats>,
    listener: Arc<dyn CommitListener>,
) {
    let sqlite = store
        .sqlite_file()
        .and_then(|file| match SqliteLog::open(file) {
            Ok(log) => Some(log),
            Err(error) => {
                tracing::warn!(%error, "the event log commits through the connection pool");
                None
            }
        });
    let mut waiting = RoundRobin::default();
    let mut unsure = Unsure::default();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(job) => waiting.push(job),
                None => return,
            }
        }
        // Everything that is waiting, up to the queue's depth (beyond it publishers wait
        // on the channel, as before).
        while waiting.len() < QUEUE_DEPTH {
            match queue.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        let group = waiting.take_group(MAX_GROUP_EVENTS);
        let group_events: usize = group.iter().map(|job| job.events.len()).sum();
        let (group, first_seqs, committed) = commit(&store, sqlite.as_ref(), group).await;
        match committed {
            Ok(outcomes) => {
                store.health().recovered();
                let committed: Vec<&LoggedEvent> = outcomes
                    .iter()
                    .filter_map(|outcome| match outcome {
                        AppendOutcome::Committed(events) => Some(events.iter()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let earlier = unsure.resolve(&store, &committed).await;
                if !earlier.is_empty() {
                    listener.committed(&earlier.iter().collect::<Vec<_>>());
                }
                listener.committed(&committed);
                stats.groups.fetch_add(1, Ordering::Relaxed);
                stats
                    .requests
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                stats
                    .events
                    .fetch_add(group_events as u64, Ordering::Relaxed);
                tracing::trace!(
                    requests = group.len(),
                    events = group_events,
                    "group committed"
                );
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = group.len(), "group commit failed");
                if let Some(fault) = error.fault() {
                    store.health().failed(fault);
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

/// Commits a group: on SQLite on the log's own thread, holding the pool's writer
/// connection meanwhile; else through the pool.
async fn commit(store: &Store, sqlite: Option<&SqliteLog>, mut group: Vec<AppendJob>) -> Committed {
    let Some(log) = sqlite else {
        let mut first_seqs = HashMap::new();
        let committed = commit_group(store, &mut group, &mut first_seqs).await;
        return (group, first_seqs, committed);
    };
    match store.hold_writer().await {
        Ok(_held) => log.commit(group).await,
        Err(error) => (group, HashMap::new(), Err(error)),
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
