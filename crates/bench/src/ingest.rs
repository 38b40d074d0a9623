//! `dothi bench ingest`: provisioned devices publishing readings over a real MQTT
//! broker, each once a second, into a hub (a `dothi serve` child process) that keeps
//! their history. Figures: measures/s published and stored, the measures missing
//! from the history, and the lag from publish to queryable (sampled).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

use super::data::{self, percentiles, thousands};
use super::server::Server;
use super::{Common, Report, count};

/// The broker the hub and the publishers connect to.
pub const BROKER_HOST: &str = "127.0.0.1";
/// The broker's port unless `--broker-port` names another.
pub const BROKER_PORT: u16 = 1883;
/// The entity type of the devices' entities.
const ENTITY_TYPE: &str = "IngestSensor";
/// Devices per provisioning request.
const PROVISION_BATCH: usize = 1_000;

/// How big the run is.
#[derive(Debug, Clone)]
pub struct IngestSizes {
    /// Devices, each publishing once a second.
    pub devices: usize,
    pub secs: u64,
    /// MQTT connections publishing, together.
    pub publishers: usize,
    /// One message in `sample_every` is polled for until it is queryable.
    pub sample_every: u64,
    /// Samples polled at once, at most (a sample is skipped when all are busy).
    pub pollers: usize,
    /// The `dothi` executable that serves the hub.
    pub server_exe: PathBuf,
    /// The port of the broker on 127.0.0.1.
    pub broker_port: u16,
}

/// `dothi bench ingest`.
#[derive(clap::Args, Clone, Debug)]
pub struct IngestArgs {
    /// Devices, each publishing a reading a second over MQTT, 1 to 100000 [default:
    /// 10000; 500 with --quick].
    #[arg(long, value_parser = count(1..=100_000))]
    pub devices: Option<usize>,
    /// Seconds of publishing, a whole number in [1, 3600] [default: 60; 10 with
    /// --quick].
    #[arg(long, value_parser = whole_secs)]
    pub secs: Option<u64>,
    /// The port of the MQTT broker on 127.0.0.1.
    #[arg(long, default_value_t = BROKER_PORT)]
    pub broker_port: u16,
    #[command(flatten)]
    pub common: Common,
}

/// A whole number of seconds in [1, 3600] ("10" or "10.0").
fn whole_secs(s: &str) -> Result<u64, String> {
    let secs = super::secs_one_to_an_hour(s)?;
    if secs.fract() == 0.0 {
        Ok(secs as u64)
    } else {
        Err("must be a whole number of seconds".into())
    }
}

impl IngestArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> anyhow::Result<IngestSizes> {
        Ok(IngestSizes {
            devices: self.common.size(self.devices, 500, 10_000),
            secs: self.common.size(self.secs, 10, 60),
            publishers: 4,
            sample_every: 50,
            pollers: 4,
            server_exe: std::env::current_exe().context("finding this executable")?,
            broker_port: self.broker_port,
        })
    }
}

impl IngestSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} devices × 1 reading/s for {} s over MQTT ({BROKER_HOST}:{}, QoS 1, {} connections), history on; lag sampled on 1 message in {} ({} pollers at most); the server is a `dothi serve` child process",
            thousands(self.devices as f64),
            self.secs,
            self.broker_port,
            self.publishers,
            self.sample_every,
            self.pollers
        )
    }
}

fn device_id(i: usize) -> String {
    format!("ing-{i:06}")
}

fn entity_id(i: usize) -> String {
    format!("urn:ngsi-ld:{ENTITY_TYPE}:{}", device_id(i))
}

/// Something unique to this run, for the API key and the MQTT client ids.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{:x}", std::process::id(), nanos % (1 << 40))
}

/// Instances in the history, read from the SQLite file beside the running hub.
fn history_rows(db: &Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(data::count_rows(&conn, "attr_history")?)
}

/// `v` of the entity of device `i` (keyValues), when it has one.
async fn current_v(server: &Server, i: usize) -> Option<u64> {
    let url = server.url(&format!(
        "/ngsi-ld/v1/entities/{}?attrs=v&options=keyValues",
        entity_id(i)
    ));
    let r = server.client.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body.get("v")?.as_u64()
}

async fn post(server: &Server, path: &str, body: Value) -> anyhow::Result<()> {
    let r = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    if !status.is_success() {
        let text = r.text().await.unwrap_or_default();
        bail!("POST {path} answered {status}: {text}");
    }
    Ok(())
}

