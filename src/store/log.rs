//! The event log: every published event, per tenant, under a gap-free sequence.
//!
//! Appends go through one writer task (`EventLog`). It takes every append request that is
//! waiting, commits them all in one transaction (group commit: the cost of a commit is paid
//! once for the whole group), and only then answers each request. Inside that transaction
//! each tenant's counter row is read with a row lock (`SELECT … FOR UPDATE` on PostgreSQL;
//! SQLite has one writer at a time anyway), sequence numbers are handed out from it and it
//! is moved on. So sequence order is commit order, per tenant, even with several Herald
//! nodes on one PostgreSQL: a reader that has seen seq N can never later find a new event
//! below N.
//!
//! Idempotency records are written in the same transaction as the events they answer for,
//! so a retried request can never find its events without its record or the other way round.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::{mpsc, oneshot};

use super::entities::{event, idempotency_key, tenant};
use super::{Store, StoreError};
use crate::domain::event::{EventId, NewEvent, Receipt, Target};
use crate::domain::now_ms;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// The most events one group commit takes; more wait for the next one.
const MAX_GROUP_EVENTS: usize = 5_000;
/// Rows per INSERT statement (well under every engine's bound-parameter limit).
const INSERT_CHUNK: usize = 500;
/// How many append requests may wait for the writer before publishers are held back.
const QUEUE_DEPTH: usize = 4_096;

/// An event as it stands in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub tenant_id: i64,
    pub id: EventId,
    pub target: Target,
    pub event_type: String,
    /// Compact JSON of the published `data`.
    pub data: String,
    pub created_at: i64,
}

impl LoggedEvent {
    pub fn receipt(&self) -> Receipt {
        Receipt {
            id: self.id.to_string(),
            to: self.target.to_json(),
            event_type: self.event_type.clone(),
        }
    }
}

/// A request's `Idempotency-Key` and the hash of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// What became of one append request.
#[derive(Debug)]
pub enum AppendOutcome {
    /// The events are committed, in this order.
    Committed(Vec<LoggedEvent>),
    /// The idempotency key was used before with the same body: its first answer.
    Replayed(Vec<Receipt>),
    /// The idempotency key was used before with another body; nothing was written.
    KeyReused,
    /// The tenant was removed while the request waited; nothing was written.
    TenantGone,
    /// A request with the same idempotency key is still being appended on this node.
    InFlight,
}

