//! Turning an [`EntityQuery`] into SQL, and running it.
//!
//! SQL narrows, the model decides. Each condition becomes SQL in one of two roles:
//! - the **driver**, the one set of rows the query walks. It is the most selective
//!   of: an equality or range of `q` read from the value index, the geo-query's
//!   search box in the R*Tree (each measured with a bounded count first), or else the
//!   entity type's rows (in entity order, so a page stops reading when it is full);
//! - **probes**, checked per row through primary keys (`EXISTS`), which never drive.
//!
//! A `q` term SQL can decide exactly (a comparison of numbers or strings on a plain
//! attribute) is exact; when every condition is, the database pages and counts on its
//! own. Otherwise each row is read and tested by [`EntityQuery::matches`].

use ngsi::Entity;
use ngsi::query::ast::{AttrPath, CompareOp, QExpr, QTerm, QValue, TypeExpr};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use super::sql_error;
use crate::{EntityQuery, QueryPage, StoreError, StoreResult};

/// Above this many rows, an index condition is not selective enough to drive.
const DRIVER_LIMIT: i64 = 2_000;

/// SQL text and its parameters, built together.
#[derive(Default, Clone)]
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
    /// A name (attribute, type) as its interned id: indexes hold ids, not names.
    fn bind_name(&mut self, name: impl Into<String>) {
        self.push("(SELECT id FROM names WHERE name = ");
        self.bind(name.into());
        self.push(")");
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
    fn append(&mut self, other: Sql) {
        self.text.push_str(&other.text);
        self.params.extend(other.params);
    }
    fn joined(parts: Vec<Sql>, joiner: &str) -> Sql {
        let mut out = Sql::default();
        out.push("(");
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(joiner);
            }
            out.append(p);
        }
        out.push(")");
        out
    }
}

/// A condition on one attribute's indexed values (`attr_values`), as SQL on alias `a`.
#[derive(Clone)]
struct ValueCondition {
    name: String,
    sql: Sql,
}

impl ValueCondition {
    /// `EXISTS` probe from entity row `e`, through the primary key (entity, name).
    fn probe(&self) -> Sql {
        let mut s = Sql::default();
        s.push("EXISTS (SELECT 1 FROM attr_values a WHERE a.entity = e.rowid AND a.name = ");
        s.bind_name(self.name.clone());
        s.push(" AND ");
        // A unary `+` keeps SQLite from using the value indexes here: a probe must
        // look up this entity's rows, not scan every row in the value range.
        let mut cond = self.sql.clone();
        cond.text = cond
            .text
            .replace("a.num", "+a.num")
            .replace("a.txt", "+a.txt");
        s.append(cond);
        s.push(")");
        s
    }

    /// The entities meeting it, as a subquery.
    fn entities(&self) -> Sql {
        let mut s = Sql::default();
        s.push("SELECT a.entity FROM attr_values a WHERE a.name = ");
        s.bind_name(self.name.clone());
        s.push(" AND ");
        s.append(self.sql.clone());
        s
    }
}

fn is_plain(path: &AttrPath) -> bool {
    path.sub_attrs.is_empty() && path.compound.is_empty()
}

/// The SQL of a comparison that the value index decides exactly, if it can.
fn value_condition(path: &AttrPath, op: CompareOp, value: &QValue) -> Option<ValueCondition> {
    if !is_plain(path) {
        return None;
    }
    let mut sql = Sql::default();
    let sym = match op {
        CompareOp::Eq => "=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        _ => return None,
    };
    match (op, value) {
        (_, QValue::Number(n)) => {
            sql.push(&format!("a.num {sym} "));
            sql.bind(*n);
        }
        (_, QValue::Text(t) | QValue::Uri(t)) => {
            sql.push(&format!("a.txt {sym} "));
            sql.bind(t.clone());
        }
        (CompareOp::Eq, QValue::Range(lo, hi)) => match (lo.as_ref(), hi.as_ref()) {
            (QValue::Number(lo), QValue::Number(hi)) => {
                sql.push("a.num BETWEEN ");
                sql.bind(*lo);
                sql.push(" AND ");
                sql.bind(*hi);
            }
            (QValue::Text(lo), QValue::Text(hi)) => {
                sql.push("a.txt BETWEEN ");
                sql.bind(lo.clone());
                sql.push(" AND ");
                sql.bind(hi.clone());
            }
            _ => return None,
        },
        (CompareOp::Eq, QValue::List(items)) => {
            let mut nums = Vec::new();
            let mut txts = Vec::new();
            for item in items {
                match item {
                    QValue::Number(n) => nums.push(*n),
                    QValue::Text(t) | QValue::Uri(t) => txts.push(t.clone()),
                    _ => return None,
                }
            }
            sql.push("(");
            if nums.is_empty() {
                sql.push("0");
            } else {
                sql.push("a.num IN ");
                sql.bind_list(&nums);
            }
            sql.push(" OR ");
            if txts.is_empty() {
                sql.push("0");
            } else {
                sql.push("a.txt IN ");
                sql.bind_list(&txts);
            }
            sql.push(")");
        }
        _ => return None,
    }
    Some(ValueCondition {
        name: path.attr.clone(),
        sql,
    })
}

