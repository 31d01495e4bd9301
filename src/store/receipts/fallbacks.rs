//! Fallback timers: a `receipts` row per recipient, pending while `fallback_due_at` is set.
//!
//! Nothing is held in memory per pending fallback: a pass reads the due rows in due order
//! through the partial index, decides each in the same transaction that settles it and
//! writes its `notification.unseen` message, so a fallback fires once — on PostgreSQL the
//! rows are taken `FOR UPDATE SKIP LOCKED`, so two nodes never take the same one; on SQLite
//! the one writer makes each pass whole. A pass after a restart finds whatever fell due
//! while Herald was down.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Statement, Value,
};

use super::CHUNK;
use super::facts::{Subject, facts_of};
use crate::domain::event::Target;
use crate::domain::names::UserId;
use crate::domain::receipt::{Fact, Fallback};
use crate::domain::webhook::MessageType;
use crate::domain::{format_ms, now_ms};
use crate::metrics;
use crate::store::entities::{event, presence, receipt, tenant};
use crate::store::usage::{UsageCounts, add_usage, day_of};
use crate::store::webhooks::{NewMessage, Recipients, enqueue};
use crate::store::{Store, StoreError};

pub(crate) const FIRED: &str = "fired";
pub(crate) const SKIPPED: &str = "skipped";
pub(crate) const CANCELLED: &str = "cancelled";

/// A fallback of a committed event for its recipient.
#[derive(Debug, Clone)]
pub struct PendingFallback {
    pub seq: i64,
    pub user: UserId,
    pub fallback: Fallback,
    /// The seq of the first event of the publish it came with.
    pub origin: i64,
    /// The publish's `traceparent`, when it was traced: its `notification.unseen` carries it.
    pub traceparent: Option<String>,
}

