//! Reads: entity lookup, queries (SQL narrows with indexes, the model decides),
//! discovery, and the history with its per-period statistics computed in SQL.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::{TryStreamExt, pin_mut};
use ngsi::Entity;

use super::{count_of, ms, optional_row, params, pg_error, rows};
use crate::plan::{Dialect, Sql, q_probe, type_probe};
use crate::query::Filtered;
use crate::{
    AggregatePage, AggregateQuery, AttributeSummary, EntityQuery, HistoryPage, HistoryQuery,
    PeriodStats, QueryPage, StoreResult, StoredInstance, TimeField, TypeSummary,
};

const PG: Dialect = Dialect::Postgres;

fn parse_doc(id: &str, doc: &str) -> StoreResult<Entity> {
    crate::project::parse(id, doc, None)
}

pub async fn get(c: &impl GenericClient, tenant: &str, id: &str) -> StoreResult<Option<Entity>> {
    let row = optional_row(
        c,
        "SELECT doc::text FROM entities WHERE tenant = $1 AND id = $2",
        &[&tenant, &id],
    )
    .await?;
    row.map(|r| parse_doc(id, r.get(0))).transpose()
}

/// Runs a query: every condition SQL can narrow with becomes a condition on the
/// tenant's entities (PostgreSQL's planner picks the index that drives), then either
/// the database pages and counts (when SQL decides every condition exactly), or each
/// candidate is tested by [`EntityQuery::matches`].
pub async fn query(
    c: &impl GenericClient,
    tenant: &str,
    q: &EntityQuery,
    left_out: &BTreeSet<String>,
) -> StoreResult<QueryPage> {
    // An orderBy is applied by the model to every match, as the filters are.
    let mut exact =
        q.geo.is_none() && q.scope.is_none() && q.id_pattern.is_none() && q.order.is_none();
    // The conditions; what is selected depends on whether SQL decides them all.
    let mut sql = Sql::new(PG);
    sql.push(" FROM entities e WHERE e.tenant = ");
    sql.bind(tenant);
    if let Some(after) = q.after {
        sql.push(" AND e.rowid > ");
        sql.bind(after);
    }
    if let Some(types) = &q.types {
        sql.push(" AND ");
        sql.append(type_probe(PG, tenant, types));
    }
    if let Some(filter) = &q.q {
        match q_probe(PG, left_out, filter.expr()) {
            Some((probe, e)) => {
                sql.push(" AND ");
                sql.append(probe);
                exact &= e;
            }
            None => exact = false,
        }
    }
    if let Some(geo) = &q.geo
        && let Some((x0, y0, x1, y1)) = geo.search_box()
    {
        sql.push(" AND EXISTS (SELECT 1 FROM geo_attr g WHERE g.entity = e.rowid AND g.name = ");
        sql.bind(geo.query.geoproperty.as_str());
        sql.push(" AND g.geom && ST_MakeEnvelope(");
        sql.bind(x0);
        sql.push(", ");
        sql.bind(y0);
        sql.push(", ");
        sql.bind(x1);
        sql.push(", ");
        sql.bind(y1);
        sql.push(", 4326))");
    }
    if !q.ids.is_empty() {
        sql.push(" AND e.id IN ");
        sql.bind_list(&q.ids);
    }
    if !q.attrs.is_empty() {
        sql.push(" AND EXISTS (SELECT 1 FROM attr_index x WHERE x.entity = e.rowid AND x.name IN ");
        sql.bind_list(&q.attrs);
        sql.push(")");
    }
    sql.push(" ORDER BY e.rowid");
    let mut select = Sql::new(PG);
    select.push("SELECT e.id, ");
    // Only the attributes asked leave the database: those the answer shows when SQL
    // decides, with those the conditions and the order read when the model tests the
    // candidates (the whole entity without a projection).
    let read = if exact {
        q.only_attrs.clone()
    } else {
        q.attributes_read()
    };
    match &read {
        Some(names) => {
            select.push("jsonb_set(e.doc, '{a}', ");
            if names.is_empty() {
                select.push("'{}'::jsonb");
            } else {
                select.push("COALESCE((SELECT jsonb_object_agg(x.key, x.value) FROM jsonb_each(e.doc->'a') x WHERE x.key IN ");
                select.bind_list(names);
                select.push("), '{}'::jsonb)");
            }
            select.push(")::text");
        }
        None => select.push("e.doc::text"),
    }
    select.push(", e.rowid");
    select.append(sql);
    let mut sql = select;
    if exact {
        let count = if q.count {
            let text = format!("SELECT count(*) FROM ({}) s", sql.numbered());
            Some(count_of(c, &text, &params(&sql.params)).await?)
        } else {
            None
        };
        sql.push(" LIMIT ");
        sql.bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        sql.push(" OFFSET ");
        sql.bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let rows = c
            .query(&sql.numbered(), &params(&sql.params))
            .await
            .map_err(pg_error)?;
        let mut page = QueryPage {
            count,
            positions: rows.iter().map(|r| r.get(2)).collect(),
            ..QueryPage::default()
        };
        for r in &rows {
            if q.as_documents {
                // The database has already left out the attributes not read.
                page.documents.push(r.get(1));
            } else {
                page.entities.push(crate::project::parse(
                    r.get(0),
                    r.get(1),
                    q.only_attrs.as_deref(),
                )?);
            }
        }
        return Ok(page);
    }
    let stream = c
        .query_raw(&sql.numbered(), params(&sql.params))
        .await
        .map_err(pg_error)?;
    pin_mut!(stream);
    let mut page = Filtered::new(q);
    while let Some(row) = stream.try_next().await.map_err(pg_error)? {
        let candidate = crate::project::parse(row.get(0), row.get(1), read.as_deref())?;
        if !page.offer(candidate, row.get(2)) {
            break;
        }
    }
    page.page()
}

