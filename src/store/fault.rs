//! Storage faults: what a failed database call says about the storage under it, and what
//! the store has seen of it lately.
//!
//! A failed call is either the caller's or Herald's own mistake (a constraint, a bug) or a
//! fault of the storage: it is full, or it cannot be reached or written right now. Only the
//! latter is worth a retry, so `StoreError` keeps them apart (`Full`, `Unavailable`) and the
//! HTTP layer answers them with `503 storage_full` / `503 storage_unavailable` and
//! `Retry-After`. `StorageHealth` remembers the fault the event log's last commit hit until a
//! commit (or a probe, see `Store::probe`) succeeds, for `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use sea_orm::{DbErr, RuntimeErr};

/// A fault of the storage, as opposed to a mistake in a request or in Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No space left: SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`.
    Full,
    /// The database cannot be reached, is shutting down, refuses connections, or fails to
    /// read or write its files (I/O errors, a lock held past the busy timeout).
    Unavailable,
}

impl Fault {
    /// The fault behind `error`, if it is one of the storage's.
    pub fn of(error: &DbErr) -> Option<Fault> {
        match error {
            DbErr::ConnectionAcquire(_) => Some(Fault::Unavailable),
            DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => match runtime {
                RuntimeErr::SqlxError(error) => Fault::of_sqlx(error),
                RuntimeErr::Internal(_) => None,
            },
            _ => None,
        }
    }

    fn of_sqlx(error: &sea_orm::sqlx::Error) -> Option<Fault> {
        use sea_orm::sqlx::Error;
        match error {
            Error::Database(database) => {
                // PostgreSQL's codes are five-character SQLSTATEs; SQLite's are numbers
                // below 10,000.
                let code = database.code()?;
                if code.len() == 5 {
                    Fault::of_sqlstate(&code)
                } else {
                    code.parse().ok().and_then(Fault::of_sqlite_code)
                }
            }
            Error::Io(_)
            | Error::Tls(_)
            | Error::Protocol(_)
            | Error::PoolTimedOut
            | Error::PoolClosed
            | Error::WorkerCrashed
            | Error::BeginFailed => Some(Fault::Unavailable),
            _ => None,
        }
    }

    /// SQLite's (extended) result code: the primary code is its low byte.
    pub(crate) fn of_sqlite_code(code: i32) -> Option<Fault> {
        const BUSY: i32 = 5;
        const LOCKED: i32 = 6;
        const NOMEM: i32 = 7;
        const READONLY: i32 = 8;
        const IOERR: i32 = 10;
        const CORRUPT: i32 = 11;
        const FULL: i32 = 13;
        const CANTOPEN: i32 = 14;
        const PROTOCOL: i32 = 15;
        const NOTADB: i32 = 26;
        match code & 0xff {
            FULL => Some(Fault::Full),
            BUSY | LOCKED | NOMEM | READONLY | IOERR | CORRUPT | CANTOPEN | PROTOCOL | NOTADB => {
                Some(Fault::Unavailable)
            }
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATE: disk full; connection failures (08), insufficient resources
    /// (53), operator intervention such as a shutdown or a terminated backend (57), system
    /// and I/O errors (58), corrupted data (XX001, XX002).
    fn of_sqlstate(code: &str) -> Option<Fault> {
        match code {
            "53100" => Some(Fault::Full),
            "XX001" | "XX002" => Some(Fault::Unavailable),
            _ if ["08", "53", "57", "58"].contains(&&code[..2]) => Some(Fault::Unavailable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Full => "full",
            Fault::Unavailable => "unavailable",
        }
    }
}

/// The fault the event log's last commit hit, if it has not succeeded since, and how many
/// commits each kind of fault has failed.
#[derive(Debug, Default)]
pub struct StorageHealth {
    /// 0: none; otherwise `Fault as u8 + 1`.
    current: AtomicU8,
    pub full: AtomicU64,
    pub unavailable: AtomicU64,
}

impl StorageHealth {
    pub fn current(&self) -> Option<Fault> {
        match self.current.load(Ordering::Acquire) {
            1 => Some(Fault::Full),
            2 => Some(Fault::Unavailable),
            _ => None,
        }
    }

    /// A write failed with `fault`.
    pub fn failed(&self, fault: Fault) {
        let (state, count) = match fault {
            Fault::Full => (1, &self.full),
            Fault::Unavailable => (2, &self.unavailable),
        };
        count.fetch_add(1, Ordering::Relaxed);
        self.current.store(state, Ordering::Release);
    }

    /// A write succeeded: whatever the storage had, it is gone.
    pub fn recovered(&self) {
        self.current.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_are_read_by_their_primary_byte() {
        // SQLITE_IOERR_FSYNC (10 | 4 << 8), SQLITE_IOERR_WRITE (10 | 3 << 8), SQLITE_FULL.
        assert_eq!(Fault::of_sqlite_code(1034), Some(Fault::Unavailable));
        assert_eq!(Fault::of_sqlite_code(778), Some(Fault::Unavailable));
        assert_eq!(Fault::of_sqlite_code(13), Some(Fault::Full));
        assert_eq!(Fault::of_sqlite_code(5), Some(Fault::Unavailable));
        // SQLITE_CONSTRAINT_UNIQUE is the caller's.
        assert_eq!(Fault::of_sqlite_code(2067), None);
    }

    #[test]
    fn sqlstates_of_the_storage_are_faults_and_others_are_not() {
        assert_eq!(Fault::of_sqlstate("53100"), Some(Fault::Full));
        assert_eq!(Fault::of_sqlstate("57P01"), Some(Fault::Unavailable));
        assert_eq!(Fault::of_sqlstate("08006"), Some(Fault::Unavailable));
        assert_eq!(Fault::of_sqlstate("58030"), Some(Fault::Unavailable));
        assert_eq!(Fault::of_sqlstate("23505"), None);
        assert_eq!(Fault::of_sqlstate("40001"), None);
    }
}
