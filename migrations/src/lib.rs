//! Herald's database schema, as sea-orm migrations.
//!
//! The server runs these at start-up (and `herald migrate` runs them on demand). Every
//! migration is written with sea-query's portable builders (and, where they have no word
//! for it, SQL both engines read alike) so the same steps create the
//! schema on SQLite (the default, single-node store) and PostgreSQL (the scale-out store).
//! Timestamps are stored as Unix milliseconds in BIGINT columns: the same type on both
//! engines, cheap to compare, and free of time-zone conversions.
//!
//! # Rolling upgrades
//!
//! While nodes are replaced one at a time, the version before runs on the schema the new
//! one migrated. So a migration *expands* — new tables, new nullable or defaulted columns,
//! new indexes — and leaves the schema floor (`herald_schema_floor`) as it is: every Herald
//! that knows the floor's migration keeps running. A migration that *contracts* — drops or
//! changes what an older version reads — comes a release after the code stopped reading it,
//! and raises the floor to the last migration that release knew (with [`raise_floor`]), so
//! older nodes refuse the schema instead of misreading it.

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
mod m20261207_000003_schema_floor;
mod m20261207_000004_traceparent;

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
            Box::new(m20261207_000003_schema_floor::Migration),
            Box::new(m20261207_000004_traceparent::Migration),
        ]
    }
}

/// Where the schema floor is kept: one row, `id = 1`.
pub const SCHEMA_FLOOR_TABLE: &str = "herald_schema_floor";

/// Raises the schema floor to `migration`, for a migration that contracts the schema (see
/// the module's "Rolling upgrades").
pub async fn raise_floor(manager: &SchemaManager<'_>, migration: &str) -> Result<(), DbErr> {
    let raise = Query::update()
        .table(Alias::new(SCHEMA_FLOOR_TABLE))
        .value(Alias::new("oldest_compatible"), migration)
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .to_owned();
    manager.exec_stmt(raise).await
}
