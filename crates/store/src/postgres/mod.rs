//! The PostgreSQL + PostGIS store, for a province in production and for several
//! stateless dothi nodes sharing one database.
//!
//! Every call takes a connection from a pool and runs in its own transaction: a
//! write locks each entity it changes (`SELECT … FOR UPDATE`, behind a transaction
//! advisory lock on the entity's key so that two nodes creating one entity at once
//! wait for each other), applies the mutation, rewrites the index rows, history and
//! outbox rows, and commits before it answers. Geometry is PostGIS, entity bodies
//! jsonb, the history a table partitioned by month. Migrations are embedded and
//! applied on open under an advisory lock.

mod audit;
mod control;
mod read;
mod schema;
mod subscriptions;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use ngsi::Entity;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::plan::Param;
use crate::value_index::ValueIndexPolicy;
use crate::watch::TenantWatchers;
use crate::{
    AggregatePage, AggregateQuery, Applied, AttributeSummary, EntityQuery, HistoryEdit,
    HistoryPage, HistoryQuery, PurgeStep, QueryPage, RetentionCutoffs, StoreError, StoreResult,
    TypeSummary, WriteOp,
};
use crate::{AuditStore, ClusterStore, EntityStore, HistoryStore, SubscriptionStore};
use crate::{OutboxRow, StoredSubscription, SubscriptionPage, SubscriptionWrite};

/// Connections kept by one node.
const POOL_SIZE: usize = 16;
/// How long connecting may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a request waits for a pooled connection when all are busy.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Idle time before TCP keepalives probe a connection (a vanished server is noticed).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

pub struct PostgresStore {
    pool: Pool,
    /// For the rare statement that must not run on a pooled connection (creating a
    /// history partition while a write holds one).
    config: tokio_postgres::Config,
    /// Notified after each commit that added notifications to the outbox (passed on
    /// by [`control::announce_commits`]).
    outbox: Arc<tokio::sync::Notify>,
    /// What the control connection shares: the notifier's wake-up, the registry
    /// generation, the duties.
    control: Arc<control::Shared>,
    /// The control connection and the commit announcer, ended with the store.
    _tasks: [control::AbortOnDrop; 2],
    /// Compiled subscriptions per tenant, with the tenant's subscriptions version
    /// they were loaded at.
    watchers: Mutex<HashMap<String, (i64, TenantWatchers)>>,
    /// Months (year * 12 + month - 1) known to have a history partition.
    months: Mutex<HashSet<i64>>,
    /// Rows added since the planner's statistics were refreshed.
    growth: write::Growth,
    /// The attributes whose values the value index leaves out.
    values: ValueIndexPolicy,
    /// This node, as the claimant of the outbox rows it takes: the URL's
    /// `application_name` when given, else the host name. A node restarted under the
    /// same name takes back at once the rows it had claimed.
    node: String,
}

