//! The behaviour every `Store` backend must show: each check is a function of a
//! store, run as one test per backend (module `sqlite`, module `postgres`), plus a
//! test per backend that runs them all on one store and reads it again after
//! reopening. Module `postgres_only` checks what only PostgreSQL has: history
//! partitions, and two stores (nodes) over one database.
//!
//! The PostgreSQL tests need a server: `DOTHI_TEST_DATABASE_URL` names it
//! (`scripts/test.sh` sets `postgres://postgres@127.0.0.1:5432/postgres`). Without the
//! variable they say on the terminal that they were skipped; with it and no server
//! they fail, saying so. Each test creates a database of its own with a random name
//! and drops it at the end.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ngsi::entity::{Reader, UpdateResult};
use ngsi::filter::{GeoFilter, QFilter};
use ngsi::query::{parse_geoq, parse_q, parse_type_expr};
use ngsi::{Context, Entity, Error};
use serde_json::{Value, json};
use store::{
    AggregateQuery, Applied, Change, EntityQuery, HistoryEdit, HistoryPage, HistoryQuery,
    QueryPage, Store, StoreError, StoreResult, TimeField, TimeRange, WriteOp,
};

fn entity(v: Value) -> Entity {
    let ctx = Context::core();
    Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    }
    .entity(&v, None)
    .unwrap()
}

fn create(e: Entity) -> WriteOp {
    WriteOp::new(e.id.clone(), move |current| {
        if current.is_some() {
            return Err(Error::already_exists("exists"));
        }
        Ok((
            Change::Put(e.into()),
            Applied {
                created: true,
                result: UpdateResult::default(),
            },
        ))
    })
}

fn delete(id: &str) -> WriteOp {
    WriteOp::new(id, |current| match current {
        Some(_) => Ok((Change::Delete, Applied::default())),
        None => Err(Error::not_found("none")),
    })
}

async fn open_sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    store::open(&format!("sqlite://{}", dir.path().join("hub.db").display()))
        .await
        .unwrap()
}

fn ids(page: &store::QueryPage) -> Vec<String> {
    page.entities.iter().map(|e| e.id.clone()).collect()
}

/// Writes one entity, created from its JSON: the write's results.
async fn create_in(store: &Arc<dyn Store>, tenant: &str, v: Value) -> Vec<StoreResult<Applied>> {
    store.write(tenant, vec![create(entity(v))]).await.unwrap()
}

/// Whether every operation of a write succeeded.
async fn all_written(store: &Arc<dyn Store>, tenant: &str, ops: Vec<WriteOp>) -> bool {
    store
        .write(tenant, ops)
        .await
        .unwrap()
        .iter()
        .all(Result::is_ok)
}

/// An entity that must be stored.
async fn stored(store: &Arc<dyn Store>, tenant: &str, id: &str) -> Entity {
    store.get(tenant, id).await.unwrap().unwrap()
}

/// Asserts that a call was refused by the store with an error of this kind.
fn assert_rejected<T: std::fmt::Debug>(r: &StoreResult<T>, kind: ngsi::ErrorKind) {
    assert!(
        matches!(r, Err(StoreError::Rejected(e)) if e.kind == kind),
        "{r:?}"
    );
}

/// The ids of the entities a query selects, by the model's own evaluation.
fn model_ids(all: &[Entity], query: &EntityQuery) -> Vec<String> {
    all.iter()
        .filter(|e| query.matches(e))
        .map(|e| e.id.clone())
        .collect()
}

/// How many records a tenant has in a collection.
async fn record_count(store: &Arc<dyn Store>, collection: &str, tenant: &str) -> u64 {
    let page = store.registry_list(collection, tenant, 0, 10).await;
    page.unwrap().count
}

/// The first `limit` instances of an entity's history, by observation time.
fn history_query(id: &str, limit: usize) -> HistoryQuery {
    HistoryQuery {
        entity_id: id.into(),
        limit,
        ..Default::default()
    }
}

/// A page of the history of an entity that must exist.
async fn history_page(store: &Arc<dyn Store>, tenant: &str, query: HistoryQuery) -> HistoryPage {
    store.history(tenant, query).await.unwrap().unwrap()
}

async fn writes_reads_and_isolates_tenants(store: Arc<dyn Store>) {
    let r = store
        .write(
            "",
            vec![create(entity(
                json!({"id": "urn:a:1", "type": "T", "x": 1}),
            ))],
        )
        .await
        .unwrap();
    assert!(r[0].as_ref().unwrap().created);
    // The same id again is refused by the mutation, and the refusal comes back as is.
    let r = create_in(&store, "", json!({"id": "urn:a:1", "type": "T"})).await;
    assert_rejected(&r[0], ngsi::ErrorKind::AlreadyExists);
    assert_eq!(
        store.get("", "urn:a:1").await.unwrap().unwrap().attrs.len(),
        1
    );

    // Tenants: created by the first write, isolated.
    assert!(!store.tenant_exists("city-a").await.unwrap());
    create_in(&store, "city-a", json!({"id": "urn:a:1", "type": "Other"})).await;
    assert!(store.tenant_exists("city-a").await.unwrap());
    assert_eq!(store.tenants().await.unwrap(), vec!["city-a".to_string()]);
    assert!(
        stored(&store, "city-a", "urn:a:1")
            .await
            .has_type(&Context::core().expand("Other"))
    );
    assert!(
        stored(&store, "", "urn:a:1")
            .await
            .has_type(&Context::core().expand("T"))
    );
    assert!(store.get("city-b", "urn:a:1").await.unwrap().is_none());

    // A refused mutation neither writes nor creates a tenant.
    let r = store
        .write("city-c", vec![delete("urn:none:1")])
        .await
        .unwrap();
    assert!(r[0].is_err());
    assert!(!store.tenant_exists("city-c").await.unwrap());
}

