//! The registry in SQLite: table `registry`, keyed by (collection, tenant, key), the
//! value as JSON text. Writes run on the writer thread inside its group transaction;
//! reads on the reader connections.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{SqliteStore, sql_error, write};
use crate::{RegistryPage, RegistryRecord, RegistryWrite, StoreError, StoreResult};

impl SqliteStore {
    async fn registry_change(&self, change: RegistryChange) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(write::Job::Registry { change, reply })
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    pub(super) async fn put_records(
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

    pub(super) async fn delete_record(
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

    pub(super) async fn get_record(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<Value>> {
        let (collection, tenant, key) =
            (collection.to_string(), tenant.to_string(), key.to_string());
        self.read(move |c| get(c, &collection, &tenant, &key)).await
    }

    pub(super) async fn find_records(
        &self,
        collection: &str,
        key: &str,
    ) -> StoreResult<Vec<RegistryRecord>> {
        let (collection, key) = (collection.to_string(), key.to_string());
        self.read(move |c| find(c, &collection, &key)).await
    }

    pub(super) async fn list_records(
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
            if *mode != RegistryWrite::Upsert {
                let mut exists = conn.prepare_cached(
                    "SELECT 1 FROM registry WHERE collection = ?1 AND tenant = ?2 AND key = ?3",
                )?;
                let mut seen = std::collections::HashSet::new();
                for (key, _) in records {
                    let found = exists.exists(params![collection, tenant, key])?;
                    let repeated = !seen.insert(key.as_str());
                    match mode {
                        RegistryWrite::Create if found || repeated => {
                            return Ok(Err(StoreError::Rejected(ngsi::Error::already_exists(
                                format!("{key:?} already exists"),
                            ))));
                        }
                        RegistryWrite::Replace if !found => {
                            return Ok(Err(StoreError::Rejected(ngsi::Error::not_found(format!(
                                "{key:?} not found"
                            )))));
                        }
                        _ => {}
                    }
                }
            }
            let mut put = conn.prepare_cached(
                "INSERT OR REPLACE INTO registry (collection, tenant, key, value, modified_at) VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            )?;
            for (key, value) in records {
                put.execute(params![collection, tenant, key, value])?;
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

fn find(c: &Connection, collection: &str, key: &str) -> StoreResult<Vec<RegistryRecord>> {
    let mut s = c
        .prepare_cached(
            "SELECT tenant, value FROM registry WHERE collection = ?1 AND key = ?2 ORDER BY tenant",
        )
        .map_err(sql_error)?;
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
