//! `dothi bench notify`: notifications under a steady stream of updates, across a
//! restart of the server.
//!
//! `dothi serve` runs as a child process over a fresh SQLite file, so that it can be
//! killed. Entity `i` (type `Sensor`) is watched by subscription `i` (its id and type),
//! whose endpoint is a receiver in this process (axum on 127.0.0.1:0) that only records
//! each body with the time it arrived. Updates are PATCHes of `seq` (the update's
//! number, unique in the run) and `sentUs` (when it was sent), paced at a fixed rate
//! by several clients, going round the entities. Halfway through, the server is killed
//! with SIGKILL and started again on the same file and port.
//!
//! Afterwards (once every acknowledged update was notified, or no notification came
//! for a while) the run counts: each acknowledged update must be notified by its
//! entity's subscription, at least once. Delivery is at least once, so a notification
//! may arrive twice across the kill: distinct (subscription, entity, update) are
//! counted, and duplicates apart. An update whose answer was lost to the kill may
//! have committed, and then be notified too: counted apart, not as an error. The
//! latency is from the acknowledgement (the 204 read by the client) to the receipt,
//! of each acknowledged update's first notification; the figures outside the restart
//! leave out the updates acknowledged in a window around it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::data::{BATCH, join_all, ms, percentiles, section, thousands};
use super::server::Server;
use super::{Common, Report, Target, count, rate_up_to_100k, secs_one_to_an_hour};

/// The type of every watched entity (a term of the default vocabulary).
const TYPE: &str = "Sensor";
/// For context: what another broker publishes.
const ANCHORS: &str = "Orion-LD's published mean notification latency was 1.3 s on its smallest setup and 79 ms on 16 CPUs";
/// The p99 latency target outside the restart, in ms.
const P99_TARGET_MS: f64 = 50.0;
/// Updates acknowledged from this long before the kill ...
const WINDOW_BEFORE: Duration = Duration::from_secs(1);
/// ... to this long after the restarted server first answered /health are left out
/// of the latency figures outside the restart.
const WINDOW_AFTER: Duration = Duration::from_secs(5);
/// After the last update, the run waits at most this long for notifications ...
const DRAIN_MAX: Duration = Duration::from_secs(180);
/// ... and gives up earlier when none has come for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(20);
/// An update not answered within this long counts as not acknowledged.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscriptions created at once.
const CREATORS: usize = 8;

/// How big the run is.
#[derive(Debug, Clone)]
pub struct NotifySizes {
    /// Subscriptions, and entities (one each).
    pub subscriptions: usize,
    /// Updates per second, all clients together.
    pub rate: f64,
    pub secs: f64,
    /// Concurrent update clients.
    pub clients: usize,
    /// Whether the server is killed and restarted halfway.
    pub restart: bool,
    /// The `dothi` executable that serves the hub.
    pub server_exe: PathBuf,
}

/// `dothi bench notify`.
#[derive(clap::Args, Clone, Debug)]
pub struct NotifyArgs {
    /// Subscriptions, each watching one entity, 1 to 100000 [default: 1000; 100 with
    /// --quick].
    #[arg(long, value_parser = count(1..=100_000))]
    pub subscriptions: Option<usize>,
    /// Updates per second, all clients together, in (0, 100000] [default: 2000; 200
    /// with --quick].
    #[arg(long, value_parser = rate_up_to_100k)]
    pub rate: Option<f64>,
    /// Seconds of updates, in [1, 3600], with a server restart halfway [default: 60;
    /// 10 with --quick].
    #[arg(long, value_parser = secs_one_to_an_hour)]
    pub secs: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

impl NotifyArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> anyhow::Result<NotifySizes> {
        let rate = self.common.size(self.rate, 200.0, 2_000.0);
        Ok(NotifySizes {
            subscriptions: self.common.size(self.subscriptions, 100, 1_000),
            rate,
            secs: self.common.size(self.secs, 10.0, 60.0),
            // About 50 updates/s per client: room for a PATCH of 20 ms.
            clients: ((rate / 50.0).ceil() as usize).clamp(4, 64),
            restart: true,
            server_exe: std::env::current_exe().context("finding this executable")?,
        })
    }
}

impl NotifySizes {
    pub fn describe(&self) -> String {
        format!(
            "{} subscriptions (one entity each), {} updates/s for {} s by {} clients, {}; the server is a `dothi serve` child process, the receiver in this process",
            thousands(self.subscriptions as f64),
            thousands(self.rate),
            self.secs,
            self.clients,
            if self.restart {
                "one restart (SIGKILL) halfway"
            } else {
                "no restart"
            }
        )
    }

