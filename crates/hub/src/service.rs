//! The `Hub` service: every NGSI-LD operation, in-process, on the expanded model.
//!
//! The HTTP layer, and later the IoT agent and the city services, call these methods.
//! Each takes the request's [`Scope`] (tenant and @context) and returns NGSI-LD errors.
//! What a write does to an entity is decided by a rule of [`ngsi::entity::change`]: a
//! write method checks the scope, builds the write from its rule (`rule_write`) and
//! commits it ([`Hub::commit`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ngsi::entity::UpdateResult;
use ngsi::entity::change::{self, Outcome, Write, not_found};
use ngsi::query::ast::TypeExpr;
use ngsi::{Attribute, Context, Entity, Error, ErrorKind};
use serde_json::{Map, Value};
use store::{
    Applied, AttributeSummary, Change, EntityQuery, QueryPage, Store, StoreError, TypeSummary,
    WriteOp,
};

use crate::auth::{Access, Caller, CallerRef};
use crate::changes::{ChangeFeed, EntityChange};
use crate::contexts::ContextResolver;

/// Who asks and in which frame: the tenant, the active @context, and the caller
/// (identity, grants, and the request for the audit log).
#[derive(Clone)]
pub struct Scope {
    pub tenant: String,
    pub ctx: Arc<Context>,
    pub caller: CallerRef,
}

/// One entity of a batch merge: its id, the merge-patch body, and the @context it
/// was sent with.
#[derive(Clone)]
pub struct MergeItem {
    pub id: String,
    pub body: Map<String, Value>,
    pub ctx: Arc<Context>,
}

impl Scope {
    pub fn new(tenant: impl Into<String>, ctx: Arc<Context>, caller: CallerRef) -> Scope {
        Scope {
            tenant: tenant.into(),
            ctx,
            caller,
        }
    }

    /// A component of this process acting with every right in a tenant, under the
    /// core @context (`component` names it in the audit log).
    pub fn system(component: &str, tenant: impl Into<String>) -> Scope {
        Scope::new(tenant, Context::core(), Arc::new(Caller::system(component)))
    }

    /// Checks that the caller may read or write this tenant's data.
    pub fn check(&self, access: Access) -> Result<(), Error> {
        self.caller.check(&self.tenant, access)
    }

    /// Refuses callers limited to entity types, for operations whose reach is not
    /// bounded by types (subscriptions, history edits).
    pub(crate) fn check_unlimited_types(&self) -> Result<(), Error> {
        if self.caller.types.is_some() {
            return Err(Error::forbidden(
                "a grant limited to entity types does not cover this operation",
            ));
        }
        Ok(())
    }
}

/// The registry of the store, and nothing else of it: records of components by
/// (collection, tenant, key), which no NGSI-LD operation returns. It holds the store's
/// registry facet alone, so a component given it (the IoT agent) cannot reach
/// entities, history or subscriptions but through the Hub.
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn store::RegistryStore>,
}

impl Records {
    pub async fn registry_put(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, Value)>,
        mode: store::RegistryWrite,
    ) -> store::StoreResult<()> {
        self.store
            .registry_put(collection, tenant, records, mode)
            .await
    }

    pub async fn registry_get(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> store::StoreResult<Option<Value>> {
        self.store.registry_get(collection, tenant, key).await
    }

    pub async fn registry_find(
        &self,
        collection: &str,
        key: &str,
    ) -> store::StoreResult<Vec<store::RegistryRecord>> {
        self.store.registry_find(collection, key).await
    }

    pub async fn registry_list(
        &self,
        collection: &str,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> store::StoreResult<store::RegistryPage> {
        self.store
            .registry_list(collection, tenant, offset, limit)
            .await
    }

    pub async fn registry_delete(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> store::StoreResult<bool> {
        self.store.registry_delete(collection, tenant, key).await
    }

    pub fn registry_generation(&self) -> u64 {
        self.store.registry_generation()
    }
}

/// The outcome of one entity in a batch.
pub type BatchItem = Result<Applied, Error>;

pub struct Hub {
    store: Arc<dyn Store>,
    pub contexts: ContextResolver,
    changes: ChangeFeed,
    outbound: Arc<crate::outbound::OutboundPolicy>,
    /// Whether entity writes are audited ([`crate::audit::AuditPolicy::record_writes`]).
    audit_writes: bool,
}

/// Store errors as NGSI-LD errors; details of faults are logged, not returned.
pub fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Rejected(e) => e,
        StoreError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "store unavailable");
            Error::new(
                ErrorKind::ServiceUnavailable,
                "the store is unavailable, retry later",
            )
        }
        StoreError::Other(msg) => {
            tracing::error!(error = %msg, "store fault");
            Error::new(ErrorKind::InternalError, "internal store error")
        }
    }
}

