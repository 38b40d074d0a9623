//! The registry in SQLite: table `registry`, keyed by (collection, tenant, key), the
//! value as JSON text. Writes run on the writer thread inside its group transaction;
//! reads on the reader connections.

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{SqliteStore, sql_error, write};
use crate::{
    RegistryPage, RegistryPut, RegistryRecord, RegistryStore, RegistryWrite, StoreError,
    StoreResult,
};

impl SqliteStore {
    async fn registry_change(&self, change: RegistryChange) -> StoreResult<bool> {
        self.on_writer(|reply| write::Job::Registry { change, reply })
            .await
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn registry_put(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, Value)>,
        mode: RegistryWrite,
    ) -> StoreResult<()> {
        let records = records
            .into_iter()
            .map(|(key, value)| (key, value.to_string()))
            .collect();
        self.registry_change(RegistryChange::Put {
            collection: collection.to_string(),
            tenant: tenant.to_string(),
            records,
            mode,
        })
        .await
        .map(|_| ())
    }

    async fn registry_get(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<Value>> {
        let (collection, tenant, key) =
            (collection.to_string(), tenant.to_string(), key.to_string());
        self.read(move |c| get(c, &collection, &tenant, &key)).await
    }

    async fn registry_find(&self, collection: &str, key: &str) -> StoreResult<Vec<RegistryRecord>> {
        let (collection, key) = (collection.to_string(), key.to_string());
        self.read(move |c| find(c, &collection, &key)).await
    }

    async fn registry_list(
        &self,
        collection: &str,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<RegistryPage> {
        let (collection, tenant) = (collection.to_string(), tenant.to_string());
        self.read(move |c| list(c, &collection, &tenant, offset, limit))
            .await
    }

    async fn registry_delete(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<bool> {
        self.registry_change(RegistryChange::Delete {
            collection: collection.to_string(),
            tenant: tenant.to_string(),
            key: key.to_string(),
        })
        .await
    }
}

/// A change the writer applies.
pub enum RegistryChange {
    Put {
        collection: String,
        tenant: String,
        /// (key, value as JSON text)
        records: Vec<(String, String)>,
        mode: RegistryWrite,
    },
    Delete {
        collection: String,
        tenant: String,
        key: String,
    },
}

/// Applies a change in the writer's transaction. The outer error is a fault of the
/// database (the group is rolled back); the inner one a refusal, decided before
/// anything is written.
pub fn apply(conn: &Connection, change: &RegistryChange) -> rusqlite::Result<StoreResult<bool>> {
    match change {
        RegistryChange::Put {
            collection,
            tenant,
            records,
            mode,
        } => {
            let taken = taken(
                conn,
                collection,
                tenant,
                *mode,
                records.iter().map(|(k, _)| k),
            )?;
            if let Some(refused) =
                crate::registry::refusal(*mode, records.iter().map(|(k, _)| k.as_str()), |k| {
                    taken.contains(k)
                })
            {
                return Ok(Err(StoreError::Rejected(refused)));
            }
            for (key, value) in records {
                insert(conn, collection, tenant, key, value)?;
            }
            Ok(Ok(true))
        }
        RegistryChange::Delete {
            collection,
            tenant,
            key,
        } => {
            let n = conn
                .prepare_cached(
                    "DELETE FROM registry WHERE collection = ?1 AND tenant = ?2 AND key = ?3",
                )?
                .execute(params![collection, tenant, key])?;
            Ok(Ok(n > 0))
        }
    }
}

/// The keys among `keys` that hold a record, when the mode asks (an upsert does
/// not look).
fn taken<'a>(
    conn: &Connection,
    collection: &str,
    tenant: &str,
    mode: RegistryWrite,
    keys: impl Iterator<Item = &'a String>,
) -> rusqlite::Result<HashSet<String>> {
    let mut taken = HashSet::new();
    if mode == RegistryWrite::Upsert {
        return Ok(taken);
    }
    let mut exists = conn.prepare_cached(
        "SELECT 1 FROM registry WHERE collection = ?1 AND tenant = ?2 AND key = ?3",
    )?;
    for key in keys {
        if exists.exists(params![collection, tenant, key])? {
            taken.insert(key.clone());
        }
    }
    Ok(taken)
}

fn insert(
    conn: &Connection,
    collection: &str,
    tenant: &str,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO registry (collection, tenant, key, value, modified_at) VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    )?
    .execute(params![collection, tenant, key, value])?;
    Ok(())
}

/// Refuses the records an entity write carries as [`RegistryWrite`] says, before
/// the write writes anything.
pub fn check(conn: &Connection, put: &RegistryPut) -> StoreResult<()> {
    let keys = || put.records.iter().map(|(k, _)| k);
    let taken = taken(conn, &put.collection, &put.tenant, put.mode, keys()).map_err(sql_error)?;
    match crate::registry::refusal(put.mode, keys().map(String::as_str), |k| taken.contains(k)) {
        Some(refused) => Err(StoreError::Rejected(refused)),
        None => Ok(()),
    }
}

/// Writes the records an entity write carries, once [`check`] let them through.
pub fn put(conn: &Connection, put: &RegistryPut) -> rusqlite::Result<()> {
    for (key, value) in &put.records {
        insert(conn, &put.collection, &put.tenant, key, &value.to_string())?;
    }
    Ok(())
}

fn parse(key: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(format!("corrupt registry record {key:?}: {e}")))
}

