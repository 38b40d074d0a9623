//! Reads: entity lookup, queries (SQL narrows with indexes, the model decides), discovery.

use std::collections::BTreeMap;

use ngsi::Entity;
use ngsi::query::ast::{AttrPath, CompareOp, QExpr, QTerm, QValue, TypeExpr};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::sql_error;
use crate::{AttributeSummary, EntityQuery, QueryPage, StoreError, StoreResult, TypeSummary};

fn parse_doc(id_hint: &str, doc: &str) -> StoreResult<Entity> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Other(format!("corrupt entity {id_hint}: {e}")))
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

/// SQL text and its parameters, built together.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<SqlValue>,
}

impl Sql {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn bind(&mut self, v: impl Into<SqlValue>) {
        self.text.push('?');
        self.params.push(v.into());
    }
    fn bind_list<T: Into<SqlValue> + Clone>(&mut self, items: &[T]) {
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(item.clone());
        }
        self.push(")");
    }
}

fn type_condition(sql: &mut Sql, tenant: &str, expr: &TypeExpr) {
    match expr {
        TypeExpr::Type(t) => {
            sql.push("e.rowid IN (SELECT entity FROM entity_types WHERE tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND type = ");
            sql.bind(t.clone());
            sql.push(")");
        }
        TypeExpr::Or(items) if items.iter().all(|i| matches!(i, TypeExpr::Type(_))) => {
            let names: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    if let TypeExpr::Type(t) = i {
                        Some(t.clone())
                    } else {
                        None
                    }
                })
                .collect();
            sql.push("e.rowid IN (SELECT entity FROM entity_types WHERE tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND type IN ");
            sql.bind_list(&names);
            sql.push(")");
        }
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            let joiner = if matches!(expr, TypeExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                type_condition(sql, tenant, item);
            }
            sql.push(")");
        }
    }
}

fn is_plain(path: &AttrPath) -> bool {
    path.sub_attrs.is_empty() && path.compound.is_empty()
}

/// A condition that every entity matching `expr` meets (it may let through more: the
/// model's evaluation decides). None when the indexes cannot narrow usefully.
fn q_prefilter(expr: &QExpr) -> Option<Sql> {
    match expr {
        QExpr::And(items) => {
            let parts: Vec<Sql> = items.iter().filter_map(q_prefilter).collect();
            join(parts, " AND ")
        }
        QExpr::Or(items) => {
            let parts: Vec<Sql> = items.iter().map(q_prefilter).collect::<Option<_>>()?;
            join(parts, " OR ")
        }
        QExpr::Term(QTerm::Compare { path, op, value }) if is_plain(path) => {
            compare_prefilter(&path.attr, *op, value)
        }
        QExpr::Term(_) => None,
    }
}

fn join(parts: Vec<Sql>, joiner: &str) -> Option<Sql> {
    if parts.is_empty() {
        return None;
    }
    let mut out = Sql::default();
    out.push("(");
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(joiner);
        }
        out.text.push_str(&p.text);
        out.params.extend(p.params);
    }
    out.push(")");
    Some(out)
}

enum Col {
    Num(f64),
    Txt(String),
}

fn column_value(v: &QValue) -> Option<Col> {
    match v {
        QValue::Number(n) => Some(Col::Num(*n)),
        QValue::Text(s) | QValue::Uri(s) => Some(Col::Txt(s.clone())),
        QValue::Bool(b) => Some(Col::Txt(b.to_string())),
        _ => None,
    }
}

fn compare_prefilter(attr: &str, op: CompareOp, value: &QValue) -> Option<Sql> {
    let mut sql = Sql::default();
    match (op, value) {
        // Equality is usually selective: gather the few matching entities from the index.
        (CompareOp::Eq, QValue::List(items)) => {
            let cols: Vec<Col> = items.iter().map(column_value).collect::<Option<_>>()?;
            let nums: Vec<f64> = cols
                .iter()
                .filter_map(|c| if let Col::Num(n) = c { Some(*n) } else { None })
                .collect();
            let txts: Vec<String> = cols
                .iter()
                .filter_map(|c| {
                    if let Col::Txt(t) = c {
                        Some(t.clone())
                    } else {
                        None
                    }
                })
                .collect();
            sql.push("e.rowid IN (SELECT entity FROM attr_values WHERE name = ");
            sql.bind(attr.to_string());
            sql.push(" AND (");
            if nums.is_empty() {
                sql.push("0");
            } else {
                sql.push("num IN ");
                sql.bind_list(&nums);
            }
            sql.push(" OR ");
            if txts.is_empty() {
                sql.push("0");
            } else {
                sql.push("txt IN ");
                sql.bind_list(&txts);
            }
            sql.push("))");
        }
        (CompareOp::Eq, v) => {
            let col = column_value(v)?;
            sql.push("e.rowid IN (SELECT entity FROM attr_values WHERE name = ");
            sql.bind(attr.to_string());
            match col {
                Col::Num(n) => {
                    sql.push(" AND num = ");
                    sql.bind(n);
                }
                Col::Txt(t) => {
                    sql.push(" AND txt = ");
                    sql.bind(t);
                }
            }
            sql.push(")");
        }
        // Ranges and orderings are often broad: test each candidate through its row.
        (CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge, QValue::Number(n)) => {
            let sym = match op {
                CompareOp::Lt => " < ",
                CompareOp::Le => " <= ",
                CompareOp::Gt => " > ",
                _ => " >= ",
            };
            sql.push("EXISTS (SELECT 1 FROM attr_values a WHERE a.entity = e.rowid AND a.name = ");
            sql.bind(attr.to_string());
            sql.push(" AND a.num");
            sql.push(sym);
            sql.bind(*n);
            sql.push(")");
        }
        _ => return None,
    }
    Some(sql)
}

