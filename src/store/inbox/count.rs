//! The exact unread count of one user, in one statement (see the module above).

use rusqlite::OptionalExtension;
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::domain::inbox::Unread;
use crate::domain::log::LogPosition;
use crate::domain::names::UserId;
use crate::store::{Store, StoreError};

/// The unread count of one user, and where the log stood when it was taken (see the
/// module's note): its epoch, head and pruned seq.
const COUNT: &str = "
WITH place AS (
  SELECT COALESCE(r.read_through, 0) AS cursor, COALESCE(r.version, 0) AS version,
         t.pruned_seq AS pruned, t.next_seq - 1 AS head, t.epoch AS epoch
  FROM tenants t LEFT JOIN inbox_readers r ON r.tenant_id = t.id AND r.user_id = $1
  WHERE t.id = $2
), bound AS (
  SELECT cursor, version, pruned, head, epoch,
         CASE WHEN cursor > pruned THEN cursor ELSE pruned END AS after FROM place
)
SELECT epoch, head, version, pruned,
  COALESCE((SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = $2 AND e.target_kind = 'user' AND e.target = $1 AND e.inbox_ordinal IS NOT NULL
             ORDER BY e.seq DESC LIMIT 1)
         - (SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = $2 AND e.target_kind = 'user' AND e.target = $1 AND e.inbox_ordinal IS NOT NULL
               AND e.seq > bound.after
             ORDER BY e.seq ASC LIMIT 1) + 1, 0)
+ COALESCE((SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = $2 AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL
             ORDER BY e.seq DESC LIMIT 1)
         - (SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = $2 AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL
               AND e.seq > bound.after
             ORDER BY e.seq ASC LIMIT 1) + 1, 0)
- (SELECT COUNT(*) FROM inbox_marks m
    WHERE m.tenant_id = $2 AND m.user_id = $1 AND m.seq > bound.after AND m.read)
+ (SELECT COUNT(*) FROM inbox_marks m
    WHERE m.tenant_id = $2 AND m.user_id = $1 AND m.seq > bound.pruned AND m.seq <= bound.cursor AND NOT m.read)
  AS unread
FROM bound";

impl Store {
    /// The user's unread count now.
    pub async fn inbox_unread(&self, tenant_id: i64, user: &UserId) -> Result<Unread, StoreError> {
        Ok(self
            .unread_and_position(tenant_id, user)
            .await?
            .map_or(GONE, |(_, unread)| unread))
    }

    /// Where the tenant's log stands and the user's unread count, read together (what a
    /// stream opening at the head needs, in one read); `None` if the tenant is gone.
    pub async fn unread_and_position(
        &self,
        tenant_id: i64,
        user: &UserId,
    ) -> Result<Option<(LogPosition, Unread)>, StoreError> {
        if let Some(reads) = self.sqlite_reads() {
            return reads.run_here(|db| unread_on_sqlite(db, tenant_id, user));
        }
        unread_and_position(self.reader(), tenant_id, user).await
    }
}

/// `unread_and_position` on SQLite, on the asking thread (every stream open asks it).
fn unread_on_sqlite(
    db: &rusqlite::Connection,
    tenant_id: i64,
    user: &UserId,
) -> Result<Option<(LogPosition, Unread)>, StoreError> {
    Ok(db
        .prepare_cached(COUNT)?
        .query_row(
            rusqlite::named_params! {"$1": user.as_str(), "$2": tenant_id},
            |row| {
                Ok(counted(
                    row.get("epoch")?,
                    row.get("head")?,
                    row.get("pruned")?,
                    row.get("version")?,
                    row.get("unread")?,
                ))
            },
        )
        .optional()?)
}

/// What a tenant that is gone has unread: nothing.
const GONE: Unread = Unread {
    count: 0,
    as_of_seq: 0,
    version: 0,
    pruned_seq: 0,
};

/// The user's unread count, in the caller's transaction or on its own.
pub(super) async fn unread(
    connection: &impl ConnectionTrait,
    tenant_id: i64,
    user: &UserId,
) -> Result<Unread, StoreError> {
    let counted = unread_and_position(connection, tenant_id, user).await?;
    Ok(counted.map_or(GONE, |(_, unread)| unread))
}

async fn unread_and_position(
    connection: &impl ConnectionTrait,
    tenant_id: i64,
    user: &UserId,
) -> Result<Option<(LogPosition, Unread)>, StoreError> {
    let values: [Value; 2] = [user.as_str().into(), tenant_id.into()];
    let backend = connection.get_database_backend();
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(backend, COUNT, values))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(counted(
        row.try_get("", "epoch")?,
        row.try_get("", "head")?,
        row.try_get("", "pruned")?,
        row.try_get("", "version")?,
        row.try_get("", "unread")?,
    )))
}

/// The log's position and the count, from one row of `COUNT`.
fn counted(
    epoch: String,
    head: i64,
    pruned_seq: i64,
    version: i64,
    count: i64,
) -> (LogPosition, Unread) {
    let position = LogPosition {
        epoch,
        next_seq: head + 1,
        pruned_seq,
    };
    let unread = Unread {
        count,
        as_of_seq: head,
        version,
        pruned_seq,
    };
    (position, unread)
}
