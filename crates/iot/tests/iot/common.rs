//! The harness: a real hub with the IoT agent's routes over a temporary SQLite file,
//! served on 127.0.0.1:0, its MQTT ingestion subscribed to the real broker at
//! 127.0.0.1:1883; a publisher; and helpers that wait for an effect with a timeout.
//!
//! Every test starts its own hub and agent, and names its own API keys and devices, so
//! tests run in parallel against one broker. Every agent receives every test's
//! messages: those of other tests' API keys are unknown to it and counted as such, so
//! tests assert that count only as "at least".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hub::test_support::Served;
use iot::{Agent, MqttConfig, MqttIngest};
use reqwest::{Client, RequestBuilder};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use tokio::task::JoinHandle;

pub const BROKER: &str = "mqtt://127.0.0.1:1883";
/// How long an effect may take to appear.
pub const WAIT: Duration = Duration::from_secs(15);

/// A name no other test (or run) uses: `{prefix}-{pid}-{n}-{nanos}`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running hub with the IoT agent.
pub struct App {
    pub base: String,
    pub client: Client,
    /// The hub and the agent, for tests that use them in-process.
    pub hub: Arc<hub::Hub>,
    pub agent: Arc<Agent>,
    mqtt: Option<MqttIngest>,
    served: Served,
    _dir: Option<tempfile::TempDir>,
}

impl App {
    /// The key of the tests' client: an admin.
    pub const ADMIN_KEY: &str = "iot-test-admin-key-0123456789abcdefghijklmnopq";

    /// A client sending the tests' key.
    pub fn client() -> Client {
        hub::test_support::client(Some(Self::ADMIN_KEY), Duration::from_secs(20))
    }

