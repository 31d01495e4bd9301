//! The schema a node finds at start: whether it migrates it, runs on it as it is, or
//! refuses it.
//!
//! During a rolling upgrade the version before runs on a schema the new version migrated.
//! It may when it knows the migration the schema's floor names (`herald_schema_floor`, see
//! the `migrations` crate): everything after the floor only added what it can ignore. A
//! schema whose floor this node does not know has changed what it reads, so it refuses to
//! start rather than misread it.

use std::collections::HashSet;

use migrations::{MigratorTrait, SCHEMA_FLOOR_TABLE};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use super::StoreError;

/// What a node does with the schema it found.
pub(super) enum Finding {
    /// New, up to date, or behind: run this node's migrations.
    Migrate,
    /// Migrated further by a newer Herald that this one may run beside.
    Ahead { unknown: Vec<String>, floor: String },
}

/// Reads which migrations the database has had and what its floor is.
pub(super) async fn examine(db: &DatabaseConnection) -> Result<Finding, StoreError> {
    let backend = db.get_database_backend();
    let applied = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations",
        ))
        .await;
    // No table yet: a new database.
    let Ok(applied) = applied else {
        return Ok(Finding::Migrate);
    };
    let applied: HashSet<String> = applied
        .iter()
        .filter_map(|row| row.try_get::<String>("", "version").ok())
        .collect();
    let known: Vec<String> = migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let mut unknown: Vec<String> = applied
        .iter()
        .filter(|version| !known.contains(version))
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(Finding::Migrate);
    }
    unknown.sort();
    let lacking: Vec<&str> = known
        .iter()
        .filter(|name| !applied.contains(*name))
        .map(String::as_str)
        .collect();
    if !lacking.is_empty() {
        return Err(refusal(
            &unknown,
            &format!(
                "yet lacks this Herald's {}; it was not migrated by a later Herald",
                lacking.join(", ")
            ),
        ));
    }
    let floor = db
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT oldest_compatible FROM {SCHEMA_FLOOR_TABLE} WHERE id = 1"),
        ))
        .await?
        .and_then(|row| row.try_get::<String>("", "oldest_compatible").ok());
    match floor {
        Some(floor) if known.contains(&floor) => Ok(Finding::Ahead { unknown, floor }),
        Some(floor) => Err(refusal(
            &unknown,
            &format!("and needs a Herald that knows migration {floor}"),
        )),
        None => Err(refusal(&unknown, "and has no schema floor")),
    }
}

fn refusal(unknown: &[String], why: &str) -> StoreError {
    StoreError::Setup(format!(
        "the database's schema is newer than this Herald ({} {}) {why}: run that version or \
         a later one (docs/deployment.md, Upgrades)",
        env!("CARGO_PKG_VERSION"),
        match unknown {
            [one] => format!("does not know migration {one}"),
            many => format!("does not know migrations {}", many.join(", ")),
        }
    ))
}
