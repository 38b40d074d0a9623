//! `dothi bench hub`, `dothi bench temporal` and `dothi bench notify`: measure the hub
//! on this machine and print each figure.
//!
//! The server and the load generator share this process: the hub is served on
//! 127.0.0.1:0 (`hub::serve` in a tokio task) over fresh SQLite files in a temporary
//! directory, removed afterwards. The figures of `bench hub` (`phases`):
//!
//! 1. batch upsert over HTTP (attribute writes/s), beside a plain SQLite loop writing
//!    the same documents;
//! 2. single-entity PATCH over HTTP with concurrent keep-alive clients (req/s, p50/p99);
//! 3. q and geo queries on a loaded query set (p50/p95/p99, results per query);
//! 4. a large store: memory after a query sweep, and restart-to-ready time.
//!
//! `bench temporal` (`temporal`) loads a year of sensor readings as attribute history,
//! beside a plain SQLite loop writing the same history rows, and times temporal
//! queries over HTTP on it.
//!
//! `bench notify` (`notify`) sends paced updates to entities watched by subscriptions
//! whose endpoint is a receiver in this process, kills and restarts the server (a
//! `dothi serve` child process) halfway, and counts and times the notifications.
//!
//! `bench ingest` (`ingest`) provisions devices in a `dothi serve` child process with
//! MQTT on, publishes a reading a second from each through the local Mosquitto, and
//! counts the measures stored in the history and samples the lag to queryable.

mod access;
mod alerts;
mod data;
mod ingest;
mod nodes;
mod notify;
mod open_data;
mod phases;
mod raw_postgres;
mod reports;
mod scorecard;
mod server;
mod temporal;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use data::thousands;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Which benchmark: hub (writes, queries, a large store), temporal (a year of
    /// sensor readings as history, and temporal queries on it) or notify
    /// (notifications of paced updates, across a server restart) or ingest (devices
    /// publishing over MQTT into the history) or nodes (one, then two `dothi serve`
    /// processes over one PostgreSQL database: needs --store) or reports (citizen reports:
    /// creation over Open311, map and statistics queries, photo processing) or opendata
    /// (the CSV download of a large dataset, and package_search over many datasets) or
    /// alerts (rules evaluated beside a write load, a staleness sweep, a backtest) or
    /// scorecard (recomputing every plan KPI on the demo data grown to --entities).
    #[arg(default_value = "hub")]
    pub which: String,
    /// A smoke run. hub: 5,000 batch entities, a 10,000-entity query set, 100 queries
    /// of each kind, 3 s of PATCH, and no large store (unless --large-entities is
    /// given). temporal: 10 sensors × 30 days, 50 queries of each kind.
    #[arg(long)]
    pub quick: bool,
    /// hub: entities in the query set of figure 3 [default: 100000; 10000 with --quick].
    #[arg(long)]
    pub entities: Option<usize>,
    /// hub: entities written by the batch upsert of figure 1 [default: 50000; 5000 with
    /// --quick].
    #[arg(long)]
    pub batch_entities: Option<usize>,
    /// hub: entities in the large store of figure 4; 0 skips it [default: 1000000; 0 with
    /// --quick].
    #[arg(long, visible_alias = "million")]
    pub large_entities: Option<usize>,
    /// hub: seconds of PATCH load in figure 2 [default: 10; 3 with --quick].
    #[arg(long)]
    pub patch_secs: Option<f64>,
    /// hub: concurrent PATCH clients in figure 2.
    #[arg(long, default_value_t = 16)]
    pub patch_clients: usize,
    /// hub: queries of each kind in figure 3 [default: 500; 100 with --quick].
    /// temporal: runs of queries (a) and (c), and a quarter as many of (b) [default:
    /// 200; 50 with --quick].
    #[arg(long)]
    pub queries: Option<usize>,
    /// temporal: sensors, each with one reading every 5 minutes [default: 100; 10
    /// with --quick].
    #[arg(long)]
    pub sensors: Option<usize>,
    /// temporal: days of readings from 2025-01-01 [default: 365; 30 with --quick].
    #[arg(long)]
    pub days: Option<usize>,
    /// notify: subscriptions, each watching one entity [default: 1000; 100 with
    /// --quick].
    #[arg(long)]
    pub subscriptions: Option<usize>,
    /// notify: updates per second, all clients together [default: 2000; 200 with
    /// --quick].
    #[arg(long)]
    pub rate: Option<f64>,
    /// notify: seconds of updates, with a server restart halfway [default: 60; 10
    /// with --quick]. ingest: seconds of publishing [default: 60; 10 with --quick].
    #[arg(long)]
    pub secs: Option<f64>,
    /// ingest: devices, each publishing a reading a second over MQTT [default: 10000;
    /// 500 with --quick].
    #[arg(long)]
    pub devices: Option<usize>,
    /// ingest: the port of the MQTT broker on 127.0.0.1 [default: 1883].
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// Directory in which to create the temporary data directory [default: the
    /// system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data directory (its SQLite files) instead of removing it, to look
    /// into afterwards.
    #[arg(long)]
    pub keep: bool,
    /// hub, temporal: a PostgreSQL server (postgres://user@host/db, with PostGIS):
    /// the run (hub: figures 1 to 3) is measured on SQLite, then again on databases
    /// created there for the run (and dropped after), and printed side by side.
    /// nodes: the server the nodes share (a database is created there for the run).
    #[arg(long)]
    pub store: Option<String>,
}

