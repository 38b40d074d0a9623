//! Writes: entity mutations with their index, history and outbox rows, history edits
//! and purges, and the monthly partitions of the history.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use deadpool_postgres::Transaction;
use ngsi::Entity;
use serde_json::Value;

use super::{PostgresStore, ms, pg_error, refuse_nul};
use crate::plan::INDEXED_TEXT_BYTES;
use crate::rows::{AttrRows, IndexRows};
use crate::sqlite::history_columns;
use crate::watch::TenantWatchers;
use crate::{
    Applied, Change, HistoryEdit, HistoryWrite, PurgeStep, RetentionCutoffs, StoreError,
    StoreResult, WriteOp,
};

/// The advisory lock that orders the outbox: held from the start of a transaction
/// that may add notifications until its commit, so that outbox ids grow in commit
/// order (a reader that has seen row n never misses a row below n committed later).
pub(super) const OUTBOX_LOCK: i64 = 0x646f_7468_695f_6f62; // "dothi_ob"

/// The lock serializing the creation of history partitions between nodes.
const PARTITION_LOCK: i64 = 0x646f_7468_695f_7061; // "dothi_pa"

/// A month as a number: year * 12 + month - 1.
pub(super) fn month_of(t: DateTime<Utc>) -> i64 {
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

fn month_start(month: i64) -> Option<DateTime<Utc>> {
    let year = i32::try_from(month.div_euclid(12)).ok()?;
    let m = u32::try_from(month.rem_euclid(12)).ok()? + 1;
    Utc.with_ymd_and_hms(year, m, 1, 0, 0, 0).single()
}

/// How a failed statement ends one operation: refused (nothing of it written) or a
/// fault that rolls the whole call back.
enum OpError {
    Op(StoreError),
    Fault(StoreError),
}

fn fault(e: tokio_postgres::Error) -> OpError {
    OpError::Fault(pg_error(e))
}

/// The instances a write records: those not among the old attributes (compared
/// whole: a rewritten instance has a new modifiedAt), or those the client provided.
fn recorded<'a>(
    entity: &'a Entity,
    old: Option<&BTreeMap<String, Vec<ngsi::Attribute>>>,
    history: &'a HistoryWrite,
) -> Vec<(&'a str, &'a ngsi::Attribute)> {
    match history {
        HistoryWrite::Instances(instances) => {
            instances.iter().map(|(n, i)| (n.as_str(), i)).collect()
        }
        HistoryWrite::Changes => entity
            .attrs
            .iter()
            .flat_map(|(name, instances)| {
                let before = old.and_then(|a| a.get(name));
                instances
                    .iter()
                    .filter(move |i| !before.is_some_and(|o| o.contains(i)))
                    .map(move |i| (name.as_str(), i))
            })
            .collect(),
    }
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

    /// The tenant's compiled subscriptions, reloaded when another call (or node)
    /// changed them; None when none can fire.
    async fn watching(&self, tx: &Transaction<'_>, tenant: &str) -> StoreResult<bool> {
        let version: i64 = tx
            .query_opt(
                "SELECT subscriptions_version FROM tenants WHERE name = $1",
                &[&tenant],
            )
            .await
            .map_err(pg_error)?
            .map_or(0, |r| r.get(0));
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

    pub(super) async fn write_ops(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let watched = self.watching(&tx, tenant).await?;
        if watched {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
                .await
                .map_err(pg_error)?;
        }
        let mut results = Vec::with_capacity(ops.len());
        let mut changed = false;
        let mut notified = 0usize;
        for op in ops {
            match self.apply(&tx, tenant, op, watched).await {
                Ok((applied, wrote, fired)) => {
                    changed |= wrote;
                    notified += fired;
                    results.push(Ok(applied));
                }
                Err(OpError::Op(e)) => results.push(Err(e)),
                Err(OpError::Fault(e)) => {
                    tracing::error!(error = %e, "PostgreSQL write failed; rolled back");
                    drop(tx);
                    // Throttling times of notifications that were rolled back.
                    self.forget_watchers(tenant);
                    return Err(e);
                }
            }
        }
        if changed {
            tx.execute(
                "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&tenant],
            )
            .await
            .map_err(pg_error)?;
        }
        if let Err(e) = tx.commit().await {
            self.forget_watchers(tenant);
            return Err(pg_error(e));
        }
        if notified > 0 {
            self.outbox.notify_one();
        }
        Ok(results)
    }

    /// Applies one mutation: (what it reports, whether it wrote, how many
    /// notifications it queued).
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        op: WriteOp,
        watched: bool,
    ) -> Result<(Applied, bool, usize), OpError> {
        // Two nodes creating the same entity wait for each other here; an existing
        // row is locked as well by FOR UPDATE.
        let key = format!("{tenant}\u{1f}{}", op.entity_id);
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(fault)?;
        let current = tx
            .query_opt(
                "SELECT rowid, doc::text FROM entities WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&tenant, &op.entity_id],
            )
            .await
            .map_err(fault)?;
        let (rowid, before) = match current {
            Some(row) => {
                let doc: String = row.get(1);
                let entity: Entity = serde_json::from_str(&doc).map_err(|e| {
                    OpError::Op(StoreError::Other(format!(
                        "corrupt entity {}: {e}",
                        op.entity_id
                    )))
                })?;
                (Some(row.get::<_, i64>(0)), Some(entity))
            }
            None => (None, None),
        };
        if let HistoryWrite::Instances(instances) = &op.history {
            for (_, inst) in instances {
                let json = serde_json::to_string(inst)
                    .map_err(|e| OpError::Op(StoreError::Other(e.to_string())))?;
                refuse_nul(&json).map_err(OpError::Op)?;
            }
        }
        let old_rows = before.as_ref().map(IndexRows::of);
        let old_attrs = match (&op.history, &before) {
            (HistoryWrite::Changes, Some(e)) => Some(e.attrs.clone()),
            _ => None,
        };
        let kept = if watched { before.clone() } else { None };
        let (change, applied) = (op.mutate)(before).map_err(|e| OpError::Op(e.into()))?;
        let after = match change {
            Change::Unchanged => return Ok((applied, false, 0)),
            Change::Delete => {
                if let Some(rowid) = rowid {
                    for sql in [
                        "DELETE FROM entity_types WHERE entity = $1",
                        "DELETE FROM attr_index WHERE entity = $1",
                        "DELETE FROM attr_values WHERE entity = $1",
                        "DELETE FROM geo_attr WHERE entity = $1",
                        // The history goes with the entity (the NGSI-LD default).
                        "DELETE FROM attr_history WHERE entity = $1",
                        "DELETE FROM entities WHERE rowid = $1",
                    ] {
                        tx.execute(sql, &[&rowid]).await.map_err(fault)?;
                    }
                }
                None
            }
            Change::Put(entity) => {
                if entity.id != op.entity_id {
                    return Err(OpError::Op(StoreError::Other(
                        "a mutation changed the entity id".into(),
                    )));
                }
                let doc = serde_json::to_string(&entity)
                    .map_err(|e| OpError::Op(StoreError::Other(e.to_string())))?;
                refuse_nul(&doc).map_err(OpError::Op)?;
                let rowid = match rowid {
                    Some(rowid) => {
                        tx.execute(
                            "UPDATE entities SET doc = $2::text::jsonb, modified_at = $3 WHERE rowid = $1",
                            &[&rowid, &doc, &entity.modified_at],
                        )
                        .await
                        .map_err(fault)?;
                        rowid
                    }
                    None => tx
                        .query_one(
                            "INSERT INTO entities (tenant, id, doc, modified_at) VALUES ($1, $2, $3::text::jsonb, $4) RETURNING rowid",
                            &[&tenant, &entity.id, &doc, &entity.modified_at],
                        )
                        .await
                        .map_err(fault)?
                        .get(0),
                };
                let new_rows = IndexRows::of(&entity);
                replace_rows(tx, tenant, rowid, old_rows.as_ref(), &new_rows)
                    .await
                    .map_err(fault)?;
                let instances = recorded(&entity, old_attrs.as_ref(), &op.history);
                self.record(tx, rowid, &instances).await.map_err(fault)?;
                Some(entity)
            }
        };
        let mut fired = 0;
        if watched && (after.is_some() || kept.is_some()) {
            let now = ngsi::entity::now();
            let notifications = match self.watchers.lock() {
                Ok(mut w) => w
                    .get_mut(tenant)
                    .map(|(_, w)| w.fire(kept.as_ref(), after.as_ref(), now))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let entity_id = op.entity_id.clone();
            for n in notifications {
                tx.execute(
                    "INSERT INTO outbox (tenant, subscription, entity, payload, created_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4::text::jsonb, $5, $5)",
                    &[&tenant, &n.subscription, &entity_id, &n.payload.to_string(), &ms(now)],
                )
                .await
                .map_err(fault)?;
                fired += 1;
            }
        }
        Ok((applied, true, fired))
    }

    /// Appends instances to the history, creating their months' partitions first.
    async fn record(
        &self,
        tx: &Transaction<'_>,
        rowid: i64,
        instances: &[(&str, &ngsi::Attribute)],
    ) -> Result<(), tokio_postgres::Error> {
        if instances.is_empty() {
            return Ok(());
        }
        let months: Vec<i64> = instances
            .iter()
            .map(|(_, i)| month_of(i.observed_at.unwrap_or(i.modified_at)))
            .collect();
        self.ensure_months(&months).await;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO attr_history (entity, name, dataset, t, written, num, txt, unit, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)",
            )
            .await?;
        for (name, inst) in instances {
            let row = HistoryRow::of(inst);
            tx.execute(
                &stmt,
                &[
                    &rowid,
                    name,
                    &inst.dataset_id,
                    &row.t,
                    &row.written,
                    &row.num,
                    &row.txt,
                    &row.unit,
                    &row.doc,
                ],
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn edit(&self, tenant: &str, edit: HistoryEdit) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let entity_id = match &edit {
            HistoryEdit::DeleteAttribute { entity_id, .. }
            | HistoryEdit::DeleteInstance { entity_id, .. }
            | HistoryEdit::ReplaceInstance { entity_id, .. } => entity_id,
        };
        let Some(rowid) = tx
            .query_opt(
                "SELECT rowid FROM entities WHERE tenant = $1 AND id = $2",
                &[&tenant, entity_id],
            )
            .await
            .map_err(pg_error)?
            .map(|r| r.get::<_, i64>(0))
        else {
            return Ok(0);
        };
        let n = match &edit {
            HistoryEdit::DeleteAttribute {
                name, dataset_id, ..
            } => match dataset_id {
                None => tx
                    .execute(
                        "DELETE FROM attr_history WHERE entity = $1 AND name = $2",
                        &[&rowid, name],
                    )
                    .await,
                Some(d) => tx
                    .execute(
                        "DELETE FROM attr_history WHERE entity = $1 AND name = $2 AND dataset IS NOT DISTINCT FROM $3",
                        &[&rowid, name, d],
                    )
                    .await,
            },
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
            deleted += tx
                .execute(
                    "DELETE FROM attr_history WHERE entity = $1 AND t < $2",
                    &[&rowid, &ms(cutoff)],
                )
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        let next = (rows.len() == max_entities).then_some(last).flatten();
        Ok(PurgeStep { deleted, next })
    }
}

/// An instance's history columns (the SQLite store's, with times as timestamps).
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
        let (t, written, num, txt, unit, doc) = history_columns(inst);
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

/// Turns the index rows of `old` into those of `new`, attribute by attribute,
/// touching only what differs.
async fn replace_rows(
    tx: &Transaction<'_>,
    tenant: &str,
    rowid: i64,
    old: Option<&IndexRows>,
    new: &IndexRows,
) -> Result<(), tokio_postgres::Error> {
    let empty_rows = IndexRows::default();
    let old = old.unwrap_or(&empty_rows);
    if new.types != old.types {
        for t in old.types.iter().filter(|t| !new.types.contains(t)) {
            tx.execute(
                "DELETE FROM entity_types WHERE tenant = $1 AND type = $2 AND entity = $3",
                &[&tenant, t, &rowid],
            )
            .await?;
        }
        for t in new.types.iter().filter(|t| !old.types.contains(t)) {
            tx.execute(
                "INSERT INTO entity_types (tenant, type, entity) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&tenant, t, &rowid],
            )
            .await?;
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
                tx.execute(
                    "DELETE FROM attr_index WHERE entity = $1 AND name = $2",
                    &[&rowid, name],
                )
                .await?;
            }
            for (seq, kind) in after.kinds.iter().enumerate() {
                let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                tx.execute(
                    "INSERT INTO attr_index (entity, name, seq, kind) VALUES ($1, $2, $3, $4)",
                    &[&rowid, name, &seq, kind],
                )
                .await?;
            }
        }
        if before.values != after.values {
            if !before.values.is_empty() {
                tx.execute(
                    "DELETE FROM attr_values WHERE entity = $1 AND name = $2",
                    &[&rowid, name],
                )
                .await?;
            }
            for (k, (num, txt)) in after.values.iter().enumerate() {
                let k = i32::try_from(k).unwrap_or(i32::MAX);
                let txt = txt.as_deref().map(indexed_text);
                tx.execute(
                    "INSERT INTO attr_values (entity, name, k, num, txt) VALUES ($1, $2, $3, $4, $5)",
                    &[&rowid, name, &k, num, &txt],
                )
                .await?;
            }
        }
        if before.geometries != after.geometries {
            if !before.geometries.is_empty() {
                tx.execute(
                    "DELETE FROM geo_attr WHERE entity = $1 AND name = $2",
                    &[&rowid, name],
                )
                .await?;
            }
            for g in &after.geometries {
                tx.execute(
                    "INSERT INTO geo_attr (entity, name, geom) VALUES ($1, $2, ST_SetSRID(ST_GeomFromGeoJSON($3), 4326))",
                    &[&rowid, name, g],
                )
                .await?;
            }
        }
    }
    Ok(())
}
