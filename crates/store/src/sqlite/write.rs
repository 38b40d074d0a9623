//! The writer thread: group commit of every queued write.
//!
//! Each operation is decided before any SQL of its own is written (read, decide with
//! [`crate::apply`], check the registry records it carries, write), so an operation
//! that is refused leaves nothing to undo and needs no savepoint. Only a fault of
//! the database itself (I/O error, disk full) can fail midway; then the whole group is
//! rolled back and every caller in it gets an error: nothing half-done is committed.
//! Index rows are rewritten only where the entity changed.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use ngsi::entity::format_time;
use std::collections::{BTreeSet, HashMap};

use std::sync::Arc;

use ngsi::Entity;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use tokio::sync::oneshot;

use super::hourly;
use super::sql_error;
use super::subscriptions::Watchers;
use crate::history::instance_columns;
use crate::rows::{AttrRows, IndexRows};
use crate::value_index::ValueIndexPolicy;
use crate::{
    Applied, Effect, HistoryEdit, PurgeStep, RetentionCutoffs, StoreError, StoreResult, WriteOp,
};

/// The most operations one commit takes, so one commit stays short.
const MAX_OPS_PER_COMMIT: usize = 20_000;

pub enum Job {
    Write {
        tenant: String,
        ops: Vec<WriteOp>,
        /// The write's audit record, inserted with it.
        audit: Option<crate::AuditRecord>,
        reply: oneshot::Sender<StoreResult<Vec<StoreResult<Applied>>>>,
    },
    /// Keeps a fetched @context document, or with no body drops it.
    CacheContext {
        url: String,
        body: Option<String>,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    EditHistory {
        tenant: String,
        edit: Box<HistoryEdit>,
        /// Inserted with the edit when it changes something.
        audit: Option<crate::AuditRecord>,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
    /// One bounded step of a purge, so that the group it joins stays short.
    PurgeHistory {
        tenant: String,
        cutoffs: RetentionCutoffs,
        after: i64,
        max_entities: usize,
        reply: oneshot::Sender<StoreResult<PurgeStep>>,
    },
    /// Attributes whose values the value index leaves out from now on
    /// (`crate::value_index`): kept, and their rows dropped.
    LeaveOutValues {
        names: Vec<String>,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    /// A registry record written or deleted (`sqlite::registry`).
    Registry {
        change: super::registry::RegistryChange,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
    /// A subscription written or deleted, or a delivery recorded
    /// (`sqlite::subscriptions`).
    Subscription {
        change: super::subscriptions::SubscriptionChange,
        /// Inserted with the change when it changes something.
        audit: Option<crate::AuditRecord>,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
    /// Audit records appended, sealed or purged (`sqlite::audit`).
    Audit {
        change: super::audit::AuditChange,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
}

pub fn spawn(conn: Connection, outbox: Arc<Notify>, values: Arc<ValueIndexPolicy>) -> Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("dothi-sqlite-writer".into())
        .spawn(move || run(conn, rx, &outbox, &values));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the SQLite writer thread");
    }
    tx
}

/// Operations between two refreshes of the query planner's statistics.
const OPS_PER_OPTIMIZE: usize = 50_000;

fn run(mut conn: Connection, rx: Receiver<Job>, outbox: &Notify, values: &ValueIndexPolicy) {
    let mut since_optimize = 0usize;
    let mut names = Names::default();
    let mut watchers = Watchers::default();
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
        // Read after the group's jobs were taken: a declaration in the group was
        // added to the policy before it was sent.
        let left_out = values.left_out();
        match commit_group(&mut conn, jobs, &mut names, &mut watchers, &left_out) {
            // The notifier is woken as soon as notifications are durable.
            Some(notified) if notified > 0 => outbox.notify_one(),
            Some(_) => {}
            None => {
                // Names interned by a group that was rolled back are gone from the
                // table; the throttling times of the watchers may be too recent.
                names.forget();
                watchers.forget();
            }
        }
        since_optimize += ops;
        // Keep the planner's statistics current as data grows (bounded work each time).
        if since_optimize >= OPS_PER_OPTIMIZE {
            since_optimize = 0;
            if let Err(e) = conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize") {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
    }
    // Every handle on the store is gone: copy the WAL into the database now, so the
    // next start has no WAL to read (readers, which close last, cannot checkpoint).
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn op_count(job: &Job) -> usize {
    match job {
        Job::Write { ops, .. } => ops.len().max(1),
        Job::CacheContext { .. }
        | Job::LeaveOutValues { .. }
        | Job::EditHistory { .. }
        | Job::PurgeHistory { .. }
        | Job::Registry { .. }
        | Job::Subscription { .. }
        | Job::Audit { .. } => 1,
    }
}

enum Pending {
    Write(
        oneshot::Sender<StoreResult<Vec<StoreResult<Applied>>>>,
        Vec<StoreResult<Applied>>,
    ),
    Done(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    /// A count: instances of a history edit, audit records appended, sealed or purged.
    Count(oneshot::Sender<StoreResult<u64>>, u64),
    Purge(oneshot::Sender<StoreResult<PurgeStep>>, PurgeStep),
    Registry(oneshot::Sender<StoreResult<bool>>, StoreResult<bool>),
}

impl Pending {
    /// Tells the caller that its write was not kept: the group failed as a whole.
    fn fail(self, msg: &str) {
        fn lost<T>(msg: &str) -> StoreResult<T> {
            Err(StoreError::Unavailable(msg.to_string()))
        }
        match self {
            Pending::Write(reply, _) => drop(reply.send(lost(msg))),
            Pending::Done(reply, _) => drop(reply.send(lost(msg))),
            Pending::Count(reply, _) => drop(reply.send(lost(msg))),
            Pending::Purge(reply, _) => drop(reply.send(lost(msg))),
            Pending::Registry(reply, _) => drop(reply.send(lost(msg))),
        }
    }
}

/// Why one operation of a group failed.
enum OpError {
    /// This operation alone fails (refused by its mutation, or unreadable); nothing of
    /// it was written.
    Op(StoreError),
    /// The database failed while writing: the whole group must be rolled back.
    Fault(StoreError),
}

/// Interned names: the id of each name (attribute, type, kind) in table `names`,
/// cached by the writer, which alone adds names.
#[derive(Default)]
struct Names(HashMap<String, i64>);

/// Names cached at most; beyond, the cache starts afresh (names are looked up again).
const MAX_CACHED_NAMES: usize = 100_000;

impl Names {
    fn id(&mut self, conn: &Connection, name: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.0.get(name) {
            return Ok(*id);
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM names WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
                    .execute([name])?;
                conn.last_insert_rowid()
            }
        };
        if self.0.len() >= MAX_CACHED_NAMES {
            self.0.clear();
        }
        self.0.insert(name.to_string(), id);
        Ok(id)
    }

    fn forget(&mut self) {
        self.0.clear();
    }
}

/// Commits one group; returns how many notifications it wrote to the outbox, or None
/// when it was rolled back.
fn commit_group(
    conn: &mut Connection,
    jobs: Vec<Job>,
    names: &mut Names,
    watchers: &mut Watchers,
    left_out: &BTreeSet<String>,
) -> Option<usize> {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            fail_all(jobs, sql_error(e));
            return None;
        }
    };
    let mut pending = Vec::with_capacity(jobs.len());
    let mut fault: Option<String> = None;
    let mut notified = 0usize;
    for job in jobs {
        match job {
            Job::Write {
                tenant,
                ops,
                audit,
                reply,
            } => {
                let mut results = Vec::with_capacity(ops.len());
                let mut changed = false;
                let mut failed = Vec::new();
                for op in ops {
                    if fault.is_some() {
                        results.push(Err(StoreError::Unavailable("group rolled back".into())));
                        continue;
                    }
                    let id = audit.as_ref().map(|_| op.entity_id.clone());
                    match apply(&tx, &tenant, op, names, watchers, left_out) {
                        Ok((applied, wrote, fired)) => {
                            changed |= wrote;
                            notified += fired;
                            results.push(Ok(applied));
                        }
                        Err(OpError::Op(e)) => {
                            failed.extend(id);
                            results.push(Err(e));
                        }
                        Err(OpError::Fault(e)) => {
                            fault = Some(e.to_string());
                            results.push(Err(e));
                        }
                    }
                }
                if let Some(mut record) = audit
                    && fault.is_none()
                {
                    record.settle(failed);
                    if let Err(e) = super::audit::insert(&tx, &record) {
                        fault = Some(e.to_string());
                    }
                }
                if changed
                    && fault.is_none()
                    && let Err(e) = ensure_tenant(&tx, &tenant)
                {
                    fault = Some(e.to_string());
                }
                pending.push(Pending::Write(reply, results));
            }
            Job::CacheContext { url, body, reply } => {
                let r = match body {
                    Some(body) => tx.execute(
                        "INSERT OR REPLACE INTO contexts (url, body, fetched_at) VALUES (?1, ?2, datetime('now'))",
                        params![url, body],
                    ),
                    None => tx.execute("DELETE FROM contexts WHERE url = ?1", params![url]),
                }
                .map(|_| ())
                    .map_err(sql_error);
                if let Err(e) = &r {
                    fault = Some(e.to_string());
                }
                pending.push(Pending::Done(reply, r));
            }
            Job::LeaveOutValues { names: left, reply } => {
                let r = leave_out_values(&tx, &left).map_err(sql_error);
                if let Err(e) = &r {
                    fault = Some(e.to_string());
                }
                pending.push(Pending::Done(reply, r));
            }
            Job::EditHistory {
                tenant,
                edit,
                audit,
                reply,
            } => match edit_history(&tx, &tenant, &edit, names).and_then(|n| {
                if let Some(record) = audit.filter(|_| n > 0) {
                    super::audit::insert(&tx, &record)?;
                }
                Ok(n)
            }) {
                Ok(n) => pending.push(Pending::Count(reply, n)),
                Err(e) => fail_job(reply, sql_error(e), &mut fault),
            },
            Job::PurgeHistory {
                tenant,
                cutoffs,
                after,
                max_entities,
                reply,
            } => match purge_step(&tx, &tenant, &cutoffs, after, max_entities) {
                Ok(step) => pending.push(Pending::Purge(reply, step)),
                Err(e) => fail_job(reply, sql_error(e), &mut fault),
            },
            Job::Registry { change, reply } => match super::registry::apply(&tx, &change) {
                Ok(r) => pending.push(Pending::Registry(reply, r)),
                Err(e) => fail_job(reply, sql_error(e), &mut fault),
            },
            Job::Subscription {
                change,
                audit,
                reply,
            } => {
                let applied = super::subscriptions::apply(&tx, &change, watchers).and_then(|r| {
                    if matches!(r, Ok(true))
                        && let Some(record) = &audit
                    {
                        super::audit::insert(&tx, record)?;
                    }
                    Ok(r)
                });
                match applied {
                    Ok(r) => {
                        if matches!(
                            change,
                            super::subscriptions::SubscriptionChange::Queue { .. }
                        ) && matches!(r, Ok(true))
                        {
                            notified += 1;
                        }
                        pending.push(Pending::Registry(reply, r));
                    }
                    Err(e) => fail_job(reply, sql_error(e), &mut fault),
                }
            }
            Job::Audit { change, reply } => match super::audit::apply(&tx, change) {
                Ok(n) => pending.push(Pending::Count(reply, n)),
                Err(e) => fail_job(reply, sql_error(e), &mut fault),
            },
        }
    }
    if let Some(msg) = fault {
        tracing::error!(error = %msg, "SQLite write failed; the group is rolled back");
        drop(tx);
        for p in pending {
            p.fail(&msg);
        }
        return None;
    }
    match tx.commit() {
        Ok(()) => {
            for p in pending {
                match p {
                    Pending::Write(reply, results) => drop(reply.send(Ok(results))),
                    Pending::Done(reply, r) => drop(reply.send(r)),
                    Pending::Count(reply, n) => drop(reply.send(Ok(n))),
                    Pending::Purge(reply, step) => drop(reply.send(Ok(step))),
                    Pending::Registry(reply, r) => drop(reply.send(r)),
                }
            }
            Some(notified)
        }
        Err(e) => {
            tracing::error!(error = %e, "SQLite commit failed");
            let msg = e.to_string();
            for p in pending {
                p.fail(&msg);
            }
            None
        }
    }
}

/// Answers a job whose statements failed with the failure, which rolls the group back.
fn fail_job<T>(reply: oneshot::Sender<StoreResult<T>>, e: StoreError, fault: &mut Option<String>) {
    *fault = Some(e.to_string());
    drop(reply.send(Err(e)));
}

fn fail_all(jobs: Vec<Job>, e: StoreError) {
    let msg = e.to_string();
    for job in jobs {
        match job {
            Job::Write { reply, .. } => drop(reply.send(Err(StoreError::Unavailable(msg.clone())))),
            Job::CacheContext { reply, .. } | Job::LeaveOutValues { reply, .. } => {
                drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
            }
            Job::EditHistory { reply, .. } => {
                drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
            }
            Job::PurgeHistory { reply, .. } => {
                drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
            }
            Job::Registry { reply, .. } | Job::Subscription { reply, .. } => {
                drop(reply.send(Err(StoreError::Unavailable(msg.clone()))))
            }
            Job::Audit { reply, .. } => drop(reply.send(Err(StoreError::Unavailable(msg.clone())))),
        }
    }
}

/// Keeps `names` as left out of the value index and drops their rows there.
fn leave_out_values(conn: &Connection, names: &[String]) -> rusqlite::Result<()> {
    for name in names {
        conn.prepare_cached("INSERT OR IGNORE INTO unindexed_values (name) VALUES (?1)")?
            .execute([name])?;
        conn.prepare_cached(
            "DELETE FROM attr_values WHERE name = (SELECT id FROM names WHERE name = ?1)",
        )?
        .execute([name])?;
    }
    Ok(())
}

fn ensure_tenant(conn: &Connection, tenant: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, datetime('now'))",
    )?;
    stmt.execute([tenant])?;
    Ok(())
}

/// Applies one operation: reads its entity, lets the write core decide
/// ([`crate::apply`]), and writes what it decided. Returns (what the mutation
/// reports, whether it wrote to the entity, how many notifications it queued).
fn apply(
    conn: &Connection,
    tenant: &str,
    op: WriteOp,
    names: &mut Names,
    watchers: &mut Watchers,
    left_out: &BTreeSet<String>,
) -> Result<(Applied, bool, usize), OpError> {
    let current: Option<(i64, String)> = conn
        .prepare_cached("SELECT rowid, doc FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant, op.entity_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(|e| OpError::Op(sql_error(e)))?;
    let (rowid, before) = match current {
        Some((rowid, doc)) => {
            let entity: Entity = serde_json::from_str(&doc).map_err(|e| {
                OpError::Op(StoreError::Other(format!(
                    "corrupt entity {}: {e}",
                    op.entity_id
                )))
            })?;
            (Some(rowid), Some(entity))
        }
        None => (None, None),
    };
    let old_rows = before.as_ref().map(|e| IndexRows::of(e, left_out));
    let watched = watchers.watching(conn, tenant).map_err(OpError::Op)?;
    let outcome = crate::apply(op, before, watched).map_err(OpError::Op)?;
    // Everything that can refuse the operation runs before its first write.
    let doc = outcome
        .after()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| OpError::Op(StoreError::Other(e.to_string())))?;
    for put in &outcome.records {
        super::registry::check(conn, put).map_err(OpError::Op)?;
    }
    let fault = |e: rusqlite::Error| OpError::Fault(sql_error(e));
    match (&outcome.effect, rowid, old_rows, doc) {
        (Effect::Deleted, Some(rowid), Some(old), _) => {
            old.delete_all(conn, tenant, rowid, names).map_err(fault)?;
            conn.prepare_cached("DELETE FROM entities WHERE rowid = ?1")
                .and_then(|mut s| s.execute([rowid]))
                .map_err(fault)?;
            // The history goes with the entity (the NGSI-LD default).
            for sql in [
                "DELETE FROM attr_history WHERE entity = ?1",
                "DELETE FROM attr_deletions WHERE entity = ?1",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute([rowid]))
                    .map_err(fault)?;
            }
            hourly::forget_entity(conn, rowid).map_err(fault)?;
        }
        (Effect::Changed(entity), Some(rowid), Some(old), Some(doc)) => {
            conn.prepare_cached("UPDATE entities SET doc = ?2, modified_at = ?3 WHERE rowid = ?1")
                .and_then(|mut s| s.execute(params![rowid, doc, format_time(&entity.modified_at)]))
                .map_err(fault)?;
            IndexRows::of(entity, left_out)
                .replace(&old, conn, tenant, rowid, names)
                .map_err(fault)?;
            record_history(conn, rowid, &outcome.history, names).map_err(fault)?;
            record_deletions(conn, rowid, &outcome.deletions, names).map_err(fault)?;
        }
        (Effect::Created(entity), _, _, Some(doc)) => {
            conn.prepare_cached(
                "INSERT INTO entities (tenant, id, doc, modified_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant,
                    entity.id,
                    doc,
                    format_time(&entity.modified_at)
                ])
            })
            .map_err(fault)?;
            let rowid = conn.last_insert_rowid();
            IndexRows::of(entity, left_out)
                .replace(&IndexRows::default(), conn, tenant, rowid, names)
                .map_err(fault)?;
            record_history(conn, rowid, &outcome.history, names).map_err(fault)?;
        }
        // Nothing to write: unchanged, or deleted when there was nothing.
        _ => {}
    }
    for put in &outcome.records {
        super::registry::put(conn, put).map_err(fault)?;
    }
    let fired = match outcome.watched_change() {
        Some((before, after)) => watchers
            .fire(conn, tenant, before, after, ngsi::entity::now())
            .map_err(fault)?,
        None => 0,
    };
    let wrote = outcome.wrote();
    Ok((outcome.applied, wrote, fired))
}

