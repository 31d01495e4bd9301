//! What a user has read: the read cursor (`inbox_readers`) and the marks against it
//! (`inbox_marks`), changed one request of the user at a time, each answering the count
//! after it.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};

use super::Marking;
use super::count::unread;
use crate::domain::inbox::Unread;
use crate::domain::names::UserId;
use crate::store::{Store, StoreError};

impl Store {
    /// Drops the marks of items retention removed (the count already leaves them out: it
    /// reads only above the tenant's `pruned_seq`).
    pub(crate) async fn forget_inbox_marks_through(
        &self,
        tenant_id: i64,
        seq: i64,
    ) -> Result<(), StoreError> {
        let writer = self.writer();
        writer
            .execute_raw(Statement::from_sql_and_values(
                writer.get_database_backend(),
                "DELETE FROM inbox_marks WHERE tenant_id = $1 AND seq <= $2",
                [tenant_id.into(), seq.into()],
            ))
            .await?;
        Ok(())
    }

    /// Marks the user's items (`seqs` that are not the user's inbox items change nothing)
    /// and answers the count after.
    pub async fn inbox_mark(
        &self,
        tenant_id: i64,
        user: &UserId,
        marking: Marking,
    ) -> Result<Unread, StoreError> {
        let txn = self.begin_write().await?;
        let backend = txn.get_database_backend();
        // The reader's key, the parameters $1 and $2 of each statement below.
        let reader = || -> [Value; 2] { [tenant_id.into(), user.as_str().into()] };
        // One request of a user at a time (SQLite has one writer anyway): each counts what
        // the one before it did, and moves the version on.
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO inbox_readers (tenant_id, user_id, read_through, version) \
             VALUES ($1, $2, 0, 0) ON CONFLICT (tenant_id, user_id) DO NOTHING",
            reader(),
        ))
        .await?;
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE",
            _ => "",
        };
        let cursor: i64 = txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT read_through FROM inbox_readers WHERE tenant_id = $1 AND user_id = $2{lock}"
                ),
                reader(),
            ))
            .await?
            .map(|row| row.try_get("", "read_through"))
            .transpose()?
            .unwrap_or(0);
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE inbox_readers SET version = version + 1 WHERE tenant_id = $1 AND user_id = $2",
            reader(),
        ))
        .await?;
        match marking {
            Marking::AllRead => {
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "UPDATE inbox_readers SET read_through = \
                     (SELECT next_seq - 1 FROM tenants WHERE id = $1) \
                     WHERE tenant_id = $1 AND user_id = $2",
                    reader(),
                ))
                .await?;
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "DELETE FROM inbox_marks WHERE tenant_id = $1 AND user_id = $2",
                    reader(),
                ))
                .await?;
            }
            Marking::Read(seqs) | Marking::Unread(seqs) if seqs.is_empty() => {}
            Marking::Read(seqs) => mark(&txn, tenant_id, user, cursor, &seqs, true).await?,
            Marking::Unread(seqs) => mark(&txn, tenant_id, user, cursor, &seqs, false).await?,
        }
        let unread = unread(&txn, tenant_id, user).await?;
        txn.commit().await?;
        Ok(unread)
    }
}

/// Sets `seqs` (those that are the user's inbox items) read or unread: against the cursor,
/// a mark is added or removed.
async fn mark(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    user: &UserId,
    cursor: i64,
    seqs: &[i64],
    read: bool,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    let list: Vec<String> = (0..seqs.len()).map(|n| format!("${}", n + 3)).collect();
    let list = list.join(", ");
    let mut values: Vec<Value> = vec![tenant_id.into(), user.as_str().into()];
    values.extend(seqs.iter().map(|&seq| Value::from(seq)));
    let owned = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT seq FROM events WHERE tenant_id = $1 AND inbox_ordinal IS NOT NULL \
                 AND ((target_kind = 'user' AND target = $2) OR target_kind = 'broadcast') \
                 AND seq IN ({list})"
            ),
            values,
        ))
        .await?;
    for row in owned {
        let seq: i64 = row.try_get("", "seq")?;
        // Above the cursor an item is unread unless marked read; at or below it, read
        // unless marked unread.
        let keeps_mark = (seq > cursor) == read;
        let sql = match keeps_mark {
            true => {
                "INSERT INTO inbox_marks (tenant_id, user_id, seq, read) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id, seq) DO UPDATE SET read = excluded.read"
            }
            false => "DELETE FROM inbox_marks WHERE tenant_id = $1 AND user_id = $2 AND seq = $3",
        };
        let mut values: Vec<Value> = vec![tenant_id.into(), user.as_str().into(), seq.into()];
        if keeps_mark {
            values.push(read.into());
        }
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}
