//! The event log: every published event, per tenant, under a gap-free sequence.
//!
//! Appends go through one writer (`writer`; on SQLite a thread of its own with the log's own
//! connection, `sqlite`): it commits every waiting request in one transaction (through the
//! pool on PostgreSQL, `group`, a tenant's plain appends in one statement, `plain`) and only then answers them, each tenant's sequence numbers handed
//! out under its counter-row lock so that sequence order is commit order. Idempotency records
//! (`idempotency`) are written in the same transaction as the events they answer for.
//! Readers (`read`) replay a stream's events after a position; retention (`retention`)
//! removes what a tenant no longer keeps.

mod group;
mod idempotency;
mod plain;
mod read;
mod retention;
mod sqlite;
mod writer;

pub use idempotency::{IDEMPOTENCY_TTL_MS, IdempotencyClaim};
pub use read::{SeqRange, StreamSelector};
pub use retention::Pruned;
pub use writer::{EventLog, LogStats};

use crate::domain::event::PublishedEvent;
use crate::domain::log::LoggedEvent;

/// What became of one append request.
#[derive(Debug)]
pub enum AppendOutcome {
    /// The events are committed, in this order.
    Committed(Vec<LoggedEvent>),
    /// The idempotency key was used before with the same body: its first answer.
    Replayed(Vec<PublishedEvent>),
    /// Nothing was written, for this reason.
    Rejected(AppendRejection),
}

/// Why an append request wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRejection {
    /// The idempotency key was used before with another body.
    KeyReused,
    /// The tenant was removed while the request waited.
    TenantGone,
    /// A request with the same idempotency key is still being appended on this node.
    InFlight,
}

/// Told about every committed group of events, in commit order, before the publishers
/// get their answers. The hub implements it to deliver events live.
pub trait CommitListener: Send + Sync {
    fn committed(&self, events: &[&LoggedEvent]);
}
