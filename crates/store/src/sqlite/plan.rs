//! Turning an [`EntityQuery`] into SQL, and running it.
//!
//! SQL narrows, the model decides. Each condition becomes SQL in one of two roles:
//! - the **driver**, the one set of rows the query walks. It is the most selective
//!   of: the ids asked (the unique index of ids), an equality or range of `q` read
//!   from the value index, the geo-query's search box in the R*Tree (each measured
//!   with a bounded count first), or else the entity type's rows (in entity order, so
//!   a page stops reading when it is full);
//! - **probes**, checked per row through primary keys (`EXISTS`), which never drive.
//!
//! A `q` term SQL can decide exactly (a comparison of numbers or strings on a plain
//! attribute) is exact; when every condition is, the database pages and counts on its
//! own. Otherwise each row is read and tested by [`EntityQuery::matches`].

use std::collections::BTreeSet;

use ngsi::Entity;
use ngsi::query::ast::{QExpr, TypeExpr};
use rusqlite::{Connection, params_from_iter};

use super::sql_error;
use crate::plan::{Dialect, Sql, driver_candidates, q_probe, type_probe};
use crate::query::Filtered;
use crate::{EntityQuery, QueryPage, StoreResult};

const SQLITE: Dialect = Dialect::Sqlite;

/// Above this many rows, an index condition is not selective enough to drive.
const DRIVER_LIMIT: i64 = 2_000;

