//! `dothi bench alerts`: the alerts service beside a hub under load, in this process
//! over a fresh SQLite file.
//!
//! Sensors (type `Sensor`, attribute `level`) are watched by rules scoped each to one
//! sensor (`level > 100`), two rules per sensor when there are twice as many rules.
//! Readings are `Hub::record_measures` calls, as the IoT agent writes them.
//!
//! 1. The write path's throughput: concurrent writers as fast as they go for a while
//!    with no evaluator, then with the evaluator following the change feed (readings
//!    under the thresholds: every one is evaluated, none fires), in four windows: off,
//!    on, on, off, after a window with rules off that warms the fresh store up.
//! 2. From a reading's commit to its Alert's commit: paced readings at the given rate,
//!    going round the sensors; one sensor in 50 crosses its threshold on every other
//!    round and falls back on the rounds between; the time from the crossing write's
//!    return to the Alert entity's creation on the change feed.
//! 3. A staleness sweep: one rule over many devices, all fresh; the process CPU time
//!    of one sweep (read from /proc), and per minute at one sweep every 30 s.
//! 4. A backtest of one rule over 30 days of 5-minute readings of the temporal
//!    benchmark's sensors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use ngsi::{AttrKind, Attribute, Context};
use serde_json::{Value, json};

use super::data::{BATCH, ms, percentiles, section, thousands};
use super::{Common, Report, Target, count, positive, secs_up_to_an_hour};

const TYPE: &str = "Sensor";
const DEVICE_TYPE: &str = "Device";
/// One sensor in this many crosses its threshold (figure 2).
const CROSSING_EVERY: u64 = 50;
/// Concurrent writers of figure 1.
const WRITERS: usize = 16;
/// A sweep runs every this many seconds.
const SWEEP_SECS: f64 = 30.0;

#[derive(Debug, Clone)]
pub struct AlertsSizes {
    pub rules: usize,
    pub sensors: usize,
    pub rate: f64,
    pub secs: f64,
    pub devices: usize,
    pub backtest_sensors: usize,
    pub backtest_days: usize,
}

/// `dothi bench alerts`.
#[derive(clap::Args, Clone, Debug)]
pub struct AlertsArgs {
    /// Alert rules [default: 10000; 1000 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub entities: Option<usize>,
    /// Sensors, each watched by rules and updated by the readings of figures 1 and 2
    /// [default: 5000; 500 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub subscriptions: Option<usize>,
    /// Paced readings per second of figure 2, a positive number [default: 5000; 500
    /// with --quick].
    #[arg(long, value_parser = positive)]
    pub rate: Option<f64>,
    /// Seconds of each write load of figures 1 and 2, in (0, 3600] [default: 30, long
    /// enough that a window's own spread does not hide the evaluator's cost; 3 with
    /// --quick].
    #[arg(long, value_parser = secs_up_to_an_hour)]
    pub secs: Option<f64>,
    /// Devices of the staleness sweep (figure 3) [default: 100000; 5000 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub devices: Option<usize>,
    /// Sensors of the backtest (figure 4) [default: 100; 10 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub sensors: Option<usize>,
    /// Days of 5-minute readings of the backtest [default: 30; 3 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub days: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

impl AlertsArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> AlertsSizes {
        AlertsSizes {
            rules: self.common.size(self.entities, 1_000, 10_000),
            sensors: self.common.size(self.subscriptions, 500, 5_000),
            rate: self.common.size(self.rate, 500.0, 5_000.0),
            secs: self.common.size(self.secs, 3.0, 30.0),
            devices: self.common.size(self.devices, 5_000, 100_000),
            backtest_sensors: self.common.size(self.sensors, 10, 100),
            backtest_days: self.common.size(self.days, 3, 30),
        }
    }
}

impl AlertsSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} rules over {} sensors; {} readings/s for {} s; a sweep of {} devices; a backtest over {} sensors × {} days",
            thousands(self.rules as f64),
            thousands(self.sensors as f64),
            thousands(self.rate),
            self.secs,
            thousands(self.devices as f64),
            self.backtest_sensors,
            self.backtest_days
        )
    }
}

fn sensor_id(i: usize) -> String {
    format!("urn:ngsi-ld:{TYPE}:b{i:06}")
}

/// This process's CPU time (user and system), from /proc/self/stat.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which is in parentheses): utime and stime are
    // the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unreadable /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("unreadable /proc/self/stat"))
    };
    Ok(Duration::from_millis((tick(11)? + tick(12)?) * 10))
}

fn level(value: f64) -> BTreeAttrs {
    let now = ngsi::entity::now();
    let attr = Attribute {
        kind: AttrKind::Property,
        value: json!(value),
        dataset_id: None,
        observed_at: Some(now),
        unit_code: None,
        object_type: None,
        created_at: now,
        modified_at: now,
        sub_attrs: Default::default(),
    };
    BTreeAttrs::from([(Context::core().expand("level"), vec![attr])])
}

