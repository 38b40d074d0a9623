//! The writer thread: group commit of every queued write, each in its own savepoint.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use ngsi::entity::format_time;
use ngsi::{AttrKind, Entity};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::sql_error;
use crate::{Applied, Change, StoreError, StoreResult, WriteOp};

/// The most operations one commit takes, so one commit stays short.
const MAX_OPS_PER_COMMIT: usize = 20_000;

pub enum Job {
    Write {
        tenant: String,
        ops: Vec<WriteOp>,
        reply: oneshot::Sender<StoreResult<Vec<StoreResult<Applied>>>>,
    },
    CacheContext {
        url: String,
        body: String,
        reply: oneshot::Sender<StoreResult<()>>,
    },
}

pub fn spawn(conn: Connection) -> Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("dothi-sqlite-writer".into())
        .spawn(move || run(conn, rx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the SQLite writer thread");
    }
    tx
}

/// Operations between two refreshes of the query planner's statistics.
const OPS_PER_OPTIMIZE: usize = 50_000;

fn run(mut conn: Connection, rx: Receiver<Job>) {
    let mut since_optimize = 0usize;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut ops = op_count(&jobs[0]);
        while ops < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => {
                    ops += op_count(&job);
                    jobs.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_group(&mut conn, jobs);
        since_optimize += ops;
        // Keep the planner's statistics current as data grows (bounded work each time).
        if since_optimize >= OPS_PER_OPTIMIZE {
            since_optimize = 0;
            if let Err(e) = conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize") {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
    }
}

fn op_count(job: &Job) -> usize {
    match job {
        Job::Write { ops, .. } => ops.len().max(1),
        Job::CacheContext { .. } => 1,
    }
}

enum Pending {
    Write(
        oneshot::Sender<StoreResult<Vec<StoreResult<Applied>>>>,
        Vec<StoreResult<Applied>>,
    ),
    Context(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
}

fn commit_group(conn: &mut Connection, jobs: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(jobs, sql_error(e)),
    };
    let mut pending = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Job::Write { tenant, ops, reply } => {
                let mut results = Vec::with_capacity(ops.len());
                let mut changed = false;
                for op in ops {
                    let r = apply_in_savepoint(&tx, &tenant, op);
                    if let Ok((_, true)) = &r {
                        changed = true;
                    }
                    results.push(r.map(|(applied, _)| applied));
                }
                if changed && let Err(e) = ensure_tenant(&tx, &tenant) {
                    let msg = e.to_string();
                    results = results
                        .into_iter()
                        .map(|_| Err(StoreError::Other(msg.clone())))
                        .collect();
                }
                pending.push(Pending::Write(reply, results));
            }
            Job::CacheContext { url, body, reply } => {
                let r = tx
                    .execute(
                        "INSERT OR REPLACE INTO contexts (url, body, fetched_at) VALUES (?1, ?2, datetime('now'))",
                        params![url, body],
                    )
                    .map(|_| ())
                    .map_err(sql_error);
                pending.push(Pending::Context(reply, r));
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for p in pending {
                match p {
                    Pending::Write(reply, results) => drop(reply.send(Ok(results))),
                    Pending::Context(reply, r) => drop(reply.send(r)),
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "SQLite commit failed");
            let msg = e.to_string();
            for p in pending {
                match p {
                    Pending::Write(reply, _) => {
                        drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
                    }
                    Pending::Context(reply, _) => {
                        drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
                    }
                }
            }
        }
    }
}

fn fail_all(jobs: Vec<Job>, e: StoreError) {
    let msg = e.to_string();
    for job in jobs {
        match job {
            Job::Write { reply, .. } => drop(reply.send(Err(StoreError::Unavailable(msg.clone())))),
            Job::CacheContext { reply, .. } => {
                drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
            }
        }
    }
}

fn ensure_tenant(conn: &Connection, tenant: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, datetime('now'))",
    )?;
    stmt.execute([tenant])?;
    Ok(())
}

/// Applies one mutation in a savepoint; returns what it did and whether it wrote.
fn apply_in_savepoint(
    conn: &Connection,
    tenant: &str,
    op: WriteOp,
) -> StoreResult<(Applied, bool)> {
    conn.execute_batch("SAVEPOINT op").map_err(sql_error)?;
    let result = apply(conn, tenant, op);
    let end = match &result {
        Ok(_) => "RELEASE op",
        Err(_) => "ROLLBACK TO op; RELEASE op",
    };
    conn.execute_batch(end).map_err(sql_error)?;
    result
}

