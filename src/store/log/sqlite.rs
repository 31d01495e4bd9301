//! The event log's group commit on SQLite: a connection of the log's own (rusqlite, every
//! statement prepared once and kept) that runs each group's transaction whole on the
//! writer's thread, so a group crosses no thread on its way to the disk.
//!
//! It writes what `group` writes through sea-orm on PostgreSQL — the same rows, the same
//! transaction — and shares its rules (`group::number_events`, the inbox ordinals'
//! arithmetic). This process's other writes go through the store's one pool connection for
//! writing; the writer holds that connection while it commits (`Store::hold_writer`; from
//! one group to the next while publishes keep coming), so the two never race for SQLite's
//! write lock and neither waits out a busy timeout.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::group::{self, inbox_items};
use super::idempotency::{IDEMPOTENCY_TTL_MS, IdempotencyClaim, answer_of};
use super::writer::AppendJob;
use super::{AppendOutcome, AppendRejection};
use crate::domain::event::Target;
use crate::domain::log::LoggedEvent;
use crate::domain::now_ms;
use crate::store::inbox::{inbox_counts, ordinals_from};
use crate::store::receipts::PendingFallback;
use crate::store::usage::day_of;
use crate::store::{SqliteFile, StoreError};

/// The log's own connection to the database. It blocks while it commits: it lives on the
/// writer's own thread, never on the runtime's.
pub(super) struct SqliteLog {
    connection: Connection,
}

impl SqliteLog {
    pub(super) fn open(file: &SqliteFile) -> Result<SqliteLog, StoreError> {
        let synchronous = if file.full_sync { "FULL" } else { "NORMAL" };
        let pragmas = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
        );
        Ok(SqliteLog {
            connection: file.connect("for the log", &pragmas, 32)?,
        })
    }

    /// Commits `group` in one transaction, noting each tenant's first seq in `first_seqs`.
    pub(super) fn commit(
        &mut self,
        group: &mut [AppendJob],
        first_seqs: &mut HashMap<i64, i64>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        commit(&mut self.connection, group, first_seqs)
    }
}

fn commit(
    connection: &mut Connection,
    group: &mut [AppendJob],
    first_seqs: &mut HashMap<i64, i64>,
) -> Result<Vec<AppendOutcome>, StoreError> {
    // A transaction a failure left open is ended first (SQLite ends its own on `FULL` and
    // I/O errors; others stay open).
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let written = write_group(connection, group, first_seqs).and_then(|outcomes| {
        connection.execute_batch("COMMIT")?;
        Ok(outcomes)
    });
    if written.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    written.map(group::decided)
}

