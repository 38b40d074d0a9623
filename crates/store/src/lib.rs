//! The `Store` trait: where the hub keeps entities, and how it asks for them.
//!
//! A store persists whole entities (in the expanded form of [`ngsi::Entity`]) and the
//! indexes that make queries fast. It applies changes as *mutations*: a function from
//! the entity as it is (if any) to what it becomes, run inside the store's transaction
//! so that read-modify-write is atomic whatever the backend. A write returns only once
//! it is durable.
//!
//! [`Store`] is the sum of narrow facets ([`EntityStore`], [`HistoryStore`],
//! [`RegistryStore`], [`SubscriptionStore`], [`AuditStore`], [`ClusterStore`]), so that a
//! component can be given only the one it needs. What an operation does to its entity
//! is decided once, by the write core ([`apply()`]); a backend only persists it.
//!
//! **Invariant:** what a query returns agrees with [`ngsi::filter`]: indexes may narrow
//! the candidates, the model's own evaluation decides.

mod apply;
pub mod audit;
pub mod history;
mod plan;
pub mod postgres;
mod project;
mod query;
pub mod registry;
mod rows;
pub mod sqlite;
pub mod subscription;
mod value_index;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use ngsi::entity::UpdateResult;
use ngsi::{AttrKind, Entity};

pub use apply::{Effect, Outcome, apply};
pub use audit::{AuditFilter, AuditRecord, ChainPage, StoredAudit};
pub use history::{
    AggregateQuery, Deletion, HistoryEdit, HistoryPage, HistoryQuery, HistoryWrite, PeriodStats,
    PurgeStep, RetentionCutoffs, StoredInstance, TimeField, TimeRange,
};
pub use query::EntityQuery;
pub use registry::{RegistryPage, RegistryPut, RegistryRecord, RegistryWrite};
pub use subscription::{
    Delivery, OutboxRow, StoredSubscription, SubscriptionPage, SubscriptionWrite,
};

/// The default tenant (no `NGSILD-Tenant` header).
pub const DEFAULT_TENANT: &str = "";

/// What a store can fail with, besides a mutation refusing the change.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The mutation refused the change (not found, already exists, bad data...).
    #[error(transparent)]
    Rejected(#[from] ngsi::Error),
    /// The database cannot be reached or is failing; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A fault of the store itself.
    #[error("store fault: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a mutation decides.
#[derive(Debug)]
pub enum Change {
    /// Store this entity (created or changed). Shared, so that whoever watches the
    /// write keeps the state it committed without copying it.
    Put(Arc<Entity>),
    /// Delete the entity.
    Delete,
    /// Nothing to write.
    Unchanged,
}

/// What a mutation reports back to the caller, beside the change.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// Whether the entity was created by this mutation.
    pub created: bool,
    pub result: UpdateResult,
}

/// A change to one entity, decided from its current state inside the transaction.
pub type Mutation =
    Box<dyn FnOnce(Option<Entity>) -> Result<(Change, Applied), ngsi::Error> + Send>;

/// Told, inside the transaction, what a mutation did: the entity before it (None when
/// there was none) and the change. Called only when the mutation succeeds.
pub type Observer = Box<dyn FnOnce(Option<&Entity>, &Change) + Send>;

/// One entity's mutation in a write.
pub struct WriteOp {
    pub entity_id: String,
    pub mutate: Mutation,
    /// Who watches the mutation (the hub's change feed): it is shown the entity before
    /// from the copy the write core keeps anyway for the history, so that it need not
    /// copy the entity again.
    pub observe: Option<Observer>,
    /// What the write adds to the temporal history (in the same transaction).
    pub history: HistoryWrite,
    /// Registry records written with the entity, in the same transaction: all of them
    /// and the entity's change, or none (a refused record fails the operation).
    pub records: Vec<RegistryPut>,
}

impl WriteOp {
    pub fn new(
        entity_id: impl Into<String>,
        mutate: impl FnOnce(Option<Entity>) -> Result<(Change, Applied), ngsi::Error> + Send + 'static,
    ) -> Self {
        WriteOp {
            entity_id: entity_id.into(),
            mutate: Box::new(mutate),
            observe: None,
            history: HistoryWrite::Changes,
            records: Vec::new(),
        }
    }

