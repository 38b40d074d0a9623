//! The audit log's duties: sealing new records into the hash chain, and purging
//! records past the retention (12 months by default, the minimum that Vietnam's
//! level-3 information systems keep). Run on the node holding the duties.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use store::Store;

/// Records sealed per pass.
const SEAL_BATCH: usize = 5_000;
/// Records purged per pass.
const PURGE_BATCH: usize = 5_000;

/// How long audit records are kept, and how often the chain is extended.
#[derive(Debug, Clone)]
pub struct AuditPolicy {
    pub retention: TimeDelta,
    pub seal_every: Duration,
    /// Whether entity writes are audited. Always true in a server; `dothi bench hub`
    /// turns it off to measure what the audit costs.
    pub record_writes: bool,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        AuditPolicy {
            retention: TimeDelta::days(366),
            seal_every: Duration::from_secs(1),
            record_writes: true,
        }
    }
}

/// Seals and purges until aborted.
pub fn spawn(store: Arc<dyn Store>, policy: AuditPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_purge = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            loop {
                match store.audit_seal(SEAL_BATCH).await {
                    Ok(n) if n == SEAL_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "audit records not sealed; trying again");
                        break;
                    }
                }
            }
            if last_purge.elapsed() >= Duration::from_secs(3600) {
                last_purge = std::time::Instant::now();
                let before = Utc::now() - policy.retention;
                while let Ok(n) = store.audit_purge(before, PURGE_BATCH).await {
                    if n > 0 {
                        tracing::info!(purged = n, "audit records past their retention purged");
                    }
                    if n < PURGE_BATCH as u64 {
                        break;
                    }
                }
            }
            tokio::time::sleep(policy.seal_every).await;
        }
    })
}

/// What `dothi audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Sealed records checked.
    pub records: u64,
    /// Records not sealed yet (too new).
    pub unsealed: u64,
    /// The first record where the chain does not hold.
    pub broken: Option<store::audit::BrokenLink>,
}

/// Walks the whole chain from its checkpoint (or its start) and checks every link.
pub async fn verify(store: &dyn Store) -> Result<Verified, store::StoreError> {
    const PAGE: usize = 10_000;
    let mut records = 0u64;
    let first = store.audit_chain(i64::MIN, 0).await?;
    let (mut prev_seq, mut prev) = first
        .checkpoint
        .unwrap_or((0, store::audit::GENESIS.to_string()));
    loop {
        let page = store.audit_chain(prev_seq, PAGE).await?;
        if page.records.is_empty() {
            break;
        }
        records += page.records.len() as u64;
        match store::audit::verify_run(prev.clone(), prev_seq, &page.records) {
            Ok((hash, seq)) => {
                prev = hash;
                prev_seq = seq;
            }
            Err(broken) => {
                return Ok(Verified {
                    records,
                    unsealed: 0,
                    broken: Some(broken),
                });
            }
        }
    }
    let unsealed = store
        .audit_list(store::AuditFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await?
        .iter()
        .filter(|r| r.seq.is_none())
        .count() as u64;
    Ok(Verified {
        records,
        unsealed,
        broken: None,
    })
}
