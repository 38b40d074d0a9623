//! Acknowledging commits once they are on disk, off the writer thread.
//!
//! The writer commits with `synchronous=NORMAL`: a commit appends its pages to the WAL
//! and returns without waiting for the disk. Its answers then go to this thread,
//! which makes the WAL durable with one `fdatasync` for every commit waiting, and only
//! then answers them. So a write is still acknowledged only when durable, while the
//! writer applies the next group during the flush instead of waiting for it.
//!
//! What changes against `synchronous=FULL`: a commit is visible to readers for the
//! length of one flush before it is durable. A crash in that window may lose a write
//! that a reader saw, never one that was acknowledged. SQLite's own checkpoints still
//! flush the WAL before copying it into the database, and the database after.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use tokio::sync::Notify;

use super::write::Pending;

/// A committed group's answers, waiting for the flush that makes it durable.
pub struct Committed {
    pub pending: Vec<Pending>,
    /// Notifications the group added to the outbox.
    pub notified: usize,
}

/// Starts the thread that flushes the WAL of the database at `db` and answers the
/// groups sent to it. With no file (an in-memory database) there is nothing to flush.
pub fn spawn(
    db: Option<PathBuf>,
    outbox: Arc<Notify>,
) -> io::Result<(Sender<Committed>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("dothi-sqlite-sync".into())
        .spawn(move || run(db.map(Flush::new), rx, &outbox))?;
    Ok((tx, handle))
}

fn run(mut flush: Option<Flush>, rx: Receiver<Committed>, outbox: &Notify) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        let flushed = flush.as_mut().map_or(Ok(()), Flush::wal);
        match flushed {
            Ok(()) => {
                let mut notified = 0;
                for g in groups {
                    notified += g.notified;
                    for p in g.pending {
                        p.answer();
                    }
                }
                // The notifier is woken as soon as notifications are durable.
                if notified > 0 {
                    outbox.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "flushing the SQLite WAL failed");
                let msg = format!("the write may not be on disk: {e}");
                for p in groups.into_iter().flat_map(|g| g.pending) {
                    p.fail(&msg);
                }
            }
        }
    }
}

/// The database's WAL file, opened once and again if SQLite made a new one.
struct Flush {
    db: PathBuf,
    wal: PathBuf,
    /// The WAL file open, with its inode number.
    open: Option<(File, u64)>,
}

impl Flush {
    fn new(db: PathBuf) -> Flush {
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        Flush {
            db,
            wal: PathBuf::from(wal),
            open: None,
        }
    }

    /// Makes every commit written so far durable.
    fn wal(&mut self) -> io::Result<()> {
        let ino = match std::fs::metadata(&self.wal) {
            Ok(m) => m.ino(),
            // No WAL: SQLite removes it only once it is wholly copied into the
            // database (and the database flushed); flushing that is enough.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.open = None;
                return File::open(&self.db)?.sync_data();
            }
            Err(e) => return Err(e),
        };
        match &self.open {
            Some((file, open)) if *open == ino => file.sync_data(),
            _ => {
                // fdatasync flushes the file's data whatever descriptor asks.
                let file = File::open(&self.wal)?;
                file.sync_data()?;
                self.open = Some((file, ino));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flushes_the_wal_and_follows_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        std::fs::write(&db, b"db").unwrap();
        let mut flush = Flush::new(db.clone());
        assert_eq!(flush.wal, dir.path().join("d.db-wal"));
        // No WAL yet: the database itself is flushed, nothing is held open.
        flush.wal().unwrap();
        assert!(flush.open.is_none());
        std::fs::write(&flush.wal, b"frames").unwrap();
        flush.wal().unwrap();
        let first = flush.open.as_ref().map(|(_, ino)| *ino).unwrap();
        // SQLite made a new WAL (a new file under the same name): it is opened anew.
        let replacement = dir.path().join("new");
        std::fs::write(&replacement, b"other frames").unwrap();
        std::fs::rename(&replacement, &flush.wal).unwrap();
        flush.wal().unwrap();
        let second = flush.open.as_ref().map(|(_, ino)| *ino).unwrap();
        assert_ne!(first, second);
        assert_eq!(second, std::fs::metadata(&flush.wal).unwrap().ino());
        // Gone again: back to the database.
        std::fs::remove_file(&flush.wal).unwrap();
        flush.wal().unwrap();
        assert!(flush.open.is_none());
        // Neither file: an error, which fails the answers rather than claim them durable.
        std::fs::remove_file(&db).unwrap();
        assert!(flush.wal().is_err());
    }
}