    /// Updates sent in the run.
    fn updates(&self) -> u64 {
        (self.rate * self.secs).floor() as u64
    }
}

/// What the run counted, which the tests check.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub subscriptions_created: u64,
    pub updates_sent: u64,
    pub acknowledged: u64,
    /// Notifications that should arrive: one per acknowledged update.
    pub expected: u64,
    /// Of those, how many arrived (at least once).
    pub received: u64,
    pub missing: u64,
    /// Notifications received beyond the first of each (subscription, entity, update).
    pub duplicates: u64,
    /// Notifications of updates sent but not acknowledged (committed, answer lost).
    pub unacknowledged_notified: u64,
    /// Notifications of no update sent, or from another entity's subscription, or that
    /// do not parse.
    pub unexpected: u64,
    /// Distinct notifications that arrived before an earlier update of their entity.
    pub out_of_order: u64,
}

// ---------------------------------------------------------------- names

fn entity_id(i: usize) -> String {
    format!("urn:ngsi-ld:{TYPE}:bench-notify-{i}")
}

fn subscription_id(i: usize) -> String {
    format!("urn:ngsi-ld:Subscription:bench-notify-{i}")
}

fn index_of(id: &str, prefix: &str) -> Option<usize> {
    id.strip_prefix(prefix)?.parse().ok()
}

// ---------------------------------------------------------------- the receiver

/// Every body received, with when it arrived; parsed after the run.
#[derive(Default)]
struct Inbox {
    bodies: Mutex<Vec<(Instant, Bytes)>>,
}

