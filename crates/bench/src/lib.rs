//! The benchmarks of dothi: each loads the hub (or one of its services) on this
//! machine and prints every figure beside its target. The `dothi` binary runs them as
//! `dothi bench <name>` ([`BenchArgs`], [`run`]) when it is built with its `bench`
//! feature (the default). This crate uses the library crates only, never the binary:
//! the benchmarks that need a `dothi serve` child process run the executable they are
//! part of (`std::env::current_exe`).
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
//!
//! The other benchmarks (`nodes`, `reports`, `opendata`, `alerts`, `scorecard`) say
//! what they measure in their modules.

mod access;
mod alerts;
mod data;
pub mod ingest;
mod nodes;
pub mod notify;
mod open_data;
pub mod phases;
mod raw_postgres;
mod reports;
mod scorecard;
pub mod server;
pub mod soak;
mod temporal;

use std::ops::RangeBounds;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::builder::RangedU64ValueParser;
use clap::{Args, Subcommand};

use data::thousands;

pub use alerts::AlertsArgs;
pub use ingest::IngestArgs;
pub use nodes::NodesArgs;
pub use notify::NotifyArgs;
pub use open_data::OpendataArgs;
pub use reports::ReportsArgs;
pub use scorecard::ScorecardArgs;
pub use soak::SoakArgs;
pub use temporal::TemporalArgs;

/// `dothi bench <name>`: which benchmark, and its sizes.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Which,
}

/// The benchmarks. Each takes only its own sizes; `--quick`, `--dir` and `--keep` are
/// common to all.
#[derive(Subcommand, Clone, Debug)]
pub enum Which {
    /// The hub: batch upsert, PATCH, q and geo queries, access control, and a large
    /// store (memory and restart).
    Hub(HubArgs),
    /// A year of sensor readings loaded as history, and temporal queries on it.
    Temporal(TemporalArgs),
    /// Notifications of paced updates, across a server restart.
    Notify(NotifyArgs),
    /// Devices publishing over MQTT into the history (needs a broker).
    Ingest(IngestArgs),
    /// One, then two `dothi serve` processes over one PostgreSQL database (needs
    /// --store).
    Nodes(NodesArgs),
    /// Citizen reports: creation over Open311, map and statistics queries, photo
    /// processing.
    Reports(ReportsArgs),
    /// The open data portal: the CSV download of a large dataset, and package_search
    /// over many datasets.
    Opendata(OpendataArgs),
    /// Alert rules evaluated beside a write load, a staleness sweep, a backtest.
    Alerts(AlertsArgs),
    /// Recomputing every plan KPI on the demo data grown to --entities.
    Scorecard(ScorecardArgs),
    /// A `dothi serve` process under updates, notifications, queries and the live
    /// stream for a long time, its memory sampled all along.
    Soak(SoakArgs),
}

/// The flags every benchmark takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// A smoke run: smaller default sizes (each size says its own).
    #[arg(long)]
    pub quick: bool,
    /// Directory in which to create the temporary data directory [default: the
    /// system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data directory (its SQLite files) instead of removing it, to look
    /// into afterwards.
    #[arg(long)]
    pub keep: bool,
}

impl Common {
    /// A size given by its flag, else its default for this run ([`Common::default_size`]).
    pub fn size<T>(&self, given: Option<T>, quick: T, full: T) -> T {
        given.unwrap_or(self.default_size(quick, full))
    }

    /// A size's default: `quick` for a smoke run (`--quick`), `full` otherwise.
    pub fn default_size<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// `dothi bench hub`.
#[derive(Args, Clone, Debug)]
pub struct HubArgs {
    /// Entities in the query set of figure 3 [default: 100000; 10000 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub entities: Option<usize>,
    /// Entities written by the batch upsert of figure 1 [default: 50000; 5000 with
    /// --quick].
    #[arg(long, value_parser = count(1..))]
    pub batch_entities: Option<usize>,
    /// Entities in the large store of figure 4; 0 skips it [default: 1000000; 0 with
    /// --quick].
    #[arg(long, visible_alias = "million")]
    pub large_entities: Option<usize>,
    /// Seconds of PATCH load in figure 2, in (0, 3600] [default: 10; 3 with --quick].
    #[arg(long, value_parser = secs_up_to_an_hour)]
    pub patch_secs: Option<f64>,
    /// Concurrent PATCH clients in figure 2.
    #[arg(long, default_value_t = 16, value_parser = count(1..))]
    pub patch_clients: usize,
    /// Queries of each kind in figure 3 [default: 500; 100 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub queries: Option<usize>,
    #[command(flatten)]
    pub postgres: AlsoOnPostgres,
    #[command(flatten)]
    pub common: Common,
}

/// `--store` of the benchmarks that compare the two stores.
#[derive(Args, Clone, Debug)]
pub struct AlsoOnPostgres {
    /// A PostgreSQL server (postgres://user@host/db, with PostGIS): the run (figures 1
    /// to 3 of `hub`) is measured on SQLite, then again on databases created there for
    /// the run (and dropped after), and printed side by side.
    #[arg(long, value_parser = postgres_url)]
    pub store: Option<String>,
}

/// A count within `range`, for clap.
pub(crate) fn count(range: impl RangeBounds<u64>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(range)
}

/// A finite number in `lo..=hi`, or `(lo, hi]` when `lo` is excluded.
fn float_within(s: &str, lo: f64, lo_included: bool, hi: f64) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    let above = if lo_included { v >= lo } else { v > lo };
    if v.is_finite() && above && v <= hi {
        Ok(v)
    } else {
        let open = if lo_included { '[' } else { '(' };
        Err(format!("must be in {open}{lo}, {hi}]"))
    }
}