/// A `q` expression as SQL probes: `(sql, exact)`. None when SQL cannot narrow it.
fn q_probe(expr: &QExpr) -> Option<(Sql, bool)> {
    match expr {
        QExpr::And(items) => {
            let mut exact = true;
            let mut parts = Vec::new();
            for item in items {
                match q_probe(item) {
                    Some((sql, e)) => {
                        exact &= e;
                        parts.push(sql);
                    }
                    None => exact = false,
                }
            }
            (!parts.is_empty()).then(|| (Sql::joined(parts, " AND "), exact))
        }
        QExpr::Or(items) => {
            let mut exact = true;
            let mut parts = Vec::new();
            for item in items {
                let (sql, e) = q_probe(item)?;
                exact &= e;
                parts.push(sql);
            }
            Some((Sql::joined(parts, " OR "), exact))
        }
        QExpr::Term(QTerm::Compare { path, op, value }) => {
            value_condition(path, *op, value).map(|c| (c.probe(), true))
        }
        QExpr::Term(_) => None,
    }
}

/// The top-level conjuncts of a `q` that could drive the query.
fn driver_candidates(expr: &QExpr) -> Vec<(usize, ValueCondition)> {
    let items: Vec<&QExpr> = match expr {
        QExpr::And(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            QExpr::Term(QTerm::Compare { path, op, value }) => {
                value_condition(path, *op, value).map(|c| (i, c))
            }
            _ => None,
        })
        .collect()
}

/// How many rows a subquery gives, counted up to `DRIVER_LIMIT + 1`.
fn estimate(c: &Connection, subquery: &Sql) -> StoreResult<i64> {
    let text = format!(
        "SELECT COUNT(*) FROM ({} LIMIT {})",
        subquery.text,
        DRIVER_LIMIT + 1
    );
    c.prepare_cached(&text)
        .and_then(|mut s| s.query_row(params_from_iter(subquery.params.iter()), |r| r.get(0)))
        .map_err(sql_error)
}

fn type_probe(tenant: &str, expr: &TypeExpr) -> Sql {
    let mut sql = Sql::default();
    match expr {
        TypeExpr::Type(t) => {
            sql.push("EXISTS (SELECT 1 FROM entity_types WHERE tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND type = ");
            sql.bind_name(t.clone());
            sql.push(" AND entity = e.rowid)");
        }
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            let joiner = if matches!(expr, TypeExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            return Sql::joined(
                items.iter().map(|i| type_probe(tenant, i)).collect(),
                joiner,
            );
        }
    }
    sql
}

fn geo_box_subquery(name: &str, b: (f64, f64, f64, f64), from_entity: bool) -> Sql {
    let (x0, y0, x1, y1) = b;
    let mut sql = Sql::default();
    if from_entity {
        sql.push("EXISTS (SELECT 1 FROM geo_attr g JOIN geo_rtree r ON r.id = g.id WHERE g.entity = e.rowid AND g.name = ");
    } else {
        sql.push("SELECT g.entity FROM geo_rtree r JOIN geo_attr g ON g.id = r.id WHERE g.name = ");
    }
    sql.bind_name(name);
    sql.push(" AND r.max_x >= ");
    sql.bind(x0);
    sql.push(" AND r.min_x <= ");
    sql.bind(x1);
    sql.push(" AND r.max_y >= ");
    sql.bind(y0);
    sql.push(" AND r.min_y <= ");
    sql.bind(y1);
    if from_entity {
        sql.push(")");
    }
    sql
}

enum Driver {
    /// Walk one type's rows in entity order.
    Type(String),
    /// Walk the tenant's entities in order.
    Tenant,
    /// Walk the (few) entities of a subquery.
    Set(Sql),
}

