//! The store: Herald's durable state behind sea-orm, on SQLite or PostgreSQL.
//!
//! `Store` holds two connection pools. On SQLite the writer pool has exactly one
//! connection and every write transaction begins `IMMEDIATE`: all of this process's writes
//! queue in the pool instead of racing for SQLite's single write lock (where they would fail
//! with "database is locked"), and another process's writer is waited for through the busy
//! timeout. Readers use their own pool and, thanks to WAL, never wait for the writer; the
//! reads every stream open and replay makes run on rusqlite connections of Herald's own
//! instead (`sqlite_reads`: on reader threads, or a short one on the asking thread). On
//! PostgreSQL both pools are the same.
//!
//! A connection is only ever reused in the transaction state it is believed to be in: one
//! returned to its pool while the driver still counts a transaction open is closed, never
//! handed out again (`close_if_in_transaction`). SQLite ends a transaction by itself when a
//! statement or `COMMIT` fails with `SQLITE_FULL` or an I/O error; the `ROLLBACK` that
//! follows then fails, and the driver's count stays one transaction too high — so on that
//! connection the next `BEGIN` would be a `SAVEPOINT` and every later "commit" only its
//! `RELEASE`, inside a transaction nobody commits.
//!
//! The submodules split the state by concept: `tenants`, `keys`, and `log` (the event log:
//! group-committed appends and replay reads); `credentials` keeps the tenants and signing
//! keys that streams read, for a short while; `fault` tells storage faults from other
//! errors and remembers the last one; `schema` decides at start whether to migrate, run on a
//! newer schema, or refuse it.

pub mod backup;
pub mod credentials;
pub mod entities;
pub mod fault;
pub mod hourly_usage;
pub mod inbox;
pub mod keys;
pub mod log;
pub mod presence;
pub mod receipts;
mod schema;
mod sqlite_reads;
pub mod tenants;
pub mod usage;
pub mod webhooks;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sea_orm::sqlx::pool::PoolConnectionMetadata;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sqlite_reads::SqliteReads;

use crate::config::{self, DatabaseSettings};
use fault::{Fault, StorageHealth};

/// The PostgreSQL advisory lock nodes take turns on to migrate ("HERALD" in ASCII).
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(DbErr),
    /// A statement on one of the SQLite connections of Herald's own (the log's writer, the
    /// streams' reads) that failed for another reason than a storage fault.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The storage has no space left for the write.
    #[error("the storage is full: {0}")]
    Full(String),
    /// The database does not answer (down, unreachable, every connection stuck) or cannot
    /// read or write its files.
    #[error("the storage is unavailable: {0}")]
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

impl StoreError {
    /// The same failure for another request of a failed group commit: a storage fault stays
    /// one (and is retried later), anything else is a commit that failed.
    pub(crate) fn for_another_waiter(&self) -> StoreError {
        match self {
            StoreError::Full(message) => StoreError::Full(message.clone()),
            StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
            error => StoreError::CommitFailed(error.to_string()),
        }
    }
}

impl From<DbErr> for StoreError {
    fn from(error: DbErr) -> Self {
        match Fault::of(&error) {
            Some(Fault::Full) => StoreError::Full(error.to_string()),
            Some(Fault::Unavailable) => StoreError::Unavailable(error.to_string()),
            None => StoreError::Database(error),
        }
    }
}

impl StoreError {
    /// The storage fault this error is, if it is one.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::Full(_) => Some(Fault::Full),
            StoreError::Unavailable(_) => Some(Fault::Unavailable),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    /// The SQLite database's file; `None` on PostgreSQL.
    sqlite: Option<SqliteFile>,
    /// On SQLite, the streams' reads (`sqlite_reads`).
    sqlite_reads: Option<Arc<SqliteReads>>,
    health: Arc<StorageHealth>,
}

/// The SQLite database's file and how its connections are set up: what the connections of
/// Herald's own open (the log's writer, `log::sqlite`; the streams' reads, `sqlite_reads`).
#[derive(Debug, Clone)]
pub struct SqliteFile {
    pub path: PathBuf,
    /// `synchronous = FULL` (else `NORMAL`).
    pub full_sync: bool,
    pub busy_timeout: Duration,
}

impl SqliteFile {
    /// A rusqlite connection of its own to the file, for `purpose` (the log's writer, the
    /// streams' reads), opened at start-up: a failure says what could not be opened.
    pub(crate) fn connect(
        &self,
        purpose: &str,
        pragmas: &str,
        statements: usize,
    ) -> Result<rusqlite::Connection, StoreError> {
        self.open(pragmas, statements).map_err(|e| {
            StoreError::Setup(format!(
                "cannot open {} {purpose}: {e}",
                self.path.display()
            ))
        })
    }

