//! The rules of changing an entity: one pure function per NGSI-LD write operation.
//!
//! Each rule takes the entity as it is stored (`None` when there is none), the
//! request's input and the time of the change, and answers an [`Outcome`]: what to
//! store, whether that creates the entity, and what to report attribute by attribute;
//! or the error the request gets. Rules do no I/O and know nothing of the store: the
//! hub runs them inside a store write, so the entity a rule sees is the one its
//! result commits over.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    Attribute, Entity, MAX_ATTRIBUTES, NGSI_LD_NULL, Reader, UpdateResult, expand_attr,
    null_deletion, overlay_attribute,
};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::render::{Format, RenderOptions, render_attribute};

/// What to store once a rule has run.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Store this entity (created or changed).
    Put(Entity),
    /// Delete the entity.
    Delete,
    /// Nothing to write.
    Unchanged,
}

/// A rule's answer: what to store, and what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub write: Write,
    /// Whether the write creates the entity.
    pub created: bool,
    pub result: UpdateResult,
}

impl Outcome {
    fn put(e: Entity) -> Outcome {
        Outcome::reporting(e, UpdateResult::default())
    }

    /// `e`, changed at `now`, to be written.
    fn modified(mut e: Entity, now: DateTime<Utc>) -> Outcome {
        e.modified_at = now;
        Outcome::put(e)
    }

    fn reporting(e: Entity, result: UpdateResult) -> Outcome {
        Outcome {
            write: Write::Put(e),
            created: false,
            result,
        }
    }
}

/// The error of a write to an entity that does not exist.
pub fn not_found(id: &str) -> Error {
    Error::not_found(format!("entity {id} not found"))
}

fn existing(before: Option<Entity>, id: &str) -> Result<Entity> {
    before.ok_or_else(|| not_found(id))
}

/// A new entity with nothing in it yet, created at `now`.
fn empty(id: String, now: DateTime<Utc>) -> Entity {
    Entity {
        id,
        types: Vec::new(),
        scopes: Vec::new(),
        attrs: BTreeMap::new(),
        created_at: now,
        modified_at: now,
    }
}

