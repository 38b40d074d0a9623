//! Reads: entity lookup, queries (SQL narrows with indexes, the model decides), discovery.

use std::collections::BTreeMap;

use ngsi::Entity;
use rusqlite::{Connection, OptionalExtension, params};

use super::sql_error;
use crate::{AttributeSummary, StoreResult, TypeSummary};

fn parse_doc(id_hint: &str, doc: &str) -> StoreResult<Entity> {
    crate::project::parse(id_hint, doc, None)
}

pub fn tenant_exists(c: &Connection, tenant: &str) -> StoreResult<bool> {
    if tenant.is_empty() {
        return Ok(true);
    }
    c.prepare_cached("SELECT 1 FROM tenants WHERE name = ?1")
        .and_then(|mut s| s.exists([tenant]))
        .map_err(sql_error)
}

pub fn tenants(c: &Connection) -> StoreResult<Vec<String>> {
    let mut s = c
        .prepare_cached("SELECT name FROM tenants WHERE name <> '' ORDER BY name")
        .map_err(sql_error)?;
    let rows = s.query_map([], |r| r.get(0)).map_err(sql_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
}

pub fn get(c: &Connection, tenant: &str, id: &str) -> StoreResult<Option<Entity>> {
    let doc: Option<String> = c
        .prepare_cached("SELECT doc FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![tenant, id], |r| r.get(0)).optional())
        .map_err(sql_error)?;
    doc.map(|d| parse_doc(id, &d)).transpose()
}

pub fn cached_context(c: &Connection, url: &str) -> StoreResult<Option<String>> {
    c.prepare_cached("SELECT body FROM contexts WHERE url = ?1")
        .and_then(|mut s| s.query_row([url], |r| r.get(0)).optional())
        .map_err(sql_error)
}

pub fn types(c: &Connection, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
    let mut out: BTreeMap<String, TypeSummary> = BTreeMap::new();
    let mut s = c
        .prepare_cached("SELECT n.name, COUNT(*) FROM entity_types t JOIN names n ON n.id = t.type WHERE t.tenant = ?1 GROUP BY t.type")
        .map_err(sql_error)?;
    let rows = s
        .query_map([tenant], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (t, n) = row.map_err(sql_error)?;
        out.insert(
            t.clone(),
            TypeSummary {
                type_iri: t,
                entity_count: n.max(0) as u64,
                attributes: BTreeMap::new(),
            },
        );
    }
    let mut s = c
        .prepare_cached(
            "SELECT tn.name, an.name, kn.name FROM (SELECT DISTINCT t.type, a.name, a.kind FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1) d JOIN names tn ON tn.id = d.type JOIN names an ON an.id = d.name JOIN names kn ON kn.id = d.kind",
        )
        .map_err(sql_error)?;
    let rows = s
        .query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (t, name, kind) = row.map_err(sql_error)?;
        if let (Some(summary), Some(kind)) = (out.get_mut(&t), kind_of(&kind)) {
            summary.attributes.entry(name).or_default().insert(kind);
        }
    }
    Ok(out.into_values().collect())
}

use crate::rows::kind_of;

pub fn attributes(c: &Connection, tenant: &str) -> StoreResult<Vec<AttributeSummary>> {
    let mut out: BTreeMap<String, AttributeSummary> = BTreeMap::new();
    let mut s = c
        .prepare_cached(
            "SELECT an.name, kn.name, d.n FROM (SELECT a.name, a.kind, COUNT(*) AS n FROM attr_index a JOIN entities e ON e.rowid = a.entity WHERE e.tenant = ?1 GROUP BY a.name, a.kind) d JOIN names an ON an.id = d.name JOIN names kn ON kn.id = d.kind",
        )
        .map_err(sql_error)?;
    let rows = s
        .query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (name, kind, n) = row.map_err(sql_error)?;
        AttributeSummary::count(&mut out, name, &kind, n);
    }
    let mut s = c
        .prepare_cached("SELECT an.name, tn.name FROM (SELECT DISTINCT a.name, t.type FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1) d JOIN names an ON an.id = d.name JOIN names tn ON tn.id = d.type")
        .map_err(sql_error)?;
    let rows = s
        .query_map([tenant], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (name, t) = row.map_err(sql_error)?;
        if let Some(entry) = out.get_mut(&name) {
            entry.type_names.insert(t);
        }
    }
    Ok(out.into_values().collect())
}