    /// A hub over a fresh SQLite file, its agent subscribed (clean session).
    pub async fn start() -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dothi.db");
        let mut app = App::start_at(&db, &unique("dothi-test"), true, BROKER).await;
        app._dir = Some(dir);
        app
    }

    /// A hub over the SQLite file at `db`, its agent connected to `broker` with MQTT
    /// client id `client_id`.
    pub async fn start_at(
        db: &std::path::Path,
        client_id: &str,
        clean_session: bool,
        broker: &str,
    ) -> App {
        let mut config = MqttConfig::from_url(broker, client_id).expect("MQTT settings");
        config.clean_session = clean_session;
        App::start_with(db, config).await
    }

    /// A hub over the SQLite file at `db`, its agent connected as `config` says.
    pub async fn start_with(db: &std::path::Path, config: MqttConfig) -> App {
        let broker = format!("{}:{}", config.host, config.port);
        let store = store::open(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the SQLite store");
        let state = hub::state(store, &hub::HubConfig::default()).expect("the hub's state");
        hub::test_support::ensure_key(
            &state,
            Self::ADMIN_KEY,
            "test-admin",
            hub::auth::Role::Admin,
            &["*"],
            None,
        )
        .await;
        let agent = Arc::new(Agent::for_hub(&state));
        let hub = state.hub.clone();
        let served = Served::start(state, vec![iot::component(agent.clone())]).await;
        let mut mqtt = MqttIngest::start(agent.clone(), config);
        assert!(
            mqtt.wait_subscribed(WAIT).await,
            "the agent did not subscribe to the broker at {broker} within {WAIT:?}"
        );
        App {
            base: served.base.clone(),
            client: Self::client(),
            hub,
            agent,
            mqtt: Some(mqtt),
            served,
            _dir: None,
        }
    }

    /// Waits until the agent is subscribed (again).
    pub async fn wait_subscribed(&mut self) {
        let mqtt = self.mqtt.as_mut().expect("MQTT ingestion running");
        assert!(
            mqtt.wait_subscribed(WAIT).await,
            "not subscribed again within {WAIT:?}"
        );
    }

    /// Stops MQTT ingestion and the server.
    pub async fn stop(mut self) {
        if let Some(mqtt) = self.mqtt.take() {
            mqtt.stop().await;
        }
        self.client = Self::client();
        self.served.stop(Duration::from_secs(10)).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request on the agent's API for a tenant (`Fiware-Service`).
    pub fn iot(&self, method: reqwest::Method, path: &str, tenant: &str) -> RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        if tenant.is_empty() {
            rb
        } else {
            rb.header("fiware-service", tenant)
                .header("fiware-servicepath", "/")
        }
    }

    /// A tenant of its own (named after `prefix`) with one service group: `group` and
    /// an API key of its own. Returns (tenant, apikey).
    pub async fn tenant_with_group(&self, prefix: &str, mut group: Value) -> (String, String) {
        let tenant = unique(prefix);
        let apikey = unique("key");
        group["apikey"] = Value::String(apikey.clone());
        self.provision_group(&tenant, group).await;
        (tenant, apikey)
    }

    /// POST /iot/services with one group, asserting 201.
    pub async fn provision_group(&self, tenant: &str, group: Value) {
        self.provision(tenant, "services", "a group", group).await;
    }

    /// POST /iot/devices with one device, asserting 201.
    pub async fn provision_device(&self, tenant: &str, device: Value) {
        self.provision(tenant, "devices", "a device", device).await;
    }

    /// POST /iot/{plural} with one item (`what`), asserting 201.
    async fn provision(&self, tenant: &str, plural: &str, what: &str, item: Value) {
        let r = send(
            self.iot(reqwest::Method::POST, &format!("/iot/{plural}"), tenant)
                .json(&serde_json::json!({plural: [item]})),
        )
        .await;
        assert_eq!(r.status, 201, "provisioning {what}: {}", r.text);
    }

    /// POSTs measures, a JSON body, to `/iot/json?{query}` (the query names the API key
    /// and the device).
    pub async fn post_measures(&self, query: &str, body: impl Into<reqwest::Body>) -> Resp {
        send(
            self.client
                .post(self.url(&format!("/iot/json?{query}")))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// GET /ngsi-ld/v1/entities/{id} in a tenant: the entity, or None on 404.
    pub async fn entity(&self, tenant: &str, id: &str) -> Option<Value> {
        let mut rb = self
            .client
            .get(self.url(&format!("/ngsi-ld/v1/entities/{id}")));
        if !tenant.is_empty() {
            rb = rb.header("NGSILD-Tenant", tenant);
        }
        let r = send(rb).await;
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("retrieving {id}: {s} {}", r.text),
        }
    }

    /// Waits until the entity exists and `ready` holds for it; panics after [`WAIT`].
    pub async fn wait_entity(
        &self,
        tenant: &str,
        id: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let e = self.entity(tenant, id).await;
            if let Some(e) = &e
                && ready(e)
            {
                return e.clone();
            }
            assert!(
                start.elapsed() < WAIT,
                "{id} not as expected within {WAIT:?}; last seen: {e:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The value of one series of the Prometheus metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> u64 {
        let r = send(self.client.get(self.url("/metrics"))).await;
        assert_eq!(r.status, 200);
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |v| v.trim().parse().expect("a counter value"))
    }

    /// Waits until a series reaches at least `at_least`; panics after [`WAIT`].
    pub async fn wait_metric(&self, series: &str, at_least: u64) -> u64 {
        let start = Instant::now();
        loop {
            let v = self.metric(series).await;
            if v >= at_least {
                return v;
            }
            assert!(
                start.elapsed() < WAIT,
                "{series} stayed at {v} (expected at least {at_least}) for {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The series of `dothi_iot_messages_total` for MQTT and an outcome.
pub fn mqtt_messages(outcome: &str) -> String {
    format!("dothi_iot_messages_total{{transport=\"mqtt\",outcome=\"{outcome}\"}}")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    /// The body as JSON (Null when empty or not JSON).
    pub body: Value,
    pub content_type: String,
}

pub async fn send(rb: RequestBuilder) -> Resp {
    let response = rb.send().await.expect("the request was answered");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        text,
        body,
        content_type,
    }
}

/// Asserts a ProblemDetails of this status and NGSI-LD error type.
#[track_caller]
pub fn assert_problem(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "status of {}", r.text);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(
        r.body["type"],
        format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
        "{}",
        r.text
    );
    assert!(r.body["detail"].is_string(), "{}", r.text);
}

/// Publishes QoS 1 messages to the real broker, each returning once the broker has
/// acknowledged it.
pub struct Publisher {
    client: AsyncClient,
    events: rumqttc::EventLoop,
}

impl Publisher {
    pub async fn connect() -> Publisher {
        Publisher::connect_as(&unique("dothi-test-pub"), true).await
    }

    /// A client of this id; with `clean_session`, the broker forgets its session.
    pub async fn connect_as(client_id: &str, clean_session: bool) -> Publisher {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", 1883);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(clean_session);
        let (client, mut events) = AsyncClient::new(options, 16);
        let connected = tokio::time::timeout(WAIT, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return,
                    Ok(_) => {}
                    Err(e) => panic!("cannot connect to the broker at {BROKER}: {e}"),
                }
            }
        })
        .await;
        assert!(connected.is_ok(), "no answer from the broker at {BROKER}");
        Publisher { client, events }
    }

    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue a publish");
        let acked = tokio::time::timeout(WAIT, async {
            loop {
                match self.events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => return,
                    Ok(_) => {}
                    Err(e) => panic!("publishing to {topic}: {e}"),
                }
            }
        })
        .await;
        assert!(acked.is_ok(), "the broker did not acknowledge {topic}");
    }

    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match self.events.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// A TCP relay to the broker that can cut every connection through it, as a broker
/// restart or a network fault would.
pub struct Relay {
    pub url: String,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (count, held) = (accepted.clone(), links.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:1883").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut v) = held.lock() {
                    v.push(link);
                }
            }
        });
        Relay {
            url: format!("mqtt://{addr}"),
            accepted,
            links,
            task,
        }
    }

    /// Closes every connection through the relay (new ones are still accepted).
    pub fn cut(&self) {
        if let Ok(mut v) = self.links.lock() {
            for link in v.drain(..) {
                link.abort();
            }
        }
    }

    pub fn stop(self) {
        self.cut();
        self.task.abort();
    }
}
