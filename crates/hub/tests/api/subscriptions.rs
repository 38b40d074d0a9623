//! Subscriptions (clause 5.8) and their notifications, sent to a real receiver: an
//! HTTP server in the test that records what it gets, and the Mosquitto broker at
//! 127.0.0.1:1883 for MQTT.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::common::*;

/// One notification as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Log {
    got: Arc<Mutex<Vec<Received>>>,
    /// Requests answered 500 so far on /fail-once.
    failed: Arc<Mutex<usize>>,
}

/// An HTTP receiver: `/ok/...` answers 204, `/fail-once/...` 500 the first time,
/// `/hang/...` never in time. Every request is recorded once answered (or, for
/// /hang, when it arrives).
pub(crate) struct Receiver {
    base: String,
    log: Log,
    task: JoinHandle<()>,
}

async fn receive(
    State(log): State<Log>,
    Path((mode, rest)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let record = Received {
        path: format!("/{mode}/{rest}"),
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    };
    match mode.as_str() {
        "hang" => {
            log.got.lock().unwrap().push(record);
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::NO_CONTENT
        }
        "fail-once" => {
            let mut failed = log.failed.lock().unwrap();
            if *failed == 0 {
                *failed += 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            log.got.lock().unwrap().push(record);
            StatusCode::NO_CONTENT
        }
        _ => {
            log.got.lock().unwrap().push(record);
            StatusCode::NO_CONTENT
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0").await
    }

    async fn start_on(addr: &str) -> Receiver {
        let log = Log::default();
        let app = axum::Router::new()
            .route("/{mode}/{*rest}", axum::routing::post(receive))
            .with_state(log.clone());
        let (base, task) = serve_in_background(addr, app).await;
        Receiver { base, log, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What arrived on paths starting with `prefix`.
    fn on(&self, prefix: &str) -> Vec<Received> {
        self.log
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits until `n` notifications arrived on `prefix` (at most `within`).
    pub async fn wait(&self, prefix: &str, n: usize, within: Duration) -> Vec<Received> {
        let start = std::time::Instant::now();
        loop {
            let got = self.on(prefix);
            if got.len() >= n || start.elapsed() > within {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gauge(id: &str, level: f64) -> Value {
    json!({
        "id": id, "type": "Gauge",
        "level": {"type": "Property", "value": level},
        "river": {"type": "Property", "value": "Thạch Hãn"}
    })
}

async fn subscribe(app: &App, body: Value) -> String {
    let r = send(app.post("/subscriptions", &body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let location = r.header("location").unwrap().to_string();
    let id = location.rsplit('/').next().unwrap().to_string();
    url_decode(&id)
}

/// Subscribes to every Gauge, with `members` added to the subscription.
async fn subscribe_to_gauges(app: &App, members: Value) -> String {
    let mut body = json!({"type": "Subscription", "entities": [{"type": "Gauge"}]});
    for (name, value) in members.as_object().unwrap() {
        body[name] = value.clone();
    }
    subscribe(app, body).await
}

/// Subscribes to every Gauge with the notification `endpoint`, then creates Gauge 1
/// (level 4): a change to notify. Returns the subscription's id.
async fn notify_gauge_1(app: &App, endpoint: Value) -> String {
    let id = subscribe_to_gauges(app, json!({"notification": {"endpoint": endpoint}})).await;
    app.create(gauge("urn:ngsi-ld:Gauge:1", 4.0)).await;
    id
}

fn url_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

fn sub_path(id: &str) -> String {
    format!(
        "/subscriptions/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

#[tokio::test]
async fn subscriptions_are_created_read_listed_updated_and_deleted() {
    let app = App::start().await;
    let id = subscribe(
        &app,
        json!({
            "type": "Subscription",
            "subscriptionName": "gauges",
            "entities": [{"type": "Gauge"}],
            "watchedAttributes": ["level"],
            "q": "level>5",
            "notification": {"attributes": ["level"], "format": "keyValues",
                             "endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "application/json"}}
        }),
    )
    .await;
    assert!(id.starts_with("urn:ngsi-ld:Subscription:"), "{id}");
    let r = app.get_ok(&sub_path(&id), &[]).await;
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["type"], "Subscription");
    assert_eq!(r.body["entities"][0]["type"], "Gauge");
    assert_eq!(r.body["watchedAttributes"], json!(["level"]));
    assert_eq!(r.body["q"], "level>5");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["notification"]["format"], "keyValues");

    // A given id; the same id again conflicts.
    let given = json!({
        "id": "urn:ngsi-ld:Subscription:mine", "type": "Subscription",
        "entities": [{"type": "Gauge"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}
    });
    assert_eq!(
        subscribe(&app, given.clone()).await,
        "urn:ngsi-ld:Subscription:mine"
    );
    let r = send(app.post("/subscriptions", &given)).await;
    assert_problem(&r, 409, "AlreadyExists");

    let r = app.get_ok("/subscriptions?count=true&limit=1", &[]).await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("2"));
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    // Links to the neighbouring pages, with the other parameters kept.
    assert_eq!(
        r.link_rel("next").as_deref(),
        Some("/ngsi-ld/v1/subscriptions?count=true&limit=1&offset=1")
    );
    assert_eq!(r.link_rel("prev"), None);
    let r = send(app.get("/subscriptions?offset=1")).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.link_rel("next"), None);
    assert!(r.link_rel("prev").is_some(), "{:?}", r.header_all("link"));
    // Defaults are left out: isActive while true, counters while nothing was sent.
    let r = send(app.get(&sub_path(&id))).await;
    assert!(r.body.get("isActive").is_none(), "{}", r.text);
    assert!(
        r.body["notification"].get("timesSent").is_none(),
        "{}",
        r.text
    );

    // PATCH replaces the members given, the notification whole (clause 5.8.2): a
    // notification without its endpoint is not a valid one, and changes nothing.
    let r = send(app.patch(
        &sub_path(&id),
        &json!({"isActive": false, "notification": {"format": "normalized"}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.get(&sub_path(&id))).await;
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["notification"]["format"], "keyValues");
    let endpoint = r.body["notification"]["endpoint"].clone();
    let r = send(app.patch(
        &sub_path(&id),
        &json!({"isActive": false, "notification": {"format": "normalized", "endpoint": endpoint}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.get(&sub_path(&id))).await;
    assert_eq!(r.body["status"], "paused");
    assert_eq!(r.body["isActive"], false);
    assert_eq!(r.body["notification"]["format"], "normalized");
    assert!(
        r.body["notification"].get("attributes").is_none(),
        "{}",
        r.text
    );
    assert_eq!(r.body["notification"]["endpoint"], endpoint);
    let r = send(app.patch(
        &sub_path("urn:ngsi-ld:Subscription:none"),
        &json!({"isActive": true}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");

    // The @context of the request compacts the rendering.
    let r = send(app.get(&sub_path(&id)).header(
        "Link",
        link("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Another tenant sees none of them.
    let r = send(app.get(&sub_path(&id)).header("NGSILD-Tenant", "elsewhere")).await;
    assert_eq!(r.status, 404, "{}", r.text);

    app.delete_ok(&sub_path(&id)).await;
    let r = send(app.get(&sub_path(&id))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.delete(&sub_path(&id))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.get("/subscriptions/not-a-uri")).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn invalid_subscriptions_are_refused() {
    let app = App::start().await;
    let base = json!({
        "type": "Subscription",
        "entities": [{"type": "Gauge"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}
    });
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            "no notification",
            json!({"type": "Subscription", "entities": [{"type": "Gauge"}]}),
        ),
        (
            "endpoint not a URI",
            with(json!({"notification": {"endpoint": {"uri": "not a uri"}}})),
        ),
        (
            "endpoint scheme",
            with(json!({"notification": {"endpoint": {"uri": "ftp://example.org/x"}}})),
        ),
        ("q", with(json!({"q": "level>>"}))),
        (
            "geoQ",
            with(json!({"geoQ": {"georel": "near", "geometry": "Point", "coordinates": [1, 2]}})),
        ),
        (
            "format",
            with(
                json!({"notification": {"format": "fancy", "endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
            ),
        ),
        (
            "throttling with timeInterval",
            with(json!({"throttling": 5, "timeInterval": 10})),
        ),
        ("not an object", json!([1, 2])),
    ];
    for (what, body) in cases {
        let r = send(app.post("/subscriptions", &body)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.content_type(), JSON, "{what}");
    }
    let r = send(app.get("/subscriptions")).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn changes_are_notified_in_order_with_format_and_attributes() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    let id = subscribe_to_gauges(
        &app,
        json!({
            "notificationTrigger": ["entityCreated", "attributeUpdated", "entityDeleted"],
            "notification": {"attributes": ["level"], "format": "keyValues",
                             "endpoint": {"uri": rx.url("/ok/a"), "accept": "application/json",
                                          "receiverInfo": [{"key": "X-Token", "value": "s3cret"}]}}
        }),
    )
    .await;
    // Another type, and another tenant's gauge, fire nothing here.
    app.create(json!({"id": "urn:ngsi-ld:Pump:1", "type": "Pump"}))
        .await;
    let r = send(
        app.post("/entities", &gauge("urn:ngsi-ld:Gauge:x", 1.0))
            .header("NGSILD-Tenant", "other"),
    )
    .await;
    assert_eq!(r.status, 201);

    app.create(gauge("urn:ngsi-ld:Gauge:1", 4.0)).await;
    let r = send(app.patch(
        "/entities/urn:ngsi-ld:Gauge:1/attrs",
        &json!({"level": {"type": "Property", "value": 6.5}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.delete_ok("/entities/urn:ngsi-ld:Gauge:1").await;

    let got = rx.wait("/ok/a", 3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    for n in &got {
        assert_eq!(n.body["type"], "Notification");
        assert_eq!(n.body["subscriptionId"], id.as_str());
        assert_eq!(n.headers["content-type"], "application/json");
        assert!(n.headers["link"].to_str().unwrap().contains("ld+json"));
        assert_eq!(n.headers["x-token"], "s3cret");
        assert!(n.body.get("@context").is_none());
        assert_eq!(n.body["data"][0]["id"], "urn:ngsi-ld:Gauge:1");
    }
    // keyValues, only `level`.
    assert_eq!(got[0].body["data"][0]["level"], 4.0);
    assert!(got[0].body["data"][0].get("river").is_none());
    assert_eq!(got[1].body["data"][0]["level"], 6.5);
    assert!(got[2].body["data"][0]["deletedAt"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.on("/ok/a").len(), 3, "nothing more");

    let r = send(app.get(&sub_path(&id))).await;
    assert_eq!(r.body["notification"]["timesSent"], 3, "{}", r.text);
    assert_eq!(r.body["notification"]["status"], "ok", "{}", r.text);
    assert!(r.body["notification"]["lastSuccess"].is_string());
}

/// Header names reach a receiver as written in the standard (`Link`, not `link`):
/// read off the wire, since HTTP libraries fold them.
#[tokio::test]
async fn notification_headers_are_sent_in_title_case() {
    use tokio::io::AsyncReadExt as _;
    let app = App::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = json!({"uri": format!("http://127.0.0.1:{port}/n"),
        "receiverInfo": [{"key": "X-Additional-Key", "value": "v"}]});
    notify_gauge_1(&app, endpoint).await;
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the headers ended");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    for name in ["\r\nContent-Type: ", "\r\nLink: ", "\r\nX-Additional-Key: "] {
        assert!(head.contains(name), "{name:?} in {head}");
    }
}

#[tokio::test]
async fn json_ld_endpoints_get_the_context_in_the_body() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    notify_gauge_1(
        &app,
        json!({"uri": rx.url("/ok/ld"), "accept": "application/ld+json"}),
    )
    .await;
    let got = rx.wait("/ok/ld", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["content-type"], "application/ld+json");
    assert!(got[0].body.get("@context").is_some(), "{}", got[0].body);
    // Each entity is a JSON-LD document of its own.
    assert_eq!(got[0].body["data"][0]["@context"], got[0].body["@context"]);
    // Normalized by default, every attribute.
    assert_eq!(got[0].body["data"][0]["river"]["value"], "Thạch Hãn");
}

#[tokio::test]
async fn a_failed_notification_is_retried() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    let id = notify_gauge_1(&app, json!({"uri": rx.url("/fail-once/r")})).await;
    let got = rx.wait("/fail-once/r", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(*rx.log.failed.lock().unwrap(), 1);
    let start = std::time::Instant::now();
    let r = loop {
        let r = send(app.get(&sub_path(&id))).await;
        if r.body["notification"]["timesSent"] == 1 || start.elapsed() > Duration::from_secs(5) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.body["notification"]["timesSent"], 1, "{}", r.text);
    assert_eq!(r.body["notification"]["timesFailed"], 1, "{}", r.text);
    assert!(r.body["notification"]["lastFailure"].is_string());
}

#[tokio::test]
async fn a_hanging_receiver_does_not_delay_other_subscriptions() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    for path in ["/hang/h", "/ok/fast"] {
        subscribe_to_gauges(
            &app,
            json!({"notification": {"endpoint": {"uri": rx.url(path), "timeout": 60000}}}),
        )
        .await;
    }
    app.create(gauge("urn:ngsi-ld:Gauge:1", 4.0)).await;
    assert_eq!(rx.wait("/hang/h", 1, Duration::from_secs(5)).await.len(), 1);
    app.create(gauge("urn:ngsi-ld:Gauge:2", 5.0)).await;
    let got = rx.wait("/ok/fast", 2, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 2, "the other subscription was held up");
    assert_eq!(got[1].body["data"][0]["id"], "urn:ngsi-ld:Gauge:2");
}

#[tokio::test]
async fn notifications_are_published_over_mqtt() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let topic = format!("dothi/test/{}", uuid::Uuid::new_v4().simple());
    let mut options = MqttOptions::new(format!("t-{}", &topic[11..23]), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    // Wait for the subscription to be acknowledged.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
                break;
            }
        }
    })
    .await
    .expect("the broker at 127.0.0.1:1883 acknowledges");

    let app = App::start().await;
    let endpoint = json!({"uri": format!("mqtt://127.0.0.1:1883/{topic}"),
        "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}]});
    notify_gauge_1(&app, endpoint).await;
    let message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                return p;
            }
        }
    })
    .await
    .expect("a notification over MQTT");
    assert_eq!(message.topic, topic);
    let body: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(body["body"]["type"], "Notification");
    assert_eq!(body["body"]["data"][0]["id"], "urn:ngsi-ld:Gauge:1");
    assert_eq!(body["metadata"]["Content-Type"], "application/json");
}

#[tokio::test]
async fn an_undelivered_notification_is_sent_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dothi.db");
    // A port with nobody listening, for now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = App::start_at(&db, hub::HubConfig::default()).await;
    notify_gauge_1(
        &app,
        json!({"uri": format!("http://127.0.0.1:{port}/ok/later")}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;

    let rx = Receiver::start_on(&format!("127.0.0.1:{port}")).await;
    let app = App::start_at(&db, hub::HubConfig::default()).await;
    let got = rx.wait("/ok/later", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the notification of the first run arrives");
    assert_eq!(got[0].body["data"][0]["id"], "urn:ngsi-ld:Gauge:1");
    assert_eq!(got[0].body["data"][0]["level"]["value"], 4.0);
    app.stop().await;
}

#[tokio::test]
async fn periodic_subscriptions_notify_every_interval() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    app.create(gauge("urn:ngsi-ld:Gauge:1", 4.0)).await;
    app.create(gauge("urn:ngsi-ld:Gauge:2", 9.0)).await;
    subscribe_to_gauges(
        &app,
        json!({
            "q": "level>5",
            "timeInterval": 1,
            "notification": {"endpoint": {"uri": rx.url("/ok/periodic")}}
        }),
    )
    .await;
    // A change does not fire a periodic subscription by itself.
    let got = rx.wait("/ok/periodic", 2, Duration::from_secs(6)).await;
    assert!(got.len() >= 2, "{got:?}");
    for n in &got {
        let data = n.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "only the gauge that matches q: {}", n.body);
        assert_eq!(data[0]["id"], "urn:ngsi-ld:Gauge:2");
    }
}

#[tokio::test]
async fn watched_attributes_q_and_throttling_decide_what_fires() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    // Fires when `level` changes while above 5.
    subscribe_to_gauges(
        &app,
        json!({
            "watchedAttributes": ["level"],
            "q": "level>5",
            "notificationTrigger": ["attributeCreated", "attributeUpdated", "attributeDeleted"],
            "notification": {"endpoint": {"uri": rx.url("/ok/watch")}}
        }),
    )
    .await;
    // Any change of a gauge, at most one notification per hour.
    subscribe(
        &app,
        json!({
            "type": "Subscription",
            "entities": [{"idPattern": "^urn:ngsi-ld:Gauge:", "type": "Gauge"}],
            "notificationTrigger": ["entityCreated", "entityUpdated"],
            "throttling": 3600,
            "notification": {"endpoint": {"uri": rx.url("/ok/throttled")}}
        }),
    )
    .await;
    let set = |attr: &str, value: Value| {
        let body = json!({attr: {"type": "Property", "value": value}});
        send(app.post("/entities/urn:ngsi-ld:Gauge:1/attrs", &body))
    };
    app.create(gauge("urn:ngsi-ld:Gauge:1", 4.0)).await; // q fails: level 4
    assert_eq!(set("level", json!(7.0)).await.status, 204); // fires
    assert_eq!(set("river", json!("Hiếu")).await.status, 204); // not watched
    assert_eq!(set("level", json!(3.0)).await.status, 204); // q fails after
    assert_eq!(set("level", json!(8.0)).await.status, 204); // fires
    app.delete_ok("/entities/urn:ngsi-ld:Gauge:1/attrs/level")
        .await; // q fails: no level left
    let watched = rx.wait("/ok/watch", 3, Duration::from_secs(3)).await;
    let levels: Vec<&Value> = watched
        .iter()
        .map(|n| &n.body["data"][0]["level"]["value"])
        .collect();
    assert_eq!(levels, [&json!(7.0), &json!(8.0)], "{watched:?}");
    let throttled = rx.on("/ok/throttled");
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].body["data"][0]["level"]["value"], 4.0);
}

#[tokio::test]
async fn the_request_context_names_the_terms_of_subscriptions_and_notifications() {
    let ctx = ContextServer::start(json!({"@context": {
        "ex": "https://example.org/terms/",
        "Gauge": "ex:Gauge",
        "level": "ex:level"
    }}))
    .await;
    let ctx_url = ctx.url("/ctx.jsonld");
    let app = App::start().await;
    let rx = Receiver::start().await;
    let r = send(app.post_ld(
        "/subscriptions",
        &json!({
            "@context": ctx_url,
            "type": "Subscription",
            "entities": [{"type": "Gauge"}],
            "notification": {"attributes": ["level"],
                             "endpoint": {"uri": rx.url("/ok/ctx"), "accept": "application/json"}}
        }),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = url_decode(r.header("location").unwrap().rsplit('/').next().unwrap());

    // Read with the same @context: short names; with the core context: IRIs.
    let r = app.get_in_context(&sub_path(&id), &ctx_url).await;
    assert_eq!(r.body["entities"][0]["type"], "Gauge", "{}", r.text);
    assert_eq!(r.body["notification"]["attributes"], json!(["level"]));
    let r = send(app.get(&sub_path(&id))).await;
    assert_eq!(
        r.body["entities"][0]["type"], "https://example.org/terms/Gauge",
        "{}",
        r.text
    );

    let r = send(
        app.post("/entities", &gauge("urn:ngsi-ld:Gauge:1", 4.0))
            .header("Link", link(&ctx_url)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = rx.wait("/ok/ctx", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let n = &got[0];
    assert!(
        n.headers["link"].to_str().unwrap().contains(&ctx_url),
        "{:?}",
        n.headers
    );
    assert_eq!(n.body["data"][0]["type"], "Gauge", "{}", n.body);
    assert_eq!(n.body["data"][0]["level"]["value"], 4.0, "{}", n.body);
    ctx.stop().await;
}

#[tokio::test]
async fn a_backlog_longer_than_the_notifier_keeps_in_memory_arrives_in_order() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    subscribe_to_gauges(
        &app,
        json!({
            "notificationTrigger": ["entityCreated"],
            "notification": {"endpoint": {"uri": rx.url("/fail-once/backlog")}}
        }),
    )
    .await;
    // The first fails and is retried a second later: the others wait behind it, more
    // than the notifier keeps in memory per subscription.
    let n = 3 * hub::notifier::QUEUE_MAX + 5;
    for i in 0..n {
        app.create(gauge(&format!("urn:ngsi-ld:Gauge:{i:04}"), 1.0))
            .await;
    }
    let got = rx
        .wait("/fail-once/backlog", n, Duration::from_secs(20))
        .await;
    let ids: Vec<String> = got
        .iter()
        .map(|n| n.body["data"][0]["id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..n)
        .map(|i| format!("urn:ngsi-ld:Gauge:{i:04}"))
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn an_entity_deletion_is_notified_with_its_times_and_watched_attributes() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    // keyValues with sysAttrs: the entity's own times are members in that format too.
    subscribe_to_gauges(
        &app,
        json!({
            "notificationTrigger": ["entityDeleted"],
            "notification": {"format": "keyValues", "sysAttrs": true,
                             "endpoint": {"uri": rx.url("/ok/deleted")}}
        }),
    )
    .await;
    // Attribute deletions of `level` only: deleting the entity deletes `river` too,
    // which this subscription does not watch.
    subscribe_to_gauges(
        &app,
        json!({
            "watchedAttributes": ["level"],
            "notificationTrigger": ["attributeDeleted"],
            "notification": {"endpoint": {"uri": rx.url("/ok/level")}}
        }),
    )
    .await;
    app.create(gauge("urn:ngsi-ld:Gauge:gone", 2.0)).await;
    app.delete_ok("/entities/urn:ngsi-ld:Gauge:gone").await;

    let deleted = rx.wait("/ok/deleted", 1, Duration::from_secs(5)).await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let entity = deleted[0].body["data"][0].as_object().unwrap().clone();
    let mut members: Vec<&str> = entity.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["createdAt", "deletedAt", "id", "modifiedAt", "type"],
        "{entity:?}"
    );
    assert_eq!(entity["id"], "urn:ngsi-ld:Gauge:gone");

    let level = rx.wait("/ok/level", 1, Duration::from_secs(5)).await;
    assert_eq!(level.len(), 1, "{level:?}");
    let entity = &level[0].body["data"][0];
    assert_eq!(
        entity["level"],
        json!({"type": "Property", "value": "urn:ngsi-ld:null"}),
        "{entity}"
    );
    assert!(entity.get("river").is_none(), "{entity}");
    assert!(entity.get("deletedAt").is_some(), "{entity}");
}

#[tokio::test]
async fn notifications_join_the_linked_entities_flat_or_inline() {
    let app = App::start().await;
    let rx = Receiver::start().await;
    app.create(json!({
        "id": "urn:ngsi-ld:Country:vn", "type": "Country",
        "name": {"type": "Property", "value": "Việt Nam"}
    }))
    .await;
    app.create(json!({
        "id": "urn:ngsi-ld:Province:qt", "type": "Province",
        "name": {"type": "Property", "value": "Quảng Trị"},
        "inCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:vn"}
    }))
    .await;
    app.create(json!({
        "id": "urn:ngsi-ld:Gauge:th", "type": "Gauge",
        "level": {"type": "Property", "value": 1.0},
        "inProvince": {"type": "Relationship", "object": "urn:ngsi-ld:Province:qt"}
    }))
    .await;
    for (path, notification) in [
        ("/ok/flat-1", json!({"join": "flat"})),
        ("/ok/flat-2", json!({"join": "flat", "joinLevel": 2})),
        ("/ok/inline-n", json!({"join": "inline"})),
        (
            "/ok/inline-kv",
            json!({"join": "inline", "format": "keyValues"}),
        ),
        ("/ok/none", json!({"join": "@none"})),
    ] {
        let mut notification = notification;
        notification["endpoint"] = json!({"uri": rx.url(path)});
        subscribe_to_gauges(&app, json!({"notification": notification})).await;
    }
    let r = send(app.patch(
        "/entities/urn:ngsi-ld:Gauge:th/attrs",
        &json!({"level": {"type": "Property", "value": 2.0}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let got = |path: &'static str| {
        let rx = &rx;
        async move {
            let got = rx.wait(path, 1, Duration::from_secs(5)).await;
            assert_eq!(got.len(), 1, "{path}: {got:?}");
            got[0].body["data"].as_array().unwrap().clone()
        }
    };
    let ids = |data: &[Value]| -> Vec<String> {
        data.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    // Flat: the notified entity, then the one it links to (one hop by default).
    let flat = got("/ok/flat-1").await;
    assert_eq!(
        ids(&flat),
        ["urn:ngsi-ld:Gauge:th", "urn:ngsi-ld:Province:qt"]
    );
    assert_eq!(flat[0]["level"]["value"], 2.0);
    assert_eq!(flat[1]["name"]["value"], "Quảng Trị");
    // Two hops reach the country.
    let flat2 = got("/ok/flat-2").await;
    assert_eq!(
        ids(&flat2),
        [
            "urn:ngsi-ld:Gauge:th",
            "urn:ngsi-ld:Province:qt",
            "urn:ngsi-ld:Country:vn"
        ]
    );
    // Inline: the linked entity inside the Relationship.
    let inline = got("/ok/inline-n").await;
    assert_eq!(ids(&inline), ["urn:ngsi-ld:Gauge:th"]);
    let rel = &inline[0]["inProvince"];
    assert_eq!(rel["object"], "urn:ngsi-ld:Province:qt");
    assert_eq!(rel["entity"]["id"], "urn:ngsi-ld:Province:qt");
    assert_eq!(rel["entity"]["name"]["value"], "Quảng Trị");
    assert!(rel["entity"]["inCountry"].get("entity").is_none(), "{rel}");
    // keyValues: the linked entity in place of its id.
    let kv = got("/ok/inline-kv").await;
    assert_eq!(
        kv[0]["inProvince"],
        json!({"id": "urn:ngsi-ld:Province:qt", "type": "Province",
               "name": "Quảng Trị", "inCountry": "urn:ngsi-ld:Country:vn"})
    );
    // `@none` joins nothing.
    let none = got("/ok/none").await;
    assert_eq!(ids(&none), ["urn:ngsi-ld:Gauge:th"]);
    assert_eq!(none[0]["inProvince"]["object"], "urn:ngsi-ld:Province:qt");
    assert!(none[0]["inProvince"].get("entity").is_none());

    // The subscription shows its join.
    let r = app.get_ok("/subscriptions", &[]).await;
    let joins: Vec<(Value, Value)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["notification"]["join"].clone(),
                s["notification"]["joinLevel"].clone(),
            )
        })
        .collect();
    assert!(joins.contains(&(json!("flat"), json!(2))), "{joins:?}");
    assert!(joins.contains(&(json!("inline"), Value::Null)), "{joins:?}");
}
