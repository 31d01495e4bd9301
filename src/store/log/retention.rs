//! Retention: each tenant keeps events by age and by count (its retention, and its
//! `max_stored_events` limit); older ones go, and readers are
//! told first (`pruned_seq`), so a cursor into what was removed is refused, never silently
//! short. Expired idempotency keys go too.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::IDEMPOTENCY_TTL_MS;
use crate::domain::limits::TenantLimits;
use crate::domain::now_ms;
use crate::store::entities::{event, idempotency_key, tenant};
use crate::store::{Store, StoreError};

/// What a pruning pass removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Events.
    pub removed: u64,
    /// Tenants some of whose inbox items went: their users' counts are smaller now.
    pub inboxes: Vec<i64>,
}

impl Store {
    /// Applies every tenant's retention and `max_stored_events` limit (`default_max_stored`
    /// for a tenant without its own) and forgets expired idempotency keys.
    pub async fn prune(&self, default_max_stored: Option<u64>) -> Result<Pruned, StoreError> {
        let now = now_ms();
        let mut any = sea_orm::Condition::any()
            .add(tenant::Column::RetentionMaxAgeSecs.is_not_null())
            .add(tenant::Column::RetentionMaxEvents.is_not_null())
            .add(tenant::Column::Limits.like("%max_stored_events%"));
        if default_max_stored.is_some() {
            any = sea_orm::Condition::all();
        }
        let tenants = tenant::Entity::find()
            .filter(any)
            .all(self.reader())
            .await?;
        let mut pruned = Pruned::default();
        for t in tenants {
            let mut cutoff = t.pruned_seq;
            // Limits that cannot be read prune nothing: "no cap" could keep too much, a
            // guessed one remove what the tenant keeps.
            let limits: TenantLimits = match serde_json::from_str(&t.limits) {
                Ok(limits) => limits,
                Err(error) => {
                    let error = StoreError::Corrupt(format!("tenant {} limits: {error}", t.slug));
                    tracing::error!(%error, "retention skips the tenant");
                    continue;
                }
            };
            let stored_cap = limits
                .max_stored_events
                .or(default_max_stored)
                .and_then(|cap| i64::try_from(cap).ok());
            for max_events in [t.retention_max_events, stored_cap].into_iter().flatten() {
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
            if self.has_inbox_items(t.id, t.pruned_seq, cutoff).await? {
                pruned.inboxes.push(t.id);
            }
            let mut from = t.pruned_seq;
            while from < cutoff {
                let to = (from + 10_000).min(cutoff);
                pruned.removed += event::Entity::delete_many()
                    .filter(event::Column::TenantId.eq(t.id))
                    .filter(event::Column::Seq.gt(from))
                    .filter(event::Column::Seq.lte(to))
                    .exec(self.writer())
                    .await?
                    .rows_affected;
                from = to;
            }
            self.forget_inbox_marks_through(t.id, cutoff).await?;
            self.forget_receipts_through(t.id, cutoff).await?;
        }
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreatedAt.lt(now - IDEMPOTENCY_TTL_MS))
            .exec(self.writer())
            .await?;
        Ok(pruned)
    }
}