/// The bound on attributes, checked on what a change would store.
fn check_size(e: &Entity) -> Result<()> {
    if e.attrs.len() > MAX_ATTRIBUTES {
        return Err(Error::bad_data(format!(
            "an entity may hold at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    Ok(())
}

/// POST /entities and batch create: the entity as given, if there is none of its id.
pub fn create(before: Option<Entity>, new: Entity) -> Result<Outcome> {
    if before.is_some() {
        return Err(Error::already_exists(format!(
            "entity {} already exists",
            new.id
        )));
    }
    Ok(Outcome {
        created: true,
        ..Outcome::put(new)
    })
}

/// DELETE /entities/{id} and batch delete.
pub fn delete(before: Option<Entity>, id: &str) -> Result<Outcome> {
    existing(before, id)?;
    Ok(Outcome {
        write: Write::Delete,
        created: false,
        result: UpdateResult::default(),
    })
}

/// PUT /entities/{id}: the content replaced, the id and creation time kept.
pub fn replace(before: Option<Entity>, new: Entity, now: DateTime<Utc>) -> Result<Outcome> {
    let mut e = existing(before, &new.id)?;
    e.replace_with(new, now);
    Ok(Outcome::put(e))
}

/// POST /entities/{id}/attrs: attributes added; with `overwrite` false
/// (options=noOverwrite) existing instances stay. The body may repeat the entity's
/// type but not name another; its scopes replace the entity's, or (noOverwrite) are
/// added to them (clause 5.6.3).
pub fn append(
    before: Option<Entity>,
    id: &str,
    body: &Map<String, Value>,
    ctx: &Context,
    overwrite: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    let reader = Reader { ctx, now };
    let attrs = reader.attributes(body)?;
    if let Some(t) = body.get("type")
        && reader.types(Some(t))?.iter().any(|t| !e.has_type(t))
    {
        return Err(Error::bad_data(
            "appending attributes cannot change the entity type",
        ));
    }
    let mut result = e.append(attrs, overwrite, now);
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
    check_size(&e)?;
    Ok(Outcome::reporting(e, result))
}

/// PATCH /entities/{id}/attrs: existing attributes updated, the others reported;
/// NGSI-LD Null deletes an instance. Types may be added; scopes are updated only where
/// there are some (clause 5.6.2). Nothing is written when nothing was updated.
pub fn update(
    before: Option<Entity>,
    id: &str,
    body: &Map<String, Value>,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    let reader = Reader { ctx, now };
    let (body, deletions) = split_null_deletions(body, ctx)?;
    let attrs = reader.attributes(&body)?;
    let mut result = e.update(attrs, now);
    for (name, dataset) in deletions {
        if e.remove_instance(&name, dataset.as_deref()) {
            result.updated.push(name);
        } else {
            result
                .not_updated
                .push((name, "no instance of the attribute to delete".into()));
        }
    }
    if let Some(t) = body.get("type")
        && e.add_types(reader.types(Some(t))?)
    {
        result.updated.push("type".into());
    }
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
    if result.updated.is_empty() {
        return Ok(Outcome {
            write: Write::Unchanged,
            created: false,
            result,
        });
    }
    e.modified_at = now;
    Ok(Outcome::reporting(e, result))
}

/// Instances to delete: (expanded attribute name, datasetId).
type Deletions = Vec<(String, Option<String>)>;

/// Takes the attributes whose patch is NGSI-LD Null out of an update body: the body
/// without them, and the instances to delete.
fn split_null_deletions(
    body: &Map<String, Value>,
    ctx: &Context,
) -> Result<(Map<String, Value>, Deletions)> {
    let mut rest = Map::new();
    let mut deletions = Vec::new();
    for (name, patch) in body {
        let reserved = matches!(name.as_str(), "id" | "type" | "scope" | "@context");
        match null_deletion(patch) {
            Some(dataset) if !reserved => deletions.push((expand_attr(name, ctx)?, dataset)),
            _ => {
                rest.insert(name.clone(), patch.clone());
            }
        }
    }
    Ok((rest, deletions))
}

/// PATCH /entities/{id} and batch merge (clauses 5.6.17, 5.6.20): attributes merged
/// member by member into the instance of their datasetId, `urn:ngsi-ld:null` deletes;
/// types are added, scopes replaced (or cleared by null).
pub fn merge(
    before: Option<Entity>,
    id: &str,
    body: &Map<String, Value>,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    let reader = Reader { ctx, now };
    if let Some(t) = body.get("type") {
        e.add_types(reader.types(Some(t))?);
    }
    if let Some(scope) = body.get("scope") {
        if scope.as_str() == Some(NGSI_LD_NULL) {
            e.scopes.clear();
        } else {
            e.scopes = reader.scopes(Some(scope))?;
        }
    }
    for (name, patch) in body {
        if matches!(
            name.as_str(),
            "id" | "type" | "scope" | "@context" | "createdAt" | "modifiedAt"
        ) {
            continue;
        }
        let iri = expand_attr(name, ctx)?;
        if let Some(dataset) = null_deletion(patch) {
            e.remove_instance(&iri, dataset.as_deref());
            continue;
        }
        let dataset = patch.get("datasetId").and_then(Value::as_str);
        let base = e
            .attrs
            .get(&iri)
            .and_then(|v| v.iter().find(|i| i.dataset_id.as_deref() == dataset));
        let merged = match base {
            Some(current) if !patch.is_array() => {
                overlay_attribute(&normalized(current, ctx), patch)
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
    check_size(&e)?;
    Ok(Outcome::modified(e, now))
}

/// One instance in normalized form under `ctx`, as a patch is overlaid on it.
fn normalized(attr: &Attribute, ctx: &Context) -> Value {
    render_attribute(
        attr,
        &RenderOptions {
            format: Format::Normalized,
            ..RenderOptions::new(ctx)
        },
    )
}

/// PATCH /entities/{id}/attrs/{attr} (`name` expanded): the fragment's members
/// replace those of the instance of its datasetId; NGSI-LD Null deletes the instance.
pub fn patch_attr(
    before: Option<Entity>,
    id: &str,
    name: &str,
    fragment: &Value,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    if let Some(dataset) = null_deletion(fragment) {
        if !e.remove_instance(name, dataset.as_deref()) {
            return Err(Error::not_found(format!(
                "the entity has no instance of {} to delete",
                ctx.compact(name)
            )));
        }
        return Ok(Outcome::modified(e, now));
    }
    let dataset = fragment.get("datasetId").and_then(Value::as_str);
    let compact = ctx.compact(name);
    let inst = e
        .attrs
        .get_mut(name)
        .ok_or_else(|| Error::not_found(format!("the entity has no attribute {compact}")))?
        .iter_mut()
        .find(|i| i.dataset_id.as_deref() == dataset)
        .ok_or_else(|| Error::not_found("no instance of the attribute with this datasetId"))?;
    let merged = overlay_attribute(&normalized(inst, ctx), fragment);
    let Some(new) = Reader { ctx, now }
        .attribute(&compact, name, &merged, 0)?
        .pop()
    else {
        return Err(Error::bad_data("empty attribute"));
    };
    // A fragment patches the attribute it names; it cannot turn a Property into a
    // Relationship or another kind (clause 5.6.4: BadRequestData).
    if new.kind != inst.kind {
        return Err(Error::bad_data(format!(
            "{compact} is a {}, the fragment a {}",
            inst.kind.name(),
            new.kind.name()
        )));
    }
    inst.renew(new, now);
    Ok(Outcome::modified(e, now))
}

/// PUT /entities/{id}/attrs/{attr} (`name` expanded): each instance of the body
/// replaces the existing instance of its datasetId.
pub fn replace_attr(
    before: Option<Entity>,
    id: &str,
    name: &str,
    body: &Value,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    let compact = ctx.compact(name);
    let instances = Reader { ctx, now }.attribute(&compact, name, body, 0)?;
    let stored = e
        .attrs
        .get_mut(name)
        .ok_or_else(|| Error::not_found(format!("the entity has no attribute {compact}")))?;
    for inst in instances {
        stored
            .iter_mut()
            .find(|o| o.dataset_id == inst.dataset_id)
            .ok_or_else(|| Error::not_found("no instance of the attribute with this datasetId"))?
            .renew(inst, now);
    }
    Ok(Outcome::modified(e, now))
}

/// DELETE /entities/{id}/attrs/scope.
pub fn delete_scope(before: Option<Entity>, id: &str, now: DateTime<Utc>) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    if e.scopes.is_empty() {
        return Err(Error::not_found("the entity has no scope"));
    }
    e.scopes.clear();
    Ok(Outcome::modified(e, now))
}

/// DELETE /entities/{id}/attrs/{attr} (`name` expanded): the default instance, the
/// one of `dataset_id`, or all of them.
pub fn delete_attr(
    before: Option<Entity>,
    id: &str,
    name: &str,
    dataset_id: Option<&str>,
    delete_all: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, id)?;
    e.delete_attr(name, dataset_id, delete_all, now)?;
    Ok(Outcome::put(e))
}

/// POST /entityOperations/upsert: a missing entity is created; an existing one is
/// replaced (`replace`), or gains the types and attributes given, overwriting.
pub fn upsert(
    before: Option<Entity>,
    new: Entity,
    replace: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let Some(mut e) = before else {
        return create(None, new);
    };
    if replace {
        e.replace_with(new, now);
        return Ok(Outcome::put(e));
    }
    e.add_types(new.types);
    let result = e.append(new.attrs, true, now);
    check_size(&e)?;
    Ok(Outcome::reporting(e, result))
}

/// POST /entityOperations/update: the attributes of `new` appended to the existing
/// entity of its id (`overwrite` false for noOverwrite); types may be added, never
/// removed.
pub fn append_entity(
    before: Option<Entity>,
    new: Entity,
    overwrite: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut e = existing(before, &new.id)?;
    let mut result = e.append(new.attrs, overwrite, now);
    if e.add_types(new.types) {
        result.updated.push("type".into());
        e.modified_at = now;
    }
    check_size(&e)?;
    Ok(Outcome::reporting(e, result))
}

/// A bulk import's upsert: the entity becomes exactly `new` (attributes it lacks are
/// removed). Nothing is written when only timestamps would differ; of a changed
/// entity, the stored instances of unchanged attributes are kept as they are, so the
/// history records only what changed.
pub fn import(before: Option<Entity>, mut new: Entity, now: DateTime<Utc>) -> Result<Outcome> {
    check_size(&new)?;
    let Some(mut e) = before else {
        return create(None, new);
    };
    let same_set = |a: &[String], b: &[String]| {
        a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
    };
    let same_attrs = e.attrs.len() == new.attrs.len()
        && e.attrs
            .iter()
            .all(|(name, old)| new.attrs.get(name).is_some_and(|n| same_instances(old, n)));
    if same_attrs && same_set(&e.types, &new.types) && same_set(&e.scopes, &new.scopes) {
        return Ok(Outcome {
            write: Write::Unchanged,
            created: false,
            result: UpdateResult::default(),
        });
    }
    for (name, instances) in new.attrs.iter_mut() {
        if let Some(old) = e.attrs.get(name)
            && same_instances(old, instances)
        {
            instances.clone_from(old);
        }
    }
    e.replace_with(new, now);
    Ok(Outcome::put(e))
}

/// Whether two sets of instances say the same, timestamps aside at every level
/// (sub-attributes included).
fn same_instances(old: &[Attribute], new: &[Attribute]) -> bool {
    fn timeless(a: &Attribute) -> Attribute {
        Attribute {
            created_at: DateTime::UNIX_EPOCH,
            modified_at: DateTime::UNIX_EPOCH,
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
        created_at: DateTime::UNIX_EPOCH,
        modified_at: DateTime::UNIX_EPOCH,
        ..a.clone()
    };
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| timeless(a) == timeless(b))
}

/// A device's readings (the IoT agent's update): `measures` overwrite their
/// attributes; `statics` are written only where the entity lacks them or holds other
/// content (timestamps aside), so an unchanged static attribute adds no history. A
/// missing entity is created with `types`; an existing one gains them.
pub fn record_measures(
    before: Option<Entity>,
    id: &str,
    types: Vec<String>,
    measures: BTreeMap<String, Vec<Attribute>>,
    statics: BTreeMap<String, Vec<Attribute>>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let created = before.is_none();
    if created && types.is_empty() {
        return Err(Error::bad_data("a new entity needs a type"));
    }
    let mut e = before.unwrap_or_else(|| empty(id.to_string(), now));
    e.add_types(types);
    let stale: BTreeMap<String, Vec<Attribute>> = statics
        .into_iter()
        .filter(|(name, new)| e.attrs.get(name).is_none_or(|old| !same_content(old, new)))
        .collect();
    let mut result = e.append(stale, true, now);
    let measured = e.append(measures, true, now);
    result.updated.extend(measured.updated);
    check_size(&e)?;
    Ok(Outcome {
        created,
        ..Outcome::reporting(e, result)
    })
}

/// Provided history (POST /temporal/entities): the current state takes each given
/// instance, `latest` holding one per attribute and datasetId, unless the stored one
/// was observed later. A missing entity is created with `types` unless `must_exist`.
pub fn add_latest(
    before: Option<Entity>,
    id: &str,
    types: Vec<String>,
    latest: Vec<(String, Attribute)>,
    must_exist: bool,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let created = before.is_none();
    let mut e = match before {
        Some(e) => e,
        None if must_exist => return Err(not_found(id)),
        None if types.is_empty() => {
            return Err(Error::bad_data("a new temporal entity needs a type"));
        }
        None => empty(id.to_string(), now),
    };
    e.add_types(types);
    for (name, inst) in latest {
        let current = e.attrs.entry(name).or_default();
        match current.iter_mut().find(|a| a.dataset_id == inst.dataset_id) {
            Some(old) if old.observed_at.is_some_and(|o| Some(o) > inst.observed_at) => {}
            Some(old) => old.renew(inst, now),
            None => current.push(inst),
        }
    }
    e.modified_at = now;
    Ok(Outcome {
        created,
        ..Outcome::put(e)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
