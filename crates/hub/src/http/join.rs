//! Linked entities (NGSI-LD v1.8, clause 4.5.23): `join=inline` puts the entity a
//! Relationship points to inside that Relationship (as `entity`, or in place of the
//! target's id in the simplified form); `join=flat` lists the targets after the
//! entities asked for. `joinLevel` follows the targets' own relationships that many
//! hops. Targets the caller may not read are left out, as a query would leave them.

use std::collections::{HashMap, HashSet};

use ngsi::entity::AttrKind;
use ngsi::render::{Format, RenderOptions, render_entity};
use ngsi::{Entity, Error};
use serde_json::{Map, Value};
use store::EntityQuery;

use super::params::Params;
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

/// The ids the Relationships of these entities point to.
fn targets(entities: &[Entity]) -> Vec<String> {
    let mut out = Vec::new();
    for e in entities {
        for inst in e.attrs.values().flatten() {
            match (&inst.kind, &inst.value) {
                (AttrKind::Relationship, Value::String(id)) => out.push(id.clone()),
                (AttrKind::ListRelationship, Value::Array(ids)) => {
                    out.extend(ids.iter().filter_map(Value::as_str).map(str::to_string));
                }
                _ => {}
            }
        }
    }
    out
}

/// The entities reachable from `roots` in at most `level` hops, in the order found.
pub async fn linked(
    hub: &Hub,
    scope: &Scope,
    roots: &[Entity],
    level: usize,
) -> Result<Vec<Entity>, Error> {
    let mut seen: HashSet<String> = roots.iter().map(|e| e.id.clone()).collect();
    let mut found: Vec<Entity> = Vec::new();
    let mut frontier = targets(roots);
    for _ in 0..level {
        frontier.retain(|id| seen.insert(id.clone()));
        frontier.truncate(MAX_LINKED.saturating_sub(found.len()));
        if frontier.is_empty() {
            break;
        }
        let query = EntityQuery {
            limit: frontier.len(),
            ids: std::mem::take(&mut frontier),
            ..Default::default()
        };
        let page = hub.query(scope, query).await?;
        frontier = targets(&page.entities);
        found.extend(page.entities);
    }
    Ok(found)
}

/// How linked entities are rendered: as the entities asked for, without their
/// projection (`attrs`, `pick`, `omit` select members of those entities only).
pub fn linked_options<'a>(opts: &RenderOptions<'a>) -> RenderOptions<'a> {
    let mut out = RenderOptions::new(opts.ctx);
    out.format = opts.format;
    out.sys_attrs = opts.sys_attrs;
    out.lang = opts.lang.clone();
    out
}

/// Puts the linked entities inside the rendered entity's Relationships, `depth` deep.
pub fn inline(
    rendered: &mut Map<String, Value>,
    e: &Entity,
    opts: &RenderOptions,
    linked: &HashMap<&str, &Entity>,
    depth: usize,
) {
    if depth == 0 {
        return;
    }
    let inner = linked_options(opts);
    let render_target = |id: &str| -> Option<Value> {
        let target = linked.get(id)?;
        let mut m = render_entity(target, &inner);
        inline(&mut m, target, &inner, linked, depth - 1);
        Some(Value::Object(m))
    };
    for (name, instances) in &e.attrs {
        if !instances.iter().any(|i| i.kind == AttrKind::Relationship) {
            continue;
        }
        let Some(slot) = rendered.get_mut(&opts.ctx.compact(name)) else {
            continue;
        };
        let slots: Vec<&mut Value> = match slot {
            Value::Array(items) => items.iter_mut().collect(),
            one => vec![one],
        };
        for slot in slots {
            match (opts.format, &mut *slot) {
                (Format::KeyValues, Value::String(id)) => {
                    if let Some(v) = render_target(id) {
                        *slot = v;
                    }
                }
                (_, Value::Object(rel)) => {
                    let target = rel
                        .get("object")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if let Some(v) = target.and_then(|id| render_target(&id)) {
                        rel.insert("entity".into(), v);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The rendered entities with their links joined: inline, one value per entity; flat,
/// the entities then each linked entity once.
pub async fn with_links(
    hub: &Hub,
    scope: &Scope,
    roots: &[Entity],
    rendered: Vec<Map<String, Value>>,
    opts: &RenderOptions<'_>,
    (join, level): (Join, usize),
) -> Result<Vec<Value>, Error> {
    let linked = linked(hub, scope, roots, level).await?;
    Ok(match join {
        Join::Inline => {
            let by_id: HashMap<&str, &Entity> = roots
                .iter()
                .chain(linked.iter())
                .map(|e| (e.id.as_str(), e))
                .collect();
            roots
                .iter()
                .zip(rendered)
                .map(|(e, mut r)| {
                    inline(&mut r, e, opts, &by_id, level);
                    Value::Object(r)
                })
                .collect()
        }
        Join::Flat => {
            let inner = linked_options(opts);
            rendered
                .into_iter()
                .map(Value::Object)
                .chain(
                    linked
                        .iter()
                        .map(|e| Value::Object(render_entity(e, &inner))),
                )
                .collect()
        }
    })
}
