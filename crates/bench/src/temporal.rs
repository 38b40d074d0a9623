//! `dothi bench temporal`: a year of sensor readings as attribute history, loaded and
//! queried.
//!
//! Every sensor is a `WaterObserved` entity with one numeric attribute, `waterLevel`,
//! read every 5 minutes from 2025-01-01 (a daily cycle, a seasonal drift and seeded
//! noise, each reading computable on its own, so that every answer can be checked).
//! Figures:
//!
//! 1. the load, in-process through `Hub::add_history`, beside a plain SQLite loop
//!    inserting the same history rows; the database size per million instances;
//!    with `--store postgres://…`, the whole run again on PostgreSQL (the plain loop
//!    is SQLite's only), printed side by side;
//! 2. temporal queries over HTTP on the loaded store, each answer checked against the
//!    generated readings: (a) the hourly average of one sensor over 30 days, (b) the
//!    daily maximum of every sensor over the whole period, (c) the last 100 readings
//!    of one sensor.

use std::collections::{BTreeMap, HashSet};
use std::f64::consts::TAU;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use chrono::{DateTime, TimeZone, Utc};
use ngsi::entity::{format_time, parse_time};
use ngsi::query::ast::TypeExpr;
use ngsi::temporal::{AggrMethod, TemporalFormat, TemporalParams, TimeRel};
use ngsi::{AttrKind, Attribute, Context};
use serde_json::Value;

use super::data::{
    self, BATCH_ATTEMPTS, Progress, Retries, Rng, enc, file_mb, join_error, ms, percentiles,
    section, thousands, wal_path,
};
use super::server::{self, Backend, Server};
use super::{AlsoOnPostgres, Common, Report, count};

/// The entity type of every sensor, and its one attribute (terms of the default
/// vocabulary).
const TYPE: &str = "WaterObserved";
const ATTR: &str = "waterLevel";
/// UN/CEFACT code of the metre.
const UNIT: &str = "MTR";
/// Readings of a sensor per day: one every 5 minutes.
const PER_DAY: usize = 288;
const STEP_MS: i64 = 5 * 60 * 1000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// The time of every sensor's first reading: 2025-01-01T00:00:00Z.
const START_MS: i64 = 1_735_689_600_000;
/// The window of query (a), in days (the whole period when it is shorter).
const WINDOW_DAYS: usize = 30;
/// `lastN` of query (c).
const LAST_N: usize = 100;
/// A query slower than this counts as an error (and the client gives up on it).
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// A kind of query stops after this many errors: each may keep a core busy for long.
const MAX_QUERY_ERRORS: usize = 3;
/// A kind of query stops after this long, so that a slow hub cannot stretch the run:
/// the figures are then over the queries answered so far. (The 50 runs of (b) take
/// about 250 s on the 2-core development machine.)
const QUERY_KIND_BUDGET: Duration = Duration::from_secs(300);
/// Untimed queries of each kind before the timed ones (reader connections, caches).
const WARM_UP: usize = 3;

/// For context: what other brokers' temporal queries achieve.
const ANCHORS: &str = "Stellio's aggregated temporal query fell to 42 requests/s at 100,000 instances on 8 vCPUs; Scorpio users report temporal queries of 8 to 60 s";

/// How big the run is.
#[derive(Debug, Clone)]
pub struct TemporalSizes {
    pub sensors: usize,
    pub days: usize,
    /// Runs of queries (a) and (c).
    pub queries: usize,
    /// Runs of query (b), which reads every instance.
    pub aggregate_queries: usize,
    /// Instances per `Hub::add_history` call (all of one sensor), and per transaction
    /// of the raw SQLite loop.
    pub per_call: usize,
    /// `Hub::add_history` calls in flight.
    pub in_flight: usize,
}

/// `dothi bench temporal`.
#[derive(clap::Args, Clone, Debug)]
pub struct TemporalArgs {
    /// Sensors, each with one reading every 5 minutes; at most the hub's page size,
    /// as query (b) reads every sensor in one page [default: 100; 10 with --quick].
    #[arg(long, value_parser = count(1..=hub::http::params::MAX_LIMIT as u64))]
    pub sensors: Option<usize>,
    /// Days of readings from 2025-01-01, 1 to 3650 [default: 365; 30 with --quick].
    #[arg(long, value_parser = count(1..=3_650))]
    pub days: Option<usize>,
    /// Runs of queries (a) and (c), and a quarter as many of (b) [default: 200; 50
    /// with --quick].
    #[arg(long, value_parser = count(1..))]
    pub queries: Option<usize>,
    #[command(flatten)]
    pub postgres: AlsoOnPostgres,
    #[command(flatten)]
    pub common: Common,
}

impl TemporalArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> TemporalSizes {
        let queries = self.common.size(self.queries, 50, 200);
        TemporalSizes {
            sensors: self.common.size(self.sensors, 10, 100),
            days: self.common.size(self.days, 30, 365),
            queries,
            aggregate_queries: (queries / 4).max(1),
            per_call: 10_000,
            in_flight: 2,
        }
    }
}