async fn receive(State(inbox): State<Arc<Inbox>>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    match inbox.bodies.lock() {
        Ok(mut bodies) => {
            bodies.push((at, body));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

struct Receiver {
    inbox: Arc<Inbox>,
    url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the receiver")?;
        let url = format!("http://{}/notify", listener.local_addr()?);
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { inbox, url, task })
    }

    /// The bodies received from the `from`th on.
    fn since(&self, from: usize) -> Vec<(Instant, Bytes)> {
        self.inbox
            .bodies
            .lock()
            .map(|b| b.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (subscription, entity, seq) of each entity in a notification.
fn parse_notification(body: &[u8]) -> Option<Vec<(usize, usize, u64)>> {
    let n: Value = serde_json::from_slice(body).ok()?;
    let sub = index_of(
        n["subscriptionId"].as_str()?,
        "urn:ngsi-ld:Subscription:bench-notify-",
    )?;
    let mut out = Vec::new();
    for e in n["data"].as_array()? {
        let entity = index_of(
            e["id"].as_str()?,
            &format!("urn:ngsi-ld:{TYPE}:bench-notify-"),
        )?;
        // keyValues; the normalized form too, should the format change.
        let seq = match &e["seq"] {
            Value::Object(o) => o.get("value")?.as_f64()?,
            v => v.as_f64()?,
        };
        if seq < 0.0 {
            // The value the entity was created with: no update's.
            return None;
        }
        out.push((sub, entity, seq as u64));
    }
    Some(out)
}

/// The notifications received so far, tallied as they are parsed.
#[derive(Default)]
struct Tally {
    parsed: usize,
    /// The first receipt of each (entity, seq) notified by the entity's subscription.
    first: HashMap<u64, Instant>,
    /// The highest seq received per entity (for the order check).
    last_seq: HashMap<usize, u64>,
    duplicates: u64,
    unexpected: u64,
    out_of_order: u64,
    last_receipt: Option<Instant>,
}

impl Tally {
    /// Parses what arrived since the last call. `sent` holds every seq sent.
    fn update(&mut self, receiver: &Receiver, subscriptions: usize, sent: u64) {
        let new = receiver.since(self.parsed);
        self.parsed += new.len();
        for (at, body) in new {
            self.last_receipt = Some(at);
            let Some(items) = parse_notification(&body) else {
                self.unexpected += 1;
                continue;
            };
            for (sub, entity, seq) in items {
                if sub != entity || seq >= sent || (seq % subscriptions as u64) as usize != entity {
                    self.unexpected += 1;
                    continue;
                }
                if self.first.contains_key(&seq) {
                    self.duplicates += 1;
                    continue;
                }
                self.first.insert(seq, at);
                let last = self.last_seq.entry(entity).or_insert(seq);
                if seq < *last {
                    self.out_of_order += 1;
                }
                *last = (*last).max(seq);
            }
        }
    }
}

// ---------------------------------------------------------------- the updates

/// What one update client saw.
#[derive(Default)]
struct ClientLog {
    /// (seq, when the 204 was read).
    acked: Vec<(u64, Instant)>,
    /// Sent, and not acknowledged.
    failed: Vec<u64>,
    first_error: Option<String>,
}

async fn update_client(
    client: reqwest::Client,
    base: String,
    next: Arc<AtomicU64>,
    start: Instant,
    sizes: NotifySizes,
) -> anyhow::Result<ClientLog> {
    let mut log = ClientLog::default();
    let total = sizes.updates();
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= total {
            return Ok(log);
        }
        let due = start + Duration::from_secs_f64(seq as f64 / sizes.rate);
        tokio::time::sleep_until(due.into()).await;
        let entity = (seq % sizes.subscriptions as u64) as usize;
        let body = json!({
            "seq": {"type": "Property", "value": seq},
            "sentUs": {"type": "Property", "value": start.elapsed().as_micros() as u64},
        });
        let sent = client
            .patch(format!(
                "{base}/ngsi-ld/v1/entities/{}/attrs",
                entity_id(entity)
            ))
            .header("content-type", "application/json")
            .timeout(UPDATE_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                let at = Instant::now();
                let _ = r.bytes().await;
                log.acked.push((seq, at));
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                log.failed.push(seq);
                log.first_error
                    .get_or_insert_with(|| format!("{status}: {text}"));
            }
            Err(e) => {
                log.failed.push(seq);
                log.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------- set-up

async fn create_entities(server: &Server, n: usize) -> anyhow::Result<()> {
    for from in (0..n).step_by(BATCH) {
        let batch: Vec<Value> = (from..(from + BATCH).min(n))
            .map(|i| {
                json!({
                    "id": entity_id(i),
                    "type": TYPE,
                    "seq": {"type": "Property", "value": -1},
                    "sentUs": {"type": "Property", "value": 0},
                })
            })
            .collect();
        let r = server
            .client
            .post(server.url("/ngsi-ld/v1/entityOperations/upsert"))
            .header("content-type", "application/json")
            .body(Value::Array(batch).to_string())
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "upserting the entities: {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn create_subscriptions(
    server: &Server,
    n: usize,
    receiver_url: &str,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CREATORS {
        let (client, url, next) = (
            server.client.clone(),
            server.url("/ngsi-ld/v1/subscriptions"),
            next.clone(),
        );
        let endpoint = receiver_url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut created = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok(created);
                }
                let body = json!({
                    "id": subscription_id(i),
                    "type": "Subscription",
                    "entities": [{"id": entity_id(i), "type": TYPE}],
                    "notification": {
                        "format": "keyValues",
                        "endpoint": {"uri": endpoint, "accept": "application/json"}
                    }
                });
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let status = r.status();
                if status != StatusCode::CREATED {
                    bail!(
                        "creating subscription {i}: {status}: {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                created += 1;
            }
        }));
    }
    Ok(join_all(tasks).await?.into_iter().sum())
}

// ---------------------------------------------------------------- the run

/// The kill and the restart, when they happened.
struct Restart {
    killed: Instant,
    ready: Instant,
}

pub async fn run(sizes: &NotifySizes, dir: &Path) -> anyhow::Result<Report> {
    Ok(measure(sizes, dir).await?.0)
}

/// The run, and the counts that say whether it measured what it meant to.
/// The run, with the counts that check it.
pub async fn measure(sizes: &NotifySizes, dir: &Path) -> anyhow::Result<(Report, Counts)> {
    let mut report = Report::default();
    let mut counts = Counts::default();
    let db = dir.join("hub-notify.db");
    let receiver = Receiver::start().await?;
    let server = Server::spawn(&sizes.server_exe, &db).await?;
    server
        .wait_healthy(Duration::from_secs(20))
        .await
        .context("starting dothi serve")?;
    let addr: SocketAddr = server.addr;

    section("Set-up");
    let t = Instant::now();
    create_entities(&server, sizes.subscriptions).await?;
    counts.subscriptions_created =
        create_subscriptions(&server, sizes.subscriptions, &receiver.url).await?;
    println!(
        "  {} entities and {} subscriptions (each: one entity by id and type, keyValues, to {}) in {:.1} s",
        thousands(sizes.subscriptions as f64),
        thousands(counts.subscriptions_created as f64),
        receiver.url,
        t.elapsed().as_secs_f64()
    );

    section("Updates");
    let total = sizes.updates();
    println!(
        "  {} PATCHes of `seq` and `sentUs`, paced at {} /s by {} clients, round the entities",
        thousands(total as f64),
        thousands(sizes.rate),
        sizes.clients
    );
    let start = Instant::now() + Duration::from_millis(100);
    let next = Arc::new(AtomicU64::new(0));
    let base = format!("http://{addr}");
    let mut clients = Vec::new();
    for _ in 0..sizes.clients {
        clients.push(tokio::spawn(update_client(
            server.client.clone(),
            base.clone(),
            next.clone(),
            start,
            sizes.clone(),
        )));
    }
    // Halfway: SIGKILL, then `dothi serve` again on the same file and port.
    let (server, restart) = if sizes.restart {
        tokio::time::sleep_until((start + Duration::from_secs_f64(sizes.secs / 2.0)).into()).await;
        let killed = Instant::now();
        server.kill().await?;
        let server = Server::spawn_at(&sizes.server_exe, &db, addr).await?;
        server
            .wait_healthy(Duration::from_secs(30))
            .await
            .context("restarting dothi serve")?;
        let ready = Instant::now();
        println!(
            "  at {:.1} s: SIGKILL; the new `dothi serve` on the same file answered /health {:.2} s later",
            killed.duration_since(start).as_secs_f64(),
            ready.duration_since(killed).as_secs_f64()
        );
        (server, Some(Restart { killed, ready }))
    } else {
        (server, None)
    };
    let logs = join_all(clients).await?;
    let send_secs = start.elapsed().as_secs_f64();
    let mut acked: Vec<(u64, Instant)> = Vec::new();
    let mut failed: HashSet<u64> = HashSet::new();
    let mut first_error = None;
    for log in logs {
        acked.extend(log.acked);
        failed.extend(log.failed);
        first_error = first_error.or(log.first_error);
    }
    acked.sort_unstable_by_key(|(seq, _)| *seq);
    counts.updates_sent = acked.len() as u64 + failed.len() as u64;
    counts.acknowledged = acked.len() as u64;
    counts.expected = acked.len() as u64;
    let sent_rate = counts.updates_sent as f64 / send_secs;
    let acked_rate = counts.acknowledged as f64 / send_secs;
    println!(
        "  sent {} in {send_secs:.1} s: {} /s (asked {} /s); acknowledged {} ({} /s), not acknowledged {}",
        thousands(counts.updates_sent as f64),
        thousands(sent_rate),
        thousands(sizes.rate),
        thousands(counts.acknowledged as f64),
        thousands(acked_rate),
        thousands(failed.len() as f64)
    );
    if let Some(e) = &first_error {
        println!("  first update not acknowledged: {e}");
    }

    section("Notifications");
    let mut tally = Tally::default();
    let drain = Instant::now();
    loop {
        tally.update(&receiver, sizes.subscriptions, total);
        let all = acked.iter().all(|(seq, _)| tally.first.contains_key(seq));
        let idle = tally
            .last_receipt
            .map_or(drain.elapsed(), |t| t.elapsed().min(drain.elapsed()));
        if all || idle > DRAIN_IDLE || drain.elapsed() > DRAIN_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  waited {:.1} s after the last update for the outbox to drain",
        drain.elapsed().as_secs_f64()
    );
    server.stop().await?;
    tally.update(&receiver, sizes.subscriptions, total);

    let mut latency_all = Vec::with_capacity(acked.len());
    let mut latency_outside = Vec::with_capacity(acked.len());
    let mut early = 0u64;
    for (seq, at) in &acked {
        let Some(received) = tally.first.get(seq) else {
            counts.missing += 1;
            continue;
        };
        counts.received += 1;
        if received < at {
            // The notification was faster than the answer to the PATCH.
            early += 1;
        }
        let latency = received.saturating_duration_since(*at);
        latency_all.push(latency);
        let in_window = restart
            .as_ref()
            .is_some_and(|r| *at + WINDOW_BEFORE >= r.killed && *at <= r.ready + WINDOW_AFTER);
        if !in_window {
            latency_outside.push(latency);
        }
    }
    counts.unacknowledged_notified = failed
        .iter()
        .filter(|seq| tally.first.contains_key(seq))
        .count() as u64;
    counts.duplicates = tally.duplicates;
    counts.unexpected = tally.unexpected;
    counts.out_of_order = tally.out_of_order;

    println!(
        "  expected {} (one per acknowledged update), received {} distinct (subscription, entity, update), missing {}",
        thousands(counts.expected as f64),
        thousands(counts.received as f64),
        thousands(counts.missing as f64)
    );
    println!(
        "  duplicates {} (at least once: a notification sent but not recorded before the kill is sent again)",
        thousands(counts.duplicates as f64)
    );
    println!(
        "  notified though not acknowledged {} (updates committed whose answer was lost to the kill); unexpected {}; out of order {}",
        thousands(counts.unacknowledged_notified as f64),
        thousands(counts.unexpected as f64),
        thousands(counts.out_of_order as f64)
    );
    let outside = percentiles(&latency_outside);
    let all = percentiles(&latency_all);
    match &restart {
        Some(r) => println!(
            "  latency, acknowledgement → receipt, outside the restart (updates acknowledged from {:.1} s to {:.1} s left out: {} s before the kill to {} s after the restart answered): {}",
            r.killed
                .duration_since(start)
                .saturating_sub(WINDOW_BEFORE)
                .as_secs_f64(),
            (r.ready + WINDOW_AFTER).duration_since(start).as_secs_f64(),
            WINDOW_BEFORE.as_secs(),
            WINDOW_AFTER.as_secs(),
            ms(&outside)
        ),
        None => println!("  latency, acknowledgement → receipt: {}", ms(&outside)),
    }
    println!("  latency, every update: {}", ms(&all));
    println!(
        "  {} notifications arrived before their PATCH's answer (counted as 0 ms)",
        thousands(early as f64)
    );
    println!("  for context: {ANCHORS}");

    let clean = counts.missing == 0 && counts.unexpected == 0;
    report.row(
        "notify_missing",
        "notifications missing (expected − received)",
        counts.missing as f64,
        "",
        Some(Target::AtMost(0.0)),
        true,
    );
    report.row(
        "notify_unexpected",
        "notifications of no acknowledged or sent update",
        counts.unexpected as f64,
        "",
        Some(Target::AtMost(0.0)),
        true,
    );
    report.row(
        "notify_expected",
        "notifications expected",
        counts.expected as f64,
        "",
        None,
        true,
    );
    report.row(
        "notify_received",
        "notifications received (distinct)",
        counts.received as f64,
        "",
        None,
        true,
    );
    report.row(
        "notify_duplicates",
        "duplicate notifications (at least once)",
        counts.duplicates as f64,
        "",
        None,
        true,
    );
    report.row(
        "notify_updates_sent_per_s",
        "updates sent per second (paced)",
        sent_rate,
        "/s",
        Some(Target::AtLeast(sizes.rate * 0.95)),
        true,
    );
    report.row(
        "notify_updates_acked_per_s",
        "updates acknowledged per second",
        acked_rate,
        "/s",
        None,
        true,
    );
    report.row(
        "notify_latency_p50_ms",
        "ack → notification, p50, outside the restart",
        outside.p50,
        "ms",
        None,
        clean,
    );
    report.row(
        "notify_latency_p99_ms",
        "ack → notification, p99, outside the restart",
        outside.p99,
        "ms",
        Some(Target::AtMost(P99_TARGET_MS)),
        clean,
    );
    if let Some(r) = &restart {
        report.row(
            "notify_restart_s",
            "restart: SIGKILL to first /health 200",
            r.ready.duration_since(r.killed).as_secs_f64(),
            "s",
            None,
            true,
        );
    }
    report.extra("notify_subscriptions", counts.subscriptions_created as f64);
    report.extra("notify_updates_sent", counts.updates_sent as f64);
    report.extra("notify_updates_acked", counts.acknowledged as f64);
    report.extra(
        "notify_unacknowledged_notified",
        counts.unacknowledged_notified as f64,
    );
    report.extra("notify_out_of_order", counts.out_of_order as f64);
    report.extra("notify_latency_all_p50_ms", all.p50);
    report.extra("notify_latency_all_p99_ms", all.p99);
    report.extra("notify_latency_all_max_ms", all.max);
    report.extra("notify_drain_s", drain.elapsed().as_secs_f64());
    if counts.received == 0 && counts.expected > 0 {
        return Err(anyhow!(
            "no notification arrived of {} expected",
            counts.expected
        ));
    }
    Ok((report, counts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        let body = json!({
            "id": "urn:ngsi-ld:Notification:1",
            "type": "Notification",
            "subscriptionId": subscription_id(7),
            "data": [{"id": entity_id(7), "type": TYPE, "seq": 1007, "sentUs": 5}]
        });
        assert_eq!(
            parse_notification(body.to_string().as_bytes()),
            Some(vec![(7, 7, 1007)])
        );
        let created = json!({
            "subscriptionId": subscription_id(7),
            "data": [{"id": entity_id(7), "type": TYPE, "seq": -1}]
        });
        assert_eq!(parse_notification(created.to_string().as_bytes()), None);
    }
}