/// Everything the group writes, in the transaction the caller began.
fn write_group(
    db: &Connection,
    group: &mut [AppendJob],
    first_seqs: &mut HashMap<i64, i64>,
) -> Result<Vec<Option<AppendOutcome>>, StoreError> {
    let now = now_ms();
    let mut outcomes: Vec<Option<AppendOutcome>> = group.iter().map(|_| None).collect();
    for (tenant_id, jobs) in group::by_tenant(group) {
        let counter: Option<(String, i64)> = db
            .prepare_cached("SELECT epoch, next_seq FROM tenants WHERE id = ?1")?
            .query_row([tenant_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((epoch, first_seq)) = counter else {
            for &index in &jobs {
                outcomes[index] = Some(AppendOutcome::Rejected(AppendRejection::TenantGone));
            }
            continue;
        };
        first_seqs.insert(tenant_id, first_seq);
        let mut next_seq = first_seq;
        let mut fallbacks = Vec::new();
        let mut any_inbox = false;
        for &index in &jobs {
            let job = &mut group[index];
            if let Some(claim) = &job.claim
                && let Some(earlier) = claim_key(db, tenant_id, claim, now)?
            {
                outcomes[index] = Some(earlier);
                continue;
            }
            let events = std::mem::take(&mut job.events);
            let committed = group::number_events(
                tenant_id,
                &epoch,
                &mut next_seq,
                events,
                now,
                &mut fallbacks,
                &job.trace,
            );
            if let Some(claim) = &job.claim {
                let answer = answer_of(&committed)?;
                db.prepare_cached(
                    "UPDATE idempotency_keys SET receipts = ?1 WHERE tenant_id = ?2 AND idem_key = ?3",
                )?
                .execute(params![answer, tenant_id, claim.key.as_str()])?;
            }
            any_inbox |= committed.iter().any(|e| e.inbox);
            outcomes[index] = Some(AppendOutcome::Committed(committed));
        }
        let ordinals = match any_inbox {
            true => assign_ordinals(db, tenant_id, &inbox_items(&jobs, &outcomes))?,
            false => Vec::new(),
        };
        let mut ordinals = ordinals.into_iter();
        for event in group::committed_events(&jobs, &outcomes) {
            insert_event(db, event, ordinals.next().flatten())?;
        }
        insert_fallbacks(db, tenant_id, now, &fallbacks)?;
        if next_seq != first_seq {
            db.prepare_cached("UPDATE tenants SET next_seq = ?1 WHERE id = ?2")?
                .execute([next_seq, tenant_id])?;
            // Counted with the commit: the figures are exact across restarts.
            db.prepare_cached(
                "INSERT INTO tenant_usage (tenant_id, day, published, rate_limited, delivered, \
                 receipts_delivered, receipts_seen, receipts_read, fallbacks_fired) \
                 VALUES (?1, ?2, ?3, 0, 0, 0, 0, 0, 0) \
                 ON CONFLICT (tenant_id, day) DO UPDATE SET published = published + excluded.published",
            )?
            .execute([tenant_id, day_of(now), next_seq - first_seq])?;
        }
    }
    Ok(outcomes)
}

fn insert_event(
    db: &Connection,
    event: &LoggedEvent,
    inbox_ordinal: Option<i64>,
) -> Result<(), StoreError> {
    db.prepare_cached(
        "INSERT INTO events (tenant_id, seq, target_kind, target, event_type, data, created_at, \
         inbox_ordinal) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event.tenant_id,
        event.id.seq,
        event.target.kind(),
        event.target.name(),
        event.event_type,
        event.data,
        event.created_at,
        inbox_ordinal,
    ])?;
    Ok(())
}

/// `idempotency::claim_key`, on this connection.
fn claim_key(
    db: &Connection,
    tenant_id: i64,
    claim: &IdempotencyClaim,
    now: i64,
) -> Result<Option<AppendOutcome>, StoreError> {
    let key = claim.key.as_str();
    db.prepare_cached(
        "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND idem_key = ?2 AND created_at < ?3",
    )?
    .execute(params![tenant_id, key, now - IDEMPOTENCY_TTL_MS])?;
    let inserted = db
        .prepare_cached(
            "INSERT INTO idempotency_keys (tenant_id, idem_key, request_hash, receipts, created_at) \
             VALUES (?1, ?2, ?3, '', ?4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![tenant_id, key, claim.request_hash, now])?;
    if inserted > 0 {
        return Ok(None);
    }
    let (hash, answer): (String, String) = db
        .prepare_cached(
            "SELECT request_hash, receipts FROM idempotency_keys WHERE tenant_id = ?1 AND idem_key = ?2",
        )?
        .query_row(params![tenant_id, key], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if hash != claim.request_hash {
        return Ok(Some(AppendOutcome::Rejected(AppendRejection::KeyReused)));
    }
    let answer = serde_json::from_str(&answer)
        .map_err(|e| StoreError::Corrupt(format!("idempotency answer: {e}")))?;
    Ok(Some(AppendOutcome::Replayed(answer)))
}

/// `inbox::assign_ordinals`, on this connection: each stream's total moved on by its new
/// items, its items numbered after what it had.
fn assign_ordinals(
    db: &Connection,
    tenant_id: i64,
    items: &[(&Target, bool)],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut upsert = db.prepare_cached(
        "INSERT INTO inbox_totals (tenant_id, target_kind, target, items) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tenant_id, target_kind, target) DO UPDATE SET items = items + excluded.items \
         RETURNING items",
    )?;
    let mut next = HashMap::new();
    for ((kind, name), count) in inbox_counts(items) {
        let total: i64 =
            upsert.query_row(params![tenant_id, kind, name, count], |row| row.get(0))?;
        next.insert((kind.to_owned(), name.to_owned()), total - count + 1);
    }
    Ok(ordinals_from(items, next))
}

/// `receipts::insert_fallbacks`, on this connection.
fn insert_fallbacks(
    db: &Connection,
    tenant_id: i64,
    now: i64,
    fallbacks: &[PendingFallback],
) -> Result<(), StoreError> {
    if fallbacks.is_empty() {
        return Ok(());
    }
    let mut insert = db.prepare_cached(
        "INSERT INTO receipts (tenant_id, seq, user_id, fallback_unless, fallback_after_secs, \
         fallback_origin, fallback_due_at, traceparent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for f in fallbacks {
        insert.execute(params![
            tenant_id,
            f.seq,
            f.user.as_str(),
            f.fallback.unless.as_str(),
            f.fallback.after_secs,
            f.origin,
            now + f.fallback.after_secs * 1000,
            f.traceparent,
        ])?;
    }
    Ok(())
}