pub fn query(c: &Connection, tenant: &str, q: &EntityQuery) -> StoreResult<QueryPage> {
    let mut sql = Sql::default();
    // With one type, walk that type's index: rows come in entity order, and a page
    // stops reading as soon as it is full.
    let single_type = match &q.types {
        Some(TypeExpr::Type(t)) => Some(t.clone()),
        _ => None,
    };
    match &single_type {
        Some(t) => {
            sql.push("SELECT e.rowid, e.id, e.doc FROM entity_types t JOIN entities e ON e.rowid = t.entity WHERE t.tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND t.type = ");
            sql.bind(t.clone());
        }
        None => {
            sql.push("SELECT e.rowid, e.id, e.doc FROM entities e WHERE e.tenant = ");
            sql.bind(tenant.to_string());
            if let Some(types) = &q.types {
                sql.push(" AND ");
                type_condition(&mut sql, tenant, types);
            }
        }
    }
    if !q.ids.is_empty() {
        sql.push(" AND e.id IN ");
        sql.bind_list(&q.ids);
    }
    if !q.attrs.is_empty() {
        sql.push(" AND e.rowid IN (SELECT entity FROM attr_index WHERE name IN ");
        sql.bind_list(&q.attrs);
        sql.push(")");
    }
    if let Some(pre) = q.q.as_ref().and_then(|f| q_prefilter(f.expr())) {
        sql.push(" AND ");
        sql.text.push_str(&pre.text);
        sql.params.extend(pre.params);
    }
    if let Some(geo) = &q.geo
        && let Some((x0, y0, x1, y1)) = geo.search_box()
    {
        sql.push(" AND e.rowid IN (SELECT g.entity FROM geo_rtree r JOIN geo_attr g ON g.id = r.id WHERE r.max_x >= ");
        sql.bind(x0);
        sql.push(" AND r.min_x <= ");
        sql.bind(x1);
        sql.push(" AND r.max_y >= ");
        sql.bind(y0);
        sql.push(" AND r.min_y <= ");
        sql.bind(y1);
        sql.push(" AND g.name = ");
        sql.bind(geo.query.geoproperty.clone());
        sql.push(")");
    }
    let order = if single_type.is_some() {
        " ORDER BY t.entity"
    } else {
        " ORDER BY e.rowid"
    };
    sql.push(order);

    let exact = q.q.is_none() && q.geo.is_none() && q.scope.is_none() && q.id_pattern.is_none();
    if exact {
        // The SQL alone decides: let the database page and count.
        let count = if q.count {
            let count_sql = format!("SELECT COUNT(*) FROM ({})", sql.text);
            let n: i64 = c
                .prepare(&count_sql)
                .and_then(|mut s| s.query_row(params_from_iter(sql.params.iter()), |r| r.get(0)))
                .map_err(sql_error)?;
            Some(n.max(0) as u64)
        } else {
            None
        };
        sql.push(" LIMIT ");
        sql.bind(q.limit as i64);
        sql.push(" OFFSET ");
        sql.bind(q.offset as i64);
        let mut stmt = c.prepare(&sql.text).map_err(sql_error)?;
        let mut rows = stmt
            .query(params_from_iter(sql.params.iter()))
            .map_err(sql_error)?;
        let mut entities = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            let id: String = row.get(1).map_err(sql_error)?;
            let doc: String = row.get(2).map_err(sql_error)?;
            entities.push(parse_doc(&id, &doc)?);
        }
        return Ok(QueryPage { entities, count });
    }

    let mut stmt = c.prepare(&sql.text).map_err(sql_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(sql_error)?;
    let mut entities = Vec::new();
    let mut matched = 0usize;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let id: String = row.get(1).map_err(sql_error)?;
        let doc: String = row.get(2).map_err(sql_error)?;
        let entity = parse_doc(&id, &doc)?;
        if !q.matches(&entity) {
            continue;
        }
        matched += 1;
        if matched > q.offset && entities.len() < q.limit {
            entities.push(entity);
        } else if !q.count && entities.len() >= q.limit {
            break;
        }
    }
    Ok(QueryPage {
        entities,
        count: q.count.then_some(matched as u64),
    })
}

pub fn types(c: &Connection, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
    let mut out: BTreeMap<String, TypeSummary> = BTreeMap::new();
    let mut s = c
        .prepare_cached("SELECT type, COUNT(*) FROM entity_types WHERE tenant = ?1 GROUP BY type")
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
            "SELECT DISTINCT t.type, a.name, a.kind FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1",
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

fn kind_of(name: &str) -> Option<ngsi::AttrKind> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

pub fn attributes(c: &Connection, tenant: &str) -> StoreResult<Vec<AttributeSummary>> {
    let mut out: BTreeMap<String, AttributeSummary> = BTreeMap::new();
    let mut s = c
        .prepare_cached(
            "SELECT a.name, a.kind, COUNT(*) FROM attr_index a JOIN entities e ON e.rowid = a.entity WHERE e.tenant = ?1 GROUP BY a.name, a.kind",
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
        let entry = out.entry(name.clone()).or_insert_with(|| AttributeSummary {
            name_iri: name,
            attribute_count: 0,
            type_names: Default::default(),
            kinds: Default::default(),
        });
        entry.attribute_count += n.max(0) as u64;
        if let Some(k) = kind_of(&kind) {
            entry.kinds.insert(k);
        }
    }
    let mut s = c
        .prepare_cached("SELECT DISTINCT a.name, t.type FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = ?1")
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
