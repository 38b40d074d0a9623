//! The embedded SQLite store: one file, WAL, a single writer thread with group commit
//! and a pool of readers.
//!
//! Writes go to one thread that owns the write connection. It takes every write
//! waiting in its queue, applies them in one transaction, commits once (one fsync for
//! the group: `synchronous=FULL`), then answers them all.
//! So a write is acknowledged only when durable, and many small writes share the cost
//! of a commit. Reads run on their own connections and never wait for the writer.

mod audit;
mod history;
mod hourly;
mod plan;
mod read;
mod registry;
mod schema;
mod subscriptions;
mod write;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ngsi::Entity;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::value_index::ValueIndexPolicy;
use crate::{
    AggregatePage, AggregateQuery, Applied, AttributeSummary, EntityQuery, HistoryEdit,
    HistoryPage, HistoryQuery, PurgeStep, QueryPage, RetentionCutoffs, StoreError, StoreResult,
    TypeSummary, WriteOp,
};
use crate::{AuditStore, ClusterStore, EntityStore, HistoryStore, SubscriptionStore};
use crate::{OutboxRow, StoredSubscription, SubscriptionPage, SubscriptionWrite};

/// The most readers kept open (each with a page cache of 8 MB). Opening one parses
/// the schema: a pool smaller than the usual concurrency (the IoT agent's 32 workers
/// each look up a device per measure) would open and drop connections all the time.
const MAX_IDLE_READERS: usize = 32;

pub struct SqliteStore {
    path: Arc<str>,
    writer: std::sync::mpsc::Sender<write::Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Notified after each commit that added notifications to the outbox.
    outbox: Arc<tokio::sync::Notify>,
    /// The attributes whose values the value index leaves out.
    values: Arc<ValueIndexPolicy>,
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Other(other.to_string()),
    }
}

pub use crate::history::instance_columns as history_columns;
pub use write::{BaselineAttr, BaselineInstance, BaselineRows, baseline_rows};

/// A write connection to a database with this store's schema and settings, for a
/// baseline that writes the same rows as the store with plain SQL (`dothi bench`).
pub fn open_baseline(path: &str) -> rusqlite::Result<Connection> {
    let mut conn = open_connection(path, false)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(format!("store task failed: {e}"))
}

fn open_connection(path: &str, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags)?;
    // Readers never wait long; the writer is the only one that writes, so it waits
    // only for a reader holding the WAL at its start.
    conn.busy_timeout(std::time::Duration::from_secs(if read_only {
        5
    } else {
        30
    }))?;
    // More distinct statements than rusqlite's default cache of 16 run on every
    // connection; re-preparing them was a large share of the write path.
    conn.set_prepared_statement_cache_capacity(128);
    // Page cache per connection (KiB): the writer keeps more of the indexes warm;
    // readers stay small so that memory stays bounded with a full pool.
    conn.pragma_update(None, "cache_size", if read_only { -8_000 } else { -32_000 })?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before the write is acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The writer checkpoints the WAL itself after a commit (SQLite's automatic
        // checkpoint): the WAL then starts afresh between groups and stays short, which
        // keeps reads fast and a restart quick. The file is cut back to this size.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // Checkpoint every 4,000 pages (16 MiB) rather than SQLite's 1,000: the index
        // pages a group dirties are copied into the database once per checkpoint, so
        // fewer checkpoints copy fewer pages in all, while the WAL stays small.
        conn.pragma_update(None, "wal_autocheckpoint", 4_000)?;
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        // IMMEDIATE: take the write lock first, waiting for it. A deferred transaction
        // that reads and then writes fails at once ("database is locked") when another
        // connection commits or checkpoints in between, as a closing store's writer
        // does when the database is reopened straight away.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied SQLite migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applying migrations.
    pub async fn open(path: &str) -> StoreResult<SqliteStore> {
        let path: Arc<str> = Arc::from(path);
        let p = path.clone();
        let conn =
            tokio::task::spawn_blocking(move || -> StoreResult<(Connection, Vec<String>)> {
                if let Some(dir) = Path::new(&*p).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut conn = open_connection(&p, false).map_err(sql_error)?;
                migrate(&mut conn).map_err(sql_error)?;
                conn.execute(
                    "INSERT OR IGNORE INTO tenants (name, created_at) VALUES ('', datetime('now'))",
                    [],
                )
                .map_err(sql_error)?;
                conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002")
                    .map_err(sql_error)?;
                let left_out = conn
                    .prepare("SELECT name FROM unindexed_values")
                    .and_then(|mut s| {
                        s.query_map([], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(sql_error)?;
                Ok((conn, left_out))
            })
            .await
            .map_err(join_error)??;
        let (conn, left_out) = conn;
        let outbox = Arc::new(tokio::sync::Notify::new());
        let values = Arc::new(ValueIndexPolicy::new(left_out));
        let writer = write::spawn(conn, outbox.clone(), values.clone());
        Ok(SqliteStore {
            path,
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            outbox,
            values,
        })
    }

    /// Runs `f` on a reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&path, true).map_err(sql_error)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = readers.lock()
                && v.len() < MAX_IDLE_READERS
            {
                v.push(conn);
            }
            out
        })
        .await
        .map_err(join_error)?
    }

    /// [`SqliteStore::read`] of one tenant's data: `f` is given the tenant's name.
    async fn read_in<T: Send + 'static>(
        &self,
        tenant: &str,
        f: impl FnOnce(&Connection, &str) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let tenant = tenant.to_string();
        self.read(move |c| f(c, &tenant)).await
    }
}

