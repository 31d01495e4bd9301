//! The notification inbox on the log: which events are inbox items, what each user has
//! read, and the exact unread count.
//!
//! An inbox item is an event stored with `inbox_ordinal`, its place among the inbox items
//! of its stream (a user's, or the tenant's broadcasts): 1, 2, 3… handed out at commit from
//! `inbox_totals`. A broadcast item is one row however many users the tenant has. What a
//! user has read is stored only when they act: a read cursor (`inbox_readers`, every item
//! up to that seq is read) and per-item marks that say otherwise (`inbox_marks`: read above
//! the cursor, unread at or below it). Marking all read moves the cursor to the log's head
//! and drops the user's marks — the items themselves are not touched.
//!
//! So the unread count is arithmetic on a few index look-ups, not a scan: the items of a
//! stream after a seq are its newest ordinal minus the ordinal of its first item after that
//! seq, plus one; the user's unread items are those after the cursor (or after what
//! retention removed, if that is further) of their own stream and of the broadcasts, less
//! the read marks after that point, plus the unread marks between what retention removed
//! and the cursor. All in one statement, so the count and the head it was taken at come
//! from one snapshot.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};

use super::{Store, StoreError};
use crate::domain::event::{EventId, Target};
use crate::domain::inbox::Unread;
use crate::domain::names::UserId;

/// Rows per upsert of the totals (well under every engine's bound-parameter limit).
const TOTALS_CHUNK: usize = 1_000;

/// An inbox item as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: EventId,
    pub event_type: String,
    /// Compact JSON of the published `data`.
    pub data: String,
    pub created_at: i64,
    pub read: bool,
}

/// A page of a user's inbox, newest first.
#[derive(Debug, Clone)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Where the next page starts (`before`), if there is one.
    pub next: Option<EventId>,
    pub unread: Unread,
}

/// What a read or unread request does.
#[derive(Debug, Clone)]
pub enum Marking {
    Read(Vec<i64>),
    Unread(Vec<i64>),
    AllRead,
}

/// Hands out the inbox ordinals of the inbox items among `events` (in seq order), their
/// streams' totals moved on in the same transaction: returns one per event, `None` for
/// events that are not inbox items.
pub(crate) async fn assign_ordinals(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    events: &[(&Target, bool)],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut added: Vec<((&str, &str), i64)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for (target, inbox) in events {
        if !inbox {
            continue;
        }
        let key = (target.kind(), target.name());
        let at = *index.entry(key).or_insert_with(|| {
            added.push((key, 0));
            added.len() - 1
        });
        added[at].1 += 1;
    }
    if added.is_empty() {
        return Ok(vec![None; events.len()]);
    }
    // Per stream, the ordinal its next item here gets.
    let mut next: HashMap<(String, String), i64> = HashMap::new();
    let totals = Alias::new("inbox_totals");
    let columns = ["tenant_id", "target_kind", "target", "items"].map(Alias::new);
    for chunk in added.chunks(TOTALS_CHUNK) {
        let mut upsert = Query::insert();
        upsert.into_table(totals.clone()).columns(columns.clone());
        for ((kind, name), count) in chunk {
            upsert
                .values([
                    tenant_id.into(),
                    (*kind).into(),
                    (*name).into(),
                    (*count).into(),
                ])
                .map_err(|e| StoreError::CommitFailed(e.to_string()))?;
        }
        upsert
            .on_conflict(
                OnConflict::columns(columns[..3].iter().cloned())
                    .value(
                        Alias::new("items"),
                        Expr::cust("inbox_totals.items + excluded.items"),
                    )
                    .to_owned(),
            )
            .returning(Query::returning().columns(columns[1..].iter().cloned()));
        for row in txn.query_all(&upsert).await? {
            let kind: String = row.try_get("", "target_kind")?;
            let name: String = row.try_get("", "target")?;
            let total: i64 = row.try_get("", "items")?;
            let count = index
                .get(&(kind.as_str(), name.as_str()))
                .map_or(0, |&at| added[at].1);
            next.insert((kind, name), total - count + 1);
        }
    }
    let mut ordinals = Vec::with_capacity(events.len());
    for (target, inbox) in events {
        let ordinal = match inbox {
            true => next
                .get_mut(&(target.kind().to_owned(), target.name().to_owned()))
                .map(|ordinal| {
                    *ordinal += 1;
                    *ordinal - 1
                }),
            false => None,
        };
        ordinals.push(ordinal);
    }
    Ok(ordinals)
}

