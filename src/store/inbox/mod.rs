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

//! The submodules: `ordinals` (handed out at commit), `count` (the unread count), `pages`
//! (the list), `marks` (read, unread, read all). The tables have sea-orm entities
//! (`store::entities::inbox_*`), and `ordinals` and `marks` build their statements from
//! them. The count and the page are each one statement of SQL text, written once for both
//! engines with numbered parameters (`$1`, which SQLite reads as PostgreSQL does, each value
//! bound once however often the statement uses it): they are arithmetic over correlated
//! sub-selects in one snapshot, which reads plainer as SQL than as a builder's calls.

mod count;
mod marks;
mod ordinals;
mod pages;

pub(crate) use ordinals::{assign_ordinals, inbox_counts, ordinals_from};

use crate::domain::event::EventId;
use crate::domain::inbox::Unread;

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
