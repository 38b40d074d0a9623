//! The audit log in SQLite: table `audit_log`, written on the writer thread (inside
//! its group transaction, so a write's record commits with it), read on the reader
//! connections. Sealing runs on the writer thread too: one writer, so the chain is
//! extended by one process at a time.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, sql_error, write};
use crate::StoreResult;
use crate::audit::{AuditFilter, AuditRecord, ChainPage, GENESIS, StoredAudit, chain_hash};

/// What the writer does to the log.
pub enum AuditChange {
    Append(Vec<AuditRecord>),
    Seal { max: usize },
    Purge { before: DateTime<Utc>, max: usize },
}

impl SqliteStore {
    pub(super) async fn audit_change(&self, change: AuditChange) -> StoreResult<u64> {
        self.on_writer(|reply| write::Job::Audit { change, reply })
            .await
    }

    pub(super) async fn audit_rows(&self, filter: AuditFilter) -> StoreResult<Vec<StoredAudit>> {
        self.read(move |c| list(c, &filter)).await
    }

    pub(super) async fn audit_chain_page(&self, after: i64, max: usize) -> StoreResult<ChainPage> {
        self.read(move |c| chain(c, after, max)).await
    }
}

pub fn insert(conn: &Connection, record: &AuditRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (time, actor, tenant, action, record) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        record.time.timestamp_millis(),
        record.actor,
        record.tenant,
        record.action,
        record.to_text()
    ])?;
    Ok(())
}

/// Runs a change inside the writer's transaction.
pub fn apply(conn: &Connection, change: AuditChange) -> rusqlite::Result<u64> {
    match change {
        AuditChange::Append(records) => {
            for r in &records {
                insert(conn, r)?;
            }
            Ok(records.len() as u64)
        }
        AuditChange::Seal { max } => seal(conn, max),
        AuditChange::Purge { before, max } => purge(conn, before, max),
    }
}

/// The last sealed (seq, hash), or the checkpoint's, or the start of the chain.
fn chain_head(conn: &Connection) -> rusqlite::Result<(i64, String)> {
    let last: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match last {
        Some(head) => Ok(head),
        None => Ok(checkpoint(conn)?.unwrap_or((0, GENESIS.to_string()))),
    }
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.prepare_cached("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

fn seal(conn: &Connection, max: usize) -> rusqlite::Result<u64> {
    let (mut seq, mut prev) = chain_head(conn)?;
    let unsealed: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, record FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT ?1")?
        .query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update =
        conn.prepare_cached("UPDATE audit_log SET seq = ?2, hash = ?3 WHERE id = ?1")?;
    for (id, text) in &unsealed {
        seq += 1;
        prev = chain_hash(&prev, seq, *id, text);
        update.execute(params![id, seq, prev])?;
    }
    Ok(unsealed.len() as u64)
}

fn purge(conn: &Connection, before: DateTime<Utc>, max: usize) -> rusqlite::Result<u64> {
    // The oldest sealed records, in chain order, up to the first one not old enough.
    let old: Vec<(i64, i64, String)> = conn
        .prepare_cached(
            "SELECT id, seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq LIMIT ?1",
        )?
        .query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let cutoff = before.timestamp_millis();
    let mut time = conn.prepare_cached("SELECT time FROM audit_log WHERE id = ?1")?;
    let mut last: Option<(i64, String)> = None;
    let mut ids = Vec::new();
    for (id, seq, hash) in old {
        let t: i64 = time.query_row([id], |r| r.get(0))?;
        if t >= cutoff {
            break;
        }
        ids.push(id);
        last = Some((seq, hash));
    }
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    let mut delete = conn.prepare_cached("DELETE FROM audit_log WHERE id = ?1")?;
    for id in &ids {
        delete.execute([id])?;
    }
    conn.prepare_cached(
        "INSERT INTO audit_checkpoint (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![seq, hash])?;
    Ok(ids.len() as u64)
}

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAudit> {
    Ok(StoredAudit {
        id: r.get(0)?,
        seq: r.get(1)?,
        hash: r.get(2)?,
        text: r.get(3)?,
    })
}

fn list(conn: &Connection, f: &AuditFilter) -> StoreResult<Vec<StoredAudit>> {
    let millis = |t: &Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
    let action_prefix = f.action.as_ref().map(|a| format!("{}%", escape_like(a)));
    conn.prepare_cached(
        "SELECT id, seq, hash, record FROM audit_log
         WHERE (?1 IS NULL OR actor = ?1)
           AND (?2 IS NULL OR tenant = ?2)
           AND (?3 IS NULL OR action LIKE ?3 ESCAPE '\\')
           AND (?4 IS NULL OR time >= ?4)
           AND (?5 IS NULL OR time < ?5)
           AND (?6 IS NULL OR id < ?6)
         ORDER BY id DESC LIMIT ?7",
    )
    .and_then(|mut s| {
        s.query_map(
            params![
                f.actor,
                f.tenant,
                action_prefix,
                millis(&f.from),
                millis(&f.to),
                f.before,
                f.limit as i64
            ],
            stored,
        )?
        .collect()
    })
    .map_err(sql_error)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn chain(conn: &Connection, after: i64, max: usize) -> StoreResult<ChainPage> {
    let checkpoint = checkpoint(conn).map_err(sql_error)?;
    let records = conn
        .prepare_cached(
            "SELECT id, seq, hash, record FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .and_then(|mut s| s.query_map(params![after, max as i64], stored)?.collect())
        .map_err(sql_error)?;
    Ok(ChainPage {
        checkpoint,
        records,
    })
}