/// Writes the fallbacks of a commit inside its transaction, each due `after_secs` after
/// `now`.
pub(crate) async fn insert_fallbacks(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    now: i64,
    fallbacks: &[PendingFallback],
) -> Result<(), StoreError> {
    for chunk in fallbacks.chunks(CHUNK) {
        let rows = chunk.iter().map(|f| receipt::ActiveModel {
            tenant_id: Set(tenant_id),
            seq: Set(f.seq),
            user_id: Set(f.user.as_str().to_owned()),
            seen_at: Set(None),
            read_at: Set(None),
            fallback_unless: Set(Some(f.fallback.unless.as_str().to_owned())),
            fallback_after_secs: Set(Some(f.fallback.after_secs as i32)),
            fallback_origin: Set(Some(f.origin)),
            fallback_due_at: Set(Some(now + f.fallback.after_secs * 1000)),
            fallback_outcome: Set(None),
            fallback_settled_at: Set(None),
            traceparent: Set(f.traceparent.clone()),
        });
        receipt::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FallbackPass {
    /// Fallbacks whose fact had not happened: `notification.unseen` written.
    pub fired: usize,
    /// `fired`, per tenant.
    pub fired_by_tenant: Vec<(i64, usize)>,
    /// Fallbacks whose fact had happened (or whose event is gone): nothing sent.
    pub skipped: usize,
    /// Whether any message was written (no endpoint may want them).
    pub messages: bool,
}

/// A due row, as a pass reads it.
struct Due {
    seq: i64,
    user: String,
    unless: Fact,
    after_secs: i64,
    seen_at: Option<i64>,
    read_at: Option<i64>,
    traceparent: Option<String>,
}

impl Store {
    /// Decides up to `limit` due fallbacks, soonest due first, in one transaction.
    pub async fn fire_due_fallbacks(&self, limit: u64) -> Result<FallbackPass, StoreError> {
        let txn = self.begin_write().await?;
        let backend = txn.get_database_backend();
        let now = now_ms();
        let lock = match backend {
            DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "SELECT tenant_id, seq, user_id, seen_at, read_at, fallback_unless, \
                    fallback_after_secs, traceparent \
             FROM receipts WHERE fallback_due_at IS NOT NULL AND fallback_due_at <= $1 \
             ORDER BY fallback_due_at LIMIT $2 {lock}"
        );
        let values: [Value; 2] = [now.into(), (limit as i64).into()];
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let mut by_tenant: BTreeMap<i64, Vec<Due>> = BTreeMap::new();
        for row in rows {
            let unless: Option<String> = row.try_get("", "fallback_unless")?;
            let after_secs: Option<i32> = row.try_get("", "fallback_after_secs")?;
            by_tenant
                .entry(row.try_get("", "tenant_id")?)
                .or_default()
                .push(Due {
                    seq: row.try_get("", "seq")?,
                    user: row.try_get("", "user_id")?,
                    unless: unless
                        .as_deref()
                        .and_then(Fact::parse)
                        .unwrap_or(Fact::Seen),
                    after_secs: i64::from(after_secs.unwrap_or(0)),
                    seen_at: row.try_get("", "seen_at")?,
                    read_at: row.try_get("", "read_at")?,
                    traceparent: row.try_get("", "traceparent")?,
                });
        }
        let mut pass = FallbackPass::default();
        for (tenant_id, due) in by_tenant {
            let (fired, skipped, messages) = settle_tenant(&txn, tenant_id, &due, now).await?;
            pass.fired += fired;
            if fired > 0 {
                pass.fired_by_tenant.push((tenant_id, fired));
            }
            pass.skipped += skipped;
            pass.messages |= messages;
        }
        txn.commit().await?;
        metrics::FALLBACKS_FIRED.fetch_add(pass.fired as u64, Ordering::Relaxed);
        metrics::FALLBACKS_SKIPPED.fetch_add(pass.skipped as u64, Ordering::Relaxed);
        Ok(pass)
    }

    /// When the soonest pending fallback is due, if any is.
    pub async fn next_fallback_due(&self) -> Result<Option<i64>, StoreError> {
        let due: Option<Option<i64>> = receipt::Entity::find()
            .select_only()
            .column_as(receipt::Column::FallbackDueAt.min(), "due")
            .filter(receipt::Column::FallbackDueAt.is_not_null())
            .into_tuple()
            .one(self.reader())
            .await?;
        Ok(due.flatten())
    }

    /// Cancels what is still pending of the fallback of the publish event `seq` came from
    /// (every recipient of a `users` publish): the number cancelled, or `None` when the
    /// log holds no such event.
    pub async fn cancel_fallback(
        &self,
        tenant_id: i64,
        seq: i64,
    ) -> Result<Option<u64>, StoreError> {
        let origin: Option<Option<i64>> = receipt::Entity::find()
            .select_only()
            .column(receipt::Column::FallbackOrigin)
            .filter(receipt::Column::TenantId.eq(tenant_id))
            .filter(receipt::Column::Seq.eq(seq))
            .filter(receipt::Column::FallbackOrigin.is_not_null())
            .into_tuple()
            .one(self.reader())
            .await?;
        let Some(origin) = origin.flatten() else {
            let exists = event::Entity::find_by_id((tenant_id, seq))
                .one(self.reader())
                .await?
                .is_some();
            return Ok(exists.then_some(0));
        };
        let cancelled = receipt::Entity::update_many()
            .col_expr(
                receipt::Column::FallbackDueAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(receipt::Column::FallbackOutcome, Expr::value(CANCELLED))
            .col_expr(receipt::Column::FallbackSettledAt, Expr::value(now_ms()))
            .filter(receipt::Column::TenantId.eq(tenant_id))
            .filter(receipt::Column::FallbackOrigin.eq(origin))
            .filter(receipt::Column::FallbackDueAt.is_not_null())
            .exec(self.writer())
            .await?
            .rows_affected;
        metrics::FALLBACKS_CANCELLED.fetch_add(cancelled, Ordering::Relaxed);
        Ok(Some(cancelled))
    }
}

/// Decides one tenant's due fallbacks: answers how many fired and were skipped, and
/// whether a message was written.
async fn settle_tenant(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    due: &[Due],
    now: i64,
) -> Result<(usize, usize, bool), StoreError> {
    let epoch: Option<String> = tenant::Entity::find_by_id(tenant_id)
        .select_only()
        .column(tenant::Column::Epoch)
        .into_tuple()
        .one(db)
        .await?;
    let epoch = epoch.unwrap_or_default();
    let mut events = Vec::new();
    let mut seen_users = Vec::new();
    for chunk in due.chunks(CHUNK) {
        events.extend(
            event::Entity::find()
                .filter(event::Column::TenantId.eq(tenant_id))
                .filter(event::Column::Seq.is_in(chunk.iter().map(|d| d.seq)))
                .all(db)
                .await?,
        );
        seen_users.extend(
            presence::Entity::find()
                .filter(presence::Column::TenantId.eq(tenant_id))
                .filter(presence::Column::UserId.is_in(chunk.iter().map(|d| d.user.clone())))
                .all(db)
                .await?,
        );
    }
    let (mut fired, mut skipped, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    for due in due {
        let Some(event) = events.iter().find(|e| e.seq == due.seq) else {
            skipped.push(due.seq);
            continue;
        };
        let subject = Subject {
            seq: due.seq,
            created_at: event.created_at,
            inbox: event.inbox_ordinal.is_some(),
            seen_at: due.seen_at,
            read_at: due.read_at,
        };
        let facts = facts_of(db, tenant_id, &due.user, &subject).await?;
        if facts.has(due.unless) {
            skipped.push(due.seq);
            continue;
        }
        fired.push(due.seq);
        let seen = seen_users.iter().find(|p| p.user_id == due.user);
        let to = Target::from_columns(&event.target_kind, &event.target)
            .map(|target| target.to_json())
            .unwrap_or(serde_json::Value::Null);
        let data: serde_json::Value =
            serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let data = serde_json::json!({
            "user": due.user,
            "event": {
                "id": format!("{epoch}-{}", event.seq),
                "to": to,
                "type": event.event_type,
                "data": data,
                "created_at": format_ms(event.created_at),
            },
            "unless": due.unless.as_str(),
            "after_secs": due.after_secs,
            "delivered": facts.has(Fact::Delivered),
            "seen": facts.has(Fact::Seen),
            "read": facts.has(Fact::Read),
            "presence": {
                "online": seen.is_some_and(|p| p.online),
                "last_seen_at": seen.and_then(|p| p.last_seen_at).map(format_ms),
            },
        });
        messages.push(NewMessage {
            data,
            traceparent: due.traceparent.clone(),
        });
    }
    settle(db, tenant_id, &fired, FIRED, now).await?;
    settle(db, tenant_id, &skipped, SKIPPED, now).await?;
    let ids = enqueue(
        db,
        tenant_id,
        MessageType::NotificationUnseen,
        &messages,
        Recipients::Subscribed,
    )
    .await?;
    if !fired.is_empty() {
        let counts = UsageCounts {
            fallbacks_fired: fired.len() as i64,
            ..UsageCounts::default()
        };
        add_usage(db, tenant_id, day_of(now), counts).await?;
    }
    Ok((fired.len(), skipped.len(), !ids.is_empty()))
}

/// Ends the pending fallbacks of `seqs` with `outcome`.
async fn settle(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    seqs: &[i64],
    outcome: &str,
    now: i64,
) -> Result<(), StoreError> {
    for chunk in seqs.chunks(CHUNK) {
        receipt::Entity::update_many()
            .col_expr(
                receipt::Column::FallbackDueAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(receipt::Column::FallbackOutcome, Expr::value(outcome))
            .col_expr(receipt::Column::FallbackSettledAt, Expr::value(now))
            .filter(receipt::Column::TenantId.eq(tenant_id))
            .filter(receipt::Column::Seq.is_in(chunk.iter().copied()))
            .filter(receipt::Column::FallbackDueAt.is_not_null())
            .exec(db)
            .await?;
    }
    Ok(())
}