/// A duration in seconds in (0, 3600].
pub(crate) fn secs_up_to_an_hour(s: &str) -> Result<f64, String> {
    float_within(s, 0.0, false, 3_600.0)
}

/// A rate: a positive finite number.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    float_within(s, 0.0, false, f64::MAX)
}

/// A rate in (0, 100000].
pub(crate) fn rate_up_to_100k(s: &str) -> Result<f64, String> {
    float_within(s, 0.0, false, 100_000.0)
}

/// A duration in seconds in [1, 3600].
pub(crate) fn secs_one_to_an_hour(s: &str) -> Result<f64, String> {
    float_within(s, 1.0, true, 3_600.0)
}

/// The URL of a PostgreSQL server.
pub(crate) fn postgres_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_string())
    } else {
        Err("must be postgres://user@host/db (SQLite is always measured)".into())
    }
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
    /// Every figure at the smallest sizes that still measure something: the runs of
    /// the tests, here and in the `dothi` crate (which has the executable at hand).
    pub fn tiny(server_exe: PathBuf) -> Sizes {
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
            server_exe,
        }
    }
}

impl HubArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> anyhow::Result<Sizes> {
        Ok(Sizes {
            batch_entities: self.common.size(self.batch_entities, 5_000, 50_000),
            batch_size: 1_000,
            batch_clients: 2,
            patch_secs: self.common.size(self.patch_secs, 3.0, 10.0),
            patch_clients: self.patch_clients,
            query_entities: self.common.size(self.entities, 10_000, 100_000),
            queries: self.common.size(self.queries, 100, 500),
            large_entities: self.common.size(self.large_entities, 0, 1_000_000),
            sweep_queries: 200,
            server_exe: std::env::current_exe().context("finding this executable")?,
        })
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

    /// A figure's p95 latency, whose target is at most `max_ms`.
    pub fn p95_row(
        &mut self,
        key: &'static str,
        label: impl Into<String>,
        p: &data::Pcts,
        max_ms: f64,
        clean: bool,
    ) {
        let target = Some(Target::AtMost(max_ms));
        self.row(key, label, p.p95, "ms", target, clean);
    }

    pub fn extra(&mut self, key: impl Into<String>, value: f64) {
        self.extra.push((key.into(), value));
    }