impl TemporalSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} sensors × {} days of 5-minute readings = {} instances; {} runs of queries (a) and (c), {} of (b)",
            self.sensors,
            self.days,
            thousands(self.instances() as f64),
            self.queries,
            self.aggregate_queries
        )
    }

    /// Readings of one sensor.
    fn readings(&self) -> usize {
        self.days * PER_DAY
    }

    fn instances(&self) -> u64 {
        (self.sensors * self.readings()) as u64
    }

    /// Blocks of one sensor's readings.
    fn rounds(&self) -> usize {
        self.readings().div_ceil(self.per_call)
    }

    fn blocks(&self) -> usize {
        self.rounds() * self.sensors
    }

    /// Block `b` of the load: up to `per_call` consecutive readings of one sensor. The
    /// blocks go round the sensors (the first weeks of each, then the next ones), as
    /// readings arrive; the raw loop writes them in the same order.
    fn block(&self, b: usize) -> (usize, Range<usize>) {
        let (round, sensor) = (b / self.sensors, b % self.sensors);
        let from = round * self.per_call;
        (sensor, from..(from + self.per_call).min(self.readings()))
    }
}

/// What the unit test checks: what was loaded is what the hub counts, and every
/// query was answered, and answered right.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub loaded: u64,
    pub entities_counted: u64,
    pub instances_counted: u64,
    pub raw_rows: u64,
    /// Per query kind (a), (b), (c): queries run, errors, wrong answers.
    pub queries: [usize; 3],
    pub errors: [usize; 3],
    pub mismatches: [usize; 3],
}

// ---------------------------------------------------------------- the readings

/// One sensor's shape: its mean level, its daily and seasonal swings.
struct Sensor {
    base: f64,
    daily: f64,
    phase: f64,
    seasonal: f64,
}

fn sensor(i: usize) -> Sensor {
    let mut r = Rng::from_seed(0x5EA5_0000 ^ i as u64);
    Sensor {
        base: r.range(0.5, 3.0),
        daily: r.range(0.1, 0.6),
        phase: r.range(0.0, TAU),
        seasonal: r.range(0.0, 0.8),
    }
}

pub fn sensor_id(i: usize) -> String {
    format!("urn:ngsi-ld:{TYPE}:bench-{i:03}")
}

fn sensor_index(id: &str) -> Option<usize> {
    id.strip_prefix(&format!("urn:ngsi-ld:{TYPE}:bench-"))?
        .parse()
        .ok()
}

/// Reading `k` of sensor `i`, in metres to the millimetre: the same every run, and
/// computed alone (the noise is seeded by the sensor and the reading).
fn level(s: &Sensor, i: usize, k: usize) -> f64 {
    let day = (k % PER_DAY) as f64 / PER_DAY as f64;
    let year = (k / PER_DAY) as f64 / 365.0;
    let noise = Rng::from_seed(((i as u64) << 32) ^ k as u64).range(-0.05, 0.05);
    let v = s.base + s.daily * (TAU * day + s.phase).sin() + s.seasonal * (TAU * year).sin();
    ((v + noise) * 1000.0).round() / 1000.0
}

fn time_ms(k: usize) -> i64 {
    START_MS + k as i64 * STEP_MS
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Readings `ks` of sensor `i` as the instances a client provides: a Property with
/// observedAt and unitCode, recorded at `now`.
fn readings(
    i: usize,
    ks: Range<usize>,
    name: &str,
    now: DateTime<Utc>,
) -> Vec<(String, Attribute)> {
    let s = sensor(i);
    ks.map(|k| {
        let value =
            serde_json::Number::from_f64(level(&s, i, k)).map_or(Value::Null, Value::Number);
        let attribute = Attribute {
            kind: AttrKind::Property,
            value,
            dataset_id: None,
            observed_at: Some(at(time_ms(k))),
            unit_code: Some(UNIT.to_string()),
            object_type: None,
            created_at: now,
            modified_at: now,
            sub_attrs: BTreeMap::new(),
        };
        (name.to_string(), attribute)
    })
    .collect()
}

// ---------------------------------------------------------------- figure 1

/// Loads every block through `Hub::add_history`, `in_flight` calls at a time; returns
/// how many instances went in.
async fn load_hub(hub: &Arc<hub::Hub>, sizes: &TemporalSizes) -> anyhow::Result<(u64, Retries)> {
    let ctx = Context::core();
    let (type_iri, attr_iri) = (ctx.expand(TYPE), ctx.expand(ATTR));
    let total = sizes.instances();
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Progress::new(total, " instances", "instances");
    let mut tasks = Vec::new();
    for _ in 0..sizes.in_flight {
        let (next, progress, hub, sizes) =
            (next.clone(), progress.clone(), hub.clone(), sizes.clone());
        let (type_iri, attr_iri, ctx) = (type_iri.clone(), attr_iri.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            let scope = hub::Scope::new(
                String::new(),
                ctx.clone(),
                std::sync::Arc::new(hub::auth::Caller::system("bench")),
            );
            let mut retries = Retries::default();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= sizes.blocks() {
                    return Ok(retries);
                }
                let (i, ks) = sizes.block(b);
                let n = ks.len() as u64;
                let id = sensor_id(i);
                let mut attempt = 1;
                loop {
                    let instances = readings(i, ks.clone(), &attr_iri, ngsi::entity::now());
                    let types = vec![type_iri.clone()];
                    match hub.add_history(&scope, &id, types, instances, false).await {
                        Ok(_) => break,
                        Err(e) if attempt < BATCH_ATTEMPTS => {
                            retries.note(&anyhow!("Hub::add_history: {e}"));
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => bail!("Hub::add_history failed {BATCH_ATTEMPTS} times: {e}"),
                    }
                }
                progress.add(n);
            }
        }));
    }
    progress.finish(tasks).await
}