/// Runs a query: choose the driver, add the probes, then read, test and page.
pub fn run(c: &Connection, tenant: &str, q: &EntityQuery) -> StoreResult<QueryPage> {
    let mut probes: Vec<Sql> = Vec::new();
    let mut exact = q.geo.is_none() && q.scope.is_none() && q.id_pattern.is_none();

    // Candidates to drive, each with its measured size.
    let mut best: Option<(i64, Sql, Option<usize>)> = None;
    let mut consider = |size: i64, sql: Sql, q_index: Option<usize>| {
        if size <= DRIVER_LIMIT && best.as_ref().is_none_or(|(b, _, _)| size < *b) {
            best = Some((size, sql, q_index));
        }
    };
    if let Some(filter) = &q.q {
        for (i, cond) in driver_candidates(filter.expr()) {
            let sub = cond.entities();
            consider(estimate(c, &sub)?, sub, Some(i));
        }
    }
    let geo_box = q
        .geo
        .as_ref()
        .and_then(|g| g.search_box().map(|b| (g.query.geoproperty.clone(), b)));
    if let Some((name, b)) = &geo_box {
        let sub = geo_box_subquery(name, *b, false);
        consider(estimate(c, &sub)?, sub, None);
    }
    let single_type = match &q.types {
        Some(TypeExpr::Type(t)) => Some(t.clone()),
        _ => None,
    };
    if let Some(t) = &single_type {
        let mut sub = Sql::default();
        sub.push("SELECT entity FROM entity_types WHERE tenant = ");
        sub.bind(tenant.to_string());
        sub.push(" AND type = ");
        sub.bind_name(t.clone());
        // A type small enough is best walked whole.
        let size = estimate(c, &sub)?;
        if size <= DRIVER_LIMIT && best.as_ref().is_none_or(|(b, _, _)| size < *b) {
            best = None;
        }
    }
    let (driver, driver_q) = match best {
        Some((_, sql, q_index)) => (Driver::Set(sql), q_index),
        None => match &single_type {
            Some(t) => (Driver::Type(t.clone()), None),
            None => (Driver::Tenant, None),
        },
    };

    // Probes for everything the driver does not already ensure.
    if let Some(types) = &q.types
        && !matches!(driver, Driver::Type(_))
    {
        probes.push(type_probe(tenant, types));
    }
    if let Some(filter) = &q.q {
        let expr = filter.expr();
        // Leave out the conjunct that drives: the driver ensures it exactly.
        let rest: Option<QExpr> = match (expr, driver_q) {
            (QExpr::And(items), Some(i)) => {
                let others: Vec<QExpr> = items
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, x)| x.clone())
                    .collect();
                (!others.is_empty()).then_some(QExpr::And(others))
            }
            (_, Some(_)) => None,
            (other, None) => Some(other.clone()),
        };
        if let Some(rest) = rest {
            match q_probe(&rest) {
                Some((sql, e)) => {
                    probes.push(sql);
                    exact &= e;
                }
                None => exact = false,
            }
        }
    }
    let geo_drives = matches!(driver, Driver::Set(_)) && driver_q.is_none();
    if let Some((name, b)) = &geo_box
        && !geo_drives
    {
        probes.push(geo_box_subquery(name, *b, true));
    }
    if !q.ids.is_empty() {
        let mut s = Sql::default();
        s.push("e.id IN ");
        s.bind_list(&q.ids);
        probes.push(s);
    }
    if !q.attrs.is_empty() {
        let mut s = Sql::default();
        s.push("EXISTS (SELECT 1 FROM attr_index x WHERE x.entity = e.rowid AND x.name IN (SELECT id FROM names WHERE name IN ");
        s.bind_list(&q.attrs);
        s.push("))");
        probes.push(s);
    }

    let walks_type = matches!(driver, Driver::Type(_));
    let mut sql = Sql::default();
    match driver {
        Driver::Type(t) => {
            sql.push("SELECT e.rowid, e.id, e.doc FROM entity_types t CROSS JOIN entities e ON e.rowid = t.entity WHERE t.tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND t.type = ");
            sql.bind_name(t);
        }
        Driver::Tenant => {
            sql.push("SELECT e.rowid, e.id, e.doc FROM entities e WHERE e.tenant = ");
            sql.bind(tenant.to_string());
        }
        Driver::Set(set) => {
            sql.push("SELECT e.rowid, e.id, e.doc FROM entities e WHERE e.rowid IN (");
            sql.append(set);
            sql.push(") AND e.tenant = ");
            sql.bind(tenant.to_string());
        }
    }
    for p in probes {
        sql.push(" AND ");
        sql.append(p);
    }
    // Rows come in entity order from every driver; say so in the driver's own terms,
    // so that SQLite walks in that order rather than sorting.
    sql.push(if walks_type {
        " ORDER BY t.entity"
    } else {
        " ORDER BY e.rowid"
    });
    if exact {
        return run_exact(c, sql, q);
    }
    run_filtered(c, sql, q)
}

fn read_entity(row: &rusqlite::Row) -> StoreResult<Entity> {
    let id: String = row.get(1).map_err(sql_error)?;
    let doc: String = row.get(2).map_err(sql_error)?;
    serde_json::from_str(&doc).map_err(|e| StoreError::Other(format!("corrupt entity {id}: {e}")))
}

/// SQL decides: the database pages and counts.
fn run_exact(c: &Connection, mut sql: Sql, q: &EntityQuery) -> StoreResult<QueryPage> {
    let count = if q.count {
        let text = format!("SELECT COUNT(*) FROM ({})", sql.text);
        let n: i64 = c
            .prepare(&text)
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
        entities.push(read_entity(row)?);
    }
    Ok(QueryPage { entities, count })
}

/// Each candidate is read and tested by the model.
fn run_filtered(c: &Connection, sql: Sql, q: &EntityQuery) -> StoreResult<QueryPage> {
    let mut stmt = c.prepare(&sql.text).map_err(sql_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(sql_error)?;
    let mut entities = Vec::new();
    let mut matched = 0usize;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let entity = read_entity(row)?;
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