/// What a set of rows that drives a query stands for.
#[derive(Clone, Copy)]
enum Drives {
    /// The ids asked.
    Ids,
    /// The `q` conjunct of this index.
    Q(usize),
    /// The geo-query's search box.
    Geo,
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

fn geo_box_subquery(name: &str, b: (f64, f64, f64, f64), from_entity: bool) -> Sql {
    let (x0, y0, x1, y1) = b;
    let mut sql = Sql::new(SQLITE);
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
/// `left_out`: the attributes whose values the value index leaves out.
pub fn run(
    c: &Connection,
    tenant: &str,
    q: &EntityQuery,
    left_out: &BTreeSet<String>,
) -> StoreResult<QueryPage> {
    let mut probes: Vec<Sql> = Vec::new();
    // An orderBy is applied by the model to every match, as the filters are.
    let mut exact =
        q.geo.is_none() && q.scope.is_none() && q.id_pattern.is_none() && q.order.is_none();

    // Candidates to drive, each with its measured size.
    let mut best: Option<(i64, Sql, Drives)> = None;
    let mut consider = |size: i64, sql: Sql, drives: Drives| {
        if size <= DRIVER_LIMIT && best.as_ref().is_none_or(|(b, _, _)| size < *b) {
            best = Some((size, sql, drives));
        }
    };
    if !q.ids.is_empty() {
        // Looked up in the unique index of ids: as many rows as ids, at most.
        let mut sub = Sql::new(SQLITE);
        sub.push("SELECT rowid FROM entities WHERE tenant = ");
        sub.bind(tenant.to_string());
        sub.push(" AND id IN ");
        sub.bind_list(&q.ids);
        consider(
            i64::try_from(q.ids.len()).unwrap_or(i64::MAX),
            sub,
            Drives::Ids,
        );
    }
    if let Some(filter) = &q.q {
        for (i, cond) in driver_candidates(SQLITE, left_out, filter.expr()) {
            let sub = cond.entities();
            consider(estimate(c, &sub)?, sub, Drives::Q(i));
        }
    }
    let geo_box = q
        .geo
        .as_ref()
        .and_then(|g| g.search_box().map(|b| (g.query.geoproperty.clone(), b)));
    if let Some((name, b)) = &geo_box {
        let sub = geo_box_subquery(name, *b, false);
        consider(estimate(c, &sub)?, sub, Drives::Geo);
    }
    let single_type = match &q.types {
        Some(TypeExpr::Type(t)) => Some(t.clone()),
        _ => None,
    };
    if let Some(t) = &single_type {
        let mut sub = Sql::new(SQLITE);
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
    let (driver, drives) = match best {
        Some((_, sql, drives)) => (Driver::Set(sql), Some(drives)),
        None => match &single_type {
            Some(t) => (Driver::Type(t.clone()), None),
            None => (Driver::Tenant, None),
        },
    };
    let driver_q = match drives {
        Some(Drives::Q(i)) => Some(i),
        _ => None,
    };

    // Probes for everything the driver does not already ensure.
    if let Some(types) = &q.types
        && !matches!(driver, Driver::Type(_))
    {
        probes.push(type_probe(SQLITE, tenant, types));
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
            match q_probe(SQLITE, left_out, &rest) {
                Some((sql, e)) => {
                    probes.push(sql);
                    exact &= e;
                }
                None => exact = false,
            }
        }
    }
    let geo_drives = matches!(drives, Some(Drives::Geo));
    if let Some((name, b)) = &geo_box
        && !geo_drives
    {
        probes.push(geo_box_subquery(name, *b, true));
    }
    if !q.ids.is_empty() {
        let mut s = Sql::new(SQLITE);
        s.push("e.id IN ");
        s.bind_list(&q.ids);
        probes.push(s);
    }
    if !q.attrs.is_empty() {
        let mut s = Sql::new(SQLITE);
        s.push("EXISTS (SELECT 1 FROM attr_index x WHERE x.entity = e.rowid AND x.name IN (SELECT id FROM names WHERE name IN ");
        s.bind_list(&q.attrs);
        s.push("))");
        probes.push(s);
    }

    let walks_type = matches!(driver, Driver::Type(_));
    // Counting a type's rows needs no entity row: without the join, SQLite reads the
    // type's index and the probes' alone (ids are in the entity row).
    let count_of_type = match &driver {
        Driver::Type(t) if exact && q.count && q.ids.is_empty() => {
            let mut count = Sql::new(SQLITE);
            count.push("SELECT COUNT(*) FROM entity_types t WHERE t.tenant = ");
            count.bind(tenant.to_string());
            count.push(" AND t.type = ");
            count.bind_name(t.clone());
            for p in &probes {
                count.push(" AND ");
                count.append(p.on_entity("t.entity"));
            }
            if let Some(after) = q.after {
                count.push(" AND t.entity > ");
                count.bind(after);
            }
            Some(count)
        }
        _ => None,
    };
    let mut sql = Sql::new(SQLITE);
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
    if let Some(after) = q.after {
        sql.push(if walks_type {
            " AND t.entity > "
        } else {
            " AND e.rowid > "
        });
        sql.bind(after);
    }
    // Rows come in entity order from every driver; say so in the driver's own terms,
    // so that SQLite walks in that order rather than sorting.
    sql.push(if walks_type {
        " ORDER BY t.entity"
    } else {
        " ORDER BY e.rowid"
    });
    if exact {
        return run_exact(c, sql, count_of_type, q);
    }
    run_filtered(c, sql, q)
}

/// A row's entity, as much of it as the query reads (borrowing the row's text: the
/// document is not copied before it is parsed).
fn read_entity(row: &rusqlite::Row, only: Option<&[String]>) -> StoreResult<Entity> {
    let text = |i: usize| {
        row.get_ref(i)
            .and_then(|v| v.as_str().map_err(Into::into))
            .map_err(sql_error)
    };
    crate::project::parse(text(1)?, text(2)?, only)
}

/// SQL decides: the database pages and counts (by `count` when given, else by
/// counting `sql`'s rows).
fn run_exact(
    c: &Connection,
    mut sql: Sql,
    count: Option<Sql>,
    q: &EntityQuery,
) -> StoreResult<QueryPage> {
    let count = if q.count {
        let count = count.unwrap_or_else(|| {
            let mut all = Sql::new(SQLITE);
            all.push("SELECT COUNT(*) FROM (");
            all.append(sql.clone());
            all.push(")");
            all
        });
        let n: i64 = c
            .prepare(&count.text)
            .and_then(|mut s| s.query_row(params_from_iter(count.params.iter()), |r| r.get(0)))
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
    let mut page = QueryPage {
        count,
        ..QueryPage::default()
    };
    while let Some(row) = rows.next().map_err(sql_error)? {
        if q.as_documents {
            let text = |i: usize| {
                row.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map_err(sql_error)
            };
            crate::project::copy(
                text(1)?,
                text(2)?,
                q.only_attrs.as_deref(),
                &mut page.documents,
            )?;
        } else {
            page.entities
                .push(read_entity(row, q.only_attrs.as_deref())?);
        }
        page.positions.push(row.get(0).map_err(sql_error)?);
    }
    Ok(page)
}

/// Each candidate is read and tested by the model.
fn run_filtered(c: &Connection, sql: Sql, q: &EntityQuery) -> StoreResult<QueryPage> {
    let mut stmt = c.prepare(&sql.text).map_err(sql_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(sql_error)?;
    let mut page = Filtered::new(q);
    let read = q.attributes_read();
    while let Some(row) = rows.next().map_err(sql_error)? {
        if !page.offer(
            read_entity(row, read.as_deref())?,
            row.get(0).map_err(sql_error)?,
        ) {
            break;
        }
    }
    page.page()
}