pub async fn types(c: &impl GenericClient, tenant: &str) -> StoreResult<Vec<TypeSummary>> {
    let mut out: BTreeMap<String, TypeSummary> = BTreeMap::new();
    let counts = "SELECT type, count(*) FROM entity_types WHERE tenant = $1 GROUP BY type";
    for r in rows(c, counts, &[&tenant]).await? {
        TypeSummary::count(&mut out, r.get(0), r.get(1));
    }
    let attrs = "SELECT DISTINCT t.type, a.name, a.kind FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = $1";
    for r in rows(c, attrs, &[&tenant]).await? {
        let (t, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        TypeSummary::note_attribute(&mut out, &t, name, &kind);
    }
    Ok(out.into_values().collect())
}

pub async fn attributes(
    c: &impl GenericClient,
    tenant: &str,
) -> StoreResult<Vec<AttributeSummary>> {
    let mut out: BTreeMap<String, AttributeSummary> = BTreeMap::new();
    let counts = "SELECT a.name, a.kind, count(*) FROM attr_index a JOIN entities e ON e.rowid = a.entity WHERE e.tenant = $1 GROUP BY a.name, a.kind";
    for r in rows(c, counts, &[&tenant]).await? {
        let (name, kind, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        AttributeSummary::count(&mut out, name, &kind, n);
    }
    let types = "SELECT DISTINCT a.name, t.type FROM entity_types t JOIN attr_index a ON a.entity = t.entity WHERE t.tenant = $1";
    for r in rows(c, types, &[&tenant]).await? {
        let name: String = r.get(0);
        AttributeSummary::note_type(&mut out, &name, r.get(1));
    }
    Ok(out.into_values().collect())
}

/// The row of the tenant's entity `id`, if it has one.
pub(super) async fn entity_rowid(
    c: &impl GenericClient,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<i64>> {
    let sql = "SELECT rowid FROM entities WHERE tenant = $1 AND id = $2";
    let row = optional_row(c, sql, &[&tenant, &id]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// The attributes asked for, or every attribute with history (each distinct name by
/// a jump in the index, not a scan of every instance).
async fn attribute_names(
    c: &impl GenericClient,
    rowid: i64,
    attrs: &[String],
) -> StoreResult<Vec<String>> {
    if !attrs.is_empty() {
        return Ok(attrs.to_vec());
    }
    let rows = c
        .query(
            "WITH RECURSIVE n(name) AS (
                SELECT min(name) FROM attr_history WHERE entity = $1
                UNION ALL
                SELECT (SELECT min(name) FROM attr_history WHERE entity = $1 AND name > n.name)
                FROM n WHERE n.name IS NOT NULL
             )
             SELECT name FROM n WHERE name IS NOT NULL",
            &[&rowid],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The column of the time `field` names; None for the time of a deletion, which only
/// `attr_deletions` holds.
fn column(field: TimeField) -> Option<&'static str> {
    match field {
        TimeField::Observed => Some("t"),
        TimeField::Written => Some("written"),
        TimeField::Deleted => None,
    }
}

pub async fn history(
    c: &impl GenericClient,
    tenant: &str,
    q: &HistoryQuery,
) -> StoreResult<Option<HistoryPage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id).await? else {
        return Ok(None);
    };
    let Some(col) = column(q.field) else {
        return deletions(c, rowid, q).await.map(Some);
    };
    let a = PageArgs::of(q);
    let sql = format!(
        "SELECT id, t, written, num, unit, doc::text FROM attr_history
         WHERE entity = $1 AND name = $2
           AND ($3::timestamptz IS NULL OR {col} >= $3)
           AND ($4::timestamptz IS NULL OR {col} < $4)
           AND ($6::text[] IS NULL OR dataset = ANY($6) OR ($7 AND dataset IS NULL))
         ORDER BY {col} {order}, id {order} LIMIT $5",
        order = a.order
    );
    let mut page = HistoryPage::default();
    for name in attribute_names(c, rowid, &q.attrs).await? {
        let rows = a.rows(c, &sql, rowid, &name).await?;
        let mut instances = Vec::with_capacity(rows.len());
        for r in rows {
            let (id, t, written) = (r.get(0), r.get(1), r.get(2));
            let (num, unit, doc) = (r.get(3), r.get(4), r.get(5));
            instances.push(StoredInstance::from_columns(
                id, t, written, num, unit, doc,
            )?);
        }
        page.add_attribute(name, instances, q);
    }
    Ok(Some(page))
}

/// The parameters of a page's read of one attribute, besides the entity and the name.
struct PageArgs {
    order: &'static str,
    take: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// The datasetIds kept (None for every instance), and whether the default instance
    /// is among them.
    named: Option<Vec<String>>,
    default: bool,
}

impl PageArgs {
    /// The rows of one attribute, by a statement whose parameters are the entity
    /// ($1), the name ($2) and these ($3 to $7).
    async fn rows(
        &self,
        c: &impl GenericClient,
        sql: &str,
        rowid: i64,
        name: &str,
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        c.query(
            sql,
            &[
                &rowid,
                &name,
                &self.from,
                &self.to,
                &self.take,
                &self.named,
                &self.default,
            ],
        )
        .await
        .map_err(pg_error)
    }

    fn of(q: &HistoryQuery) -> PageArgs {
        let (order, take) = q.order_and_take();
        let (named, default) = match q.datasets.as_deref() {
            None => (None, true),
            Some(list) => (
                Some(list.iter().flatten().cloned().collect()),
                list.iter().any(Option::is_none),
            ),
        };
        PageArgs {
            order,
            take: i64::try_from(take).unwrap_or(i64::MAX),
            from: q.range.from.map(ms),
            to: q.range.to.map(ms),
            named,
            default,
        }
    }
}

/// A page of the records of the entity's deleted attribute instances, by the time of
/// their deletion (as [`history`] reads instances).
async fn deletions(
    c: &impl GenericClient,
    rowid: i64,
    q: &HistoryQuery,
) -> StoreResult<HistoryPage> {
    let a = PageArgs::of(q);
    let names: Vec<String> = if q.attrs.is_empty() {
        c.query(
            "SELECT DISTINCT name FROM attr_deletions WHERE entity = $1 ORDER BY name",
            &[&rowid],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    } else {
        q.attrs.clone()
    };
    let sql = format!(
        "SELECT id, at, doc::text FROM attr_deletions
         WHERE entity = $1 AND name = $2
           AND ($3::timestamptz IS NULL OR at >= $3)
           AND ($4::timestamptz IS NULL OR at < $4)
           AND ($6::text[] IS NULL OR dataset = ANY($6) OR ($7 AND dataset IS NULL))
         ORDER BY at {order}, id {order} LIMIT $5",
        order = a.order
    );
    let mut page = HistoryPage::default();
    for name in names {
        let rows = a.rows(c, &sql, rowid, &name).await?;
        let mut instances = Vec::with_capacity(rows.len());
        for r in rows {
            instances.push(StoredInstance::deletion(r.get(0), r.get(1), r.get(2))?);
        }
        page.add_attribute(name, instances, q);
    }
    Ok(page)
}

/// Per-period statistics, grouped by the database: the periods are joined with the
/// attribute's instances through the time index, and counted, summed and bounded per
/// (period, datasetId) in SQL.
pub async fn aggregate(
    c: &impl GenericClient,
    tenant: &str,
    q: &AggregateQuery,
) -> StoreResult<Option<AggregatePage>> {
    let Some(rowid) = entity_rowid(c, tenant, &q.entity_id).await? else {
        return Ok(None);
    };
    if q.periods.is_empty() {
        return Ok(Some(AggregatePage::new()));
    }
    // The records of deletions hold no value to aggregate.
    let Some(col) = column(q.field) else {
        return Ok(Some(AggregatePage::new()));
    };
    let starts: Vec<DateTime<Utc>> = q.periods.iter().map(|(s, _)| ms(*s)).collect();
    let ends: Vec<DateTime<Utc>> = q.periods.iter().map(|(_, e)| ms(*e)).collect();
    // Distinct values: a number by its value, anything else by its text (a number
    // and a text that reads the same are two values, as in SQLite).
    let distinct = if q.distinct {
        "count(DISTINCT (h.num, h.txt))"
    } else {
        "0::bigint"
    };
    // The periods come in order, half-open (`AggregateQuery::periods`): one scan of
    // the whole range puts each instance in its period by a binary search of the
    // starts (`width_bucket`). A join of the periods with the history made the planner
    // compare every instance with every period (720 hourly periods of 30 days: 80
    // times slower).
    let sql = format!(
        "SELECT h.k::bigint, h.dataset, count(*), count(h.num), coalesce(sum(h.num), 0),
                coalesce(sum(h.num * h.num), 0), min(h.num), max(h.num), {distinct}
         FROM (SELECT width_bucket(h.{col}, $3::timestamptz[]) AS k, h.{col} AS at,
                      h.num, h.txt, h.dataset
               FROM attr_history h
               WHERE h.entity = $1 AND h.name = $2 AND h.{col} >= ($3::timestamptz[])[1]
                 AND h.{col} < ($4::timestamptz[])[array_length($4::timestamptz[], 1)]) h
         WHERE h.k >= 1 AND h.at < ($4::timestamptz[])[h.k]
         GROUP BY h.k, h.dataset"
    );
    let mut out = AggregatePage::new();
    for name in attribute_names(c, rowid, &q.attrs).await? {
        let rows = c
            .query(&sql, &[&rowid, &name, &starts, &ends])
            .await
            .map_err(pg_error)?;
        let mut by_dataset: BTreeMap<Option<String>, Vec<PeriodStats>> = BTreeMap::new();
        for r in rows {
            let k: i64 = r.get(0);
            let Some(k) = usize::try_from(k - 1).ok().filter(|k| *k < q.periods.len()) else {
                continue;
            };
            let periods = by_dataset
                .entry(r.get(1))
                .or_insert_with(|| q.empty_periods());
            let st = &mut periods[k];
            st.total = r.get::<_, i64>(2).max(0) as u64;
            st.numbers = r.get::<_, i64>(3).max(0) as u64;
            st.sum = r.get(4);
            st.sum_sq = r.get(5);
            st.min = r.get(6);
            st.max = r.get(7);
            st.distinct = r.get::<_, i64>(8).max(0) as u64;
        }
        if !by_dataset.is_empty() {
            out.insert(name, by_dataset);
        }
    }
    Ok(Some(out))
}
