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

/// The rows of a discovery statement over one tenant (its `?1`), each read by `row`.
fn tenant_rows<T>(
    c: &Connection,
    sql: &str,
    tenant: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut s = c.prepare_cached(sql).map_err(sql_error)?;
    let rows = s.query_map([tenant], row).map_err(sql_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
}

pub fn types(c: &Connection, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
    let mut out: BTreeMap<String, TypeSummary> = BTreeMap::new();
    let counts = tenant_rows(
        c,
        "SELECT n.name, COUNT(*) FROM entity_types t JOIN names n ON n.id = t.type WHERE t.tenant = ?1 GROUP BY t.type",
        tenant,
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (t, n) in counts {
        TypeSummary::count(&mut out, t, n);
    }
    let attributes = tenant_rows(
        c,
        "SELECT tn.name, an.name, kn.name FROM (SELECT DISTINCT t.type, a.name, a.kind FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1) d JOIN names tn ON tn.id = d.type JOIN names an ON an.id = d.name JOIN names kn ON kn.id = d.kind",
        tenant,
        |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?)),
    )?;
    for (t, name, kind) in attributes {
        TypeSummary::note_attribute(&mut out, &t, name, &kind);
    }
    Ok(out.into_values().collect())
}

pub fn attributes(c: &Connection, tenant: &str) -> StoreResult<Vec<AttributeSummary>> {
    let mut out: BTreeMap<String, AttributeSummary> = BTreeMap::new();
    let counts = tenant_rows(
        c,
        "SELECT an.name, kn.name, d.n FROM (SELECT a.name, a.kind, COUNT(*) AS n FROM attr_index a JOIN entities e ON e.rowid = a.entity WHERE e.tenant = ?1 GROUP BY a.name, a.kind) d JOIN names an ON an.id = d.name JOIN names kn ON kn.id = d.kind",
        tenant,
        |r| Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?)),
    )?;
    for (name, kind, n) in counts {
        AttributeSummary::count(&mut out, name, &kind, n);
    }
    let types = tenant_rows(
        c,
        "SELECT an.name, tn.name FROM (SELECT DISTINCT a.name, t.type FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1) d JOIN names an ON an.id = d.name JOIN names tn ON tn.id = d.type",
        tenant,
        |r| Ok((r.get::<_, String>(0)?, r.get(1)?)),
    )?;
    for (name, t) in types {
        AttributeSummary::note_type(&mut out, &name, t);
    }
    Ok(out.into_values().collect())
}
