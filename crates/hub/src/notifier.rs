//! The notifier: delivers the notifications of the store's outbox, over HTTP or MQTT.
//!
//! It wakes when a commit queued notifications (the store's outbox signal), when a
//! delivery ends, and at least every [`POLL`]. It reads the outbox in order, each row
//! once (every row after the last it read, in one query per [`READ_BATCH`] rows), into
//! a queue per subscription kept in memory; it sends the head of each queue that is
//! due, up to [`MAX_IN_FLIGHT`] at once, each in its own task, at most one per
//! subscription: a receiver that hangs or fails delays only its own subscription. A
//! row leaves the outbox (and its queue) once delivered; a failure is retried after an
//! exponential backoff (1 s doubling up to 5 min, or the endpoint's `cooldown` if
//! longer), without limit. So delivery is at least once, in order per subscription,
//! across restarts (a restart reads the outbox again from its start).
//!
//! A delivery is recorded (its row deleted, the subscription's counters moved) by a
//! recorder task, in batches, after the next notification may already be on its way:
//! a slow commit then delays the bookkeeping, never the notifications. A crash before
//! the record sends the notification again, which at-least-once allows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::Entity;
use ngsi::subscription::{MqttTarget, MqttVersion, Subscription};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use store::{EntityQuery, OutboxRow, Store};
use tokio::sync::Notify;

use crate::Hub;
use crate::http::join::{Join, LinkSource, with_links};

/// Deliveries in flight at most (one per subscription).
pub const MAX_IN_FLIGHT: usize = 32;
/// The longest wait between two looks at the outbox (retries become due by time).
pub const POLL: Duration = Duration::from_millis(500);
/// How long a receiver may take when the endpoint sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first retry delay, doubled after each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Outbox rows read per query.
pub const READ_BATCH: usize = 1024;
/// Queries of new rows per wake at most (then it wakes again at once).
const READS_PER_WAKE: usize = 16;
/// Rows of one subscription kept in memory at most; the rest stay in the outbox and
/// are read, by subscription, once its queue is empty.
pub const QUEUE_MAX: usize = 64;

/// When a notification that failed `attempts` times (this one included) is tried
/// again.
pub fn retry_delay(attempts: u32, cooldown_ms: Option<u64>) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    let backoff = FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF);
    backoff.max(Duration::from_millis(cooldown_ms.unwrap_or(0)))
}

/// Deliveries waiting for their record at most (then deliveries wait for room).
const RECORDS_QUEUED: usize = 8_192;
/// Deliveries recorded at once (they reach the store's writer together and commit in
/// one group).
const RECORD_BATCH: usize = 256;

/// Starts the notifier; it runs until the task is aborted.
pub fn spawn(hub: Arc<Hub>) -> tokio::task::JoinHandle<()> {
    let (records, delivered) = tokio::sync::mpsc::channel(RECORDS_QUEUED);
    let recorder = tokio::spawn(record_deliveries(hub.store().clone(), delivered));
    let notifier = Arc::new(Notifier::new(hub, records));
    tokio::spawn(async move {
        // The recorder ends when the notifier's sender is dropped with it.
        let _recorder = AbortOnDrop(recorder);
        run(notifier).await;
    })
}

/// Aborts a task when dropped (so aborting the notifier aborts its recorder).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records deliveries in the store, a batch at a time; a record that fails is tried
/// again (the notification was delivered: it is not sent again unless the process
/// stops first).
async fn record_deliveries(
    store: Arc<dyn Store>,
    mut delivered: tokio::sync::mpsc::Receiver<(i64, DateTime<Utc>)>,
) {
    let mut pending = Vec::with_capacity(RECORD_BATCH);
    loop {
        if pending.is_empty() {
            if delivered.recv_many(&mut pending, RECORD_BATCH).await == 0 {
                return;
            }
        } else {
            while pending.len() < RECORD_BATCH {
                match delivered.try_recv() {
                    Ok(d) => pending.push(d),
                    Err(_) => break,
                }
            }
        }
        let results = futures_util::future::join_all(
            pending
                .iter()
                .map(|(row, at)| store.outbox_delivered(*row, *at)),
        )
        .await;
        let mut retry = Vec::new();
        let mut failure = None;
        for (d, r) in pending.drain(..).zip(results) {
            if let Err(e) = r {
                failure = Some(e);
                retry.push(d);
            }
        }
        pending = retry;
        if let Some(e) = failure {
            tracing::warn!(error = %e, left = pending.len(), "cannot record deliveries; retrying");
            tokio::time::sleep(FIRST_BACKOFF).await;
        }
    }
}

