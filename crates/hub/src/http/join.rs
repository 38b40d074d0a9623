//! Linked entities (NGSI-LD v1.8, clause 4.5.23): `join=inline` puts the entity a
//! Relationship points to inside that Relationship (as `entity`, or in place of the
//! target's id in the simplified form); `join=flat` lists the targets after the
//! entities asked for. `joinLevel` follows the targets' own relationships that many
//! hops. Targets the caller may not read are left out, as a query would leave them.
//! The notifier joins a notification's entities the same way ([`LinkSource::Tenant`]).

use std::collections::{HashMap, HashSet};

use ngsi::entity::AttrKind;
use ngsi::render::{Format, RenderOptions, render_entity};
use ngsi::{Entity, Error};
use serde_json::{Map, Value};
use store::{EntityQuery, Store};

use super::params::Params;
use super::projection::Projection;
use crate::{Hub, Scope};

/// The deepest `joinLevel` served.
const MAX_JOIN_LEVEL: usize = 5;
/// Most linked entities fetched for one answer.
const MAX_LINKED: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    Inline,
    Flat,
}

/// `join` and `joinLevel`: None when no join is asked for (`join` absent or `@none`).
pub fn join_spec(p: &Params) -> Result<Option<(Join, usize)>, Error> {
    let join = match p.get("join") {
        None | Some("@none") => return Ok(None),
        Some("inline") => Join::Inline,
        Some("flat") => Join::Flat,
        Some(other) => {
            return Err(Error::bad_data(format!(
                "join must be inline, flat or @none, not {other:?}"
            )));
        }
    };
    let level = match p.get("joinLevel") {
        None => 1,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_JOIN_LEVEL).contains(n))
            .ok_or_else(|| {
                Error::bad_data(format!(
                    "joinLevel must be an integer from 1 to {MAX_JOIN_LEVEL}"
                ))
            })?,
    };
    Ok(Some((join, level)))
}

/// The ids the Relationships of an entity point to, with the name of the
/// Relationship, of the attributes `follow` accepts (by expanded name).
fn targets(e: &Entity, follow: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, instances) in e.attrs.iter().filter(|(name, _)| follow(name)) {
        for inst in instances {
            match (&inst.kind, &inst.value) {
                (AttrKind::Relationship, Value::String(id)) => out.push((id.clone(), name.clone())),
                (AttrKind::ListRelationship, Value::Array(ids)) => out.extend(
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(|id| (id.to_string(), name.clone())),
                ),
                _ => {}
            }
        }
    }
    out
}

/// Where linked entities are read from.
pub enum LinkSource<'a> {
    /// As a caller, whose grants filter them as they filter a query.
    Caller(&'a Hub, &'a Scope),
    /// A tenant's entities, all of them: for a notification, whose subscription only
    /// a caller who may read every entity can create.
    Tenant(&'a dyn Store, &'a str),
}

impl LinkSource<'_> {
    async fn read(&self, query: EntityQuery) -> Result<Vec<Entity>, Error> {
        match self {
            LinkSource::Caller(hub, scope) => Ok(hub.query(scope, query).await?.entities),
            LinkSource::Tenant(store, tenant) => store
                .query(tenant, query)
                .await
                .map(|page| page.entities)
                .map_err(crate::service::store_error),
        }
    }
}

/// A linked entity, with the projection of the Relationship it was reached by
/// (`locatedAt{name}`), if any.
pub struct Linked {
    pub entity: Entity,
    pub projection: Option<Projection>,
}

/// The entities reachable from `roots` in at most `level` hops, in the order found.
/// Of the roots, only the Relationships their projection keeps (`attrs`, `pick`,
/// `omit` in `opts`) are followed: a link the answer does not show is not joined.
pub async fn linked(
    reader: &LinkSource<'_>,
    roots: &[Entity],
    opts: &RenderOptions<'_>,
    projection: Option<&Projection>,
    level: usize,
) -> Result<Vec<Linked>, Error> {
    let mut seen: HashSet<String> = roots.iter().map(|e| e.id.clone()).collect();
    let mut found: Vec<Linked> = Vec::new();
    let shown = |name: &str| {
        opts.keep_attrs.as_ref().is_none_or(|k| k.contains(name)) && !opts.omit_attrs.contains(name)
    };
    // (target id, the projection it is to be rendered with)
    let next = |e: &Entity, p: Option<&Projection>, follow: &dyn Fn(&str) -> bool| {
        targets(e, follow)
            .into_iter()
            .map(|(id, rel)| {
                let child = p.and_then(|p| p.child(&rel, opts));
                (id, child)
            })
            .collect::<Vec<_>>()
    };
    let mut frontier: Vec<(String, Option<Projection>)> = roots
        .iter()
        .flat_map(|e| next(e, projection, &shown))
        .collect();
    for _ in 0..level {
        frontier.retain(|(id, _)| seen.insert(id.clone()));
        frontier.truncate(MAX_LINKED.saturating_sub(found.len()));
        if frontier.is_empty() {
            break;
        }
        let query = EntityQuery {
            limit: frontier.len(),
            ids: frontier.iter().map(|(id, _)| id.clone()).collect(),
            ..Default::default()
        };
        let entities = reader.read(query).await?;
        let mut projections: HashMap<String, Option<Projection>> =
            std::mem::take(&mut frontier).into_iter().collect();
        for entity in entities {
            let projection = projections.remove(&entity.id).flatten();
            let shown = |name: &str| projection.as_ref().is_none_or(|p| p.shows(name, opts));
            frontier.extend(next(&entity, projection.as_ref(), &shown));
            found.push(Linked { entity, projection });
        }
    }
    Ok(found)
}

