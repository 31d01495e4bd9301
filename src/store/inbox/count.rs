//! The exact unread count of one user, in one statement (see the module above).

use rusqlite::OptionalExtension;
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::domain::inbox::Unread;
use crate::domain::names::UserId;
use crate::store::{Store, StoreError};

/// The unread count of one user, and the head it was taken at (see the module's note).
const COUNT: &str = "
WITH place AS (
  SELECT COALESCE(r.read_through, 0) AS cursor, COALESCE(r.version, 0) AS version,
         t.pruned_seq AS pruned, t.next_seq - 1 AS head
  FROM tenants t LEFT JOIN inbox_readers r ON r.tenant_id = t.id AND r.user_id = $1
  WHERE t.id = $2
), bound AS (
  SELECT cursor, version, pruned, head,
         CASE WHEN cursor > pruned THEN cursor ELSE pruned END AS after FROM place
)
SELECT head, version, pruned,
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
        if let Some(reads) = self.sqlite_reads() {
            let user = user.clone();
            return reads
                .run(move |db| unread_on_sqlite(db, tenant_id, &user))
                .await;
        }
        unread(self.reader(), tenant_id, user).await
    }
}

/// `unread` on the store's SQLite reader threads (every stream open asks it).
fn unread_on_sqlite(
    db: &rusqlite::Connection,
    tenant_id: i64,
    user: &UserId,
) -> Result<Unread, StoreError> {
    let unread = db
        .prepare_cached(COUNT)?
        .query_row(
            rusqlite::named_params! {"$1": user.as_str(), "$2": tenant_id},
            |row| {
                Ok(Unread {
                    count: row.get("unread")?,
                    as_of_seq: row.get("head")?,
                    version: row.get("version")?,
                    pruned_seq: row.get("pruned")?,
                })
            },
        )
        .optional()?;
    Ok(unread.unwrap_or(GONE))
}

/// What a tenant that is gone has unread: nothing.
const GONE: Unread = Unread {
    count: 0,
    as_of_seq: 0,
    version: 0,
    pruned_seq: 0,
};

pub(super) async fn unread(
    connection: &impl ConnectionTrait,
    tenant_id: i64,
    user: &UserId,
) -> Result<Unread, StoreError> {
    let values: [Value; 2] = [user.as_str().into(), tenant_id.into()];
    let backend = connection.get_database_backend();
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(backend, COUNT, values))
        .await?;
    let Some(row) = row else {
        return Ok(GONE);
    };
    Ok(Unread {
        count: row.try_get("", "unread")?,
        as_of_seq: row.try_get("", "head")?,
        version: row.try_get("", "version")?,
        pruned_seq: row.try_get("", "pruned")?,
    })
}