/// The temporal benchmark's readings of `sensors` sensors over `days` days, loaded
/// through the hub (for `bench alerts`' backtest); how many instances went in.
pub(super) async fn load_for_backtest(
    hub: &Arc<hub::Hub>,
    sensors: usize,
    days: usize,
) -> anyhow::Result<u64> {
    let sizes = TemporalSizes {
        sensors,
        days,
        queries: 1,
        aggregate_queries: 1,
        per_call: 10_000,
        in_flight: 2,
    };
    Ok(load_hub(hub, &sizes).await?.0)
}

/// The period of `days` days of readings: its start and end (ISO 8601).
pub(super) fn period(days: usize) -> (String, String) {
    let end = START_MS + (days * PER_DAY) as i64 * STEP_MS;
    (
        ngsi::entity::format_time(&at(START_MS)),
        ngsi::entity::format_time(&at(end)),
    )
}

/// What the hub counts: the entities of the type and, by `totalCount` over the whole
/// period, their instances.
async fn count_hub(hub: &hub::Hub, sizes: &TemporalSizes) -> anyhow::Result<(u64, u64)> {
    let ctx = Context::core();
    let scope = hub::Scope::new(
        String::new(),
        ctx.clone(),
        std::sync::Arc::new(hub::auth::Caller::system("bench")),
    );
    let query = store::EntityQuery {
        types: Some(TypeExpr::Type(ctx.expand(TYPE))),
        limit: sizes.sensors,
        count: true,
        ..Default::default()
    };
    let end = time_ms(sizes.readings());
    let req = hub::temporal::TemporalRequest {
        params: TemporalParams {
            timerel: Some(TimeRel::Between(at(START_MS), at(end))),
            format: TemporalFormat::AggregatedValues,
            aggr_methods: vec![AggrMethod::TotalCount],
            ..Default::default()
        },
        attrs: vec![ctx.expand(ATTR)],
        limit: hub::temporal::MAX_INSTANCES,
    };
    let (answers, count) = hub
        .temporal_query(&scope, query, &req)
        .await
        .map_err(|e| anyhow!("counting the instances: {e}"))?;
    let mut instances = 0;
    for answer in answers {
        if let hub::temporal::TemporalAnswer::Aggregated { attrs, .. } = answer {
            for bucket in attrs.values().flatten().flat_map(|a| &a.buckets) {
                for (_, v) in &bucket.values {
                    instances += v.as_u64().unwrap_or(0);
                }
            }
        }
    }
    Ok((count.unwrap_or(0), instances))
}