    /// The value of the figure `key`, if measured.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.key == key).map(|r| r.value)
    }

    /// Prints the summary table, then each figure as `bench {name} key=value`.
    pub fn print_summary(&self, name: &str) {
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

/// A benchmark, with its sizes.
enum Benchmark {
    /// The sizes, and the PostgreSQL server to measure beside SQLite.
    Hub(Sizes, Option<String>),
    Temporal(temporal::TemporalSizes, Option<String>),
    Notify(notify::NotifySizes),
    Ingest(ingest::IngestSizes),
    Nodes(nodes::NodesSizes),
    Reports(reports::ReportsSizes),
    Opendata(open_data::OpendataSizes),
    Alerts(alerts::AlertsSizes),
    Scorecard(scorecard::ScorecardSizes),
    Soak(soak::SoakSizes),
}

impl Which {
    /// The flags every benchmark takes.
    pub fn common(&self) -> &Common {
        match self {
            Which::Hub(a) => &a.common,
            Which::Temporal(a) => &a.common,
            Which::Notify(a) => &a.common,
            Which::Ingest(a) => &a.common,
            Which::Nodes(a) => &a.common,
            Which::Reports(a) => &a.common,
            Which::Opendata(a) => &a.common,
            Which::Alerts(a) => &a.common,
            Which::Scorecard(a) => &a.common,
            Which::Soak(a) => &a.common,
        }
    }

    /// The benchmark's name, as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Which::Hub(_) => "hub",
            Which::Temporal(_) => "temporal",
            Which::Notify(_) => "notify",
            Which::Ingest(_) => "ingest",
            Which::Nodes(_) => "nodes",
            Which::Reports(_) => "reports",
            Which::Opendata(_) => "opendata",
            Which::Alerts(_) => "alerts",
            Which::Scorecard(_) => "scorecard",
            Which::Soak(_) => "soak",
        }
    }

    fn benchmark(&self) -> anyhow::Result<Benchmark> {
        Ok(match self {
            Which::Hub(a) => Benchmark::Hub(a.sizes()?, a.postgres.store.clone()),
            Which::Temporal(a) => Benchmark::Temporal(a.sizes(), a.postgres.store.clone()),
            Which::Notify(a) => Benchmark::Notify(a.sizes()?),
            Which::Ingest(a) => Benchmark::Ingest(a.sizes()?),
            Which::Nodes(a) => Benchmark::Nodes(a.sizes()),
            Which::Reports(a) => Benchmark::Reports(a.sizes()),
            Which::Opendata(a) => Benchmark::Opendata(a.sizes()),
            Which::Alerts(a) => Benchmark::Alerts(a.sizes()),
            Which::Scorecard(a) => Benchmark::Scorecard(a.sizes()),
            Which::Soak(a) => Benchmark::Soak(a.sizes()?),
        })
    }
}