fn apply(conn: &Connection, tenant: &str, op: WriteOp) -> StoreResult<(Applied, bool)> {
    let current: Option<(i64, String)> = conn
        .prepare_cached("SELECT rowid, doc FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant, op.entity_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(sql_error)?;
    let (rowid, before) = match current {
        Some((rowid, doc)) => {
            let entity: Entity = serde_json::from_str(&doc)
                .map_err(|e| StoreError::Other(format!("corrupt entity {}: {e}", op.entity_id)))?;
            (Some(rowid), Some(entity))
        }
        None => (None, None),
    };
    let old_types = before.as_ref().map(|e| e.types.clone()).unwrap_or_default();
    let (change, applied) = (op.mutate)(before)?;
    match change {
        Change::Unchanged => Ok((applied, false)),
        Change::Delete => {
            if let Some(rowid) = rowid {
                delete_indexes(conn, tenant, rowid, &old_types).map_err(sql_error)?;
                conn.prepare_cached("DELETE FROM entities WHERE rowid = ?1")
                    .and_then(|mut s| s.execute([rowid]))
                    .map_err(sql_error)?;
            }
            Ok((applied, true))
        }
        Change::Put(entity) => {
            if entity.id != op.entity_id {
                return Err(StoreError::Other("a mutation changed the entity id".into()));
            }
            let doc =
                serde_json::to_string(&entity).map_err(|e| StoreError::Other(e.to_string()))?;
            let types = serde_json::to_string(&entity.types)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            let modified = format_time(&entity.modified_at);
            let rowid = match rowid {
                Some(rowid) => {
                    delete_indexes(conn, tenant, rowid, &old_types).map_err(sql_error)?;
                    conn.prepare_cached("UPDATE entities SET types = ?2, doc = ?3, modified_at = ?4 WHERE rowid = ?1")
                        .and_then(|mut s| s.execute(params![rowid, types, doc, modified]))
                        .map_err(sql_error)?;
                    rowid
                }
                None => {
                    conn.prepare_cached("INSERT INTO entities (tenant, id, types, doc, modified_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                        .and_then(|mut s| s.execute(params![tenant, entity.id, types, doc, modified]))
                        .map_err(sql_error)?;
                    conn.last_insert_rowid()
                }
            };
            insert_indexes(conn, tenant, rowid, &entity).map_err(sql_error)?;
            Ok((applied, true))
        }
    }
}

fn delete_indexes(
    conn: &Connection,
    tenant: &str,
    rowid: i64,
    types: &[String],
) -> rusqlite::Result<()> {
    let mut del_type = conn.prepare_cached(
        "DELETE FROM entity_types WHERE tenant = ?1 AND type = ?2 AND entity = ?3",
    )?;
    for t in types {
        del_type.execute(params![tenant, t, rowid])?;
    }
    conn.prepare_cached("DELETE FROM attr_index WHERE entity = ?1")?
        .execute([rowid])?;
    conn.prepare_cached("DELETE FROM attr_values WHERE entity = ?1")?
        .execute([rowid])?;
    let mut geo_ids = conn.prepare_cached("SELECT id FROM geo_attr WHERE entity = ?1")?;
    let ids: Vec<i64> = geo_ids
        .query_map([rowid], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !ids.is_empty() {
        let mut del_rtree = conn.prepare_cached("DELETE FROM geo_rtree WHERE id = ?1")?;
        for id in &ids {
            del_rtree.execute([id])?;
        }
        conn.prepare_cached("DELETE FROM geo_attr WHERE entity = ?1")?
            .execute([rowid])?;
    }
    Ok(())
}

/// The indexed form of a scalar: (num, txt); None for what q cannot compare.
fn indexed_value(value: &Value) -> Option<(Option<f64>, Option<String>)> {
    match value {
        Value::Number(n) => Some((n.as_f64(), None)),
        Value::String(s) => Some((None, Some(s.clone()))),
        Value::Bool(b) => Some((None, Some(b.to_string()))),
        _ => None,
    }
}

fn insert_indexes(conn: &Connection, tenant: &str, rowid: i64, e: &Entity) -> rusqlite::Result<()> {
    let mut ins_type = conn.prepare_cached(
        "INSERT OR IGNORE INTO entity_types (tenant, type, entity) VALUES (?1, ?2, ?3)",
    )?;
    for t in &e.types {
        ins_type.execute(params![tenant, t, rowid])?;
    }
    let mut ins_attr = conn.prepare_cached(
        "INSERT INTO attr_index (entity, name, seq, kind) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut ins_value = conn.prepare_cached(
        "INSERT INTO attr_values (entity, name, k, num, txt) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (name, instances) in &e.attrs {
        let mut k = 0i64;
        for (seq, inst) in instances.iter().enumerate() {
            ins_attr.execute(params![rowid, name, seq as i64, inst.kind.name()])?;
            // Index exactly the values q compares with (ngsi::filter decides which).
            if !matches!(inst.kind, AttrKind::GeoProperty | AttrKind::JsonProperty) {
                for target in ngsi::filter::value_targets(inst) {
                    if let Some((num, txt)) = indexed_value(&target) {
                        ins_value.execute(params![rowid, name, k, num, txt])?;
                        k += 1;
                    }
                }
            }
            if let Some(g) = inst.geometry() {
                let (x0, y0, x1, y1) = g.bbox();
                conn.prepare_cached("INSERT INTO geo_attr (entity, name) VALUES (?1, ?2)")?
                    .execute(params![rowid, name])?;
                let id = conn.last_insert_rowid();
                conn.prepare_cached("INSERT INTO geo_rtree (id, min_x, max_x, min_y, max_y) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![id, x0, x1, y0, y1])?;
            }
        }
    }
    Ok(())
}