fn exactly_one(mut results: Vec<Result<Applied, StoreError>>) -> Result<Applied, Error> {
    match results.pop() {
        Some(r) if results.is_empty() => r.map_err(store_error),
        _ => Err(Error::new(
            ErrorKind::InternalError,
            "the store answered a single write with a different count",
        )),
    }
}

/// The store write of one entity whose change an entity rule of `ngsi`
/// ([`ngsi::entity::change`]) decides, from the entity as the store holds it and the
/// time at which the store applies the write.
pub(crate) fn rule_write(
    id: impl Into<String>,
    rule: impl FnOnce(Option<Entity>, DateTime<Utc>) -> Result<Outcome, Error> + Send + 'static,
) -> WriteOp {
    WriteOp::new(id, move |before| {
        let outcome = rule(before, ngsi::entity::now())?;
        let change = match outcome.write {
            Write::Put(e) => Change::Put(Arc::new(e)),
            Write::Delete => Change::Delete,
            Write::Unchanged => Change::Unchanged,
        };
        let applied = Applied {
            created: outcome.created,
            result: outcome.result,
        };
        Ok((change, applied))
    })
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        contexts: ContextResolver,
        outbound: Arc<crate::outbound::OutboundPolicy>,
    ) -> Self {
        Hub {
            store,
            contexts,
            changes: ChangeFeed::default(),
            outbound,
            audit_writes: true,
        }
    }

    /// Turns the audit of entity writes off (for `dothi bench hub`'s comparison).
    pub fn without_write_audit(mut self) -> Self {
        self.audit_writes = false;
        self
    }

    /// The policy of requests made for callers.
    pub fn outbound(&self) -> Arc<crate::outbound::OutboundPolicy> {
        self.outbound.clone()
    }

    /// The store, for this crate's own parts (the notifier, the duties, the
    /// temporal and subscription operations); other crates go through the Hub.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Leaves the values of the attributes `names` (expanded) out of the store's value
    /// index from now on (`store::EntityStore::leave_out_of_value_index`): for the
    /// attributes of a service's entities that no query of the service compares.
    /// Queries on them still answer; they read more entities to.
    pub async fn leave_out_of_value_index(&self, names: &[String]) -> Result<(), Error> {
        self.store
            .leave_out_of_value_index(names)
            .await
            .map_err(store_error)
    }

    /// The store's registry, for components that keep records of their own beside
    /// the entities (the IoT agent's devices).
    pub fn records(&self) -> Records {
        Records {
            // The whole store, upcast to its registry facet.
            store: self.store.clone(),
        }
    }

    /// Whether this node holds the background duties of a shared store, as it changes
    /// ([`store::Store::duties`]): components with duties of their own (evaluating
    /// alert rules) run them only while this is true. Always true on an embedded store.
    pub fn duties(&self) -> tokio::sync::watch::Receiver<bool> {
        self.store.duties()
    }

    /// Whether the store answers (what `/health` says).
    pub async fn reachable(&self) -> Result<(), Error> {
        self.store.tenants().await.map(|_| ()).map_err(store_error)
    }

    /// The audit record of a change made outside [`Hub::commit`] (subscriptions,
    /// history edits), which the store commits with the change.
    pub(crate) fn audit_record(&self, scope: &Scope, targets: Vec<String>) -> store::AuditRecord {
        scope.caller.audit(Some(&scope.tenant), targets)
    }

    /// Audit records, newest first (`GET /auth/v1/audit`): admins only.
    pub async fn audit_list(
        &self,
        caller: &Caller,
        filter: store::AuditFilter,
    ) -> Result<Vec<store::StoredAudit>, Error> {
        if !caller.is_admin() {
            return Err(Error::forbidden("the audit log is for admins"));
        }
        self.store.audit_list(filter).await.map_err(store_error)
    }

    /// Checks the audit log's hash chain (`dothi audit verify`).
    pub async fn audit_verify(&self) -> Result<crate::audit::Verified, Error> {
        crate::audit::verify(self.store.as_ref())
            .await
            .map_err(store_error)
    }

    /// Seals what is waiting in the audit log now (for tools and tests; the duties
    /// do it every second).
    pub async fn audit_seal(&self) -> Result<usize, Error> {
        self.store
            .audit_seal(usize::MAX / 2)
            .await
            .map_err(store_error)
    }

    pub(crate) fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    /// The sequence of the last change decided through this node
    /// ([`crate::changes::ChangeFeed::sequence`]).
    pub fn change_sequence(&self) -> u64 {
        self.changes.sequence()
    }

    /// Every entity change committed from now on, as each write returns (two writes
    /// of one entity are told apart by [`crate::Committed::seq`]; see
    /// [`crate::changes`]).
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<EntityChange>> {
        self.changes.subscribe()
    }

    /// Sends mutations to the store and, once they are committed, publishes the
    /// changes they made on the change feed. Every write of the hub goes through here.
    /// The caller's rights are checked here: write access to the tenant, and, for a
    /// caller limited to entity types, the types of each entity before and after.
    /// The write's audit record commits with it.
    pub(crate) async fn commit(
        &self,
        scope: &Scope,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<Applied, StoreError>>, Error> {
        scope.check(Access::Write)?;
        let tenant = scope.tenant.as_str();
        let audit = (self.audit_writes && scope.caller.audited_writes).then(|| {
            scope.caller.audit(
                Some(tenant),
                ops.iter().map(|op| op.entity_id.clone()).collect(),
            )
        });
        let (ops, pending): (Vec<WriteOp>, Vec<_>) = ops
            .into_iter()
            .map(|op| limit_types(&scope.caller, op))
            .map(|op| self.changes.watch(tenant, op))
            .unzip();
        let results = self
            .store
            .write_audited(tenant, ops, audit)
            .await
            .map_err(store_error)?;
        for (result, pending) in results.iter().zip(pending) {
            if result.is_ok() {
                self.changes.publish(pending);
            }
        }
        Ok(results)
    }

    async fn write_one(&self, scope: &Scope, op: WriteOp) -> Result<Applied, Error> {
        let results = self.commit(scope, vec![op]).await?;
        exactly_one(results)
    }

    /// Checks that the caller may read the tenant, and that it exists, as reads of
    /// an unknown tenant must fail.
    pub async fn require_tenant(&self, scope: &Scope) -> Result<(), Error> {
        scope.check(Access::Read)?;
        if self
            .store
            .tenant_exists(&scope.tenant)
            .await
            .map_err(store_error)?
        {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NonExistentTenant,
                format!("tenant {:?} does not exist", scope.tenant),
            ))
        }
    }

    /// POST /entities.
    pub async fn create_entity(&self, scope: &Scope, entity: Entity) -> Result<(), Error> {
        let op = rule_write(entity.id.clone(), move |before, _| {
            change::create(before, entity)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// [`Hub::create_entity`], and registry records committed in the same transaction:
    /// the entity and every record, or nothing (a refused record fails the create
    /// with that refusal). The caller's rights and the audit record are those of
    /// the create.
    pub async fn create_entity_with_records(
        &self,
        scope: &Scope,
        entity: Entity,
        records: Vec<store::RegistryPut>,
    ) -> Result<(), Error> {
        let id = entity.id.clone();
        let op = records.into_iter().fold(
            rule_write(id, move |before, _| change::create(before, entity)),
            WriteOp::with_records,
        );
        self.write_one(scope, op).await.map(|_| ())
    }

    /// GET /entities/{id}.
    pub async fn get_entity(&self, scope: &Scope, id: &str) -> Result<Entity, Error> {
        self.require_tenant(scope).await?;
        self.store
            .get(&scope.tenant, id)
            .await
            .map_err(store_error)?
            // An entity outside the caller's type grant is not there for it.
            .filter(|e| scope.caller.allows_types(&e.types))
            .ok_or_else(|| not_found(id))
    }

    /// DELETE /entities/{id}.
    pub async fn delete_entity(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        let owned = id.to_string();
        let op = rule_write(id, move |before, _| change::delete(before, &owned));
        self.write_one(scope, op).await.map(|_| ())
    }

    /// PUT /entities/{id}: the entity's content replaced, its id and creation kept.
    pub async fn replace_entity(&self, scope: &Scope, new: Entity) -> Result<(), Error> {
        let op = rule_write(new.id.clone(), move |before, now| {
            change::replace(before, new, now)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// POST /entities/{id}/attrs (append; `overwrite` false for options=noOverwrite).
    pub async fn append_attrs(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
        overwrite: bool,
    ) -> Result<UpdateResult, Error> {
        let (owned, ctx) = (id.to_string(), scope.ctx.clone());
        let op = rule_write(id, move |before, now| {
            change::append(before, &owned, &body, &ctx, overwrite, now)
        });
        self.write_one(scope, op).await.map(|a| a.result)
    }

    /// PATCH /entities/{id}/attrs (update existing attributes only).
    pub async fn update_attrs(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<UpdateResult, Error> {
        let (owned, ctx) = (id.to_string(), scope.ctx.clone());
        let op = rule_write(id, move |before, now| {
            change::update(before, &owned, &body, &ctx, now)
        });
        self.write_one(scope, op).await.map(|a| a.result)
    }

    /// PATCH /entities/{id} (merge-patch): attributes merged, `urn:ngsi-ld:null` deletes.
    pub async fn merge_entity(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<(), Error> {
        let (owned, ctx) = (id.to_string(), scope.ctx.clone());
        let op = rule_write(id, move |before, now| {
            change::merge(before, &owned, &body, &ctx, now)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// PATCH /entities/{id}/attrs/{attr}: the fragment's members replace the instance's.
    pub async fn patch_attr(
        &self,
        scope: &Scope,
        id: &str,
        attr: &str,
        fragment: Value,
    ) -> Result<(), Error> {
        let (owned, name, ctx) = (id.to_string(), attr.to_string(), scope.ctx.clone());
        let op = rule_write(id, move |before, now| {
            change::patch_attr(before, &owned, &name, &fragment, &ctx, now)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// PUT /entities/{id}/attrs/{attr}: the attribute (instance of its datasetId) replaced.
    pub async fn replace_attr(
        &self,
        scope: &Scope,
        id: &str,
        attr: &str,
        body: Value,
    ) -> Result<(), Error> {
        let (owned, name, ctx) = (id.to_string(), attr.to_string(), scope.ctx.clone());
        let op = rule_write(id, move |before, now| {
            change::replace_attr(before, &owned, &name, &body, &ctx, now)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// DELETE /entities/{id}/attrs/scope: the entity's scopes removed.
    pub async fn delete_scope(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        let owned = id.to_string();
        let op = rule_write(id, move |before, now| {
            change::delete_scope(before, &owned, now)
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// DELETE /entities/{id}/attrs/{attr}.
    pub async fn delete_attr(
        &self,
        scope: &Scope,
        id: &str,
        attr: &str,
        dataset_id: Option<String>,
        delete_all: bool,
    ) -> Result<(), Error> {
        let (owned, name) = (id.to_string(), attr.to_string());
        let op = rule_write(id, move |before, now| {
            change::delete_attr(
                before,
                &owned,
                &name,
                dataset_id.as_deref(),
                delete_all,
                now,
            )
        });
        self.write_one(scope, op).await.map(|_| ())
    }

    /// Runs a batch of mutations; parse failures are reported in place.
    async fn batch(
        &self,
        scope: &Scope,
        items: Vec<Result<WriteOp, (String, Error)>>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let mut ids = Vec::with_capacity(items.len());
        let mut ops = Vec::new();
        let mut slots = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(op) => {
                    ids.push(op.entity_id.clone());
                    slots.push(None);
                    ops.push(op);
                }
                Err((id, e)) => {
                    ids.push(id);
                    slots.push(Some(Err(e)));
                }
            }
        }
        let mut results = if ops.is_empty() {
            Vec::new()
        } else {
            self.commit(scope, ops).await?
        }
        .into_iter();
        let mut out = Vec::with_capacity(ids.len());
        for (id, slot) in ids.into_iter().zip(slots) {
            let r = match slot {
                Some(r) => r,
                None => results
                    .next()
                    .unwrap_or_else(|| Err(StoreError::Other("missing batch result".into())))
                    .map_err(store_error),
            };
            out.push((id, r));
        }
        Ok(out)
    }

    /// A batch of entities, each written by the rule `write` builds for it.
    async fn batch_of<T>(
        &self,
        scope: &Scope,
        items: Vec<Result<T, (String, Error)>>,
        write: impl Fn(T) -> WriteOp,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let ops = items.into_iter().map(|r| r.map(&write)).collect();
        self.batch(scope, ops).await
    }

    /// POST /entityOperations/create.
    pub async fn batch_create(
        &self,
        scope: &Scope,
        entities: Vec<Result<Entity, (String, Error)>>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        self.batch_of(scope, entities, |new| {
            rule_write(new.id.clone(), move |before, _| change::create(before, new))
        })
        .await
    }

    /// POST /entityOperations/merge: each entity body merge-patched into the existing
    /// entity of its id (clause 5.6.20); a missing entity is an error in its place.
    pub async fn batch_merge(
        &self,
        scope: &Scope,
        items: Vec<Result<MergeItem, (String, Error)>>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        self.batch_of(scope, items, |item| {
            rule_write(item.id.clone(), move |before, now| {
                change::merge(before, &item.id, &item.body, &item.ctx, now)
            })
        })
        .await
    }

    /// POST /entityOperations/upsert: `replace` (default) or update (append, overwriting).
    pub async fn batch_upsert(
        &self,
        scope: &Scope,
        entities: Vec<Result<Entity, (String, Error)>>,
        replace: bool,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        self.batch_of(scope, entities, |new| {
            rule_write(new.id.clone(), move |before, now| {
                change::upsert(before, new, replace, now)
            })
        })
        .await
    }

    /// Upserts entities for a bulk import: each entity becomes exactly what is given
    /// (attributes it lacks are removed), all of them in one store write (on SQLite,
    /// one transaction). An entity whose content is already stored, timestamps aside,
    /// is left untouched, so importing the same data again adds no history; of a
    /// changed entity, only the attributes whose content changed are written (and
    /// recorded in the history); see [`change::import`].
    pub async fn import_batch(
        &self,
        scope: &Scope,
        entities: Vec<Entity>,
    ) -> Result<Vec<(String, Result<Imported, Error>)>, Error> {
        let mut outcomes = Vec::with_capacity(entities.len());
        let ops = entities
            .into_iter()
            .map(|new| {
                let outcome = Arc::new(std::sync::OnceLock::new());
                outcomes.push(outcome.clone());
                Ok(rule_write(new.id.clone(), move |before, now| {
                    let decided = change::import(before, new, now)?;
                    let _ = outcome.set(Imported::of(&decided));
                    Ok(decided)
                }))
            })
            .collect();
        let results = self.batch(scope, ops).await?;
        Ok(results
            .into_iter()
            .zip(outcomes)
            .map(|((id, r), outcome)| {
                let r = r.and_then(|_| {
                    outcome.get().copied().ok_or_else(|| {
                        Error::new(ErrorKind::InternalError, "the store skipped a write")
                    })
                });
                (id, r)
            })
            .collect())
    }

    /// POST /entityOperations/update: append to existing entities (noOverwrite optional).
    pub async fn batch_update(
        &self,
        scope: &Scope,
        entities: Vec<Result<Entity, (String, Error)>>,
        overwrite: bool,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        self.batch_of(scope, entities, |new| {
            rule_write(new.id.clone(), move |before, now| {
                change::append_entity(before, new, overwrite, now)
            })
        })
        .await
    }

    /// Records a device's readings on its entity, in one atomic write (the IoT agent's
    /// update): see [`change::record_measures`].
    pub async fn record_measures(
        &self,
        scope: &Scope,
        id: &str,
        types: Vec<String>,
        measures: BTreeMap<String, Vec<Attribute>>,
        statics: BTreeMap<String, Vec<Attribute>>,
    ) -> Result<Applied, Error> {
        if !ngsi::entity::is_uri(id) {
            return Err(Error::bad_data(format!("{id:?} is not a URI")));
        }
        let owned = id.to_string();
        let op = rule_write(id, move |before, now| {
            change::record_measures(before, &owned, types, measures, statics, now)
        });
        self.write_one(scope, op).await
    }

    /// POST /entityOperations/delete.
    pub async fn batch_delete(
        &self,
        scope: &Scope,
        ids: Vec<String>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let ops = ids
            .into_iter()
            .map(|id| {
                if !ngsi::entity::is_uri(&id) {
                    return Err((id.clone(), Error::bad_data(format!("{id:?} is not a URI"))));
                }
                let owned = id.clone();
                Ok(rule_write(id, move |before, _| {
                    change::delete(before, &owned)
                }))
            })
            .collect();
        self.batch(scope, ops).await
    }

    /// Every entity `query` selects, read in pages of `page` entities from the query's
    /// own position on (its limit is the page's).
    pub async fn query_all(
        &self,
        scope: &Scope,
        query: EntityQuery,
        page: usize,
    ) -> Result<Vec<Entity>, Error> {
        let mut all = Vec::new();
        let mut after = query.after;
        loop {
            let found = self
                .query(
                    scope,
                    EntityQuery {
                        limit: page,
                        after,
                        ..query.clone()
                    },
                )
                .await?;
            after = found.next(page);
            all.extend(found.entities);
            if after.is_none() {
                return Ok(all);
            }
        }
    }

    /// GET /entities and POST /entityOperations/query.
    pub async fn query(&self, scope: &Scope, mut query: EntityQuery) -> Result<QueryPage, Error> {
        self.require_tenant(scope).await?;
        let Some(granted) = &scope.caller.types else {
            return self
                .store
                .query(&scope.tenant, query)
                .await
                .map_err(store_error);
        };
        // A caller limited to types selects within them (counts and pages included).
        let within = TypeExpr::Or(granted.iter().cloned().map(TypeExpr::Type).collect());
        let selected = match query.types.take() {
            Some(asked) => TypeExpr::And(vec![asked, within]),
            None => within,
        };
        query.types = Some(selected.clone());
        // An entity that also has a type outside the grant is out of reach, but the
        // store selects by the types an entity has, not those it lacks: when some of
        // the selected entities are such, they are left out here, and the page and
        // count made here.
        let outside: Vec<TypeExpr> = self
            .store
            .types(&scope.tenant)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|t| !granted.contains(&t.type_iri))
            .map(|t| TypeExpr::Type(t.type_iri))
            .collect();
        if !outside.is_empty() {
            let mixed = EntityQuery {
                types: Some(TypeExpr::And(vec![selected, TypeExpr::Or(outside)])),
                limit: 0,
                offset: 0,
                count: true,
                ..query.clone()
            };
            let found = self
                .store
                .query(&scope.tenant, mixed)
                .await
                .map_err(store_error)?;
            if found.count != Some(0) {
                return self.query_within_types(scope, query).await;
            }
        }
        self.store
            .query(&scope.tenant, query)
            .await
            .map_err(store_error)
    }

    /// A query of a caller limited to types, when some entities it selects also have
    /// another type: every match is read, those out of reach left out.
    async fn query_within_types(
        &self,
        scope: &Scope,
        query: EntityQuery,
    ) -> Result<QueryPage, Error> {
        const PAGE: usize = 1_000;
        let (mut entities, mut positions) = (Vec::new(), Vec::new());
        let mut total = 0usize;
        let mut after = query.after;
        loop {
            let page = self
                .store
                .query(
                    &scope.tenant,
                    EntityQuery {
                        offset: 0,
                        limit: PAGE,
                        count: false,
                        after,
                        // The types are read from the entities.
                        as_documents: false,
                        ..query.clone()
                    },
                )
                .await
                .map_err(store_error)?;
            after = page.next(PAGE);
            for (e, at) in page.entities.into_iter().zip(page.positions) {
                if scope.caller.allows_types(&e.types) {
                    if total >= query.offset && entities.len() < query.limit {
                        entities.push(e);
                        positions.push(at);
                    }
                    total += 1;
                }
            }
            if after.is_none() || (!query.count && entities.len() >= query.limit) {
                break;
            }
        }
        let mut page = QueryPage {
            entities,
            positions,
            count: query.count.then_some(total as u64),
            ..QueryPage::default()
        };
        if query.as_documents {
            page.entities_as_documents().map_err(store_error)?;
        }
        Ok(page)
    }

    /// Calls `f` on every entity of the tenant the caller can see (for the discovery
    /// of a caller limited to types, whose counts cover only those).
    async fn each_visible(&self, scope: &Scope, mut f: impl FnMut(&Entity)) -> Result<(), Error> {
        const PAGE: usize = 1_000;
        let mut after = None;
        loop {
            let page = self
                .query(
                    scope,
                    EntityQuery {
                        limit: PAGE,
                        after,
                        ..EntityQuery::default()
                    },
                )
                .await?;
            page.entities.iter().for_each(&mut f);
            after = page.next(PAGE);
            if after.is_none() {
                return Ok(());
            }
        }
    }

    pub async fn types(&self, scope: &Scope) -> Result<Vec<TypeSummary>, Error> {
        self.require_tenant(scope).await?;
        if scope.caller.types.is_none() {
            return self.store.types(&scope.tenant).await.map_err(store_error);
        }
        let mut out: BTreeMap<String, TypeSummary> = BTreeMap::new();
        self.each_visible(scope, |e| {
            for t in &e.types {
                let summary = out.entry(t.clone()).or_insert_with(|| TypeSummary {
                    type_iri: t.clone(),
                    entity_count: 0,
                    attributes: BTreeMap::new(),
                });
                summary.entity_count += 1;
                for (name, instances) in &e.attrs {
                    summary
                        .attributes
                        .entry(name.clone())
                        .or_default()
                        .extend(instances.iter().map(|i| i.kind));
                }
            }
        })
        .await?;
        Ok(out.into_values().collect())
    }

    pub async fn attributes(&self, scope: &Scope) -> Result<Vec<AttributeSummary>, Error> {
        self.require_tenant(scope).await?;
        if scope.caller.types.is_none() {
            return self
                .store
                .attributes(&scope.tenant)
                .await
                .map_err(store_error);
        }
        let mut out: BTreeMap<String, AttributeSummary> = BTreeMap::new();
        self.each_visible(scope, |e| {
            for (name, instances) in &e.attrs {
                let a = out.entry(name.clone()).or_insert_with(|| AttributeSummary {
                    name_iri: name.clone(),
                    attribute_count: 0,
                    type_names: Default::default(),
                    kinds: Default::default(),
                });
                a.attribute_count += instances.len() as u64;
                a.kinds.extend(instances.iter().map(|i| i.kind));
                a.type_names.extend(e.types.iter().cloned());
            }
        })
        .await?;
        Ok(out.into_values().collect())
    }

    /// Checks that the caller may change subscriptions or history of the tenant.
    pub(crate) fn require_unlimited_write(&self, scope: &Scope) -> Result<(), Error> {
        scope.check(Access::Write)?;
        scope.check_unlimited_types()
    }
}

/// Wraps a mutation so that a caller limited to entity types changes only entities
/// of those types, as they are and as they become.
fn limit_types(caller: &CallerRef, mut op: WriteOp) -> WriteOp {
    if caller.types.is_none() {
        return op;
    }
    let caller = caller.clone();
    let mutate = op.mutate;
    op.mutate = Box::new(move |current| {
        let refused = || Error::forbidden("the entity's type is outside the grant");
        if let Some(e) = &current
            && !caller.allows_types(&e.types)
        {
            // Out of reach is not there: as a read would say.
            return Err(not_found(&e.id));
        }
        let (change, applied) = mutate(current)?;
        if let Change::Put(e) = &change
            && !caller.allows_types(&e.types)
        {
            return Err(refused());
        }
        Ok((change, applied))
    });
    op
}

/// What an import did to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Created,
    Updated,
    /// Its content was already stored: nothing written.
    Unchanged,
}

impl Imported {
    fn of(outcome: &Outcome) -> Imported {
        match outcome {
            Outcome { created: true, .. } => Imported::Created,
            Outcome {
                write: Write::Unchanged,
                ..
            } => Imported::Unchanged,
            _ => Imported::Updated,
        }
    }
}