/// SQL written with `?` placeholders, numbered for PostgreSQL.
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 16);
            for (n, part) in sql.split('?').enumerate() {
                if n > 0 {
                    numbered.push_str(&format!("${n}"));
                }
                numbered.push_str(part);
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The unread count of one user, and the head it was taken at (see the module's note).
const COUNT: &str = "
WITH place AS (
  SELECT COALESCE(r.read_through, 0) AS cursor, COALESCE(r.version, 0) AS version,
         t.pruned_seq AS pruned, t.next_seq - 1 AS head
  FROM tenants t LEFT JOIN inbox_readers r ON r.tenant_id = t.id AND r.user_id = ?
  WHERE t.id = ?
), bound AS (
  SELECT cursor, version, pruned, head,
         CASE WHEN cursor > pruned THEN cursor ELSE pruned END AS after FROM place
)
SELECT head, version, pruned,
  COALESCE((SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = ? AND e.target_kind = 'user' AND e.target = ? AND e.inbox_ordinal IS NOT NULL
             ORDER BY e.seq DESC LIMIT 1)
         - (SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = ? AND e.target_kind = 'user' AND e.target = ? AND e.inbox_ordinal IS NOT NULL
               AND e.seq > bound.after
             ORDER BY e.seq ASC LIMIT 1) + 1, 0)
+ COALESCE((SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = ? AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL
             ORDER BY e.seq DESC LIMIT 1)
         - (SELECT e.inbox_ordinal FROM events e
             WHERE e.tenant_id = ? AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL
               AND e.seq > bound.after
             ORDER BY e.seq ASC LIMIT 1) + 1, 0)
- (SELECT COUNT(*) FROM inbox_marks m
    WHERE m.tenant_id = ? AND m.user_id = ? AND m.seq > bound.after AND m.read)
+ (SELECT COUNT(*) FROM inbox_marks m
    WHERE m.tenant_id = ? AND m.user_id = ? AND m.seq > bound.pruned AND m.seq <= bound.cursor AND NOT m.read)
  AS unread
FROM bound";

/// A page of the user's inbox items with a seq below `before`, newest first; the
/// user's own and the broadcasts are each read through the inbox index, newest first, and
/// merged.
const LIST: &str = "
WITH place AS (
  SELECT COALESCE((SELECT read_through FROM inbox_readers WHERE tenant_id = ? AND user_id = ?), 0) AS cursor
), items AS (
  SELECT * FROM (SELECT e.seq, e.event_type, e.data, e.created_at FROM events e
    WHERE e.tenant_id = ? AND e.target_kind = 'user' AND e.target = ? AND e.inbox_ordinal IS NOT NULL AND e.seq < ?
    ORDER BY e.seq DESC LIMIT ?) own
  UNION ALL
  SELECT * FROM (SELECT e.seq, e.event_type, e.data, e.created_at FROM events e
    WHERE e.tenant_id = ? AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL AND e.seq < ?
    ORDER BY e.seq DESC LIMIT ?) broadcasts
), marked AS (
  SELECT i.seq, i.event_type, i.data, i.created_at,
    CASE WHEN i.seq <= place.cursor
      THEN NOT EXISTS (SELECT 1 FROM inbox_marks m WHERE m.tenant_id = ? AND m.user_id = ? AND m.seq = i.seq AND NOT m.read)
      ELSE EXISTS (SELECT 1 FROM inbox_marks m WHERE m.tenant_id = ? AND m.user_id = ? AND m.seq = i.seq AND m.read)
    END AS is_read
  FROM items i, place
)
SELECT seq, event_type, data, created_at, is_read FROM marked";

impl Store {
    /// The user's unread count now.
    pub async fn inbox_unread(&self, tenant_id: i64, user: &UserId) -> Result<Unread, StoreError> {
        unread(self.reader(), tenant_id, user).await
    }

    /// Up to `limit` of the user's inbox items below `before_seq` (all, or only the unread),
    /// newest first, with the count.
    pub async fn inbox_page(
        &self,
        tenant_id: i64,
        epoch: &str,
        user: &UserId,
        before_seq: i64,
        limit: u64,
        only_unread: bool,
    ) -> Result<InboxPage, StoreError> {
        let connection = self.reader();
        let mut items = Vec::new();
        let mut before = before_seq;
        let mut more = false;
        // The unread filter drops read items after the merge; pages are read until full.
        loop {
            let take = (limit + 1) as i64;
            let user_name = user.as_str();
            let values: Vec<Value> = vec![
                tenant_id.into(),
                user_name.into(),
                tenant_id.into(),
                user_name.into(),
                before.into(),
                take.into(),
                tenant_id.into(),
                before.into(),
                take.into(),
                tenant_id.into(),
                user_name.into(),
                tenant_id.into(),
                user_name.into(),
            ];
            let sql = format!("{LIST} ORDER BY seq DESC LIMIT {take}");
            let rows = connection
                .query_all_raw(statement(connection.get_database_backend(), &sql, values))
                .await?;
            let fetched = rows.len();
            for row in rows {
                let seq: i64 = row.try_get("", "seq")?;
                before = seq;
                let read: bool = row.try_get("", "is_read")?;
                if only_unread && read {
                    continue;
                }
                if items.len() == limit as usize {
                    more = true;
                    break;
                }
                items.push(InboxItem {
                    id: EventId {
                        epoch: epoch.to_owned(),
                        seq,
                    },
                    event_type: row.try_get("", "event_type")?,
                    data: row.try_get("", "data")?,
                    created_at: row.try_get("", "created_at")?,
                    read,
                });
            }
            if more || fetched < take as usize {
                break;
            }
        }
        let next = match more {
            true => items.last().map(|item| item.id.clone()),
            false => None,
        };
        let unread = unread(connection, tenant_id, user).await?;
        Ok(InboxPage {
            items,
            next,
            unread,
        })
    }

    /// Whether the tenant has inbox items with a seq in `after..=through`.
    pub(crate) async fn has_inbox_items(
        &self,
        tenant_id: i64,
        after: i64,
        through: i64,
    ) -> Result<bool, StoreError> {
        let reader = self.reader();
        let found = reader
            .query_one_raw(statement(
                reader.get_database_backend(),
                "SELECT seq FROM events WHERE tenant_id = ? AND inbox_ordinal IS NOT NULL \
                 AND seq > ? AND seq <= ? LIMIT 1",
                vec![tenant_id.into(), after.into(), through.into()],
            ))
            .await?;
        Ok(found.is_some())
    }

    /// Drops the marks of items retention removed (the count already leaves them out: it
    /// reads only above the tenant's `pruned_seq`).
    pub(crate) async fn forget_inbox_marks_through(
        &self,
        tenant_id: i64,
        seq: i64,
    ) -> Result<(), StoreError> {
        let writer = self.writer();
        writer
            .execute_raw(statement(
                writer.get_database_backend(),
                "DELETE FROM inbox_marks WHERE tenant_id = ? AND seq <= ?",
                vec![tenant_id.into(), seq.into()],
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
        let user_name = user.as_str();
        // One request of a user at a time (SQLite has one writer anyway): each counts what
        // the one before it did, and moves the version on.
        txn.execute_raw(statement(
            backend,
            "INSERT INTO inbox_readers (tenant_id, user_id, read_through, version) \
             VALUES (?, ?, 0, 0) ON CONFLICT (tenant_id, user_id) DO NOTHING",
            vec![tenant_id.into(), user_name.into()],
        ))
        .await?;
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE",
            _ => "",
        };
        let cursor: i64 = txn
            .query_one_raw(statement(
                backend,
                &format!(
                    "SELECT read_through FROM inbox_readers WHERE tenant_id = ? AND user_id = ?{lock}"
                ),
                vec![tenant_id.into(), user_name.into()],
            ))
            .await?
            .map(|row| row.try_get("", "read_through"))
            .transpose()?
            .unwrap_or(0);
        txn.execute_raw(statement(
            backend,
            "UPDATE inbox_readers SET version = version + 1 WHERE tenant_id = ? AND user_id = ?",
            vec![tenant_id.into(), user_name.into()],
        ))
        .await?;
        match marking {
            Marking::AllRead => {
                txn.execute_raw(statement(
                    backend,
                    "UPDATE inbox_readers SET read_through = \
                     (SELECT next_seq - 1 FROM tenants WHERE id = ?) \
                     WHERE tenant_id = ? AND user_id = ?",
                    vec![tenant_id.into(), tenant_id.into(), user_name.into()],
                ))
                .await?;
                txn.execute_raw(statement(
                    backend,
                    "DELETE FROM inbox_marks WHERE tenant_id = ? AND user_id = ?",
                    vec![tenant_id.into(), user_name.into()],
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
    let list = vec!["?"; seqs.len()].join(", ");
    let mut values: Vec<Value> = vec![tenant_id.into(), user.as_str().into()];
    values.extend(seqs.iter().map(|&seq| Value::from(seq)));
    let owned = txn
        .query_all_raw(statement(
            backend,
            &format!(
                "SELECT seq FROM events WHERE tenant_id = ? AND inbox_ordinal IS NOT NULL \
                 AND ((target_kind = 'user' AND target = ?) OR target_kind = 'broadcast') \
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
                "INSERT INTO inbox_marks (tenant_id, user_id, seq, read) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, user_id, seq) DO UPDATE SET read = excluded.read"
            }
            false => "DELETE FROM inbox_marks WHERE tenant_id = ? AND user_id = ? AND seq = ?",
        };
        let mut values: Vec<Value> = vec![tenant_id.into(), user.as_str().into(), seq.into()];
        if keeps_mark {
            values.push(read.into());
        }
        txn.execute_raw(statement(backend, sql, values)).await?;
    }
    Ok(())
}

async fn unread(
    connection: &impl ConnectionTrait,
    tenant_id: i64,
    user: &UserId,
) -> Result<Unread, StoreError> {
    let user_name = user.as_str();
    let values: Vec<Value> = vec![
        user_name.into(),
        tenant_id.into(),
        tenant_id.into(),
        user_name.into(),
        tenant_id.into(),
        user_name.into(),
        tenant_id.into(),
        tenant_id.into(),
        tenant_id.into(),
        user_name.into(),
        tenant_id.into(),
        user_name.into(),
    ];
    let row = connection
        .query_one_raw(statement(connection.get_database_backend(), COUNT, values))
        .await?;
    let Some(row) = row else {
        // The tenant is gone: nothing is unread.
        return Ok(Unread {
            count: 0,
            as_of_seq: 0,
            version: 0,
            pruned_seq: 0,
        });
    };
    Ok(Unread {
        count: row.try_get("", "unread")?,
        as_of_seq: row.try_get("", "head")?,
        version: row.try_get("", "version")?,
        pruned_seq: row.try_get("", "pruned")?,
    })
}
