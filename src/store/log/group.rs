//! One group commit: the transaction that appends a whole group of append requests.
//!
//! Inside it each tenant's counter row is read with a row lock (`SELECT … FOR UPDATE` on
//! PostgreSQL; SQLite has one writer at a time anyway), sequence numbers are handed out from
//! it and it is moved on. So sequence order is commit order, per tenant, even with several
//! Herald nodes on one PostgreSQL: a reader that has seen seq N can never later find a new
//! event below N. Idempotency records, inbox ordinals, fallbacks and usage figures are
//! written in the same transaction as the events they go with.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};
use tracing::Span;

use super::idempotency::{claim_key, record_answer};
use super::plain;
use super::writer::AppendJob;
use super::{AppendOutcome, AppendRejection};
use crate::domain::event::{EventId, NewEvent, Target};
use crate::domain::log::LoggedEvent;
use crate::domain::now_ms;
use crate::store::entities::{event, tenant};
use crate::store::inbox::assign_ordinals;
use crate::store::receipts::{PendingFallback, insert_fallbacks};
use crate::store::usage::{UsageCounts, add_usage, day_of};
use crate::store::{Store, StoreError};
use crate::traces;

/// Rows per INSERT statement (well under every engine's bound-parameter limit).
const INSERT_CHUNK: usize = 500;

/// One transaction for the whole group; the outcomes are in the group's order. The jobs'
/// events are moved into the outcomes (a failed group's publishers get an error, not
/// their events). `first_seqs` gets each tenant's first seq as it is handed out, so that a
/// failure says where the group began.
pub(super) async fn commit_group(
    store: &Store,
    group: &mut [AppendJob],
    first_seqs: &mut HashMap<i64, i64>,
) -> Result<Vec<AppendOutcome>, StoreError> {
    let txn = store.begin_write().await?;
    let mut commit = GroupCommit {
        txn: &txn,
        now: now_ms(),
        outcomes: group.iter().map(|_| None).collect(),
        rows: Vec::new(),
        fallbacks: Vec::new(),
        first_seqs,
    };
    for (tenant_id, jobs) in by_tenant(group) {
        commit.append_tenant(tenant_id, &jobs, group).await?;
    }
    let GroupCommit { rows, outcomes, .. } = commit;
    insert_events(&txn, rows).await?;
    txn.commit().await?;
    Ok(decided(outcomes))
}

/// The outcomes of a committed group: a job left undecided was of a tenant removed while
/// it waited.
pub(super) fn decided(outcomes: Vec<Option<AppendOutcome>>) -> Vec<AppendOutcome> {
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(AppendOutcome::Rejected(AppendRejection::TenantGone)))
        .collect()
}

/// The group's tenants in order of first appearance, each with its jobs in arrival order.
pub(super) fn by_tenant(group: &[AppendJob]) -> Vec<(i64, Vec<usize>)> {
    let mut by_tenant: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    for (index, job) in group.iter().enumerate() {
        let slot = *position.entry(job.tenant_id).or_insert_with(|| {
            by_tenant.push((job.tenant_id, Vec::new()));
            by_tenant.len() - 1
        });
        by_tenant[slot].1.push(index);
    }
    by_tenant
}

/// A group commit under way: its transaction, and what it has decided so far.
struct GroupCommit<'a> {
    txn: &'a DatabaseTransaction,
    now: i64,
    /// Per job of the group, once decided.
    outcomes: Vec<Option<AppendOutcome>>,
    /// The event rows to insert, in seq order per tenant.
    rows: Vec<event::ActiveModel>,
    /// The tenant's fallbacks, one per recipient, written with its events.
    fallbacks: Vec<PendingFallback>,
    first_seqs: &'a mut HashMap<i64, i64>,
}