    /// Records exactly these instances (expanded name, instance) in the history, instead
    /// of the instances the mutation changes.
    pub fn with_history(mut self, instances: Vec<(String, ngsi::Attribute)>) -> Self {
        self.history = HistoryWrite::Instances(instances);
        self
    }

    /// Writes these registry records with the operation, all or nothing: when the
    /// mutation refuses, nothing is written; when the registry refuses a record (a
    /// `Create` of a taken key, a `Replace` of a free one), the operation fails with
    /// that refusal and its entity change is not written either.
    pub fn with_records(mut self, put: RegistryPut) -> Self {
        self.records.push(put);
        self
    }
}

/// Per-period statistics of an entity's attributes: expanded name → datasetId → periods.
pub type AggregatePage = BTreeMap<String, BTreeMap<Option<String>, Vec<PeriodStats>>>;

/// A page of query results.
#[derive(Debug, Default)]
pub struct QueryPage {
    pub entities: Vec<Entity>,
    /// Each entity's position in the store's order (entity by entity), to read on
    /// after it with [`EntityQuery::after`].
    pub positions: Vec<i64>,
    /// The total number of matches, when asked for.
    pub count: Option<u64>,
    /// With [`EntityQuery::as_documents`]: the entities as stored documents, in place
    /// of `entities`.
    pub documents: Documents,
}

impl QueryPage {
    /// Where the next page starts, when this one is full (`limit` entities): the
    /// position of its last entity.
    pub fn next(&self, limit: usize) -> Option<i64> {
        (limit > 0 && self.positions.len() >= limit)
            .then(|| self.positions.last().copied())
            .flatten()
    }

    /// The page's entities as stored documents (when they were read as entities).
    pub fn entities_as_documents(&mut self) -> StoreResult<()> {
        for e in std::mem::take(&mut self.entities) {
            self.documents.push_entity(&e)?;
        }
        Ok(())
    }
}

/// Entities in their stored form (the serde form of [`Entity`]: its JSON with short
/// member names), one after another in one text: a page of them is one allocation,
/// which a reader parses as little of as it needs (`ngsi::stored`). Each holds only
/// the attributes its query reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Documents {
    text: String,
    ends: Vec<usize>,
}

impl Documents {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The documents, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let doc = &self.text[start..end];
            start = end;
            doc
        })
    }

    /// Adds a document as it is.
    pub(crate) fn push(&mut self, doc: &str) {
        self.text.push_str(doc);
        self.ends.push(self.text.len());
    }

    /// Adds a document that `write` writes at the end of the text; nothing when it
    /// fails.
    pub(crate) fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut String) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.text.len();
        match write(&mut self.text) {
            Ok(()) => {
                self.ends.push(self.text.len());
                Ok(())
            }
            Err(e) => {
                self.text.truncate(start);
                Err(e)
            }
        }
    }

    /// Adds an entity, written in its stored form.
    pub(crate) fn push_entity(&mut self, e: &Entity) -> StoreResult<()> {
        let doc = serde_json::to_string(e).map_err(|e| StoreError::Other(e.to_string()))?;
        self.push(&doc);
        Ok(())
    }
}

/// An entity type in use, for discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSummary {
    pub type_iri: String,
    pub entity_count: u64,
    /// Attribute name → kinds seen for it in entities of this type.
    pub attributes: BTreeMap<String, BTreeSet<AttrKind>>,
}

/// An attribute name in use, for discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSummary {
    pub name_iri: String,
    /// How many instances of it exist.
    pub attribute_count: u64,
    pub type_names: BTreeSet<String>,
    pub kinds: BTreeSet<AttrKind>,
}

impl TypeSummary {
    /// Counts `n` entities of type `type_iri` in a discovery listing.
    pub(crate) fn count(out: &mut BTreeMap<String, TypeSummary>, type_iri: String, n: i64) {
        out.insert(
            type_iri.clone(),
            TypeSummary {
                type_iri,
                entity_count: n.max(0) as u64,
                attributes: BTreeMap::new(),
            },
        );
    }

