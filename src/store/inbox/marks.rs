//! What a user has read: the read cursor (`inbox_readers`) and the marks against it
//! (`inbox_marks`), changed one request of the user at a time, each answering the count
//! after it.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::Marking;
use super::count::unread;
use crate::domain::inbox::Unread;
use crate::domain::names::UserId;
use crate::domain::now_ms;
use crate::metrics;
use crate::store::entities::{event, inbox_mark, inbox_reader, tenant};
use crate::store::receipts::{Reads, record_reads};
use crate::store::usage::{UsageCounts, add_usage, day_of};
use crate::store::{Store, StoreError};
use std::sync::atomic::Ordering;

impl Store {
    /// Drops the marks of items retention removed (the count already leaves them out: it
    /// reads only above the tenant's `pruned_seq`).
    pub(crate) async fn forget_inbox_marks_through(
        &self,
        tenant_id: i64,
        seq: i64,
    ) -> Result<(), StoreError> {
        inbox_mark::Entity::delete_many()
            .filter(inbox_mark::Column::TenantId.eq(tenant_id))
            .filter(inbox_mark::Column::Seq.lte(seq))
            .exec(self.writer())
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
        let reader = Condition::all()
            .add(inbox_reader::Column::TenantId.eq(tenant_id))
            .add(inbox_reader::Column::UserId.eq(user.as_str()));
        let marks = Condition::all()
            .add(inbox_mark::Column::TenantId.eq(tenant_id))
            .add(inbox_mark::Column::UserId.eq(user.as_str()));
        // One request of a user at a time (SQLite has one writer anyway; PostgreSQL locks
        // the reader's row): each counts what the one before it did, and moves the version
        // on.
        inbox_reader::Entity::insert(inbox_reader::ActiveModel {
            tenant_id: Set(tenant_id),
            user_id: Set(user.as_str().to_owned()),
            read_through: Set(0),
            version: Set(0),
        })
        .on_conflict_do_nothing_on([inbox_reader::Column::TenantId, inbox_reader::Column::UserId])
        .exec_without_returning(&txn)
        .await?;
        let cursor: i64 = inbox_reader::Entity::find()
            .select_only()
            .column(inbox_reader::Column::ReadThrough)
            .filter(reader.clone())
            .lock_exclusive()
            .into_tuple()
            .one(&txn)
            .await?
            .unwrap_or(0);
        inbox_reader::Entity::update_many()
            .col_expr(
                inbox_reader::Column::Version,
                Expr::col(inbox_reader::Column::Version).add(1),
            )
            .filter(reader.clone())
            .exec(&txn)
            .await?;
        // The count before a read, so the read can say how many items it read.
        let before = match &marking {
            Marking::Unread(_) => None,
            _ => Some(unread(&txn, tenant_id, user).await?.count),
        };
        let now = now_ms();
        match marking {
            Marking::AllRead => {
                let head = Query::select()
                    .expr(Expr::col(tenant::Column::NextSeq).sub(1))
                    .from(tenant::Entity)
                    .and_where(tenant::Column::Id.eq(tenant_id))
                    .to_owned();
                inbox_reader::Entity::update_many()
                    .col_expr(inbox_reader::Column::ReadThrough, Expr::expr(head))
                    .filter(reader.clone())
                    .exec(&txn)
                    .await?;
                inbox_mark::Entity::delete_many()
                    .filter(marks)
                    .exec(&txn)
                    .await?;
                let through: i64 = inbox_reader::Entity::find()
                    .select_only()
                    .column(inbox_reader::Column::ReadThrough)
                    .filter(reader)
                    .into_tuple()
                    .one(&txn)
                    .await?
                    .unwrap_or(0);
                record_reads(&txn, tenant_id, user.as_str(), Reads::Through(through), now).await?;
            }
            Marking::Read(seqs) | Marking::Unread(seqs) if seqs.is_empty() => {}
            Marking::Read(seqs) => {
                let items = mark(&txn, tenant_id, user, cursor, &seqs, true).await?;
                record_reads(&txn, tenant_id, user.as_str(), Reads::Items(&items), now).await?;
            }
            Marking::Unread(seqs) => {
                mark(&txn, tenant_id, user, cursor, &seqs, false).await?;
            }
        }
        let unread = unread(&txn, tenant_id, user).await?;
        if let Some(before) = before {
            let read = std::cmp::max(before - unread.count, 0);
            let counts = UsageCounts {
                receipts_read: read,
                ..UsageCounts::default()
            };
            add_usage(&txn, tenant_id, day_of(now), counts).await?;
            metrics::RECEIPTS_READ.fetch_add(read as u64, Ordering::Relaxed);
        }
        txn.commit().await?;
        Ok(unread)
    }
}

/// Sets `seqs` (those that are the user's inbox items) read or unread: against the cursor,
/// a mark is added or removed. Answers the items among them.
async fn mark(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    user: &UserId,
    cursor: i64,
    seqs: &[i64],
    read: bool,
) -> Result<Vec<i64>, StoreError> {
    let owned: Vec<i64> = event::Entity::find()
        .select_only()
        .column(event::Column::Seq)
        .filter(event::Column::TenantId.eq(tenant_id))
        .filter(event::Column::InboxOrdinal.is_not_null())
        .filter(event::user_or_broadcast(user.as_str()))
        .filter(event::Column::Seq.is_in(seqs.iter().copied()))
        .into_tuple()
        .all(txn)
        .await?;
    for &seq in &owned {
        // Above the cursor an item is unread unless marked read; at or below it, read
        // unless marked unread.
        let keeps_mark = (seq > cursor) == read;
        if keeps_mark {
            inbox_mark::Entity::insert(inbox_mark::ActiveModel {
                tenant_id: Set(tenant_id),
                user_id: Set(user.as_str().to_owned()),
                seq: Set(seq),
                read: Set(read),
            })
            .on_conflict(
                OnConflict::columns([
                    inbox_mark::Column::TenantId,
                    inbox_mark::Column::UserId,
                    inbox_mark::Column::Seq,
                ])
                .update_column(inbox_mark::Column::Read)
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        } else {
            inbox_mark::Entity::delete_by_id((tenant_id, user.as_str().to_owned(), seq))
                .exec(txn)
                .await?;
        }
    }
    Ok(owned)
}
