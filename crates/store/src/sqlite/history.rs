//! Reading the temporal history: pages of instances, and per-period statistics that
//! the database computes (numbers are stored as numbers, so nothing is parsed per row).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::hourly::hour_of;
use super::sql_error;
use crate::{
    AggregatePage, AggregateQuery, HistoryPage, HistoryQuery, PeriodStats, StoreResult,
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

/// The end of a page's read of one attribute by the time `column`: the time range,
/// the datasetIds, the order and how many rows (its values appended to `args`, which
/// hold the entity and the name).
fn page_conditions(column: &str, q: &HistoryQuery, args: &mut Vec<SqlValue>) -> String {
    let mut sql = String::new();
    if let Some(from) = q.range.from {
        args.push(millis(from).into());
        sql.push_str(&format!(" AND {column} >= ?{}", args.len()));
    }
    if let Some(to) = q.range.to {
        args.push(millis(to).into());
        sql.push_str(&format!(" AND {column} < ?{}", args.len()));
    }
    sql.push_str(&dataset_condition(q.datasets.as_deref(), args));
    let (order, take) = q.order_and_take();
    sql.push_str(&format!(
        " ORDER BY {column} {order}, id {order} LIMIT {take}"
    ));
    sql
}

/// The condition on `dataset` that `datasets` asks for (its values appended to
/// `args`), or nothing when every instance is asked for.
fn dataset_condition(datasets: Option<&[Option<String>]>, args: &mut Vec<SqlValue>) -> String {
    let Some(datasets) = datasets else {
        return String::new();
    };
    let mut alternatives = Vec::new();
    for d in datasets {
        match d {
            None => alternatives.push("dataset IS NULL".to_string()),
            Some(d) => {
                args.push(d.clone().into());
                alternatives.push(format!("dataset = ?{}", args.len()));
            }
        }
    }
    if alternatives.is_empty() {
        return " AND 0".into();
    }
    format!(" AND ({})", alternatives.join(" OR "))
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// An instance from its row: (id, t, written, num, unit, doc).
fn instance_from_row(r: &rusqlite::Row) -> rusqlite::Result<StoreResult<StoredInstance>> {
    let (id, t, written) = (r.get(0)?, time(r.get(1)?), time(r.get(2)?));
    let doc: Option<String> = r.get(5)?;
    Ok(StoredInstance::from_columns(
        id,
        t,
        written,
        r.get(3)?,
        r.get(4)?,
        doc.as_deref(),
    ))
}

pub fn history(c: &Connection, tenant: &str, q: &HistoryQuery) -> StoreResult<Option<HistoryPage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id)? else {
        return Ok(None);
    };
    let column = match q.field {
        TimeField::Observed => "t",
        TimeField::Written => "written",
        TimeField::Deleted => return deletions(c, rowid, q).map(Some),
    };
    let mut page = HistoryPage::default();
    for (name_id, name) in attribute_names(c, rowid, &q.attrs)? {
        let mut sql = String::from(
            "SELECT id, t, written, num, unit, doc FROM attr_history WHERE entity = ?1 AND name = ?2",
        );
        let mut args: Vec<SqlValue> = vec![rowid.into(), name_id.into()];
        sql.push_str(&page_conditions(column, q, &mut args));
        let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), instance_from_row)
            .map_err(sql_error)?;
        let mut instances = Vec::new();
        for row in rows {
            instances.push(row.map_err(sql_error)??);
        }
        page.add_attribute(name, instances, q);
    }
    Ok(Some(page))
}

