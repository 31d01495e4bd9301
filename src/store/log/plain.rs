//! On PostgreSQL, one tenant's plain appends of a group in one statement.
//!
//! Most publishes carry no idempotency key, no inbox item and no fallback. For a tenant
//! whose requests in a group are all like that, nothing has to be decided between reading
//! its counter and writing its events, so one statement does what `group` otherwise does
//! in four statements: it moves the counter on (taking the row's lock, as `SELECT … FOR
//! UPDATE` does, so sequence order stays commit order across nodes), inserts the events
//! numbered from where the counter stood, and adds them to the day's usage. The events
//! travel as four arrays, so the statement's text never changes and each connection
//! prepares it once. It runs inside the group's transaction like every other statement.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::group::number_events;
use super::writer::AppendJob;
use super::{AppendOutcome, AppendRejection};
use crate::domain::event::NewEvent;
use crate::domain::log::LoggedEvent;
use crate::store::StoreError;
use crate::store::usage::day_of;

/// The counter moved on by `$2` events, the events inserted, the day's usage counted; the
/// answer is the tenant's epoch and the events' first seq, or no row if the tenant is gone.
const APPEND: &str = "\
WITH counter AS (
    UPDATE tenants SET next_seq = next_seq + $2::bigint WHERE id = $1::bigint
    RETURNING epoch, next_seq - $2::bigint AS first_seq
), usage AS (
    INSERT INTO tenant_usage (tenant_id, day, published, rate_limited, delivered,
        receipts_delivered, receipts_seen, receipts_read, fallbacks_fired)
    SELECT $1::bigint, $3::bigint, $2::bigint, 0, 0, 0, 0, 0, 0 FROM counter
    ON CONFLICT (tenant_id, day) DO UPDATE SET published = tenant_usage.published + excluded.published
), inserted AS (
    INSERT INTO events (tenant_id, seq, target_kind, target, event_type, data, created_at,
        inbox_ordinal)
    SELECT $1::bigint, counter.first_seq + e.n - 1, e.kind, e.name, e.event_type, e.data,
        $4::bigint, NULL
    FROM counter,
        unnest($5::text[], $6::text[], $7::text[], $8::text[])
            WITH ORDINALITY AS e(kind, name, event_type, data, n)
)
SELECT epoch, first_seq FROM counter";

/// Whether `jobs` of the group can be appended by `append`: on PostgreSQL, none with an
/// idempotency key, an inbox item or a fallback.
pub(super) fn is_plain(backend: DbBackend, jobs: &[usize], group: &[AppendJob]) -> bool {
    backend == DbBackend::Postgres
        && jobs.iter().all(|&index| {
            let job = &group[index];
            job.claim.is_none()
                && job
                    .events
                    .iter()
                    .all(|event| !event.inbox && event.fallback.is_none())
        })
}

/// Appends one tenant's plain `jobs` (see `is_plain`) and decides their outcomes; notes the
/// tenant's first seq in `first_seqs`.
pub(super) async fn append(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    jobs: &[usize],
    group: &mut [AppendJob],
    now: i64,
    outcomes: &mut [Option<AppendOutcome>],
    first_seqs: &mut HashMap<i64, i64>,
) -> Result<(), StoreError> {
    let events = jobs.iter().flat_map(|&index| &group[index].events);
    let count = events.clone().count();
    let column =
        |field: fn(&NewEvent) -> String| Value::from(events.clone().map(field).collect::<Vec<_>>());
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        APPEND,
        [
            Value::from(tenant_id),
            Value::from(count as i64),
            Value::from(day_of(now)),
            Value::from(now),
            column(|e| e.target.kind().to_owned()),
            column(|e| e.target.name().to_owned()),
            column(|e| e.event_type.as_str().to_owned()),
            column(|e| e.data.clone()),
        ],
    );
    let Some(row) = db.query_one_raw(statement).await? else {
        for &index in jobs {
            outcomes[index] = Some(AppendOutcome::Rejected(AppendRejection::TenantGone));
        }
        return Ok(());
    };
    let epoch: String = row.try_get("", "epoch")?;
    let mut next_seq: i64 = row.try_get("", "first_seq")?;
    first_seqs.insert(tenant_id, next_seq);
    let mut no_fallbacks = Vec::new();
    for &index in jobs {
        let events = std::mem::take(&mut group[index].events);
        let committed: Vec<LoggedEvent> = number_events(
            tenant_id,
            &epoch,
            &mut next_seq,
            events,
            now,
            &mut no_fallbacks,
            &group[index].trace,
        );
        outcomes[index] = Some(AppendOutcome::Committed(committed));
    }
    Ok(())
}
