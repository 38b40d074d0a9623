//! `dothi bench soak`: a `dothi serve` process under a steady mixed load for a long
//! time — paced PATCH updates, subscriptions whose notifications reach a receiver in
//! this process, queries, and a client of the operations centre's live stream — with
//! the server's resident memory sampled all along. It prints the curve (one line a
//! sample) and the memory's growth after the warm-up (the first fifth of the run): a
//! server that keeps what it no longer needs shows here, not in a short benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::server::{Server, bench_key};
use super::{Common, Report, Target, count, data::thousands};

pub struct SoakSizes {
    pub minutes: f64,
    pub rate: usize,
    pub entities: usize,
    pub clients: usize,
    pub subscriptions: usize,
    pub queries_per_second: usize,
    pub sample_secs: u64,
    /// The `dothi` executable that runs the server.
    pub server_exe: std::path::PathBuf,
}

/// `dothi bench soak`.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// Minutes of load [default: 30; 1 with --quick].
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Entity updates a second, spread over the clients.
    #[arg(long, default_value_t = 2_000, value_parser = count(1..))]
    pub rate: usize,
    /// Entities the updates go to.
    #[arg(long, default_value_t = 1_000, value_parser = count(1..))]
    pub entities: usize,
    /// Concurrent PATCH clients.
    #[arg(long, default_value_t = 16, value_parser = count(1..))]
    pub clients: usize,
    /// Subscriptions, each notified of about one update in ten.
    #[arg(long, default_value_t = 5, value_parser = count(0..))]
    pub subscriptions: usize,
    /// Queries a second beside the updates.
    #[arg(long, default_value_t = 20, value_parser = count(0..))]
    pub queries_per_second: usize,
    /// Seconds between two samples of the server's memory [default: 30; 5 with --quick].
    #[arg(long)]
    pub sample_secs: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

impl SoakArgs {
    pub fn sizes(&self) -> anyhow::Result<SoakSizes> {
        let minutes = self.common.size(self.minutes, 1.0, 30.0);
        if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
            bail!("--minutes must be in (0, 1440], not {minutes}");
        }
        let sample_secs = self.common.size(self.sample_secs, 5, 30);
        if sample_secs == 0 {
            bail!("--sample-secs must be at least 1");
        }
        Ok(SoakSizes {
            minutes,
            rate: self.rate,
            entities: self.entities,
            clients: self.clients,
            subscriptions: self.subscriptions,
            queries_per_second: self.queries_per_second,
            sample_secs,
            server_exe: std::env::current_exe().context("finding this executable")?,
        })
    }
}

impl SoakSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} min at {} updates/s over {} entities ({} clients), {} subscriptions, {} queries/s, a live-stream client; memory sampled every {} s",
            self.minutes,
            thousands(self.rate as f64),
            thousands(self.entities as f64),
            self.clients,
            self.subscriptions,
            self.queries_per_second,
            self.sample_secs
        )
    }
}

/// What the load has done so far.
#[derive(Default)]
struct Counters {
    updates: AtomicU64,
    update_errors: AtomicU64,
    queries: AtomicU64,
    query_errors: AtomicU64,
    notifications: AtomicU64,
    stream_bytes: AtomicU64,
}

/// The resident memory of a process, in MiB (Linux's /proc).
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}

fn gauge(i: usize, level: f64) -> serde_json::Value {
    json!({
        "id": format!("urn:ngsi-ld:SoakGauge:{i}"),
        "type": "SoakGauge",
        "level": {"type": "Property", "value": level, "unitCode": "MTR"},
        "location": {"type": "GeoProperty", "value": {"type": "Point",
            "coordinates": [107.0 + (i % 100) as f64 * 0.002, 16.7 + (i / 100) as f64 * 0.002]}},
    })
}

