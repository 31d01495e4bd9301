//! How nodes learn what the others did: committed events, and the changes every node must
//! know at once (streams ended, tenants changed, unread counts).
//!
//! `Broker` is the contract: publish a `Notice` to the other nodes. One node (no
//! `redis.url`) has `LocalBroker`, which has nobody to tell, and the event log hands each
//! commit group straight to its hub (`Hub` is the log's `CommitListener`). Several nodes on
//! one PostgreSQL database have `RedisBroker`: it is the log's listener instead, publishes
//! every notice over Redis pub/sub, and hands its own hub every tenant's events, its own and
//! the others', in seq order through the transport-free `sequencer`. The node a change
//! happens on applies its notice itself (`AppState::notify`); the others apply the same
//! notice when it arrives (`Notice::apply`).

pub mod notice;
pub mod redis;
mod sequencer;

pub use self::notice::Notice;
pub use self::redis::{BrokerError, BrokerSettings, BrokerStats, RedisBroker};

/// Telling the other nodes.
pub trait Broker: Send + Sync {
    /// Sends `notice` to every other node (at most once: a node that misses a commit group
    /// reads it from the log; one that misses a change keeps nothing it would make stale
    /// while it cannot hear them).
    fn publish(&self, notice: Notice);

    /// With several nodes, whether this node reaches the others right now; `None` alone.
    fn connected(&self) -> Option<bool> {
        None
    }

    /// With several nodes, what the transport has done.
    fn stats(&self) -> Option<&BrokerStats> {
        None
    }
}

/// One node: nobody else to tell.
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish(&self, _: Notice) {}
}