struct AppendJob {
    tenant_id: i64,
    events: Vec<NewEvent>,
    claim: Option<IdempotencyClaim>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// Told about every committed group of events, in commit order, before the publishers
/// get their answers. The hub implements it to deliver events live.
pub trait CommitListener: Send + Sync {
    fn committed(&self, events: &[&LoggedEvent]);
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
    in_flight: Arc<Mutex<HashSet<(i64, String)>>>,
}

/// Holds an idempotency key as in flight; releases it when dropped, however the append
/// ends (even if the publishing request is abandoned half-way).
struct InFlightGuard {
    set: Arc<Mutex<HashSet<(i64, String)>>>,
    entry: (i64, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
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
            in_flight: Arc::default(),
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
            Some(claim) => {
                let entry = (tenant_id, claim.key.clone());
                let mut set = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if !set.insert(entry.clone()) {
                    return Ok(AppendOutcome::InFlight);
                }
                Some(InFlightGuard {
                    set: self.in_flight.clone(),
                    entry,
                })
            }
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
    while let Some(first) = queue.recv().await {
        let mut group_events = first.events.len();
        let mut group = vec![first];
        while group_events < MAX_GROUP_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    group_events += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        match commit_group(&store, &group).await {
            Ok(outcomes) => {
                let committed: Vec<&LoggedEvent> = outcomes
                    .iter()
                    .filter_map(|outcome| match outcome {
                        AppendOutcome::Committed(events) => Some(events.iter()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
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
                let message = error.to_string();
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(StoreError::CommitFailed(message.clone())));
                }
            }
        }
    }
}

/// One transaction for the whole group; the outcomes are in the group's order.
async fn commit_group(
    store: &Store,
    group: &[AppendJob],
) -> Result<Vec<AppendOutcome>, StoreError> {
    let txn = store.begin_write().await?;
    let now = now_ms();
    let mut outcomes: Vec<Option<AppendOutcome>> = group.iter().map(|_| None).collect();
    let mut rows = Vec::new();

    // Tenants in order of first appearance, each with its jobs in arrival order.
    let mut by_tenant: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    for (index, job) in group.iter().enumerate() {
        let slot = *position.entry(job.tenant_id).or_insert_with(|| {
            by_tenant.push((job.tenant_id, Vec::new()));
            by_tenant.len() - 1
        });
        by_tenant[slot].1.push(index);
    }

    for (tenant_id, jobs) in by_tenant {
        // The row lock that makes sequence order commit order on PostgreSQL.
        let Some(counter) = tenant::Entity::find_by_id(tenant_id)
            .lock_exclusive()
            .one(&txn)
            .await?
        else {
            for index in jobs {
                outcomes[index] = Some(AppendOutcome::TenantGone);
            }
            continue;
        };
        let mut next_seq = counter.next_seq;
        for index in jobs {
            let job = &group[index];
            if let Some(claim) = &job.claim
                && let Some(earlier) = claim_key(&txn, tenant_id, claim, now).await?
            {
                outcomes[index] = Some(earlier);
                continue;
            }
            let committed: Vec<LoggedEvent> = job
                .events
                .iter()
                .map(|new| {
                    let seq = next_seq;
                    next_seq += 1;
                    LoggedEvent {
                        tenant_id,
                        id: EventId {
                            epoch: counter.epoch.clone(),
                            seq,
                        },
                        target: new.target.clone(),
                        event_type: new.event_type.clone(),
                        data: new.data.clone(),
                        created_at: now,
                    }
                })
                .collect();
            rows.extend(committed.iter().map(|e| event::ActiveModel {
                tenant_id: Set(tenant_id),
                seq: Set(e.id.seq),
                target_kind: Set(e.target.kind().to_owned()),
                target: Set(e.target.name().to_owned()),
                event_type: Set(e.event_type.clone()),
                data: Set(e.data.clone()),
                created_at: Set(e.created_at),
            }));
            if let Some(claim) = &job.claim {
                // Written now rather than at the end, so that a retry of the same request
                // in this very group already finds the answer.
                record_receipts(&txn, tenant_id, claim, &committed).await?;
            }
            outcomes[index] = Some(AppendOutcome::Committed(committed));
        }
        if next_seq != counter.next_seq {
            tenant::Entity::update_many()
                .col_expr(tenant::Column::NextSeq, Expr::value(next_seq))
                .filter(tenant::Column::Id.eq(tenant_id))
                .exec(&txn)
                .await?;
        }
    }

    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        event::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(AppendOutcome::TenantGone))
        .collect())
}

async fn record_receipts(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    claim: &IdempotencyClaim,
    committed: &[LoggedEvent],
) -> Result<(), StoreError> {
    let receipts: Vec<Receipt> = committed.iter().map(LoggedEvent::receipt).collect();
    let receipts = serde_json::to_string(&receipts)
        .map_err(|e| StoreError::Corrupt(format!("receipts: {e}")))?;
    idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::Receipts, Expr::value(receipts))
        .filter(idempotency_key::Column::TenantId.eq(tenant_id))
        .filter(idempotency_key::Column::IdemKey.eq(claim.key.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Claims an idempotency key inside the append transaction. `None`: the key is new and now
/// ours. `Some(outcome)`: it was used before (by this node or, on PostgreSQL, by another
/// whose transaction we waited for), and this is what the request gets instead.
async fn claim_key(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    claim: &IdempotencyClaim,
    now: i64,
) -> Result<Option<AppendOutcome>, StoreError> {
    // A key older than the TTL is forgotten, so it can be used afresh.
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::TenantId.eq(tenant_id))
        .filter(idempotency_key::Column::IdemKey.eq(claim.key.as_str()))
        .filter(idempotency_key::Column::CreatedAt.lt(now - IDEMPOTENCY_TTL_MS))
        .exec(txn)
        .await?;
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        tenant_id: Set(tenant_id),
        idem_key: Set(claim.key.clone()),
        request_hash: Set(claim.request_hash.clone()),
        receipts: Set(String::new()),
        created_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await?;
    if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        return Ok(None);
    }
    let earlier = idempotency_key::Entity::find_by_id((tenant_id, claim.key.clone()))
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("idempotency record vanished".into()))?;
    if earlier.request_hash != claim.request_hash {
        return Ok(Some(AppendOutcome::KeyReused));
    }
    let receipts = serde_json::from_str(&earlier.receipts)
        .map_err(|e| StoreError::Corrupt(format!("idempotency receipts: {e}")))?;
    Ok(Some(AppendOutcome::Replayed(receipts)))
}

