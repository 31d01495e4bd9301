//! A page of a user's inbox, newest first, each item read or not against the user's cursor
//! and marks.

use sea_orm::{ConnectionTrait, Statement, Value};

use super::count::unread;
use super::{InboxItem, InboxPage};
use crate::domain::event::EventId;
use crate::domain::names::UserId;
use crate::store::{Store, StoreError};

/// A page of the user's inbox items with a seq below `before`, newest first; the
/// user's own and the broadcasts are each read through the inbox index, newest first, and
/// merged.
const LIST: &str = "
WITH place AS (
  SELECT COALESCE((SELECT read_through FROM inbox_readers WHERE tenant_id = $1 AND user_id = $2), 0) AS cursor
), items AS (
  SELECT * FROM (SELECT e.seq, e.event_type, e.data, e.created_at FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'user' AND e.target = $2 AND e.inbox_ordinal IS NOT NULL AND e.seq < $3
    ORDER BY e.seq DESC LIMIT $4) own
  UNION ALL
  SELECT * FROM (SELECT e.seq, e.event_type, e.data, e.created_at FROM events e
    WHERE e.tenant_id = $1 AND e.target_kind = 'broadcast' AND e.target = '' AND e.inbox_ordinal IS NOT NULL AND e.seq < $3
    ORDER BY e.seq DESC LIMIT $4) broadcasts
), marked AS (
  SELECT i.seq, i.event_type, i.data, i.created_at,
    CASE WHEN i.seq <= place.cursor
      THEN NOT EXISTS (SELECT 1 FROM inbox_marks m WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.seq = i.seq AND NOT m.read)
      ELSE EXISTS (SELECT 1 FROM inbox_marks m WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.seq = i.seq AND m.read)
    END AS is_read
  FROM items i, place
)
SELECT seq, event_type, data, created_at, is_read FROM marked";

impl Store {
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
            let values: [Value; 4] = [
                tenant_id.into(),
                user.as_str().into(),
                before.into(),
                take.into(),
            ];
            let sql = format!("{LIST} ORDER BY seq DESC LIMIT {take}");
            let backend = connection.get_database_backend();
            let rows = connection
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
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
            .query_one_raw(Statement::from_sql_and_values(
                reader.get_database_backend(),
                "SELECT seq FROM events WHERE tenant_id = $1 AND inbox_ordinal IS NOT NULL \
                 AND seq > $2 AND seq <= $3 LIMIT 1",
                [tenant_id.into(), after.into(), through.into()],
            ))
            .await?;
        Ok(found.is_some())
    }
}