impl Benchmark {
    fn describe(&self) -> String {
        match self {
            Benchmark::Hub(sizes, _) => format!(
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
            Benchmark::Temporal(sizes, _) => sizes.describe(),
            Benchmark::Notify(sizes) => sizes.describe(),
            Benchmark::Ingest(sizes) => sizes.describe(),
            Benchmark::Nodes(sizes) => sizes.describe(),
            Benchmark::Reports(sizes) => sizes.describe(),
            Benchmark::Opendata(sizes) => sizes.describe(),
            Benchmark::Alerts(sizes) => sizes.describe(),
            Benchmark::Scorecard(sizes) => sizes.describe(),
            Benchmark::Soak(sizes) => sizes.describe(),
        }
    }
}

/// Runs the benchmark `args` names in a fresh temporary directory, prints each
/// figure, then the summary. Logging is the caller's to set up.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let benchmark = args.which.benchmark()?;
    let name = args.which.name();
    let common = args.which.common();
    let parent = common.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("dothi-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("dothi bench {name}");
    let placement = match benchmark {
        Benchmark::Nodes(_) | Benchmark::Soak(_) => {
            "the server is a `dothi serve` process, the load generator this one"
        }
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
        Benchmark::Hub(sizes, store) => match store {
            None => phases::run(sizes, dir.path(), &server::Backend::Sqlite).await,
            Some(url) => side_by_side(url, async |b| phases::run(sizes, dir.path(), b).await).await,
        },
        Benchmark::Temporal(sizes, store) => match store {
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
        Benchmark::Soak(sizes) => soak::run(sizes, dir.path()).await,
    };
    let path = dir.path().to_path_buf();
    let cleanup = if common.keep {
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
        Err(_) if common.keep => println!("(kept {})", path.display()),
        Err(e) => eprintln!("dothi: could not remove {}: {e}", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Figures 1 to 3 and 5 at tiny sizes. Figure 4 (a large store, restarted by the
    /// `dothi` executable) is SQLite's only and is not run on PostgreSQL; the SQLite
    /// run, which includes it, is a test of the `dothi` crate
    /// (`crates/dothi/tests/bench.rs`), where the executable is at hand.
    fn tiny_sizes() -> Sizes {
        Sizes::tiny(PathBuf::from("dothi"))
    }

    /// `dothi bench …` as the binary parses it.
    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<Which, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map(|c| c.bench.which)
    }

    /// Each of `keys` is a figure of `report`, finite and above 0.
    pub(crate) fn assert_positive(report: &Report, keys: &[&str]) {
        for key in keys {
            let v = report.value(key);
            assert!(v.is_some_and(|v| v.is_finite() && v > 0.0), "{key}: {v:?}");
        }
    }

    fn error_kind(args: &[&str]) -> clap::error::ErrorKind {
        parse(args).unwrap_err().kind()
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_benchmark_is_a_subcommand_with_its_name() {
        for name in [
            "hub",
            "temporal",
            "notify",
            "ingest",
            "reports",
            "opendata",
            "alerts",
            "scorecard",
            "soak",
        ] {
            let which = parse(&[name]).unwrap();
            assert_eq!(which.name(), name);
            assert!(!which.common().quick && !which.common().keep);
        }
        let nodes = parse(&["nodes", "--store", "postgres://u@h/db"]).unwrap();
        assert_eq!(nodes.name(), "nodes");
        assert_eq!(
            error_kind(&["bogus"]),
            clap::error::ErrorKind::InvalidSubcommand
        );
    }

    /// The flags of a `hub` command line.
    fn hub_args(args: &[&str]) -> HubArgs {
        let Which::Hub(a) = parse(args).unwrap() else {
            panic!("not hub")
        };
        a
    }

    #[test]
    fn hub_sizes_default_as_documented() {
        let entities = |s: &Sizes| {
            (
                s.batch_entities,
                s.query_entities,
                s.queries,
                s.large_entities,
            )
        };
        let a = hub_args(&["hub"]);
        let s = a.sizes().unwrap();
        assert_eq!(entities(&s), (50_000, 100_000, 500, 1_000_000));
        assert_eq!((s.patch_secs, s.patch_clients), (10.0, 16));
        assert_eq!(a.postgres.store, None);
        let s = hub_args(&["hub", "--quick"]).sizes().unwrap();
        assert_eq!(entities(&s), (5_000, 10_000, 100, 0));
        assert_eq!(s.patch_secs, 3.0);
        let a = hub_args(&[
            "hub",
            "--quick",
            "--million",
            "7",
            "--patch-secs",
            "0.5",
            "--store",
            "postgresql://u@h/db",
        ]);
        let s = a.sizes().unwrap();
        assert_eq!((s.large_entities, s.patch_secs), (7, 0.5));
        assert_eq!(a.postgres.store.as_deref(), Some("postgresql://u@h/db"));
    }

    #[test]
    fn each_benchmark_takes_only_its_own_flags() {
        use clap::error::ErrorKind::UnknownArgument;
        assert_eq!(error_kind(&["hub", "--sensors", "5"]), UnknownArgument);
        assert_eq!(error_kind(&["hub", "--secs", "5"]), UnknownArgument);
        assert_eq!(
            error_kind(&["temporal", "--entities", "5"]),
            UnknownArgument
        );
        assert_eq!(error_kind(&["notify", "--queries", "5"]), UnknownArgument);
        assert_eq!(error_kind(&["ingest", "--rate", "5"]), UnknownArgument);
        assert_eq!(
            error_kind(&["notify", "--store", "postgres://h/d"]),
            UnknownArgument
        );
        assert_eq!(error_kind(&["scorecard", "--days", "5"]), UnknownArgument);
        assert_eq!(
            error_kind(&["opendata", "--patch-clients", "5"]),
            UnknownArgument
        );
    }

    #[test]
    fn out_of_range_sizes_are_refused() {
        use clap::error::ErrorKind::{MissingRequiredArgument, ValueValidation};
        for args in [
            &["hub", "--entities", "0"][..],
            &["hub", "--batch-entities", "0"],
            &["hub", "--queries", "0"],
            &["hub", "--patch-clients", "0"],
            &["hub", "--patch-secs", "0"],
            &["hub", "--patch-secs", "3601"],
            &["hub", "--patch-secs", "NaN"],
            &["hub", "--store", "sqlite://x.db"],
            &["temporal", "--sensors", "0"],
            &["temporal", "--sensors", "1001"],
            &["temporal", "--days", "3651"],
            &["temporal", "--queries", "0"],
            &["notify", "--subscriptions", "100001"],
            &["notify", "--rate", "0"],
            &["notify", "--rate", "100001"],
            &["notify", "--secs", "0.5"],
            &["ingest", "--devices", "0"],
            &["ingest", "--secs", "2.5"],
            &["ingest", "--secs", "3601"],
            &["nodes", "--store", "postgres://h/d", "--patch-clients", "1"],
            &["nodes", "--store", "postgres://h/d", "--secs", "0"],
            &["reports", "--entities", "5000001"],
            &["reports", "--patch-clients", "0"],
            &["opendata", "--queries", "0"],
            &["alerts", "--rate=-1"],
            &["alerts", "--days", "0"],
            &["scorecard", "--queries", "0"],
            &["soak", "--rate", "0"],
            &["soak", "--clients", "0"],
        ] {
            assert_eq!(error_kind(args), ValueValidation, "{args:?}");
        }
        assert_eq!(error_kind(&["nodes"]), MissingRequiredArgument);
    }

    #[test]
    fn other_benchmarks_default_as_documented() {
        for (args, expected) in [
            (&["temporal"][..], (100, 365, 200, 50)),
            (&["temporal", "--quick"][..], (10, 30, 50, 12)),
        ] {
            let Which::Temporal(a) = parse(args).unwrap() else {
                panic!()
            };
            let s = a.sizes();
            let got = (s.sensors, s.days, s.queries, s.aggregate_queries);
            assert_eq!(got, expected, "{args:?}");
        }
        for (args, expected) in [
            (&["notify"][..], (1_000, 2_000.0, 60.0, 40)),
            (&["notify", "--quick"][..], (100, 200.0, 10.0, 4)),
        ] {
            let Which::Notify(a) = parse(args).unwrap() else {
                panic!()
            };
            let s = a.sizes().unwrap();
            let got = (s.subscriptions, s.rate, s.secs, s.clients);
            assert_eq!(got, expected, "{args:?}");
        }
        let Which::Ingest(a) = parse(&["ingest"]).unwrap() else {
            panic!()
        };
        let s = a.sizes().unwrap();
        assert_eq!((s.devices, s.secs, s.broker_port), (10_000, 60, 1883));
        let Which::Ingest(a) = parse(&["ingest", "--quick", "--secs", "12.0"]).unwrap() else {
            panic!()
        };
        let s = a.sizes().unwrap();
        assert_eq!((s.devices, s.secs), (500, 12));
        let Which::Nodes(a) = parse(&["nodes", "--store", "postgres://h/d", "--quick"]).unwrap()
        else {
            panic!()
        };
        let s = a.sizes();
        assert_eq!(
            (s.server.as_str(), s.entities, s.clients, s.secs),
            ("postgres://h/d", 2_000, 16, 3.0)
        );
        let Which::Reports(a) = parse(&["reports"]).unwrap() else {
            panic!()
        };
        let s = a.sizes();
        assert_eq!(
            (s.reports, s.clients, s.queries, s.stats_runs, s.photos),
            (200_000, 16, 200, 20, 30)
        );
        let Which::Opendata(a) = parse(&["opendata", "--quick"]).unwrap() else {
            panic!()
        };
        let s = a.sizes();
        assert_eq!((s.entities, s.datasets, s.searches), (20_000, 100, 100));
        let Which::Alerts(a) = parse(&["alerts"]).unwrap() else {
            panic!()
        };
        let s = a.sizes();
        assert_eq!(
            (
                s.rules,
                s.sensors,
                s.rate,
                s.secs,
                s.devices,
                s.backtest_sensors,
                s.backtest_days
            ),
            (10_000, 5_000, 5_000.0, 30.0, 100_000, 100, 30)
        );
        let Which::Scorecard(a) = parse(&["scorecard", "--quick"]).unwrap() else {
            panic!()
        };
        let s = a.sizes();
        assert_eq!((s.entities, s.runs), (10_000, 3));
        let Which::Soak(a) = parse(&["soak"]).unwrap() else {
            panic!()
        };
        let s = a.sizes().unwrap();
        assert_eq!(
            (s.minutes, s.rate, s.entities, s.clients, s.subscriptions),
            (30.0, 2_000, 1_000, 16, 5)
        );
        assert_eq!((s.queries_per_second, s.sample_secs), (20, 30));
        for minutes in ["--minutes=0", "--minutes=-1", "--minutes=1441"] {
            let Which::Soak(a) = parse(&["soak", minutes]).unwrap() else {
                panic!()
            };
            assert!(a.sizes().is_err(), "{minutes}");
        }
    }

    /// A runtime for the tiny runs of the tests.
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The PostgreSQL server of the tests: `DOTHI_TEST_DATABASE_URL`, else the local one.
    pub(crate) fn postgres_server() -> String {
        std::env::var("DOTHI_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// The same path on PostgreSQL (`DOTHI_TEST_DATABASE_URL`, else the local
    /// server): figures 1 to 3 run, count what they loaded, and drop their databases.
    #[test]
    fn tiny_benchmark_runs_on_postgres_and_counts_agree() {
        let server_url = postgres_server();
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
        assert_positive(
            &report,
            &[
                "batch_upsert_attr_writes_per_s",
                "patch_req_per_s",
                "query_q_p95_ms",
                "query_geo_p95_ms",
            ],
        );
        // Figure 1's baseline wrote the same entities by plain SQL.
        assert_eq!(c.raw_rows, 1_000, "{c:?}");
        assert_positive(&report, &["batch_upsert_hub_over_raw"]);
    }
}