/// A page of the records of the entity's deleted attribute instances, by the time of
/// their deletion (as [`history`] reads instances).
fn deletions(c: &Connection, rowid: i64, q: &HistoryQuery) -> StoreResult<HistoryPage> {
    let names: Vec<(i64, String)> = if q.attrs.is_empty() {
        let mut s = c
            .prepare_cached(
                "SELECT DISTINCT d.name, names.name FROM attr_deletions d
                 JOIN names ON names.id = d.name WHERE d.entity = ?1 ORDER BY d.name",
            )
            .map_err(sql_error)?;
        s.query_map([rowid], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
            .map_err(sql_error)?
    } else {
        attribute_names(c, rowid, &q.attrs)?
    };
    let mut page = HistoryPage::default();
    for (name_id, name) in names {
        let mut sql =
            String::from("SELECT id, at, doc FROM attr_deletions WHERE entity = ?1 AND name = ?2");
        let mut args: Vec<SqlValue> = vec![rowid.into(), name_id.into()];
        sql.push_str(&page_conditions("at", q, &mut args));
        let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(sql_error)?;
        let mut instances = Vec::new();
        for row in rows {
            let (id, at, doc) = row.map_err(sql_error)?;
            instances.push(StoredInstance::deletion(id, time(at), &doc)?);
        }
        page.add_attribute(name, instances, q);
    }
    Ok(page)
}

pub fn aggregate(
    c: &Connection,
    tenant: &str,
    q: &AggregateQuery,
) -> StoreResult<Option<AggregatePage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id)? else {
        return Ok(None);
    };
    let (Some(first), Some(last)) = (q.periods.first(), q.periods.last()) else {
        return Ok(Some(AggregatePage::new()));
    };
    let column = match q.field {
        TimeField::Observed => "t",
        TimeField::Written => "written",
        // The records of deletions hold no value to aggregate.
        TimeField::Deleted => return Ok(Some(AggregatePage::new())),
    };
    // One pass over the attribute's range of the covering index, in time order; each
    // row falls in the next period or a later one, so bucketing is a walk, not a search.
    // (A join of the periods with the index, or a GROUP BY on a computed period, made
    // SQLite do several times the work for a year of readings.)
    let value = if q.distinct {
        "coalesce(CAST(num AS TEXT), txt)"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT {column}, num, dataset, {value} FROM attr_history
         WHERE entity = ?1 AND name = ?2 AND {column} >= ?3 AND {column} < ?4
         ORDER BY {column}"
    );
    let (lo, hi) = (millis(first.0), millis(last.1));
    let bounds: Vec<(i64, i64)> = q
        .periods
        .iter()
        .map(|(s, e)| (millis(*s), millis(*e)))
        .collect();
    // Periods on whole hours of observation time are sums of the hourly statistics
    // (distinct values are not kept there).
    let hourly = q.field == TimeField::Observed
        && !q.distinct
        && bounds
            .iter()
            .all(|(s, e)| hour_of(*s) == *s && hour_of(*e) == *e);
    let mut out = AggregatePage::new();
    for (name_id, name) in attribute_names(c, rowid, &q.attrs)? {
        if hourly {
            let by_dataset = aggregate_hours(c, rowid, name_id, q, &bounds)?;
            if !by_dataset.is_empty() {
                out.insert(name, by_dataset);
            }
            continue;
        }
        let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
        let mut rows = stmt
            .query(params![rowid, name_id, lo, hi])
            .map_err(sql_error)?;
        let mut by_dataset: BTreeMap<Option<String>, Vec<PeriodStats>> = BTreeMap::new();
        let mut distinct: std::collections::HashMap<
            (Option<String>, usize),
            std::collections::HashSet<String>,
        > = std::collections::HashMap::new();
        let mut walk = PeriodWalk {
            bounds: &bounds,
            k: 0,
        };
        while let Some(row) = rows.next().map_err(sql_error)? {
            let k = match walk.place(row.get(0).map_err(sql_error)?) {
                Place::In(k) => k,
                Place::Between => continue,
                Place::After => break,
            };
            let num: Option<f64> = row.get(1).map_err(sql_error)?;
            let dataset: Option<String> = row.get(2).map_err(sql_error)?;
            if q.distinct {
                let v: Option<String> = row.get(3).map_err(sql_error)?;
                distinct
                    .entry((dataset.clone(), k))
                    .or_default()
                    .insert(v.unwrap_or_default());
            }
            let periods = by_dataset
                .entry(dataset)
                .or_insert_with(|| q.empty_periods());
            let st = &mut periods[k];
            st.total += 1;
            if let Some(n) = num {
                st.numbers += 1;
                st.sum += n;
                st.sum_sq += n * n;
                st.min = Some(st.min.map_or(n, |m| m.min(n)));
                st.max = Some(st.max.map_or(n, |m| m.max(n)));
            }
        }
        for ((dataset, k), values) in distinct {
            if let Some(st) = by_dataset.get_mut(&dataset).and_then(|p| p.get_mut(k)) {
                st.distinct = values.len() as u64;
            }
        }
        if !by_dataset.is_empty() {
            out.insert(name, by_dataset);
        }
    }
    Ok(Some(out))
}