    /// Notes that entities of type `type_iri` (already counted) hold attribute `name`
    /// of kind `kind` (as the index rows name it).
    pub(crate) fn note_attribute(
        out: &mut BTreeMap<String, TypeSummary>,
        type_iri: &str,
        name: String,
        kind: &str,
    ) {
        if let (Some(summary), Some(kind)) = (out.get_mut(type_iri), rows::kind_of(kind)) {
            summary.attributes.entry(name).or_default().insert(kind);
        }
    }
}

impl AttributeSummary {
    /// Notes that attribute `name` (already counted) is held by entities of type
    /// `type_name`.
    pub(crate) fn note_type(
        out: &mut BTreeMap<String, AttributeSummary>,
        name: &str,
        type_name: String,
    ) {
        if let Some(entry) = out.get_mut(name) {
            entry.type_names.insert(type_name);
        }
    }

    /// Counts `n` instances of attribute `name` of kind `kind` (as the index rows name
    /// it) in a discovery listing.
    pub(crate) fn count(
        out: &mut BTreeMap<String, AttributeSummary>,
        name: String,
        kind: &str,
        n: i64,
    ) {
        let entry = out.entry(name.clone()).or_insert_with(|| AttributeSummary {
            name_iri: name,
            attribute_count: 0,
            type_names: Default::default(),
            kinds: Default::default(),
        });
        entry.attribute_count += n.max(0) as u64;
        if let Some(k) = rows::kind_of(kind) {
            entry.kinds.insert(k);
        }
    }
}

/// Entities and their tenants: writes (with the history, registry records and
/// notifications they carry), reads, queries, discovery, and the cache of remote
/// @contexts.
#[async_trait]
pub trait EntityStore: Send + Sync + 'static {
    /// Applies mutations, each atomically and independently (one failing does not undo
    /// the others), and returns once all changes are durable. Creates the tenant on its
    /// first change.
    async fn write(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        self.write_audited(tenant, ops, None).await
    }

    /// [`EntityStore::write`], and the audit record of the write inserted in the same
    /// transaction, settled with the ids of the operations that failed
    /// ([`AuditRecord::settle`]): nothing commits without its record.
    async fn write_audited(
        &self,
        tenant: &str,
        ops: Vec<WriteOp>,
        audit: Option<AuditRecord>,
    ) -> StoreResult<Vec<StoreResult<Applied>>>;

    /// Whether the tenant exists (the default tenant always does).
    async fn tenant_exists(&self, tenant: &str) -> StoreResult<bool>;

    /// The names of all tenants.
    async fn tenants(&self) -> StoreResult<Vec<String>>;

    async fn get(&self, tenant: &str, id: &str) -> StoreResult<Option<Entity>>;

    async fn query(&self, tenant: &str, query: EntityQuery) -> StoreResult<QueryPage>;

    async fn types(&self, tenant: &str) -> StoreResult<Vec<TypeSummary>>;

    async fn attributes(&self, tenant: &str) -> StoreResult<Vec<AttributeSummary>>;

    /// A cached remote @context document.
    async fn cached_context(&self, url: &str) -> StoreResult<Option<String>>;

    async fn cache_context(&self, url: &str, body: &str) -> StoreResult<()>;

    /// Drops a cached @context document (deleted, or to be fetched again).
    async fn forget_context(&self, url: &str) -> StoreResult<()>;

    /// Leaves the values of the attributes `names` (expanded, in every tenant) out of
    /// the value index from now on, and drops the rows it holds of them: for
    /// attributes that no query of a service compares, so that their writes cost less
    /// (`value_index`). A `q` on them is still answered, by testing candidates. Kept
    /// in the database; a name once left out stays so. Nodes of one database must
    /// declare the same names.
    async fn leave_out_of_value_index(&self, names: &[String]) -> StoreResult<()>;
}