fn get(c: &Connection, collection: &str, tenant: &str, key: &str) -> StoreResult<Option<Value>> {
    let text: Option<String> = c
        .prepare_cached(
            "SELECT value FROM registry WHERE collection = ?1 AND tenant = ?2 AND key = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![collection, tenant, key], |r| r.get(0))
                .optional()
        })
        .map_err(sql_error)?;
    text.map(|t| parse(key, &t)).transpose()
}

/// A key in every tenant: in the default tenant through the primary key, in the
/// others through the by-key index, which holds only theirs (schema v10). Sorted by
/// tenant in Rust, not by SQL: without statistics SQLite would read the primary key
/// in tenant order (every record of the collection) rather than this lookup's index —
/// 10,000 devices read for each measure.
const FIND: &str = "SELECT tenant, value FROM registry
     WHERE collection = ?1 AND tenant = '' AND key = ?2
     UNION ALL
     SELECT tenant, value FROM registry INDEXED BY registry_by_key
     WHERE collection = ?1 AND key = ?2 AND tenant <> ''";

fn find(c: &Connection, collection: &str, key: &str) -> StoreResult<Vec<RegistryRecord>> {
    let mut s = c.prepare_cached(FIND).map_err(sql_error)?;
    let rows = s
        .query_map(params![collection, key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_error)?;
    let mut out = Vec::new();
    for row in rows {
        let (tenant, text) = row.map_err(sql_error)?;
        out.push(RegistryRecord {
            tenant,
            key: key.to_string(),
            value: parse(key, &text)?,
        });
    }
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok(out)
}

fn list(
    c: &Connection,
    collection: &str,
    tenant: &str,
    offset: u64,
    limit: u64,
) -> StoreResult<RegistryPage> {
    let count: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM registry WHERE collection = ?1 AND tenant = ?2")
        .and_then(|mut s| s.query_row(params![collection, tenant], |r| r.get(0)))
        .map_err(sql_error)?;
    let mut s = c
        .prepare_cached(
            "SELECT key, value FROM registry WHERE collection = ?1 AND tenant = ?2 ORDER BY key LIMIT ?3 OFFSET ?4",
        )
        .map_err(sql_error)?;
    let (limit, offset) = (
        i64::try_from(limit).unwrap_or(i64::MAX),
        i64::try_from(offset).unwrap_or(i64::MAX),
    );
    let rows = s
        .query_map(params![collection, tenant, limit, offset], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_error)?;
    let mut records = Vec::new();
    for row in rows {
        let (key, text) = row.map_err(sql_error)?;
        let value = parse(&key, &text)?;
        records.push(RegistryRecord {
            tenant: tenant.to_string(),
            key,
            value,
        });
    }
    Ok(RegistryPage {
        records,
        count: count.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A lookup by key reads the primary key in the default tenant and the by-key
    /// index in the others, however many records the collection holds; the index
    /// holds no record of the default tenant.
    #[tokio::test]
    async fn a_lookup_by_key_reads_the_key_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        drop(
            crate::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        );
        let c = Connection::open(&path).unwrap();
        for tenant in ["", "a", "b"] {
            for i in 0..2_000 {
                c.execute(
                    "INSERT INTO registry VALUES ('devices', ?1, ?2, '{}', '2026-01-01T00:00:00Z')",
                    params![tenant, format!("device-{i:04}")],
                )
                .unwrap();
            }
        }
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {FIND}"))
            .unwrap()
            .query_map(params!["devices", "device-0042"], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let searches: Vec<&String> = plan.iter().filter(|p| p.contains("registry")).collect();
        assert_eq!(searches.len(), 2, "{plan:?}");
        assert!(
            searches[0].contains("PRIMARY KEY (collection=? AND tenant=? AND key=?)"),
            "{plan:?}"
        );
        assert!(
            searches[1].contains("registry_by_key (collection=? AND key=?)"),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("SCAN")), "{plan:?}");
        let index: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'registry_by_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(index.ends_with("WHERE tenant <> ''"), "{index}");
        let found = find(&c, "devices", "device-0042").unwrap();
        let tenants: Vec<&str> = found.iter().map(|r| r.tenant.as_str()).collect();
        assert_eq!(tenants, ["", "a", "b"]);
        assert!(found.iter().all(|r| r.key == "device-0042"));
        assert!(find(&c, "devices", "device-9999").unwrap().is_empty());
    }
}