/// How linked entities are rendered: as the entities asked for, without their
/// projection (`attrs`, `pick`, `omit` select members of those entities only), unless
/// the Relationship they were reached by has a braced projection of its own.
pub fn linked_options<'a>(
    opts: &RenderOptions<'a>,
    projection: Option<&Projection>,
) -> Result<RenderOptions<'a>, Error> {
    let mut out = RenderOptions::new(opts.ctx);
    out.format = opts.format;
    out.sys_attrs = opts.sys_attrs;
    out.lang = opts.lang.clone();
    match projection {
        Some(p) => p.apply(out),
        None => Ok(out),
    }
}

/// Puts the linked entities inside the rendered entity's Relationships, `depth` deep;
/// `projection` is the one `e` was rendered with, whose braced members project the
/// entities it links to.
pub fn inline(
    rendered: &mut Map<String, Value>,
    e: &Entity,
    opts: &RenderOptions,
    projection: Option<&Projection>,
    linked: &HashMap<&str, &Entity>,
    depth: usize,
) -> Result<(), Error> {
    if depth == 0 {
        return Ok(());
    }
    for (name, instances) in &e.attrs {
        if !instances.iter().any(|i| i.kind == AttrKind::Relationship) {
            continue;
        }
        let Some(slot) = rendered.get_mut(&opts.ctx.compact(name)) else {
            continue;
        };
        let child = projection.and_then(|p| p.child(name, opts));
        let inner = linked_options(opts, child.as_ref())?;
        let render_target = |id: &str| -> Result<Option<Value>, Error> {
            let Some(target) = linked.get(id) else {
                return Ok(None);
            };
            let mut m = render_entity(target, &inner);
            inline(&mut m, target, &inner, child.as_ref(), linked, depth - 1)?;
            Ok(Some(Value::Object(m)))
        };
        let slots: Vec<&mut Value> = match slot {
            Value::Array(items) => items.iter_mut().collect(),
            one => vec![one],
        };
        for slot in slots {
            match (opts.format, &mut *slot) {
                (Format::KeyValues, Value::String(id)) => {
                    if let Some(v) = render_target(id)? {
                        *slot = v;
                    }
                }
                (_, Value::Object(rel)) => {
                    let target = rel
                        .get("object")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if let Some(id) = target
                        && let Some(v) = render_target(&id)?
                    {
                        rel.insert("entity".into(), v);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The rendered entities with their links joined: inline, one value per entity; flat,
/// the entities then each linked entity once. `projection` is the request's `pick` or
/// `omit`, whose braced members project the linked entities.
pub async fn with_links(
    reader: &LinkSource<'_>,
    roots: &[Entity],
    rendered: Vec<Map<String, Value>>,
    opts: &RenderOptions<'_>,
    projection: Option<&Projection>,
    (join, level): (Join, usize),
) -> Result<Vec<Value>, Error> {
    let linked = linked(reader, roots, opts, projection, level).await?;
    Ok(match join {
        Join::Inline => {
            let by_id: HashMap<&str, &Entity> = roots
                .iter()
                .chain(linked.iter().map(|l| &l.entity))
                .map(|e| (e.id.as_str(), e))
                .collect();
            let mut out = Vec::with_capacity(rendered.len());
            for (e, mut r) in roots.iter().zip(rendered) {
                inline(&mut r, e, opts, projection, &by_id, level)?;
                out.push(Value::Object(r));
            }
            out
        }
        Join::Flat => {
            let mut out: Vec<Value> = rendered.into_iter().map(Value::Object).collect();
            for l in &linked {
                let inner = linked_options(opts, l.projection.as_ref())?;
                out.push(Value::Object(render_entity(&l.entity, &inner)));
            }
            out
        }
    })
}
