//! Backups of the SQLite database while Herald runs, and restoring one.
//!
//! A backup is `VACUUM INTO` another file: SQLite writes the database as one read
//! transaction sees it, so the copy holds every commit wholly or not at all — each tenant's
//! log gap-free up to its head — while publishing goes on (a read never blocks the writer
//! in WAL mode).
//!
//! A restore replaces the database with such a copy, with Herald stopped: every `serve` on
//! the file holds a shared lock on `<database>.lock`, which a restore must take alone. A
//! copy is older than what browsers have seen, and its logs will number new events from
//! where the copy stood: so every tenant gets a new epoch, and an id a browser kept — of
//! an event the copy may not hold, or whose number it will give to another event — is of
//! an epoch the log no longer has, and the stream answers it with `reset`.
//!
//! On PostgreSQL neither applies: its own tools (`pg_dump`, point-in-time recovery) do it
//! (docs/deployment.md says what Herald needs of them).

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::tenants::new_epoch;
use super::{SqliteFile, StoreError};

/// What a backup holds, or a restore put in place: per tenant, where its log stands.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub tenants: Vec<TenantHead>,
}

#[derive(Debug, Serialize)]
pub struct TenantHead {
    pub slug: String,
    pub epoch: String,
    /// The seq of the last event (0: none yet); the id of the head is `<epoch>-<head>`.
    pub head: i64,
    /// Events the log holds (retention may have removed older ones).
    pub events: i64,
}

/// The SQLite file `settings` names; an error that says what to do instead on PostgreSQL.
pub fn database_file(settings: &crate::config::DatabaseSettings) -> Result<SqliteFile, StoreError> {
    if settings.url.starts_with("postgres") {
        return Err(StoreError::Setup(
            "backup and restore are for SQLite; on PostgreSQL use pg_dump or point-in-time \
             recovery (docs/deployment.md, Backups)"
                .into(),
        ));
    }
    super::sqlite_file(settings)
}

/// The lock every `herald serve` on a SQLite file holds, shared, while it runs.
pub struct ServingLock {
    _file: File,
}

/// The file beside the database whose name is its name and `suffix`.
fn beside(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn lock_path(database: &Path) -> PathBuf {
    beside(database, ".lock")
}

fn setup(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Setup(format!("{what}: {error}"))
}

impl ServingLock {
    /// Takes the shared lock of a server on `file` (several servers may share a file).
    pub fn take(file: &SqliteFile) -> Result<ServingLock, StoreError> {
        let path = lock_path(&file.path);
        let lock = File::create(&path)
            .map_err(|e| setup(&format!("cannot open {}", path.display()), e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared)
            .map_err(|_| StoreError::Setup(format!("{} is being restored", file.path.display())))?;
        Ok(ServingLock { _file: lock })
    }
}

/// Copies the database at `from` into `to` (which must not exist), consistently, while
/// Herald may be writing it.
pub fn backup(from: &SqliteFile, to: &Path) -> Result<BackupReport, StoreError> {
    if to.exists() {
        return Err(StoreError::Setup(format!(
            "{} exists already",
            to.display()
        )));
    }
    let source = Connection::open_with_flags(&from.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| setup(&format!("cannot open {}", from.path.display()), e))?;
    source
        .busy_timeout(from.busy_timeout)
        .and_then(|()| source.execute("VACUUM INTO ?1", [to.to_string_lossy()]))
        .map_err(|e| setup(&format!("cannot copy into {}", to.display()), e))?;
    report(to)
}

/// Replaces the database of `into` with the copy at `from` (Herald stopped), every tenant
/// with a new epoch.
pub fn restore(from: &Path, into: &SqliteFile) -> Result<BackupReport, StoreError> {
    check_copy(from)?;
    let lock_file = lock_path(&into.path);
    let lock = File::create(&lock_file)
        .map_err(|e| setup(&format!("cannot open {}", lock_file.display()), e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            StoreError::Setup(format!(
                "Herald is running on {}: stop it before restoring",
                into.path.display()
            ))
        },
    )?;
    let staged = beside(&into.path, ".restoring");
    std::fs::copy(from, &staged).map_err(|e| setup("cannot copy the backup", e))?;
    let copy = Connection::open(&staged).map_err(|e| setup("cannot open the copy", e))?;
    renumber_epochs(&copy).map_err(|e| setup("cannot give the tenants new epochs", e))?;
    drop(copy);
    // The old database's WAL belongs to it; left beside the copy it would be replayed into it.
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(beside(&into.path, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(setup("cannot remove the old write-ahead log", e));
            }
            _ => {}
        }
    }
    std::fs::rename(&staged, &into.path).map_err(|e| setup("cannot put the copy in place", e))?;
    if let Some(folder) = into.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| setup("cannot sync the database's folder", e))?;
    }
    drop(lock);
    report(&into.path)
}

/// Refuses a file that is not a whole Herald database.
fn check_copy(path: &Path) -> Result<(), StoreError> {
    let copy = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| setup(&format!("cannot open {}", path.display()), e))?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| setup(&format!("{} is not a SQLite database", path.display()), e))?;
    if check != "ok" {
        return Err(StoreError::Setup(format!(
            "{} is damaged: {check}",
            path.display()
        )));
    }
    copy.query_row("SELECT COUNT(*) FROM tenants", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|_| StoreError::Setup(format!("{} is not a Herald database", path.display())))?;
    Ok(())
}

fn renumber_epochs(copy: &Connection) -> rusqlite::Result<()> {
    let ids: Vec<i64> = copy
        .prepare("SELECT id FROM tenants")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        copy.execute(
            "UPDATE tenants SET epoch = ?1 WHERE id = ?2",
            rusqlite::params![new_epoch(), id],
        )?;
    }
    Ok(())
}

fn report(file: &Path) -> Result<BackupReport, StoreError> {
    let db = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| setup(&format!("cannot open {}", file.display()), e))?;
    let tenants = db
        .prepare("SELECT slug, epoch, next_seq - 1, next_seq - 1 - pruned_seq FROM tenants ORDER BY slug")
        .and_then(|mut rows| {
            rows.query_map([], |row| {
                Ok(TenantHead {
                    slug: row.get(0)?,
                    epoch: row.get(1)?,
                    head: row.get(2)?,
                    events: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| setup(&format!("cannot read {}", file.display()), e))?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        file: file.to_path_buf(),
        bytes,
        tenants,
    })
}
