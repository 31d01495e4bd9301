//! The cumulative facts: a user's position per fact and minute (`receipt_positions`).
//!
//! A position only moves forward: a stale page acknowledging an older id writes nothing.
//! Reading a time back takes the first minute whose position covers the event.

use sea_orm::{ConnectionTrait, Statement, Value};

use super::{CHUNK, bind_pairs};
use crate::domain::receipt::Fact;
use crate::store::StoreError;

/// For each `(user, seq)` asked, where the user's delivery position stood and how many
/// events of their stream (their own and the broadcasts; topics have no receipts) lie after
/// it up to `seq`, above what retention removed (`$2`). The users are bound from `$3` on,
/// as `($3, $4), ($5, $6), …`.
const ADVANCES: &str = "
WITH asked(user_id, seq) AS (VALUES {asked}),
place AS (
  SELECT a.user_id, a.seq,
    COALESCE((SELECT p.seq FROM receipt_positions p
               WHERE p.tenant_id = $1 AND p.user_id = a.user_id AND p.fact = 'delivered'
               ORDER BY p.minute DESC LIMIT 1), 0) AS before
  FROM asked a
), bound AS (
  SELECT user_id, seq, before, CASE WHEN before > $2 THEN before ELSE $2 END AS after
  FROM place
)
SELECT user_id, seq, before,
  (SELECT COUNT(*) FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'user' AND e.target = bound.user_id
      AND e.seq > bound.after AND e.seq <= bound.seq)
+ (SELECT COUNT(*) FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'broadcast' AND e.target = ''
      AND e.seq > bound.after AND e.seq <= bound.seq) AS newly
FROM bound";

/// What a group's delivery receipts add: the positions to write (those that move) and how
/// many events they newly cover.
#[derive(Default)]
pub(super) struct Advances {
    pub moves: Vec<(String, i64)>,
    pub newly: i64,
}

/// What delivery receipts up to each `(user, seq)` add, `pruned` being what retention
/// removed: a few hundred users per statement.
pub(super) async fn delivery_advances(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    pruned: i64,
    asked: &[(&str, i64)],
) -> Result<Advances, StoreError> {
    let backend = db.get_database_backend();
    let mut advances = Advances::default();
    for chunk in asked.chunks(CHUNK / 2) {
        let mut values: Vec<Value> = vec![tenant_id.into(), pruned.into()];
        let sql = ADVANCES.replace("{asked}", &bind_pairs(chunk, &mut values));
        for row in db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            let (seq, before): (i64, i64) = (row.try_get("", "seq")?, row.try_get("", "before")?);
            if seq > before {
                advances.moves.push((row.try_get("", "user_id")?, seq));
            }
            advances.newly += row.try_get::<i64>("", "newly")?;
        }
    }
    Ok(advances)
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
