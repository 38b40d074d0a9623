//! The four figures of `dothi bench hub`, each printed as it is measured.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ngsi::entity::Reader;
use ngsi::{Context, Entity};
use reqwest::header::CONTENT_TYPE;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::data::{
    self, BATCH_ATTEMPTS, Obs, Progress, Retries, Rng, STATUSES, TYPE, enc, entity_id, file_mb,
    full_entity, join_all, join_error, ms, obs, percentiles, section, small_entity, thousands,
    wal_path,
};
use super::raw_postgres::{self, RawRows};
use super::server::{self, Backend, Server};
use super::{Report, Sizes, Target};

/// Data sets, so that each figure's entities differ.
const SET_WRITE: u64 = 1;
const SET_QUERY: u64 = 2;
const SET_LARGE: u64 = 3;
/// The page size of GET /entities when none is asked for.
const DEFAULT_LIMIT: usize = hub::http::params::DEFAULT_LIMIT;
/// Attributes per entity of figure 1.
const ATTRS_PER_ENTITY: usize = 5;
const MAX_DISTANCE_M: f64 = 2_000.0;

const UPSERT: &str = "/ngsi-ld/v1/entityOperations/upsert";
const JSON: &str = "application/json";

type EntityMaker = fn(&str, usize, &Obs) -> Value;
/// Request bodies, (id, stored document) of each entity, and for PostgreSQL each
/// entity's rows as its baseline writes them.
pub(super) type Prepared = (Vec<Vec<u8>>, Vec<RawEntity>, Vec<RawRows>);

/// One entity of figure 1 as the store writes it: its document and index rows.
pub(super) struct RawEntity {
    id: String,
    doc: String,
    modified_at: String,
    rows: store::sqlite::BaselineRows,
}

pub async fn run(sizes: &Sizes, dir: &Path, backend: &Backend) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let server = batch_upsert(sizes, dir, backend, &mut report).await?;
    patch(sizes, &server, &mut report).await?;
    server.stop().await?;
    queries(sizes, dir, backend, &mut report).await?;
    super::access::run(sizes, dir, backend, &mut report).await?;
    if matches!(backend, Backend::Postgres { .. }) {
        println!();
        println!("== 4. Large store: SQLite only (it measures the file and a restart) ==");
    } else if sizes.large_entities > 0 {
        large(sizes, dir, &mut report).await?;
    } else {
        println!();
        println!("== 4. Large store: skipped (--quick or --large-entities 0) ==");
    }
    Ok(report)
}