/// The temporal history: reads, per-period statistics, edits and the retention purge.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// A page of an entity's history; None when the entity does not exist.
    async fn history(&self, tenant: &str, query: HistoryQuery) -> StoreResult<Option<HistoryPage>>;

    /// Per-period statistics of an entity's history, computed by the database; None
    /// when the entity does not exist.
    async fn aggregate(
        &self,
        tenant: &str,
        query: AggregateQuery,
    ) -> StoreResult<Option<AggregatePage>>;

    /// Changes history alone; returns how many instances it changed or deleted.
    async fn edit_history(&self, tenant: &str, edit: HistoryEdit) -> StoreResult<u64> {
        self.edit_history_audited(tenant, edit, None).await
    }

    /// [`HistoryStore::edit_history`], with its audit record inserted in the same transaction
    /// when it changed something.
    async fn edit_history_audited(
        &self,
        tenant: &str,
        edit: HistoryEdit,
        audit: Option<AuditRecord>,
    ) -> StoreResult<u64>;

    /// One bounded step of a retention purge: the history of up to `max_entities`
    /// entities after entity row `after` (0 to start), cut at their cutoff.
    async fn purge_history(
        &self,
        tenant: &str,
        cutoffs: RetentionCutoffs,
        after: i64,
        max_entities: usize,
    ) -> StoreResult<PurgeStep>;
}