struct Notifier {
    store: Arc<dyn Store>,
    /// For the @context and the linked entities of a notification with a `join`.
    hub: Arc<Hub>,
    /// Endpoints are reached only as the outbound policy allows.
    http: Option<crate::outbound::OutboundClient>,
    /// The same policy for MQTT brokers, which are resolved and checked here and
    /// connected to by address.
    outbound: Arc<crate::outbound::OutboundPolicy>,
    /// One MQTT client per broker (host, port, user, TLS).
    brokers: Mutex<HashMap<BrokerKey, Broker>>,
    queues: Mutex<Queues>,
    /// Notified when a delivery ends.
    done: Notify,
    /// Deliveries to record (`record_deliveries`).
    records: tokio::sync::mpsc::Sender<(i64, DateTime<Utc>)>,
}

type Key = (String, String);

/// The outbox as far as it was read, per subscription (tenant, id).
#[derive(Default)]
struct Queues {
    /// The last outbox row read: the next read starts after it. Rows commit in id
    /// order (one writer), so a read sees every row up to the last it returns, and
    /// each row is read once: no stale read can hand out again a row already sent.
    cursor: i64,
    subs: HashMap<Key, Queue>,
    in_flight: usize,
}

#[derive(Default)]
struct Queue {
    /// Its undelivered rows read, in id order; the head is the next to send.
    rows: VecDeque<OutboxRow>,
    /// The last of its rows put in `rows`.
    last: i64,
    /// Rows up to the cursor were left in the outbox (the queue was full): read
    /// them, by subscription, when `rows` is empty.
    more: bool,
    /// Its head is being delivered.
    busy: bool,
}

/// How an attempt ended.
enum Outcome {
    /// Delivered (its record queued): the row is done with.
    Delivered,
    /// Failed and recorded: tried again from then.
    Failed {
        attempts: u32,
        retry_at: DateTime<Utc>,
    },
    /// The subscription is gone, and its rows with it.
    Gone,
    /// Not recorded (the store failed): the row stays, tried again from then.
    Again(DateTime<Utc>),
}

type BrokerKey = (String, u16, Option<String>, bool);

struct Broker {
    client: AsyncClient,
    connected: Arc<std::sync::atomic::AtomicBool>,
    events: tokio::task::JoinHandle<()>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Ok(brokers) = self.brokers.lock() {
            for b in brokers.values() {
                b.events.abort();
            }
        }
    }
}