/// How big each part of the run is.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub batch_entities: usize,
    /// Entities per batch request.
    pub batch_size: usize,
    /// Concurrent clients sending batches.
    pub batch_clients: usize,
    pub patch_secs: f64,
    pub patch_clients: usize,
    pub query_entities: usize,
    pub queries: usize,
    pub large_entities: usize,
    /// Queries in the sweep before memory is read (figure 4).
    pub sweep_queries: usize,
    /// The `dothi` executable that serves the restarted store of figure 4.
    pub server_exe: PathBuf,
}

impl Sizes {
    fn from_args(a: &BenchArgs) -> anyhow::Result<Sizes> {
        let q = a.quick;
        let s = Sizes {
            batch_entities: a.batch_entities.unwrap_or(if q { 5_000 } else { 50_000 }),
            batch_size: 1_000,
            batch_clients: 2,
            patch_secs: a.patch_secs.unwrap_or(if q { 3.0 } else { 10.0 }),
            patch_clients: a.patch_clients,
            query_entities: a.entities.unwrap_or(if q { 10_000 } else { 100_000 }),
            queries: a.queries.unwrap_or(if q { 100 } else { 500 }),
            large_entities: a.large_entities.unwrap_or(if q { 0 } else { 1_000_000 }),
            sweep_queries: 200,
            server_exe: std::env::current_exe().context("finding this executable")?,
        };
        if s.batch_entities == 0 || s.query_entities == 0 || s.queries == 0 {
            bail!("--batch-entities, --entities and --queries must be at least 1");
        }
        if s.patch_clients == 0 || !(s.patch_secs > 0.0 && s.patch_secs <= 3600.0) {
            bail!("--patch-clients must be at least 1 and --patch-secs in (0, 3600]");
        }
        Ok(s)
    }
}

/// What a figure is held to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(t) => v >= t,
            Target::AtMost(t) => v <= t,
            Target::Below(t) => v < t,
        }
    }

    fn describe(self, unit: &str) -> String {
        let (sym, t) = match self {
            Target::AtLeast(t) => ("≥", t),
            Target::AtMost(t) => ("≤", t),
            Target::Below(t) => ("<", t),
        };
        format!("{sym} {} {unit}", number(t))
    }

    fn machine(self) -> String {
        match self {
            Target::AtLeast(t) => format!("min={t}"),
            Target::AtMost(t) => format!("max={t}"),
            Target::Below(t) => format!("below={t}"),
        }
    }
}

/// One line of the summary.
#[derive(Debug, Clone)]
pub struct Row {
    /// The machine-readable name.
    pub key: &'static str,
    pub label: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    /// False when the measurement saw errors: then it fails whatever the value.
    pub clean: bool,
}