/// A publishing connection, its event loop polled by a task of its own.
struct Publisher {
    client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn connect(client_id: &str, port: u16, errors: Arc<AtomicU64>) -> Publisher {
        let mut options = rumqttc::MqttOptions::new(client_id, BROKER_HOST, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(1_000);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 4_096);
        let task = tokio::spawn(async move {
            loop {
                if events.poll().await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Publisher { client, task }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn payload(seq: u64) -> String {
    json!({
        "v": seq,
        "TimeInstant": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
}

/// What the run counted.
#[derive(Debug, Default, Clone)]
pub struct IngestChecks {
    pub published: u64,
    pub publish_errors: u64,
    pub connection_errors: u64,
    pub stored: u64,
    pub samples: usize,
    pub samples_skipped: u64,
    pub samples_timed_out: u64,
}

pub async fn run(sizes: &IngestSizes, dir: &Path) -> anyhow::Result<Report> {
    let (report, _) = run_counted(sizes, dir).await?;
    Ok(report)
}

/// The run, with the counts that check it.
pub async fn run_counted(
    sizes: &IngestSizes,
    dir: &Path,
) -> anyhow::Result<(Report, IngestChecks)> {
    let tag = run_tag();
    let apikey = format!("bench{}", tag.replace('-', ""));
    let db = dir.join("ingest.db");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?;
    let extra = [
        "--mqtt-url".to_string(),
        format!("mqtt://{BROKER_HOST}:{}", sizes.broker_port),
        "--mqtt-client-id".to_string(),
        format!("dothi-bench-ingest-{tag}"),
    ];
    let server = Server::spawn_with(&sizes.server_exe, &db, addr, &extra).await?;
    let result = measure(sizes, &server, &db, &apikey, &tag).await;
    let stopped = server.stop().await;
    let out = result?;
    stopped?;
    Ok(out)
}

async fn measure(
    sizes: &IngestSizes,
    server: &Server,
    db: &Path,
    apikey: &str,
    tag: &str,
) -> anyhow::Result<(Report, IngestChecks)> {
    let mut report = Report::default();
    let mut checks = IngestChecks::default();
    server.wait_healthy(Duration::from_secs(60)).await?;

    // Provisioning: one service group, then the devices in batches.
    let t = Instant::now();
    post(
        server,
        "/iot/services",
        json!({"services": [{
            "apikey": apikey,
            "resource": "/iot/json",
            "entity_type": ENTITY_TYPE,
            "explicitAttrs": true,
            "attributes": [{"object_id": "v", "name": "v", "type": "Number"}],
        }]}),
    )
    .await?;
    for start in (0..sizes.devices).step_by(PROVISION_BATCH) {
        let end = (start + PROVISION_BATCH).min(sizes.devices);
        let devices: Vec<Value> = (start..end)
            .map(|i| json!({"device_id": device_id(i), "apikey": apikey}))
            .collect();
        post(server, "/iot/devices", json!({ "devices": devices })).await?;
    }
    println!(
        "  provisioned 1 service group and {} devices in {:.1} s",
        thousands(sizes.devices as f64),
        t.elapsed().as_secs_f64()
    );

    let connection_errors = Arc::new(AtomicU64::new(0));
    let publishers: Vec<Publisher> = (0..sizes.publishers)
        .map(|k| {
            Publisher::connect(
                &format!("bench-pub-{tag}-{k}"),
                sizes.broker_port,
                connection_errors.clone(),
            )
        })
        .collect();
    let topic = |i: usize| format!("/json/{apikey}/{}/attrs", device_id(i));

    // Warm-up: v = 0 on device 0 until it is queryable, so that the hub's
    // subscription is in place before the measured messages.
    let t = Instant::now();
    loop {
        publishers[0]
            .client
            .publish(topic(0), rumqttc::QoS::AtLeastOnce, false, payload(0))
            .await
            .context("publishing the warm-up message")?;
        let wait = Instant::now();
        let mut seen = false;
        while wait.elapsed() < Duration::from_millis(500) {
            if current_v(server, 0).await == Some(0) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if seen {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "no measure published to {BROKER_HOST}:{} reached the hub within 30 s (is Mosquitto running?)",
                sizes.broker_port
            );
        }
    }
    // Let a duplicate warm-up message or two land before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = history_rows(db).context("counting the history")?;
    println!(
        "  MQTT ingestion ready in {:.1} s; publishing",
        t.elapsed().as_secs_f64()
    );

    // Publishing: message m (0-based) goes to device m % N with v = m / N + 1, at
    // start + m / N seconds; publisher k sends the messages m ≡ k (mod K).
    let n = sizes.devices as u64;
    let total = n * sizes.secs;
    let publish_errors = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let timed_out = Arc::new(AtomicU64::new(0));
    let lags = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let pollers = Arc::new(Semaphore::new(sizes.pollers));
    let samplers = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
    let start = Instant::now() + Duration::from_millis(100);
    let k_count = publishers.len() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for (k, p) in publishers.iter().enumerate() {
        let client = p.client.clone();
        let apikey = apikey.to_string();
        let publish_errors = publish_errors.clone();
        let skipped = skipped.clone();
        let timed_out = timed_out.clone();
        let lags = lags.clone();
        let pollers = pollers.clone();
        let samplers = samplers.clone();
        let server_url = server.url("");
        let http = server.client.clone();
        let sample_every = sizes.sample_every;
        tasks.spawn(async move {
            let mut m = k as u64;
            while m < total {
                // Every message due by now.
                let due = ((start.elapsed().as_secs_f64() * n as f64) as u64).min(total - 1);
                while m <= due {
                    let device = (m % n) as usize;
                    let seq = m / n + 1;
                    let sent = Instant::now();
                    let topic = format!("/json/{apikey}/{}/attrs", device_id(device));
                    if client
                        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload(seq))
                        .await
                        .is_err()
                    {
                        publish_errors.fetch_add(1, Ordering::Relaxed);
                    } else if m.is_multiple_of(sample_every) {
                        match pollers.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let url = format!(
                                    "{server_url}/ngsi-ld/v1/entities/{}?attrs=v&options=keyValues",
                                    entity_id(device)
                                );
                                let http = http.clone();
                                let lags = lags.clone();
                                let timed_out = timed_out.clone();
                                samplers.lock().await.spawn(async move {
                                    let _permit = permit;
                                    let mut pause = Duration::from_millis(2);
                                    loop {
                                        let v = match http.get(&url).send().await {
                                            Ok(r) if r.status().is_success() => r
                                                .json::<Value>()
                                                .await
                                                .ok()
                                                .and_then(|b| b.get("v")?.as_u64()),
                                            _ => None,
                                        };
                                        if v.is_some_and(|v| v >= seq) {
                                            lags.lock().await.push(sent.elapsed());
                                            return;
                                        }
                                        if sent.elapsed() > Duration::from_secs(30) {
                                            timed_out.fetch_add(1, Ordering::Relaxed);
                                            return;
                                        }
                                        // Backing off (2 ms to 50 ms), so that the sampler
                                        // does not become the load when the hub falls behind.
                                        tokio::time::sleep(pause).await;
                                        pause = (pause * 3 / 2).min(Duration::from_millis(50));
                                    }
                                });
                            }
                            Err(_) => {
                                skipped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    m += k_count;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a publisher failed")?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let published = total - publish_errors.load(Ordering::Relaxed);

    // Drain: until the history holds every message, or it stops growing for 10 s
    // (60 s at most).
    let mut stored = 0;
    let mut last_change = Instant::now();
    let drain = Instant::now();
    loop {
        let now = history_rows(db)?.saturating_sub(baseline);
        if now != stored {
            stored = now;
            last_change = Instant::now();
        }
        if stored >= published
            || last_change.elapsed() > Duration::from_secs(10)
            || drain.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // When the last measure was stored (to 50 ms).
    let stored_secs = last_change.duration_since(start).as_secs_f64();
    let mut samplers = std::mem::take(&mut *samplers.lock().await);
    while samplers.join_next().await.is_some() {}
    drop(publishers);

    let lags = std::mem::take(&mut *lags.lock().await);
    let p = percentiles(&lags);
    checks.published = published;
    checks.publish_errors = publish_errors.load(Ordering::Relaxed);
    checks.connection_errors = connection_errors.load(Ordering::Relaxed);
    checks.stored = stored;
    checks.samples = lags.len();
    checks.samples_skipped = skipped.load(Ordering::Relaxed);
    checks.samples_timed_out = timed_out.load(Ordering::Relaxed);
    let clean = checks.publish_errors == 0 && checks.connection_errors == 0;
    let missing = published.saturating_sub(stored);
    println!(
        "  published {} measures in {publish_secs:.1} s; {} stored in the history by {stored_secs:.1} s; {} missing",
        thousands(published as f64),
        thousands(stored as f64),
        thousands(missing as f64)
    );
    println!(
        "  lag publish → queryable: {} samples ({} skipped with every poller busy, {} timed out)",
        checks.samples, checks.samples_skipped, checks.samples_timed_out
    );

    report.row(
        "ingest_published_per_s",
        "measures published/s",
        published as f64 / publish_secs,
        "/s",
        None,
        clean,
    );
    report.row(
        "ingest_stored_per_s",
        "measures stored in the history/s",
        stored as f64 / stored_secs.max(publish_secs),
        "/s",
        None,
        clean,
    );
    report.row(
        "ingest_missing",
        "measures missing from the history",
        missing as f64,
        "",
        Some(super::Target::AtMost(0.0)),
        clean,
    );
    report.row(
        "ingest_lag_p50_ms",
        "lag publish → queryable p50",
        p.p50,
        "ms",
        None,
        clean,
    );
    report.row(
        "ingest_lag_p95_ms",
        "lag publish → queryable p95",
        p.p95,
        "ms",
        None,
        clean,
    );
    report.row(
        "ingest_lag_p99_ms",
        "lag publish → queryable p99",
        p.p99,
        "ms",
        None,
        clean,
    );
    report.extra("ingest_published", published as f64);
    report.extra("ingest_stored", stored as f64);
    report.extra("ingest_lag_samples", checks.samples as f64);
    report.extra("ingest_lag_max_ms", p.max);
    report.extra("ingest_publish_errors", checks.publish_errors as f64);
    report.extra("ingest_connection_errors", checks.connection_errors as f64);
    Ok((report, checks))
}