    /// A rusqlite connection of its own to the file: `pragmas` run, up to `statements`
    /// prepared statements kept. Only another process's write (a `herald` command) is
    /// waited for, through the busy timeout: this process's writers take turns
    /// (`Store::hold_writer`). One opened while Herald serves fails as a statement would
    /// (a storage fault where it is one).
    pub(crate) fn open(
        &self,
        pragmas: &str,
        statements: usize,
    ) -> Result<rusqlite::Connection, rusqlite::Error> {
        use rusqlite::{Connection, OpenFlags};
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.execute_batch(pragmas)?;
        connection.busy_timeout(self.busy_timeout)?;
        connection.set_prepared_statement_cache_capacity(statements);
        Ok(connection)
    }
}

/// A failed statement on one of those connections: a storage fault (full, or unavailable)
/// or a database error.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        let fault = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => {
                Fault::of_sqlite_code(failure.extended_code)
            }
            _ => None,
        };
        match fault {
            Some(Fault::Full) => StoreError::Full(error.to_string()),
            Some(Fault::Unavailable) => StoreError::Unavailable(error.to_string()),
            None => StoreError::Sqlite(error),
        }
    }
}

/// Below this much free space on the SQLite database's file system, a storage that filled up
/// is still called full, whatever a small test write says: the space a failed write took
/// stays with the database's files, and a probe can fit in it where real writes do not.
const FULL_UNTIL_FREE_BYTES: u64 = 8 << 20;

impl Store {
    /// Opens (and for SQLite creates) the database. Does not migrate: see `migrate`.
    pub async fn open(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let health = Arc::default();
        if settings.url.starts_with("sqlite:") {
            let file = sqlite_file(settings)?;
            let folder = sqlite_folder(&file.path);
            std::fs::create_dir_all(&folder).map_err(|e| {
                StoreError::Setup(format!("cannot create {}: {e}", folder.display()))
            })?;
            let writer = Database::connect(sqlite_options(settings, 1)).await?;
            let reader =
                Database::connect(sqlite_options(settings, settings.max_connections)).await?;
            let threads = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(settings.max_connections as usize);
            let sqlite_reads = SqliteReads::open(&file, threads)?;
            Ok(Store {
                reader,
                writer,
                sqlite: Some(file),
                sqlite_reads: Some(Arc::new(sqlite_reads)),
                health,
            })
        } else {
            let mut options = ConnectOptions::new(settings.url.clone());
            // While the server is down the pool keeps trying to connect until this runs
            // out: a publish then answers 503 within it, well inside a client's patience.
            options
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .sqlx_logging(false)
                .map_sqlx_postgres_pool_opts(|pool| pool.after_release(close_if_in_transaction));
            let pool = Database::connect(options).await?;
            Ok(Store {
                reader: pool.clone(),
                writer: pool,
                sqlite: None,
                sqlite_reads: None,
                health,
            })
        }
    }

    /// What the event log's commits have lately found of the storage.
    pub fn health(&self) -> &StorageHealth {
        &self.health
    }