async fn run(notifier: Arc<Notifier>) {
    let signal = notifier.store.outbox_signal();
    loop {
        let committed = signal.notified();
        let done = notifier.done.notified();
        tokio::pin!(committed, done);
        committed.as_mut().enable();
        done.as_mut().enable();
        notifier.dispatch().await;
        tokio::select! {
            () = committed => {}
            () = done => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

impl Notifier {
    fn new(hub: Arc<Hub>, records: tokio::sync::mpsc::Sender<(i64, DateTime<Utc>)>) -> Notifier {
        let store = hub.store().clone();
        let outbound = &hub.outbound();
        // A notifier that cannot build its checked client sends nothing (every
        // attempt fails and is retried) rather than send unchecked.
        let http = crate::outbound::OutboundClient::new(outbound, |b| {
            b.redirect(reqwest::redirect::Policy::none())
        })
        .map_err(|e| tracing::error!(error = %e, "the notifier's HTTP client failed"))
        .ok();
        Notifier {
            store,
            hub,
            http,
            outbound: outbound.clone(),
            brokers: Mutex::default(),
            queues: Mutex::default(),
            done: Notify::new(),
            records,
        }
    }

    /// Reads the new rows of the outbox, refills the queues left short, and starts a
    /// delivery for each due head whose subscription has none in flight.
    async fn dispatch(self: &Arc<Self>) {
        self.read_new().await;
        self.refill().await;
        self.start_due();
    }

    /// Reads the rows after the cursor into the queues.
    async fn read_new(&self) {
        for _ in 0..READS_PER_WAKE {
            let Ok(cursor) = self.queues.lock().map(|q| q.cursor) else {
                return;
            };
            let rows = match self.store.outbox_after(cursor, None, READ_BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; retrying");
                    return;
                }
            };
            let full = rows.len() >= READ_BATCH;
            let Ok(mut queues) = self.queues.lock() else {
                return;
            };
            for row in rows {
                queues.cursor = queues.cursor.max(row.id);
                let q = queues
                    .subs
                    .entry((row.tenant.clone(), row.subscription_id.clone()))
                    .or_default();
                if row.id <= q.last {
                    continue;
                }
                if q.more || q.rows.len() >= QUEUE_MAX {
                    q.more = true;
                } else {
                    q.last = row.id;
                    q.rows.push_back(row);
                }
            }
            if !full {
                return;
            }
        }
        // More to read: come back at once.
        self.done.notify_one();
    }

    /// Reads, by subscription, the rows left in the outbox of the queues now empty.
    async fn refill(&self) {
        let short: Vec<(Key, i64)> = match self.queues.lock() {
            Ok(queues) => queues
                .subs
                .iter()
                .filter(|(_, q)| q.more && q.rows.is_empty() && !q.busy)
                .map(|(k, q)| (k.clone(), q.last))
                .collect(),
            Err(_) => return,
        };
        for (key, last) in short {
            let rows = match self
                .store
                .outbox_after(last, Some((&key.0, &key.1)), QUEUE_MAX)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; retrying");
                    return;
                }
            };
            let Ok(mut queues) = self.queues.lock() else {
                return;
            };
            let cursor = queues.cursor;
            let Some(q) = queues.subs.get_mut(&key) else {
                continue;
            };
            let all = rows.len() < QUEUE_MAX || rows.iter().any(|r| r.id > cursor);
            for row in rows {
                // Rows after the cursor come with the next read of new rows.
                if row.id > q.last && row.id <= cursor {
                    q.last = row.id;
                    q.rows.push_back(row);
                }
            }
            if all {
                q.more = false;
            }
            if q.rows.is_empty() && !q.more {
                queues.subs.remove(&key);
            }
        }
    }

    /// Starts the delivery of each due head, oldest first.
    fn start_due(self: &Arc<Self>) {
        let now = ngsi::entity::now();
        let mut started = Vec::new();
        {
            let Ok(mut queues) = self.queues.lock() else {
                return;
            };
            let room = MAX_IN_FLIGHT.saturating_sub(queues.in_flight);
            if room == 0 {
                return;
            }
            let mut due: Vec<(i64, &Key)> = queues
                .subs
                .iter()
                .filter(|(_, q)| !q.busy)
                .filter_map(|(k, q)| q.rows.front().map(|r| (r, k)))
                .filter(|(r, _)| r.next_attempt_at <= now)
                .map(|(r, k)| (r.id, k))
                .collect();
            due.sort_unstable_by_key(|(id, _)| *id);
            let keys: Vec<Key> = due.into_iter().take(room).map(|(_, k)| k.clone()).collect();
            for key in keys {
                if let Some(q) = queues.subs.get_mut(&key)
                    && let Some(row) = q.rows.front()
                {
                    q.busy = true;
                    started.push((key, row.clone()));
                }
            }
            queues.in_flight += started.len();
        }
        for (key, row) in started {
            let me = self.clone();
            tokio::spawn(async move {
                let id = row.id;
                let outcome = me.deliver(row).await;
                me.settle(&key, id, outcome);
                me.done.notify_one();
            });
        }
    }

    /// Records in the queues how an attempt at row `id` ended.
    fn settle(&self, key: &Key, id: i64, outcome: Outcome) {
        let Ok(mut queues) = self.queues.lock() else {
            return;
        };
        queues.in_flight = queues.in_flight.saturating_sub(1);
        let Some(q) = queues.subs.get_mut(key) else {
            return;
        };
        q.busy = false;
        match outcome {
            Outcome::Gone => {
                queues.subs.remove(key);
                return;
            }
            Outcome::Delivered => {
                if q.rows.front().is_some_and(|r| r.id == id) {
                    q.rows.pop_front();
                }
            }
            Outcome::Failed { attempts, retry_at } => {
                if let Some(head) = q.rows.front_mut().filter(|r| r.id == id) {
                    head.attempts = attempts;
                    head.next_attempt_at = retry_at;
                }
            }
            Outcome::Again(at) => {
                if let Some(head) = q.rows.front_mut().filter(|r| r.id == id) {
                    head.next_attempt_at = at;
                }
            }
        }
        if q.rows.is_empty() && !q.more {
            queues.subs.remove(key);
        }
    }

    /// Sends one notification and records the outcome.
    async fn deliver(&self, row: OutboxRow) -> Outcome {
        let sub = match self
            .store
            .subscription_get(&row.tenant, &row.subscription_id)
            .await
        {
            Ok(Some(stored)) => stored.subscription,
            // Deleted since: its rows went with it.
            Ok(None) => return Outcome::Gone,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a subscription; retrying");
                return Outcome::Again(later(ngsi::entity::now(), FIRST_BACKOFF));
            }
        };
        let mut row = row;
        if let Some(join) = sub.notification.join {
            match self.joined(&sub, &row, join).await {
                Ok(payload) => row.payload = payload,
                Err(e) => {
                    tracing::warn!(subscription = %sub.id, error = %e, "cannot join the linked entities; retrying");
                    return Outcome::Again(later(ngsi::entity::now(), FIRST_BACKOFF));
                }
            }
        }
        let sent = match sub.notification.endpoint.mqtt_target() {
            Some(target) => self.publish(&sub, target, &row).await,
            None => self.post(&sub, &row).await,
        };
        let now = ngsi::entity::now();
        let attempts = row.attempts.saturating_add(1);
        let retry_at = later(
            now,
            retry_delay(attempts, sub.notification.endpoint.cooldown),
        );
        let (recorded, outcome) = match sent {
            Ok(()) => {
                // Recorded by the recorder; only a closed recorder (shutting down)
                // leaves the row to be sent again.
                let queued = self.records.send((row.id, now)).await;
                (
                    queued.map_err(|_| store::StoreError::Other("the recorder stopped".into())),
                    Outcome::Delivered,
                )
            }
            Err(why) => {
                tracing::info!(
                    subscription = %sub.id,
                    attempts,
                    retry_in = ?retry_delay(attempts, sub.notification.endpoint.cooldown),
                    error = %why,
                    "notification failed"
                );
                (
                    self.store.outbox_failed(row.id, now, retry_at).await,
                    Outcome::Failed { attempts, retry_at },
                )
            }
        };
        match recorded {
            Ok(()) => outcome,
            Err(e) => {
                // The row stays: it will be sent again (at least once).
                tracing::warn!(error = %e, "cannot record a delivery");
                Outcome::Again(later(now, FIRST_BACKOFF))
            }
        }
    }

    /// The notification of `row` with the entities its entities link to
    /// (`notification.join`, clause 4.5.23): inline, inside the Relationships;
    /// flat, after the notified entities. The links are those of each entity as it
    /// is when the notification goes, and the linked entities as they are then; an
    /// entity no longer there (a deletion) is sent as it was, without links.
    async fn joined(
        &self,
        sub: &Subscription,
        row: &OutboxRow,
        join: ngsi::subscription::Join,
    ) -> Result<Value, ngsi::Error> {
        let mut payload = row.payload.clone();
        let Some(data) = payload.get_mut("data").and_then(Value::as_array_mut) else {
            return Ok(payload);
        };
        let ids: Vec<String> = data
            .iter()
            .filter_map(|e| e.get("id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Ok(payload);
        }
        let reader = LinkSource::Tenant(self.store.as_ref(), &row.tenant);
        let mut current: HashMap<String, Entity> = self
            .store
            .query(
                &row.tenant,
                EntityQuery {
                    limit: ids.len(),
                    ids,
                    ..Default::default()
                },
            )
            .await
            .map_err(crate::service::store_error)?
            .entities
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let ctx = self
            .hub
            .contexts
            .resolve(&sub.notification_context())
            .await?;
        let compiled = sub.compile()?;
        let opts = compiled.render_options(&ctx);
        // The notified entities still there, and where each is in `data`.
        let mut at = Vec::new();
        let mut roots = Vec::new();
        let mut rendered = Vec::new();
        for (i, item) in data.iter_mut().enumerate() {
            let found = item
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| current.remove(id));
            if let (Some(entity), Value::Object(map)) = (found, item) {
                at.push(i);
                roots.push(entity);
                rendered.push(std::mem::take(map));
            }
        }
        let level = usize::from(sub.notification.join_level.unwrap_or(1));
        let how = match join {
            ngsi::subscription::Join::Inline => Join::Inline,
            ngsi::subscription::Join::Flat => Join::Flat,
        };
        let mut joined = with_links(&reader, &roots, rendered, &opts, None, (how, level))
            .await?
            .into_iter();
        for i in at {
            if let Some(v) = joined.next() {
                data[i] = v;
            }
        }
        // Flat: the linked entities follow, each a JSON-LD document of its own when
        // the @context travels in the body.
        for mut linked in joined {
            if sub.context_in_body()
                && let Value::Object(map) = &mut linked
            {
                map.insert("@context".into(), ctx.response_value());
            }
            data.push(linked);
        }
        Ok(payload)
    }

    async fn post(&self, sub: &Subscription, row: &OutboxRow) -> Result<(), String> {
        let endpoint = &sub.notification.endpoint;
        let timeout = endpoint
            .timeout
            .filter(|t| *t > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let http = self
            .http
            .as_ref()
            .ok_or_else(|| "no HTTP client".to_string())?;
        let mut request = http
            .post(&endpoint.uri)
            .map_err(|e| e.to_string())?
            .timeout(timeout)
            .body(row.payload.to_string());
        for (name, value) in sub.http_headers() {
            request = request.header(name, value);
        }
        if !row.tenant.is_empty() {
            request = request.header("NGSILD-Tenant", row.tenant.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::outbound::describe(&e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }

    async fn publish(
        &self,
        sub: &Subscription,
        target: MqttTarget,
        row: &OutboxRow,
    ) -> Result<(), String> {
        let message = sub.mqtt_message(row.payload.clone()).to_string();
        let qos = match target.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        let address = self
            .outbound
            .first_address(&target.host, target.port)
            .await?;
        let (client, connected) = self.broker(&target, address)?;
        // Wait a little for a new client's connection.
        wait_connected(&connected, 20, &target.host, target.port).await?;
        publish_within(&client, target.topic, qos, message, DEFAULT_TIMEOUT).await
    }

    /// The client of a broker, connecting the first time to `address` (the broker's
    /// host as resolved and allowed by the outbound policy).
    fn broker(
        &self,
        target: &MqttTarget,
        address: std::net::SocketAddr,
    ) -> Result<(AsyncClient, Arc<std::sync::atomic::AtomicBool>), String> {
        let key = (
            target.host.clone(),
            target.port,
            target.username.clone(),
            target.tls,
        );
        let mut brokers = self
            .brokers
            .lock()
            .map_err(|_| "MQTT clients poisoned".to_string())?;
        if let Some(b) = brokers.get(&key) {
            return Ok((b.client.clone(), b.connected.clone()));
        }
        if target.tls {
            return Err("mqtts endpoints are not supported yet".into());
        }
        if target.version == MqttVersion::V5 {
            tracing::debug!("MQTT 5 requested; publishing with MQTT 3.1.1");
        }
        let id = format!(
            "dothi-notifier-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
        options.set_keep_alive(Duration::from_secs(30));
        if let Some(user) = &target.username {
            options.set_credentials(user, target.password.clone().unwrap_or_default());
        }
        let (client, mut events) = AsyncClient::new(options, 256);
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = connected.clone();
        let events = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        flag.store(false, std::sync::atomic::Ordering::Relaxed);
                        tracing::debug!(error = %e, "MQTT notifier connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        brokers.insert(
            key,
            Broker {
                client: client.clone(),
                connected: connected.clone(),
                events,
            },
        );
        Ok((client, connected))
    }
}

fn later(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(300))
}

/// Waits for a broker's new client to connect: `tries` times 100 ms at most.
pub async fn wait_connected(
    connected: &std::sync::atomic::AtomicBool,
    tries: u32,
    host: &str,
    port: u16,
) -> Result<(), String> {
    for _ in 0..tries {
        if connected.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if connected.load(std::sync::atomic::Ordering::Relaxed) {
        Ok(())
    } else {
        Err(format!("not connected to the MQTT broker {host}:{port}"))
    }
}

/// Publishes a notification's `message` to `topic`, failing after `timeout`.
pub async fn publish_within(
    client: &AsyncClient,
    topic: String,
    qos: QoS,
    message: String,
    timeout: Duration,
) -> Result<(), String> {
    tokio::time::timeout(timeout, client.publish(topic, qos, false, message))
        .await
        .map_err(|_| "MQTT publish timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(retry_delay(1, None), Duration::from_secs(1));
        assert_eq!(retry_delay(2, None), Duration::from_secs(2));
        assert_eq!(retry_delay(4, None), Duration::from_secs(8));
        assert_eq!(retry_delay(40, None), MAX_BACKOFF);
        assert_eq!(retry_delay(1, Some(10_000)), Duration::from_secs(10));
    }
}