/// The database's errors mapped in one place: lost connections, lock conflicts and
/// overload are `Unavailable` (the caller may retry), the rest faults.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(e.to_string());
    };
    let code = db.code();
    let transient = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::DISK_FULL,
        SqlState::QUERY_CANCELED,
    ];
    if transient.contains(code) {
        StoreError::Unavailable(db.to_string())
    } else {
        StoreError::Other(db.to_string())
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {e}"))
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let fits = match self {
            Param::Int(_) => <i64 as ToSql>::accepts(ty),
            Param::Real(_) => <f64 as ToSql>::accepts(ty),
            Param::Text(_) => <String as ToSql>::accepts(ty),
        };
        if !fits {
            return Err(format!("parameter {self:?} bound to a column of type {ty}").into());
        }
        match self {
            Param::Int(v) => v.to_sql(ty, out),
            Param::Real(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <f64 as ToSql>::accepts(ty) || <String as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Parameters as the client takes them.
fn params(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// The row a query of one row at most finds, if any.
async fn optional_row(
    c: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<tokio_postgres::Row>> {
    Ok(rows(c, sql, params).await?.into_iter().next())
}

/// The number a `SELECT count(*) …` query finds.
async fn count_of(
    c: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let n: i64 = c.query_one(sql, params).await.map_err(pg_error)?.get(0);
    Ok(n.max(0) as u64)
}

/// The rows of a query, the database's errors mapped.
async fn rows(
    c: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<tokio_postgres::Row>> {
    c.query(sql, params).await.map_err(pg_error)
}

/// Refuses a JSON text holding the character U+0000 (escaped `\u0000`), which
/// PostgreSQL stores neither in text nor in jsonb: the write is refused as bad data
/// rather than failing in the database.
fn refuse_nul(json: &str) -> StoreResult<()> {
    let bytes = json.as_bytes();
    for (i, _) in json.match_indices("\\u0000") {
        // An escape only when preceded by an even number of backslashes.
        let backslashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return Err(StoreError::Rejected(ngsi::Error::bad_data(
                "a text holds the character U+0000, which this store cannot keep",
            )));
        }
    }
    Ok(())
}

/// A time as the history keeps it: to the millisecond, as SQLite does.
fn ms(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

async fn migrate(client: &mut deadpool_postgres::Object) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    // Held until commit: a second node starting at once waits here, then finds the
    // schema current.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&schema::MIGRATION_LOCK],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        .await
        .map_err(pg_error)?;
    let version: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let version = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
            .await
            .map_err(pg_error)?;
        tracing::info!(version = i + 1, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(pg_error)
}

/// The name this node claims outbox rows under.
fn node_name(config: &tokio_postgres::Config) -> String {
    if let Some(name) = config.get_application_name() {
        return name.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dothi".into())
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user@host/db`), applying
    /// migrations.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        // A database that went away fails requests fast (503) instead of hanging
        // them; the URL's own settings win.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(KEEPALIVE_IDLE);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Other(format!("cannot set up the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        migrate(&mut client).await?;
        let left_out: Vec<String> = client
            .query("SELECT name FROM unindexed_values", &[])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        let node = node_name(&config);
        let outbox = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(control::Shared::new());
        let tasks = [
            control::AbortOnDrop(tokio::spawn(control::run(config.clone(), shared.clone()))),
            control::AbortOnDrop(tokio::spawn(control::announce_commits(
                outbox.clone(),
                shared.clone(),
                pool.clone(),
            ))),
        ];
        let store = PostgresStore {
            pool,
            config,
            outbox,
            control: shared,
            _tasks: tasks,
            watchers: Mutex::new(HashMap::new()),
            months: Mutex::new(HashSet::new()),
            growth: Default::default(),
            values: ValueIndexPolicy::new(left_out),
            node,
        };
        // This month's and the next one's partitions, ahead of the writes.
        let now = chrono::Utc::now();
        let this = write::month_of(now);
        store.ensure_months(&[this, this + 1]).await;
        Ok(store)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

#[async_trait]
impl EntityStore for PostgresStore {
    async fn write_audited(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        self.write_ops(tenant, ops, audit).await
    }

    async fn tenant_exists(&self, tenant: &str) -> StoreResult<bool> {
        if tenant.is_empty() {
            return Ok(true);
        }
        let c = self.client().await?;
        let row = optional_row(&c, "SELECT 1 FROM tenants WHERE name = $1", &[&tenant]).await?;
        Ok(row.is_some())
    }

    async fn tenants(&self) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT name FROM tenants WHERE name <> '' ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn get(&self, tenant: &str, id: &str) -> StoreResult<Option<Entity>> {
        let c = self.client().await?;
        read::get(&c, tenant, id).await
    }

    async fn query(&self, tenant: &str, query: EntityQuery) -> StoreResult<QueryPage> {
        let c = self.client().await?;
        read::query(&c, tenant, &query, &self.values.left_out()).await
    }

    async fn types(&self, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
        let c = self.client().await?;
        read::types(&c, tenant).await
    }

    async fn attributes(&self, tenant: &str) -> StoreResult<Vec<AttributeSummary>> {
        let c = self.client().await?;
        read::attributes(&c, tenant).await
    }

    async fn cached_context(&self, url: &str) -> StoreResult<Option<String>> {
        let c = self.client().await?;
        let row = optional_row(&c, "SELECT body FROM contexts WHERE url = $1", &[&url]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn cache_context(&self, url: &str, body: &str) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO contexts (url, body, fetched_at) VALUES ($1, $2, now())
             ON CONFLICT (url) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at",
            &[&url, &body],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn forget_context(&self, url: &str) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM contexts WHERE url = $1", &[&url])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn leave_out_of_value_index(&self, names: &[String]) -> StoreResult<()> {
        let names = self.values.declare(names)?;
        if names.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO unindexed_values (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&names],
        )
        .await
        .map_err(pg_error)?;
        tx.execute("DELETE FROM attr_values WHERE name = ANY($1)", &[&names])
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }
}

#[async_trait]
impl HistoryStore for PostgresStore {
    async fn history(&self, tenant: &str, query: HistoryQuery) -> StoreResult<Option<HistoryPage>> {
        let c = self.client().await?;
        read::history(&c, tenant, &query).await
    }

    async fn aggregate(
        &self,
        tenant: &str,
        query: AggregateQuery,
    ) -> StoreResult<Option<AggregatePage>> {
        let c = self.client().await?;
        read::aggregate(&c, tenant, &query).await
    }

    async fn edit_history_audited(
        &self,
        tenant: &str,
        edit: HistoryEdit,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<u64> {
        self.edit(tenant, edit, audit).await
    }

    async fn purge_history(
        &self,
        tenant: &str,
        cutoffs: RetentionCutoffs,
        after: i64,
        max_entities: usize,
    ) -> StoreResult<PurgeStep> {
        self.purge(tenant, &cutoffs, after, max_entities).await
    }
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
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
        self.delete_subscription(tenant, id, audit).await
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
        self.delivered(row, at).await
    }

    async fn outbox_failed(
        &self,
        row: i64,
        at: chrono::DateTime<chrono::Utc>,
        retry_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.failed(row, at, retry_at).await
    }

    async fn outbox_push(
        &self,
        tenant: &str,
        subscription_id: &str,
        entity_id: &str,
        payload: serde_json::Value,
    ) -> StoreResult<()> {
        self.push(tenant, subscription_id, entity_id, payload).await
    }

    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.control.wake.clone()
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn audit_append(&self, records: Vec<crate::AuditRecord>) -> StoreResult<()> {
        self.append_audit(records).await
    }

    async fn audit_list(&self, filter: crate::AuditFilter) -> StoreResult<Vec<crate::StoredAudit>> {
        self.list_audit(filter).await
    }

    async fn audit_seal(&self, max: usize) -> StoreResult<usize> {
        self.seal_audit(max).await
    }

    async fn audit_chain(&self, after: i64, max: usize) -> StoreResult<crate::ChainPage> {
        self.audit_chain_page(after, max).await
    }

    async fn audit_purge(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        max: usize,
    ) -> StoreResult<u64> {
        self.purge_audit(before, max).await
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    fn duties(&self) -> tokio::sync::watch::Receiver<bool> {
        let duties = self.control.duties.subscribe();
        if !self
            .control
            .wanted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.control.poke.notify_one();
        }
        duties
    }

    async fn announce(&self, message: &str) -> StoreResult<()> {
        if message.len() > crate::MAX_ANNOUNCEMENT_BYTES {
            return Err(StoreError::Other(format!(
                "an announcement of {} bytes is longer than {}",
                message.len(),
                crate::MAX_ANNOUNCEMENT_BYTES
            )));
        }
        let c = self.client().await?;
        c.execute(
            "SELECT pg_notify($1, $2)",
            &[&control::ANNOUNCE_CHANNEL, &message],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<str>>> {
        Some(self.control.announcements.subscribe())
    }
}
