//! Receipts and fallbacks on the log: what Herald knows of each event with each recipient
//! user, stored so that it costs almost nothing where nobody asks.
//!
//! - **Delivered** is cumulative: a page acknowledges "every event of my stream up to this
//!   id", and Herald keeps one position per user per minute in which they acknowledged
//!   anything (`receipt_positions`, fact `delivered`) — one upsert per user per coalesced
//!   receipt, never a row per event. An event was delivered at the first acknowledgement of
//!   the first minute whose position covers it (or at its own creation, if that is later):
//!   exact to within the minute.
//! - **Seen** is per event: a row of `receipts` with `seen_at`, written when a page says so.
//! - **Read** is the inbox's: an item read by id gets `read_at` on its row; "mark all read"
//!   moves a cumulative `read` position as delivery does.
//! - A **fallback** is a `receipts` row per recipient written with the event in its commit,
//!   pending while `fallback_due_at` is set; the partial index on it is the timers'
//!   due-time index, read in order by `fire_due_fallbacks`.
//!
//! Rows below what retention removed are removed with the events (`forget_receipts_through`).
//! The submodules: `positions` (the cumulative facts), `marks` (per-event facts), `facts`
//! (reading them back), `fallbacks` (the timers), `writer` (browsers' receipts, group
//! committed).

mod facts;
mod fallbacks;
mod marks;
mod positions;
mod writer;

pub use facts::{FallbackStatus, Receipt};
pub(crate) use fallbacks::insert_fallbacks;
pub use fallbacks::{FallbackPass, PendingFallback};
pub(crate) use marks::{Reads, record_reads};
pub use writer::{ReceiptRequest, ReceiptWriter};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::entities::{receipt, receipt_position};
use super::{Store, StoreError};

/// Ids per statement (well under every engine's bound-parameter limit).
const CHUNK: usize = 500;

/// Binds `(user, seq)` pairs after the `values` already bound, and answers them as the
/// rows of a `VALUES` list: `($3, $4), ($5, $6), …`.
fn bind_pairs(pairs: &[(&str, i64)], values: &mut Vec<sea_orm::Value>) -> String {
    let mut rows = Vec::with_capacity(pairs.len());
    for &(user, seq) in pairs {
        let n = values.len();
        rows.push(format!("(${}, ${})", n + 1, n + 2));
        values.push(user.into());
        values.push(seq.into());
    }
    rows.join(", ")
}

impl Store {
    /// Drops the facts of events retention removed: every row at or below `seq`.
    pub(crate) async fn forget_receipts_through(
        &self,
        tenant_id: i64,
        seq: i64,
    ) -> Result<(), StoreError> {
        receipt::Entity::delete_many()
            .filter(receipt::Column::TenantId.eq(tenant_id))
            .filter(receipt::Column::Seq.lte(seq))
            .exec(self.writer())
            .await?;
        receipt_position::Entity::delete_many()
            .filter(receipt_position::Column::TenantId.eq(tenant_id))
            .filter(receipt_position::Column::Seq.lte(seq))
            .exec(self.writer())
            .await?;
        Ok(())
    }
}