impl Row {
    pub fn pass(&self) -> Option<bool> {
        self.target.map(|t| self.clean && t.met(self.value))
    }
}

/// Consistency counts, which the smoke test checks.
#[derive(Debug, Default, Clone)]
pub struct Checks {
    pub batch_written: u64,
    pub batch_counted: u64,
    pub raw_rows: u64,
    pub patch_ok: u64,
    pub patch_errors: u64,
    pub query_loaded: u64,
    pub query_counted: u64,
    pub q_queries: usize,
    pub q_returned: u64,
    pub q_mismatches: usize,
    pub q_errors: usize,
    pub geo_queries: usize,
    pub geo_returned: u64,
    pub geo_mismatches: usize,
    pub geo_errors: usize,
    pub large_loaded: u64,
    pub large_counted: u64,
    pub large_counted_after_restart: u64,
    pub sweep_queries: usize,
    pub sweep_errors: usize,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Further machine-readable values (no target).
    pub extra: Vec<(String, f64)>,
    pub checks: Checks,
}

impl Report {
    pub fn row(
        &mut self,
        key: &'static str,
        label: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Option<Target>,
        clean: bool,
    ) {
        self.rows.push(Row {
            key,
            label: label.into(),
            value,
            unit,
            target,
            clean,
        });
    }

    pub fn extra(&mut self, key: impl Into<String>, value: f64) {
        self.extra.push((key.into(), value));
    }

    #[cfg(test)]
    pub fn value(&self, key: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.key == key).map(|r| r.value)
    }

    /// Prints the summary table, then each figure as `bench {name} key=value`.
    fn print_summary(&self, name: &str) {
        println!();
        println!("== Summary ==");
        println!(
            "{:<46} {:>16}  {:>16}  result",
            "figure", "measured", "target"
        );
        for r in &self.rows {
            let measured = format!("{} {}", number(r.value), r.unit);
            let target = r
                .target
                .map_or_else(|| "-".to_string(), |t| t.describe(r.unit));
            let result = match r.pass() {
                Some(true) => "PASS",
                Some(false) if !r.clean => "FAIL (errors)",
                Some(false) => "FAIL",
                None => "-",
            };
            println!("{:<46} {:>16}  {:>16}  {result}", r.label, measured, target);
        }
        let judged: Vec<bool> = self.rows.iter().filter_map(Row::pass).collect();
        println!(
            "{} of {} targets met.",
            judged.iter().filter(|p| **p).count(),
            judged.len()
        );
        println!();
        for r in &self.rows {
            let mut line = format!("bench {name} {}={}", r.key, machine_number(r.value));
            if let Some(t) = r.target {
                line.push_str(&format!(" {} pass={}", t.machine(), r.pass() == Some(true)));
            }
            println!("{line}");
        }
        for (k, v) in &self.extra {
            println!("bench {name} {k}={}", machine_number(*v));
        }
    }
}

/// A figure for people: thousands separated when large, two decimals when small.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        thousands(v)
    } else {
        format!("{v:.2}")
    }
}

fn machine_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// The latency of a 4 KiB write followed by fsync in `dir` (p50, p95, in ms): the
/// floor under every durable commit, and what varies most between machines.
fn fsync_latency(dir: &std::path::Path) -> std::io::Result<(f64, f64)> {
    use std::io::Write as _;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = std::time::Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    let p = data::percentiles(&times);
    Ok((p.p50, p.p95))
}