/// The registry: components' own JSON records by (collection, tenant, key), never
/// entities.
#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Writes records of the registry (`registry`), all or none, and returns once they
    /// are durable. `Create` refuses with `Rejected(AlreadyExists)` when a key holds a
    /// record, `Replace` with `Rejected(ResourceNotFound)` when one does not.
    async fn registry_put(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, serde_json::Value)>,
        mode: RegistryWrite,
    ) -> StoreResult<()>;

    /// One registry record.
    async fn registry_get(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<serde_json::Value>>;

    /// The records under `key` in every tenant, by tenant.
    async fn registry_find(&self, collection: &str, key: &str) -> StoreResult<Vec<RegistryRecord>>;

    /// A page of one tenant's records in key order, with their total count.
    async fn registry_list(
        &self,
        collection: &str,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<RegistryPage>;

    /// Deletes a registry record, durably; false when there was none.
    async fn registry_delete(&self, collection: &str, tenant: &str, key: &str)
    -> StoreResult<bool>;

    /// A number that moves whenever the registry may have been changed by another
    /// process sharing the store (or notice of such changes may have been missed): a
    /// cache of registry records taken at one value is stale at another. Constant for
    /// an embedded store, which only this process writes.
    fn registry_generation(&self) -> u64 {
        0
    }
}

/// Subscriptions and the outbox of their notifications.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Writes a subscription (`subscription`), durably. `Create` refuses with
    /// `Rejected(AlreadyExists)` when the id holds one, `Replace` with
    /// `Rejected(ResourceNotFound)` when it does not. Changes of the tenant's entities
    /// committed after this call returns are matched against it.
    async fn subscription_put(
        &self,
        tenant: &str,
        subscription: ngsi::subscription::Subscription,
        mode: SubscriptionWrite,
    ) -> StoreResult<()> {
        self.subscription_put_audited(tenant, subscription, mode, None)
            .await
    }

    /// [`SubscriptionStore::subscription_put`], with its audit record in the same transaction.
    async fn subscription_put_audited(
        &self,
        tenant: &str,
        subscription: ngsi::subscription::Subscription,
        mode: SubscriptionWrite,
        audit: Option<AuditRecord>,
    ) -> StoreResult<()>;

    async fn subscription_get(
        &self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<StoredSubscription>>;

    /// A page of the tenant's subscriptions in id order, with their total count.
    async fn subscription_list(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage>;

    /// Deletes a subscription and its undelivered notifications; false when there
    /// was none.
    async fn subscription_delete(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        self.subscription_delete_audited(tenant, id, None).await
    }

    /// [`SubscriptionStore::subscription_delete`], with its audit record in the same transaction
    /// when there was one to delete.
    async fn subscription_delete_audited(
        &self,
        tenant: &str,
        id: &str,
        audit: Option<AuditRecord>,
    ) -> StoreResult<bool>;

    /// Up to `max` notifications due at `now`, in outbox order, at most one per
    /// subscription: the oldest of each (a later one waits until it is delivered,
    /// so that each subscription's notifications arrive in order).
    async fn outbox_due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>>;

    /// Up to `max` notifications after row `after`, in outbox order, due or not
    /// (`next_attempt_at` says when), of every subscription or only of
    /// `subscription` (tenant, id). One query, one snapshot: for a notifier that
    /// keeps the rows it has read in memory.
    async fn outbox_after(
        &self,
        after: i64,
        subscription: Option<(&str, &str)>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>>;

    /// A notification was delivered at `at`: its row goes and its subscription's
    /// counters are updated.
    async fn outbox_delivered(
        &self,
        row: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;

    /// An attempt failed at `at`; the row is tried again from `retry_at`.
    async fn outbox_failed(
        &self,
        row: i64,
        at: chrono::DateTime<chrono::Utc>,
        retry_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;

    /// Queues a notification that no change fired (a periodic one), durably; nothing
    /// is queued when the subscription does not exist.
    async fn outbox_push(
        &self,
        tenant: &str,
        subscription_id: &str,
        entity_id: &str,
        payload: serde_json::Value,
    ) -> StoreResult<()>;

    /// Notified after each commit that added notifications to the outbox (on a
    /// shared database, by any node, when this node holds the [`ClusterStore::duties`]).
    fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify>;
}

/// The audit log: records appended, listed, sealed into the hash chain, purged.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends audit records (logins, refusals, changes of users and keys), durably.
    async fn audit_append(&self, records: Vec<AuditRecord>) -> StoreResult<()>;

    /// Audit records newest first, as the filter says.
    async fn audit_list(&self, filter: AuditFilter) -> StoreResult<Vec<StoredAudit>>;

    /// Seals up to `max` unsealed records in the order they were inserted: each gets
    /// the next sequence number and its chain hash ([`audit::chain_hash`]). Returns
    /// how many it sealed. Run by one process at a time (the duties' holder).
    async fn audit_seal(&self, max: usize) -> StoreResult<usize>;

    /// Up to `max` sealed records after sequence `after`, in order, with the chain's
    /// checkpoint.
    async fn audit_chain(&self, after: i64, max: usize) -> StoreResult<ChainPage>;

    /// Purges up to `max` sealed records older than `before` from the start of the
    /// chain, keeping the last purged one's hash as the checkpoint. Returns how many
    /// it purged.
    async fn audit_purge(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        max: usize,
    ) -> StoreResult<u64>;
}

/// What the processes sharing a store share besides data: the background duties and
/// announcements.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Whether this process holds the background duties that one process among all
    /// those sharing the store runs alone: delivering the outbox, periodic
    /// notifications and the history purge. True while held; it may turn false (the
    /// database went away) and true again. The first call puts this process forward
    /// for them: one that never calls it (a command-line import) never takes them. An
    /// embedded store, which one process owns, holds them at once and for good.
    fn duties(&self) -> tokio::sync::watch::Receiver<bool> {
        tokio::sync::watch::channel(true).1
    }

    /// Passes a message of at most [`MAX_ANNOUNCEMENT_BYTES`] to every process sharing
    /// the store, this one included, without waiting for them (the hub's change feed
    /// crosses nodes this way). Nothing to do for an embedded store.
    async fn announce(&self, message: &str) -> StoreResult<()> {
        let _ = message;
        Ok(())
    }

    /// The messages announced by the processes sharing the store, in order; an empty
    /// one says that messages may have been missed (the connection that receives them
    /// was lost and is back). None for an embedded store, which nobody else shares.
    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<str>>> {
        None
    }
}

/// The storage behind the hub: every facet. Every operation names its tenant;
/// tenants never see each other's data. Implemented for anything that implements
/// every facet; a component that needs one facet takes only that one
/// (`Arc<dyn Store>` upcasts to `Arc<dyn RegistryStore>`).
pub trait Store:
    EntityStore + HistoryStore + RegistryStore + SubscriptionStore + AuditStore + ClusterStore
{
}

impl<
    T: EntityStore
        + HistoryStore
        + RegistryStore
        + SubscriptionStore
        + AuditStore
        + ClusterStore
        + ?Sized,
> Store for T
{
}

/// The largest message [`ClusterStore::announce`] passes (PostgreSQL's `NOTIFY` takes
/// somewhat less than 8,000 bytes).
pub const MAX_ANNOUNCEMENT_BYTES: usize = 7_500;

/// Opens the store a URL names: `sqlite://path/to/file.db` (or `sqlite::memory:`), or
/// `postgres://user@host/db` (`postgresql://` too).
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(path).await?;
        return Ok(std::sync::Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::open(url).await?;
        return Ok(std::sync::Arc::new(store));
    }
    Err(StoreError::Other(format!(
        "unknown store URL {url:?} (expected sqlite://path or postgres://user@host/db)"
    )))
}