/// What SQLite alone does with the same history rows: the store's schema and pragmas,
/// the columns the store writes for each instance (`store::sqlite::history_columns`),
/// one prepared INSERT, one transaction per block, blocks in the hub's order. Names
/// are interned and one entity row per sensor inserted before the clock starts (the
/// hub's writer keeps names cached; its entities exist after their first block), and
/// each block's rows are built off the clock: it times SQLite alone.
fn raw_history(path: &Path, sizes: &TemporalSizes) -> anyhow::Result<(Duration, u64)> {
    let mut conn = store::sqlite::open_baseline(&path.to_string_lossy())?;
    let ctx = Context::core();
    let (type_iri, attr_iri) = (ctx.expand(TYPE), ctx.expand(ATTR));
    let now = ngsi::entity::now();
    let (name, rowids) = {
        let tx = conn.transaction()?;
        for n in [&type_iri, &attr_iri] {
            tx.execute("INSERT OR IGNORE INTO names (name) VALUES (?1)", [n])?;
        }
        let name: i64 = tx.query_row("SELECT id FROM names WHERE name = ?1", [&attr_iri], |r| {
            r.get(0)
        })?;
        let mut rowids = Vec::with_capacity(sizes.sensors);
        for i in 0..sizes.sensors {
            // Nothing reads the document here; only the history rows are timed.
            tx.execute(
                "INSERT INTO entities (tenant, id, doc, modified_at) VALUES ('', ?1, '{}', ?2)",
                rusqlite::params![sensor_id(i), format_time(&now)],
            )?;
            rowids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        (name, rowids)
    };
    let mut took = Duration::ZERO;
    for b in 0..sizes.blocks() {
        let (i, ks) = sizes.block(b);
        let rows: Vec<_> = readings(i, ks, &attr_iri, ngsi::entity::now())
            .iter()
            .map(|(_, a)| (a.dataset_id.clone(), store::sqlite::history_columns(a)))
            .collect();
        let start = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO attr_history (entity, name, dataset, t, written, num, txt, unit, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (dataset, (t, written, num, txt, unit, doc)) in &rows {
                insert.execute(rusqlite::params![
                    rowids[i], name, dataset, t, written, num, txt, unit, doc
                ])?;
            }
        }
        tx.commit()?;
        took += start.elapsed();
    }
    Ok((took, data::count_rows(&conn, "attr_history")?))
}

async fn load(
    sizes: &TemporalSizes,
    server: &Server,
    dir: &Path,
    (db, backend): (&Path, &Backend),
    report: &mut Report,
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    let total = sizes.instances();
    section(&format!(
        "1. Load: {} sensors × {} days of {ATTR} every 5 minutes = {} instances (type {TYPE}, from {})",
        sizes.sensors,
        sizes.days,
        thousands(total as f64),
        format_time(&at(START_MS))
    ));
    let hub = server.hub()?;
    // What an empty database takes (catalogs, schema), left out of the size.
    let empty_mb = match backend {
        Backend::Postgres { .. } => backend.databases_mb().await?,
        Backend::Sqlite => 0.0,
    };
    let start = Instant::now();
    let (loaded, retries) = load_hub(hub, sizes).await?;
    let took = start.elapsed();
    let (db_mb, wal_mb) = (file_mb(db), file_mb(&wal_path(db)));
    let (entities, instances) = count_hub(hub, sizes).await?;
    let hub_rate = loaded as f64 / took.as_secs_f64();
    println!(
        "  hub:        in-process through Hub::add_history (no HTTP), {} instances per call (one sensor), {} calls in flight: {} instances in {:.1} s, {} instances/s",
        thousands(sizes.per_call as f64),
        sizes.in_flight,
        thousands(loaded as f64),
        took.as_secs_f64(),
        thousands(hub_rate)
    );
    retries.print("loading the history");
    println!(
        "              check: the hub counts {} entities of type {TYPE} and {} instances (totalCount over the whole period)",
        thousands(entities as f64),
        thousands(instances as f64)
    );
    let clean = loaded == total
        && instances == total
        && entities == sizes.sensors as u64
        && retries.count == 0;
    report.row(
        "load_instances_per_s",
        "1  load (Hub::add_history), instances/s",
        hub_rate,
        "/s",
        None,
        clean,
    );
    report.extra("instances", loaded as f64);
    report.extra("load_seconds", took.as_secs_f64());
    report.extra("load_failed_attempts", retries.count as f64);
    counts.loaded = loaded;
    counts.entities_counted = entities;
    counts.instances_counted = instances;
    if matches!(backend, Backend::Postgres { .. }) {
        let mb = backend.databases_mb().await? - empty_mb;
        let per_million = mb / loaded.max(1) as f64 * 1e6;
        println!(
            "  size: the hub's database grew by {mb:.1} MB with the load (pg_database_size, {empty_mb:.1} MB before): {per_million:.1} MB per million instances"
        );
        println!("  (the plain-SQL baseline is SQLite's only)");
        report.row(
            "db_mb_per_million_instances",
            "1  database per million instances",
            per_million,
            "MB",
            None,
            clean,
        );
        return Ok(clean);
    }

    let raw_db = dir.join("raw-history.db");
    let raw_sizes = sizes.clone();
    let path = raw_db.clone();
    let (raw_took, raw_rows) = tokio::task::spawn_blocking(move || raw_history(&path, &raw_sizes))
        .await
        .map_err(join_error)??;
    let raw_rate = raw_rows as f64 / raw_took.as_secs_f64();
    println!(
        "  raw SQLite: the same {} rows into attr_history (the store's schema and pragmas, its columns, one prepared INSERT, one transaction per {}) in {:.1} s: {} instances/s",
        thousands(raw_rows as f64),
        thousands(sizes.per_call as f64),
        raw_took.as_secs_f64(),
        thousands(raw_rate)
    );
    let ratio = hub_rate / raw_rate;
    println!("  ratio hub / raw SQLite (same rows): {ratio:.3}");
    let per_million = (db_mb + wal_mb) / loaded.max(1) as f64 * 1e6;
    let raw_mb = file_mb(&raw_db) + file_mb(&wal_path(&raw_db));
    let raw_per_million = raw_mb / raw_rows.max(1) as f64 * 1e6;
    println!(
        "  size: the hub's database {db_mb:.0} MB + WAL {wal_mb:.0} MB after the load: {per_million:.1} MB per million instances (raw SQLite's file, history rows alone: {raw_mb:.0} MB, {raw_per_million:.1} MB per million)"
    );

    report.row(
        "load_hub_over_raw",
        "1  load, hub / raw SQLite",
        ratio,
        "",
        None,
        clean && raw_rows == total,
    );
    report.row(
        "db_mb_per_million_instances",
        "1  database + WAL per million instances",
        per_million,
        "MB",
        None,
        clean,
    );
    report.extra("raw_instances_per_s", raw_rate);
    report.extra("raw_seconds", raw_took.as_secs_f64());
    report.extra("raw_mb_per_million_instances", raw_per_million);
    counts.raw_rows = raw_rows;
    Ok(clean)
}

// ---------------------------------------------------------------- figure 2

fn temporal_url(server: &Server, id: Option<&str>, params: &[(&str, String)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let path = match id {
        Some(id) => format!("/ngsi-ld/v1/temporal/entities/{id}"),
        None => "/ngsi-ld/v1/temporal/entities".to_string(),
    };
    server.url(&format!("{path}?{}", query.join("&")))
}

/// Two numbers equal but for the rounding of a sum and its decimal round trip.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn millis_of(v: &Value) -> Option<i64> {
    parse_time(v.as_str()?).map(|t| t.timestamp_millis())
}

/// Checks an attribute of the aggregated representation: `method` holds one
/// [value, start, end] per period, the i-th from `from + i × period`, its value
/// `expected[i]`.
fn check_periods(
    attr: Option<&Value>,
    method: &str,
    from: i64,
    period: i64,
    expected: &[f64],
) -> Result<(), String> {
    let triples = attr
        .and_then(|a| a.get(method))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no {ATTR}.{method} array"))?;
    if triples.len() != expected.len() {
        return Err(format!(
            "{} periods, expected {}",
            triples.len(),
            expected.len()
        ));
    }
    for (i, (triple, want)) in triples.iter().zip(expected).enumerate() {
        let start = from + i as i64 * period;
        let bounds = (
            triple.get(1).and_then(millis_of),
            triple.get(2).and_then(millis_of),
        );
        if bounds != (Some(start), Some(start + period)) {
            return Err(format!(
                "period {i} is {triple}, expected from {} to {}",
                format_time(&at(start)),
                format_time(&at(start + period))
            ));
        }
        if !triple
            .get(0)
            .and_then(Value::as_f64)
            .is_some_and(|got| close(got, *want))
        {
            return Err(format!("period {i}: {triple}, expected {method} {want}"));
        }
    }
    Ok(())
}

/// The runs of one kind of query: latencies, wrong answers, errors.
struct Runs {
    started: Instant,
    latencies: Vec<Duration>,
    mismatches: usize,
    first_mismatch: Option<String>,
    errors: usize,
    first_error: Option<String>,
}

impl Runs {
    fn new() -> Runs {
        Runs {
            started: Instant::now(),
            latencies: Vec::new(),
            mismatches: 0,
            first_mismatch: None,
            errors: 0,
            first_error: None,
        }
    }

    /// Whether this kind has failed too often, or taken too long, to go on.
    fn exhausted(&self) -> bool {
        self.errors >= MAX_QUERY_ERRORS || self.started.elapsed() > QUERY_KIND_BUDGET
    }

    fn run_count(&self) -> usize {
        self.latencies.len() + self.errors
    }

    /// GET `url`, timed until the whole body is in; then (off the clock) the answer
    /// is checked.
    async fn get(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        check: impl FnOnce(&Value) -> Result<(), String>,
    ) {
        match server::timed_get(client, url, QUERY_TIMEOUT).await {
            Ok((took, body)) => {
                self.latencies.push(took);
                if let Err(e) = check(&body) {
                    self.mismatches += 1;
                    self.first_mismatch
                        .get_or_insert_with(|| format!("{e} (GET {url})"));
                }
            }
            Err(e) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{e:#} (GET {url})"));
            }
        }
    }

    fn print(&self, what: &str, planned: usize) {
        println!("  {what}");
        println!("      {}", ms(&percentiles(&self.latencies)));
        if self.run_count() < planned {
            println!(
                "      STOPPED: {} of {planned} queries run ({} errors; at most {} s for this kind)",
                self.run_count(),
                self.errors,
                QUERY_KIND_BUDGET.as_secs()
            );
        }
        match &self.first_mismatch {
            None => println!(
                "      check: all {} answers agree with the generated readings",
                self.latencies.len()
            ),
            Some(first) => println!(
                "      WRONG ANSWERS: {} of {}; first: {first}",
                self.mismatches,
                self.latencies.len()
            ),
        }
        if let Some(first) = &self.first_error {
            println!(
                "      ERRORS: {} (limit {} s each); first: {first}",
                self.errors,
                QUERY_TIMEOUT.as_secs()
            );
        }
    }
}

/// Query (a): the hourly average of sensor `i` over the window starting on `day`.
fn hourly_query(
    server: &Server,
    sizes: &TemporalSizes,
    i: usize,
    day: usize,
) -> (String, impl FnOnce(&Value) -> Result<(), String>) {
    let days = WINDOW_DAYS.min(sizes.days);
    let from = START_MS + day as i64 * DAY_MS;
    let to = from + days as i64 * DAY_MS;
    let url = temporal_url(
        server,
        Some(&sensor_id(i)),
        &[
            ("attrs", ATTR.into()),
            ("options", "aggregatedValues".into()),
            ("aggrMethods", "avg".into()),
            ("aggrPeriodDuration", "PT1H".into()),
            ("timerel", "between".into()),
            ("timeAt", format_time(&at(from))),
            ("endTimeAt", format_time(&at(to))),
        ],
    );
    let check = move |body: &Value| {
        if body.get("id").and_then(Value::as_str) != Some(sensor_id(i).as_str()) {
            return Err(format!("another entity: {:?}", body.get("id")));
        }
        let s = sensor(i);
        let per_hour = PER_DAY / 24;
        let first = day * PER_DAY;
        let expected: Vec<f64> = (0..days * 24)
            .map(|h| {
                let ks = first + h * per_hour..first + (h + 1) * per_hour;
                ks.map(|k| level(&s, i, k)).sum::<f64>() / per_hour as f64
            })
            .collect();
        check_periods(body.get(ATTR), "avg", from, HOUR_MS, &expected)
    };
    (url, check)
}

/// Each sensor's daily maxima over the whole period, from the generated readings.
fn daily_maxima(sizes: &TemporalSizes) -> Vec<Vec<f64>> {
    (0..sizes.sensors)
        .map(|i| {
            let s = sensor(i);
            (0..sizes.days)
                .map(|d| {
                    (d * PER_DAY..(d + 1) * PER_DAY)
                        .map(|k| level(&s, i, k))
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect()
        })
        .collect()
}

/// Query (b): the daily maximum of every sensor over the whole period.
fn daily_max_url(server: &Server, sizes: &TemporalSizes) -> String {
    temporal_url(
        server,
        None,
        &[
            ("type", TYPE.into()),
            ("attrs", ATTR.into()),
            ("limit", sizes.sensors.to_string()),
            ("options", "aggregatedValues".into()),
            ("aggrMethods", "max".into()),
            ("aggrPeriodDuration", "P1D".into()),
            ("timerel", "between".into()),
            ("timeAt", format_time(&at(START_MS))),
            ("endTimeAt", format_time(&at(time_ms(sizes.readings())))),
        ],
    )
}

fn check_daily_max(body: &Value, maxima: &[Vec<f64>]) -> Result<(), String> {
    let entities = body.as_array().ok_or("not an array of entities")?;
    if entities.len() != maxima.len() {
        return Err(format!(
            "{} entities, expected {}",
            entities.len(),
            maxima.len()
        ));
    }
    let mut seen = HashSet::new();
    for e in entities {
        let id = e.get("id").and_then(Value::as_str).unwrap_or_default();
        let i = sensor_index(id)
            .filter(|i| *i < maxima.len() && seen.insert(*i))
            .ok_or_else(|| format!("unexpected or repeated entity {id:?}"))?;
        check_periods(e.get(ATTR), "max", START_MS, DAY_MS, &maxima[i])
            .map_err(|m| format!("{id}: {m}"))?;
    }
    Ok(())
}

/// Query (c): the last `LAST_N` readings of sensor `i`, in the normalized
/// representation.
fn last_n_query(
    server: &Server,
    sizes: &TemporalSizes,
    i: usize,
) -> (String, impl FnOnce(&Value) -> Result<(), String>) {
    let url = temporal_url(
        server,
        Some(&sensor_id(i)),
        &[("attrs", ATTR.into()), ("lastN", LAST_N.to_string())],
    );
    let readings = sizes.readings();
    let check = move |body: &Value| {
        let instances = body
            .get(ATTR)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no {ATTR} array"))?;
        let n = LAST_N.min(readings);
        if instances.len() != n {
            return Err(format!("{} instances, expected {n}", instances.len()));
        }
        let s = sensor(i);
        for (inst, k) in instances.iter().zip(readings - n..readings) {
            let want = level(&s, i, k);
            let ok = inst.get("observedAt").and_then(millis_of) == Some(time_ms(k))
                && inst
                    .get("value")
                    .and_then(Value::as_f64)
                    .is_some_and(|v| close(v, want))
                && inst.get("unitCode").and_then(Value::as_str) == Some(UNIT);
            if !ok {
                return Err(format!(
                    "{inst}, expected {want} observed at {}",
                    format_time(&at(time_ms(k)))
                ));
            }
        }
        Ok(())
    };
    (url, check)
}

async fn queries(
    sizes: &TemporalSizes,
    server: &Server,
    loaded_ok: bool,
    report: &mut Report,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let window = WINDOW_DAYS.min(sizes.days);
    section(&format!(
        "2. Temporal queries over HTTP on {} instances (keep-alive, one at a time; each answer checked against the generated readings)",
        thousands(sizes.instances() as f64)
    ));
    println!("  for context: {ANCHORS}");
    let client = &server.client;
    let maxima = daily_maxima(sizes);
    let mut rng = Rng::from_seed(2025);
    let random_hourly = |rng: &mut Rng| {
        let i = rng.below(sizes.sensors);
        let day = rng.below(sizes.days - window + 1);
        hourly_query(server, sizes, i, day)
    };

    // Warm-up, untimed: the first queries open reader connections and fill caches.
    let mut warm = Runs::new();
    for _ in 0..WARM_UP {
        let (url, check) = random_hourly(&mut rng);
        warm.get(client, &url, check).await;
        warm.get(client, &daily_max_url(server, sizes), |b| {
            check_daily_max(b, &maxima)
        })
        .await;
        let (url, check) = last_n_query(server, sizes, rng.below(sizes.sensors));
        warm.get(client, &url, check).await;
    }
    if let Some(e) = warm.first_error.as_ref().or(warm.first_mismatch.as_ref()) {
        println!("  WARM-UP: {e}");
    }

    let started = Instant::now();
    let mut hourly = Runs::new();
    for _ in 0..sizes.queries {
        if hourly.exhausted() {
            break;
        }
        let (url, check) = random_hourly(&mut rng);
        hourly.get(client, &url, check).await;
    }
    hourly.print(
        &format!(
            "(a) hourly avg of one sensor over {window} days (aggregatedValues, aggrMethods=avg, aggrPeriodDuration=PT1H, timerel=between; {} periods; random sensors and windows):",
            window * 24
        ),
        sizes.queries,
    );

    let mut daily = Runs::new();
    let url = daily_max_url(server, sizes);
    for _ in 0..sizes.aggregate_queries {
        if daily.exhausted() {
            break;
        }
        daily
            .get(client, &url, |b| check_daily_max(b, &maxima))
            .await;
    }
    daily.print(
        &format!(
            "(b) daily max of all {} sensors over {} days (GET /temporal/entities?type={TYPE}&limit={}, aggrMethods=max, aggrPeriodDuration=P1D, timerel=between; {} periods each, {} instances read):",
            sizes.sensors,
            sizes.days,
            sizes.sensors,
            sizes.days,
            thousands(sizes.instances() as f64)
        ),
        sizes.aggregate_queries,
    );

    let mut last = Runs::new();
    for _ in 0..sizes.queries {
        if last.exhausted() {
            break;
        }
        let (url, check) = last_n_query(server, sizes, rng.below(sizes.sensors));
        last.get(client, &url, check).await;
    }
    last.print(
        &format!("(c) lastN={LAST_N} of one sensor (normalized instances; random sensors):"),
        sizes.queries,
    );
    println!("  queries took {:.1} s", started.elapsed().as_secs_f64());

    // Each kind: its name, its figures' keys (p50, p95, p99), its label, the p95
    // target in ms.
    let kinds: [(&str, [&'static str; 3], String, f64, &Runs); 3] = [
        (
            "hourly_avg",
            [
                "hourly_avg_p50_ms",
                "hourly_avg_p95_ms",
                "hourly_avg_p99_ms",
            ],
            format!("2a hourly avg, 1 sensor × {window} d"),
            20.0,
            &hourly,
        ),
        (
            "daily_max",
            ["daily_max_p50_ms", "daily_max_p95_ms", "daily_max_p99_ms"],
            format!("2b daily max, {} sensors × {} d", sizes.sensors, sizes.days),
            1_000.0,
            &daily,
        ),
        (
            "last_n",
            ["last_n_p50_ms", "last_n_p95_ms", "last_n_p99_ms"],
            format!("2c lastN={LAST_N}, 1 sensor"),
            5.0,
            &last,
        ),
    ];
    for (k, (name, keys, label, target, runs)) in kinds.into_iter().enumerate() {
        let p = percentiles(&runs.latencies);
        // A figure with an error or a wrong answer fails whatever its value.
        let clean =
            loaded_ok && runs.errors == 0 && runs.mismatches == 0 && !runs.latencies.is_empty();
        report.row(keys[0], format!("{label}, p50"), p.p50, "ms", None, clean);
        report.p95_row(keys[1], format!("{label}, p95"), &p, target, clean);
        report.row(keys[2], format!("{label}, p99"), p.p99, "ms", None, clean);
        report.extra(format!("{name}_errors"), runs.errors as f64);
        report.extra(format!("{name}_wrong_answers"), runs.mismatches as f64);
        counts.queries[k] = runs.run_count();
        counts.errors[k] = runs.errors;
        counts.mismatches[k] = runs.mismatches;
    }
    Ok(())
}

pub async fn run(sizes: &TemporalSizes, dir: &Path, backend: &Backend) -> anyhow::Result<Report> {
    Ok(measure(sizes, dir, backend).await?.0)
}

/// The run, and the counts that say whether it measured what it meant to.
async fn measure(
    sizes: &TemporalSizes,
    dir: &Path,
    backend: &Backend,
) -> anyhow::Result<(Report, Counts)> {
    let mut report = Report::default();
    let mut counts = Counts::default();
    let db = dir.join("hub-temporal.db");
    let server = Server::start_on(backend, &db).await?;
    server
        .wait_healthy(Duration::from_secs(10))
        .await
        .context("starting the hub")?;
    let loaded_ok = load(
        sizes,
        &server,
        dir,
        (&db, backend),
        &mut report,
        &mut counts,
    )
    .await?;
    queries(sizes, &server, loaded_ok, &mut report, &mut counts).await?;
    server.stop().await?;
    Ok((report, counts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_deterministic_and_plausible() {
        let s = sensor(7);
        assert_eq!(level(&s, 7, 1_000), level(&sensor(7), 7, 1_000));
        assert_ne!(level(&s, 7, 1_000), level(&s, 7, 1_001));
        for k in 0..PER_DAY * 365 {
            let v = level(&s, 7, k);
            assert!((-1.0..=5.0).contains(&v), "{k}: {v}");
            assert_eq!(v, (v * 1000.0).round() / 1000.0);
        }
        assert_eq!(sensor_index(&sensor_id(42)), Some(42));
        assert_eq!(format_time(&at(START_MS)), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn blocks_cover_every_reading_once() {
        let sizes = TemporalSizes {
            sensors: 3,
            days: 2,
            queries: 1,
            aggregate_queries: 1,
            per_call: 100,
            in_flight: 2,
        };
        let mut seen = vec![vec![0u8; sizes.readings()]; 3];
        for b in 0..sizes.blocks() {
            let (i, ks) = sizes.block(b);
            for k in ks {
                seen[i][k] += 1;
            }
        }
        assert!(seen.iter().flatten().all(|n| *n == 1));
    }

    /// Tiny sizes, a directory and a runtime for a whole run.
    fn tiny() -> (TemporalSizes, tempfile::TempDir, tokio::runtime::Runtime) {
        let sizes = TemporalSizes {
            sensors: 3,
            days: 2,
            queries: 4,
            aggregate_queries: 2,
            per_call: 100,
            in_flight: 2,
        };
        (sizes, tempfile::tempdir().unwrap(), crate::tests::runtime())
    }

    /// The same on PostgreSQL (a database created for the test, then dropped): every
    /// query answered as the readings say; the plain-SQL baseline is SQLite's only.
    #[test]
    fn tiny_benchmark_runs_on_postgres_and_counts_agree() {
        let server_url = crate::tests::postgres_server();
        let (sizes, dir, runtime) = tiny();
        let backend = Backend::postgres(&server_url);
        let measured = runtime.block_on(measure(&sizes, dir.path(), &backend));
        runtime.block_on(backend.drop_databases()).unwrap();
        let (report, c) = measured.unwrap();
        let total = 3 * 2 * PER_DAY as u64;
        assert_eq!(
            (c.loaded, c.instances_counted, c.raw_rows),
            (total, total, 0),
            "{c:?}"
        );
        assert_eq!(c.entities_counted, 3, "{c:?}");
        assert_eq!(c.queries, [4, 2, 4], "{c:?}");
        assert_eq!((c.errors, c.mismatches), ([0, 0, 0], [0, 0, 0]), "{c:?}");
        crate::tests::assert_positive(
            &report,
            &[
                "load_instances_per_s",
                "db_mb_per_million_instances",
                "daily_max_p95_ms",
            ],
        );
        assert!(report.value("load_hub_over_raw").is_none());
    }

    /// The benchmark's whole code path at tiny sizes: it runs, produces every figure,
    /// what it loaded is what the hub and the raw loop count, and every query is
    /// answered as the generated readings say. No timing is asserted.
    #[test]
    fn tiny_benchmark_runs_and_counts_agree() {
        let (sizes, dir, runtime) = tiny();
        let (report, c) = runtime
            .block_on(measure(&sizes, dir.path(), &Backend::Sqlite))
            .unwrap();
        let total = 3 * 2 * PER_DAY as u64;
        assert_eq!(c.loaded, total, "{c:?}");
        assert_eq!(c.instances_counted, total, "{c:?}");
        assert_eq!(c.raw_rows, total, "{c:?}");
        assert_eq!(c.entities_counted, 3, "{c:?}");
        assert_eq!(c.queries, [4, 2, 4], "{c:?}");
        assert_eq!(c.errors, [0, 0, 0], "{c:?}");
        assert_eq!(c.mismatches, [0, 0, 0], "{c:?}");
        crate::tests::assert_positive(
            &report,
            &[
                "load_instances_per_s",
                "load_hub_over_raw",
                "db_mb_per_million_instances",
                "hourly_avg_p95_ms",
                "daily_max_p95_ms",
                "last_n_p95_ms",
            ],
        );
        assert!(report.rows.iter().all(|r| r.clean), "{:?}", report.rows);
        report.print_summary("temporal");
    }
}
