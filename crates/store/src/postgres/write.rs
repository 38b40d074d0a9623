//! Writes: entity mutations with their index, history and outbox rows, history edits
//! and purges, and the monthly partitions of the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use deadpool_postgres::Transaction;
use futures_util::future::{try_join_all, try_join3};
use ngsi::Entity;
use serde_json::Value;
use tokio_postgres::Statement;

use super::{PostgresStore, ms, pg_error, refuse_nul};
use crate::history::instance_columns;
use crate::plan::INDEXED_TEXT_BYTES;
use crate::rows::{AttrRows, IndexRows};
use crate::watch::TenantWatchers;
use crate::{
    Applied, Effect, HistoryEdit, HistoryWrite, PurgeStep, RegistryPut, RegistryWrite,
    RetentionCutoffs, StoreError, StoreResult, WriteOp,
};

/// The advisory lock that orders the outbox: taken by a transaction before it adds
/// notifications and held until its commit, so that outbox ids grow in commit order
/// (a reader that has seen row n never misses a row below n committed later). A
/// write takes it after its entity locks, never before.
pub(super) const OUTBOX_LOCK: i64 = 0x646f_7468_695f_6f62; // "dothi_ob"

/// The lock serializing the creation of history partitions between nodes.
const PARTITION_LOCK: i64 = 0x646f_7468_695f_7061; // "dothi_pa"

/// Entity rows this node has added since it last refreshed the planner's statistics.
/// A bulk load otherwise leaves the planner without them until autovacuum's next
/// round (a minute or more), and without them it drives a geo-query from the type
/// index, testing every entity of the type (EXPLAIN ANALYZE at 100,000 entities:
/// 680 ms, against 3 ms from the GiST index with statistics). Refreshed whenever the rows added reach those counted at the last refresh
/// (at least [`ANALYZE_AFTER`]): a few times in a load, never in steady updates.
#[derive(Default)]
pub(super) struct Growth(Mutex<(u64, u64)>);

const ANALYZE_AFTER: u64 = 10_000;

impl Growth {
    /// Counts `added` rows; true when the statistics are to be refreshed now.
    fn add(&self, added: u64) -> bool {
        let Ok(mut g) = self.0.lock() else {
            return false;
        };
        let (counted, since) = &mut *g;
        *since += added;
        if *since < (*counted).max(ANALYZE_AFTER) {
            return false;
        }
        *counted += *since;
        *since = 0;
        true
    }
}