/// `bench hub` or `bench temporal` with `--store postgres://…`: the run on SQLite, then
/// on PostgreSQL, each printed in full, then side by side; the report is SQLite's
/// with PostgreSQL's figures as extra values (`postgres_<key>`).
async fn side_by_side(
    url: &str,
    run: impl AsyncFn(&server::Backend) -> anyhow::Result<Report>,
) -> anyhow::Result<Report> {
    println!();
    println!("######## SQLite ########");
    let mut sqlite = run(&server::Backend::Sqlite).await?;
    println!();
    let backend = server::Backend::postgres(url);
    println!(
        "######## {} ({}) ########",
        backend.name(),
        without_password(url)
    );
    let postgres = run(&backend).await;
    let dropped = backend.drop_databases().await;
    let postgres = postgres?;
    dropped?;
    println!();
    println!("== SQLite and PostgreSQL side by side ==");
    println!("{:<46} {:>16}  {:>16}", "figure", "SQLite", "PostgreSQL");
    for r in &sqlite.rows {
        let Some(p) = postgres.rows.iter().find(|p| p.key == r.key) else {
            continue;
        };
        println!(
            "{:<46} {:>16}  {:>16}",
            r.label,
            format!("{} {}", number(r.value), r.unit),
            format!("{} {}", number(p.value), p.unit)
        );
    }
    for p in &postgres.rows {
        sqlite.extra(format!("postgres_{}", p.key), p.value);
    }
    Ok(sqlite)
}

/// A database URL as it may be printed.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if url[scheme + 3..at].contains(':') => {
            let user_end = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A benchmark, with its sizes checked.
enum Benchmark {
    Hub(Sizes),
    Temporal(temporal::TemporalSizes),
    Notify(notify::NotifySizes),
    Ingest(ingest::IngestSizes),
    Nodes(nodes::NodesSizes),
    Reports(reports::ReportsSizes),
    Opendata(open_data::OpendataSizes),
    Alerts(alerts::AlertsSizes),
    Scorecard(scorecard::ScorecardSizes),
}

impl Benchmark {
    fn from_args(a: &BenchArgs) -> anyhow::Result<Benchmark> {
        if let Some(url) = &a.store
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("--store {url:?} must be postgres://user@host/db (SQLite is always measured)");
        }
        match a.which.as_str() {
            "hub" => {
                if a.sensors.is_some() || a.days.is_some() {
                    bail!("--sensors and --days are sizes of `bench temporal`, not of `bench hub`");
                }
                Ok(Benchmark::Hub(Sizes::from_args(a)?))
            }
            "nodes" => Ok(Benchmark::Nodes(nodes::NodesSizes::from_args(a)?)),
            "temporal" => Ok(Benchmark::Temporal(temporal::TemporalSizes::from_args(a)?)),
            _ if a.store.is_some() => {
                bail!(
                    "--store is an option of `bench hub`, `bench temporal` and `bench nodes` only"
                )
            }
            "notify" => Ok(Benchmark::Notify(notify::NotifySizes::from_args(a)?)),
            "ingest" => Ok(Benchmark::Ingest(ingest::IngestSizes::from_args(a)?)),
            "reports" => Ok(Benchmark::Reports(reports::ReportsSizes::from_args(a)?)),
            "opendata" => Ok(Benchmark::Opendata(open_data::OpendataSizes::from_args(a)?)),
            "alerts" => Ok(Benchmark::Alerts(alerts::AlertsSizes::from_args(a)?)),
            "scorecard" => Ok(Benchmark::Scorecard(scorecard::ScorecardSizes::from_args(
                a,
            )?)),
            other => {
                bail!(
                    "unknown benchmark {other:?}: the ones available are `hub`, `temporal`, `notify`, `ingest`, `nodes`, `reports`, `opendata`, `alerts` and `scorecard`"
                )
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Benchmark::Hub(_) => "hub",
            Benchmark::Temporal(_) => "temporal",
            Benchmark::Notify(_) => "notify",
            Benchmark::Ingest(_) => "ingest",
            Benchmark::Nodes(_) => "nodes",
            Benchmark::Reports(_) => "reports",
            Benchmark::Opendata(_) => "opendata",
            Benchmark::Alerts(_) => "alerts",
            Benchmark::Scorecard(_) => "scorecard",
        }
    }