pub async fn run(sizes: &SoakSizes, dir: &std::path::Path) -> anyhow::Result<Report> {
    let server = Server::spawn(&sizes.server_exe, &dir.join("soak.db")).await?;
    server.wait_healthy(Duration::from_secs(60)).await?;
    let pid = server
        .pid()
        .context("the server's process id (it runs in its own process)")?;
    let client = server.client.clone();

    // The entities, in batches.
    for start in (0..sizes.entities).step_by(500) {
        let batch: Vec<_> = (start..(start + 500).min(sizes.entities))
            .map(|i| gauge(i, 1.0))
            .collect();
        let r = client
            .post(server.url("/ngsi-ld/v1/entityOperations/upsert"))
            .json(&batch)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("loading the entities: {} {}", r.status(), r.text().await?);
        }
    }

    let counters = Arc::new(Counters::default());
    // The receiver of the notifications.
    let received = counters.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let received = received.clone();
            async move {
                received.notifications.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/notify", listener.local_addr()?);
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    for _ in 0..sizes.subscriptions {
        let r = client
            .post(server.url("/ngsi-ld/v1/subscriptions"))
            .json(&json!({
                "type": "Subscription",
                "entities": [{"type": "SoakGauge"}],
                "watchedAttributes": ["level"],
                "q": "level>90",
                "notification": {"format": "keyValues", "attributes": ["level"],
                                 "endpoint": {"uri": endpoint}}
            }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("subscribing: {} {}", r.status(), r.text().await?);
        }
    }

    // A client of the live stream, without the load client's timeout.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", bench_key()))?,
    );
    let stream_client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let stream_url = server.url("/ioc/api/stream");
    let streamed = counters.clone();
    let stream = tokio::spawn(async move {
        let Ok(mut r) = stream_client.get(stream_url).send().await else {
            return;
        };
        while let Ok(Some(chunk)) = r.chunk().await {
            streamed
                .stream_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });

    let duration = Duration::from_secs_f64(sizes.minutes * 60.0);
    let deadline = Instant::now() + duration;
    let mut load = Vec::new();
    // Paced updates: each client its share of the rate; a late tick is skipped, not
    // made up in a burst, so the rate achieved says what the server kept up with.
    let every = Duration::from_secs_f64(sizes.clients as f64 / sizes.rate as f64);
    for c in 0..sizes.clients {
        let (client, counters, base) = (client.clone(), counters.clone(), server.url(""));
        let entities = sizes.entities;
        load.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n: usize = c;
            while Instant::now() < deadline {
                tick.tick().await;
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = (n >> 11) % entities;
                let level = ((n >> 33) % 1000) as f64 / 10.0;
                let url = format!("{base}/ngsi-ld/v1/entities/urn:ngsi-ld:SoakGauge:{id}/attrs");
                let body = json!({"level": {"type": "Property", "value": level}});
                match client.patch(url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        counters.updates.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        counters.update_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    if sizes.queries_per_second > 0 {
        let (client, counters, base) = (client.clone(), counters.clone(), server.url(""));
        let every = Duration::from_secs_f64(1.0 / sizes.queries_per_second as f64);
        load.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < deadline {
                tick.tick().await;
                let url =
                    format!("{base}/ngsi-ld/v1/entities?type=SoakGauge&q=level%3E50&limit=50");
                match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        counters.queries.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        counters.query_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // The curve.
    println!(
        "  minute   RSS MiB   updates/s   notifications/s   queries/s   stream KiB/s   errors"
    );
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut last_at = started;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(sizes.sample_secs).min(deadline - Instant::now()))
            .await;
        let now = Instant::now();
        let secs = (now - last_at).as_secs_f64().max(1e-9);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let current = (
            get(&counters.updates),
            get(&counters.notifications),
            get(&counters.queries),
            get(&counters.stream_bytes),
        );
        let errors = get(&counters.update_errors) + get(&counters.query_errors);
        let rss = rss_mib(pid)?;
        let minute = (now - started).as_secs_f64() / 60.0;
        println!(
            "  {minute:6.1}   {rss:7.1}   {:9.0}   {:15.0}   {:9.1}   {:12.1}   {errors}",
            (current.0 - last.0) as f64 / secs,
            (current.1 - last.1) as f64 / secs,
            (current.2 - last.2) as f64 / secs,
            (current.3 - last.3) as f64 / secs / 1024.0,
        );
        samples.push((minute, rss));
        last = current;
        last_at = now;
    }
    for task in load {
        let _ = task.await;
    }
    stream.abort();
    receiver.abort();
    let elapsed = started.elapsed().as_secs_f64();
    server.stop().await?;

    let warm = samples
        .iter()
        .find(|(m, _)| *m >= sizes.minutes / 5.0)
        .or(samples.first())
        .map_or(0.0, |s| s.1);
    let end = samples.last().map_or(0.0, |s| s.1);
    let growth = if warm > 0.0 {
        (end - warm) / warm * 100.0
    } else {
        0.0
    };
    let updates = counters.updates.load(Ordering::Relaxed);
    let errors = counters.update_errors.load(Ordering::Relaxed)
        + counters.query_errors.load(Ordering::Relaxed);
    println!(
        "  memory {warm:.1} MiB after the warm-up, {end:.1} MiB at the end ({growth:+.1}%); {} updates ({:.0}/s), {} notifications, {} queries, {errors} errors",
        thousands(updates as f64),
        updates as f64 / elapsed,
        thousands(counters.notifications.load(Ordering::Relaxed) as f64),
        thousands(counters.queries.load(Ordering::Relaxed) as f64),
    );
    let mut report = Report::default();
    report.row(
        "soak_rss_growth_pct",
        "resident memory growth after the warm-up",
        growth,
        "%",
        Some(Target::Below(10.0)),
        true,
    );
    report.row(
        "soak_updates_per_s",
        "updates kept up with",
        updates as f64 / elapsed,
        "/s",
        Some(Target::AtLeast(sizes.rate as f64 * 0.95)),
        true,
    );
    report.row(
        "soak_errors",
        "failed updates and queries",
        errors as f64,
        "",
        Some(Target::AtMost(0.0)),
        true,
    );
    Ok(report)
}
