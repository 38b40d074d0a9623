//! Measures over MQTT: the agent subscribes to `/json/+/+/attrs` and
//! `/json/+/+/attrs/+` (QoS 1) and turns each message into one update of the device's
//! entity.
//!
//! A QoS 1 message is acknowledged only once its update is durable (manual acks): if
//! dothi stops first, the broker delivers it again (with a persistent session, the
//! default). Messages of one device are applied in the order they arrive — each device
//! goes to one of a few workers, by its API key and id — while messages of different
//! devices are applied concurrently, so that their writes share commits. The
//! connection is re-established by itself, with a growing delay.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::agent::{Agent, IngestError, Message, Payload, Transport};

/// The topics subscribed to.
pub const TOPICS: [&str; 2] = ["/json/+/+/attrs", "/json/+/+/attrs/+"];

/// Workers applying messages; each device always goes to the same one. A worker waits
/// for each write to be durable, so workers are how many writes share a commit: the
/// broker's window of unacknowledged messages (Mosquitto: 20 by default) is the other
/// bound.
const WORKERS: usize = 32;
/// Messages waiting for a worker, beyond which QoS 0 messages are dropped (counted as
/// `overloaded`). The connection's loop never waits for a worker: waiting there stops
/// it from answering the broker's keep-alive, and the broker then drops the connection
/// (seen under load). QoS 1 and 2 messages are always queued: the broker sends no more
/// of them unacknowledged than its window (`max_inflight_messages`), which bounds them.
const MAX_WAITING: usize = 10_000;
/// Largest MQTT packet read (larger payloads are refused by the agent anyway).
const MAX_INCOMING_PACKET: usize = 1024 * 1024;
/// Delays between reconnections, and between retries of a write the store refused
/// for being unavailable.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Why the MQTT settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    #[error("{0:?} is not a URL like mqtt://127.0.0.1:1883")]
    NotAUrl(String),
    #[error("unsupported scheme {0:?}: only mqtt:// (or tcp://) is supported")]
    Scheme(String),
    #[error("the client id must have 1 to 64 characters")]
    ClientId,
    #[error(
        "a shared subscription group has 1 to 64 characters, none of them '/', '+', '#' or a space"
    )]
    SharedGroup,
}

/// Where and how the agent connects.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    /// Whether the broker forgets the session (subscriptions and unacknowledged
    /// messages) when the agent disconnects. False by default: messages published
    /// while dothi is down, or received and not yet written, are delivered later.
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// A shared subscription group (`$share/{group}/…`): the nodes of one hub that
    /// subscribe in the same group each get a share of the measures, every measure
    /// going to one of them. None: this agent gets every measure.
    pub shared_group: Option<String>,
}

impl MqttConfig {
    /// The port of `mqtt://` when the URL names none.
    pub const DEFAULT_PORT: u16 = 1883;

    /// The settings of a broker on this machine (127.0.0.1, the default port) when one
    /// accepts a connection within half a second; else None, said in the log.
    pub async fn local_broker(client_id: &str) -> Option<MqttConfig> {
        let probe = tokio::net::TcpStream::connect(("127.0.0.1", Self::DEFAULT_PORT));
        match tokio::time::timeout(std::time::Duration::from_millis(500), probe).await {
            Ok(Ok(_)) => MqttConfig::from_url("mqtt://127.0.0.1:1883", client_id).ok(),
            _ => {
                tracing::info!("no MQTT broker on 127.0.0.1:1883: device measures over HTTP only");
                None
            }
        }
    }

