//! The notifier: delivers the notifications of the store's outbox, over HTTP or MQTT.
//!
//! It wakes when a commit queued notifications (the store's outbox signal), when a
//! delivery ends, and at least every [`POLL`]. It takes the due rows in outbox order,
//! at most one per subscription (the store hands out only the oldest of each), and
//! sends up to [`MAX_IN_FLIGHT`] at once, each in its own task: a receiver that hangs
//! or fails delays only its own subscription. A row leaves the outbox once delivered;
//! a failure is retried after an exponential backoff (1 s doubling up to 5 min, or
//! the endpoint's `cooldown` if longer), without limit. So delivery is at least once,
//! in order per subscription, across restarts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::subscription::{MqttTarget, MqttVersion, Subscription};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use store::{OutboxRow, Store};
use tokio::sync::Notify;

/// Deliveries in flight at most (one per subscription).
pub const MAX_IN_FLIGHT: usize = 32;
/// The longest wait between two looks at the outbox (retries become due by time).
pub const POLL: Duration = Duration::from_millis(500);
/// How long a receiver may take when the endpoint sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first retry delay, doubled after each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// When a notification that failed `attempts` times (this one included) is tried
/// again.
pub fn retry_delay(attempts: u32, cooldown_ms: Option<u64>) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    let backoff = FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF);
    backoff.max(Duration::from_millis(cooldown_ms.unwrap_or(0)))
}

/// Starts the notifier; it runs until the task is aborted.
pub fn spawn(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(Arc::new(Notifier::new(store))))
}

struct Notifier {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// One MQTT client per broker (host, port, user, TLS).
    brokers: Mutex<HashMap<BrokerKey, Broker>>,
    /// Subscriptions (tenant, id) with a delivery in flight.
    in_flight: Mutex<HashSet<(String, String)>>,
    /// The last row of each subscription whose attempt ended and was recorded: (row,
    /// its failed attempts after it; `u32::MAX` once delivered). A read of the outbox
    /// that began before that record committed still shows the row as it was, due;
    /// it must not be sent again (a duplicate, or a retry without backoff). An entry
    /// goes once a read shows the row's new state.
    settled: Mutex<HashMap<(String, String), (i64, u32)>>,
    /// Notified when a delivery ends.
    done: Notify,
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
    fn new(store: Arc<dyn Store>) -> Notifier {
        Notifier {
            store,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            brokers: Mutex::default(),
            in_flight: Mutex::default(),
            settled: Mutex::default(),
            done: Notify::new(),
        }
    }

    /// Starts a delivery for each due row whose subscription has none in flight.
    async fn dispatch(self: &Arc<Self>) {
        let busy = self.in_flight.lock().map(|s| s.len()).unwrap_or(0);
        if busy >= MAX_IN_FLIGHT {
            return;
        }
        let rows = match self
            .store
            .outbox_due(ngsi::entity::now(), MAX_IN_FLIGHT * 4)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; retrying");
                return;
            }
        };
        for row in rows {
            let key = (row.tenant.clone(), row.subscription_id.clone());
            {
                let Ok(mut in_flight) = self.in_flight.lock() else {
                    return;
                };
                if in_flight.contains(&key) {
                    continue;
                }
                if let Ok(mut settled) = self.settled.lock()
                    && let Some(&(id, attempts)) = settled.get(&key)
                {
                    if row.id < id || (row.id == id && row.attempts < attempts) {
                        // Read before the outcome of its last attempt was recorded.
                        continue;
                    }
                    settled.remove(&key);
                }
                if in_flight.len() >= MAX_IN_FLIGHT {
                    return;
                }
                if !in_flight.insert(key.clone()) {
                    continue;
                }
            }
            let me = self.clone();
            tokio::spawn(async move {
                if let Some(outcome) = me.deliver(row).await
                    && let Ok(mut settled) = me.settled.lock()
                {
                    settled.insert(key.clone(), outcome);
                }
                if let Ok(mut in_flight) = me.in_flight.lock() {
                    in_flight.remove(&key);
                }
                me.done.notify_one();
            });
        }
    }

    /// Sends one notification and records the outcome; returns the row's id and its
    /// failed attempts (`u32::MAX` once delivered) when the outcome was recorded.
    async fn deliver(&self, row: OutboxRow) -> Option<(i64, u32)> {
        let sub = match self
            .store
            .subscription_get(&row.tenant, &row.subscription_id)
            .await
        {
            Ok(Some(stored)) => stored.subscription,
            // Deleted since: its rows went with it.
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a subscription; retrying");
                return None;
            }
        };
        let sent = match sub.notification.endpoint.mqtt_target() {
            Some(target) => self.publish(&sub, target, &row).await,
            None => self.post(&sub, &row).await,
        };
        let now = ngsi::entity::now();
        let delivered = sent.is_ok();
        let recorded = match sent {
            Ok(()) => self.store.outbox_delivered(row.id, now).await,
            Err(why) => {
                let delay = retry_delay(
                    row.attempts.saturating_add(1),
                    sub.notification.endpoint.cooldown,
                );
                tracing::info!(
                    subscription = %sub.id,
                    attempts = row.attempts + 1,
                    retry_in = ?delay,
                    error = %why,
                    "notification failed"
                );
                self.store
                    .outbox_failed(row.id, now, later(now, delay))
                    .await
            }
        };
        match recorded {
            Ok(()) if delivered => Some((row.id, u32::MAX)),
            Ok(()) => Some((row.id, row.attempts.saturating_add(1))),
            Err(e) => {
                // The row stays due: it will be sent again (at least once).
                tracing::warn!(error = %e, "cannot record a delivery");
                None
            }
        }
    }

    async fn post(&self, sub: &Subscription, row: &OutboxRow) -> Result<(), String> {
        let endpoint = &sub.notification.endpoint;
        let timeout = endpoint
            .timeout
            .filter(|t| *t > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let mut request = self
            .http
            .post(&endpoint.uri)
            .timeout(timeout)
            .body(row.payload.to_string());
        for (name, value) in sub.http_headers() {
            request = request.header(name, value);
        }
        if !row.tenant.is_empty() {
            request = request.header("NGSILD-Tenant", row.tenant.as_str());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
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
        let (client, connected) = self.broker(&target)?;
        // Wait a little for a new client's connection.
        for _ in 0..20 {
            if connected.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !connected.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!(
                "not connected to the MQTT broker {}:{}",
                target.host, target.port
            ));
        }
        tokio::time::timeout(
            DEFAULT_TIMEOUT,
            client.publish(target.topic, qos, false, message),
        )
        .await
        .map_err(|_| "MQTT publish timed out".to_string())?
        .map_err(|e| e.to_string())
    }

    /// The client of a broker, connecting the first time.
    fn broker(
        &self,
        target: &MqttTarget,
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
        let mut options = MqttOptions::new(id, &target.host, target.port);
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