/// A month as a number: year * 12 + month - 1.
pub(super) fn month_of(t: DateTime<Utc>) -> i64 {
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

fn month_start(month: i64) -> Option<DateTime<Utc>> {
    let year = i32::try_from(month.div_euclid(12)).ok()?;
    let m = u32::try_from(month.rem_euclid(12)).ok()? + 1;
    Utc.with_ymd_and_hms(year, m, 1, 0, 0, 0).single()
}

impl PostgresStore {
    /// Makes sure each month has its history partition. Runs on a connection of its
    /// own, with a short lock timeout: a month it cannot create now goes to the
    /// default partition, and nothing is ever refused for want of one.
    pub(super) async fn ensure_months(&self, months: &[i64]) {
        let missing: Vec<i64> = match self.months.lock() {
            Ok(known) => months
                .iter()
                .copied()
                .filter(|m| !known.contains(m))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            Err(_) => return,
        };
        if missing.is_empty() {
            return;
        }
        match self.create_partitions(&missing).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "history partitions not created; rows go to the default partition")
            }
        }
        // Tried once per node: the next writes of these months do not wait again.
        if let Ok(mut known) = self.months.lock() {
            known.extend(missing);
        }
    }

    async fn create_partitions(&self, months: &[i64]) -> StoreResult<()> {
        let (mut client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(pg_error)?;
        let task = tokio::spawn(connection);
        let result = async {
            for month in months {
                let (Some(from), Some(to)) = (month_start(*month), month_start(month + 1)) else {
                    continue;
                };
                let tx = client.transaction().await.map_err(pg_error)?;
                tx.batch_execute("SET LOCAL lock_timeout = '2s'").await.map_err(pg_error)?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
                    .await
                    .map_err(pg_error)?;
                let name = format!("attr_history_{}", from.format("y%Ym%m"));
                let exists = tx
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                    .await
                    .map_err(pg_error)?
                    .get::<_, bool>(0);
                if !exists {
                    // The bounds are dates this code formats, never input: DDL takes
                    // no parameters.
                    let ddl = format!(
                        "CREATE TABLE {name} PARTITION OF attr_history FOR VALUES FROM ('{}') TO ('{}')",
                        from.to_rfc3339(),
                        to.to_rfc3339()
                    );
                    if let Err(e) = tx.batch_execute(&ddl).await {
                        // The default partition already holds rows of this month.
                        tracing::warn!(partition = %name, error = %e, "history partition not created");
                        continue;
                    }
                    tracing::info!(partition = %name, "created history partition");
                }
                tx.commit().await.map_err(pg_error)?;
            }
            Ok(())
        }
        .await;
        drop(client);
        task.abort();
        result
    }

    /// Whether any of the tenant's subscriptions can fire, given the tenant's
    /// subscriptions version read by this call: its compiled subscriptions are
    /// reloaded when another call or node changed them.
    async fn watching(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        version: i64,
    ) -> StoreResult<bool> {
        let current = self
            .watchers
            .lock()
            .ok()
            .and_then(|w| w.get(tenant).map(|(v, w)| (*v == version, !w.is_empty())));
        if let Some((true, watched)) = current {
            return Ok(watched);
        }
        let rows = tx
            .query(
                "SELECT doc::text, last_notification FROM subscriptions WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(pg_error)?;
        let rows: Vec<(String, Option<DateTime<Utc>>)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let contexts: BTreeMap<String, String> = if rows.is_empty() {
            BTreeMap::new()
        } else {
            tx.query("SELECT url, body FROM contexts", &[])
                .await
                .map_err(pg_error)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        let cached = |url: &str| -> Option<Value> {
            contexts.get(url).and_then(|b| serde_json::from_str(b).ok())
        };
        let loaded = TenantWatchers::load(tenant, rows, &cached);
        let watched = !loaded.is_empty();
        if let Ok(mut w) = self.watchers.lock() {
            w.insert(tenant.to_string(), (version, loaded));
        }
        Ok(watched)
    }

    fn forget_watchers(&self, tenant: &str) {
        if let Ok(mut w) = self.watchers.lock() {
            w.remove(tenant);
        }
    }

    /// Applies a call's operations in one transaction. The entities are locked and
    /// read with one statement each, every mutation runs in memory in the order
    /// given (a later operation on the same entity sees the earlier one's result),
    /// and what they change goes out as one multi-row statement per table.
    pub(super) async fn write_ops(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // The entities, each once (a mutation is not Sync: only their ids cross the
        // await).
        let ids: Vec<&str> = ops
            .iter()
            .map(|op| op.entity_id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut batch, version) = match Batch::read(&tx, tenant, ids).await {
            Ok(read) => read,
            Err(e) => {
                self.forget_watchers(tenant);
                return Err(pg_error(e));
            }
        };
        match PendingRegistry::read(&tx, PendingRegistry::keys(&ops)).await {
            Ok(registry) => batch.registry = registry,
            Err(e) => {
                self.forget_watchers(tenant);
                return Err(pg_error(e));
            }
        }
        let tenant_known = version.is_some();
        let watched = self.watching(&tx, tenant, version.unwrap_or(0)).await?;
        let mut results = Vec::with_capacity(ops.len());
        let mut failed = Vec::new();
        for op in ops {
            let id = audit.as_ref().map(|_| op.entity_id.clone());
            match self.apply(&mut batch, tenant, op, watched) {
                Ok((applied, fired)) => {
                    batch.notified += fired;
                    results.push(Ok(applied));
                }
                Err(e) => {
                    failed.extend(id);
                    results.push(Err(e));
                }
            }
        }
        let audit = audit.map(|mut record| {
            record.settle(failed);
            record
        });
        let flushed = async {
            batch.flush(self, &tx, tenant).await?;
            if let Some(record) = &audit {
                super::audit::insert(&tx, record).await?;
            }
            if batch.changed && !tenant_known {
                let add = tx
                    .prepare_cached("INSERT INTO tenants (name) VALUES ($1) ON CONFLICT DO NOTHING")
                    .await?;
                tx.execute(&add, &[&tenant]).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "PostgreSQL write failed; rolled back");
            // Throttling times of notifications that were rolled back.
            self.forget_watchers(tenant);
            return Err(pg_error(e));
        }
        if batch.notified > 0 {
            self.outbox.notify_one();
        }
        if self.growth.add(batch.inserted) {
            self.refresh_statistics();
        }
        Ok(results)
    }

    /// Refreshes the planner's statistics of the entity and index tables, in the
    /// background: no write waits for it.
    fn refresh_statistics(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let analyzed = match pool.get().await {
                Ok(c) => c
                    .batch_execute(
                        "ANALYZE entities, entity_types, attr_index, attr_values, geo_attr",
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = analyzed {
                tracing::warn!(error = %e, "planner statistics not refreshed");
            }
        });
    }

    /// Applies one operation to the call's entities in memory: the write core
    /// ([`crate::apply`]) decides, and its outcome is queued for the flush. Returns
    /// (what the mutation reports, how many notifications it queued). An error is
    /// this operation's alone: nothing of it is kept.
    fn apply(
        &self,
        batch: &mut Batch,
        tenant: &str,
        op: WriteOp,
        watched: bool,
    ) -> StoreResult<(Applied, usize)> {
        if let HistoryWrite::Instances(instances) = &op.history {
            for (_, inst) in instances {
                let json =
                    serde_json::to_string(inst).map_err(|e| StoreError::Other(e.to_string()))?;
                refuse_nul(&json)?;
            }
        }
        for put in &op.records {
            for (key, value) in &put.records {
                refuse_nul(&Value::String(key.clone()).to_string())?;
                refuse_nul(&value.to_string())?;
            }
        }
        let entity_id = op.entity_id.clone();
        let slot = batch.slots.entry(entity_id.clone()).or_default();
        if let Some(e) = &slot.corrupt {
            return Err(StoreError::Other(format!(
                "corrupt entity {entity_id}: {e}"
            )));
        }
        let outcome = crate::apply(op, slot.entity.clone(), watched)?;
        // Everything that can refuse the operation runs before anything is queued.
        let doc = match outcome.after() {
            Some(entity) => {
                let doc =
                    serde_json::to_string(entity).map_err(|e| StoreError::Other(e.to_string()))?;
                refuse_nul(&doc)?;
                Some(doc)
            }
            None => None,
        };
        batch.registry.check(&outcome.records)?;
        let Some(slot) = batch.slots.get_mut(&entity_id) else {
            return Err(StoreError::Other("entity slot lost".into()));
        };
        match &outcome.effect {
            Effect::Unchanged => {}
            Effect::Deleted => {
                if let Some(rowid) = slot.rowid.take() {
                    // Whatever this call queued for the entity goes with it, and so
                    // does what it had in the database (its history with it, the
                    // NGSI-LD default).
                    batch.dead.insert(rowid);
                    if slot.stored.as_ref().is_some_and(|(r, _)| *r == rowid) {
                        slot.stored_gone = true;
                    }
                }
                slot.entity = None;
            }
            Effect::Created(entity) | Effect::Changed(entity) => {
                let rowid = match slot.rowid {
                    Some(rowid) => rowid,
                    None => {
                        // A placeholder, numbered from the sequence at flush time.
                        batch.created += 1;
                        let rowid = -batch.created;
                        slot.rowid = Some(rowid);
                        rowid
                    }
                };
                for (name, inst) in &outcome.history {
                    batch.history.push(rowid, name, inst);
                }
                for d in &outcome.deletions {
                    let doc = serde_json::to_string(&d.instance())
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                    batch.deletions.push(PendingDeletion {
                        rowid,
                        deletion: d.clone(),
                        doc,
                    });
                }
                slot.doc = doc;
                slot.entity = Some(Entity::clone(entity));
            }
        }
        if outcome.wrote() {
            slot.dirty = true;
            batch.changed = true;
        }
        batch.registry.queue(&outcome.records);
        let mut fired = 0;
        if let Some((before, after)) = outcome.watched_change() {
            let now = ngsi::entity::now();
            let notifications = match self.watchers.lock() {
                Ok(mut w) => w
                    .get_mut(tenant)
                    .map(|(_, w)| w.fire(before, after, now))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            for n in notifications {
                batch.outbox.subscription.push(n.subscription);
                batch.outbox.entity.push(entity_id.clone());
                batch.outbox.payload.push(n.payload.to_string());
                batch.outbox.created.push(ms(now));
                fired += 1;
            }
        }
        Ok((outcome.applied, fired))
    }

    pub(super) async fn edit(
        &self,
        tenant: &str,
        edit: HistoryEdit,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let entity_id = match &edit {
            HistoryEdit::DeleteAttribute { entity_id, .. }
            | HistoryEdit::DeleteInstance { entity_id, .. }
            | HistoryEdit::ReplaceInstance { entity_id, .. } => entity_id,
        };
        let Some(rowid) = super::read::entity_rowid(&tx, tenant, entity_id).await? else {
            return Ok(0);
        };
        let n = match &edit {
            HistoryEdit::DeleteAttribute {
                name, dataset_id, ..
            } => {
                // Its instances and the records of its deletions.
                let mut n = 0;
                for table in ["attr_history", "attr_deletions"] {
                    n += match dataset_id {
                        None => {
                            tx.execute(
                                &format!("DELETE FROM {table} WHERE entity = $1 AND name = $2"),
                                &[&rowid, name],
                            )
                            .await
                        }
                        Some(d) => {
                            tx.execute(
                                &format!(
                                    "DELETE FROM {table} WHERE entity = $1 AND name = $2 AND dataset IS NOT DISTINCT FROM $3"
                                ),
                                &[&rowid, name, d],
                            )
                            .await
                        }
                    }
                    .map_err(pg_error)?;
                }
                Ok(n)
            }
            HistoryEdit::DeleteInstance { name, instance, .. } => {
                tx.execute(
                    "DELETE FROM attr_history WHERE id = $1 AND entity = $2 AND name = $3",
                    &[instance, &rowid, name],
                )
                .await
            }
            HistoryEdit::ReplaceInstance {
                name,
                instance,
                attribute,
                ..
            } => {
                let json = serde_json::to_string(attribute)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                refuse_nul(&json)?;
                // The row may move to another month's partition: delete and insert
                // under the same id.
                let gone = tx
                    .execute(
                        "DELETE FROM attr_history WHERE id = $1 AND entity = $2 AND name = $3",
                        &[instance, &rowid, name],
                    )
                    .await
                    .map_err(pg_error)?;
                if gone > 0 {
                    let row = HistoryRow::of(attribute);
                    self.ensure_months(&[month_of(row.t)]).await;
                    tx.execute(
                        "INSERT INTO attr_history (id, entity, name, dataset, t, written, num, txt, unit, doc)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)",
                        &[
                            instance,
                            &rowid,
                            name,
                            &attribute.dataset_id,
                            &row.t,
                            &row.written,
                            &row.num,
                            &row.txt,
                            &row.unit,
                            &row.doc,
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                }
                Ok(gone)
            }
        }
        .map_err(pg_error)?;
        if let Some(record) = audit.filter(|_| n > 0) {
            super::audit::insert(&tx, &record).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n)
    }

    /// One step of a retention purge: for each of the next `max_entities` entities of
    /// the tenant, its cutoff from its types, then its instances before it.
    pub(super) async fn purge(
        &self,
        tenant: &str,
        cutoffs: &RetentionCutoffs,
        after: i64,
        max_entities: usize,
    ) -> StoreResult<PurgeStep> {
        let max_entities = max_entities.max(1);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let limit = i64::try_from(max_entities).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                "SELECT e.rowid, coalesce(array_agg(t.type) FILTER (WHERE t.type IS NOT NULL), '{}')
                 FROM (SELECT rowid FROM entities WHERE tenant = $1 AND rowid > $2 ORDER BY rowid LIMIT $3) e
                 LEFT JOIN entity_types t ON t.tenant = $1 AND t.entity = e.rowid
                 GROUP BY e.rowid ORDER BY e.rowid",
                &[&tenant, &after, &limit],
            )
            .await
            .map_err(pg_error)?;
        let mut deleted = 0u64;
        let mut last = None;
        for row in &rows {
            let rowid: i64 = row.get(0);
            let types: Vec<String> = row.get(1);
            last = Some(rowid);
            // The longest retention among the entity's types with a rule, else the
            // default.
            let cutoff = cutoffs
                .by_type
                .iter()
                .filter(|(t, _)| types.contains(t))
                .map(|(_, c)| *c)
                .min()
                .or(cutoffs.default);
            let Some(cutoff) = cutoff else {
                continue;
            };
            for sql in [
                "DELETE FROM attr_history WHERE entity = $1 AND t < $2",
                "DELETE FROM attr_deletions WHERE entity = $1 AND at < $2",
            ] {
                deleted += tx
                    .execute(sql, &[&rowid, &ms(cutoff)])
                    .await
                    .map_err(pg_error)?;
            }
        }
        tx.commit().await.map_err(pg_error)?;
        let next = (rows.len() == max_entities).then_some(last).flatten();
        Ok(PurgeStep { deleted, next })
    }
}

/// An instance's history columns ([`instance_columns`], with times as timestamps).
struct HistoryRow {
    t: DateTime<Utc>,
    written: DateTime<Utc>,
    num: Option<f64>,
    txt: Option<String>,
    unit: Option<String>,
    doc: Option<String>,
}

impl HistoryRow {
    fn of(inst: &ngsi::Attribute) -> HistoryRow {
        let (t, written, num, txt, unit, doc) = instance_columns(inst);
        let time = |v: i64| DateTime::from_timestamp_millis(v).unwrap_or_default();
        HistoryRow {
            t: time(t),
            written: time(written),
            num,
            txt,
            unit,
            doc,
        }
    }
}

/// A text as the value index keeps it: whole, or its longest prefix of at most
/// [`INDEXED_TEXT_BYTES`] that ends on a character.
fn indexed_text(text: &str) -> &str {
    if text.len() <= INDEXED_TEXT_BYTES {
        return text;
    }
    let mut end = INDEXED_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One entity as a call sees it: as read at the start, and as its operations left it.
#[derive(Default)]
struct Slot {
    /// The row read at the start of the call: (rowid, entity).
    stored: Option<(i64, Entity)>,
    /// The stored document did not parse: every operation on the entity fails.
    corrupt: Option<String>,
    /// The stored row is deleted by this call (with its index and history rows).
    stored_gone: bool,
    /// The current row: the stored one, or a placeholder (< 0) for a new row.
    rowid: Option<i64>,
    entity: Option<Entity>,
    /// The current entity as JSON, checked for U+0000.
    doc: Option<String>,
    /// Written by an operation of this call.
    dirty: bool,
}

/// What one call writes, gathered operation by operation and sent at the end as one
/// statement per table.
#[derive(Default)]
struct Batch {
    slots: BTreeMap<String, Slot>,
    /// New rows so far; row n (from 1) has placeholder rowid -n until flushed.
    created: i64,
    /// Rows deleted by this call (stored or placeholders): their queued history goes.
    dead: BTreeSet<i64>,
    history: PendingHistory,
    /// The attribute instances the call's operations removed.
    deletions: Vec<PendingDeletion>,
    registry: PendingRegistry,
    outbox: OutboxColumns,
    changed: bool,
    notified: usize,
    /// Entity rows inserted by the flush.
    inserted: u64,
}

/// A deletion to record: the entity row, and the deletion with the instance shown
/// for it, as JSON.
struct PendingDeletion {
    rowid: i64,
    deletion: crate::Deletion,
    doc: String,
}

#[derive(Default)]
struct PendingHistory(Vec<(i64, String, Option<String>, HistoryRow)>);

impl PendingHistory {
    fn push(&mut self, rowid: i64, name: &str, inst: &ngsi::Attribute) {
        self.0.push((
            rowid,
            name.to_string(),
            inst.dataset_id.clone(),
            HistoryRow::of(inst),
        ));
    }
}

/// Records of deletions as the columns of one multi-row INSERT.
#[derive(Default)]
struct DeletionColumns {
    entity: Vec<i64>,
    name: Vec<String>,
    dataset: Vec<Option<String>>,
    at: Vec<DateTime<Utc>>,
    doc: Vec<String>,
}

/// History rows as the columns of one multi-row INSERT.
#[derive(Default)]
struct HistoryColumns {
    entity: Vec<i64>,
    name: Vec<String>,
    dataset: Vec<Option<String>>,
    t: Vec<DateTime<Utc>>,
    written: Vec<DateTime<Utc>>,
    num: Vec<Option<f64>>,
    txt: Vec<Option<String>>,
    unit: Vec<Option<String>>,
    doc: Vec<Option<String>>,
}

#[derive(Default)]
struct OutboxColumns {
    subscription: Vec<String>,
    entity: Vec<String>,
    payload: Vec<String>,
    created: Vec<DateTime<Utc>>,
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// Statements sent together and answered together: one round trip for all of them.
/// PostgreSQL runs them in the order sent, each seeing the ones before.
struct Pipeline<'a> {
    tx: &'a Transaction<'a>,
    steps: Vec<(Statement, Vec<Param<'a>>)>,
}

impl<'a> Pipeline<'a> {
    fn new(tx: &'a Transaction<'a>) -> Pipeline<'a> {
        Pipeline {
            tx,
            steps: Vec::new(),
        }
    }

    /// Adds a statement, prepared once per connection (a statement sent as text is
    /// parsed and planned again each time, and costs a round trip of its own).
    async fn add(&mut self, sql: &str, params: &[Param<'a>]) -> Result<(), tokio_postgres::Error> {
        let statement = self.tx.prepare_cached(sql).await?;
        self.steps.push((statement, params.to_vec()));
        Ok(())
    }

    /// Sends every statement, then waits for all the answers. The futures are
    /// polled in order, so the statements go out in the order they were added.
    async fn run(self) -> Result<(), tokio_postgres::Error> {
        let tx = self.tx;
        try_join_all(self.steps.iter().map(|(s, p)| tx.execute(s, p))).await?;
        Ok(())
    }
}

impl Batch {
    /// Locks the entities `ids` and reads their rows, one statement each, sent
    /// together with the read of the tenant's subscriptions version (None when the
    /// tenant has no row yet).
    async fn read(
        tx: &Transaction<'_>,
        tenant: &str,
        ids: Vec<&str>,
    ) -> Result<(Batch, Option<i64>), tokio_postgres::Error> {
        let mut batch = Batch::default();
        let version = tx
            .prepare_cached("SELECT subscriptions_version FROM tenants WHERE name = $1")
            .await?;
        if ids.is_empty() {
            let version = tx.query_opt(&version, &[&tenant]).await?;
            return Ok((batch, version.map(|r| r.get(0))));
        }
        // Two nodes creating the same entity wait for each other here (an existing
        // row is locked as well by FOR UPDATE). Taken in the order of the lock keys,
        // so that two calls sharing entities cannot deadlock; the lock calls run
        // after the sort (PostgreSQL evaluates volatile output columns last).
        // The read is sent with the locks (one round trip) and runs once they are
        // held, with a snapshot of its own: it sees a row another call committed
        // while this one waited.
        let keys: Vec<String> = ids.iter().map(|id| format!("{tenant}\u{1f}{id}")).collect();
        let lock = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(k) FROM
                   (SELECT DISTINCT hashtextextended(key, 0) AS k FROM unnest($1::text[]) AS key) s
                 ORDER BY k",
            )
            .await?;
        let select = tx
            .prepare_cached(
                "SELECT rowid, id, doc::text FROM entities WHERE tenant = $1 AND id = ANY($2)
                 ORDER BY rowid FOR UPDATE",
            )
            .await?;
        let (version, _, rows) = try_join3(
            tx.query_opt(&version, &[&tenant]),
            tx.execute(&lock, &[&keys]),
            tx.query(&select, &[&tenant, &ids]),
        )
        .await?;
        for row in rows {
            let (rowid, id, doc): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
            let slot = batch.slots.entry(id).or_default();
            match serde_json::from_str::<Entity>(&doc) {
                Ok(entity) => {
                    slot.rowid = Some(rowid);
                    slot.entity = Some(entity.clone());
                    slot.stored = Some((rowid, entity));
                }
                Err(e) => slot.corrupt = Some(e.to_string()),
            }
        }
        Ok((batch, version.map(|r| r.get(0))))
    }

    /// Writes what the call's operations changed.
    async fn flush(
        &mut self,
        store: &PostgresStore,
        tx: &Transaction<'_>,
        tenant: &str,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.changed && self.registry.rows.is_empty() {
            return Ok(());
        }
        let fresh: Vec<i64> = if self.created > 0 {
            let numbers = tx
                .prepare_cached(
                    "SELECT nextval(pg_get_serial_sequence('entities', 'rowid'))
                     FROM generate_series(1, $1::bigint) ORDER BY 1",
                )
                .await?;
            tx.query(&numbers, &[&self.created])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        } else {
            Vec::new()
        };
        // Placeholder -n is the n-th new row, in the order the operations made them.
        let real = |rowid: i64| -> i64 {
            if rowid < 0 {
                usize::try_from(-rowid - 1)
                    .ok()
                    .and_then(|i| fresh.get(i).copied())
                    .unwrap_or(rowid)
            } else {
                rowid
            }
        };
        let mut deleted: Vec<i64> = Vec::new();
        let (mut updated, mut inserted) = (EntityColumns::default(), EntityColumns::default());
        let mut index = IndexChanges::default();
        let no_rows = IndexRows::default();
        let left_out = store.values.left_out();
        for (id, slot) in &self.slots {
            if !slot.dirty {
                continue;
            }
            let stored = slot.stored.as_ref();
            if slot.stored_gone
                && let Some((rowid, _)) = stored
            {
                deleted.push(*rowid);
            }
            let (Some(rowid), Some(entity), Some(doc)) = (slot.rowid, &slot.entity, &slot.doc)
            else {
                continue;
            };
            let new_rows = IndexRows::of(entity, &left_out);
            match stored {
                Some((stored_rowid, old)) if *stored_rowid == rowid => {
                    updated.push(rowid, id, doc, entity.modified_at);
                    index.diff(rowid, &IndexRows::of(old, &left_out), &new_rows);
                }
                _ => {
                    inserted.push(real(rowid), id, doc, entity.modified_at);
                    index.diff(real(rowid), &no_rows, &new_rows);
                }
            }
        }
        self.inserted = inserted.rowid.len() as u64;
        let mut history = HistoryColumns::default();
        for (rowid, name, dataset, row) in std::mem::take(&mut self.history.0) {
            if self.dead.contains(&rowid) {
                continue;
            }
            history.entity.push(real(rowid));
            history.name.push(name);
            history.dataset.push(dataset);
            history.t.push(row.t);
            history.written.push(row.written);
            history.num.push(row.num);
            history.txt.push(row.txt);
            history.unit.push(row.unit);
            history.doc.push(row.doc);
        }
        let mut deletions = DeletionColumns::default();
        for d in std::mem::take(&mut self.deletions) {
            if self.dead.contains(&d.rowid) {
                continue;
            }
            deletions.entity.push(real(d.rowid));
            deletions.name.push(d.deletion.name);
            deletions.dataset.push(d.deletion.dataset_id);
            deletions.at.push(ms(d.deletion.at));
            deletions.doc.push(d.doc);
        }
        if !history.t.is_empty() {
            let months: Vec<i64> = history.t.iter().map(|t| month_of(*t)).collect();
            store.ensure_months(&months).await;
        }
        let tenant: Param = &tenant;
        let mut p = Pipeline::new(tx);
        if self.notified > 0 {
            // Taken after the entity locks (one order for all, so no deadlock) and
            // before the outbox rows get their ids, held until the commit.
            p.add("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
                .await?;
        }
        if !deleted.is_empty() {
            for sql in [
                "DELETE FROM entity_types WHERE entity = ANY($1)",
                "DELETE FROM attr_index WHERE entity = ANY($1)",
                "DELETE FROM attr_values WHERE entity = ANY($1)",
                "DELETE FROM geo_attr WHERE entity = ANY($1)",
                // The history goes with the entity (the NGSI-LD default).
                "DELETE FROM attr_history WHERE entity = ANY($1)",
                "DELETE FROM attr_deletions WHERE entity = ANY($1)",
                "DELETE FROM entities WHERE rowid = ANY($1)",
            ] {
                p.add(sql, &[&deleted]).await?;
            }
        }
        if !updated.rowid.is_empty() {
            p.add(
                "UPDATE entities e SET doc = u.doc::jsonb, modified_at = u.modified_at
                 FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS u(rowid, doc, modified_at)
                 WHERE e.rowid = u.rowid",
                &[&updated.rowid, &updated.doc, &updated.modified_at],
            )
            .await?;
        }
        if !inserted.rowid.is_empty() {
            p.add(
                "INSERT INTO entities (rowid, tenant, id, doc, modified_at)
                 SELECT rowid, $1, id, doc::jsonb, modified_at
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
                      AS u(rowid, id, doc, modified_at)",
                &[
                    tenant,
                    &inserted.rowid,
                    &inserted.id,
                    &inserted.doc,
                    &inserted.modified_at,
                ],
            )
            .await?;
        }
        index.write(&mut p, tenant).await?;
        if !history.entity.is_empty() {
            p.add(
                "INSERT INTO attr_history (entity, name, dataset, t, written, num, txt, unit, doc)
                 SELECT entity, name, dataset, t, written, num, txt, unit, doc::jsonb
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[],
                             $5::timestamptz[], $6::float8[], $7::text[], $8::text[], $9::text[])
                      AS r(entity, name, dataset, t, written, num, txt, unit, doc)",
                &[
                    &history.entity,
                    &history.name,
                    &history.dataset,
                    &history.t,
                    &history.written,
                    &history.num,
                    &history.txt,
                    &history.unit,
                    &history.doc,
                ],
            )
            .await?;
        }
        if !deletions.entity.is_empty() {
            p.add(
                "INSERT INTO attr_deletions (entity, name, dataset, at, doc)
                 SELECT entity, name, dataset, at, doc::jsonb
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                      AS r(entity, name, dataset, at, doc)",
                &[
                    &deletions.entity,
                    &deletions.name,
                    &deletions.dataset,
                    &deletions.at,
                    &deletions.doc,
                ],
            )
            .await?;
        }
        let outbox = &self.outbox;
        if !outbox.subscription.is_empty() {
            // In the order the operations fired them: the ids follow the array.
            p.add(
                "INSERT INTO outbox (tenant, subscription, entity, payload, created_at, next_attempt_at)
                 SELECT $1, subscription, entity, payload::jsonb, created_at, created_at
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[])
                      WITH ORDINALITY AS n(subscription, entity, payload, created_at, k)
                 ORDER BY k",
                &[
                    tenant,
                    &outbox.subscription,
                    &outbox.entity,
                    &outbox.payload,
                    &outbox.created,
                ],
            )
            .await?;
        }
        let registry = self.registry.columns();
        if !registry.key.is_empty() {
            p.add(
                "INSERT INTO registry (collection, tenant, key, value, modified_at)
                 SELECT collection, tenant, key, value::jsonb, now()
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                      AS r(collection, tenant, key, value)
                 ON CONFLICT (collection, tenant, key)
                 DO UPDATE SET value = excluded.value, modified_at = excluded.modified_at",
                &[
                    &registry.collection,
                    &registry.tenant,
                    &registry.key,
                    &registry.value,
                ],
            )
            .await?;
            // Other nodes drop what they cached of these collections.
            for collection in &registry.collections {
                p.add(
                    "SELECT pg_notify($1, $2)",
                    &[&super::control::REGISTRY_CHANNEL, collection],
                )
                .await?;
            }
        }
        p.run().await
    }
}

/// The registry records a call's operations write ([`WriteOp::records`]): which of
/// their keys hold a record (read and locked at the start of the call, then as the
/// accepted operations leave them), and the rows to write.
#[derive(Default)]
struct PendingRegistry {
    taken: BTreeSet<(String, String, String)>,
    /// The value of each key, the last operation's when several write it.
    rows: BTreeMap<(String, String, String), String>,
}

/// The registry rows of a call, as the columns of one statement.
struct RegistryColumns<'a> {
    collection: Vec<&'a str>,
    tenant: Vec<&'a str>,
    key: Vec<&'a str>,
    value: Vec<&'a str>,
    collections: BTreeSet<&'a str>,
}

impl PendingRegistry {
    /// The keys the operations' records may not take or must find, each once, in
    /// order (the order they are locked in).
    fn keys(ops: &[WriteOp]) -> Vec<(String, String, String)> {
        ops.iter()
            .flat_map(|op| &op.records)
            .filter(|put| put.mode != RegistryWrite::Upsert)
            .flat_map(|put| {
                put.records
                    .iter()
                    .map(|(key, _)| (put.collection.clone(), put.tenant.clone(), key.clone()))
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Locks and reads which of `keys` hold a record; a concurrent put of the same
    /// key waits for this call.
    async fn read(
        tx: &Transaction<'_>,
        keys: Vec<(String, String, String)>,
    ) -> Result<PendingRegistry, tokio_postgres::Error> {
        let mut pending = PendingRegistry::default();
        if keys.is_empty() {
            return Ok(pending);
        }
        let mut columns: [Vec<&str>; 3] = Default::default();
        for (c, t, k) in &keys {
            columns[0].push(c);
            columns[1].push(t);
            columns[2].push(k);
        }
        let rows = tx
            .query(
                "SELECT r.collection, r.tenant, r.key FROM registry r
                 JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(collection, tenant, key)
                   ON r.collection = k.collection AND r.tenant = k.tenant AND r.key = k.key
                 ORDER BY 1, 2, 3 FOR UPDATE OF r",
                &[&columns[0], &columns[1], &columns[2]],
            )
            .await?;
        pending.taken = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(pending)
    }

    /// Refuses an operation's records as their [`RegistryWrite`] says.
    fn check(&self, puts: &[RegistryPut]) -> StoreResult<()> {
        for put in puts {
            let keys = put.records.iter().map(|(k, _)| k.as_str());
            let taken = |key: &str| {
                self.taken
                    .contains(&(put.collection.clone(), put.tenant.clone(), key.to_string()))
            };
            if let Some(refused) = crate::registry::refusal(put.mode, keys, taken) {
                return Err(StoreError::Rejected(refused));
            }
        }
        Ok(())
    }

    /// Queues an accepted operation's records.
    fn queue(&mut self, puts: &[RegistryPut]) {
        for put in puts {
            for (key, value) in &put.records {
                let at = (put.collection.clone(), put.tenant.clone(), key.clone());
                self.taken.insert(at.clone());
                self.rows.insert(at, value.to_string());
            }
        }
    }

    fn columns(&self) -> RegistryColumns<'_> {
        let mut out = RegistryColumns {
            collection: Vec::new(),
            tenant: Vec::new(),
            key: Vec::new(),
            value: Vec::new(),
            collections: BTreeSet::new(),
        };
        for ((collection, tenant, key), value) in &self.rows {
            out.collection.push(collection);
            out.tenant.push(tenant);
            out.key.push(key);
            out.value.push(value);
            out.collections.insert(collection);
        }
        out
    }
}

#[derive(Default)]
struct EntityColumns<'a> {
    rowid: Vec<i64>,
    id: Vec<&'a str>,
    doc: Vec<&'a str>,
    modified_at: Vec<DateTime<Utc>>,
}

impl<'a> EntityColumns<'a> {
    fn push(&mut self, rowid: i64, id: &'a str, doc: &'a str, modified_at: DateTime<Utc>) {
        self.rowid.push(rowid);
        self.id.push(id);
        self.doc.push(doc);
        self.modified_at.push(modified_at);
    }
}

/// (entity, name) pairs: the rows of these attributes (or these types) go.
#[derive(Default)]
struct Keys {
    entity: Vec<i64>,
    name: Vec<String>,
}

impl Keys {
    fn push(&mut self, entity: i64, name: &str) {
        self.entity.push(entity);
        self.name.push(name.to_string());
    }
}

/// Rows of `attr_values` to insert.
#[derive(Default)]
struct ValueColumns {
    keys: Keys,
    k: Vec<i32>,
    num: Vec<Option<f64>>,
    txt: Vec<Option<String>>,
}

/// The index rows a call deletes and inserts, as the columns of one statement each.
#[derive(Default)]
struct IndexChanges {
    types_gone: Keys,
    types_new: Keys,
    kinds_gone: Keys,
    kinds_new: (Keys, Vec<i32>, Vec<&'static str>),
    values_gone: Keys,
    values_new: ValueColumns,
    geo_gone: Keys,
    geo_new: (Keys, Vec<String>),
}

impl IndexChanges {
    /// The rows that turn the index rows `old` of an entity into `new`, attribute by
    /// attribute, touching only what differs.
    fn diff(&mut self, rowid: i64, old: &IndexRows, new: &IndexRows) {
        if new.types != old.types {
            for t in old.types.iter().filter(|t| !new.types.contains(t)) {
                self.types_gone.push(rowid, t);
            }
            for t in new.types.iter().filter(|t| !old.types.contains(t)) {
                self.types_new.push(rowid, t);
            }
        }
        let names: BTreeSet<&String> = old.attrs.keys().chain(new.attrs.keys()).collect();
        let empty = AttrRows::default();
        for name in names {
            let (before, after) = (old.attrs.get(name), new.attrs.get(name));
            if before == after {
                continue;
            }
            let (before, after) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
            if before.kinds != after.kinds {
                if !before.kinds.is_empty() {
                    self.kinds_gone.push(rowid, name);
                }
                for (seq, kind) in after.kinds.iter().enumerate() {
                    self.kinds_new.0.push(rowid, name);
                    self.kinds_new
                        .1
                        .push(i32::try_from(seq).unwrap_or(i32::MAX));
                    self.kinds_new.2.push(kind);
                }
            }
            if before.values != after.values {
                if !before.values.is_empty() {
                    self.values_gone.push(rowid, name);
                }
                for (k, (num, txt)) in after.values.iter().enumerate() {
                    let values = &mut self.values_new;
                    values.keys.push(rowid, name);
                    values.k.push(i32::try_from(k).unwrap_or(i32::MAX));
                    values.num.push(*num);
                    values
                        .txt
                        .push(txt.as_deref().map(|t| indexed_text(t).to_string()));
                }
            }
            if before.geometries != after.geometries {
                if !before.geometries.is_empty() {
                    self.geo_gone.push(rowid, name);
                }
                for g in &after.geometries {
                    self.geo_new.0.push(rowid, name);
                    self.geo_new.1.push(g.clone());
                }
            }
        }
    }

    /// Deletes, then inserts: an attribute's new rows may take the keys of its old.
    async fn write<'a>(
        &'a self,
        p: &mut Pipeline<'a>,
        tenant: Param<'a>,
    ) -> Result<(), tokio_postgres::Error> {
        let gone = &self.types_gone;
        if !gone.entity.is_empty() {
            p.add(
                "DELETE FROM entity_types t USING unnest($2::bigint[], $3::text[]) AS d(entity, type)
                 WHERE t.tenant = $1 AND t.type = d.type AND t.entity = d.entity",
                &[tenant, &gone.entity, &gone.name],
            )
            .await?;
        }
        for (keys, table) in [
            (&self.kinds_gone, "attr_index"),
            (&self.values_gone, "attr_values"),
            (&self.geo_gone, "geo_attr"),
        ] {
            if keys.entity.is_empty() {
                continue;
            }
            // The table names are this code's own, never input.
            let sql = format!(
                "DELETE FROM {table} a USING unnest($1::bigint[], $2::text[]) AS d(entity, name)
                 WHERE a.entity = d.entity AND a.name = d.name"
            );
            p.add(&sql, &[&keys.entity, &keys.name]).await?;
        }
        let new = &self.types_new;
        if !new.entity.is_empty() {
            p.add(
                "INSERT INTO entity_types (tenant, type, entity)
                 SELECT $1, type, entity FROM unnest($2::bigint[], $3::text[]) AS d(entity, type)
                 ON CONFLICT DO NOTHING",
                &[tenant, &new.entity, &new.name],
            )
            .await?;
        }
        let (keys, seq, kind) = &self.kinds_new;
        if !keys.entity.is_empty() {
            p.add(
                "INSERT INTO attr_index (entity, name, seq, kind)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[])",
                &[&keys.entity, &keys.name, seq, kind],
            )
            .await?;
        }
        let ValueColumns { keys, k, num, txt } = &self.values_new;
        if !keys.entity.is_empty() {
            p.add(
                "INSERT INTO attr_values (entity, name, k, num, txt)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::float8[], $5::text[])",
                &[&keys.entity, &keys.name, k, num, txt],
            )
            .await?;
        }
        let (keys, geojson) = &self.geo_new;
        if !keys.entity.is_empty() {
            p.add(
                "INSERT INTO geo_attr (entity, name, geom)
                 SELECT entity, name, ST_SetSRID(ST_GeomFromGeoJSON(g), 4326)
                 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(entity, name, g)",
                &[&keys.entity, &keys.name, geojson],
            )
            .await?;
        }
        Ok(())
    }
}