/// Which streams a reader sees: a user's own events (if any user), the tenant's
/// broadcasts, and the named topics.
#[derive(Debug, Clone, Default)]
pub struct StreamSelector {
    pub user: Option<String>,
    pub topics: Vec<String>,
}

impl StreamSelector {
    fn targets(&self) -> Vec<Target> {
        let mut targets = vec![Target::Broadcast];
        targets.extend(self.user.iter().cloned().map(Target::User));
        targets.extend(self.topics.iter().cloned().map(Target::Topic));
        targets
    }
}

/// A stored row as a `LoggedEvent` of `tenant_id`'s log.
fn logged_event(row: event::Model, tenant_id: i64, epoch: &str) -> Result<LoggedEvent, StoreError> {
    let target = Target::from_columns(&row.target_kind, &row.target).ok_or_else(|| {
        StoreError::Corrupt(format!("event {} target kind {}", row.seq, row.target_kind))
    })?;
    Ok(LoggedEvent {
        tenant_id,
        id: EventId {
            epoch: epoch.to_owned(),
            seq: row.seq,
        },
        target,
        event_type: row.event_type,
        data: row.data,
        created_at: row.created_at,
    })
}

/// Where a tenant's log stands.
#[derive(Debug, Clone)]
pub struct LogPosition {
    pub epoch: String,
    /// The seq the next event will get.
    pub next_seq: i64,
    /// Events up to this seq may have been removed by retention.
    pub pruned_seq: i64,
}

impl Store {
    pub async fn log_position(&self, tenant_id: i64) -> Result<Option<LogPosition>, StoreError> {
        Ok(tenant::Entity::find_by_id(tenant_id)
            .one(self.reader())
            .await?
            .map(|t| LogPosition {
                epoch: t.epoch,
                next_seq: t.next_seq,
                pruned_seq: t.pruned_seq,
            }))
    }

