//! The `Hub` service: every NGSI-LD operation, in-process, on the expanded model.
//!
//! The HTTP layer, and later the IoT agent and the city services, call these methods.
//! Each takes the request's [`Scope`] (tenant and @context) and returns NGSI-LD errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use ngsi::entity::{NGSI_LD_NULL, Reader, UpdateResult, overlay_attribute};
use ngsi::query::ast::TypeExpr;
use ngsi::render::{Format, RenderOptions, render_entity};
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
/// One entity of a batch merge: its id, the merge-patch body, and the @context it
/// was sent with.
pub struct MergeItem {
    pub id: String,
    pub body: Map<String, Value>,
    pub ctx: Arc<Context>,
}

pub struct Scope {
    pub tenant: String,
    pub ctx: Arc<Context>,
    pub caller: CallerRef,
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

pub(crate) fn store_error(e: StoreError) -> Error {
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

fn not_found(id: &str) -> Error {
    Error::not_found(format!("entity {id} not found"))
}

/// Renders one attribute in normalized form under `ctx`, for overlaying a patch on it.
fn attribute_json(attr: &Attribute, ctx: &Context) -> Value {
    let e = Entity {
        id: "urn:x".into(),
        types: vec![],
        scopes: vec![],
        attrs: BTreeMap::from([("a".to_string(), vec![attr.clone()])]),
        created_at: attr.created_at,
        modified_at: attr.modified_at,
    };
    render_entity(
        &e,
        &RenderOptions {
            format: Format::Normalized,
            ..RenderOptions::new(ctx)
        },
    )
    .remove("a")
    .unwrap_or(Value::Null)
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

    /// Every entity change committed from now on, in commit order (see
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

    /// Changes an existing entity (404 when there is none) and stores it.
    async fn change_existing(
        &self,
        scope: &Scope,
        id: &str,
        change: impl FnOnce(&mut Entity) -> Result<Applied, Error> + Send + 'static,
    ) -> Result<Applied, Error> {
        let owned = id.to_string();
        let op = WriteOp::new(id, move |current| {
            let mut e = current.ok_or_else(|| not_found(&owned))?;
            let applied = change(&mut e)?;
            Ok((Change::Put(e), applied))
        });
        self.write_one(scope, op).await
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
        let id = entity.id.clone();
        self.write_one(
            scope,
            WriteOp::new(id.clone(), move |current| create(current, entity)),
        )
        .await
        .map(|_| ())
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
            WriteOp::new(id, move |current| create(current, entity)),
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
        self.write_one(
            scope,
            WriteOp::new(id, move |current| match current {
                Some(_) => Ok((Change::Delete, Applied::default())),
                None => Err(not_found(&owned)),
            }),
        )
        .await
        .map(|_| ())
    }

    /// PUT /entities/{id}: the entity's content replaced, its id and creation kept.
    pub async fn replace_entity(&self, scope: &Scope, new: Entity) -> Result<(), Error> {
        let id = new.id.clone();
        self.change_existing(scope, &id, move |e| {
            e.replace_with(new, ngsi::entity::now());
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
    }

    /// POST /entities/{id}/attrs (append; `overwrite` false for options=noOverwrite).
    pub async fn append_attrs(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
        overwrite: bool,
    ) -> Result<UpdateResult, Error> {
        let ctx = scope.ctx.clone();
        self.change_existing(scope, id, move |e| {
            let now = ngsi::entity::now();
            let reader = Reader { ctx: &ctx, now };
            let attrs = reader.attributes(&body)?;
            check_type_change(e, &body, &reader)?;
            let mut result = e.append(attrs, overwrite, now);
            // Scopes: replaced, or (noOverwrite) added to (clause 5.6.3).
            if let Some(scope) = body.get("scope") {
                let scopes = reader.scopes(Some(scope))?;
                if overwrite {
                    e.scopes = scopes;
                } else {
                    for s in scopes {
                        if !e.scopes.contains(&s) {
                            e.scopes.push(s);
                        }
                    }
                }
                result.updated.push("scope".into());
                e.modified_at = now;
            }
            check_size(e)?;
            Ok(Applied {
                created: false,
                result,
            })
        })
        .await
        .map(|a| a.result)
    }

    /// PATCH /entities/{id}/attrs (update existing attributes only).
    pub async fn update_attrs(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<UpdateResult, Error> {
        let ctx = scope.ctx.clone();
        let owned = id.to_string();
        self.write_one(
            scope,
            WriteOp::new(id, move |current| {
                let mut e = current.ok_or_else(|| not_found(&owned))?;
                let now = ngsi::entity::now();
                let reader = Reader { ctx: &ctx, now };
                let (body, deletions) = split_null_deletions(&body, &ctx)?;
                let attrs = reader.attributes(&body)?;
                let mut result = e.update(attrs, now);
                delete_instances(&mut e, deletions, &mut result);
                if let Some(t) = body.get("type")
                    && e.add_types(reader.types(Some(t))?)
                {
                    result.updated.push("type".into());
                }
                // Scopes are updated only where there are some (clause 5.6.2).
                if let Some(scope) = body.get("scope") {
                    if e.scopes.is_empty() {
                        result
                            .not_updated
                            .push(("scope".into(), "the entity has no scope".into()));
                    } else {
                        e.scopes = reader.scopes(Some(scope))?;
                        result.updated.push("scope".into());
                    }
                }
                if !result.updated.is_empty() {
                    e.modified_at = now;
                }
                let change = if result.updated.is_empty() {
                    Change::Unchanged
                } else {
                    Change::Put(e)
                };
                Ok((
                    change,
                    Applied {
                        created: false,
                        result,
                    },
                ))
            }),
        )
        .await
        .map(|a| a.result)
    }

    /// PATCH /entities/{id} (merge-patch): attributes merged, `urn:ngsi-ld:null` deletes.
    pub async fn merge_entity(
        &self,
        scope: &Scope,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<(), Error> {
        let ctx = scope.ctx.clone();
        self.change_existing(scope, id, move |e| {
            merge(e, &body, &ctx)?;
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
    }

    /// PATCH /entities/{id}/attrs/{attr}: the fragment's members replace the instance's.
    pub async fn patch_attr(
        &self,
        scope: &Scope,
        id: &str,
        attr: &str,
        fragment: Value,
    ) -> Result<(), Error> {
        let ctx = scope.ctx.clone();
        let name = attr.to_string();
        self.change_existing(scope, id, move |e| {
            let now = ngsi::entity::now();
            if let Some(dataset) = ngsi::entity::null_deletion(&fragment) {
                if !e.remove_instance(&name, dataset.as_deref()) {
                    return Err(Error::not_found(format!(
                        "the entity has no instance of {} to delete",
                        ctx.compact(&name)
                    )));
                }
                e.modified_at = now;
                return Ok(Applied::default());
            }
            let dataset = fragment
                .get("datasetId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let instances = e.attrs.get_mut(&name).ok_or_else(|| {
                Error::not_found(format!(
                    "the entity has no attribute {}",
                    ctx.compact(&name)
                ))
            })?;
            let inst = instances
                .iter_mut()
                .find(|i| i.dataset_id == dataset)
                .ok_or_else(|| {
                    Error::not_found("no instance of the attribute with this datasetId")
                })?;
            let merged = overlay_attribute(&attribute_json(inst, &ctx), &fragment);
            let compact = ctx.compact(&name);
            let mut new = Reader { ctx: &ctx, now }.attribute(&compact, &name, &merged, 0)?;
            let Some(mut new) = new.pop() else {
                return Err(Error::bad_data("empty attribute"));
            };
            new.created_at = inst.created_at;
            new.modified_at = now;
            *inst = new;
            e.modified_at = now;
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
    }

    /// PUT /entities/{id}/attrs/{attr}: the attribute (instance of its datasetId) replaced.
    pub async fn replace_attr(
        &self,
        scope: &Scope,
        id: &str,
        attr: &str,
        body: Value,
    ) -> Result<(), Error> {
        let ctx = scope.ctx.clone();
        let name = attr.to_string();
        self.change_existing(scope, id, move |e| {
            let now = ngsi::entity::now();
            let compact = ctx.compact(&name);
            let instances = Reader { ctx: &ctx, now }.attribute(&compact, &name, &body, 0)?;
            let existing = e.attrs.get_mut(&name).ok_or_else(|| {
                Error::not_found(format!("the entity has no attribute {compact}"))
            })?;
            for mut inst in instances {
                let old = existing
                    .iter_mut()
                    .find(|o| o.dataset_id == inst.dataset_id)
                    .ok_or_else(|| {
                        Error::not_found("no instance of the attribute with this datasetId")
                    })?;
                inst.created_at = old.created_at;
                inst.modified_at = now;
                *old = inst;
            }
            e.modified_at = now;
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
    }

    /// DELETE /entities/{id}/attrs/scope: the entity's scopes removed.
    pub async fn delete_scope(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        self.change_existing(scope, id, move |e| {
            if e.scopes.is_empty() {
                return Err(Error::not_found("the entity has no scope"));
            }
            e.scopes.clear();
            e.modified_at = ngsi::entity::now();
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
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
        let name = attr.to_string();
        self.change_existing(scope, id, move |e| {
            e.delete_attr(
                &name,
                dataset_id.as_deref(),
                delete_all,
                ngsi::entity::now(),
            )?;
            Ok(Applied::default())
        })
        .await
        .map(|_| ())
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

    /// POST /entityOperations/create.
    pub async fn batch_create(
        &self,
        scope: &Scope,
        entities: Vec<Result<Entity, (String, Error)>>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let ops = entities
            .into_iter()
            .map(|r| r.map(|e| WriteOp::new(e.id.clone(), move |current| create(current, e))))
            .collect();
        self.batch(scope, ops).await
    }

    /// POST /entityOperations/merge: each entity body merge-patched into the existing
    /// entity of its id (clause 5.6.20); a missing entity is an error in its place.
    pub async fn batch_merge(
        &self,
        scope: &Scope,
        items: Vec<Result<MergeItem, (String, Error)>>,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let ops = items
            .into_iter()
            .map(|r| {
                r.map(|item| {
                    let id = item.id.clone();
                    WriteOp::new(item.id, move |current| {
                        let mut e = current.ok_or_else(|| not_found(&id))?;
                        merge(&mut e, &item.body, &item.ctx)?;
                        Ok((Change::Put(e), Applied::default()))
                    })
                })
            })
            .collect();
        self.batch(scope, ops).await
    }

    /// POST /entityOperations/upsert: `replace` (default) or update (append, overwriting).
    pub async fn batch_upsert(
        &self,
        scope: &Scope,
        entities: Vec<Result<Entity, (String, Error)>>,
        replace: bool,
    ) -> Result<Vec<(String, BatchItem)>, Error> {
        let ops = entities
            .into_iter()
            .map(|r| {
                r.map(|new| {
                    WriteOp::new(new.id.clone(), move |current| {
                        let now = ngsi::entity::now();
                        match current {
                            None => create(None, new),
                            Some(mut e) if replace => {
                                e.replace_with(new, now);
                                Ok((Change::Put(e), Applied::default()))
                            }
                            Some(mut e) => {
                                for t in new.types {
                                    if !e.types.contains(&t) {
                                        e.types.push(t);
                                    }
                                }
                                let result = e.append(new.attrs, true, now);
                                check_size(&e)?;
                                Ok((
                                    Change::Put(e),
                                    Applied {
                                        created: false,
                                        result,
                                    },
                                ))
                            }
                        }
                    })
                })
            })
            .collect();
        self.batch(scope, ops).await
    }

    /// Upserts entities for a bulk import: each entity becomes exactly what is given
    /// (attributes it lacks are removed), all of them in one store write (on SQLite,
    /// one transaction). An entity whose content is already stored, timestamps aside,
    /// is left untouched, so importing the same data again adds no history; of a
    /// changed entity, only the attributes whose content changed are written (and
    /// recorded in the history).
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
                Ok(WriteOp::new(new.id.clone(), move |current| {
                    let (change, imported) = import_change(current, new)?;
                    let _ = outcome.set(imported);
                    Ok((change, Applied::default()))
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
        let ops = entities
            .into_iter()
            .map(|r| {
                r.map(|new| {
                    let id = new.id.clone();
                    WriteOp::new(new.id.clone(), move |current| {
                        let mut e = current.ok_or_else(|| not_found(&id))?;
                        let now = ngsi::entity::now();
                        let mut result = e.append(new.attrs, overwrite, now);
                        // An update may add types, never remove them.
                        if e.add_types(new.types) {
                            result.updated.push("type".into());
                            e.modified_at = now;
                        }
                        check_size(&e)?;
                        Ok((
                            Change::Put(e),
                            Applied {
                                created: false,
                                result,
                            },
                        ))
                    })
                })
            })
            .collect();
        self.batch(scope, ops).await
    }

    /// Records a device's readings on its entity, in one atomic write (the IoT agent's
    /// update). `measures` overwrite their attributes, each a new instance in the
    /// history; `statics` are written only where the entity lacks them or holds other
    /// content (timestamps aside), so an unchanged static attribute adds no history.
    /// The entity is created with `types` when it does not exist; an existing one
    /// gains them.
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
        let op = WriteOp::new(id, move |current| {
            let now = ngsi::entity::now();
            let created = current.is_none();
            if created && types.is_empty() {
                return Err(Error::bad_data("a new entity needs a type"));
            }
            let mut e = current.unwrap_or_else(|| Entity {
                id: owned,
                types: Vec::new(),
                scopes: Vec::new(),
                attrs: BTreeMap::new(),
                created_at: now,
                modified_at: now,
            });
            for t in types {
                if !e.has_type(&t) {
                    e.types.push(t);
                }
            }
            let stale: BTreeMap<String, Vec<Attribute>> = statics
                .into_iter()
                .filter(|(name, new)| e.attrs.get(name).is_none_or(|old| !same_content(old, new)))
                .collect();
            let mut result = e.append(stale, true, now);
            let measured = e.append(measures, true, now);
            result.updated.extend(measured.updated);
            check_size(&e)?;
            Ok((Change::Put(e), Applied { created, result }))
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
                Ok(WriteOp::new(id, move |current| match current {
                    Some(_) => Ok((Change::Delete, Applied::default())),
                    None => Err(not_found(&owned)),
                }))
            })
            .collect();
        self.batch(scope, ops).await
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
        Ok(QueryPage {
            entities,
            positions,
            count: query.count.then_some(total as u64),
        })
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
            return Err(Error::not_found(format!("entity {} not found", e.id)));
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

fn create(current: Option<Entity>, e: Entity) -> Result<(Change, Applied), Error> {
    if current.is_some() {
        return Err(Error::already_exists(format!(
            "entity {} already exists",
            e.id
        )));
    }
    Ok((
        Change::Put(e),
        Applied {
            created: true,
            result: UpdateResult::default(),
        },
    ))
}

/// What an import did to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Created,
    Updated,
    /// Its content was already stored: nothing written.
    Unchanged,
}

/// The change an import makes to an entity: none when nothing but timestamps would
/// differ; else the new entity, keeping the stored instances of unchanged attributes
/// as they are (so the history records only what changed).
fn import_change(current: Option<Entity>, mut new: Entity) -> Result<(Change, Imported), Error> {
    check_size(&new)?;
    let Some(mut e) = current else {
        return Ok((Change::Put(new), Imported::Created));
    };
    let same_set = |a: &[String], b: &[String]| {
        a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
    };
    let same_attrs = e.attrs.len() == new.attrs.len()
        && e.attrs
            .iter()
            .all(|(name, old)| new.attrs.get(name).is_some_and(|n| same_instances(old, n)));
    if same_attrs && same_set(&e.types, &new.types) && same_set(&e.scopes, &new.scopes) {
        return Ok((Change::Unchanged, Imported::Unchanged));
    }
    for (name, instances) in new.attrs.iter_mut() {
        if let Some(old) = e.attrs.get(name)
            && same_instances(old, instances)
        {
            instances.clone_from(old);
        }
    }
    let now = ngsi::entity::now();
    e.replace_with(new, now);
    Ok((Change::Put(e), Imported::Updated))
}

/// Whether two sets of instances say the same, timestamps aside at every level
/// (sub-attributes included).
fn same_instances(old: &[Attribute], new: &[Attribute]) -> bool {
    fn timeless(a: &Attribute) -> Attribute {
        Attribute {
            created_at: chrono::DateTime::UNIX_EPOCH,
            modified_at: chrono::DateTime::UNIX_EPOCH,
            sub_attrs: a
                .sub_attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(timeless).collect()))
                .collect(),
            ..a.clone()
        }
    }
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| timeless(a) == timeless(b))
}

/// Whether two sets of instances say the same, whenever they were written (top-level
/// timestamps aside; sub-attributes are compared whole).
fn same_content(old: &[Attribute], new: &[Attribute]) -> bool {
    let timeless = |a: &Attribute| Attribute {
        created_at: chrono::DateTime::UNIX_EPOCH,
        modified_at: chrono::DateTime::UNIX_EPOCH,
        ..a.clone()
    };
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| timeless(a) == timeless(b))
}

fn check_size(e: &Entity) -> Result<(), Error> {
    if e.attrs.len() > ngsi::entity::MAX_ATTRIBUTES {
        return Err(Error::bad_data(format!(
            "an entity may hold at most {} attributes",
            ngsi::entity::MAX_ATTRIBUTES
        )));
    }
    Ok(())
}

/// An append body may repeat the entity's type; naming another type is refused.
fn check_type_change(e: &Entity, body: &Map<String, Value>, reader: &Reader) -> Result<(), Error> {
    if let Some(t) = body.get("type") {
        let types = reader.types(Some(t))?;
        if types.iter().any(|t| !e.has_type(t)) {
            return Err(Error::bad_data(
                "appending attributes cannot change the entity type",
            ));
        }
    }
    Ok(())
}

/// Instances to delete: (expanded attribute name, datasetId).
type Deletions = Vec<(String, Option<String>)>;

/// Takes the attributes whose patch is NGSI-LD Null out of an update body: the body
/// without them, and the instances to delete.
fn split_null_deletions(
    body: &Map<String, Value>,
    ctx: &Context,
) -> Result<(Map<String, Value>, Deletions), Error> {
    let mut rest = Map::new();
    let mut deletions = Vec::new();
    for (name, patch) in body {
        let reserved = matches!(name.as_str(), "id" | "type" | "scope" | "@context");
        match ngsi::entity::null_deletion(patch) {
            Some(dataset) if !reserved => {
                deletions.push((ngsi::entity::expand_attr(name, ctx)?, dataset));
            }
            _ => {
                rest.insert(name.clone(), patch.clone());
            }
        }
    }
    Ok((rest, deletions))
}

/// Deletes the instances NGSI-LD Null named, reporting each as updated or not.
fn delete_instances(e: &mut Entity, deletions: Deletions, result: &mut UpdateResult) {
    for (name, dataset) in deletions {
        if e.remove_instance(&name, dataset.as_deref()) {
            result.updated.push(name);
        } else {
            result
                .not_updated
                .push((name, "no instance of the attribute to delete".into()));
        }
    }
}

/// Merge-patch of an entity (clause 5.6.17): attributes merged member by member.
fn merge(e: &mut Entity, body: &Map<String, Value>, ctx: &Context) -> Result<(), Error> {
    let now = ngsi::entity::now();
    let reader = Reader { ctx, now };
    if let Some(t) = body.get("type") {
        for t in reader.types(Some(t))? {
            if !e.has_type(&t) {
                e.types.push(t);
            }
        }
    }
    if let Some(scope) = body.get("scope") {
        if scope.as_str() == Some(NGSI_LD_NULL) {
            e.scopes.clear();
        } else {
            let parsed = reader.entity(
                &serde_json::json!({"id": e.id, "type": "T", "scope": scope}),
                None,
            )?;
            e.scopes = parsed.scopes;
        }
    }
    for (name, patch) in body {
        if matches!(
            name.as_str(),
            "id" | "type" | "scope" | "@context" | "createdAt" | "modifiedAt"
        ) {
            continue;
        }
        let iri = ngsi::entity::expand_attr(name, ctx)?;
        if let Some(dataset) = ngsi::entity::null_deletion(patch) {
            e.remove_instance(&iri, dataset.as_deref());
            continue;
        }
        // The patch merges into the instance of its own datasetId (default: none).
        let dataset = patch.get("datasetId").and_then(Value::as_str);
        let base = e
            .attrs
            .get(&iri)
            .and_then(|v| v.iter().find(|i| i.dataset_id.as_deref() == dataset));
        let merged = match base {
            Some(current) if !patch.is_array() => {
                overlay_attribute(&attribute_json(current, ctx), patch)
            }
            _ => patch.clone(),
        };
        let mut instances = reader.attribute(name, &iri, &merged, 0)?;
        if let Some(old) = e.attrs.get(&iri) {
            for inst in &mut instances {
                if let Some(o) = old.iter().find(|o| o.dataset_id == inst.dataset_id) {
                    inst.created_at = o.created_at;
                }
            }
            // Instances of other datasets that the patch does not name stay.
            for o in old {
                if !instances.iter().any(|i| i.dataset_id == o.dataset_id) {
                    instances.push(o.clone());
                }
            }
        }
        e.attrs.insert(iri, instances);
    }
    check_size(e)?;
    e.modified_at = now;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// An entity read at time `t` (seconds).
    fn read(body: Value, t: i64) -> Entity {
        let now = chrono::DateTime::from_timestamp(t, 0).unwrap();
        Reader {
            ctx: &Context::core(),
            now,
        }
        .entity(&body, None)
        .unwrap()
    }

    fn light(power: i64) -> Value {
        json!({"id": "urn:x:1", "type": ["Streetlight", "Device"],
            "power": {"type": "Property", "value": power, "unitCode": "WTT",
                      "status": {"type": "Property", "value": "ok"}},
            "street": "Lê Duẩn"})
    }

    #[test]
    fn an_import_creates_what_is_missing() {
        let (change, imported) = import_change(None, read(light(1), 10)).unwrap();
        assert_eq!(imported, Imported::Created);
        assert!(matches!(change, Change::Put(e) if e.id == "urn:x:1"));
    }

    #[test]
    fn the_same_content_read_later_is_unchanged() {
        let stored = read(light(1), 10);
        let mut again = light(1);
        again["type"] = json!(["Device", "Streetlight"]);
        let (change, imported) = import_change(Some(stored), read(again, 99)).unwrap();
        assert_eq!(imported, Imported::Unchanged);
        assert!(matches!(change, Change::Unchanged));
    }

    #[test]
    fn a_changed_entity_keeps_the_instances_it_does_not_change() {
        let stored = read(light(1), 10);
        let mut new = light(2);
        new.as_object_mut().unwrap().remove("street");
        new["colour"] = json!("vàng");
        let (change, imported) = import_change(Some(stored.clone()), read(new, 99)).unwrap();
        assert_eq!(imported, Imported::Updated);
        let Change::Put(e) = change else {
            panic!("an update writes the entity")
        };
        let power = &e.attrs[&Context::core().expand("power")][0];
        assert_eq!(power.value, json!(2));
        assert_eq!(power.created_at.timestamp(), 10);
        assert_eq!(power.modified_at.timestamp(), 99);
        assert!(!e.attrs.values().any(|v| v[0].value == "Lê Duẩn"));
        assert_eq!(e.attrs.len(), 2);
        assert_eq!(e.created_at, stored.created_at);

        // Only the changed attribute differs from what was stored.
        let mut one = light(5);
        one["street"] = json!("Lê Duẩn");
        let (change, _) = import_change(Some(stored.clone()), read(one, 99)).unwrap();
        let Change::Put(e) = change else {
            panic!("an update writes the entity")
        };
        let street = Context::core().expand("street");
        assert_eq!(e.attrs[&street], stored.attrs[&street]);
    }
}