type BTreeAttrs = std::collections::BTreeMap<String, Vec<Attribute>>;

/// Writes one reading of sensor `i`.
async fn write(hub: &hub::Hub, i: usize, value: f64) -> anyhow::Result<()> {
    let scope = hub::Scope::system("bench", "");
    hub.record_measures(
        &scope,
        &sensor_id(i),
        vec![Context::core().expand(TYPE)],
        level(value),
        Default::default(),
    )
    .await
    .map_err(|e| anyhow!("writing a reading: {}", e.detail))?;
    Ok(())
}

/// Creates entities `ids` of `kind` with a fresh `level` in batches.
async fn create(
    hub: &hub::Hub,
    kind: &str,
    n: usize,
    id: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    let scope = hub::Scope::system("bench", "");
    let ctx = Context::core();
    let now = ngsi::entity::now();
    let at = ngsi::entity::format_time(&now);
    for start in (0..n).step_by(BATCH) {
        let reader = ngsi::entity::Reader { ctx: &ctx, now };
        let batch = (start..(start + BATCH).min(n))
            .map(|i| {
                let v = json!({"id": id(i), "type": kind,
                    "level": {"type": "Property", "value": 0, "observedAt": at}});
                reader.entity(&v, None).map_err(|e| (id(i), e))
            })
            .collect();
        for (eid, r) in hub.batch_upsert(&scope, batch, true).await? {
            r.map_err(|e| anyhow!("creating {eid}: {}", e.detail))?;
        }
    }
    Ok(())
}

/// Starts the evaluator and waits for its first pass over every rule, so that no
/// window of figure 1 or 2 holds it.
async fn start_evaluator(
    alerts: &Arc<::alerts::Alerts>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let evaluator = alerts.clone().spawn();
    alerts.evaluate_all().await.map_err(|e| anyhow!(e.detail))?;
    Ok(evaluator)
}