/// Where a time falls among the periods of an aggregation.
enum Place {
    /// In the period of this index.
    In(usize),
    /// Before the next period, after any earlier one.
    Between,
    /// After the last period.
    After,
}

/// A walk over the periods `bounds` (`[start, end)` in ms, in order, not
/// overlapping) along times met in ascending order.
struct PeriodWalk<'b> {
    bounds: &'b [(i64, i64)],
    /// The first period that does not end at or before the last time placed.
    k: usize,
}

impl PeriodWalk<'_> {
    fn place(&mut self, t: i64) -> Place {
        while self.k < self.bounds.len() && t >= self.bounds[self.k].1 {
            self.k += 1;
        }
        match self.bounds.get(self.k) {
            None => Place::After,
            Some((start, _)) if t < *start => Place::Between,
            Some(_) => Place::In(self.k),
        }
    }
}

/// One attribute's periods from its hourly statistics: a walk over the hours of the
/// range in order, as [`aggregate`] walks the instances.
fn aggregate_hours(
    c: &Connection,
    rowid: i64,
    name_id: i64,
    q: &AggregateQuery,
    bounds: &[(i64, i64)],
) -> StoreResult<BTreeMap<Option<String>, Vec<PeriodStats>>> {
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
        return Ok(BTreeMap::new());
    };
    let mut stmt = c
        .prepare_cached(
            "SELECT hour, dataset, total, numbers, sum, sum_sq, min, max FROM history_hourly
             WHERE entity = ?1 AND name = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour",
        )
        .map_err(sql_error)?;
    let mut rows = stmt
        .query(params![rowid, name_id, first.0, last.1])
        .map_err(sql_error)?;
    let mut by_dataset: BTreeMap<Option<String>, Vec<PeriodStats>> = BTreeMap::new();
    let mut walk = PeriodWalk { bounds, k: 0 };
    while let Some(row) = rows.next().map_err(sql_error)? {
        let k = match walk.place(row.get(0).map_err(sql_error)?) {
            Place::In(k) => k,
            Place::Between => continue,
            Place::After => break,
        };
        let dataset: String = row.get(1).map_err(sql_error)?;
        let dataset = (!dataset.is_empty()).then_some(dataset);
        let total: i64 = row.get(2).map_err(sql_error)?;
        let numbers: i64 = row.get(3).map_err(sql_error)?;
        let sum: f64 = row.get(4).map_err(sql_error)?;
        let sum_sq: f64 = row.get(5).map_err(sql_error)?;
        let min: Option<f64> = row.get(6).map_err(sql_error)?;
        let max: Option<f64> = row.get(7).map_err(sql_error)?;
        let periods = by_dataset
            .entry(dataset)
            .or_insert_with(|| q.empty_periods());
        let st = &mut periods[k];
        st.total += total as u64;
        st.numbers += numbers as u64;
        st.sum += sum;
        st.sum_sq += sum_sq;
        if let Some(n) = min {
            st.min = Some(st.min.map_or(n, |m| m.min(n)));
        }
        if let Some(n) = max {
            st.max = Some(st.max.map_or(n, |m| m.max(n)));
        }
    }
    Ok(by_dataset)
}
