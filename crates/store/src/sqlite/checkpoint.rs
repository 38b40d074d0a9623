//! Copying the WAL into the database on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside a commit, on the writer: every 16 MiB of
//! WAL the writer stopped to copy pages and wait for two flushes, a fifth of its time
//! when creating reports. Here a second connection copies the WAL (a PASSIVE
//! checkpoint, which runs beside the writer) once it has grown by [`WAL_PAGES`], so a
//! page written many times in between is copied once. The writer only finishes the
//! job: the frames committed while the copy ran are few, and once every frame is in
//! the database its next commit starts the WAL afresh from the beginning.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// The WAL's size (in pages) that starts a copy into the database. Larger copies
/// fewer times the pages written again and again (index pages), at the cost of a
/// longer WAL to read at a restart.
pub const WAL_PAGES: u64 = 16_000;

/// The WAL's size (in pages) at which the writer copies it itself and waits for
/// readers to start the WAL afresh: only when readers kept it from starting afresh
/// through many copies.
pub const WAL_PAGES_AT_MOST: u64 = 8 * WAL_PAGES;

/// How often the WAL's size is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// What the checkpointing thread and the writer share.
#[derive(Default)]
pub struct Shared {
    /// Set after a copy: the writer copies the frames committed meanwhile.
    pub finish: AtomicBool,
}

/// The number of frames in the WAL, read from the header of the WAL index (the
/// `-shm` file beside the database): `mxFrame`, a 32-bit number in the machine's
/// order at byte 16 (sqlite.org/walformat.html). 0 before there is one.
pub fn wal_pages(shm: &Path) -> u64 {
    let mut field = [0u8; 4];
    match File::open(shm).and_then(|f| f.read_exact_at(&mut field, 16)) {
        Ok(()) => u64::from(u32::from_ne_bytes(field)),
        Err(_) => 0,
    }
}

/// The WAL index beside the database `db`.
pub fn shm_of(db: &Path) -> PathBuf {
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    PathBuf::from(shm)
}

/// Runs until `stop` is dropped: copies the WAL of the database `db` (open on `conn`)
/// into it whenever it has grown past `pages` ([`WAL_PAGES`]).
pub fn run(conn: Connection, db: PathBuf, pages: u64, shared: Arc<Shared>, stop: Receiver<()>) {
    let shm = shm_of(&db);
    loop {
        match stop.recv_timeout(LOOK_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if wal_pages(&shm) < pages || shared.finish.load(Ordering::Acquire) {
            continue;
        }
        match passive(&conn) {
            Ok(_) => shared.finish.store(true, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Copies what it can of the WAL into the database without waiting for anyone;
/// returns whether every frame is now in the database.
pub fn passive(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let (log, copied): (i64, i64) = (r.get(1)?, r.get(2)?);
        Ok(log >= 0 && log == copied)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_wal_is_copied_beside_the_writer_and_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let shm = dir.path().join("c.db-shm");
        let path = db.to_string_lossy().to_string();
        let writer = super::super::open_connection(&path, false).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let write = |n: usize| {
            for _ in 0..n {
                writer
                    .execute("INSERT INTO t (body) VALUES (?1)", ["x".repeat(3_000)])
                    .unwrap();
            }
        };
        // About 200 pages: no checkpoint of SQLite's own ever runs on this writer.
        write(200);
        assert!(wal_pages(&shm) >= 200, "{} pages", wal_pages(&shm));

        let shared = Arc::new(Shared::default());
        let (stop, stopped) = std::sync::mpsc::channel();
        let conn = super::super::open_connection(&path, false).unwrap();
        let on_thread = shared.clone();
        let thread = std::thread::spawn(move || run(conn, db, 100, on_thread, stopped));
        let started = std::time::Instant::now();
        while !shared.finish.load(Ordering::Acquire) {
            assert!(started.elapsed() < Duration::from_secs(10), "no copy made");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The writer commits more, finishes the copy, and its next commit starts the
        // WAL afresh: it holds that commit alone.
        write(5);
        assert!(passive(&writer).unwrap());
        write(1);
        assert!(wal_pages(&shm) < 10, "{} pages", wal_pages(&shm));
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 206);
        drop(stop);
        thread.join().unwrap();
    }
}