    /// From `mqtt://[user:password@]host[:port]` (`tcp://` too; port 1883 by default).
    pub fn from_url(url: &str, client_id: &str) -> Result<MqttConfig, MqttConfigError> {
        let parsed = url::Url::parse(url).map_err(|_| MqttConfigError::NotAUrl(url.into()))?;
        if !matches!(parsed.scheme(), "mqtt" | "tcp") {
            return Err(MqttConfigError::Scheme(parsed.scheme().to_string()));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MqttConfigError::NotAUrl(url.into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if client_id.is_empty() || client_id.chars().count() > 64 {
            return Err(MqttConfigError::ClientId);
        }
        let credentials = (!parsed.username().is_empty()).then(|| {
            (
                parsed.username().to_string(),
                parsed.password().unwrap_or_default().to_string(),
            )
        });
        Ok(MqttConfig {
            host,
            port: parsed.port().unwrap_or(Self::DEFAULT_PORT),
            client_id: client_id.to_string(),
            credentials,
            clean_session: false,
            keep_alive: Duration::from_secs(30),
            shared_group: None,
        })
    }

    /// Subscribes in the shared group `group` (a name without `/`, `+`, `#`, of 1 to
    /// 64 characters).
    pub fn shared(mut self, group: &str) -> Result<MqttConfig, MqttConfigError> {
        let valid = !group.is_empty()
            && group.chars().count() <= 64
            && !group.contains(['/', '+', '#'])
            && !group.chars().any(char::is_whitespace);
        if !valid {
            return Err(MqttConfigError::SharedGroup);
        }
        self.shared_group = Some(group.to_string());
        Ok(self)
    }

    /// The topic filters subscribed to.
    pub fn filters(&self) -> Vec<String> {
        TOPICS
            .iter()
            .map(|t| match &self.shared_group {
                Some(g) => format!("$share/{g}/{t}"),
                None => t.to_string(),
            })
            .collect()
    }
}

/// The API key, device id and, for a one-measure topic, the measure's name.
pub fn parse_topic(topic: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = topic.strip_prefix("/json/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [k, d, "attrs"] if !k.is_empty() && !d.is_empty() => Some((k, d, None)),
        [k, d, "attrs", n] if !k.is_empty() && !d.is_empty() && !n.is_empty() => {
            Some((k, d, Some(n)))
        }
        _ => None,
    }
}

/// The running MQTT ingestion.
pub struct MqttIngest {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    subscribed: watch::Receiver<bool>,
}

impl MqttIngest {
    /// Connects (and keeps reconnecting) in the background.
    pub fn start(agent: Arc<Agent>, config: MqttConfig) -> MqttIngest {
        let (stop, stopped) = oneshot::channel();
        let (tell, subscribed) = watch::channel(false);
        tracing::info!(host = %config.host, port = config.port, client_id = %config.client_id, "MQTT ingestion starting");
        let task = tokio::spawn(run(agent, config, stopped, tell));
        MqttIngest {
            stop: Some(stop),
            task: Some(task),
            subscribed,
        }
    }

    /// Waits until the subscriptions are in place (true), or the timeout (false).
    pub async fn wait_subscribed(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.subscribed.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Disconnects and waits for the background tasks. Messages received and not yet
    /// written stay unacknowledged: the broker delivers them again.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MqttIngest {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run(
    agent: Arc<Agent>,
    config: MqttConfig,
    mut stop: oneshot::Receiver<()>,
    subscribed: watch::Sender<bool>,
) {
    let topics = config.filters();
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_session(config.clean_session)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024);
    if let Some((user, password)) = &config.credentials {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 256);
    let mut queues = Vec::with_capacity(WORKERS);
    let mut workers = Vec::with_capacity(WORKERS);
    let waiting = Arc::new(AtomicUsize::new(0));
    for _ in 0..WORKERS {
        let (tx, rx) = mpsc::unbounded_channel();
        queues.push(tx);
        workers.push(tokio::spawn(work(
            agent.clone(),
            client.clone(),
            rx,
            waiting.clone(),
        )));
    }
    let mut delay = RECONNECT_FIRST;
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                delay = RECONNECT_FIRST;
                let filters = topics
                    .iter()
                    .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "cannot subscribe to the measure topics");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a subscription to the measure topics");
                } else {
                    tracing::info!(?topics, "subscribed to the measure topics");
                    subscribed.send_replace(true);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if publish.qos == QoS::AtMostOnce && waiting.load(Ordering::Relaxed) >= MAX_WAITING
                {
                    agent.count(
                        &message(&publish).unwrap_or_else(|| unparsed(&publish)),
                        &Err(IngestError::Overloaded),
                    );
                    continue;
                }
                let worker = worker_of(&publish.topic);
                waiting.fetch_add(1, Ordering::Relaxed);
                if queues[worker].send(publish).is_err() {
                    tracing::error!("an MQTT worker has stopped");
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                subscribed.send_replace(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost or refused");
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RECONNECT_MAX);
            }
        }
    }
    subscribed.send_replace(false);
    drop(queues);
    for w in workers {
        w.abort();
        let _ = w.await;
    }
    // A clean goodbye, so that the broker does not wait for the keep-alive.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(event) = events.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    tracing::info!("MQTT ingestion stopped");
}

