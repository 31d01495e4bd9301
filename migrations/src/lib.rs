//! Herald's database schema, as sea-orm migrations.
//!
//! The server runs these at start-up (and `herald migrate` runs them on demand). Every
//! migration is written with sea-query's portable builders (and, where they have no word
//! for it, SQL both engines read alike) so the same steps create the
//! schema on SQLite (the default, single-node store) and PostgreSQL (the scale-out store).
//! Timestamps are stored as Unix milliseconds in BIGINT columns: the same type on both
//! engines, cheap to compare, and free of time-zone conversions.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_initial;
mod m20261130_000001_limits_and_usage;
mod m20261201_000001_inbox;
mod m20261203_000001_storage_probe;
mod m20261204_000001_webhooks;
mod m20261204_000002_presence;
mod m20261205_000001_receipts;
mod m20261207_000001_webhooks_due_per_endpoint;
mod m20261207_000002_hourly_usage;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_initial::Migration),
            Box::new(m20261130_000001_limits_and_usage::Migration),
            Box::new(m20261201_000001_inbox::Migration),
            Box::new(m20261203_000001_storage_probe::Migration),
            Box::new(m20261204_000001_webhooks::Migration),
            Box::new(m20261204_000002_presence::Migration),
            Box::new(m20261205_000001_receipts::Migration),
            Box::new(m20261207_000001_webhooks_due_per_endpoint::Migration),
            Box::new(m20261207_000002_hourly_usage::Migration),
        ]
    }
}