impl GroupCommit<'_> {
    /// Appends one tenant's jobs (plain ones in one statement, `plain`): under its counter
    /// row's lock (which makes sequence order commit order on PostgreSQL), each job is
    /// answered from its idempotency key or given the next seqs; then the inbox ordinals,
    /// the counter and the usage figures.
    async fn append_tenant(
        &mut self,
        tenant_id: i64,
        jobs: &[usize],
        group: &mut [AppendJob],
    ) -> Result<(), StoreError> {
        if plain::is_plain(self.txn.get_database_backend(), jobs, group) {
            let (outcomes, first_seqs) = (&mut self.outcomes, &mut *self.first_seqs);
            return plain::append(
                self.txn, tenant_id, jobs, group, self.now, outcomes, first_seqs,
            )
            .await;
        }
        let Some(counter) = tenant::Entity::find_by_id(tenant_id)
            .lock_exclusive()
            .one(self.txn)
            .await?
        else {
            for &index in jobs {
                self.outcomes[index] = Some(AppendOutcome::Rejected(AppendRejection::TenantGone));
            }
            return Ok(());
        };
        let mut next_seq = counter.next_seq;
        self.first_seqs.insert(tenant_id, next_seq);
        let first_row = self.rows.len();
        let mut any_inbox = false;
        for &index in jobs {
            let job = &mut group[index];
            if let Some(claim) = &job.claim
                && let Some(earlier) = claim_key(self.txn, tenant_id, claim, self.now).await?
            {
                self.outcomes[index] = Some(earlier);
                continue;
            }
            let events = std::mem::take(&mut job.events);
            let committed = number_events(
                tenant_id,
                &counter.epoch,
                &mut next_seq,
                events,
                self.now,
                &mut self.fallbacks,
                &job.trace,
            );
            self.rows.extend(committed.iter().map(row_of));
            any_inbox |= committed.iter().any(|e| e.inbox);
            if let Some(claim) = &job.claim {
                // Written now rather than at the end, so that a retry of the same request
                // in this very group already finds the answer.
                record_answer(self.txn, tenant_id, claim, &committed).await?;
            }
            self.outcomes[index] = Some(AppendOutcome::Committed(committed));
        }
        if any_inbox {
            let items = inbox_items(jobs, &self.outcomes);
            let ordinals = assign_ordinals(self.txn, tenant_id, &items).await?;
            for (row, ordinal) in self.rows[first_row..].iter_mut().zip(ordinals) {
                row.inbox_ordinal = Set(ordinal);
            }
        }
        if !self.fallbacks.is_empty() {
            let fallbacks = std::mem::take(&mut self.fallbacks);
            insert_fallbacks(self.txn, tenant_id, self.now, &fallbacks).await?;
        }
        if next_seq != counter.next_seq {
            tenant::Entity::update_many()
                .col_expr(tenant::Column::NextSeq, Expr::value(next_seq))
                .filter(tenant::Column::Id.eq(tenant_id))
                .exec(self.txn)
                .await?;
            // Counted with the commit: the figures are exact across restarts and nodes.
            let published = UsageCounts {
                published: next_seq - counter.next_seq,
                ..UsageCounts::default()
            };
            add_usage(self.txn, tenant_id, day_of(self.now), published).await?;
        }
        Ok(())
    }
}

/// Numbers a request's events from `next_seq` on (moving it past them), as committed at
/// `now`, and adds the fallbacks they carry to `fallbacks` — one per recipient of a
/// `user`/`users` event, each knowing the first seq of its publish's copies and the trace of
/// its publish (`trace`, the request's span).
pub(super) fn number_events(
    tenant_id: i64,
    epoch: &str,
    next_seq: &mut i64,
    events: Vec<NewEvent>,
    now: i64,
    fallbacks: &mut Vec<PendingFallback>,
    trace: &Span,
) -> Vec<LoggedEvent> {
    let mut origins: HashMap<usize, i64> = HashMap::new();
    let mut traceparent = None;
    events
        .into_iter()
        .map(|new| {
            let seq = *next_seq;
            *next_seq += 1;
            if let (Some(fallback), Target::User(user)) = (new.fallback, &new.target) {
                let origin = *origins.entry(new.item).or_insert(seq);
                let traceparent = traceparent.get_or_insert_with(|| traces::traceparent(trace));
                fallbacks.push(PendingFallback {
                    seq,
                    user: user.clone(),
                    fallback,
                    origin,
                    traceparent: traceparent.clone(),
                });
            }
            LoggedEvent {
                tenant_id,
                id: EventId {
                    epoch: epoch.to_owned(),
                    seq,
                },
                target: new.target,
                event_type: new.event_type.into_string(),
                data: new.data,
                created_at: now,
                inbox: new.inbox,
                trace: None,
            }
        })
        .collect()
}

/// A tenant's committed events of the group, in seq order, as the inbox ordinals need
/// them: each one's stream and whether it is an inbox item.
pub(super) fn inbox_items<'a>(
    jobs: &'a [usize],
    outcomes: &'a [Option<AppendOutcome>],
) -> Vec<(&'a Target, bool)> {
    committed_events(jobs, outcomes)
        .map(|e| (&e.target, e.inbox))
        .collect()
}

/// The events the group committed for `jobs`, in seq order.
pub(super) fn committed_events<'a>(
    jobs: &'a [usize],
    outcomes: &'a [Option<AppendOutcome>],
) -> impl Iterator<Item = &'a LoggedEvent> {
    jobs.iter()
        .filter_map(|&index| match &outcomes[index] {
            Some(AppendOutcome::Committed(events)) => Some(events.iter()),
            _ => None,
        })
        .flatten()
}

/// An event's row (its inbox ordinal is set once the tenant's are known).
fn row_of(event: &LoggedEvent) -> event::ActiveModel {
    event::ActiveModel {
        tenant_id: Set(event.tenant_id),
        seq: Set(event.id.seq),
        target_kind: Set(event.target.kind().to_owned()),
        target: Set(event.target.name().to_owned()),
        event_type: Set(event.event_type.clone()),
        data: Set(event.data.clone()),
        created_at: Set(event.created_at),
        inbox_ordinal: Set(None),
    }
}

/// Inserts the rows a few hundred per statement (well under every engine's bound-parameter
/// limit).
async fn insert_events(
    txn: &DatabaseTransaction,
    rows: Vec<event::ActiveModel>,
) -> Result<(), StoreError> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        event::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