async fn batch_items_are_independent(store: Arc<dyn Store>) {
    let ops = vec![
        create(entity(json!({"id": "urn:b:1", "type": "B"}))),
        create(entity(json!({"id": "urn:b:1", "type": "B"}))),
        create(entity(json!({"id": "urn:b:2", "type": "B"}))),
        delete("urn:b:404"),
    ];
    let r = store.write("", ops).await.unwrap();
    assert_eq!(
        r.iter().map(Result::is_ok).collect::<Vec<_>>(),
        vec![true, false, true, false]
    );
    assert!(store.get("", "urn:b:2").await.unwrap().is_some());
    store.write("", vec![delete("urn:b:1")]).await.unwrap();
    assert!(store.get("", "urn:b:1").await.unwrap().is_none());

    // Rewriting an entity replaces its index rows: updates, deletes and re-creations
    // of entities with indexed values all succeed, and queries see the new values.
    let v = |n: i64| {
        entity(
            json!({"id": "urn:b:3", "type": "B", "n": n, "tags": ["a", "b"], "location": {"type": "Point", "coordinates": [107.0, 16.8]}}),
        )
    };
    assert!(all_written(&store, "", vec![create(v(1))]).await);
    let replace = |e: Entity| {
        WriteOp::new(e.id.clone(), move |_| {
            Ok((Change::Put(e.into()), Applied::default()))
        })
    };
    assert!(all_written(&store, "", vec![replace(v(2))]).await);
    assert!(all_written(&store, "", vec![replace(v(3)), replace(v(4))]).await);
    let ctx = Context::core();
    let n_is = |n: i64| EntityQuery {
        q: Some(
            QFilter::new(
                parse_q(&format!("n=={n}"))
                    .unwrap()
                    .map_attrs(&|a| ctx.expand(a)),
            )
            .unwrap(),
        ),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(&store.query("", n_is(4)).await.unwrap()),
        vec!["urn:b:3".to_string()]
    );
    assert!(store.query("", n_is(1)).await.unwrap().entities.is_empty());
    assert!(all_written(&store, "", vec![delete("urn:b:3")]).await);
    assert!(all_written(&store, "", vec![create(v(5))]).await);
    assert_eq!(
        ids(&store.query("", n_is(5)).await.unwrap()),
        vec!["urn:b:3".to_string()]
    );

    // One call may change an entity several times: each operation sees the one
    // before it, and a deletion takes with it what the call had written before.
    let w = |id: &str, n: i64| entity(json!({"id": id, "type": "B", "n": n}));
    let r = store
        .write(
            "",
            vec![
                create(w("urn:b:4", 1)),
                replace(w("urn:b:4", 2)),
                delete("urn:b:4"),
                create(w("urn:b:4", 3)),
                create(w("urn:b:5", 1)),
                replace(w("urn:b:5", 2)),
                create(w("urn:b:6", 1)),
                delete("urn:b:6"),
                delete("urn:b:6"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        r.iter().map(Result::is_ok).collect::<Vec<_>>(),
        vec![true, true, true, true, true, true, true, true, false]
    );
    assert_eq!(
        ids(&store.query("", n_is(3)).await.unwrap()),
        vec!["urn:b:4".to_string()]
    );
    assert_eq!(
        ids(&store.query("", n_is(2)).await.unwrap()),
        vec!["urn:b:5".to_string()]
    );
    assert!(store.query("", n_is(1)).await.unwrap().entities.is_empty());
    assert!(store.get("", "urn:b:6").await.unwrap().is_none());
    let n = ctx.expand("n");
    for (id, expected) in [("urn:b:4", vec![3.0]), ("urn:b:5", vec![1.0, 2.0])] {
        let page = history_page(&store, "", history_query(id, 100)).await;
        let values: Vec<f64> = page.attrs[&n]
            .iter()
            .map(|i| i.attribute.value.as_f64().unwrap())
            .collect();
        assert_eq!(values, expected, "the history of {id}");
    }
    assert!(
        store
            .history("", history_query("urn:b:6", 100))
            .await
            .unwrap()
            .is_none()
    );
}

/// Deterministic pseudo-random numbers, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Asserts that a query (asking for its count) returns exactly the entities among
/// `all` that the model selects, in order.
async fn agrees_with_the_model(
    store: &Arc<dyn Store>,
    tenant: &str,
    all: &[Entity],
    query: EntityQuery,
    what: &str,
) {
    let expected = model_ids(all, &query);
    let page = store.query(tenant, query).await.unwrap();
    assert_eq!(ids(&page), expected, "{what}");
    assert_eq!(page.count, Some(expected.len() as u64), "{what}");
}

/// Random entities; then each query's answer from the store must equal the model's
/// own evaluation over every entity (the indexes may narrow, never drop a match).
async fn queries_agree_with_the_model(store: Arc<dyn Store>) {
    let all = model_entities();
    let ops: Vec<WriteOp> = all.iter().cloned().map(create).collect();
    assert!(all_written(&store, "q", ops).await);
    q_agrees_with_the_model(&store, "q", &all).await;
    geo_paging_and_discovery_agree_with_the_model(&store, &all).await;
}

/// The 400 random entities of [`queries_agree_with_the_model`].
fn model_entities() -> Vec<Entity> {
    let mut rng = Lcg(7);
    let statuses = ["ok", "alarm", "offline", "Đông Hà"];
    let mut all = Vec::new();
    for i in 0..400 {
        let types = match rng.below(3) {
            0 => json!("Gauge"),
            1 => json!("Station"),
            _ => json!(["Gauge", "Station"]),
        };
        let mut v = json!({
            "id": format!("urn:q:{i}"),
            "type": types,
            "level": {"type": "Property", "value": rng.below(100) as f64 / 10.0, "quality": {"type": "Property", "value": rng.below(3)}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [106.0 + rng.below(1000) as f64 / 500.0, 16.0 + rng.below(1000) as f64 / 500.0]}},
        });
        if rng.below(4) > 0 {
            v["status"] = json!(statuses[rng.below(4) as usize]);
        }
        if rng.below(2) == 0 {
            v["count"] = json!([rng.below(5), rng.below(5)]);
        }
        // Observation times of every precision RFC 3339 writes, some levels with a
        // second instance (a datasetId) observed at another time.
        let observed = |rng: &mut Lcg| {
            let fraction = ["", ".25", ".000125", ".000000375"][rng.below(4) as usize];
            let (m, s) = (rng.below(60), rng.below(60));
            format!("2026-03-01T10:{m:02}:{s:02}{fraction}Z")
        };
        match rng.below(4) {
            0 => {}
            1 => {
                let second = json!({"type": "Property", "value": 1, "datasetId": "urn:ds:2", "observedAt": observed(&mut rng)});
                v["level"]["observedAt"] = json!(observed(&mut rng));
                v["level"] = json!([v["level"].clone(), second]);
            }
            _ => v["level"]["observedAt"] = json!(observed(&mut rng)),
        }
        all.push(entity(v));
    }
    all
}

/// Each `q` of a list, with each type selection, answers in `tenant` what the model
/// finds among `all`.
async fn q_agrees_with_the_model(store: &Arc<dyn Store>, tenant: &str, all: &[Entity]) {
    let ctx = Context::core();
    let qs = [
        "level>5",
        "level>=5;status==\"alarm\"",
        "level<2|status==\"offline\"",
        "status==\"ok\",\"alarm\"",
        "status!=\"ok\"",
        "level==3..6",
        "level.quality==1",
        "status~=\"^Đông\"",
        "!status",
        "count==3",
        "(level>8|level<1);status",
        "level==4.2",
        "level.observedAt>=2026-03-01T10:30:00Z",
        "level.observedAt>2026-03-01T10:20:00.25Z",
        "level.observedAt<2026-03-01T10:10:00.000000375Z",
        "level.observedAt==2026-03-01T10:10:00Z..2026-03-01T10:40:00.000125Z",
        "level.observedAt<=2026-03-01T10:45:00Z;status==\"alarm\"",
        "level.observedAt>=2026-03-01T10:50:00Z|level<1",
    ];
    let types = [
        None,
        Some("Gauge"),
        Some("Gauge;Station"),
        Some("Gauge,Station"),
    ];
    for q in qs {
        for t in types {
            let query = EntityQuery {
                types: t.map(|t| parse_type_expr(t).unwrap().map_names(&|n| ctx.expand(n))),
                q: Some(QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
                limit: 1000,
                count: true,
                ..Default::default()
            };
            agrees_with_the_model(store, tenant, all, query, &format!("q={q} type={t:?}")).await;
        }
    }
    // A few ids asked (they drive the query), with a type, a `q`, and an id that no
    // entity has.
    let some_ids: Vec<String> = all
        .iter()
        .step_by(7)
        .map(|e| e.id.clone())
        .chain(["urn:q:none".to_string()])
        .collect();
    for q in [None, Some("level>5"), Some("status==\"alarm\"")] {
        for t in types {
            let query = EntityQuery {
                ids: some_ids.clone(),
                types: t.map(|t| parse_type_expr(t).unwrap().map_names(&|n| ctx.expand(n))),
                q: q.map(|q| {
                    QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()
                }),
                limit: 1000,
                count: true,
                ..Default::default()
            };
            let what = format!("{} ids, q={q:?} type={t:?}", some_ids.len());
            agrees_with_the_model(store, tenant, all, query, &what).await;
        }
    }
}

/// A box holding more entities than a planner counts at first, in a type larger still
/// (the street-level box of a dense district): every page and the count agree with
/// the model, whichever way the backend reads it.
async fn a_large_box_in_a_larger_type_agrees_with_the_model(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let mut all = Vec::new();
    for i in 0..3_000 {
        // Five in six in a 0.02° box, the others far from it.
        let (lon, lat) = if i % 6 == 5 {
            (106.0 + (i % 50) as f64 / 100.0, 17.5)
        } else {
            (
                107.1 + (i % 97) as f64 / 10_000.0,
                16.8 + (i % 89) as f64 / 10_000.0,
            )
        };
        let status = ["open", "closed"][i % 2];
        all.push(entity(json!({
            "id": format!("urn:box:{i:05}"), "type": "Report",
            "status": status,
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        })));
    }
    for chunk in all.chunks(500) {
        let results = store
            .write("box", chunk.iter().cloned().map(create).collect())
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
    let mut g = parse_geoq(
        "within",
        "Polygon",
        "[[[107.09,16.79],[107.12,16.79],[107.12,16.82],[107.09,16.82],[107.09,16.79]]]",
        None,
    )
    .unwrap();
    g.geoproperty = ctx.expand(&g.geoproperty);
    let base = EntityQuery {
        types: Some(
            parse_type_expr("Report")
                .unwrap()
                .map_names(&|n| ctx.expand(n)),
        ),
        q: Some(
            QFilter::new(
                parse_q("status==\"open\"")
                    .unwrap()
                    .map_attrs(&|n| ctx.expand(n)),
            )
            .unwrap(),
        ),
        geo: Some(GeoFilter::new(g).unwrap()),
        limit: 1000,
        count: true,
        ..Default::default()
    };
    let expected = model_ids(&all, &base);
    assert_eq!(expected.len(), 1500);
    let mut paged = Vec::new();
    let query = EntityQuery { limit: 300, ..base };
    for p in pages(&store, "box", &query).await {
        // A page after a position counts the matches after it.
        assert_eq!(p.count, Some((expected.len() - paged.len()) as u64));
        paged.extend(ids(&p));
    }
    assert_eq!(paged, expected);
}

/// An entity of [`model_entities`] written again with another `status` (or none), by
/// an upsert.
fn restated(e: &Entity, i: usize) -> (Entity, WriteOp) {
    let ctx = Context::core();
    let mut next = e.clone();
    let status = ctx.expand("status");
    match i % 3 {
        0 => {
            next.attrs.remove(&status);
        }
        _ => {
            let value = ["ok", "alarm", "Đông Hà"][i % 3];
            let moved = entity(json!({"id": e.id, "type": "Gauge", "status": value}));
            next.attrs
                .insert(status.clone(), moved.attrs[&status].clone());
        }
    }
    let put = next.clone();
    let op = WriteOp::new(e.id.clone(), move |_| {
        Ok((Change::Put(put.into()), Applied::default()))
    });
    (next, op)
}

/// Attributes left out of the value index are still compared exactly: `status` is
/// left out after half of the entities were written (their rows are dropped), the
/// other half and a rewrite of some of the first are written after, and `level`
/// (numbers, with sub-attributes and observation times) is left out last. Every `q`
/// then agrees with the model, and a bad name is refused. Returns the entities of
/// tenant `lo` as the model has them.
async fn compares_attributes_left_out_of_the_value_index(store: Arc<dyn Store>) -> Vec<Entity> {
    let ctx = Context::core();
    let mut all = model_entities();
    let (first, rest) = all.split_at(200);
    let write = async |ops: Vec<WriteOp>| {
        let results = store.write("lo", ops).await.unwrap();
        assert!(results.iter().all(Result::is_ok));
    };
    write(first.iter().cloned().map(create).collect()).await;
    store
        .leave_out_of_value_index(&[ctx.expand("status")])
        .await
        .unwrap();
    // Declaring it again, with a name already left out, changes nothing.
    store
        .leave_out_of_value_index(&[ctx.expand("status"), ctx.expand("status")])
        .await
        .unwrap();
    write(rest.iter().cloned().map(create).collect()).await;
    let mut rewrites = Vec::new();
    for i in (0..200).step_by(4) {
        let (next, op) = restated(&all[i], i);
        all[i] = next;
        rewrites.push(op);
    }
    write(rewrites).await;
    q_agrees_with_the_model(&store, "lo", &all).await;
    store
        .leave_out_of_value_index(&[ctx.expand("level")])
        .await
        .unwrap();
    q_agrees_with_the_model(&store, "lo", &all).await;
    for bad in ["", "has space"] {
        let refused = store.leave_out_of_value_index(&[bad.to_string()]).await;
        assert!(
            matches!(refused, Err(StoreError::Rejected(_))),
            "{bad:?}: {refused:?}"
        );
    }
    all
}

/// The rows the value index holds of attribute `name` in the SQLite file `db`.
fn sqlite_value_rows(db: &std::path::Path, name: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM attr_values a JOIN names n ON n.id = a.name WHERE n.name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

/// The value index keeps no row of an attribute left out, while the observation
/// times of one are still rows of their own.
#[tokio::test]
async fn sqlite_keeps_no_value_rows_of_attributes_left_out() {
    let ctx = Context::core();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    queries_agree_with_the_model(open_sqlite(&dir).await).await;
    // Tenant q's entities, written before anything was left out, have rows.
    let before = sqlite_value_rows(&db, &ctx.expand("status"));
    assert!(before > 0);
    compares_attributes_left_out_of_the_value_index(open_sqlite(&dir).await).await;
    assert_eq!(sqlite_value_rows(&db, &ctx.expand("status")), 0);
    assert_eq!(sqlite_value_rows(&db, &ctx.expand("level")), 0);
    assert!(sqlite_value_rows(&db, &format!("{} observedAt", ctx.expand("level"))) > 0);
}

/// Geo-queries, pages and discovery over the entities of [`model_entities`] in
/// tenant `q`.
async fn geo_paging_and_discovery_agree_with_the_model(store: &Arc<dyn Store>, all: &[Entity]) {
    let ctx = Context::core();
    let square = "[[[106.5,16.5],[107.5,16.5],[107.5,17.5],[106.5,17.5],[106.5,16.5]]]";
    for (georel, geometry, coordinates) in [
        ("near;maxDistance==20000", "Point", "[107,17]"),
        ("near;minDistance==50000", "Point", "[107,17]"),
        ("within", "Polygon", square),
        ("disjoint", "Polygon", square),
    ] {
        let mut g = parse_geoq(georel, geometry, coordinates, None).unwrap();
        g.geoproperty = ctx.expand(&g.geoproperty);
        let query = EntityQuery {
            geo: Some(GeoFilter::new(g).unwrap()),
            limit: 1000,
            count: true,
            ..Default::default()
        };
        let expected = model_ids(all, &query);
        assert!(!expected.is_empty(), "{georel} should match some");
        let page = store.query("q", query).await.unwrap();
        assert_eq!(ids(&page), expected, "{georel}");
    }

    // Pages follow each other without overlap, with and without residual filtering.
    for q in [None, Some("level>3")] {
        let base = EntityQuery {
            q: q.map(|q| QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
            limit: 1000,
            ..Default::default()
        };
        let everything = ids(&store.query("q", base.clone()).await.unwrap());
        let mut paged = Vec::new();
        for page in 0.. {
            let p = store
                .query(
                    "q",
                    EntityQuery {
                        limit: 37,
                        offset: page * 37,
                        ..base.clone()
                    },
                )
                .await
                .unwrap();
            if p.entities.is_empty() {
                break;
            }
            paged.extend(ids(&p));
        }
        assert_eq!(paged, everything, "paging with q={q:?}");
    }

    // Keyset pages (`after` the last position) give the same sequence, whichever
    // driver walks: the tenant, a type, an exact `q`, or the model's residual test.
    let near = {
        let mut g = parse_geoq("near;maxDistance==200000", "Point", "[107,17]", None).unwrap();
        g.geoproperty = ctx.expand(&g.geoproperty);
        GeoFilter::new(g).unwrap()
    };
    let keyset_cases = [
        ("all", EntityQuery::default()),
        (
            "type",
            EntityQuery {
                types: Some(
                    parse_type_expr("Gauge")
                        .unwrap()
                        .map_names(&|n| ctx.expand(n)),
                ),
                ..Default::default()
            },
        ),
        (
            "exact q",
            EntityQuery {
                q: Some(
                    QFilter::new(parse_q("level>3").unwrap().map_attrs(&|n| ctx.expand(n)))
                        .unwrap(),
                ),
                ..Default::default()
            },
        ),
        (
            "geo",
            EntityQuery {
                geo: Some(near),
                ..Default::default()
            },
        ),
    ];
    for (name, base) in keyset_cases {
        let everything = ids(&store
            .query(
                "q",
                EntityQuery {
                    limit: 1000,
                    ..base.clone()
                },
            )
            .await
            .unwrap());
        assert!(everything.len() > 37, "{name}: enough to page");
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let p = store
                .query(
                    "q",
                    EntityQuery {
                        limit: 37,
                        after,
                        ..base.clone()
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                p.positions.len(),
                p.entities.len(),
                "{name}: a position per entity"
            );
            paged.extend(ids(&p));
            after = p.next(37);
            if after.is_none() {
                break;
            }
        }
        assert_eq!(paged, everything, "keyset paging, {name}");
    }

    // Discovery sees both types and the kinds of attribute.
    let types = store.types("q").await.unwrap();
    let gauge = types
        .iter()
        .find(|t| t.type_iri == ctx.expand("Gauge"))
        .unwrap();
    let expected = all
        .iter()
        .filter(|e| e.has_type(&ctx.expand("Gauge")))
        .count() as u64;
    assert_eq!(gauge.entity_count, expected);
    assert!(gauge.attributes.contains_key(&ctx.expand("location")));
    let attrs = store.attributes("q").await.unwrap();
    let level = attrs
        .iter()
        .find(|a| a.name_iri == ctx.expand("level"))
        .unwrap();
    let instances: usize = all
        .iter()
        .map(|e| e.attrs[&ctx.expand("level")].len())
        .sum();
    assert!(instances > 400, "some levels have a second instance");
    assert_eq!(level.attribute_count, instances as u64);
}

/// Texts of any length are stored and compared whole, as the model compares them
/// (in byte order), whatever the index keeps of them.
/// Keyset paging reads on from where it stopped: an entity deleted from a page already
/// read shifts nothing (an offset would skip one), and one created meanwhile comes last.
async fn keyset_pages_survive_writes(store: Arc<dyn Store>) {
    let make = |i: usize| {
        entity(
            json!({"id": format!("urn:k:{i}"), "type": "Gauge", "n": {"type": "Property", "value": i}}),
        )
    };
    let ops: Vec<WriteOp> = (0..10).map(|i| create(make(i))).collect();
    assert!(all_written(&store, "k", ops).await);
    let page = |after| EntityQuery {
        limit: 4,
        after,
        ..Default::default()
    };
    let first = store.query("k", page(None)).await.unwrap();
    assert_eq!(ids(&first), ["urn:k:0", "urn:k:1", "urn:k:2", "urn:k:3"]);
    let positions = first.positions.clone();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions rise: {positions:?}"
    );
    store
        .write("k", vec![delete("urn:k:1")])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    store
        .write("k", vec![create(make(10))])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let mut rest = Vec::new();
    let mut after = first.next(4);
    while let Some(at) = after {
        let p = store.query("k", page(Some(at))).await.unwrap();
        rest.extend(ids(&p));
        after = p.next(4);
    }
    let expected: Vec<String> = (4..=10).map(|i| format!("urn:k:{i}")).collect();
    assert_eq!(rest, expected);
    // A page that is not full has no next page.
    let last = store.query("k", page(Some(positions[0]))).await.unwrap();
    assert_eq!(last.entities.len(), 4);
    assert!(
        store
            .query(
                "k",
                EntityQuery {
                    limit: 100,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .next(100)
            .is_none()
    );
}

async fn compares_long_texts(store: Arc<dyn Store>) {
    let ctx = Context::core();
    // Longer than a query may be (64 KiB), and than one a query may name.
    let huge = format!("{}b", "đ".repeat(1_500_000));
    let long = format!("{}c", "đ".repeat(10_000));
    let near = format!("{}a", "đ".repeat(600));
    let texts = [
        huge,
        long.clone(),
        near.clone(),
        "đ".repeat(600),
        "short".into(),
    ];
    let all: Vec<Entity> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| entity(json!({"id": format!("urn:t:{i}"), "type": "T", "note": t})))
        .collect();
    let written = store
        .write("t", all.iter().cloned().map(create).collect())
        .await
        .unwrap();
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    assert_eq!(store.get("t", "urn:t:0").await.unwrap().unwrap(), all[0]);
    let quoted = |t: &str| format!("\"{t}\"");
    for q in [
        format!("note=={}", quoted(&long)),
        format!("note=={}", quoted(&near)),
        format!("note>{}", quoted(&near)),
        format!("note<{}", quoted(&long)),
        format!("note>{}", quoted(&long)),
        format!("note>={}", quoted(&"đ".repeat(600))),
        "note>\"s\"".to_string(),
        "note<\"đđ\"".to_string(),
        "note==\"short\"".to_string(),
    ] {
        let query = EntityQuery {
            q: Some(QFilter::new(parse_q(&q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
            limit: 10,
            count: true,
            ..Default::default()
        };
        let shown: String = q.chars().take(40).collect();
        agrees_with_the_model(&store, "t", &all, query, &format!("q={shown}…")).await;
    }
}

/// `attr.observedAt` comparisons follow the entity as it changes: a new reading
/// moves it, a deletion removes it.
async fn indexes_observation_times(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let gauge = |observed: &str| {
        entity(json!({"id": "urn:o:1", "type": "Gauge",
            "level": {"type": "Property", "value": 2, "observedAt": observed}}))
    };
    let put = |e: Entity| {
        WriteOp::new(e.id.clone(), move |_| {
            Ok((Change::Put(e.into()), Applied::default()))
        })
    };
    let count = |q: &str| {
        let store = store.clone();
        let query = EntityQuery {
            q: Some(QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
            limit: 10,
            count: true,
            ..Default::default()
        };
        async move { store.query("o", query).await.unwrap().count }
    };
    let fresh = "level.observedAt>=2026-03-01T10:00:00Z";
    let old = "level.observedAt<2026-03-01T10:00:00Z";
    assert!(all_written(&store, "o", vec![put(gauge("2026-03-01T10:00:00Z"))]).await);
    assert_eq!((count(fresh).await, count(old).await), (Some(1), Some(0)));
    assert!(
        all_written(
            &store,
            "o",
            vec![put(gauge("2026-03-01T09:59:59.999999999Z"))]
        )
        .await
    );
    assert_eq!((count(fresh).await, count(old).await), (Some(0), Some(1)));
    // Discovery lists the attribute, not the index's own name for its times.
    let attributes = store.attributes("o").await.unwrap();
    assert_eq!(attributes.len(), 1);
    assert_eq!(attributes[0].name_iri, ctx.expand("level"));
    let types = store.types("o").await.unwrap();
    assert_eq!(
        types[0].attributes.keys().collect::<Vec<_>>(),
        vec![&ctx.expand("level")]
    );
    assert!(all_written(&store, "o", vec![delete("urn:o:1")]).await);
    assert_eq!((count(fresh).await, count(old).await), (Some(0), Some(0)));
}

async fn keeps_contexts(store: Arc<dyn Store>) {
    assert_eq!(
        store
            .cached_context("https://example.org/c.jsonld")
            .await
            .unwrap(),
        None
    );
    store
        .cache_context("https://example.org/c.jsonld", "{\"@context\":{}}")
        .await
        .unwrap();
    assert_eq!(
        store
            .cached_context("https://example.org/c.jsonld")
            .await
            .unwrap()
            .as_deref(),
        Some("{\"@context\":{}}")
    );
    // Another, forgotten; the first stays (`survives_reopening` reads it again).
    store
        .cache_context("https://example.org/gone.jsonld", "{\"@context\":{}}")
        .await
        .unwrap();
    store
        .forget_context("https://example.org/gone.jsonld")
        .await
        .unwrap();
    assert_eq!(
        store
            .cached_context("https://example.org/gone.jsonld")
            .await
            .unwrap(),
        None
    );
    // Forgetting what is not held is no error.
    store
        .forget_context("https://example.org/gone.jsonld")
        .await
        .unwrap();
}

/// A reading of gauge `id` at minute `minute` of 2026-10-18 (UTC), value `level`.
fn reading(id: &str, minute: u32, level: f64) -> WriteOp {
    let e = entity(json!({
        "id": id, "type": "Gauge",
        "level": {"type": "Property", "value": level, "unitCode": "MTR",
                  "observedAt": format!("2026-10-18T{:02}:{:02}:00Z", minute / 60, minute % 60)},
        "name": {"type": "Property", "value": "Thạch Hãn"},
    }));
    WriteOp::new(id, move |current| {
        let Some(mut cur) = current else {
            return Ok((
                Change::Put(e.into()),
                Applied {
                    created: true,
                    ..Default::default()
                },
            ));
        };
        let level = ngsi::Context::core().expand("level");
        let result = cur.update(
            [(level.clone(), e.attrs[&level].clone())]
                .into_iter()
                .collect(),
            ngsi::entity::now(),
        );
        Ok((
            Change::Put(cur.into()),
            Applied {
                created: false,
                result,
            },
        ))
    })
}

fn at(minute: u32) -> chrono::DateTime<chrono::Utc> {
    ngsi::entity::parse_time(&format!(
        "2026-10-18T{:02}:{:02}:00Z",
        minute / 60,
        minute % 60
    ))
    .unwrap()
}

async fn keeps_history(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let (level, name) = (ctx.expand("level"), ctx.expand("name"));
    // A reading every 5 minutes for 6 hours; level goes up and down.
    let levels: Vec<f64> = (0..72).map(|i| ((i * 37) % 50) as f64 / 10.0).collect();
    for (i, l) in levels.iter().enumerate() {
        let r = store
            .write("h", vec![reading("urn:g:1", i as u32 * 5, *l)])
            .await
            .unwrap();
        assert!(r[0].is_ok());
    }
    let all = history_query("urn:g:1", 1000);
    let page = history_page(&store, "h", all.clone()).await;
    // `name` never changed after the creation: one instance; `level` one per reading.
    assert_eq!(page.attrs[&name].len(), 1);
    let got: Vec<f64> = page.attrs[&level]
        .iter()
        .map(|i| i.attribute.value.as_f64().unwrap())
        .collect();
    assert_eq!(got, levels);
    assert!(!page.truncated);
    let first = &page.attrs[&level][0].attribute;
    assert_eq!(first.observed_at, Some(at(0)));
    assert_eq!(first.unit_code.as_deref(), Some("MTR"));
    // Distinct instance ids, in time order.
    let ids: Vec<i64> = page.attrs[&level].iter().map(|i| i.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // A range, half-open; lastN; a page limit.
    let ranged = HistoryQuery {
        attrs: vec![level.clone()],
        range: TimeRange {
            from: Some(at(60)),
            to: Some(at(120)),
        },
        ..all.clone()
    };
    let page = history_page(&store, "h", ranged.clone()).await;
    assert_eq!(page.attrs.len(), 1);
    assert_eq!(page.attrs[&level].len(), 12);
    assert_eq!(page.attrs[&level][0].attribute.observed_at, Some(at(60)));
    let last = HistoryQuery {
        last_n: Some(3),
        ..ranged.clone()
    };
    let page = history_page(&store, "h", last).await;
    let times: Vec<_> = page.attrs[&level]
        .iter()
        .map(|i| i.attribute.observed_at.unwrap())
        .collect();
    assert_eq!(times, vec![at(105), at(110), at(115)]);
    let limited = HistoryQuery {
        limit: 5,
        ..ranged.clone()
    };
    let page = history_page(&store, "h", limited).await;
    assert_eq!(page.attrs[&level].len(), 5);
    assert!(page.truncated);
    // By write time: every instance was written just now, none before that morning.
    let written = HistoryQuery {
        field: TimeField::Written,
        range: TimeRange {
            from: None,
            to: Some(at(0)),
        },
        ..all.clone()
    };
    assert!(
        store
            .history("h", written)
            .await
            .unwrap()
            .unwrap()
            .attrs
            .is_empty()
    );

    // Aggregation per hour, checked against the values themselves.
    let periods: Vec<_> = (0..6).map(|h| (at(h * 60), at(h * 60 + 60))).collect();
    let agg = store
        .aggregate(
            "h",
            AggregateQuery {
                entity_id: "urn:g:1".into(),
                attrs: vec![level.clone()],
                field: TimeField::Observed,
                periods: periods.clone(),
                distinct: true,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let stats = &agg[&level][&None];
    assert_eq!(stats.len(), 6);
    for (h, st) in stats.iter().enumerate() {
        let hour = &levels[h * 12..h * 12 + 12];
        assert_eq!((st.start, st.end), periods[h]);
        assert_eq!(st.total, 12);
        assert_eq!(st.numbers, 12);
        let mut distinct = hour.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert_eq!(st.distinct, distinct.len() as u64);
        assert!((st.sum - hour.iter().sum::<f64>()).abs() < 1e-9);
        assert!((st.sum_sq - hour.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-9);
        assert_eq!(st.min, hour.iter().copied().reduce(f64::min));
        assert_eq!(st.max, hour.iter().copied().reduce(f64::max));
    }

    // Edits: replace an instance, delete one, then the attribute's whole history.
    let page = history_page(&store, "h", ranged.clone()).await;
    let target = page.attrs[&level][0].clone();
    let mut changed = target.attribute.clone();
    changed.value = json!(9.5);
    let n = store
        .edit_history(
            "h",
            HistoryEdit::ReplaceInstance {
                entity_id: "urn:g:1".into(),
                name: level.clone(),
                instance: target.id,
                attribute: changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let page = history_page(&store, "h", ranged.clone()).await;
    assert_eq!(page.attrs[&level][0].attribute.value, json!(9.5));
    let delete_one = HistoryEdit::DeleteInstance {
        entity_id: "urn:g:1".into(),
        name: level.clone(),
        instance: target.id,
    };
    assert_eq!(
        store.edit_history("h", delete_one.clone()).await.unwrap(),
        1
    );
    assert_eq!(store.edit_history("h", delete_one).await.unwrap(), 0);
    let page = history_page(&store, "h", ranged.clone()).await;
    assert_eq!(page.attrs[&level].len(), 11);
    // Another tenant sees none of it.
    assert!(store.history("other", all.clone()).await.unwrap().is_none());

    // History given by a client is kept as given.
    let given = entity(json!({"id": "urn:g:2", "type": "Gauge",
        "level": {"type": "Property", "value": 1.0, "observedAt": "2026-10-18T00:00:00Z"}}));
    let instances: Vec<(String, ngsi::Attribute)> = [(0, 1.5), (5, 2.5), (10, 3.5)]
        .iter()
        .map(|(m, v)| {
            let mut a = given.attrs[&level][0].clone();
            a.value = json!(v);
            a.observed_at = Some(at(*m));
            a.dataset_id = Some("urn:ds:manual".into());
            (level.clone(), a)
        })
        .collect();
    let op = create(given).with_history(instances);
    assert!(all_written(&store, "h", vec![op]).await);
    let page = history_page(
        &store,
        "h",
        HistoryQuery {
            entity_id: "urn:g:2".into(),
            ..all.clone()
        },
    )
    .await;
    let got: Vec<_> = page.attrs[&level]
        .iter()
        .map(|i| (i.attribute.value.clone(), i.attribute.dataset_id.clone()))
        .collect();
    assert_eq!(
        got.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
        vec![json!(1.5), json!(2.5), json!(3.5)]
    );
    assert!(
        got.iter()
            .all(|(_, d)| d.as_deref() == Some("urn:ds:manual"))
    );
    let default_dataset = |dataset_id| HistoryEdit::DeleteAttribute {
        entity_id: "urn:g:2".into(),
        name: level.clone(),
        dataset_id,
    };
    assert_eq!(
        store
            .edit_history("h", default_dataset(Some(None)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .edit_history("h", default_dataset(Some(Some("urn:ds:manual".into()))))
            .await
            .unwrap(),
        3
    );

    // Deleting the entity deletes its history.
    assert!(all_written(&store, "h", vec![delete("urn:g:2")]).await);
    assert!(
        store
            .history(
                "h",
                HistoryQuery {
                    entity_id: "urn:g:2".into(),
                    ..all
                }
            )
            .await
            .unwrap()
            .is_none()
    );
}

/// The statistics the test computes itself from the instances the store returns, per
/// dataset and period: (total, numbers, sum, sum_sq, min, max).
type Expected =
    std::collections::BTreeMap<Option<String>, Vec<(u64, u64, f64, f64, Option<f64>, Option<f64>)>>;

fn expected_stats(
    instances: &[store::StoredInstance],
    periods: &[(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)],
) -> Expected {
    let mut out = Expected::new();
    for i in instances {
        let t = i.attribute.observed_at.unwrap();
        let Some(k) = periods.iter().position(|(s, e)| *s <= t && t < *e) else {
            continue;
        };
        let stats = out
            .entry(i.attribute.dataset_id.clone())
            .or_insert_with(|| vec![(0, 0, 0.0, 0.0, None, None); periods.len()]);
        let st = &mut stats[k];
        st.0 += 1;
        if let Some(n) = i.attribute.value.as_f64() {
            st.1 += 1;
            st.2 += n;
            st.3 += n * n;
            st.4 = Some(st.4.map_or(n, |m: f64| m.min(n)));
            st.5 = Some(st.5.map_or(n, |m: f64| m.max(n)));
        }
    }
    out
}

/// Aggregations over periods on whole hours (which a backend may answer from running
/// per-hour statistics) agree with the instances after every kind of history change,
/// and with the same periods asked with distinct values (read from the instances).
async fn aggregates_agree_with_the_instances(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let level = ctx.expand("level");
    let id = "urn:g:agg";
    // Readings every 7 minutes for 10 hours, some of them text (a sensor fault code),
    // two datasets.
    for i in 0..86u32 {
        let op = reading(id, i * 7, f64::from((i * 13) % 29) - 9.5);
        assert!(all_written(&store, "agg", vec![op]).await);
    }
    let given = entity(json!({"id": id, "type": "Gauge",
        "level": {"type": "Property", "value": 0.0, "observedAt": "2026-10-18T00:00:00Z"}}));
    let extra: Vec<(String, ngsi::Attribute)> = (0..30u32)
        .map(|i| {
            let mut a = given.attrs[&level][0].clone();
            a.value = if i % 5 == 0 {
                json!("E42")
            } else {
                json!(f64::from(i) * 0.25)
            };
            a.observed_at = Some(at(i * 19 + 3));
            a.dataset_id = Some("urn:ds:backup".into());
            (level.clone(), a)
        })
        .collect();
    let op = WriteOp::new(id, |current| {
        Ok((Change::Put(current.unwrap().into()), Applied::default()))
    })
    .with_history(extra);
    assert!(all_written(&store, "agg", vec![op]).await);

    let hours = |n: u32, len: u32| -> Vec<_> {
        (0..n)
            .map(|h| (at(h * len * 60), at((h + 1) * len * 60)))
            .collect()
    };
    let levels = HistoryQuery {
        attrs: vec![level.clone()],
        ..history_query(id, 10_000)
    };
    let check = |label: &'static str| {
        let store = store.clone();
        let level = level.clone();
        let levels = levels.clone();
        async move {
            let all = history_page(&store, "agg", levels).await;
            let instances = all.attrs.get(&level).cloned().unwrap_or_default();
            // Hourly, 3-hourly, and periods off the hour (2h30 long).
            for periods in [
                hours(11, 1),
                hours(4, 3),
                (0..5u32)
                    .map(|p| (at(p * 150 + 30), at(p * 150 + 180)))
                    .collect(),
            ] {
                for distinct in [false, true] {
                    let agg = store
                        .aggregate(
                            "agg",
                            AggregateQuery {
                                entity_id: id.into(),
                                attrs: vec![level.clone()],
                                field: TimeField::Observed,
                                periods: periods.clone(),
                                distinct,
                            },
                        )
                        .await
                        .unwrap()
                        .unwrap();
                    let want = expected_stats(&instances, &periods);
                    let got = agg.get(&level).cloned().unwrap_or_default();
                    assert_eq!(
                        got.keys().collect::<Vec<_>>(),
                        want.keys().collect::<Vec<_>>(),
                        "{label}: datasets"
                    );
                    for (dataset, stats) in &got {
                        for (k, st) in stats.iter().enumerate() {
                            let w = want[dataset][k];
                            let what =
                                format!("{label}: {dataset:?} period {k} distinct={distinct}");
                            assert_eq!((st.start, st.end), periods[k], "{what}");
                            assert_eq!((st.total, st.numbers), (w.0, w.1), "{what}");
                            assert!(
                                (st.sum - w.2).abs() < 1e-9,
                                "{what}: sum {} vs {}",
                                st.sum,
                                w.2
                            );
                            assert!((st.sum_sq - w.3).abs() < 1e-6, "{what}: sum_sq");
                            assert_eq!((st.min, st.max), (w.4, w.5), "{what}");
                        }
                    }
                }
            }
        }
    };
    check("as written").await;

    // Replace an instance with one in another hour, then delete one.
    let page = history_page(&store, "agg", levels.clone()).await;
    let by_number = |a: &&store::StoredInstance, b: &&store::StoredInstance| {
        let number = |i: &store::StoredInstance| i.attribute.value.as_f64().unwrap();
        number(a).total_cmp(&number(b))
    };
    let lowest = page.attrs[&level]
        .iter()
        .filter(|i| i.attribute.dataset_id.is_none())
        .min_by(by_number)
        .unwrap()
        .clone();
    let mut moved = lowest.attribute.clone();
    moved.value = json!(100.0);
    moved.observed_at = Some(at(9 * 60 + 1));
    let replace = HistoryEdit::ReplaceInstance {
        entity_id: id.into(),
        name: level.clone(),
        instance: lowest.id,
        attribute: moved,
    };
    assert_eq!(store.edit_history("agg", replace).await.unwrap(), 1);
    check("after a replaced instance").await;
    let highest_backup = page.attrs[&level]
        .iter()
        .filter(|i| i.attribute.dataset_id.is_some() && i.attribute.value.is_number())
        .max_by(by_number)
        .unwrap()
        .clone();
    let delete_one = HistoryEdit::DeleteInstance {
        entity_id: id.into(),
        name: level.clone(),
        instance: highest_backup.id,
    };
    assert_eq!(store.edit_history("agg", delete_one).await.unwrap(), 1);
    check("after a deleted instance").await;

    // A retention purge cutting an hour in two.
    let cutoffs = store::RetentionCutoffs {
        default: Some(at(2 * 60 + 25)),
        by_type: vec![],
    };
    let mut after = 0;
    loop {
        let step = store
            .purge_history("agg", cutoffs.clone(), after, 10)
            .await
            .unwrap();
        match step.next {
            Some(n) => after = n,
            None => break,
        }
    }
    check("after a purge").await;

    // One dataset's history deleted.
    let backup = HistoryEdit::DeleteAttribute {
        entity_id: id.into(),
        name: level.clone(),
        dataset_id: Some(Some("urn:ds:backup".into())),
    };
    assert!(store.edit_history("agg", backup).await.unwrap() > 0);
    check("after a dataset deleted").await;
}

/// An operation removing an attribute instance (of `dataset`; `all` of them) at `now`.
fn remove_attr(
    id: &str,
    name: &str,
    dataset: Option<&str>,
    all: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> WriteOp {
    let (name, dataset) = (name.to_string(), dataset.map(str::to_string));
    WriteOp::new(id, move |current| {
        let mut e = current.ok_or_else(|| Error::not_found("none"))?;
        e.delete_attr(&name, dataset.as_deref(), all, now)?;
        Ok((Change::Put(e.into()), Applied::default()))
    })
}

/// Deleted attribute instances stay in the history as records of their deletion, read
/// by their time (`TimeField::Deleted`) and by nothing else, and go with the
/// attribute's history, a purge, or the entity.
async fn keeps_deletions_in_history(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let (level, river, label) = (
        ctx.expand("level"),
        ctx.expand("river"),
        ctx.expand("label"),
    );
    let id = "urn:ngsi-ld:Gauge:del";
    let e = entity(json!({
        "id": id, "type": "Gauge",
        "level": [
            {"type": "Property", "value": 1.5, "observedAt": "2026-10-18T00:00:00Z"},
            {"type": "Property", "value": 1.7, "observedAt": "2026-10-18T00:00:00Z",
             "datasetId": "urn:ngsi-ld:Dataset:backup"}
        ],
        "river": {"type": "Relationship", "object": "urn:ngsi-ld:River:1"},
        "label": {"type": "LanguageProperty", "languageMap": {"vi": "Trạm", "en": "Gauge"}},
    }));
    store.write("d", vec![create(e)]).await.unwrap();
    let time = |text: &str| ngsi::entity::parse_time(text).unwrap();
    let (t1, t2, t3) = (
        time("2026-11-01T10:00:00Z"),
        time("2026-11-01T11:00:00Z"),
        time("2026-11-01T12:00:00Z"),
    );
    for op in [
        remove_attr(id, &river, None, false, t1),
        remove_attr(id, &level, Some("urn:ngsi-ld:Dataset:backup"), false, t2),
        remove_attr(id, &label, None, true, t3),
    ] {
        assert!(all_written(&store, "d", vec![op]).await);
    }
    let deleted = |attrs: Vec<String>, range: TimeRange, last_n: Option<u64>| HistoryQuery {
        entity_id: id.into(),
        attrs,
        field: TimeField::Deleted,
        range,
        last_n,
        limit: 100,
        datasets: None,
    };
    let page = store
        .history("d", deleted(vec![], TimeRange::default(), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.attrs.len(), 3, "{:?}", page.attrs.keys());
    let one = |name: &str| {
        let list = &page.attrs[name];
        assert_eq!(list.len(), 1, "{name}");
        list[0].clone()
    };
    let r = one(&river);
    assert_eq!(r.deleted_at, Some(t1));
    assert_eq!(r.attribute.kind, ngsi::AttrKind::Relationship);
    assert_eq!(r.attribute.value, json!("urn:ngsi-ld:null"));
    let l = one(&level);
    assert_eq!(l.deleted_at, Some(t2));
    assert_eq!(
        l.attribute.dataset_id.as_deref(),
        Some("urn:ngsi-ld:Dataset:backup")
    );
    let g = one(&label);
    assert_eq!(g.attribute.kind, ngsi::AttrKind::LanguageProperty);
    assert_eq!(g.attribute.value, json!({"@none": "urn:ngsi-ld:null"}));
    // By the time of deletion: a range, and the last one.
    let range = TimeRange {
        from: Some(t2),
        to: None,
    };
    let page = store
        .history("d", deleted(vec![], range, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.attrs.keys().collect::<Vec<_>>(), [&label, &level]);
    let page = history_page(
        &store,
        "d",
        deleted(vec![river.clone()], TimeRange::default(), Some(1)),
    )
    .await;
    assert_eq!(page.attrs[&river][0].deleted_at, Some(t1));
    // Queries by the other times see instances only.
    let observed = history_page(&store, "d", history_query(id, 100)).await;
    assert_eq!(observed.attrs[&river].len(), 1);
    assert!(observed.attrs[&river][0].deleted_at.is_none());
    assert_eq!(observed.attrs[&level].len(), 2);
    // Instances and deletions of some datasetIds (None: the default instance).
    let backup = Some("urn:ngsi-ld:Dataset:backup".to_string());
    for (datasets, want) in [
        (vec![backup.clone()], vec![backup.clone()]),
        (vec![None], vec![None]),
        (vec![None, backup.clone()], vec![None, backup.clone()]),
    ] {
        let q = HistoryQuery {
            entity_id: id.into(),
            attrs: vec![level.clone()],
            limit: 100,
            datasets: Some(datasets.clone()),
            ..Default::default()
        };
        let page = history_page(&store, "d", q).await;
        let mut got: Vec<Option<String>> = page.attrs[&level]
            .iter()
            .map(|i| i.attribute.dataset_id.clone())
            .collect();
        got.sort();
        assert_eq!(got, want, "{datasets:?}");
    }
    let mut only_default = deleted(vec![], TimeRange::default(), None);
    only_default.datasets = Some(vec![None]);
    let page = history_page(&store, "d", only_default).await;
    assert_eq!(page.attrs.keys().collect::<Vec<_>>(), [&label, &river]);
    // Deleting an attribute's history deletes the records of its deletions.
    let edit = HistoryEdit::DeleteAttribute {
        entity_id: id.into(),
        name: river.clone(),
        dataset_id: None,
    };
    assert_eq!(store.edit_history("d", edit).await.unwrap(), 2);
    let page = store
        .history("d", deleted(vec![], TimeRange::default(), None))
        .await
        .unwrap()
        .unwrap();
    assert!(!page.attrs.contains_key(&river));
    // A purge takes those older than the cutoff.
    let cutoffs = store::RetentionCutoffs {
        default: Some(t3),
        by_type: vec![],
    };
    store.purge_history("d", cutoffs, 0, 10).await.unwrap();
    let page = store
        .history("d", deleted(vec![], TimeRange::default(), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.attrs.keys().collect::<Vec<_>>(), [&label]);
    // The entity takes them with it: created again, it has none.
    store.write("d", vec![delete(id)]).await.unwrap();
    let again = entity(json!({"id": id, "type": "Gauge", "level": 2}));
    store.write("d", vec![create(again)]).await.unwrap();
    let page = store
        .history("d", deleted(vec![], TimeRange::default(), None))
        .await
        .unwrap()
        .unwrap();
    assert!(page.attrs.is_empty());
}

/// The registry: records by (collection, tenant, key), written all or none, tenants
/// apart, and no entity of any tenant.
async fn keeps_registry(store: Arc<dyn Store>) {
    use store::RegistryWrite::{Create, Replace, Upsert};
    // One record of the collection "devices".
    let put = async |tenant: &str, key: &str, value: Value, mode| {
        let record = vec![(key.to_string(), value)];
        store.registry_put("devices", tenant, record, mode).await
    };
    let get =
        async |tenant: &str, key: &str| store.registry_get("devices", tenant, key).await.unwrap();
    let records = vec![
        ("a".to_string(), json!({"apikey": "k1", "n": 1})),
        ("b".to_string(), json!({"n": 2})),
    ];
    store
        .registry_put("devices", "reg-1", records, Create)
        .await
        .unwrap();
    assert_eq!(
        get("reg-1", "a").await,
        Some(json!({"apikey": "k1", "n": 1}))
    );
    // Another tenant, another collection: nothing there.
    assert_eq!(get("reg-2", "a").await, None);
    assert_eq!(
        store.registry_get("groups", "reg-1", "a").await.unwrap(),
        None
    );
    // A create that names an existing key writes nothing, not even its new keys.
    let again = vec![("z".to_string(), json!(0)), ("a".to_string(), json!(0))];
    assert_rejected(
        &store.registry_put("devices", "reg-1", again, Create).await,
        ngsi::ErrorKind::AlreadyExists,
    );
    assert_eq!(get("reg-1", "z").await, None);
    let twice = vec![("y".to_string(), json!(0)), ("y".to_string(), json!(1))];
    assert_rejected(
        &store.registry_put("devices", "reg-1", twice, Create).await,
        ngsi::ErrorKind::AlreadyExists,
    );
    // The same key in another tenant is another record; a lookup by key finds both.
    put("reg-2", "a", json!({"n": 3}), Create).await.unwrap();
    // And in the default tenant, whose records the by-key index does not hold.
    put("", "a", json!({"n": 4}), Create).await.unwrap();
    let found = store.registry_find("devices", "a").await.unwrap();
    let tenants: Vec<&str> = found.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(tenants, ["", "reg-1", "reg-2"]);
    assert_eq!(found[0].value, json!({"n": 4}));
    assert_eq!(found[2].value, json!({"n": 3}));
    assert!(
        store
            .registry_find("devices", "q")
            .await
            .unwrap()
            .is_empty()
    );
    // Replace needs the key; upsert does not.
    assert_rejected(
        &put("reg-1", "c", json!(0), Replace).await,
        ngsi::ErrorKind::ResourceNotFound,
    );
    put("reg-1", "a", json!({"n": 10}), Replace).await.unwrap();
    put("reg-1", "c", json!({"n": 4}), Upsert).await.unwrap();
    // Pages in key order, with the total.
    let page = store.registry_list("devices", "reg-1", 0, 2).await.unwrap();
    assert_eq!(page.count, 3);
    let keys: Vec<&str> = page.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(page.records[0].value, json!({"n": 10}));
    let page = store
        .registry_list("devices", "reg-1", 2, 10)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].key, "c");
    assert_eq!(record_count(&store, "devices", "nobody").await, 0);
    // Delete.
    assert!(
        store
            .registry_delete("devices", "reg-1", "b")
            .await
            .unwrap()
    );
    assert!(
        !store
            .registry_delete("devices", "reg-1", "b")
            .await
            .unwrap()
    );
    // Records are not entities, and do not make a tenant exist.
    assert!(!store.tenant_exists("reg-1").await.unwrap());
    assert!(store.get("reg-1", "a").await.unwrap().is_none());
}

/// Registry records carried by an entity operation commit with it or not at all: a
/// refused entity change writes no record, a refused record no entity change, and
/// each operation of a batch stands alone.
async fn commits_records_with_entity_writes(store: Arc<dyn Store>) {
    use store::RegistryPut;
    use store::RegistryWrite::{Create, Replace, Upsert};
    const TENANT: &str = "rec";
    let sensor = |n: u32| {
        entity(json!({
            "id": format!("urn:ngsi-ld:Sensor:rec-{n}"),
            "type": "Sensor",
            "level": {"type": "Property", "value": n},
        }))
    };
    let records = |keys: &[&str], mode| {
        let records = keys
            .iter()
            .map(|k| (k.to_string(), json!({"key": k})))
            .collect();
        RegistryPut::new("private", "records", records, mode)
    };
    let record = async |key: &str| store.registry_get("private", "records", key).await.unwrap();
    let write_one = async |op: WriteOp| store.write(TENANT, vec![op]).await.unwrap();
    let exists = async |n: u32| {
        store
            .get(TENANT, &format!("urn:ngsi-ld:Sensor:rec-{n}"))
            .await
            .unwrap()
            .is_some()
    };

    // Both commit.
    let r = write_one(create(sensor(1)).with_records(records(&["a", "b"], Create))).await;
    assert!(r[0].is_ok(), "{r:?}");
    assert!(exists(1).await);
    assert_eq!(record("a").await, Some(json!({"key": "a"})));
    assert_eq!(record("b").await, Some(json!({"key": "b"})));

    // The entity change is refused (it exists): no record.
    let r = write_one(create(sensor(1)).with_records(records(&["c"], Upsert))).await;
    assert_rejected(&r[0], ngsi::ErrorKind::AlreadyExists);
    assert_eq!(record("c").await, None);

    // A record is refused (its key is taken, or missing for a replace): no entity,
    // and no other record of the operation.
    let r = write_one(create(sensor(2)).with_records(records(&["d", "a"], Create))).await;
    assert_rejected(&r[0], ngsi::ErrorKind::AlreadyExists);
    assert!(!exists(2).await);
    assert_eq!(record("d").await, None);
    let r = store
        .write(
            TENANT,
            vec![
                create(sensor(3))
                    .with_records(records(&["e"], Upsert))
                    .with_records(records(&["missing"], Replace)),
            ],
        )
        .await
        .unwrap();
    assert_rejected(&r[0], ngsi::ErrorKind::ResourceNotFound);
    assert!(!exists(3).await);
    assert_eq!(record("e").await, None);
    // Nor does the refused operation leave a tenant behind.
    assert!(!store.tenant_exists("rec-refused").await.unwrap());
    let r = store
        .write(
            "rec-refused",
            vec![create(sensor(9)).with_records(records(&["a"], Create))],
        )
        .await
        .unwrap();
    assert!(r[0].is_err());
    assert!(!store.tenant_exists("rec-refused").await.unwrap());

    // In a batch each operation stands alone, and a later one sees the records an
    // earlier one wrote.
    let r = store
        .write(
            TENANT,
            vec![
                create(sensor(4)).with_records(records(&["f"], Create)),
                create(sensor(5)).with_records(records(&["f"], Create)),
                create(sensor(6)).with_records(records(&["f"], Replace)),
            ],
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert_rejected(&r[1], ngsi::ErrorKind::AlreadyExists);
    assert!(r[2].is_ok(), "{r:?}");
    assert!(exists(4).await && !exists(5).await && exists(6).await);
    assert_eq!(record("f").await, Some(json!({"key": "f"})));

    // An operation that changes nothing still writes its records.
    let unchanged = WriteOp::new("urn:ngsi-ld:Sensor:rec-1", |_| {
        Ok((Change::Unchanged, Applied::default()))
    })
    .with_records(records(&["g"], Upsert));
    let r = store.write(TENANT, vec![unchanged]).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(record("g").await, Some(json!({"key": "g"})));

    // The records are the registry's: listed there, and no entity of their tenant.
    let page = store
        .registry_list("private", "records", 0, 100)
        .await
        .unwrap();
    let keys: Vec<&str> = page.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "f", "g"]);
    assert!(!store.tenant_exists("records").await.unwrap());
}

fn subscription(id: &str, body: Value) -> ngsi::subscription::Subscription {
    let mut body = body;
    body["id"] = json!(id);
    body["type"] = json!("Subscription");
    ngsi::subscription::Subscription::parse(
        &body,
        &Context::core(),
        || unreachable!(),
        ngsi::entity::now(),
    )
    .unwrap()
}

async fn outbox_len(store: &Arc<dyn Store>) -> usize {
    store
        .outbox_due(ngsi::entity::now() + chrono::TimeDelta::hours(1), 1000)
        .await
        .unwrap()
        .len()
}

/// Subscriptions are kept per tenant, and a change they select queues exactly one
/// notification in the commit of the change; a refused change queues none.
async fn keeps_subscriptions_and_their_outbox(store: Arc<dyn Store>) {
    use store::SubscriptionWrite::{Create, Replace};
    let notify = json!({"endpoint": {"uri": "http://127.0.0.1:9/n"}});
    let sub = subscription(
        "urn:ngsi-ld:Subscription:s1",
        json!({"entities": [{"type": "Pump"}], "notificationTrigger": ["entityCreated", "entityDeleted", "attributeUpdated"], "notification": notify}),
    );
    let put = async |tenant: &str, sub: &ngsi::subscription::Subscription, mode| {
        store.subscription_put(tenant, sub.clone(), mode).await
    };
    put("sub", &sub, Create).await.unwrap();
    assert_rejected(
        &put("sub", &sub, Create).await,
        ngsi::ErrorKind::AlreadyExists,
    );
    // Another tenant's subscription of the same type does not fire in "sub".
    let other = subscription(
        "urn:ngsi-ld:Subscription:other",
        json!({"entities": [{"type": "Pump"}], "notificationTrigger": ["entityCreated"], "notification": notify}),
    );
    put("sub-other", &other, Create).await.unwrap();
    assert_rejected(
        &put("sub", &other, Replace).await,
        ngsi::ErrorKind::ResourceNotFound,
    );
    let got = store
        .subscription_get("sub", "urn:ngsi-ld:Subscription:s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.subscription, sub);
    assert_eq!(got.delivery, store::Delivery::default());
    assert!(
        store
            .subscription_get("sub-other", "urn:ngsi-ld:Subscription:s1")
            .await
            .unwrap()
            .is_none()
    );

    let signal = store.outbox_signal();
    let woken = signal.notified();
    let pump =
        entity(json!({"id": "urn:p:1", "type": "Pump", "on": {"type": "Property", "value": true}}));
    store
        .write("sub", vec![create(pump.clone())])
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .unwrap();
    let rows = store.outbox_due(ngsi::entity::now(), 100).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tenant, "sub");
    assert_eq!(rows[0].subscription_id, "urn:ngsi-ld:Subscription:s1");
    assert_eq!(rows[0].entity_id, "urn:p:1");
    assert_eq!(rows[0].payload["type"], "Notification");
    assert_eq!(rows[0].payload["data"][0]["id"], "urn:p:1");
    // A refused change (it exists) and an entity of another type queue nothing.
    let r = store
        .write("sub", vec![create(pump.clone())])
        .await
        .unwrap();
    assert!(r[0].is_err());
    let valve = entity(json!({"id": "urn:v:1", "type": "Valve"}));
    store.write("sub", vec![create(valve)]).await.unwrap();
    assert_eq!(outbox_len(&store).await, 1);

    // One per subscription is due at a time, the oldest first.
    store.write("sub", vec![delete("urn:p:1")]).await.unwrap();
    let rows = store.outbox_due(ngsi::entity::now(), 100).await.unwrap();
    assert_eq!(rows.len(), 1);
    let first = rows[0].id;
    let at = ngsi::entity::now();
    store
        .outbox_failed(first, at, at + chrono::TimeDelta::hours(2))
        .await
        .unwrap();
    assert!(store.outbox_due(at, 100).await.unwrap().is_empty());
    let later = store
        .outbox_due(at + chrono::TimeDelta::hours(3), 100)
        .await
        .unwrap();
    assert_eq!((later.len(), later[0].id, later[0].attempts), (1, first, 1));
    store.outbox_delivered(first, at).await.unwrap();
    let rows = store.outbox_due(ngsi::entity::now(), 100).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].id > first);
    assert_eq!(rows[0].payload["data"][0]["id"], "urn:p:1");
    assert!(rows[0].payload["data"][0]["deletedAt"].is_string());
    let got = store
        .subscription_get("sub", "urn:ngsi-ld:Subscription:s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.delivery.times_sent, got.delivery.times_failed), (1, 1));
    assert_eq!(got.delivery.last_success, Some(at));

    // A paused subscription fires no more; a list pages in id order.
    let mut paused = sub.clone();
    paused.is_active = false;
    store
        .subscription_put("sub", paused, Replace)
        .await
        .unwrap();
    store
        .write("sub", vec![create(pump.clone())])
        .await
        .unwrap();
    assert_eq!(outbox_len(&store).await, 1);
    store
        .subscription_put(
            "sub",
            subscription(
                "urn:ngsi-ld:Subscription:s0",
                json!({"entities": [{"type": "Valve"}], "notification": notify}),
            ),
            Create,
        )
        .await
        .unwrap();
    let page = store.subscription_list("sub", 1, 10).await.unwrap();
    assert_eq!(page.count, 2);
    assert_eq!(
        page.subscriptions[0].subscription.id,
        "urn:ngsi-ld:Subscription:s1"
    );
    // Deleting a subscription drops its undelivered notifications.
    assert!(
        store
            .subscription_delete("sub", "urn:ngsi-ld:Subscription:s1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .subscription_delete("sub", "urn:ngsi-ld:Subscription:s1")
            .await
            .unwrap()
    );
    assert_eq!(outbox_len(&store).await, 0);
    // With a thousand subscriptions of other types, a change fires exactly its own.
    let mut puts = Vec::new();
    for i in 0..1000 {
        let store = store.clone();
        let sub = subscription(
            &format!("urn:ngsi-ld:Subscription:m{i}"),
            json!({"entities": [{"type": format!("T{i}")}], "notificationTrigger": ["entityCreated"], "notification": notify}),
        );
        puts.push(tokio::spawn(async move {
            store.subscription_put("many", sub, Create).await
        }));
    }
    for p in puts {
        p.await.unwrap().unwrap();
    }
    create_in(&store, "many", json!({"id": "urn:t:1", "type": "T500"})).await;
    let rows = store.outbox_due(ngsi::entity::now(), 100).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].subscription_id, "urn:ngsi-ld:Subscription:m500");
    assert!(
        store
            .subscription_delete("many", "urn:ngsi-ld:Subscription:m500")
            .await
            .unwrap()
    );
    assert_eq!(outbox_len(&store).await, 0);
    // Subscriptions found by the entity id they name, by type, or both: a
    // subscription with an id selector and a type-only selector fires for any
    // entity of that type; one naming ids only, for those ids only.
    for (id, entities) in [
        (
            "urn:ngsi-ld:Subscription:ids",
            json!([{"id": "urn:k:1", "type": "K"}, {"id": "urn:k:2", "type": "K"}]),
        ),
        (
            "urn:ngsi-ld:Subscription:mixed",
            json!([{"id": "urn:k:1", "type": "K"}, {"type": "K"}]),
        ),
        (
            "urn:ngsi-ld:Subscription:pattern",
            json!([{"id": "urn:k:3", "type": "K"}, {"idPattern": "urn:k:[45]", "type": "K"}]),
        ),
        (
            "urn:ngsi-ld:Subscription:wrongtype",
            json!([{"id": "urn:k:1", "type": "L"}]),
        ),
    ] {
        store
            .subscription_put(
                "by-id",
                subscription(
                    id,
                    json!({"entities": entities, "notificationTrigger": ["entityCreated"], "notification": notify}),
                ),
                Create,
            )
            .await
            .unwrap();
    }
    let mut fired = Vec::new();
    for n in 1..=5 {
        store
            .write(
                "by-id",
                vec![create(entity(
                    json!({"id": format!("urn:k:{n}"), "type": "K"}),
                ))],
            )
            .await
            .unwrap();
        let mut subs: Vec<String> = store
            .outbox_due(ngsi::entity::now(), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.tenant == "by-id" && r.entity_id == format!("urn:k:{n}"))
            .map(|r| r.subscription_id.rsplit(':').next().unwrap().to_string())
            .collect();
        subs.sort();
        fired.push(subs.join(","));
        // Every row after a given one, in outbox order, or only one subscription's.
        let all = store.outbox_after(0, None, 100).await.unwrap();
        assert_eq!(all.len(), subs.len());
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(
            store.outbox_after(all[0].id, None, 100).await.unwrap(),
            all[1..]
        );
        let mixed = store
            .outbox_after(0, Some(("by-id", "urn:ngsi-ld:Subscription:mixed")), 100)
            .await
            .unwrap();
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed[0].entity_id, format!("urn:k:{n}"));
        for r in store.outbox_due(ngsi::entity::now(), 100).await.unwrap() {
            store
                .outbox_delivered(r.id, ngsi::entity::now())
                .await
                .unwrap();
        }
    }
    assert_eq!(
        fired,
        [
            "ids,mixed",
            "ids,mixed",
            "mixed,pattern",
            "mixed,pattern",
            "mixed,pattern"
        ]
    );
    assert_eq!(outbox_len(&store).await, 0);
    // A pending notification survives a restart (checked after reopening).
    create_in(
        &store,
        "sub-other",
        json!({"id": "urn:p:2", "type": "Pump"}),
    )
    .await;
    assert_eq!(outbox_len(&store).await, 1);
}

/// Runs every check on one store, then reads what they wrote after reopening it.
async fn survives_reopening(store: Arc<dyn Store>, reopen: impl AsyncFnOnce() -> Arc<dyn Store>) {
    writes_reads_and_isolates_tenants(store.clone()).await;
    batch_items_are_independent(store.clone()).await;
    queries_agree_with_the_model(store.clone()).await;
    compares_long_texts(store.clone()).await;
    keeps_contexts(store.clone()).await;
    keeps_history(store.clone()).await;
    aggregates_agree_with_the_instances(store.clone()).await;
    keeps_registry(store.clone()).await;
    keeps_subscriptions_and_their_outbox(store.clone()).await;
    let left_out = compares_attributes_left_out_of_the_value_index(store.clone()).await;
    drop(store);
    // Everything written is there after reopening.
    let store = reopen().await;
    // The attributes left out of the value index are known before any is declared
    // again: a planner that trusted the index would miss entities.
    q_agrees_with_the_model(&store, "lo", &left_out).await;
    // The registry too.
    assert_eq!(
        store.registry_get("devices", "reg-1", "a").await.unwrap(),
        Some(json!({"n": 10}))
    );
    assert_eq!(store.registry_find("devices", "a").await.unwrap().len(), 3);
    assert_eq!(record_count(&store, "devices", "reg-1").await, 2);
    assert!(store.get("", "urn:a:1").await.unwrap().is_some());
    // And the outbox.
    let rows = store.outbox_due(ngsi::entity::now(), 100).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tenant, "sub-other");
    assert!(store.tenant_exists("city-a").await.unwrap());
    // History too.
    let page = history_page(&store, "h", history_query("urn:g:1", 1000)).await;
    assert_eq!(page.attrs[&Context::core().expand("level")].len(), 71);
    assert!(
        store
            .cached_context("https://example.org/c.jsonld")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .query(
                "q",
                EntityQuery {
                    limit: 0,
                    count: true,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .count,
        Some(400)
    );
}

fn audit_record(action: &str, time: chrono::DateTime<chrono::Utc>) -> store::AuditRecord {
    store::AuditRecord {
        time,
        actor: "key:k1".into(),
        role: Some("operator".into()),
        tenant: Some("a".into()),
        action: action.into(),
        outcome: "ok".into(),
        ..Default::default()
    }
}

/// The first ten audit records of the filter `narrow` makes of the unfiltered one.
async fn audits(
    store: &Arc<dyn Store>,
    narrow: impl FnOnce(&mut store::AuditFilter),
) -> Vec<store::StoredAudit> {
    let mut filter = store::AuditFilter {
        limit: 10,
        ..Default::default()
    };
    narrow(&mut filter);
    store.audit_list(filter).await.unwrap()
}

/// A write's record commits with it, settled with its refused items; records are
/// sealed into a chain that verifies, an edit breaks it, and a purge keeps what
/// remains verifiable.
async fn keeps_an_audit_chain(store: Arc<dyn Store>) {
    let now = chrono::Utc::now();
    let mut record = audit_record("POST /entityOperations/create", now);
    record.targets = vec!["urn:a:1".into(), "urn:none:1".into()];
    let results = store
        .write_audited(
            "a",
            vec![
                create(entity(json!({"id": "urn:a:1", "type": "T"}))),
                delete("urn:none:1"),
            ],
            Some(record),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_err());
    store
        .audit_append(vec![
            audit_record("auth.login", now - chrono::TimeDelta::days(400)),
            audit_record("auth.login", now),
        ])
        .await
        .unwrap();
    let listed = audits(&store, |f| f.action = Some("POST".into())).await;
    assert_eq!(listed.len(), 1);
    let written = listed[0].record().unwrap();
    assert_eq!(written.outcome, "partial");
    assert_eq!(written.failed, vec!["urn:none:1".to_string()]);
    assert_eq!(listed[0].seq, None, "not sealed yet");
    // Filters: tenant, actor, time.
    let by_tenant = audits(&store, |f| f.tenant = Some("b".into())).await;
    assert!(by_tenant.is_empty());
    let recent = audits(&store, |f| f.from = Some(now - chrono::TimeDelta::days(1))).await;
    assert_eq!(recent.len(), 2);

    assert_eq!(store.audit_seal(100).await.unwrap(), 3);
    assert_eq!(store.audit_seal(100).await.unwrap(), 0);
    let page = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(page.records.len(), 3);
    assert!(store::audit::verify_run(store::audit::GENESIS.into(), 0, &page.records).is_ok());
    // An edited record breaks the chain at itself.
    let mut edited = page.records.clone();
    edited[1].text = edited[1].text.replace("auth.login", "auth.logout");
    let broken = store::audit::verify_run(store::audit::GENESIS.into(), 0, &edited).unwrap_err();
    assert_eq!(broken.id, edited[1].id);

    // The record older than a year goes (it is second in the chain, after the write:
    // the purge stops at the first record not old enough, so nothing goes yet).
    assert_eq!(
        store
            .audit_purge(now - chrono::TimeDelta::days(366), 100)
            .await
            .unwrap(),
        0
    );
    // Everything before now + 1 s goes; the checkpoint keeps the chain verifiable.
    store
        .audit_append(vec![audit_record(
            "auth.login",
            now + chrono::TimeDelta::days(1),
        )])
        .await
        .unwrap();
    assert_eq!(store.audit_seal(100).await.unwrap(), 1);
    assert_eq!(
        store
            .audit_purge(now + chrono::TimeDelta::seconds(1), 100)
            .await
            .unwrap(),
        3
    );
    let page = store.audit_chain(i64::MIN, 100).await.unwrap();
    let (seq, hash) = page.checkpoint.clone().unwrap();
    assert_eq!(seq, 3);
    assert_eq!(page.records.len(), 1);
    assert!(store::audit::verify_run(hash, seq, &page.records).is_ok());
}

/// Subscriptions and history edits commit their records with them, and a change that
/// did nothing (deleting what is not there) leaves none.
async fn audits_subscriptions_and_history_edits(store: Arc<dyn Store>) {
    let now = chrono::Utc::now();
    let sub = subscription(
        "urn:ngsi-ld:Subscription:audited",
        json!({"type": "Subscription", "entities": [{"type": "T"}],
               "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
    );
    store
        .subscription_put_audited(
            "a",
            sub,
            store::SubscriptionWrite::Create,
            Some(audit_record("POST /subscriptions", now)),
        )
        .await
        .unwrap();
    assert!(
        store
            .subscription_delete_audited(
                "a",
                "urn:ngsi-ld:Subscription:none",
                Some(audit_record("DELETE /subscriptions/{id}", now)),
            )
            .await
            .is_ok_and(|found| !found)
    );
    assert!(
        store
            .subscription_delete_audited(
                "a",
                "urn:ngsi-ld:Subscription:audited",
                Some(audit_record("DELETE /subscriptions/{id}", now)),
            )
            .await
            .unwrap()
    );
    store
        .write("a", vec![reading("urn:g:9", 1, 1.0)])
        .await
        .unwrap();
    let n = store
        .edit_history_audited(
            "a",
            store::HistoryEdit::DeleteAttribute {
                entity_id: "urn:g:9".into(),
                name: Context::core().expand("level"),
                dataset_id: None,
            },
            Some(audit_record(
                "DELETE /temporal/entities/{id}/attrs/{attr}",
                now,
            )),
        )
        .await
        .unwrap();
    assert!(n > 0);
    let actions: Vec<String> = audits(&store, |_| {})
        .await
        .iter()
        .map(|r| r.record().unwrap().action)
        .collect();
    assert_eq!(
        actions,
        [
            "DELETE /temporal/entities/{id}/attrs/{attr}",
            "DELETE /subscriptions/{id}",
            "POST /subscriptions"
        ]
    );
}

/// One test per backend for each check.
/// Reads every page of a query after each other (keyset paging), `limit` at a time.
async fn pages(store: &Arc<dyn Store>, tenant: &str, query: &EntityQuery) -> Vec<QueryPage> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query(
                tenant,
                EntityQuery {
                    after,
                    ..query.clone()
                },
            )
            .await
            .unwrap();
        after = page.next(query.limit);
        out.push(page);
        if after.is_none() {
            return out;
        }
    }
}

/// The entities of every page of a query (read from their stored documents when the
/// query asks for those).
async fn all_pages(store: &Arc<dyn Store>, tenant: &str, query: EntityQuery) -> Vec<Entity> {
    let mut out = Vec::new();
    for page in pages(store, tenant, &query).await {
        if query.as_documents {
            assert!(page.entities.is_empty());
            assert_eq!(page.documents.len(), page.positions.len());
            out.extend(
                page.documents
                    .iter()
                    .map(|doc| serde_json::from_str::<Entity>(doc).unwrap()),
            );
        } else {
            out.extend(page.entities);
        }
    }
    out
}

/// The stored documents of every page of a query, as text.
async fn all_documents(store: &Arc<dyn Store>, tenant: &str, query: EntityQuery) -> Vec<String> {
    let query = EntityQuery {
        as_documents: true,
        ..query
    };
    let pages = pages(store, tenant, &query).await;
    pages
        .iter()
        .flat_map(|p| p.documents.iter().map(str::to_string))
        .collect()
}

/// A query reading only some attributes gives, page after page, the entities the
/// whole query gives, each less the other attributes; its conditions (type, `q`, a
/// geo-query the model decides) still see the whole entity; tenants stay apart.
async fn reads_only_the_attributes_asked(store: Arc<dyn Store>) {
    let ctx = Context::core();
    let make = |tenant: &str, i: usize| {
        let mut v = json!({
            "id": format!("urn:p:{i}"),
            "type": if i % 6 == 5 { "Other" } else { "Station" },
            "temperature": {"type": "Property", "value": i as f64 + if tenant.is_empty() { 0.5 } else { 1000.0 }, "unitCode": "CEL"},
            "status": if i.is_multiple_of(3) { "bad" } else { "ok" },
            "owner": {"type": "Property", "value": {"name": format!("person {i}"), "phone": "0900"}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [106.0 + i as f64 / 10.0, 16.5]}},
        });
        if i.is_multiple_of(4) {
            // A second instance of the attribute read.
            v["temperature"] = json!([v["temperature"].clone(), {"type": "Property", "value": -1, "datasetId": "urn:ds:b"}]);
        }
        if i.is_multiple_of(5) {
            v.as_object_mut().unwrap().remove("temperature");
        }
        entity(v)
    };
    for tenant in ["", "p2"] {
        let ops: Vec<WriteOp> = (0..36).map(|i| create(make(tenant, i))).collect();
        assert!(all_written(&store, tenant, ops).await);
    }
    let names = |list: &[&str]| -> Vec<String> { list.iter().map(|n| ctx.expand(n)).collect() };
    let only = names(&["temperature", "location"]);
    let station = Some(
        parse_type_expr("Station")
            .unwrap()
            .map_names(&|n| ctx.expand(n)),
    );
    let q = |text: &str| {
        Some(QFilter::new(parse_q(text).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap())
    };
    let mut g = parse_geoq(
        "within",
        "Polygon",
        "[[[106.75,16],[108,16],[108,17],[106.75,17],[106.75,16]]]",
        None,
    )
    .unwrap();
    g.geoproperty = ctx.expand(&g.geoproperty);
    let geo = Some(GeoFilter::new(g).unwrap());
    let cases = [
        // How many match in each tenant.
        ("every Station", station.clone(), None, None, [30, 30]),
        (
            "q on an attribute not read",
            station.clone(),
            q("status==\"bad\""),
            None,
            [12, 12],
        ),
        (
            "q on an attribute read",
            station.clone(),
            q("temperature>20"),
            None,
            [10, 24],
        ),
        (
            "a geo-query the model decides",
            station.clone(),
            None,
            geo.clone(),
            [10, 10],
        ),
        ("q and geo, no type", None, q("status==\"ok\""), geo, [8, 8]),
    ];
    for (t, tenant) in ["", "p2"].into_iter().enumerate() {
        for (what, types, q, geo, expected) in &cases {
            let expected = &expected[t];
            let whole = EntityQuery {
                types: types.clone(),
                q: q.clone(),
                geo: geo.clone(),
                limit: 1000,
                ..Default::default()
            };
            let all = store.query(tenant, whole.clone()).await.unwrap().entities;
            assert_eq!(all.len(), *expected, "{what} in {tenant:?}");
            // Page sizes that end on a page boundary, inside one, and cover it all.
            for limit in [1, 5, 7, *expected, 1000] {
                let read = all_pages(
                    &store,
                    tenant,
                    EntityQuery {
                        limit,
                        only_attrs: Some(only.clone()),
                        ..whole.clone()
                    },
                )
                .await;
                let expected: Vec<Entity> = all
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        e.attrs.retain(|name, _| only.contains(name));
                        e
                    })
                    .collect();
                assert_eq!(read, expected, "{what} in {tenant:?}, pages of {limit}");
                // As stored documents: the same entities, and nothing of the others
                // in their text.
                let query = EntityQuery {
                    limit,
                    only_attrs: Some(only.clone()),
                    ..whole.clone()
                };
                let read = all_pages(
                    &store,
                    tenant,
                    EntityQuery {
                        as_documents: true,
                        ..query.clone()
                    },
                )
                .await;
                assert_eq!(read, expected, "{what} in {tenant:?}, documents of {limit}");
                for doc in all_documents(&store, tenant, query).await {
                    for private in [
                        "person",
                        "0900",
                        &ctx.expand("owner"),
                        &ctx.expand("status"),
                    ] {
                        assert!(!doc.contains(private), "{what}: {private} in {doc}");
                    }
                }
            }
        }
    }
    // Ordered by an attribute not read: the order is that of the whole entities, the
    // answer keeps only what was asked.
    let order = ngsi::order::OrderBy::parse("status;desc,temperature")
        .unwrap()
        .map_attrs(&|n| ctx.expand(n));
    let ordered = EntityQuery {
        types: station.clone(),
        order: Some(order),
        limit: 1000,
        ..Default::default()
    };
    let whole = store.query("", ordered.clone()).await.unwrap().entities;
    assert_eq!(whole.len(), 30);
    for (offset, limit) in [(0, 1000), (5, 7)] {
        let expected: Vec<Entity> = whole
            .iter()
            .skip(offset)
            .take(limit)
            .map(|e| {
                let mut e = e.clone();
                e.attrs.retain(|name, _| only.contains(name));
                e
            })
            .collect();
        for as_documents in [false, true] {
            let page = store
                .query(
                    "",
                    EntityQuery {
                        offset,
                        limit,
                        only_attrs: Some(only.clone()),
                        as_documents,
                        ..ordered.clone()
                    },
                )
                .await
                .unwrap();
            let read: Vec<Entity> = if as_documents {
                assert!(page.entities.is_empty());
                page.documents
                    .iter()
                    .map(|doc| serde_json::from_str(doc).unwrap())
                    .collect()
            } else {
                page.entities
            };
            assert_eq!(
                read, expected,
                "ordered, from {offset}, as documents: {as_documents}"
            );
        }
    }
    // The values are the tenant's own, every instance of an attribute is read, and
    // what is not asked for is absent.
    let read = store
        .query(
            "p2",
            EntityQuery {
                ids: vec!["urn:p:4".into()],
                limit: 10,
                only_attrs: Some(names(&["temperature", "owner"])),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .entities;
    let temps: Vec<&Value> = read[0].attrs[&ctx.expand("temperature")]
        .iter()
        .map(|a| &a.value)
        .collect();
    assert_eq!(temps, [&json!(1004.0), &json!(-1)]);
    assert_eq!(
        read[0].attrs[&ctx.expand("owner")][0].value["name"],
        "person 4"
    );
    assert_eq!(read[0].attrs.len(), 2);
    // None asked: ids and types alone.
    let bare = store
        .query(
            "",
            EntityQuery {
                types: station,
                limit: 3,
                only_attrs: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .entities;
    assert_eq!(ids_of(&bare), ["urn:p:0", "urn:p:1", "urn:p:2"]);
    assert!(
        bare.iter()
            .all(|e| e.attrs.is_empty() && !e.types.is_empty())
    );
}

fn ids_of(entities: &[Entity]) -> Vec<String> {
    entities.iter().map(|e| e.id.clone()).collect()
}

macro_rules! behaviour {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$check(super::open_sqlite(&dir).await).await;
                }
            )*

            #[tokio::test]
            async fn survives_reopening() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::open_sqlite(&dir).await;
                super::survives_reopening(store, async || super::open_sqlite(&dir).await).await;
            }
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(db) = super::TestDatabase::create().await else {
                        return;
                    };
                    super::$check(db.open().await).await;
                }
            )*

            #[tokio::test]
            async fn survives_reopening() {
                let Some(db) = super::TestDatabase::create().await else {
                    return;
                };
                let store = db.open().await;
                super::survives_reopening(store, async || db.open().await).await;
            }
        }
    };
}

behaviour!(
    writes_reads_and_isolates_tenants,
    batch_items_are_independent,
    queries_agree_with_the_model,
    compares_attributes_left_out_of_the_value_index,
    a_large_box_in_a_larger_type_agrees_with_the_model,
    keyset_pages_survive_writes,
    reads_only_the_attributes_asked,
    compares_long_texts,
    indexes_observation_times,
    keeps_contexts,
    keeps_history,
    aggregates_agree_with_the_instances,
    keeps_deletions_in_history,
    keeps_registry,
    commits_records_with_entity_writes,
    keeps_subscriptions_and_their_outbox,
    keeps_an_audit_chain,
    audits_subscriptions_and_history_edits,
);

/// A PostgreSQL database of one test, created empty and dropped when it ends (even
/// when the test fails).
struct TestDatabase {
    server: String,
    name: String,
}

/// The PostgreSQL server of the tests, `DOTHI_TEST_DATABASE_URL`. Without it the
/// PostgreSQL tests say on the terminal that they were skipped, past the test
/// harness's capture, and pass; `scripts/test.sh` (and so CI) always sets it.
fn server_url() -> Option<String> {
    use std::io::Write as _;
    let url = std::env::var("DOTHI_TEST_DATABASE_URL").ok();
    if url.is_none() {
        // The test harness names the thread of each test after the test.
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a PostgreSQL test");
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: DOTHI_TEST_DATABASE_URL is not set \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
        );
    }
    url
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server: cannot connect to {url} ({e}); \
                 start PostgreSQL (scripts/test.sh does) or set DOTHI_TEST_DATABASE_URL"
            )
        });
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// A fresh database for the running test, or none when no server is configured
    /// (the test is skipped).
    async fn create() -> Option<TestDatabase> {
        let server = server_url()?;
        let name = format!("dothi_test_{}", uuid::Uuid::new_v4().simple());
        connect(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Some(TestDatabase { server, name })
    }

    fn url(&self) -> String {
        let base = self.server.split('?').next().unwrap_or_default();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        format!("{prefix}/{}", self.name)
    }

    async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url()).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // A runtime of its own: the test's may be shutting down.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = connect(&server).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped", self.name);
        }
    }
}

/// What only the PostgreSQL backend has: partitions of the history, and several
/// stores (nodes) over one database.
mod postgres_only {
    use super::*;

    /// A reading of `level` observed at `time`, written by an update of the entity.
    fn observed(id: &str, time: &str, level: f64) -> WriteOp {
        let e = entity(json!({
            "id": id, "type": "Gauge",
            "level": {"type": "Property", "value": level, "observedAt": time},
        }));
        WriteOp::new(id, move |current| {
            let mut next = e;
            if let Some(cur) = current {
                next.created_at = cur.created_at;
            }
            Ok((Change::Put(next.into()), Applied::default()))
        })
    }

    async fn history_len(store: &Arc<dyn Store>, id: &str) -> usize {
        let page = history_page(store, "", history_query(id, 1000)).await;
        page.attrs.values().map(Vec::len).sum()
    }

    /// The rows of a table (a partition of the history).
    async fn rows_in(db: &TestDatabase, table: &str) -> i64 {
        count(db, &format!("SELECT count(*) FROM {table}")).await
    }

    async fn count(db: &TestDatabase, sql: &str) -> i64 {
        connect(&db.url())
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The value index keeps no row of an attribute left out (the observation times
    /// of one are rows of their own), and another node opened over the database
    /// plans with the names left out.
    #[tokio::test]
    async fn keeps_no_value_rows_of_attributes_left_out() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let ctx = Context::core();
        let all = compares_attributes_left_out_of_the_value_index(db.open().await).await;
        let rows = |name: String| format!("SELECT count(*) FROM attr_values WHERE name = '{name}'");
        assert_eq!(count(&db, &rows(ctx.expand("status"))).await, 0);
        assert_eq!(count(&db, &rows(ctx.expand("level"))).await, 0);
        let observed = format!("{} observedAt", ctx.expand("level"));
        assert!(count(&db, &rows(observed)).await > 0);
        let other = db.open().await;
        q_agrees_with_the_model(&other, "lo", &all).await;
    }

    /// Writing into a month creates its partition; a month whose rows already sit
    /// in the default partition cannot get one, and its writes go there too: no
    /// write is refused for want of a partition.
    #[tokio::test]
    async fn history_goes_to_month_partitions_else_to_the_default_one() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = db.open().await;
        for (i, time) in ["2019-03-10T08:00:00Z", "2019-03-31T23:59:59Z"]
            .iter()
            .enumerate()
        {
            let r = store
                .write("", vec![observed("urn:p:1", time, i as f64)])
                .await
                .unwrap();
            assert!(r[0].is_ok(), "{r:?}");
        }
        assert_eq!(rows_in(&db, "attr_history_y2019m03").await, 2);
        assert_eq!(rows_in(&db, "attr_history_default").await, 0);

        // A row of January 2018 put in the default partition behind the store's back:
        // that month's partition can no longer be created.
        connect(&db.url())
            .await
            .batch_execute(
                "INSERT INTO attr_history (entity, name, t, written, num)
                 SELECT rowid, 'https://example.org/other', '2018-01-05T00:00:00Z', now(), 1
                 FROM entities LIMIT 1",
            )
            .await
            .unwrap();
        let r = store
            .write("", vec![observed("urn:p:1", "2018-01-20T00:00:00Z", 7.0)])
            .await
            .unwrap();
        assert!(r[0].is_ok(), "{r:?}");
        assert_eq!(rows_in(&db, "attr_history_default").await, 2);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM pg_class WHERE relname = 'attr_history_y2018m01'"
            )
            .await,
            0
        );
        assert_eq!(history_len(&store, "urn:p:1").await, 4);
    }

    /// Two stores over one database, opened at once (the migrations run once) and
    /// changing one entity at once: no change is lost, and what one writes the other
    /// reads.
    #[tokio::test]
    async fn two_nodes_share_one_database() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let (a, b) = tokio::join!(db.open(), db.open());
        // Each migration was applied once, by one of the two.
        assert_eq!(
            count(
                &db,
                "SELECT count(*) - count(DISTINCT version) FROM schema_version"
            )
            .await,
            0
        );
        assert_eq!(
            count(&db, "SELECT max(version)::bigint FROM schema_version").await,
            count(&db, "SELECT count(*) FROM schema_version").await
        );
        let counter = |by: &'static str| {
            WriteOp::new("urn:c:1", move |current| {
                let mut e = current.unwrap_or_else(|| {
                    entity(json!({"id": "urn:c:1", "type": "Counter", "n": 0, "by": ""}))
                });
                let n = Context::core().expand("n");
                let attr = &mut e.attrs.get_mut(&n).unwrap()[0];
                attr.value = json!(attr.value.as_i64().unwrap() + 1);
                let by_name = Context::core().expand("by");
                e.attrs.get_mut(&by_name).unwrap()[0].value = json!(by);
                Ok((Change::Put(e.into()), Applied::default()))
            })
        };
        let run = |store: Arc<dyn Store>, by: &'static str| async move {
            for _ in 0..40 {
                let r = store.write("", vec![counter(by)]).await.unwrap();
                assert!(r[0].is_ok(), "{r:?}");
            }
        };
        tokio::join!(run(a.clone(), "a"), run(b.clone(), "b"));
        let n = Context::core().expand("n");
        for store in [&a, &b] {
            let e = store.get("", "urn:c:1").await.unwrap().unwrap();
            assert_eq!(e.attrs[&n][0].value, json!(80));
        }
    }

    /// PostgreSQL keeps no U+0000 in a text: such a write is refused as bad data
    /// (its batch's other operations go through), a text merely showing `\u0000`
    /// is kept.
    #[tokio::test]
    async fn a_nul_character_is_refused_as_bad_data() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = db.open().await;
        let r = store
            .write(
                "",
                vec![
                    create(entity(
                        json!({"id": "urn:n:1", "type": "T", "note": "a\u{0}b"}),
                    )),
                    create(entity(
                        json!({"id": "urn:n:2", "type": "T", "note": "a\\u0000b"}),
                    )),
                ],
            )
            .await
            .unwrap();
        assert_rejected(&r[0], ngsi::ErrorKind::BadRequestData);
        assert!(r[1].is_ok(), "{r:?}");
        assert!(store.get("", "urn:n:1").await.unwrap().is_none());
        let kept = store.get("", "urn:n:2").await.unwrap().unwrap();
        assert_eq!(
            kept.attrs[&Context::core().expand("note")][0].value,
            json!("a\\u0000b")
        );
        let refused = store
            .registry_put(
                "devices",
                "",
                vec![("d".into(), json!({"name": "x\u{0}"}))],
                store::RegistryWrite::Upsert,
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::Rejected(_))),
            "{refused:?}"
        );
    }
}