    fn describe(&self) -> String {
        match self {
            Benchmark::Hub(sizes) => format!(
                "batch {} entities, PATCH {} clients × {} s, query set {} entities × {} queries of each kind, large store {}",
                thousands(sizes.batch_entities as f64),
                sizes.patch_clients,
                sizes.patch_secs,
                thousands(sizes.query_entities as f64),
                sizes.queries,
                if sizes.large_entities == 0 {
                    "skipped".to_string()
                } else {
                    format!("{} entities", thousands(sizes.large_entities as f64))
                }
            ),
            Benchmark::Temporal(sizes) => sizes.describe(),
            Benchmark::Notify(sizes) => sizes.describe(),
            Benchmark::Ingest(sizes) => sizes.describe(),
            Benchmark::Nodes(sizes) => sizes.describe(),
            Benchmark::Reports(sizes) => sizes.describe(),
            Benchmark::Opendata(sizes) => sizes.describe(),
            Benchmark::Alerts(sizes) => sizes.describe(),
            Benchmark::Scorecard(sizes) => sizes.describe(),
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let benchmark = Benchmark::from_args(&args)?;
    let name = benchmark.name();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DOTHI_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("dothi-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("dothi bench {name}");
    let placement = match benchmark {
        Benchmark::Nodes(_) => "nodes are `dothi serve` processes, the load generator this one",
        _ => "server and load generator in this process",
    };
    println!(
        "  {cores} cores; {placement}; data in {}",
        dir.path().display()
    );
    println!("  sizes: {}", benchmark.describe());
    match fsync_latency(dir.path()) {
        Ok((p50, p95)) => println!(
            "  disk: a 4 KiB write + fsync in the data directory takes {p50:.2} ms (p50), {p95:.2} ms (p95); every acknowledged write waits for one"
        ),
        Err(e) => println!("  disk: fsync latency not measured ({e})"),
    }
    if cfg!(debug_assertions) {
        println!("  WARNING: a debug build; figures mean little (use --release)");
    }
    let started = std::time::Instant::now();
    let result = match &benchmark {
        Benchmark::Hub(sizes) => match &args.store {
            None => phases::run(sizes, dir.path(), &server::Backend::Sqlite).await,
            Some(url) => side_by_side(url, async |b| phases::run(sizes, dir.path(), b).await).await,
        },
        Benchmark::Temporal(sizes) => match &args.store {
            None => temporal::run(sizes, dir.path(), &server::Backend::Sqlite).await,
            Some(url) => {
                side_by_side(url, async |b| temporal::run(sizes, dir.path(), b).await).await
            }
        },
        Benchmark::Notify(sizes) => notify::run(sizes, dir.path()).await,
        Benchmark::Ingest(sizes) => ingest::run(sizes, dir.path()).await,
        Benchmark::Nodes(sizes) => nodes::run(sizes, dir.path()).await,
        Benchmark::Reports(sizes) => reports::run(sizes, dir.path()).await,
        Benchmark::Opendata(sizes) => open_data::run(sizes, dir.path()).await,
        Benchmark::Alerts(sizes) => alerts::run(sizes, dir.path()).await,
        Benchmark::Scorecard(sizes) => scorecard::run(sizes, dir.path()).await,
    };
    let path = dir.path().to_path_buf();
    let cleanup = if args.keep {
        let _ = dir.keep();
        Err(std::io::Error::other("--keep"))
    } else {
        dir.close()
    };
    let report = result?;
    report.print_summary(name);
    println!(
        "bench {name} total_seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
    match cleanup {
        Ok(()) => println!("(removed {})", path.display()),
        Err(_) if args.keep => println!("(kept {})", path.display()),
        Err(e) => eprintln!("dothi: could not remove {}: {e}", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny_sizes() -> Sizes {
        Sizes {
            batch_entities: 1_000,
            batch_size: 500,
            batch_clients: 2,
            patch_secs: 0.3,
            patch_clients: 4,
            query_entities: 1_000,
            queries: 5,
            large_entities: 1_000,
            sweep_queries: 8,
            // The test runs from target/<profile>/deps; `cargo test` builds the
            // binary itself beside it, for the integration tests.
            server_exe: std::env::current_exe()
                .unwrap()
                .parent()
                .and_then(|deps| deps.parent())
                .unwrap()
                .join("dothi"),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The benchmark's whole code path at tiny sizes: it runs, produces every figure,
    /// and what it loaded is what the hub counts. No timing is asserted.
    #[test]
    fn tiny_benchmark_runs_and_counts_agree() {
        let sizes = tiny_sizes();
        let dir = tempfile::tempdir().unwrap();
        let report = runtime()
            .block_on(phases::run(&sizes, dir.path(), &server::Backend::Sqlite))
            .unwrap();
        let c = &report.checks;
        assert_eq!(c.batch_written, 1_000);
        assert_eq!(c.batch_counted, 1_000);
        assert_eq!(c.raw_rows, 1_000);
        assert!(c.patch_ok > 0, "{c:?}");
        assert_eq!(c.patch_errors, 0);
        assert_eq!(c.query_loaded, 1_000);
        assert_eq!(c.query_counted, 1_000);
        assert_eq!((c.q_queries, c.geo_queries), (5, 5));
        assert!(c.q_returned > 0, "{c:?}");
        assert_eq!(c.q_mismatches, 0, "{c:?}");
        assert_eq!(
            (c.q_errors, c.geo_errors, c.sweep_errors),
            (0, 0, 0),
            "{c:?}"
        );
        assert_eq!(c.large_loaded, 1_000);
        assert_eq!(c.large_counted, 1_000);
        assert_eq!(c.large_counted_after_restart, 1_000);
        assert_eq!(c.sweep_queries, 8);
        for key in [
            "batch_upsert_attr_writes_per_s",
            "batch_upsert_hub_over_raw",
            "patch_req_per_s",
            "query_q_p95_ms",
            "query_geo_p95_ms",
            "large_rss_mb",
            "large_restart_to_ready_s",
        ] {
            let v = report.value(key);
            assert!(v.is_some_and(|v| v.is_finite() && v >= 0.0), "{key}: {v:?}");
        }
        assert!(report.value("batch_upsert_attr_writes_per_s").unwrap() > 0.0);
        assert!(report.value("patch_req_per_s").unwrap() > 0.0);
        report.print_summary("hub");
    }

    /// The same path on PostgreSQL (`DOTHI_TEST_DATABASE_URL`, else the local
    /// server): figures 1 to 3 run, count what they loaded, and drop their databases.
    #[test]
    fn tiny_benchmark_runs_on_postgres_and_counts_agree() {
        let server_url = std::env::var("DOTHI_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let sizes = tiny_sizes();
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime();
        let backend = server::Backend::postgres(&server_url);
        let report = runtime.block_on(phases::run(&sizes, dir.path(), &backend));
        runtime.block_on(backend.drop_databases()).unwrap();
        let report = report.unwrap();
        let c = &report.checks;
        assert_eq!((c.batch_written, c.batch_counted), (1_000, 1_000));
        assert!(c.patch_ok > 0, "{c:?}");
        assert_eq!(c.patch_errors, 0);
        assert_eq!((c.query_loaded, c.query_counted), (1_000, 1_000));
        assert!(c.q_returned > 0, "{c:?}");
        assert_eq!((c.q_mismatches, c.geo_mismatches), (0, 0), "{c:?}");
        assert_eq!((c.q_errors, c.geo_errors), (0, 0), "{c:?}");
        // The large store is SQLite's figure only.
        assert_eq!(c.large_loaded, 0);
        for key in [
            "batch_upsert_attr_writes_per_s",
            "patch_req_per_s",
            "query_q_p95_ms",
            "query_geo_p95_ms",
        ] {
            let v = report.value(key);
            assert!(v.is_some_and(|v| v.is_finite() && v > 0.0), "{key}: {v:?}");
        }
        // Figure 1's baseline wrote the same entities by plain SQL.
        assert_eq!(c.raw_rows, 1_000, "{c:?}");
        let ratio = report.value("batch_upsert_hub_over_raw");
        assert!(ratio.is_some_and(|v| v.is_finite() && v > 0.0), "{ratio:?}");
    }
}
