//! The event log's vocabulary: an event as it stands in the log, where a tenant's log
//! stands, and whether a reader who has seen a given id can carry on exactly from it.

use std::sync::Arc;

use opentelemetry::trace::SpanContext;

use super::event::{EventId, PublishedEvent, Target};

/// An event as it stands in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub tenant_id: i64,
    pub id: EventId,
    pub target: Target,
    pub event_type: String,
    /// Compact JSON of the published `data`.
    pub data: String,
    pub created_at: i64,
    /// Also an item of its recipient's inbox.
    pub inbox: bool,
    /// Where its publish stands in a recorded trace, while it is handed to the hub after
    /// its commit (`crate::traces`); `None` otherwise, and always as read from the log.
    pub trace: Option<Arc<SpanContext>>,
}

impl LoggedEvent {
    pub fn published(&self) -> PublishedEvent {
        PublishedEvent {
            id: self.id.to_string(),
            to: self.target.to_json(),
            event_type: self.event_type.clone(),
        }
    }
}

/// Where a tenant's log stands.
#[derive(Debug, Clone)]
pub struct LogPosition {
    pub epoch: String,
    /// The seq the next event will get.
    pub next_seq: i64,
    /// Events up to this seq may have been removed by retention.
    pub pruned_seq: i64,
}

/// Why a reader cannot carry on exactly after an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresumable {
    /// The id is from another epoch of the log (it started over), or from no log at all.
    UnknownEpoch,
    /// The id lies beyond the newest event.
    InTheFuture,
    /// Events after the id have been removed by retention.
    Expired,
}

impl Unresumable {
    /// The `reason` a stream's `reset` event gives.
    pub fn reason(self) -> &'static str {
        match self {
            Unresumable::UnknownEpoch => "unknown_epoch",
            Unresumable::InTheFuture => "id_in_the_future",
            Unresumable::Expired => "history_expired",
        }
    }
}

impl LogPosition {
    /// The seq of the newest event (0 before the first).
    pub fn head(&self) -> i64 {
        self.next_seq - 1
    }

    /// The newest event's id: the position of a reader that has seen everything.
    pub fn head_id(&self) -> EventId {
        EventId {
            epoch: self.epoch.clone(),
            seq: self.head(),
        }
    }

    /// The seq to read after for a reader that has seen `id`, when every event after it
    /// is still here to be read.
    pub fn resume_after(&self, id: &EventId) -> Result<i64, Unresumable> {
        if id.epoch != self.epoch {
            Err(Unresumable::UnknownEpoch)
        } else if id.seq > self.head() {
            Err(Unresumable::InTheFuture)
        } else if id.seq < self.pruned_seq {
            Err(Unresumable::Expired)
        } else {
            Ok(id.seq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_resumes_only_where_every_later_event_is_kept() {
        let position = LogPosition {
            epoch: "ep".into(),
            next_seq: 11,
            pruned_seq: 4,
        };
        let id = |epoch: &str, seq| EventId {
            epoch: epoch.into(),
            seq,
        };
        assert_eq!(position.resume_after(&id("ep", 10)), Ok(10));
        assert_eq!(position.resume_after(&id("ep", 4)), Ok(4));
        assert_eq!(
            position.resume_after(&id("other", 5)),
            Err(Unresumable::UnknownEpoch)
        );
        assert_eq!(
            position.resume_after(&id("ep", 11)),
            Err(Unresumable::InTheFuture)
        );
        assert_eq!(
            position.resume_after(&id("ep", 3)),
            Err(Unresumable::Expired)
        );
    }
}
