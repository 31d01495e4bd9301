//! How committed events reach the hub that owns the streams.
//!
//! One node (no `redis.url`): the event log hands each commit group straight to its hub —
//! `Hub` is the log's `CommitListener`. Several nodes on one PostgreSQL database:
//! `RedisBroker` is the listener instead; it tells the other nodes over Redis pub/sub and
//! hands its own hub every tenant's events, its own and the others', in seq order, through
//! the transport-free `sequencer`.

pub mod redis;
mod sequencer;

pub use self::redis::{BrokerError, BrokerSettings, BrokerStats, RedisBroker};
