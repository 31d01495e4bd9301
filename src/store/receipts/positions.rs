//! The cumulative facts: a user's position per fact and minute (`receipt_positions`).
//!
//! A position only moves forward: a stale page acknowledging an older id writes nothing.
//! Reading a time back takes the first minute whose position covers the event.

use sea_orm::{ConnectionTrait, Statement, Value};

use super::CHUNK;
use crate::domain::receipt::Fact;
use crate::store::StoreError;

/// Where a user's position stood before a receipt, and how many events of their stream
/// (their own and the broadcasts; topics have no receipts) lie after it up to the
/// receipt's seq, above what retention removed.
const ADVANCE: &str = "
WITH place AS (
  SELECT COALESCE((SELECT p.seq FROM receipt_positions p
                    WHERE p.tenant_id = $1 AND p.user_id = $2 AND p.fact = 'delivered'
                    ORDER BY p.minute DESC LIMIT 1), 0) AS before
), bound AS (
  SELECT before, CASE WHEN before > $3 THEN before ELSE $3 END AS after FROM place
)
SELECT before,
  (SELECT COUNT(*) FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'user' AND e.target = $2
      AND e.seq > bound.after AND e.seq <= $4)
+ (SELECT COUNT(*) FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'broadcast' AND e.target = ''
      AND e.seq > bound.after AND e.seq <= $4) AS newly
FROM bound";

/// A user's delivery receipt, worked out: the position to write (if it moves) and how many
/// events it newly covers.
pub(super) struct Advance {
    pub moves_to: Option<i64>,
    pub newly: i64,
}

/// What a delivery receipt up to `seq` adds for `user`, `pruned` being what retention
/// removed.
pub(super) async fn delivery_advance(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    user: &str,
    pruned: i64,
    seq: i64,
) -> Result<Advance, StoreError> {
    let values: [Value; 4] = [tenant_id.into(), user.into(), pruned.into(), seq.into()];
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, ADVANCE, values))
        .await?;
    let Some(row) = row else {
        return Ok(Advance {
            moves_to: None,
            newly: 0,
        });
    };
    let before: i64 = row.try_get("", "before")?;
    let newly: i64 = row.try_get("", "newly")?;
    Ok(Advance {
        moves_to: (seq > before).then_some(seq),
        newly,
    })
}

/// The minute a time falls in, as positions are kept.
pub(super) fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

/// Moves each `(user, seq)` position of `fact` to `seq` at `now` (never backwards), a few
/// hundred users per statement.
pub(super) async fn write_positions(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    fact: Fact,
    moves: &[(String, i64)],
    now: i64,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let minute = minute_of(now);
    for chunk in moves.chunks(CHUNK) {
        let mut values: Vec<Value> = vec![
            tenant_id.into(),
            fact.as_str().into(),
            minute.into(),
            now.into(),
        ];
        let mut rows = Vec::with_capacity(chunk.len());
        for (user, seq) in chunk {
            let n = values.len();
            rows.push(format!("($1, ${}, $2, $3, ${}, $4)", n + 1, n + 2));
            values.push(user.as_str().into());
            values.push((*seq).into());
        }
        let sql = format!(
            "INSERT INTO receipt_positions (tenant_id, user_id, fact, minute, seq, at) \
             VALUES {} ON CONFLICT (tenant_id, user_id, fact, minute) \
             DO UPDATE SET seq = excluded.seq WHERE excluded.seq > receipt_positions.seq",
            rows.join(", ")
        );
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// When `user`'s position of `fact` first covered `seq`: the first acknowledgement of the
/// first minute that reached it.
pub(super) async fn covered_at(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    user: &str,
    fact: Fact,
    seq: i64,
) -> Result<Option<i64>, StoreError> {
    let backend = db.get_database_backend();
    let values: [Value; 4] = [
        tenant_id.into(),
        user.into(),
        fact.as_str().into(),
        seq.into(),
    ];
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT at FROM receipt_positions \
             WHERE tenant_id = $1 AND user_id = $2 AND fact = $3 AND seq >= $4 \
             ORDER BY minute LIMIT 1",
            values,
        ))
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("", "at")?),
        None => None,
    })
}
