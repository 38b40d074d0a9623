//! Reading the temporal history: pages of instances, and per-period statistics that
//! the database computes (numbers are stored as numbers, so nothing is parsed per row).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use ngsi::{AttrKind, Attribute};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;

use super::sql_error;
use crate::{
    AggregatePage, AggregateQuery, HistoryPage, HistoryQuery, PeriodStats, StoreError, StoreResult,
    StoredInstance, TimeField,
};

fn entity_rowid(c: &Connection, tenant: &str, id: &str) -> StoreResult<Option<i64>> {
    c.prepare_cached("SELECT rowid FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![tenant, id], |r| r.get(0)).optional())
        .map_err(sql_error)
}

/// The (id, name) of the attributes asked for, or of every attribute with history.
fn attribute_names(
    c: &Connection,
    rowid: i64,
    attrs: &[String],
) -> StoreResult<Vec<(i64, String)>> {
    let mut out = Vec::new();
    if attrs.is_empty() {
        // Each distinct name by a jump in the index, not a scan of every instance.
        let mut s = c
            .prepare_cached(
                "WITH RECURSIVE n(id) AS (
                    SELECT MIN(name) FROM attr_history WHERE entity = ?1
                    UNION ALL
                    SELECT (SELECT MIN(name) FROM attr_history WHERE entity = ?1 AND name > n.id)
                    FROM n WHERE n.id IS NOT NULL
                 )
                 SELECT n.id, names.name FROM n JOIN names ON names.id = n.id",
            )
            .map_err(sql_error)?;
        let rows = s
            .query_map([rowid], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_error)?;
        for row in rows {
            out.push(row.map_err(sql_error)?);
        }
    } else {
        let mut s = c
            .prepare_cached("SELECT id FROM names WHERE name = ?1")
            .map_err(sql_error)?;
        for name in attrs {
            if let Some(id) = s
                .query_row([name], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(sql_error)?
            {
                out.push((id, name.clone()));
            }
        }
    }
    Ok(out)
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A JSON number from a stored REAL: integral values come back as integers.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// An instance from its row: (id, t, written, num, unit, doc).
fn instance_from_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, StoreResult<Attribute>)> {
    let id: i64 = r.get(0)?;
    let t: i64 = r.get(1)?;
    let written: i64 = r.get(2)?;
    let num: Option<f64> = r.get(3)?;
    let unit: Option<String> = r.get(4)?;
    let doc: Option<String> = r.get(5)?;
    let attribute = match doc {
        Some(doc) => serde_json::from_str::<Attribute>(&doc)
            .map_err(|e| StoreError::Other(format!("corrupt history instance {id}: {e}"))),
        None => Ok(Attribute {
            kind: AttrKind::Property,
            value: num.map_or(Value::Null, number),
            dataset_id: None,
            observed_at: Some(time(t)),
            unit_code: unit,
            object_type: None,
            created_at: time(written),
            modified_at: time(written),
            sub_attrs: BTreeMap::new(),
        }),
    };
    // An instance is created when written; a replaced one keeps its new time.
    let attribute = attribute.map(|mut a| {
        a.created_at = time(written);
        a.modified_at = time(written);
        a
    });
    Ok((id, attribute))
}

pub fn history(c: &Connection, tenant: &str, q: &HistoryQuery) -> StoreResult<Option<HistoryPage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id)? else {
        return Ok(None);
    };
    let column = match q.field {
        TimeField::Observed => "t",
        TimeField::Written => "written",
    };
    let limit = q.limit.max(1);
    let mut page = HistoryPage::default();
    for (name_id, name) in attribute_names(c, rowid, &q.attrs)? {
        let mut sql = String::from(
            "SELECT id, t, written, num, unit, doc FROM attr_history WHERE entity = ?1 AND name = ?2",
        );
        let mut args: Vec<SqlValue> = vec![rowid.into(), name_id.into()];
        if let Some(from) = q.range.from {
            args.push(millis(from).into());
            sql.push_str(&format!(" AND {column} >= ?{}", args.len()));
        }
        if let Some(to) = q.range.to {
            args.push(millis(to).into());
            sql.push_str(&format!(" AND {column} < ?{}", args.len()));
        }
        // One more row than the page holds tells whether there are more.
        let (order, take) = match q.last_n {
            Some(n) => ("DESC", (n as usize).min(limit + 1)),
            None => ("ASC", limit + 1),
        };
        sql.push_str(&format!(
            " ORDER BY {column} {order}, id {order} LIMIT {take}"
        ));
        let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), instance_from_row)
            .map_err(sql_error)?;
        let mut instances = Vec::new();
        for row in rows {
            let (id, attribute) = row.map_err(sql_error)?;
            instances.push(StoredInstance {
                id,
                attribute: attribute?,
            });
        }
        if instances.len() > limit {
            instances.truncate(limit);
            page.truncated = true;
        }
        if q.last_n.is_some() {
            instances.reverse();
        }
        if !instances.is_empty() {
            page.attrs.insert(name, instances);
        }
    }
    Ok(Some(page))
}

pub fn aggregate(
    c: &Connection,
    tenant: &str,
    q: &AggregateQuery,
) -> StoreResult<Option<AggregatePage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id)? else {
        return Ok(None);
    };
    let column = match q.field {
        TimeField::Observed => "h.t",
        TimeField::Written => "h.written",
    };
    let periods: Vec<[i64; 2]> = q
        .periods
        .iter()
        .map(|(s, e)| [millis(*s), millis(*e)])
        .collect();
    let periods_json =
        serde_json::to_string(&periods).map_err(|e| StoreError::Other(format!("periods: {e}")))?;
    // The periods drive (a table of their bounds); each reads its range of the
    // attribute from the covering index.
    let distinct = if q.distinct {
        "COUNT(DISTINCT coalesce(h.num, h.txt))"
    } else {
        "0"
    };
    let sql = format!(
        "WITH p(i, s, e) AS (
            SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3)
         )
         SELECT p.i, h.dataset, COUNT(*), {distinct}, COUNT(h.num),
                SUM(h.num), SUM(h.num * h.num), MIN(h.num), MAX(h.num)
         FROM p JOIN attr_history h
           ON h.entity = ?1 AND h.name = ?2 AND {column} >= p.s AND {column} < p.e
         GROUP BY p.i, h.dataset"
    );
    let mut out = AggregatePage::new();
    for (name_id, name) in attribute_names(c, rowid, &q.attrs)? {
        let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
        let rows = stmt
            .query_map(params![rowid, name_id, periods_json], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                    r.get::<_, Option<f64>>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                ))
            })
            .map_err(sql_error)?;
        let by_dataset = out.entry(name).or_default();
        for row in rows {
            let (i, dataset, total, distinct, numbers, sum, sum_sq, min, max) =
                row.map_err(sql_error)?;
            let Some(&(start, end)) = q.periods.get(i.max(0) as usize) else {
                continue;
            };
            let periods = by_dataset.entry(dataset).or_insert_with(|| {
                q.periods
                    .iter()
                    .map(|(start, end)| PeriodStats {
                        start: *start,
                        end: *end,
                        ..Default::default()
                    })
                    .collect()
            });
            periods[i as usize] = PeriodStats {
                start,
                end,
                total: total.max(0) as u64,
                distinct: distinct.max(0) as u64,
                numbers: numbers.max(0) as u64,
                sum: sum.unwrap_or(0.0),
                sum_sq: sum_sq.unwrap_or(0.0),
                min,
                max,
            };
        }
    }
    out.retain(|_, d| !d.is_empty());
    Ok(Some(out))
}