/// Appends the instances the write core chose to the entity's history.
fn record_history(
    conn: &Connection,
    rowid: i64,
    instances: &[(String, ngsi::Attribute)],
    names: &mut Names,
) -> rusqlite::Result<()> {
    for (name, inst) in instances {
        insert_instance(conn, rowid, names.id(conn, name)?, inst)?;
    }
    Ok(())
}

/// Records the attribute instances the write removed.
fn record_deletions(
    conn: &Connection,
    rowid: i64,
    deletions: &[crate::Deletion],
    names: &mut Names,
) -> rusqlite::Result<()> {
    for d in deletions {
        let doc = serde_json::to_string(&d.instance())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        conn.prepare_cached(
            "INSERT INTO attr_deletions (entity, name, dataset, at, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            rowid,
            names.id(conn, &d.name)?,
            d.dataset_id,
            d.at.timestamp_millis(),
            doc
        ])?;
    }
    Ok(())
}

fn insert_instance(
    conn: &Connection,
    rowid: i64,
    name: i64,
    inst: &ngsi::Attribute,
) -> rusqlite::Result<()> {
    let (t, written, num, txt, unit, doc) = instance_columns(inst);
    conn.prepare_cached(
        "INSERT INTO attr_history (entity, name, dataset, t, written, num, txt, unit, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![rowid, name, inst.dataset_id, t, written, num, txt, unit, doc])?;
    hourly::add(conn, rowid, name, inst.dataset_id.as_deref(), t, num)
}

/// One step of a retention purge: for each of the next `max_entities` entities of the
/// tenant, its cutoff from its types, then each attribute's instances before it, read
/// from the start of the attribute's range in the time index.
fn purge_step(
    conn: &Connection,
    tenant: &str,
    cutoffs: &RetentionCutoffs,
    after: i64,
    max_entities: usize,
) -> rusqlite::Result<PurgeStep> {
    let max_entities = max_entities.max(1);
    let mut entities = conn.prepare_cached(
        "SELECT rowid FROM entities WHERE tenant = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
    )?;
    let rows: Vec<i64> = entities
        .query_map(params![tenant, after, max_entities as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut is_of_type = conn.prepare_cached(
        "SELECT 1 FROM entity_types WHERE tenant = ?1 AND type = (SELECT id FROM names WHERE name = ?2) AND entity = ?3",
    )?;
    let mut history_names = conn.prepare_cached(
        "WITH RECURSIVE n(id) AS (
            SELECT MIN(name) FROM attr_history WHERE entity = ?1
            UNION ALL
            SELECT (SELECT MIN(name) FROM attr_history WHERE entity = ?1 AND name > n.id)
            FROM n WHERE n.id IS NOT NULL
         )
         SELECT id FROM n WHERE id IS NOT NULL",
    )?;
    let mut delete =
        conn.prepare_cached("DELETE FROM attr_history WHERE entity = ?1 AND name = ?2 AND t < ?3")?;
    let mut delete_deletions =
        conn.prepare_cached("DELETE FROM attr_deletions WHERE entity = ?1 AND at < ?2")?;
    let mut deleted = 0u64;
    for rowid in &rows {
        // The longest retention among the entity's types with a rule, else the default.
        let mut cutoff = None;
        for (t, c) in &cutoffs.by_type {
            if is_of_type.exists(params![tenant, t, rowid])? {
                cutoff = Some(cutoff.map_or(*c, |old: chrono::DateTime<chrono::Utc>| old.min(*c)));
            }
        }
        let Some(cutoff) = cutoff.or(cutoffs.default) else {
            continue;
        };
        let names: Vec<i64> = history_names
            .query_map([rowid], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in names {
            let n = delete.execute(params![rowid, name, cutoff.timestamp_millis()])?;
            if n > 0 {
                hourly::purged_before(conn, *rowid, name, cutoff.timestamp_millis())?;
            }
            deleted += n as u64;
        }
        deleted += delete_deletions.execute(params![rowid, cutoff.timestamp_millis()])? as u64;
    }
    let next = (rows.len() == max_entities)
        .then(|| rows.last().copied())
        .flatten();
    Ok(PurgeStep { deleted, next })
}

fn edit_history(
    conn: &Connection,
    tenant: &str,
    edit: &HistoryEdit,
    names: &mut Names,
) -> rusqlite::Result<u64> {
    let entity_id = match edit {
        HistoryEdit::DeleteAttribute { entity_id, .. }
        | HistoryEdit::DeleteInstance { entity_id, .. }
        | HistoryEdit::ReplaceInstance { entity_id, .. } => entity_id,
    };
    let rowid: Option<i64> = conn
        .prepare_cached("SELECT rowid FROM entities WHERE tenant = ?1 AND id = ?2")?
        .query_row(params![tenant, entity_id], |r| r.get(0))
        .optional()?;
    let Some(rowid) = rowid else {
        return Ok(0);
    };
    let n = match edit {
        HistoryEdit::DeleteAttribute {
            name, dataset_id, ..
        } => {
            let name = names.id(conn, name)?;
            hourly::forget_attribute(conn, rowid, name, dataset_id.as_ref().map(|d| d.as_deref()))?;
            // Its instances and the records of its deletions.
            let mut n = 0;
            for table in ["attr_history", "attr_deletions"] {
                n += match dataset_id {
                    None => conn
                        .prepare_cached(&format!(
                            "DELETE FROM {table} WHERE entity = ?1 AND name = ?2"
                        ))?
                        .execute(params![rowid, name])?,
                    Some(d) => conn
                        .prepare_cached(&format!(
                            "DELETE FROM {table} WHERE entity = ?1 AND name = ?2 AND dataset IS ?3"
                        ))?
                        .execute(params![rowid, name, d])?,
                };
            }
            n
        }
        HistoryEdit::DeleteInstance { name, instance, .. } => {
            let name = names.id(conn, name)?;
            let was = instance_time(conn, *instance, rowid, name)?;
            let n = conn
                .prepare_cached(
                    "DELETE FROM attr_history WHERE id = ?1 AND entity = ?2 AND name = ?3",
                )?
                .execute(params![instance, rowid, name])?;
            if let Some(t) = was {
                hourly::recount(conn, rowid, name, hourly::hour_of(t))?;
            }
            n
        }
        HistoryEdit::ReplaceInstance {
            name,
            instance,
            attribute,
            ..
        } => {
            let name = names.id(conn, name)?;
            let was = instance_time(conn, *instance, rowid, name)?;
            let (t, written, num, txt, unit, doc) = instance_columns(attribute);
            let n = conn.prepare_cached(
                "UPDATE attr_history SET dataset = ?4, t = ?5, written = ?6, num = ?7, txt = ?8, unit = ?9, doc = ?10 WHERE id = ?1 AND entity = ?2 AND name = ?3",
            )?
            .execute(params![
                instance,
                rowid,
                name,
                attribute.dataset_id,
                t,
                written,
                num,
                txt,
                unit,
                doc
            ])?;
            if let Some(old) = was {
                hourly::recount(conn, rowid, name, hourly::hour_of(old))?;
                if hourly::hour_of(old) != hourly::hour_of(t) {
                    hourly::recount(conn, rowid, name, hourly::hour_of(t))?;
                }
            }
            n
        }
    };
    Ok(n as u64)
}

/// The observation time of one instance of an attribute, when it exists.
fn instance_time(
    conn: &Connection,
    instance: i64,
    entity: i64,
    name: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT t FROM attr_history WHERE id = ?1 AND entity = ?2 AND name = ?3")?
        .query_row(params![instance, entity, name], |r| r.get(0))
        .optional()
}

/// The rows a new entity becomes besides its document, in plain form, for a baseline
/// that writes the same rows with plain SQL (`dothi bench`); names as they are.
pub struct BaselineRows {
    pub types: Vec<String>,
    pub attrs: Vec<BaselineAttr>,
    /// The history rows of a new entity: one per attribute instance.
    pub history: Vec<BaselineInstance>,
}

/// A history row: attribute name, datasetId, and (t, written, num, txt, unit, doc).
pub type BaselineInstance = (String, Option<String>, crate::history::InstanceColumns);

pub struct BaselineAttr {
    pub name: String,
    pub kinds: Vec<&'static str>,
    pub values: Vec<(Option<f64>, Option<String>)>,
    pub boxes: Vec<(f64, f64, f64, f64)>,
}

pub fn baseline_rows(e: &Entity) -> BaselineRows {
    let rows = IndexRows::of(e, &BTreeSet::new());
    let history = e
        .attrs
        .iter()
        .flat_map(|(name, instances)| {
            instances
                .iter()
                .map(|i| (name.clone(), i.dataset_id.clone(), instance_columns(i)))
        })
        .collect();
    BaselineRows {
        history,
        types: rows.types,
        attrs: rows
            .attrs
            .into_iter()
            .map(|(name, a)| BaselineAttr {
                name,
                kinds: a.kinds,
                values: a.values,
                boxes: a.boxes,
            })
            .collect(),
    }
}

impl IndexRows {
    fn delete_all(
        &self,
        conn: &Connection,
        tenant: &str,
        rowid: i64,
        names: &mut Names,
    ) -> rusqlite::Result<()> {
        IndexRows::default().replace(self, conn, tenant, rowid, names)
    }

    /// Turns the rows of `old` into the rows of `self`, touching only what differs.
    fn replace(
        &self,
        old: &IndexRows,
        conn: &Connection,
        tenant: &str,
        rowid: i64,
        names: &mut Names,
    ) -> rusqlite::Result<()> {
        if self.types != old.types {
            let mut del = conn.prepare_cached(
                "DELETE FROM entity_types WHERE tenant = ?1 AND type = ?2 AND entity = ?3",
            )?;
            for t in old.types.iter().filter(|t| !self.types.contains(t)) {
                del.execute(params![tenant, names.id(conn, t)?, rowid])?;
            }
            let mut ins = conn.prepare_cached(
                "INSERT OR IGNORE INTO entity_types (tenant, type, entity) VALUES (?1, ?2, ?3)",
            )?;
            for t in self.types.iter().filter(|t| !old.types.contains(t)) {
                ins.execute(params![tenant, names.id(conn, t)?, rowid])?;
            }
        }
        let attr_names: BTreeSet<&String> = old.attrs.keys().chain(self.attrs.keys()).collect();
        for name in attr_names {
            let (before, after) = (old.attrs.get(name), self.attrs.get(name));
            if before == after {
                continue;
            }
            let empty = AttrRows::default();
            let (before, after) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
            let name = names.id(conn, name)?;
            // A new attribute has no rows to delete: skip the statements.
            if before.kinds != after.kinds {
                if !before.kinds.is_empty() {
                    conn.prepare_cached("DELETE FROM attr_index WHERE entity = ?1 AND name = ?2")?
                        .execute(params![rowid, name])?;
                }
                for (seq, kind) in after.kinds.iter().enumerate() {
                    let kind = names.id(conn, kind)?;
                    conn.prepare_cached(
                        "INSERT INTO attr_index (entity, name, seq, kind) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![rowid, name, seq as i64, kind])?;
                }
            }
            if before.values != after.values {
                if !before.values.is_empty() {
                    conn.prepare_cached("DELETE FROM attr_values WHERE entity = ?1 AND name = ?2")?
                        .execute(params![rowid, name])?;
                }
                let mut ins = conn.prepare_cached(
                    "INSERT INTO attr_values (entity, name, k, num, txt) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (k, (num, txt)) in after.values.iter().enumerate() {
                    ins.execute(params![rowid, name, k as i64, num, txt])?;
                }
            }
            if before.boxes != after.boxes {
                if !before.boxes.is_empty() {
                    let mut ids = conn.prepare_cached(
                        "SELECT id FROM geo_attr WHERE entity = ?1 AND name = ?2",
                    )?;
                    let ids: Vec<i64> = ids
                        .query_map(params![rowid, name], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    let mut del = conn.prepare_cached("DELETE FROM geo_rtree WHERE id = ?1")?;
                    for id in &ids {
                        del.execute([id])?;
                    }
                    conn.prepare_cached("DELETE FROM geo_attr WHERE entity = ?1 AND name = ?2")?
                        .execute(params![rowid, name])?;
                }
                for (x0, y0, x1, y1) in &after.boxes {
                    conn.prepare_cached("INSERT INTO geo_attr (entity, name) VALUES (?1, ?2)")?
                        .execute(params![rowid, name])?;
                    let id = conn.last_insert_rowid();
                    conn.prepare_cached(
                        "INSERT INTO geo_rtree (id, min_x, max_x, min_y, max_y) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![id, x0, x1, y0, y1])?;
                }
            }
        }
        Ok(())
    }
}
