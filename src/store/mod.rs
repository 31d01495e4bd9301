//! The store: Herald's durable state behind sea-orm, on SQLite or PostgreSQL.
//!
//! `Store` holds two connection pools. On SQLite the writer pool has exactly one
//! connection and every write transaction begins `IMMEDIATE`: all of this process's writes
//! queue in the pool instead of racing for SQLite's single write lock (where they would fail
//! with "database is locked"), and another process's writer is waited for through the busy
//! timeout. Readers use their own pool and, thanks to WAL, never wait for the writer. On
//! PostgreSQL both pools are the same.
//!
//! The submodules split the state by concept: `tenants`, `keys`, and `log` (the event log:
//! group-committed appends and replay reads); `credentials` keeps the tenants and signing
//! keys that streams read, for a short while.

pub mod credentials;
pub mod entities;
pub mod inbox;
pub mod keys;
pub mod log;
pub mod tenants;
pub mod usage;

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::{self, DatabaseSettings};

/// The PostgreSQL advisory lock nodes take turns on to migrate ("HERALD" in ASCII).
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(DbErr),
    /// The database does not answer (down, unreachable, or every connection stuck).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("cannot prepare the database: {0}")]
    Setup(String),
    #[error("the event log writer has stopped")]
    WriterStopped,
    #[error("the event log could not commit: {0}")]
    CommitFailed(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(error: DbErr) -> Self {
        match error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                StoreError::Unavailable(error.to_string())
            }
            error => StoreError::Database(error),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    reader: DatabaseConnection,
    writer: DatabaseConnection,
}

impl Store {
    /// Opens (and for SQLite creates) the database. Does not migrate: see `migrate`.
    pub async fn open(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        if settings.url.starts_with("sqlite:") {
            create_sqlite_parent_dir(&settings.url)?;
            let writer = Database::connect(sqlite_options(settings, 1)).await?;
            let reader =
                Database::connect(sqlite_options(settings, settings.max_connections)).await?;
            Ok(Store { reader, writer })
        } else {
            let mut options = ConnectOptions::new(settings.url.clone());
            options
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let pool = Database::connect(options).await?;
            Ok(Store {
                reader: pool.clone(),
                writer: pool,
            })
        }
    }

    /// Brings the schema up to date. On PostgreSQL, nodes starting together take turns:
    /// the first holds a transaction-scoped advisory lock while it migrates, the others
    /// wait for it and then find nothing left to do. (SQLite has one writer anyway.)
    pub async fn migrate(&self) -> Result<(), StoreError> {
        use migrations::MigratorTrait;
        if self.backend() != DbBackend::Postgres {
            migrations::Migrator::up(&self.writer, None).await?;
            return Ok(());
        }
        let turn = self.writer.begin().await?;
        turn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        migrations::Migrator::up(&self.writer, None).await?;
        turn.commit().await?;
        Ok(())
    }

    /// Answers whether the database responds, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.reader.ping().await?;
        Ok(())
    }

    pub fn backend(&self) -> DbBackend {
        self.writer.get_database_backend()
    }

    pub(crate) fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken
    /// up front and a busy database is waited for rather than failing half-way.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.writer.begin_with_options(options).await
    }

    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }
}

fn sqlite_options(settings: &DatabaseSettings, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    let busy_timeout = Duration::from_millis(settings.busy_timeout_ms);
    let synchronous = match settings.sqlite_synchronous {
        config::SqliteSynchronous::Full => SqliteSynchronous::Full,
        config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
    };
    options.map_sqlx_sqlite_opts(move |opts: SqliteConnectOptions| {
        opts.create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
    });
    options
}

/// `sqlite://data/herald.db` lives in `data/`: make sure that folder exists.
fn create_sqlite_parent_dir(url: &str) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Setup(format!("database.url `{url}`: {e}")))?;
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}
