//! The per-event facts: `seen_at` and `read_at` on a `receipts` row, set once (a later
//! mark keeps the first time).

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Statement, Value};

use super::positions::write_positions;
use super::{CHUNK, bind_pairs};
use crate::domain::receipt::Fact;
use crate::store::StoreError;
use crate::store::entities::receipt;

/// Which of the `(user, seq)` pairs name events of that user's stream that can have
/// receipts (their own and the broadcasts) and have no `seen_at` yet: a few hundred pairs
/// per statement.
pub(super) async fn unseen(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    asked: &[(&str, i64)],
) -> Result<Vec<(String, i64)>, StoreError> {
    let backend = db.get_database_backend();
    let mut unseen = Vec::new();
    for chunk in asked.chunks(CHUNK / 2) {
        let mut values: Vec<Value> = vec![tenant_id.into()];
        let asked = bind_pairs(chunk, &mut values);
        let sql = format!(
            "WITH asked(user_id, seq) AS (VALUES {asked}) \
             SELECT a.user_id, a.seq FROM asked a \
               JOIN events e ON e.tenant_id = $1 AND e.seq = a.seq \
               LEFT JOIN receipts r \
                 ON r.tenant_id = $1 AND r.seq = a.seq AND r.user_id = a.user_id \
             WHERE r.seen_at IS NULL \
               AND ((e.target_kind = 'user' AND e.target = a.user_id) \
                    OR e.target_kind = 'broadcast')"
        );
        for row in db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            unseen.push((row.try_get("", "user_id")?, row.try_get("", "seq")?));
        }
    }
    Ok(unseen)
}

/// Sets `fact`'s time (seen or read) on the row of each `(user, seq)`, where it has none.
pub(super) async fn mark(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    fact: Fact,
    marks: &[(&str, i64)],
    now: i64,
) -> Result<(), StoreError> {
    let column = match fact {
        Fact::Seen => receipt::Column::SeenAt,
        Fact::Read => receipt::Column::ReadAt,
        Fact::Delivered => return Ok(()),
    };
    let first_time = match fact {
        Fact::Read => "COALESCE(receipts.read_at, excluded.read_at)",
        _ => "COALESCE(receipts.seen_at, excluded.seen_at)",
    };
    for chunk in marks.chunks(CHUNK) {
        let rows = chunk.iter().map(|&(user, seq)| receipt::ActiveModel {
            tenant_id: Set(tenant_id),
            seq: Set(seq),
            user_id: Set(user.to_owned()),
            seen_at: Set((fact == Fact::Seen).then_some(now)),
            read_at: Set((fact == Fact::Read).then_some(now)),
            fallback_unless: Set(None),
            fallback_after_secs: Set(None),
            fallback_origin: Set(None),
            fallback_due_at: Set(None),
            fallback_outcome: Set(None),
            fallback_settled_at: Set(None),
            traceparent: Set(None),
        });
        receipt::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    receipt::Column::TenantId,
                    receipt::Column::Seq,
                    receipt::Column::UserId,
                ])
                .value(column, Expr::cust(first_time))
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// What an inbox read did, for the receipts: the items read by id (the user's, already
/// checked), or every item up to the log's head.
pub(crate) enum Reads<'a> {
    Items(&'a [i64]),
    Through(i64),
}

/// Records the read facts of an inbox read inside its transaction.
pub(crate) async fn record_reads(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    user: &str,
    reads: Reads<'_>,
    now: i64,
) -> Result<(), StoreError> {
    match reads {
        Reads::Items(seqs) => {
            let marks: Vec<(&str, i64)> = seqs.iter().map(|&seq| (user, seq)).collect();
            mark(db, tenant_id, Fact::Read, &marks, now).await
        }
        Reads::Through(head) => {
            write_positions(db, tenant_id, Fact::Read, &[(user.to_owned(), head)], now).await
        }
    }
}