impl SqliteStore {
    /// Sends a job to the writer thread and waits for its answer.
    pub(super) async fn on_writer<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> write::Job,
    ) -> StoreResult<T> {
        let stopped = || StoreError::Unavailable("the writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.writer.send(job(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl EntityStore for SqliteStore {
    async fn write_audited(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        self.on_writer(|reply| write::Job::Write {
            tenant: tenant.to_string(),
            ops,
            audit,
            reply,
        })
        .await
    }

    async fn tenant_exists(&self, tenant: &str) -> StoreResult<bool> {
        self.read_in(tenant, read::tenant_exists).await
    }

    async fn tenants(&self) -> StoreResult<Vec<String>> {
        self.read(read::tenants).await
    }

    async fn get(&self, tenant: &str, id: &str) -> StoreResult<Option<Entity>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |c| read::get(c, &tenant, &id)).await
    }

    async fn query(&self, tenant: &str, query: EntityQuery) -> StoreResult<QueryPage> {
        let tenant = tenant.to_string();
        let left_out = self.values.left_out();
        self.read(move |c| plan::run(c, &tenant, &query, &left_out))
            .await
    }

    async fn types(&self, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
        self.read_in(tenant, read::types).await
    }

    async fn attributes(&self, tenant: &str) -> StoreResult<Vec<AttributeSummary>> {
        self.read_in(tenant, read::attributes).await
    }

    async fn cached_context(&self, url: &str) -> StoreResult<Option<String>> {
        let url = url.to_string();
        self.read(move |c| read::cached_context(c, &url)).await
    }

    async fn cache_context(&self, url: &str, body: &str) -> StoreResult<()> {
        self.on_writer(|reply| write::Job::CacheContext {
            url: url.to_string(),
            body: Some(body.to_string()),
            reply,
        })
        .await
    }

    async fn forget_context(&self, url: &str) -> StoreResult<()> {
        self.on_writer(|reply| write::Job::CacheContext {
            url: url.to_string(),
            body: None,
            reply,
        })
        .await
    }

    async fn leave_out_of_value_index(&self, names: &[String]) -> StoreResult<()> {
        let names = self.values.declare(names)?;
        if names.is_empty() {
            return Ok(());
        }
        self.on_writer(|reply| write::Job::LeaveOutValues { names, reply })
            .await
    }
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn history(&self, tenant: &str, query: HistoryQuery) -> StoreResult<Option<HistoryPage>> {
        self.read_in(tenant, move |c, tenant| history::history(c, tenant, &query))
            .await
    }

    async fn aggregate(
        &self,
        tenant: &str,
        query: AggregateQuery,
    ) -> StoreResult<Option<AggregatePage>> {
        self.read_in(tenant, move |c, tenant| {
            history::aggregate(c, tenant, &query)
        })
        .await
    }

    async fn edit_history_audited(
        &self,
        tenant: &str,
        edit: HistoryEdit,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<u64> {
        self.on_writer(|reply| write::Job::EditHistory {
            tenant: tenant.to_string(),
            edit: Box::new(edit),
            audit,
            reply,
        })
        .await
    }

    async fn purge_history(
        &self,
        tenant: &str,
        cutoffs: RetentionCutoffs,
        after: i64,
        max_entities: usize,
    ) -> StoreResult<PurgeStep> {
        self.on_writer(|reply| write::Job::PurgeHistory {
            tenant: tenant.to_string(),
            cutoffs,
            after,
            max_entities,
            reply,
        })
        .await
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    // Subscriptions and the outbox (`sqlite/subscriptions.rs`).
    async fn subscription_put_audited(
        &self,
        tenant: &str,
        subscription: ngsi::subscription::Subscription,
        mode: SubscriptionWrite,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<()> {
        self.put_subscription(tenant, subscription, mode, audit)
            .await
    }

    async fn subscription_get(
        &self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<StoredSubscription>> {
        self.get_subscription(tenant, id).await
    }

    async fn subscription_list(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage> {
        self.list_subscriptions(tenant, offset, limit).await
    }

    async fn subscription_delete_audited(
        &self,
        tenant: &str,
        id: &str,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<bool> {
        self.subscription_change(
            subscriptions::SubscriptionChange::Delete {
                tenant: tenant.to_string(),
                id: id.to_string(),
            },
            audit,
        )
        .await
    }

    async fn outbox_due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        self.due_notifications(now, max).await
    }

    async fn outbox_after(
        &self,
        after: i64,
        subscription: Option<(&str, &str)>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        self.notifications_after(after, subscription, max).await
    }

    async fn outbox_delivered(
        &self,
        row: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.outbox_change(subscriptions::SubscriptionChange::Delivered { row, at })
            .await
    }

    async fn outbox_failed(
        &self,
        row: i64,
        at: chrono::DateTime<chrono::Utc>,
        retry_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.outbox_change(subscriptions::SubscriptionChange::Failed { row, at, retry_at })
            .await
    }

    async fn outbox_push(
        &self,
        tenant: &str,
        subscription_id: &str,
        entity_id: &str,
        payload: serde_json::Value,
    ) -> StoreResult<()> {
        self.outbox_change(subscriptions::SubscriptionChange::Queue {
            tenant: tenant.to_string(),
            id: subscription_id.to_string(),
            entity_id: entity_id.to_string(),
            payload: payload.to_string(),
            at: ngsi::entity::now(),
        })
        .await
    }

    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_append(&self, records: Vec<crate::AuditRecord>) -> StoreResult<()> {
        self.audit_change(audit::AuditChange::Append(records))
            .await
            .map(|_| ())
    }

    async fn audit_list(&self, filter: crate::AuditFilter) -> StoreResult<Vec<crate::StoredAudit>> {
        self.audit_rows(filter).await
    }

    async fn audit_seal(&self, max: usize) -> StoreResult<usize> {
        self.audit_change(audit::AuditChange::Seal { max })
            .await
            .map(|n| n as usize)
    }

    async fn audit_chain(&self, after: i64, max: usize) -> StoreResult<crate::ChainPage> {
        self.audit_chain_page(after, max).await
    }

    async fn audit_purge(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        max: usize,
    ) -> StoreResult<u64> {
        self.audit_change(audit::AuditChange::Purge { before, max })
            .await
    }
}

/// An embedded store: one process owns it, holds the duties for good and shares no
/// announcements (the defaults).
impl ClusterStore for SqliteStore {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ngsi::Context;
    use ngsi::entity::Reader;
    use ngsi::filter::{GeoFilter, QFilter};
    use ngsi::query::{parse_geoq, parse_q, parse_type_expr};
    use rusqlite::params;

    use super::*;

    /// A database written by schema version 1 (names as text in every index) is
    /// migrated on open, and every kind of query still finds its entities.
    #[tokio::test]
    async fn a_version_1_database_is_migrated_and_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db").display().to_string();
        let ctx = Context::core();
        let reader = Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        };
        let gauge = reader
            .entity(
                &serde_json::json!({
                    "id": "urn:ngsi-ld:Gauge:1", "type": "Gauge",
                    "level": {"type": "Property", "value": 6.5},
                    "river": {"type": "Property", "value": "Thạch Hãn"},
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.19, 16.75]}}
                }),
                None,
            )
            .unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(schema::MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO entities (rowid, tenant, id, types, doc, modified_at) VALUES (1, '', ?1, ?2, ?3, '2026-01-01T00:00:00Z')",
                params![gauge.id, serde_json::to_string(&gauge.types).unwrap(), serde_json::to_string(&gauge).unwrap()],
            )
            .unwrap();
            let (t, level, river, loc) = (
                ctx.expand("Gauge"),
                ctx.expand("level"),
                ctx.expand("river"),
                ctx.expand("location"),
            );
            c.execute("INSERT INTO entity_types VALUES ('', ?1, 1)", params![t])
                .unwrap();
            for (name, kind) in [
                (&level, "Property"),
                (&river, "Property"),
                (&loc, "GeoProperty"),
            ] {
                c.execute(
                    "INSERT INTO attr_index VALUES (1, ?1, 0, ?2)",
                    params![name, kind],
                )
                .unwrap();
            }
            c.execute(
                "INSERT INTO attr_values VALUES (1, ?1, 0, 6.5, NULL)",
                params![level],
            )
            .unwrap();
            c.execute(
                "INSERT INTO attr_values VALUES (1, ?1, 0, NULL, 'Thạch Hãn')",
                params![river],
            )
            .unwrap();
            c.execute("INSERT INTO geo_attr VALUES (1, 1, ?1)", params![loc])
                .unwrap();
            c.execute(
                "INSERT INTO geo_rtree VALUES (1, 107.19, 107.19, 16.75, 16.75)",
                [],
            )
            .unwrap();
        }

        let store = SqliteStore::open(&path).await.unwrap();
        let found = |q: EntityQuery| async {
            let page = store.query("", q).await.unwrap();
            page.entities
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>()
        };
        let one = vec![gauge.id.clone()];
        let of_type = |name: &str| EntityQuery {
            types: Some(parse_type_expr(name).unwrap().map_names(&|n| ctx.expand(n))),
            limit: 10,
            ..Default::default()
        };
        let by_type = of_type("Gauge");
        assert_eq!(found(by_type.clone()).await, one);
        let q = |text: &str| EntityQuery {
            q: Some(QFilter::new(parse_q(text).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
            ..by_type.clone()
        };
        assert_eq!(found(q("level>6;river==\"Thạch Hãn\"")).await, one);
        assert!(found(q("level>7")).await.is_empty());
        let mut near =
            parse_geoq("near;maxDistance==1000", "Point", "[107.19,16.751]", None).unwrap();
        near.geoproperty = ctx.expand(&near.geoproperty);
        let geo = EntityQuery {
            geo: Some(GeoFilter::new(near).unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(found(geo).await, one);
        let attrs = EntityQuery {
            attrs: vec![ctx.expand("river")],
            limit: 10,
            ..Default::default()
        };
        assert_eq!(found(attrs).await, one);

        let types = store.types("").await.unwrap();
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].type_iri, ctx.expand("Gauge"));
        assert_eq!(types[0].entity_count, 1);
        assert_eq!(types[0].attributes.len(), 3);
        let attributes = store.attributes("").await.unwrap();
        let loc = attributes
            .iter()
            .find(|a| a.name_iri == ctx.expand("location"))
            .unwrap();
        assert!(loc.kinds.contains(&ngsi::AttrKind::GeoProperty));
        assert!(loc.type_names.contains(&ctx.expand("Gauge")));

        // Writes after the migration keep working and intern the new names.
        let mut changed = gauge.clone();
        changed.types.push(ctx.expand("Station"));
        let op = crate::WriteOp::new(gauge.id.clone(), move |_| {
            Ok((
                crate::Change::Put(changed.into()),
                crate::Applied::default(),
            ))
        });
        assert!(store.write("", vec![op]).await.unwrap()[0].is_ok());
        assert_eq!(found(of_type("Station")).await, one);
    }
}
