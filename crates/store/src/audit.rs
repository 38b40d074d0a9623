//! The audit log: who did what, when, from where, and with what outcome.
//!
//! Records are appended, never changed. A write's record is inserted in the write's
//! own transaction ([`crate::Store::write_audited`]), so no change commits without
//! it. Records are then *sealed* in order by the node holding the background duties
//! ([`crate::Store::audit_seal`]): each gets the next sequence number and a hash of
//! the previous record's hash, its number and its text, so that editing or deleting
//! a sealed record breaks the chain at that record. Records older than the retention
//! are purged from the start of the chain; a checkpoint keeps the last purged hash so
//! that what remains still verifies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first sealed record follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record, as the hub writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    /// Who: `user:<id>`, `key:<id>`, `oidc:<issuer>#<subject>`, `device:<apikey id>`,
    /// `system:<component>`, `anonymous`, or `insecure`.
    pub actor: String,
    /// The actor's role, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The tenant acted on (the default tenant is the empty string); none for
    /// actions outside tenants (logins, users, keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What: the route (`PATCH /ngsi-ld/v1/entities/{id}/attrs`) or a named action
    /// (`auth.login`, `iot.measure`, `import`).
    pub action: String,
    /// The ids acted on (entities, subscriptions, users, keys…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Targets whose change was refused, for writes of several items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `ok`, `partial` (some items refused), `failed`, `refused` (no right), or
    /// `denied` (bad credentials).
    pub outcome: String,
    /// A short reason for a refusal; never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    /// Sets the outcome of a write of several items from which of them failed.
    pub fn settle(&mut self, failed: Vec<String>) {
        self.outcome = if failed.is_empty() {
            "ok"
        } else if failed.len() >= self.targets.len() {
            "failed"
        } else {
            "partial"
        }
        .into();
        self.failed = failed;
    }

    /// The record's text as stored (and hashed).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A stored record: its row id, its text, and its place in the chain once sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub id: i64,
    pub seq: Option<i64>,
    pub hash: Option<String>,
    /// The record's JSON text exactly as stored.
    pub text: String,
}

impl StoredAudit {
    pub fn record(&self) -> Option<AuditRecord> {
        serde_json::from_str(&self.text).ok()
    }
}

/// What to list (`GET /auth/v1/audit`): newest first, before row `before` if given.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// `Some("")` is the default tenant.
    pub tenant: Option<String>,
    /// A prefix of the action.
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// A page of the sealed chain in order, after the last checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ChainPage {
    /// The checkpoint the chain now starts from: (seq, hash) of the last purged
    /// record; none when nothing was ever purged.
    pub checkpoint: Option<(i64, String)>,
    pub records: Vec<StoredAudit>,
}

/// The hash of a sealed record.
pub fn chain_hash(prev: &str, seq: i64, id: i64, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(id.to_string().as_bytes());
    h.update(b"\n");
    h.update(text.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Where a chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: i64,
    pub reason: String,
}

/// Checks a run of sealed records that follows `prev` (the hash of the record
/// before, or the checkpoint's, or [`GENESIS`]) at sequence `prev_seq`. Returns the
/// last hash and sequence, or the first broken link.
pub fn verify_run(
    mut prev: String,
    mut prev_seq: i64,
    records: &[StoredAudit],
) -> Result<(String, i64), BrokenLink> {
    for r in records {
        let seq = r.seq.unwrap_or(-1);
        if seq != prev_seq + 1 {
            return Err(BrokenLink {
                seq,
                id: r.id,
                reason: format!("sequence {seq} follows {prev_seq}: a record is missing"),
            });
        }
        let expected = chain_hash(&prev, seq, r.id, &r.text);
        if r.hash.as_deref() != Some(expected.as_str()) {
            return Err(BrokenLink {
                seq,
                id: r.id,
                reason: "the record's hash does not match its content and the record before".into(),
            });
        }
        prev = expected;
        prev_seq = seq;
    }
    Ok((prev, prev_seq))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    fn sealed(texts: &[&str]) -> Vec<StoredAudit> {
        let mut prev = GENESIS.to_string();
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let seq = i as i64 + 1;
                let id = seq * 10;
                let hash = chain_hash(&prev, seq, id, t);
                prev = hash.clone();
                StoredAudit {
                    id,
                    seq: Some(seq),
                    hash: Some(hash),
                    text: t.to_string(),
                }
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let run = sealed(&["a", "b", "c"]);
        let (last, seq) = verify_run(GENESIS.into(), 0, &run).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(Some(last), run[2].hash.clone());
    }

    #[test]
    fn an_edited_record_breaks_the_chain_at_itself() {
        let mut run = sealed(&["a", "b", "c"]);
        run[1].text = "B".into();
        let broken = verify_run(GENESIS.into(), 0, &run).unwrap_err();
        assert_eq!((broken.seq, broken.id), (2, 20));
    }

    #[test]
    fn a_deleted_record_breaks_the_chain_after_it() {
        let mut run = sealed(&["a", "b", "c"]);
        run.remove(1);
        let broken = verify_run(GENESIS.into(), 0, &run).unwrap_err();
        assert_eq!(broken.seq, 3);
    }

    #[test]
    fn a_chain_verifies_from_a_checkpoint() {
        let run = sealed(&["a", "b", "c"]);
        let checkpoint = run[0].hash.clone().unwrap();
        assert!(verify_run(checkpoint, 1, &run[1..]).is_ok());
    }

    #[test]
    fn settling_says_ok_partial_or_failed() {
        let mut r = AuditRecord {
            targets: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        r.settle(vec![]);
        assert_eq!(r.outcome, "ok");
        r.settle(vec!["a".into()]);
        assert_eq!(r.outcome, "partial");
        r.settle(vec!["a".into(), "b".into()]);
        assert_eq!(r.outcome, "failed");
    }
}