/// Figure 1: readings under the thresholds, as fast as `WRITERS` writers go.
async fn throughput(hub: &Arc<hub::Hub>, sizes: &AlertsSizes) -> anyhow::Result<(f64, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (hub, stop, done, errors, n) = (
            hub.clone(),
            stop.clone(),
            done.clone(),
            errors.clone(),
            sizes.sensors,
        );
        tasks.push(tokio::spawn(async move {
            let mut k = w;
            while !stop.load(Ordering::Relaxed) {
                if write(&hub, k % n, (k % 50) as f64).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                k += WRITERS;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(sizes.secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        done.load(Ordering::Relaxed) as f64 / secs,
        errors.load(Ordering::Relaxed),
    ))
}

/// Figure 2: paced readings, some crossing; latencies from the crossing write's
/// return to its Alert's creation.
async fn latency(
    hub: &Arc<hub::Hub>,
    sizes: &AlertsSizes,
) -> anyhow::Result<(Vec<Duration>, u64, u64)> {
    let alert_type = Context::core().expand("Alert");
    let mut feed = hub.subscribe_changes();
    let pending: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let listener = {
        let (pending, latencies, alert_type) =
            (pending.clone(), latencies.clone(), alert_type.clone());
        let rules = sizes.rules;
        let sensors = sizes.sensors;
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(c) => c,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                if change.kind != hub::ChangeKind::Created || !change.types.contains(&alert_type) {
                    continue;
                }
                // urn:ngsi-ld:Alert:r{n}-…: rule n watches sensor n mod sensors.
                let rule = change
                    .id
                    .strip_prefix("urn:ngsi-ld:Alert:r")
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(n) = rule.filter(|n| *n < rules) {
                    let sent = pending
                        .lock()
                        .ok()
                        .and_then(|mut p| p.remove(&(n % sensors)));
                    if let (Some(sent), Ok(mut l)) = (sent, latencies.lock()) {
                        l.push(sent.elapsed());
                    }
                }
            }
        })
    };
    let total = (sizes.rate * sizes.secs).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / sizes.rate);
    let start = Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let crossings = Arc::new(AtomicU64::new(0));
    let mut inflight = tokio::task::JoinSet::new();
    for k in 0..total {
        let due = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        // Every `CROSSING_EVERY`-th sensor crosses on every other round of writes,
        // and falls back on the rounds between (its alert then resolves).
        let i = (k as usize) % sizes.sensors;
        let round = k / sizes.sensors as u64;
        let crossing = (i as u64).is_multiple_of(CROSSING_EVERY) && round.is_multiple_of(2);
        let (hub, pending, errors, crossings) = (
            hub.clone(),
            pending.clone(),
            errors.clone(),
            crossings.clone(),
        );
        inflight.spawn(async move {
            // A crossing sensor is written high, then low again a moment later.
            let value = if crossing { 150.0 } else { 10.0 };
            match write(&hub, i, value).await {
                Ok(()) if crossing => {
                    if let Ok(mut p) = pending.lock() {
                        p.insert(i, Instant::now());
                    }
                    crossings.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) => {}
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while inflight.len() > 256 {
            inflight.join_next().await;
        }
    }
    while inflight.join_next().await.is_some() {}
    // The last alerts: at most 10 s more.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(10)
        && pending.lock().map(|p| !p.is_empty()).unwrap_or(false)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listener.abort();
    let missing = pending.lock().map(|p| p.len() as u64).unwrap_or(0);
    let l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    Ok((
        l,
        crossings.load(Ordering::Relaxed),
        missing + errors.load(Ordering::Relaxed),
    ))
}

pub async fn run(sizes: &AlertsSizes, dir: &Path) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let url = format!("sqlite://{}", dir.join("alerts.db").display());
    let store = store::open(&url).await.context("opening the store")?;
    let node = hub::Node::start(store, &super::server::bench_config()).context("the hub")?;
    let hub = node.state.hub.clone();
    let alerts = Arc::new(::alerts::Alerts::new(hub.clone()));
    section("Set-up");
    let t = Instant::now();
    create(&hub, TYPE, sizes.sensors, sensor_id).await?;
    let scope = hub::Scope::system("bench", "");
    for r in 0..sizes.rules {
        let spec = ::alerts::RuleSpec::from_json(&json!({
            "id": format!("r{r}"),
            "scope": {"type": TYPE, "ids": [sensor_id(r % sizes.sensors)]},
            "condition": {"kind": "threshold", "attribute": "level", "op": ">", "value": 100},
            "severity": "high"
        }))
        .map_err(|e| anyhow!(e.detail))?;
        alerts
            .put_rule(&scope, spec, store::RegistryWrite::Upsert)
            .await
            .map_err(|e| anyhow!("rule r{r}: {}", e.detail))?;
    }
    println!(
        "  {} sensors and {} rules in {:.1} s",
        thousands(sizes.sensors as f64),
        thousands(sizes.rules as f64),
        t.elapsed().as_secs_f64()
    );

    section("1. Write throughput, rules off and on (off, on, on, off)");
    // A first window with rules off, not counted: on the freshly loaded store it ran
    // 10 to 35 % faster than every later window, rules on or off, in every run (the
    // history's first instances, the caches still covering the whole file), so it
    // measured the fresh store rather than the evaluator.
    let (warm_up, errors_0) = throughput(&hub, sizes).await?;
    println!(
        "  rules off: {} readings/s (warming up, not counted)",
        thousands(warm_up)
    );
    // Then four windows in the order off, on, on, off: a drift of the machine or of
    // the growing database over the run (the disk, the WAL's checkpoints, the
    // history's size) weighs on both sides alike, where one window of each, off
    // first, would count all of it against the evaluator.
    let (off_1, errors_1) = throughput(&hub, sizes).await?;
    println!("  rules off: {} readings/s", thousands(off_1));
    let evaluator = start_evaluator(&alerts).await?;
    let (on_1, errors_2) = throughput(&hub, sizes).await?;
    println!("  rules on:  {} readings/s", thousands(on_1));
    let (on_2, errors_3) = throughput(&hub, sizes).await?;
    println!("  rules on:  {} readings/s", thousands(on_2));
    // Off again: the evaluator stops and its feed receiver goes with it, so writes
    // are no longer watched. It keeps what it knows (no incident: every reading of
    // this figure is under the thresholds) and takes up again for figure 2.
    evaluator.abort();
    let _ = evaluator.await;
    let (off_2, errors_4) = throughput(&hub, sizes).await?;
    println!("  rules off: {} readings/s", thousands(off_2));
    let (on, off) = (on_1 + on_2, off_1 + off_2);
    println!(
        "  ratio on / off: {:.3} over the four windows ({:.3} of the first two alone)",
        on / off,
        on_1 / off_1
    );
    report.row(
        "throughput_ratio",
        "write throughput, rules on / off",
        on / off,
        "×",
        Some(Target::AtLeast(0.85)),
        errors_0 + errors_1 + errors_2 + errors_3 + errors_4 == 0,
    );
    report.extra("readings_per_s_rules_off", off / 2.0);
    report.extra("readings_per_s_rules_on", on / 2.0);
    report.extra("throughput_ratio_first_pair", on_1 / off_1);
    report.extra("readings_per_s_warm_up", warm_up);
    let evaluator = start_evaluator(&alerts).await?;

    section("2. From a reading's commit to its Alert's commit");
    let (lat, crossings, missing) = latency(&hub, sizes).await?;
    let p = percentiles(&lat);
    println!(
        "  {} crossings: {}; {} without an alert",
        crossings,
        ms(&p),
        missing
    );
    // Full passes over every rule's scope since the evaluator started (figures 1 and
    // 2): each means the change feed lost changes.
    println!("  full passes after lost changes: {}", alerts.gaps());
    report.extra("evaluator_gaps", alerts.gaps() as f64);
    report.row(
        "alert_latency_p99_ms",
        format!(
            "commit → Alert committed, p99 ({} readings/s)",
            thousands(sizes.rate)
        ),
        p.p99,
        "ms",
        Some(Target::AtMost(100.0)),
        missing == 0 && !lat.is_empty(),
    );
    evaluator.abort();
    let _ = evaluator.await;

    section("3. A staleness sweep");
    let t = Instant::now();
    create(&hub, DEVICE_TYPE, sizes.devices, |i| {
        format!("urn:ngsi-ld:{DEVICE_TYPE}:d{i:07}")
    })
    .await?;
    println!(
        "  {} devices in {:.1} s",
        thousands(sizes.devices as f64),
        t.elapsed().as_secs_f64()
    );
    let spec = ::alerts::RuleSpec::from_json(&json!({
        "id": "silent",
        "scope": {"type": DEVICE_TYPE},
        "condition": {"kind": "stale", "after": "15m", "attribute": "level"},
        "severity": "medium"
    }))
    .map_err(|e| anyhow!(e.detail))?;
    alerts
        .put_rule(&scope, spec, store::RegistryWrite::Upsert)
        .await
        .map_err(|e| anyhow!(e.detail))?;
    let sweeper = ::alerts::Alerts::with_clock(
        hub.clone(),
        Arc::new(::alerts::SystemClock),
        ::alerts::Settings {
            tick: Duration::from_secs(1),
            sweep: Duration::ZERO,
        },
    );
    // The first tick loads the rules and evaluates each once; the second is a sweep.
    sweeper.tick().await.map_err(|e| anyhow!(e.detail))?;
    let (cpu, wall) = (cpu_time()?, Instant::now());
    sweeper.tick().await.map_err(|e| anyhow!(e.detail))?;
    let (cpu, wall) = (cpu_time()? - cpu, wall.elapsed());
    let per_minute = cpu.as_secs_f64() * 60.0 / SWEEP_SECS;
    println!(
        "  one sweep of {} devices: {:.0} ms CPU ({:.0} ms wall); {:.2} s CPU per minute at one sweep every {SWEEP_SECS} s",
        thousands(sizes.devices as f64),
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64() * 1e3,
        per_minute
    );
    report.row(
        "sweep_cpu_s_per_minute",
        format!(
            "staleness sweep of {} devices, CPU per minute",
            thousands(sizes.devices as f64)
        ),
        per_minute,
        "s",
        Some(Target::AtMost(1.0)),
        true,
    );

    section("4. A backtest");
    let t = Instant::now();
    let loaded =
        super::temporal::load_for_backtest(&hub, sizes.backtest_sensors, sizes.backtest_days)
            .await?;
    println!(
        "  {} instances of {} sensors loaded in {:.1} s",
        thousands(loaded as f64),
        sizes.backtest_sensors,
        t.elapsed().as_secs_f64()
    );
    let (from, to) = super::temporal::period(sizes.backtest_days);
    let body = json!({
        "rule": {
            "id": "high-water",
            "scope": {"type": "WaterObserved"},
            "condition": {"kind": "threshold", "attribute": "waterLevel", "op": ">", "value": 3.0},
            "clear": {"hysteresis": 0.1},
            "for": "15m",
            "severity": "high"
        },
        "from": from,
        "to": to,
    });
    let request = ::alerts::BacktestRequest::from_json(&body, ngsi::entity::now())
        .map_err(|e| anyhow!(e.detail))?;
    let t = Instant::now();
    let answer: Value = ::alerts::backtest(&alerts, &scope, request)
        .await
        .map_err(|e| anyhow!(e.detail))?;
    let took = t.elapsed();
    println!(
        "  one rule over {} sensors × {} days: {} alerts in {:.0} ms",
        answer["entities"],
        sizes.backtest_days,
        answer["count"],
        took.as_secs_f64() * 1e3
    );
    report.row(
        "backtest_s",
        format!(
            "backtest, {} sensors × {} days",
            sizes.backtest_sensors, sizes.backtest_days
        ),
        took.as_secs_f64(),
        "s",
        Some(Target::AtMost(2.0)),
        answer["entities"].as_u64() == Some(sizes.backtest_sensors as u64),
    );
    node.stop().await;
    Ok(report)
}
