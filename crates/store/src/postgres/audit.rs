//! The audit log in PostgreSQL: table `audit_log`. A write's record is inserted in
//! the write's transaction. Sealing and purging take a transaction advisory lock, so
//! that one node at a time extends the chain even if two ever tried.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::{PostgresStore, pg_error, rows};
use crate::StoreResult;
use crate::audit::{AuditFilter, AuditRecord, ChainPage, GENESIS, StoredAudit, chain_hash};

/// The advisory lock key of the chain ("audit" in ASCII).
const CHAIN_LOCK: i64 = 0x0061_7564_6974;

pub(super) async fn insert(
    tx: &Transaction<'_>,
    record: &AuditRecord,
) -> Result<(), tokio_postgres::Error> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO audit_log (time, actor, tenant, action, record) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &record.time,
            &record.actor,
            &record.tenant,
            &record.action,
            &record.to_text(),
        ],
    )
    .await?;
    Ok(())
}

fn stored(r: &tokio_postgres::Row) -> StoredAudit {
    StoredAudit {
        id: r.get(0),
        seq: r.get(1),
        hash: r.get(2),
        text: r.get(3),
    }
}

impl PostgresStore {
    pub(super) async fn append_audit(&self, records: Vec<AuditRecord>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        for r in &records {
            insert(&tx, r).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    pub(super) async fn list_audit(&self, f: AuditFilter) -> StoreResult<Vec<StoredAudit>> {
        let client = self.client().await?;
        let action_prefix = f.action.as_ref().map(|a| {
            let escaped = a
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{escaped}%")
        });
        let rows = client
            .query(
                "SELECT id, seq, hash, record FROM audit_log
                 WHERE ($1::text IS NULL OR actor = $1)
                   AND ($2::text IS NULL OR tenant = $2)
                   AND ($3::text IS NULL OR action LIKE $3)
                   AND ($4::timestamptz IS NULL OR time >= $4)
                   AND ($5::timestamptz IS NULL OR time < $5)
                   AND ($6::bigint IS NULL OR id < $6)
                 ORDER BY id DESC LIMIT $7",
                &[
                    &f.actor,
                    &f.tenant,
                    &action_prefix,
                    &f.from,
                    &f.to,
                    &f.before,
                    &(f.limit as i64),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(stored).collect())
    }

    pub(super) async fn seal_audit(&self, max: usize) -> StoreResult<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
            .await
            .map_err(pg_error)?;
        let (mut seq, mut prev) = chain_head(&tx).await.map_err(pg_error)?;
        // Rows are taken in id order among those committed now; a row of a
        // transaction still open (a lower id that commits later) is sealed by a later
        // pass, after these: the chain's order is the order of sealing.
        let rows = rows(
            &tx,
            "SELECT id, record FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT $1",
            &[&(max as i64)],
        )
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut seqs = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get(0);
            let text: String = r.get(1);
            seq += 1;
            prev = chain_hash(&prev, seq, id, &text);
            ids.push(id);
            seqs.push(seq);
            hashes.push(prev.clone());
        }
        if !ids.is_empty() {
            tx.execute(
                "UPDATE audit_log a SET seq = d.seq, hash = d.hash
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS d(id, seq, hash)
                 WHERE a.id = d.id",
                &[&ids, &seqs, &hashes],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(ids.len())
    }

    pub(super) async fn audit_chain_page(&self, after: i64, max: usize) -> StoreResult<ChainPage> {
        let client = self.client().await?;
        let checkpoint = client
            .query_opt("SELECT seq, hash FROM audit_checkpoint WHERE id = 1", &[])
            .await
            .map_err(pg_error)?
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
        let rows = client
            .query(
                "SELECT id, seq, hash, record FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &(max as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(ChainPage {
            checkpoint,
            records: rows.iter().map(stored).collect(),
        })
    }

    pub(super) async fn purge_audit(&self, before: DateTime<Utc>, max: usize) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
            .await
            .map_err(pg_error)?;
        let rows = rows(
            &tx,
            "SELECT id, seq, hash, time FROM audit_log WHERE seq IS NOT NULL ORDER BY seq LIMIT $1",
            &[&(max as i64)],
        )
        .await?;
        let mut ids: Vec<i64> = Vec::new();
        let mut last: Option<(i64, String)> = None;
        for r in &rows {
            let time: DateTime<Utc> = r.get(3);
            if time >= before {
                break;
            }
            ids.push(r.get(0));
            last = Some((r.get(1), r.get(2)));
        }
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        tx.execute("DELETE FROM audit_log WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_error)?;
        tx.execute(
            "INSERT INTO audit_checkpoint (id, seq, hash) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            &[&seq, &hash],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(ids.len() as u64)
    }
}

async fn chain_head(tx: &Transaction<'_>) -> Result<(i64, String), tokio_postgres::Error> {
    let last = tx
        .query_opt(
            "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    if let Some(r) = last {
        return Ok((r.get(0), r.get(1)));
    }
    let checkpoint = tx
        .query_opt("SELECT seq, hash FROM audit_checkpoint WHERE id = 1", &[])
        .await?;
    Ok(checkpoint
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((0, GENESIS.to_string())))
}
