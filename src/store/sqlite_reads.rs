//! The reads every stream open and every replay makes, on SQLite: a few threads of their
//! own, each with a rusqlite connection that keeps its statements prepared. A read goes to
//! a free thread whole and comes back decoded in one answer; through the pool each row of
//! a replay would cross between threads on its own (BENCHMARKS.md has the difference).
//!
//! A read of a row or two from pages SQLite keeps cached (the log's position and the unread
//! count every stream open asks) costs less than the two thread switches of that hand-off:
//! those run on the calling thread's own connection instead (`run_here`), one per thread
//! that asks, opened on first use.
//!
//! Only reads run here (`query_only`): every write goes through the writer pool or the
//! log's own connection, which keeps SQLite's one write lock in this process's hands in
//! turn. On PostgreSQL there is no such pool; the same reads go through sea-orm.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{SqliteFile, StoreError};

type Read = Box<dyn FnOnce(&Connection) + Send>;

/// The handle reads are sent through; the threads end when the last one is dropped.
pub(crate) struct SqliteReads {
    reads: std::sync::mpsc::Sender<Read>,
    file: SqliteFile,
}

/// The reader threads' connections: reads only.
const READ_ONLY: &str = "PRAGMA query_only = ON;";

/// A thread's own connection: reads only, and a small page cache — it reads a few hot
/// pages, and every thread that reads may hold one.
const READ_ONLY_HERE: &str = "PRAGMA query_only = ON; PRAGMA cache_size = -512;";

thread_local! {
    /// This thread's connection for `run_here`, and the file it is to. One: a process has
    /// one database, and a thread asked about another file's replaces it.
    static HERE: RefCell<Option<(PathBuf, Connection)>> = const { RefCell::new(None) };
}

impl SqliteReads {
    /// Opens `threads` connections to the database and a thread for each.
    pub(crate) fn open(file: &SqliteFile, threads: usize) -> Result<SqliteReads, StoreError> {
        let (reads, queue) = std::sync::mpsc::channel::<Read>();
        // The threads take turns waiting on the one queue: whoever holds the lock waits
        // for the next read, the rest wait for the lock.
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let connection = file.connect("to read", READ_ONLY, 64)?;
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("herald-read-{n}"))
                .spawn(move || {
                    loop {
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(read) => read(&connection),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| StoreError::Setup(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(SqliteReads {
            reads,
            file: file.clone(),
        })
    }

    /// Runs a short `read` on this thread's own connection (see the module's note).
    pub(crate) fn run_here<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        HERE.with(|here| {
            let mut here = here.borrow_mut();
            let connection = match &mut *here {
                Some((path, connection)) if *path == self.file.path => connection,
                other => {
                    let connection = self.file.open(READ_ONLY_HERE, 16)?;
                    &mut other.insert((self.file.path.clone(), connection)).1
                }
            };
            read(connection)
        })
    }

    /// Runs `read` on a free connection and returns what it gave.
    pub(crate) async fn run<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Read = Box::new(move |connection| {
            let _ = answer.send(read(connection));
        });
        self.reads
            .send(job)
            .map_err(|_| StoreError::Unavailable("the reader threads have stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("a reader thread stopped mid-read".into()))?
    }
}