/// Entities stored before observation times were indexed (SQLite schema 7,
/// PostgreSQL schema 2) get them from the migration that indexes them.
mod observation_time_migration {
    use super::*;

    /// Gauges observed at every precision of time, each with a second instance.
    async fn write_gauges(store: &Arc<dyn Store>) {
        let times = [
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00.5Z",
            "2026-03-01T10:00:00.000001Z",
            "2026-03-01T10:00:00.000000001Z",
        ];
        let ops = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                create(entity(json!({"id": format!("urn:m:{i}"), "type": "Gauge",
                    "level": [{"type": "Property", "value": 1, "observedAt": t},
                              {"type": "Property", "value": 2, "datasetId": "urn:d:b", "observedAt": "2025-01-01T00:00:00Z"}]})))
            })
            .collect();
        assert!(all_written(store, "", ops).await);
    }

    /// The migrations after it (the deletions of the history) apply on a database that
    /// has entities and history.
    async fn assert_records_deletions(store: &Arc<dyn Store>) {
        let level = Context::core().expand("level");
        let op = remove_attr("urn:m:0", &level, Some("urn:d:b"), false, at(30));
        assert!(all_written(store, "", vec![op]).await);
        let page = history_page(
            store,
            "",
            HistoryQuery {
                field: TimeField::Deleted,
                ..history_query("urn:m:0", 10)
            },
        )
        .await;
        assert_eq!(page.attrs[&level].len(), 1);
        assert_eq!(page.attrs[&level][0].deleted_at, Some(at(30)));
    }

    /// The index answers as the times say (it decides these queries alone: without
    /// its rows they would count nothing).
    async fn assert_indexed(store: &Arc<dyn Store>) {
        let ctx = Context::core();
        for (q, expected) in [
            ("level.observedAt>2026-03-01T10:00:00Z", 3),
            ("level.observedAt>2026-03-01T10:00:00.000000001Z", 2),
            ("level.observedAt>=2026-03-01T10:00:00.5Z", 1),
            ("level.observedAt<2026-01-01T00:00:00Z", 4),
            ("level.observedAt==2026-03-01T10:00:00Z", 1),
        ] {
            let query = EntityQuery {
                q: Some(QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
                limit: 0,
                count: true,
                ..Default::default()
            };
            assert_eq!(
                store.query("", query).await.unwrap().count,
                Some(expected),
                "{q}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_version_8_indexes_what_was_stored_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_sqlite(&dir).await;
        write_gauges(&store).await;
        drop(store);
        {
            let c = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
            let gone = c
                .execute(
                    "DELETE FROM attr_values WHERE name IN (SELECT id FROM names WHERE name LIKE '% observedAt')",
                    [],
                )
                .unwrap();
            assert_eq!(gone, 8);
            // A database of version 7 has none of the later tables either.
            c.execute_batch("DROP TABLE attr_deletions; DROP TABLE unindexed_values")
                .unwrap();
            c.pragma_update(None, "user_version", 7).unwrap();
        }
        let store = open_sqlite(&dir).await;
        assert_indexed(&store).await;
        assert_records_deletions(&store).await;
    }

    #[tokio::test]
    async fn postgres_version_3_indexes_what_was_stored_before() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = db.open().await;
        write_gauges(&store).await;
        drop(store);
        let client = connect(&db.url()).await;
        let gone = client
            .execute(
                "DELETE FROM attr_values WHERE name LIKE '% observedAt'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(gone, 8);
        client
            .batch_execute(
                "DROP TABLE attr_deletions; DROP TABLE unindexed_values;
                 DELETE FROM schema_version WHERE version >= 3",
            )
            .await
            .unwrap();
        let store = db.open().await;
        assert_indexed(&store).await;
        assert_records_deletions(&store).await;
    }
}