/// The worker of a topic: by API key and device id, so that one device's messages
/// stay in order.
fn worker_of(topic: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    match parse_topic(topic) {
        Some((apikey, device, _)) => (apikey, device).hash(&mut hasher),
        None => topic.hash(&mut hasher),
    }
    (hasher.finish() % WORKERS as u64) as usize
}

async fn work(
    agent: Arc<Agent>,
    client: AsyncClient,
    mut queue: mpsc::UnboundedReceiver<Publish>,
    waiting: Arc<AtomicUsize>,
) {
    while let Some(publish) = queue.recv().await {
        waiting.fetch_sub(1, Ordering::Relaxed);
        apply(&agent, &publish).await;
        // After the write is durable (or the message refused for good). A worker never
        // waits for room in the client's request queue: that queue is emptied by the
        // connection's loop, which may itself be waiting for room in this worker's
        // queue (a deadlock seen under load). A full queue hands the ack to a task.
        match client.try_ack(&publish) {
            Ok(()) => {}
            Err(rumqttc::ClientError::TryRequest(_)) => {
                let client = client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.ack(&publish).await {
                        tracing::warn!(error = %e, "cannot acknowledge an MQTT message");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot acknowledge an MQTT message"),
        }
    }
}

/// The message a publish carries, or `None` when its topic is not a measure topic.
fn message(publish: &Publish) -> Option<Message<'_>> {
    let (apikey, device_id, name) = parse_topic(&publish.topic)?;
    let payload = match name {
        Some(name) => Payload::Single {
            name,
            value: &publish.payload,
        },
        None => Payload::Measures(&publish.payload),
    };
    Some(Message {
        transport: Transport::Mqtt,
        apikey,
        device_id,
        payload,
        timestamp: None,
    })
}

/// A publish on another topic, as a message to count.
fn unparsed(publish: &Publish) -> Message<'_> {
    Message {
        transport: Transport::Mqtt,
        apikey: "",
        device_id: "",
        payload: Payload::Measures(&publish.payload),
        timestamp: None,
    }
}

async fn apply(agent: &Agent, publish: &Publish) {
    let Some(msg) = message(publish) else {
        agent.count(
            &unparsed(publish),
            &Err(IngestError::Malformed(format!(
                "unexpected topic {:?}",
                publish.topic
            ))),
        );
        return;
    };
    let device_id = msg.device_id;
    let mut delay = RETRY_FIRST;
    loop {
        let result = agent.ingest(&msg).await;
        match &result {
            Err(e) if e.retryable() => {
                tracing::warn!(device_id, error = %e, retry_in_ms = delay.as_millis() as u64, "measure not written yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
            _ => {
                agent.count(&msg, &result);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn topics_name_the_apikey_the_device_and_maybe_a_measure() {
        assert_eq!(parse_topic("/json/k1/d1/attrs"), Some(("k1", "d1", None)));
        assert_eq!(
            parse_topic("/json/k1/d1/attrs/t"),
            Some(("k1", "d1", Some("t")))
        );
        for bad in [
            "/json/k1/d1",
            "json/k1/d1/attrs",
            "/json//d1/attrs",
            "/json/k1/d1/attrs/",
            "/json/k1/d1/cmdexe",
            "/json/k1/d1/attrs/t/x",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_are_checked() {
        let c = MqttConfig::from_url("mqtt://127.0.0.1:1883", "dothi").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 1883));
        assert!(!c.clean_session);
        let c = MqttConfig::from_url("tcp://user:secret@broker.local", "dothi").unwrap();
        assert_eq!(c.port, MqttConfig::DEFAULT_PORT);
        assert_eq!(
            c.credentials,
            Some(("user".to_string(), "secret".to_string()))
        );
        assert!(MqttConfig::from_url("mqtts://broker:8883", "dothi").is_err());
        assert!(MqttConfig::from_url("127.0.0.1:1883", "dothi").is_err());
        assert!(MqttConfig::from_url("mqtt://127.0.0.1", "").is_err());
    }
}