    /// The events `selector` sees with a seq above `after_seq`, oldest first, at most
    /// `limit`. Each stream is read through the replay index on its own and the results
    /// merged, so a rare user in a busy tenant costs as little as a busy one.
    ///
    /// The streams are read one after the other, not in one snapshot, so every read stops at
    /// the head the log had *before* the first one: below it every event is committed and
    /// seen by all of them. Without that bound, an event committed between two reads could
    /// be missing from the first while a later one shows up in the second, and a reader
    /// that moved on past the later one would never see the first (the gap the resume test
    /// catches).
    pub async fn read_after(
        &self,
        tenant_id: i64,
        epoch: &str,
        selector: &StreamSelector,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let Some(position) = self.log_position(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let head = position.next_seq - 1;
        let mut merged = Vec::new();
        for target in selector.targets() {
            let rows = event::Entity::find()
                .filter(event::Column::TenantId.eq(tenant_id))
                .filter(event::Column::TargetKind.eq(target.kind()))
                .filter(event::Column::Target.eq(target.name()))
                .filter(event::Column::Seq.gt(after_seq))
                .filter(event::Column::Seq.lte(head))
                .order_by_asc(event::Column::Seq)
                .limit(limit)
                .all(self.reader())
                .await?;
            merged.extend(rows);
        }
        merged.sort_by_key(|row| row.seq);
        merged.dedup_by_key(|row| row.seq);
        merged.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        merged
            .into_iter()
            .map(|row| logged_event(row, tenant_id, epoch))
            .collect()
    }

    /// Every event of a tenant with `after_seq < seq <= up_to_seq`, whatever its target,
    /// oldest first, at most `limit`: what a node missed between two it has seen.
    pub async fn read_range(
        &self,
        tenant_id: i64,
        epoch: &str,
        after_seq: i64,
        up_to_seq: i64,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant_id))
            .filter(event::Column::Seq.gt(after_seq))
            .filter(event::Column::Seq.lte(up_to_seq))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(self.reader())
            .await?
            .into_iter()
            .map(|row| logged_event(row, tenant_id, epoch))
            .collect()
    }

    /// Every tenant's id, epoch and last committed seq.
    pub async fn log_heads(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        Ok(tenant::Entity::find()
            .all(self.reader())
            .await?
            .into_iter()
            .map(|t| (t.id, t.epoch, t.next_seq - 1))
            .collect())
    }

    /// Applies every tenant's retention and forgets expired idempotency keys. Returns how
    /// many events were removed.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let tenants = tenant::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(tenant::Column::RetentionMaxAgeSecs.is_not_null())
                    .add(tenant::Column::RetentionMaxEvents.is_not_null()),
            )
            .all(self.reader())
            .await?;
        let mut removed = 0;
        for t in tenants {
            let mut cutoff = t.pruned_seq;
            if let Some(max_events) = t.retention_max_events {
                cutoff = cutoff.max(t.next_seq - 1 - max_events);
            }
            if let Some(max_age) = t.retention_max_age_secs {
                let oldest_kept = now - max_age.saturating_mul(1000);
                let expired: Option<i64> = event::Entity::find()
                    .select_only()
                    .column_as(event::Column::Seq.max(), "max_seq")
                    .filter(event::Column::TenantId.eq(t.id))
                    .filter(event::Column::CreatedAt.lt(oldest_kept))
                    .into_tuple()
                    .one(self.reader())
                    .await?
                    .flatten();
                cutoff = cutoff.max(expired.unwrap_or(0));
            }
            if cutoff <= t.pruned_seq {
                continue;
            }
            // Readers learn of the gap first, then the rows go, a slice at a time so the
            // write lock is never held for long.
            tenant::Entity::update_many()
                .col_expr(tenant::Column::PrunedSeq, Expr::value(cutoff))
                .filter(tenant::Column::Id.eq(t.id))
                .filter(tenant::Column::PrunedSeq.lt(cutoff))
                .exec(self.writer())
                .await?;
            let mut from = t.pruned_seq;
            while from < cutoff {
                let to = (from + 10_000).min(cutoff);
                removed += event::Entity::delete_many()
                    .filter(event::Column::TenantId.eq(t.id))
                    .filter(event::Column::Seq.gt(from))
                    .filter(event::Column::Seq.lte(to))
                    .exec(self.writer())
                    .await?
                    .rows_affected;
                from = to;
            }
        }
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreatedAt.lt(now - IDEMPOTENCY_TTL_MS))
            .exec(self.writer())
            .await?;
        Ok(removed)
    }

    /// Runs `prune` every `every` until the runtime stops.
    pub fn spawn_pruner(&self, every: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                match store.prune().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "retention pruned events"),
                    Err(error) => tracing::error!(%error, "retention pruning failed"),
                }
            }
        });
    }
}
