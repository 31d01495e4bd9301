//! Idempotency keys: a retried publish gets its first answer back instead of a second copy
//! of its events.
//!
//! On this node a key whose request is still being appended is held in memory
//! (`InFlight`), so a concurrent retry is told so at once. In the database the key is
//! claimed inside the append transaction (`claim_key`) and its answer is written in the
//! same transaction (`record_answer`), so a retried request can never find its events
//! without its record or the other way round; across nodes the key's primary key makes the
//! later transaction wait and replay.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::{AppendOutcome, AppendRejection};
use crate::domain::event::PublishedEvent;
use crate::domain::log::LoggedEvent;
use crate::domain::names::IdempotencyKey;
use crate::store::StoreError;
use crate::store::entities::idempotency_key;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// A request's `Idempotency-Key` and the hash of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: IdempotencyKey,
    pub request_hash: String,
}

/// The idempotency keys whose request is being appended right now on this node.
#[derive(Clone, Default)]
pub(super) struct InFlight {
    keys: Arc<Mutex<HashSet<(i64, String)>>>,
}

impl InFlight {
    /// Holds the key until the guard is dropped; `None` when it is held already.
    pub(super) fn hold(&self, tenant_id: i64, key: &str) -> Option<InFlightGuard> {
        let entry = (tenant_id, key.to_owned());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !keys.insert(entry.clone()) {
            return None;
        }
        Some(InFlightGuard {
            keys: self.keys.clone(),
            entry,
        })
    }
}

/// Holds an idempotency key as in flight; releases it when dropped, however the append
/// ends (even if the publishing request is abandoned half-way).
pub(super) struct InFlightGuard {
    keys: Arc<Mutex<HashSet<(i64, String)>>>,
    entry: (i64, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
}

/// Writes a committed request's answer into the record of the key it claimed: the answer
/// a retry will get.
pub(super) async fn record_answer(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    claim: &IdempotencyClaim,
    committed: &[LoggedEvent],
) -> Result<(), StoreError> {
    let answer = answer_of(committed)?;
    idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::Answer, Expr::value(answer))
        .filter(idempotency_key::Column::TenantId.eq(tenant_id))
        .filter(idempotency_key::Column::IdemKey.eq(claim.key.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The answer a retry of a committed request gets, as its key's record keeps it.
pub(super) fn answer_of(committed: &[LoggedEvent]) -> Result<String, StoreError> {
    let answer: Vec<PublishedEvent> = committed.iter().map(LoggedEvent::published).collect();
    serde_json::to_string(&answer)
        .map_err(|e| StoreError::Corrupt(format!("idempotency answer: {e}")))
}

/// Claims an idempotency key inside the append transaction. `None`: the key is new and now
/// ours. `Some(outcome)`: it was used before (by this node or, on PostgreSQL, by another
/// whose transaction we waited for), and this is what the request gets instead.
pub(super) async fn claim_key(
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
        idem_key: Set(claim.key.as_str().to_owned()),
        request_hash: Set(claim.request_hash.clone()),
        answer: Set(String::new()),
        created_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await?;
    if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        return Ok(None);
    }
    let earlier = idempotency_key::Entity::find_by_id((tenant_id, claim.key.as_str().to_owned()))
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("idempotency record vanished".into()))?;
    if earlier.request_hash != claim.request_hash {
        return Ok(Some(AppendOutcome::Rejected(AppendRejection::KeyReused)));
    }
    let answer = serde_json::from_str(&earlier.answer)
        .map_err(|e| StoreError::Corrupt(format!("idempotency answer: {e}")))?;
    Ok(Some(AppendOutcome::Replayed(answer)))
}