/// Sends one batch upsert; returns how many entities it created.
async fn post_upsert(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<u64> {
    let r = client
        .post(url)
        .header(CONTENT_TYPE, JSON)
        .body(body)
        .send()
        .await
        .context("sending a batch upsert")?;
    let status = r.status();
    let bytes = r.bytes().await?;
    match status.as_u16() {
        201 => Ok(serde_json::from_slice::<Vec<IgnoredAny>>(&bytes)?.len() as u64),
        204 => Ok(0),
        _ => bail!(
            "batch upsert answered {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        ),
    }
}

/// Sends a batch upsert, again after a failure (up to [`BATCH_ATTEMPTS`] in all).
async fn upsert_retrying(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    retries: &mut Retries,
) -> anyhow::Result<u64> {
    let mut attempt = 1;
    loop {
        match post_upsert(client, url, body.clone()).await {
            Ok(created) => return Ok(created),
            Err(e) if attempt < BATCH_ATTEMPTS => {
                retries.note(&e);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context(format!("a batch failed {BATCH_ATTEMPTS} times"))),
        }
    }
}

/// Loads entities `0..n` of a data set over HTTP, `per` to a request, from `clients`
/// concurrent clients; returns how many were created.
async fn load_http(
    server: &Server,
    prefix: &'static str,
    set: u64,
    n: usize,
    per: usize,
    clients: usize,
    make: EntityMaker,
) -> anyhow::Result<(u64, Retries)> {
    let next = AtomicUsize::new(0);
    let (created, _, retries) = upsert_concurrently(server, clients, move || {
        let lo = next.fetch_add(1, Ordering::Relaxed) * per;
        if lo >= n {
            return Ok(None);
        }
        let hi = (lo + per).min(n);
        let body = Value::Array((lo..hi).map(|i| make(prefix, i, &obs(set, i))).collect());
        Ok(Some(serde_json::to_vec(&body)?))
    })
    .await?;
    Ok((created, retries))
}

/// Upserts from `clients` concurrent clients, each sending the next body of `next_body`
/// when it is done with one, until there is none; returns the entities created, each
/// upsert's time and the retries.
async fn upsert_concurrently(
    server: &Server,
    clients: usize,
    next_body: impl Fn() -> anyhow::Result<Option<Vec<u8>>> + Send + Sync + 'static,
) -> anyhow::Result<(u64, Vec<Duration>, Retries)> {
    let next_body = Arc::new(next_body);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next_body = next_body.clone();
        let client = server.client.clone();
        let url = server.url(UPSERT);
        tasks.push(tokio::spawn(async move {
            let mut created = 0;
            let mut latencies = Vec::new();
            let mut retries = Retries::default();
            while let Some(body) = next_body()? {
                let t = Instant::now();
                created += upsert_retrying(&client, &url, body, &mut retries).await?;
                latencies.push(t.elapsed());
            }
            Ok((created, latencies, retries))
        }));
    }
    let mut created = 0;
    let mut latencies = Vec::new();
    let mut retries = Retries::default();
    for (c, l, r) in join_all(tasks).await? {
        created += c;
        latencies.extend(l);
        retries.merge(r);
    }
    Ok((created, latencies, retries))
}

/// A query slower than this counts as an error (and the client gives up on it).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// A kind of query stops after this many errors: each may keep a core busy for long.
const MAX_QUERY_ERRORS: usize = 3;
/// A kind of query stops after this long, so that a slow hub cannot stretch the run:
/// the figures are then over the queries answered so far.
const QUERY_KIND_BUDGET: Duration = Duration::from_secs(60);

/// GET, timed until the whole body is in; returns the time and the number of entities.
async fn timed_get(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, usize)> {
    let (took, body) = server::timed_get(client, url, QUERY_TIMEOUT).await?;
    let n = match body {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    Ok((took, n))
}

// ---------------------------------------------------------------- figure 1

/// Request bodies of figure 1 and, for the SQLite baselines, each entity's stored
/// document exactly as the hub stores it (the expanded entity as JSON) and its index
/// rows.
pub(super) fn prepare_batches(n: usize, per: usize, postgres: bool) -> anyhow::Result<Prepared> {
    let ctx = Context::core();
    let reader = Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let mut bodies = Vec::new();
    let mut docs = Vec::with_capacity(n);
    let mut pg_rows = Vec::new();
    for lo in (0..n).step_by(per) {
        let items: Vec<Value> = (lo..(lo + per).min(n))
            .map(|i| full_entity("w", i, &obs(SET_WRITE, i)))
            .collect();
        for item in &items {
            let e = reader.entity(item, None)?;
            let doc = serde_json::to_string(&e)?;
            if postgres {
                pg_rows.push(RawRows::of(&e, &doc));
            }
            docs.push(RawEntity {
                id: e.id.clone(),
                doc,
                modified_at: ngsi::entity::format_time(&e.modified_at),
                rows: store::sqlite::baseline_rows(&e),
            });
        }
        bodies.push(serde_json::to_vec(&items)?);
    }
    Ok((bodies, docs, pg_rows))
}

/// What SQLite alone does with the same rows as the hub: each entity's document and
/// index rows into the store's own schema (tables, indexes, R*Tree, pragmas), with
/// prepared statements, one transaction per batch. Names are interned before the
/// clock starts, as the hub's writer keeps them cached.
fn raw_same_rows(
    path: &Path,
    entities: &[RawEntity],
    per: usize,
) -> anyhow::Result<(Duration, u64)> {
    let mut conn = store::sqlite::open_baseline(&path.to_string_lossy())?;
    let mut names: HashMap<&str, i64> = HashMap::new();
    {
        let tx = conn.transaction()?;
        let intern = |name: &str| -> rusqlite::Result<i64> {
            tx.prepare_cached("INSERT OR IGNORE INTO names (name) VALUES (?1)")?
                .execute([name])?;
            tx.prepare_cached("SELECT id FROM names WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
        };
        for e in entities {
            let attr_names = e.rows.attrs.iter().map(|a| a.name.as_str());
            let kinds = e.rows.attrs.iter().flat_map(|a| a.kinds.iter().copied());
            for name in e
                .rows
                .types
                .iter()
                .map(String::as_str)
                .chain(attr_names)
                .chain(kinds)
            {
                if !names.contains_key(name) {
                    names.insert(name, intern(name)?);
                }
            }
        }
        tx.commit()?;
    }
    let id_of = |name: &str| names.get(name).copied().unwrap_or(-1);
    let start = Instant::now();
    for chunk in entities.chunks(per) {
        let tx = conn.transaction()?;
        for e in chunk {
            tx.prepare_cached(
                "INSERT INTO entities (tenant, id, doc, modified_at) VALUES ('', ?1, ?2, ?3)",
            )?
            .execute(rusqlite::params![e.id, e.doc, e.modified_at])?;
            let rowid = tx.last_insert_rowid();
            for t in &e.rows.types {
                tx.prepare_cached(
                    "INSERT INTO entity_types (tenant, type, entity) VALUES ('', ?1, ?2)",
                )?
                .execute(rusqlite::params![id_of(t), rowid])?;
            }
            for a in &e.rows.attrs {
                let name = id_of(&a.name);
                for (seq, kind) in a.kinds.iter().enumerate() {
                    tx.prepare_cached(
                        "INSERT INTO attr_index (entity, name, seq, kind) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(rusqlite::params![
                        rowid,
                        name,
                        seq as i64,
                        id_of(kind)
                    ])?;
                }
                for (k, (num, txt)) in a.values.iter().enumerate() {
                    tx.prepare_cached(
                        "INSERT INTO attr_values (entity, name, k, num, txt) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![rowid, name, k as i64, num, txt])?;
                }
                for (x0, y0, x1, y1) in &a.boxes {
                    tx.prepare_cached("INSERT INTO geo_attr (entity, name) VALUES (?1, ?2)")?
                        .execute(rusqlite::params![rowid, name])?;
                    let id = tx.last_insert_rowid();
                    tx.prepare_cached(
                        "INSERT INTO geo_rtree (id, min_x, max_x, min_y, max_y) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![id, x0, x1, y0, y1])?;
                }
            }
            for (name, dataset, (t, written, num, txt, unit, doc)) in &e.rows.history {
                tx.prepare_cached(
                    "INSERT INTO attr_history (entity, name, dataset, t, written, num, txt, unit, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(rusqlite::params![rowid, id_of(name), dataset, t, written, num, txt, unit, doc])?;
            }
        }
        tx.commit()?;
    }
    let took = start.elapsed();
    Ok((took, data::count_rows(&conn, "entities")?))
}

/// The floor of any store: the same documents alone into `(id PRIMARY KEY, doc)`,
/// no index rows; printed for reference.
fn raw_documents_only(
    path: &Path,
    entities: &[RawEntity],
    per: usize,
) -> anyhow::Result<(Duration, u64)> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE entities (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")?;
    let start = Instant::now();
    for chunk in entities.chunks(per) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO entities (id, doc) VALUES (?1, ?2)")?;
            for e in chunk {
                insert.execute(rusqlite::params![e.id, e.doc])?;
            }
        }
        tx.commit()?;
    }
    let took = start.elapsed();
    Ok((took, data::count_rows(&conn, "entities")?))
}

async fn batch_upsert(
    sizes: &Sizes,
    dir: &Path,
    backend: &Backend,
    report: &mut Report,
) -> anyhow::Result<Server> {
    let (n, per, clients) = (sizes.batch_entities, sizes.batch_size, sizes.batch_clients);
    section(&format!(
        "1. Batch upsert over HTTP: {} entities × {ATTRS_PER_ENTITY} attributes, {per} per request, {clients} concurrent clients",
        thousands(n as f64)
    ));
    let postgres = matches!(backend, Backend::Postgres { .. });
    let (bodies, docs, pg_rows) =
        tokio::task::spawn_blocking(move || prepare_batches(n, per, postgres))
            .await
            .map_err(join_error)??;
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    let requests = bodies.len();
    let server = Server::start_on(backend, &dir.join("hub-write.db")).await?;
    server.wait_healthy(Duration::from_secs(10)).await?;

    let Sent {
        created,
        latencies,
        retries,
        took,
    } = send_batches(&server, bodies, clients).await?;
    let counted = server.count(&format!("type={TYPE}")).await?;
    let hub_rate = (n * ATTRS_PER_ENTITY) as f64 / took.as_secs_f64();
    println!(
        "  hub:        {} entities in {:.2} s over {requests} requests ({:.1} MB of JSON): {} entities/s, {} attribute writes/s",
        thousands(created as f64),
        took.as_secs_f64(),
        body_bytes as f64 / 1e6,
        thousands(n as f64 / took.as_secs_f64()),
        thousands(hub_rate)
    );
    println!(
        "              request latency {}",
        ms(&percentiles(&latencies))
    );
    retries.print("writing the batches");
    println!(
        "              check: the hub counts {} entities of type {TYPE}",
        thousands(counted as f64)
    );

    let clean = created == n as u64 && counted == n as u64 && retries.count == 0;
    report.extra("batch_upsert_failed_attempts", retries.count as f64);
    report.row(
        "batch_upsert_attr_writes_per_s",
        "1  batch upsert, attribute writes/s",
        hub_rate,
        "/s",
        Some(Target::AtLeast(50_000.0)),
        clean,
    );
    report.checks.batch_written = created;
    report.checks.batch_counted = counted;
    if postgres {
        // A database of its own with the store's schema (migrations applied by
        // opening a store on it), empty as the hub's was.
        let url = backend.store_url(&dir.join("raw-postgres.db")).await?;
        drop(store::open(&url).await?);
        let raw = raw_postgres::same_rows(&url, &pg_rows, per).await?;
        raw_figures(
            report,
            &format!(
                "PostgreSQL: the same {{}} entities as the same rows (document, index and history rows, the store's schema, binary COPY — geometries by INSERT … ST_GeomFromGeoJSON —, one transaction per {per})"
            ),
            n,
            raw,
            hub_rate,
            clean,
        );
        return Ok(server);
    }
    let (raw_db, docs_db) = (dir.join("raw-sqlite.db"), dir.join("raw-docs.db"));
    let (raw, docs_only) = tokio::task::spawn_blocking(move || {
        let raw = raw_same_rows(&raw_db, &docs, per)?;
        let docs_only = raw_documents_only(&docs_db, &docs, per)?;
        anyhow::Ok((raw, docs_only))
    })
    .await
    .map_err(join_error)??;
    let raw_rate = raw_figures(
        report,
        &format!(
            "SQLite: the same {{}} entities as the same rows (document, index and history rows, the store's schema and pragmas, prepared INSERTs, one transaction per {per})"
        ),
        n,
        raw,
        hub_rate,
        clean,
    );
    let docs_rate = (n * ATTRS_PER_ENTITY) as f64 / docs_only.0.as_secs_f64();
    println!(
        "  for reference, documents alone (id + doc, no index rows): {} attribute writes/s",
        thousands(docs_rate)
    );
    report.extra("raw_sqlite_attr_writes_per_s", raw_rate);
    report.extra("raw_documents_only_attr_writes_per_s", docs_rate);
    Ok(server)
}

/// Prints and reports the baseline of `n` entities that took `raw` (time, entities
/// counted after), and the ratio hub / baseline, whichever the database; `what`
/// describes it, `{}` standing for the count. Returns the baseline's rate.
fn raw_figures(
    report: &mut Report,
    what: &str,
    n: usize,
    raw: (Duration, u64),
    hub_rate: f64,
    clean: bool,
) -> f64 {
    let (raw_took, raw_rows) = raw;
    let raw_rate = (n * ATTRS_PER_ENTITY) as f64 / raw_took.as_secs_f64();
    println!(
        "  raw {} in {:.2} s: {} entities/s, {} attribute writes/s",
        what.replacen("{}", &thousands(raw_rows as f64), 1),
        raw_took.as_secs_f64(),
        thousands(n as f64 / raw_took.as_secs_f64()),
        thousands(raw_rate)
    );
    report.checks.raw_rows = raw_rows;
    let ratio = hub_rate / raw_rate;
    println!("  ratio hub / raw (same rows): {ratio:.3} (aim ≥ 0.5)");
    report.row(
        "batch_upsert_raw_attr_writes_per_s",
        "1  raw SQL, same rows, attribute writes/s",
        raw_rate,
        "/s",
        None,
        clean,
    );
    report.row(
        "batch_upsert_hub_over_raw",
        "1  batch upsert, hub / raw (same rows)",
        ratio,
        "",
        Some(Target::AtLeast(0.5)),
        clean,
    );
    raw_rate
}

// ---------------------------------------------------------------- figure 2

/// What sending a set of batch upserts did.
pub(super) struct Sent {
    pub created: u64,
    pub latencies: Vec<Duration>,
    pub retries: Retries,
    pub took: Duration,
}

/// Sends these batch upsert bodies from `clients` concurrent clients, each taking the
/// next body when it is done with one.
pub(super) async fn send_batches(
    server: &Server,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> anyhow::Result<Sent> {
    let queue = Mutex::new(bodies.into_iter());
    let start = Instant::now();
    let (created, latencies, retries) = upsert_concurrently(server, clients, move || {
        Ok(queue.lock().ok().and_then(|mut q| q.next()))
    })
    .await?;
    Ok(Sent {
        created,
        latencies,
        retries,
        took: start.elapsed(),
    })
}

/// What a run of PATCH clients did.
pub(super) struct PatchRun {
    pub latencies: Vec<Duration>,
    pub took: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl PatchRun {
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.took.as_secs_f64()
    }
}

/// `clients` concurrent clients PATCH random entities of figure 1 (`0..n`) for
/// `duration`.
pub(super) async fn run_patches(
    server: &Server,
    n: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<PatchRun> {
    let base = server.url("/ngsi-ld/v1/entities/");
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = server.client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::from_seed(1_000 + c as u64);
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let url = format!("{base}{}/attrs", entity_id("w", rng.below(n)));
                let body = format!(
                    r#"{{"temperature":{{"type":"Property","value":{:.1}}}}}"#,
                    rng.range(18.0, 38.0)
                );
                let t = Instant::now();
                let sent = client
                    .patch(&url)
                    .header(CONTENT_TYPE, JSON)
                    .body(body)
                    .send()
                    .await;
                let outcome = match sent {
                    Ok(r) => {
                        let status = r.status();
                        let bytes = r.bytes().await;
                        match (status.as_u16(), bytes) {
                            (204, Ok(_)) => Ok(()),
                            (_, Ok(b)) => Err(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(300)])
                            )),
                            (_, Err(e)) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                latencies.push(t.elapsed());
                if let Err(e) = outcome {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
            Ok((latencies, errors, first_error))
        }));
    }
    let results = join_all(tasks).await?;
    let took = start.elapsed();
    let mut run = PatchRun {
        latencies: Vec::new(),
        took,
        errors: 0,
        first_error: None,
    };
    for (l, e, f) in results {
        run.latencies.extend(l);
        run.errors += e;
        if run.first_error.is_none() {
            run.first_error = f;
        }
    }
    Ok(run)
}

async fn patch(sizes: &Sizes, server: &Server, report: &mut Report) -> anyhow::Result<()> {
    let (n, clients) = (sizes.batch_entities, sizes.patch_clients);
    section(&format!(
        "2. PATCH /entities/{{id}}/attrs over HTTP (keep-alive): {clients} concurrent clients for {} s over {} existing entities",
        sizes.patch_secs,
        thousands(n as f64)
    ));
    let PatchRun {
        latencies,
        took,
        errors,
        first_error,
    } = run_patches(
        server,
        n,
        clients,
        Duration::from_secs_f64(sizes.patch_secs),
    )
    .await?;
    let total = latencies.len() as u64;
    let rate = total as f64 / took.as_secs_f64();
    let p = percentiles(&latencies);
    println!(
        "  {} requests in {:.2} s: {} requests/s, {errors} errors",
        thousands(total as f64),
        took.as_secs_f64(),
        thousands(rate)
    );
    if let Some(e) = first_error {
        println!("  first error: {e}");
    }
    println!("  latency {}", ms(&p));
    let clean = errors == 0;
    report.row(
        "patch_req_per_s",
        "2  PATCH attrs, requests/s",
        rate,
        "/s",
        Some(Target::AtLeast(5_000.0)),
        clean,
    );
    report.row(
        "patch_p50_ms",
        "2  PATCH attrs, p50 latency",
        p.p50,
        "ms",
        None,
        clean,
    );
    report.row(
        "patch_p99_ms",
        "2  PATCH attrs, p99 latency",
        p.p99,
        "ms",
        None,
        clean,
    );
    report.checks.patch_ok = total - errors;
    report.checks.patch_errors = errors;
    Ok(())
}

// ---------------------------------------------------------------- figure 3

/// A q query of figure 3: two conditions, constants varying.
fn q_query(rng: &mut Rng) -> (f64, usize, String) {
    let threshold = (20 + rng.below(101)) as f64;
    let status = if rng.unit() < 0.6 { 2 } else { 1 };
    let q = format!("pm25>{threshold};status==\"{}\"", STATUSES[status]);
    (threshold, status, q)
}

fn q_url(server: &Server, q: &str) -> String {
    server.url(&format!("/ngsi-ld/v1/entities?type={TYPE}&q={}", enc(q)))
}

fn random_point(rng: &mut Rng) -> (f64, f64) {
    let lon = (rng.range(data::LON.0, data::LON.1) * 1e5).round() / 1e5;
    let lat = (rng.range(data::LAT.0, data::LAT.1) * 1e5).round() / 1e5;
    (lon, lat)
}

fn geo_url(server: &Server, lon: f64, lat: f64) -> String {
    server.url(&format!(
        "/ngsi-ld/v1/entities?type={TYPE}&georel={}&geometry=Point&coordinates={}",
        enc(&format!("near;maxDistance=={MAX_DISTANCE_M}")),
        enc(&format!("[{lon},{lat}]"))
    ))
}

/// The queries of one kind: their latencies, results and errors.
struct QueryRun {
    started: Instant,
    latencies: Vec<Duration>,
    returned: u64,
    matching: u64,
    mismatches: usize,
    errors: usize,
    first_error: Option<String>,
}

impl Default for QueryRun {
    fn default() -> Self {
        QueryRun {
            started: Instant::now(),
            latencies: Vec::new(),
            returned: 0,
            matching: 0,
            mismatches: 0,
            errors: 0,
            first_error: None,
        }
    }
}

impl QueryRun {
    /// Whether this kind has failed too often, or taken too long, to go on.
    fn exhausted(&self) -> bool {
        self.errors >= MAX_QUERY_ERRORS || self.out_of_time()
    }

    fn out_of_time(&self) -> bool {
        self.started.elapsed() > QUERY_KIND_BUDGET
    }

    /// Runs one query; returns how many entities it returned, None when it failed.
    async fn get(&mut self, client: &reqwest::Client, url: &str) -> Option<usize> {
        match timed_get(client, url).await {
            Ok((took, got)) => {
                self.latencies.push(took);
                self.returned += got as u64;
                Some(got)
            }
            Err(e) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{e:#} (GET {url})"));
                None
            }
        }
    }

    /// Records what the generated data says the query should match.
    fn expect(&mut self, got: usize, matching: usize) {
        self.matching += matching as u64;
        if got != matching.min(DEFAULT_LIMIT) {
            self.mismatches += 1;
        }
    }

    fn print_errors(&self, planned: usize) {
        if let Some(e) = &self.first_error {
            println!(
                "      ERRORS: {} ({} of {planned} queries answered; limit {} s each{}); first: {e}",
                self.errors,
                self.latencies.len(),
                QUERY_TIMEOUT.as_secs(),
                if self.exhausted() {
                    ", this kind stopped early"
                } else {
                    ""
                }
            );
        }
    }

    fn print(&self, what: &str, planned: usize) {
        let q = self.latencies.len().max(1) as f64;
        println!("  {what}: {}", ms(&percentiles(&self.latencies)));
        if self.out_of_time() && self.latencies.len() + self.errors < planned {
            println!(
                "      STOPPED after {} s: {} of {planned} queries run (too slow to finish in time)",
                QUERY_KIND_BUDGET.as_secs(),
                self.latencies.len() + self.errors
            );
        }
        println!(
            "      results returned per query: {:.1} on average (page size {DEFAULT_LIMIT}); entities matching per query (from the generated data): {:.1} on average",
            self.returned as f64 / q,
            self.matching as f64 / q
        );
        if self.mismatches > 0 {
            println!(
                "      NOTE: {} of {} queries returned another number than min({DEFAULT_LIMIT}, matching)",
                self.mismatches,
                self.latencies.len()
            );
        }
        self.print_errors(planned);
    }
}

async fn queries(
    sizes: &Sizes,
    dir: &Path,
    backend: &Backend,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = sizes.query_entities;
    section(&format!(
        "3. Queries on {} entities of type {TYPE} (5 attributes, locations over Quảng Trị)",
        thousands(n as f64)
    ));
    let server = Server::start_on(backend, &dir.join("hub-query.db")).await?;
    server.wait_healthy(Duration::from_secs(10)).await?;
    let start = Instant::now();
    let (loaded, retries) = load_http(&server, "q", SET_QUERY, n, 1_000, 2, full_entity).await?;
    let took = start.elapsed();
    let counted = server.count(&format!("type={TYPE}")).await?;
    println!(
        "  loaded over HTTP (batch upsert, 1,000 per request, 2 clients) in {:.1} s ({} entities/s); the hub counts {}",
        took.as_secs_f64(),
        thousands(loaded as f64 / took.as_secs_f64()),
        thousands(counted as f64)
    );
    retries.print("loading the query set");
    report.extra("query_load_failed_attempts", retries.count as f64);
    let data: Vec<Obs> = (0..n).map(|i| obs(SET_QUERY, i)).collect();

    // Warm-up, untimed: the first queries open reader connections and fill caches.
    let mut rng = Rng::from_seed(7);
    let mut warm = QueryRun::default();
    for _ in 0..20 {
        if warm.started.elapsed() > Duration::from_secs(10) {
            break;
        }
        let (_, _, q) = q_query(&mut rng);
        let (lon, lat) = random_point(&mut rng);
        if warm
            .get(&server.client, &q_url(&server, &q))
            .await
            .is_none()
            || warm
                .get(&server.client, &geo_url(&server, lon, lat))
                .await
                .is_none()
        {
            break;
        }
    }
    if let Some(e) = &warm.first_error {
        println!("  WARM-UP ERROR: {e}");
    }

    let mut rng = Rng::from_seed(77);
    let mut qrun = QueryRun::default();
    for _ in 0..sizes.queries {
        if qrun.exhausted() {
            break;
        }
        let (threshold, status, q) = q_query(&mut rng);
        if let Some(got) = qrun.get(&server.client, &q_url(&server, &q)).await {
            let matching = data
                .iter()
                .filter(|o| o.pm25 > threshold && o.status == status)
                .count();
            qrun.expect(got, matching);
        }
    }
    qrun.print(
        "(a) q=pm25>X;status==\"alarm\"|\"warning\" (X in 20..120)",
        sizes.queries,
    );

    let mut geo = QueryRun::default();
    for _ in 0..sizes.queries {
        if geo.exhausted() {
            break;
        }
        let (lon, lat) = random_point(&mut rng);
        if let Some(got) = geo.get(&server.client, &geo_url(&server, lon, lat)).await {
            geo.expect(got, data::count_near(&data, lon, lat, MAX_DISTANCE_M));
        }
    }
    geo.print(
        "(b) georel=near;maxDistance==2000 around random points",
        sizes.queries,
    );
    server.stop().await?;

    let pq = percentiles(&qrun.latencies);
    let pg = percentiles(&geo.latencies);
    let loaded_ok = counted == n as u64;
    for (key, label, v, run) in [
        ("query_q_p50_ms", "3a q query, p50", pq.p50, &qrun),
        ("query_q_p95_ms", "3a q query, p95", pq.p95, &qrun),
        ("query_q_p99_ms", "3a q query, p99", pq.p99, &qrun),
        ("query_geo_p50_ms", "3b geo near query, p50", pg.p50, &geo),
        ("query_geo_p95_ms", "3b geo near query, p95", pg.p95, &geo),
        ("query_geo_p99_ms", "3b geo near query, p99", pg.p99, &geo),
    ] {
        let target = key.ends_with("p95_ms").then_some(Target::AtMost(10.0));
        report.row(key, label, v, "ms", target, loaded_ok && run.errors == 0);
    }
    for (name, run) in [("q", &qrun), ("geo", &geo)] {
        let answered = run.latencies.len().max(1) as f64;
        report.extra(
            format!("query_{name}_avg_results"),
            run.returned as f64 / answered,
        );
        report.extra(
            format!("query_{name}_avg_matching"),
            run.matching as f64 / answered,
        );
        report.extra(format!("query_{name}_errors"), run.errors as f64);
    }
    let c = &mut report.checks;
    c.query_loaded = loaded;
    c.query_counted = counted;
    c.q_queries = qrun.latencies.len() + qrun.errors;
    c.q_returned = qrun.returned;
    c.q_mismatches = qrun.mismatches;
    c.q_errors = qrun.errors;
    c.geo_queries = geo.latencies.len() + geo.errors;
    c.geo_returned = geo.returned;
    c.geo_mismatches = geo.mismatches;
    c.geo_errors = geo.errors;
    Ok(())
}

// ---------------------------------------------------------------- figure 4

/// Loads the large store in-process through `Hub::batch_upsert` (no HTTP), two
/// batches in flight so that building entities overlaps with the writer.
async fn load_in_process(hub: &Arc<hub::Hub>, n: usize) -> anyhow::Result<(u64, Retries)> {
    const PER: usize = 5_000;
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Progress::new(n as u64, "", "entities");
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (next, progress, hub) = (next.clone(), progress.clone(), hub.clone());
        tasks.push(tokio::spawn(async move {
            let scope = hub::Scope::system("bench", "");
            let mut retries = Retries::default();
            loop {
                let lo = next.fetch_add(1, Ordering::Relaxed) * PER;
                if lo >= n {
                    return Ok(retries);
                }
                let hi = (lo + PER).min(n);
                let entities = tokio::task::spawn_blocking(move || {
                    let ctx = Context::core();
                    let reader = Reader {
                        ctx: &ctx,
                        now: ngsi::entity::now(),
                    };
                    (lo..hi)
                        .map(|i| {
                            reader
                                .entity(&small_entity("m", i, &obs(SET_LARGE, i)), None)
                                .map_err(|e| (entity_id("m", i), e))
                        })
                        .collect::<Vec<Result<Entity, _>>>()
                })
                .await
                .map_err(join_error)?;
                let mut attempt = 1;
                let results = loop {
                    match hub.batch_upsert(&scope, entities.clone(), true).await {
                        Ok(results) => break results,
                        Err(e) if attempt < BATCH_ATTEMPTS => {
                            retries.note(&anyhow!("Hub::batch_upsert: {e}"));
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => bail!("Hub::batch_upsert failed {BATCH_ATTEMPTS} times: {e}"),
                    }
                };
                for (id, r) in results {
                    if let Err(e) = r {
                        bail!("loading {id}: {e}");
                    }
                }
                progress.add((hi - lo) as u64);
            }
        }));
    }
    progress.finish(tasks).await
}

fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

async fn large(sizes: &Sizes, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let n = sizes.large_entities;
    section(&format!(
        "4. Large store: {} small entities (pm25, status, location)",
        thousands(n as f64)
    ));
    let db = dir.join("hub-large.db");
    let rss_before = data::rss_bytes();
    let server = Server::start(&db).await?;
    server.wait_healthy(Duration::from_secs(10)).await?;
    let start = Instant::now();
    let (loaded, retries) = load_in_process(server.hub()?, n).await?;
    let took = start.elapsed();
    let counted = server.count(&format!("type={TYPE}")).await?;
    println!(
        "  loaded in-process through Hub::batch_upsert (no HTTP), 5,000 per call, 2 in flight: {} entities in {:.1} s ({} entities/s); the hub counts {}; database {:.0} MB + WAL {:.0} MB",
        thousands(loaded as f64),
        took.as_secs_f64(),
        thousands(loaded as f64 / took.as_secs_f64()),
        thousands(counted as f64),
        file_mb(&db),
        file_mb(&wal_path(&db))
    );
    retries.print("loading the large store");
    report.extra("large_load_failed_attempts", retries.count as f64);

    // Restart: everything holding the store is dropped, then it is opened again.
    let stop_start = Instant::now();
    server.stop().await?;
    let stopped = stop_start.elapsed();
    let wal_gone = server::wait_wal_gone(&db, Duration::from_secs(5)).await;
    if wal_gone {
        println!(
            "  shutdown: server stopped in {:.2} s, store closed (WAL checkpointed and removed) after {:.2} s",
            stopped.as_secs_f64(),
            stop_start.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "  shutdown: server stopped in {:.2} s; {:.0} s later the WAL ({:.0} MB) is still there, with {} file descriptors of this process on the database (0: every connection closed, the last one did not checkpoint); restarting with it",
            stopped.as_secs_f64(),
            (stop_start.elapsed() - stopped).as_secs_f64(),
            file_mb(&wal_path(&db)),
            server::open_fds(&db)
        );
    }
    // The restart is a new process, `dothi serve`, so that what it takes to start and
    // the memory it holds are the hub's alone, not this load generator's.
    let restart = Instant::now();
    let server = Server::spawn(&sizes.server_exe, &db).await?;
    server.wait_healthy(Duration::from_secs(60)).await?;
    let ready = restart.elapsed();
    let first_id = entity_id("m", n / 2);
    let mut first = QueryRun::default();
    first
        .get(
            &server.client,
            &server.url(&format!("/ngsi-ld/v1/entities/{first_id}")),
        )
        .await;
    let first_read = restart.elapsed();
    println!(
        "  restart as a new process (dothi serve): first /health 200 after {:.0} ms; first entity read after {:.0} ms",
        ready.as_secs_f64() * 1e3,
        first_read.as_secs_f64() * 1e3
    );
    first.print_errors(1);

    // The sweep: q, geo, by id, and plain pages, in turn.
    let mut rng = Rng::from_seed(4242);
    let mut by_kind: [QueryRun; 4] = Default::default();
    for k in 0..sizes.sweep_queries {
        let url = match k % 4 {
            0 => q_url(&server, &q_query(&mut rng).2),
            1 => {
                let (lon, lat) = random_point(&mut rng);
                geo_url(&server, lon, lat)
            }
            2 => server.url(&format!(
                "/ngsi-ld/v1/entities/{}",
                entity_id("m", rng.below(n))
            )),
            _ => server.url(&format!(
                "/ngsi-ld/v1/entities?type={TYPE}&offset={}",
                rng.below(1_000)
            )),
        };
        if !by_kind[k % 4].exhausted() {
            by_kind[k % 4].get(&server.client, &url).await;
        }
    }
    let rss = server.rss_bytes();
    let counted_after = server.count(&format!("type={TYPE}")).await?;
    let names = ["q", "geo near", "by id", "type page"];
    for (name, run) in names.iter().zip(&by_kind) {
        let p = percentiles(&run.latencies);
        println!(
            "  sweep {name:<9}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms (n = {})",
            p.p50, p.p95, p.p99, p.n
        );
        run.print_errors(sizes.sweep_queries / 4);
    }
    println!(
        "  VmRSS of the dothi serve process after the sweep of {} queries: {:.1} MB (for reference, this benchmark process at the start of figure 4: {:.1} MB)",
        sizes.sweep_queries,
        mb(rss),
        mb(rss_before)
    );
    println!(
        "  check: the hub counts {} entities after the restart",
        thousands(counted_after as f64)
    );
    server.stop().await?;

    let sweep_errors: usize = by_kind.iter().map(|r| r.errors).sum();
    let clean = loaded == n as u64 && counted_after == loaded;
    report.row(
        "large_rss_mb",
        "4  RSS after sweep (large store)",
        mb(rss),
        "MB",
        Some(Target::Below(300.0)),
        clean && rss.is_some() && sweep_errors == 0,
    );
    report.row(
        "large_restart_to_ready_s",
        "4  restart to first /health 200",
        ready.as_secs_f64(),
        "s",
        Some(Target::Below(2.0)),
        clean && first.errors == 0,
    );
    report.extra("large_entities", loaded as f64);
    report.extra(
        "large_load_entities_per_s",
        loaded as f64 / took.as_secs_f64(),
    );
    report.extra("large_first_read_after_restart_s", first_read.as_secs_f64());
    report.extra("large_rss_before_mb", mb(rss_before));
    for (name, run) in ["q", "geo", "by_id", "page"].iter().zip(&by_kind) {
        report.extra(
            format!("large_sweep_{name}_p95_ms"),
            percentiles(&run.latencies).p95,
        );
    }
    report.extra("large_sweep_errors", sweep_errors as f64);
    let c = &mut report.checks;
    c.large_loaded = loaded;
    c.large_counted = counted;
    c.large_counted_after_restart = counted_after;
    c.sweep_queries = by_kind.iter().map(|r| r.latencies.len()).sum();
    c.sweep_errors = sweep_errors;
    Ok(())
}