    /// Tries a write, for `/readyz` while `health` holds a fault: `Ok` clears it. A row of
    /// 64 KiB, more than most commits write, replaces the last probe's; on SQLite a file
    /// system with less than 8 MiB free stays full.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let result = self.try_probe().await;
        match &result {
            Ok(()) => self.health.recovered(),
            Err(error) => {
                if let Some(fault) = error.fault() {
                    self.health.failed(fault);
                }
            }
        }
        result
    }

    async fn try_probe(&self) -> Result<(), StoreError> {
        use sea_orm::Statement;
        if let Some(file) = &self.sqlite {
            let free = rustix::fs::statvfs(sqlite_folder(&file.path))
                .map(|fs| fs.f_bavail.saturating_mul(fs.f_frsize))
                .map_err(|e| StoreError::Unavailable(format!("statvfs: {e}")))?;
            if free < FULL_UNTIL_FREE_BYTES {
                return Err(StoreError::Full(format!(
                    "{free} bytes free on the database's file system"
                )));
            }
        }
        let txn = self.begin_write().await?;
        txn.execute_unprepared("DELETE FROM storage_probe").await?;
        let padding = vec![0x5a_u8; 64 << 10];
        // Numbered parameters, which SQLite reads as PostgreSQL does.
        txn.execute_raw(Statement::from_sql_and_values(
            self.backend(),
            "INSERT INTO storage_probe (probed_at, padding) VALUES ($1, $2)",
            [crate::domain::now_ms().into(), padding.into()],
        ))
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Brings the schema up to date — or, during a rolling upgrade, runs on a schema a newer
    /// Herald has migrated when its floor allows (`schema`). On PostgreSQL, nodes starting
    /// together take turns: the first holds a transaction-scoped advisory lock while it
    /// migrates, the others wait for it and then find nothing left to do. (SQLite has one
    /// writer anyway.)
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.backend() != DbBackend::Postgres {
            return self.migrate_unless_ahead().await;
        }
        let turn = self.writer.begin().await?;
        turn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        self.migrate_unless_ahead().await?;
        turn.commit().await?;
        Ok(())
    }

    async fn migrate_unless_ahead(&self) -> Result<(), StoreError> {
        use migrations::MigratorTrait;
        match schema::examine(&self.writer).await? {
            schema::Finding::Migrate => migrations::Migrator::up(&self.writer, None).await?,
            schema::Finding::Ahead { unknown, floor } => tracing::warn!(
                unknown = %unknown.join(", "),
                %floor,
                "a newer Herald has migrated the schema; this one runs on it unchanged, \
                 as its floor allows (replace this node with the newer version)"
            ),
        }
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

    /// On SQLite, the threads that run the streams' reads.
    pub(crate) fn sqlite_reads(&self) -> Option<&SqliteReads> {
        self.sqlite_reads.as_deref()
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

    /// The SQLite database's file; `None` on PostgreSQL.
    pub(crate) fn sqlite_file(&self) -> Option<&SqliteFile> {
        self.sqlite.as_ref()
    }

    /// On SQLite, takes the writer pool's one connection and holds it until the guard is
    /// dropped: no other write of this process runs meanwhile, so a writer with a
    /// connection of its own (the event log's) does not race this one for the write lock.
    pub(crate) async fn hold_writer(&self) -> Result<Option<WriterHeld>, StoreError> {
        if self.sqlite.is_none() {
            return Ok(None);
        }
        let held = self
            .writer
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable(format!("the writer connection: {e}")))?;
        Ok(Some(held))
    }
}

/// The writer pool's connection, held (`Store::hold_writer`).
pub(crate) type WriterHeld = sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Sqlite>;

/// A page read with one row more than `limit`: keeps `limit` of them and answers whether
/// more follow (so whether the page's last row is a cursor for the next).
pub fn cut_page<T>(rows: &mut Vec<T>, limit: u64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

fn sqlite_options(settings: &DatabaseSettings, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // A local file does not go stale: no ping (a round trip to the driver's thread)
        // before each use.
        .test_before_acquire(false)
        .sqlx_logging(false);
    let busy_timeout = Duration::from_millis(settings.busy_timeout_ms);
    let synchronous = match settings.sqlite_synchronous {
        config::SqliteSynchronous::Full => SqliteSynchronous::Full,
        config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
    };
    options
        .map_sqlx_sqlite_opts(move |opts: SqliteConnectOptions| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|pool| pool.after_release(close_if_in_transaction));
    options
}

/// The pool's check on every connection handed back: one the driver still counts inside a
/// transaction is closed (which rolls back whatever SQLite or PostgreSQL still holds open)
/// rather than reused. A transaction dropped without commit has its `ROLLBACK` queued on the
/// connection; the ping waits for it before the count is read again.
fn close_if_in_transaction<C: sea_orm::sqlx::Connection>(
    connection: &mut C,
    _: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    Box::pin(async move {
        if !connection.is_in_transaction() {
            return Ok(true);
        }
        connection.ping().await?;
        if connection.is_in_transaction() {
            tracing::warn!(
                "closing a database connection left inside a transaction after a failure"
            );
            return Ok(false);
        }
        Ok(true)
    })
}

/// The database file `database.url` names, and how to connect to it.
fn sqlite_file(settings: &DatabaseSettings) -> Result<SqliteFile, StoreError> {
    let url = &settings.url;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Setup(format!("database.url `{url}`: {e}")))?;
    Ok(SqliteFile {
        path: options.get_filename().to_path_buf(),
        full_sync: matches!(settings.sqlite_synchronous, config::SqliteSynchronous::Full),
        busy_timeout: Duration::from_millis(settings.busy_timeout_ms),
    })
}

/// The folder a database file lives in (`.` for a bare file name).
fn sqlite_folder(path: &std::path::Path) -> PathBuf {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}
