//! Notifications on a controlled clock: policies and their routes, grouping, repeat
//! interval, silences, inhibition, escalation, retries, a restart, and each channel
//! against a real receiver on loopback (an HTTP server, aiosmtpd, Mosquitto).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::*;

/// A webhook receiver: the JSON bodies it got, by path; it answers 500 to its
/// first `failures` requests.
#[derive(Clone, Default)]
pub struct Sink {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    failures: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    pub base: String,
}

impl Sink {
    pub async fn start() -> Sink {
        let mut sink = Sink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        sink.base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(sink.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sink
    }

    /// The next `n` requests on `path` fail.
    pub fn fail_next(&self, path: &str, n: usize) {
        self.failures
            .lock()
            .expect("lock")
            .insert(path.to_string(), n);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The bodies received on `path`, in order.
    pub fn on(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Waits until `path` has received `n` messages; returns them.
    pub async fn until(&self, path: &str, n: usize) -> Vec<Value> {
        let v = until(
            &format!("{n} messages on /{path}"),
            || async { Value::Array(self.on(path)) },
            |v| v.as_array().is_some_and(|a| a.len() >= n),
        )
        .await;
        v.as_array().cloned().unwrap_or_default()
    }
}

async fn receive(
    State(sink): State<Sink>,
    Path(path): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    {
        let mut failures = sink.failures.lock().expect("lock");
        if let Some(n) = failures.get_mut(&path)
            && *n > 0
        {
            *n -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    sink.got.lock().expect("lock").push((path, body));
    StatusCode::NO_CONTENT
}

/// A fresh store, a hub with the alerts service on a clock at `t0`, and a webhook
/// receiver (the store's place lives as long as the first).
async fn started() -> (Place, DateTime<Utc>, App, Sink) {
    let place = Place::new();
    let t0 = start_time();
    let app = App::start_at(&place.db(), t0).await;
    (place, t0, app, Sink::start().await)
}

fn level_rule(level: u8) -> Value {
    json!({
        "id": format!("level-{level}"),
        "scope": {"type": "WaterObserved"},
        "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": format!("alarmLevel{level}")},
        "clear": {"hysteresis": 0.1},
        "severity": if level == 3 { "critical" } else { "high" },
        "category": "naturalDisaster",
        "subCategory": "flood",
        "labels": {"alarmLevel": level.to_string()},
        "message": {"vi": format!("{{place}}: mực nước {{value}} m, vượt báo động {level} ({{threshold}} m)"),
                    "en": format!("{{place}}: water level {{value}} m, above alarm level {level} ({{threshold}} m)")}
    })
}

fn webhook(sink: &Sink, path: &str) -> Value {
    json!({"kind": "webhook", "url": sink.url(path)})
}

impl App {
    pub async fn create(&self, what: &str, body: Value) -> Value {
        let (s, out) = self.post_json(&format!("/alerts/v1/{what}"), &body).await;
        assert_eq!(s, 201, "creating {body}: {out}");
        out
    }

    /// Creates a notification policy.
    pub async fn create_policy(&self, body: Value) -> Value {
        self.create("policies", body).await
    }

    /// Upserts many gauges in one request.
    pub async fn upsert_all(&self, entities: Vec<Value>) {
        let (s, body) = self.post_json(UPSERT, &Value::from(entities)).await;
        assert!(s == 201 || s == 204, "upsert: {s} {body}");
    }

    /// Lets a delivery round run at the clock's time.
    pub async fn deliver(&self) {
        self.settle().await;
        self.alerts.deliver().await.expect("deliver");
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Waits a little, and checks that nothing more came than `n` on `path`.
async fn still(sink: &Sink, path: &str, n: usize, app: &App) {
    app.deliver().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.on(path);
    assert_eq!(got.len(), n, "on /{path}: {got:#?}");
}

fn ids(message: &Value) -> Vec<String> {
    let mut v: Vec<String> = message["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["entity"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[tokio::test]
async fn policies_are_managed_checked_and_kept_per_tenant() {
    let app = App::start(start_time()).await;
    let sink = Sink::start().await;
    let body = json!({"id": "floods", "channels": [webhook(&sink, "a")],
                      "match": {"severity": ["high", "critical"]}});
    let created = app.create("policies", body.clone()).await;
    assert_eq!(created["id"], "floods");
    let (s, got) = app
        .send(app.admin.get(app.url("/alerts/v1/policies/floods")))
        .await;
    assert_eq!(
        (s, got["match"]["severity"][1].clone()),
        (200, json!("critical"))
    );
    let (s, list) = app
        .send(app.admin.get(app.url("/alerts/v1/policies")))
        .await;
    assert_eq!((s, list["count"].clone()), (200, json!(1)), "{list}");
    // Another tenant sees none of it.
    let (s, other) = app.get_in_tenant("other", "/alerts/v1/policies").await;
    assert_eq!((s, other["count"].clone()), (200, json!(0)), "{other}");
    // Viewers neither read policies (they name contacts) nor write them; operators do.
    let viewer = client(VIEWER_KEY);
    let (s, _) = app.send(viewer.get(app.url("/alerts/v1/policies"))).await;
    assert_eq!(s, 403);
    let (s, _) = app
        .send(viewer.post(app.url("/alerts/v1/silences")).json(&json!({
            "matchers": [{"name": "rule", "value": "x"}], "endsAt": "2999-01-01T00:00:00Z"})))
        .await;
    assert_eq!(s, 403);
    let operator = client(OPERATOR_KEY);
    let (s, replaced) = app
        .send(
            operator
                .put(app.url("/alerts/v1/policies/floods"))
                .json(&json!({"channels": [webhook(&sink, "b")], "groupWait": "1m"})),
        )
        .await;
    assert_eq!(s, 200, "{replaced}");
    assert_eq!(replaced["groupWait"], "1m");
    // Bad ones say why.
    for (body, status, why) in [
        (
            json!({"id": "x", "channels": [{"kind": "webhook", "url": "http://169.254.169.254/latest"}]}),
            400,
            "refused",
        ),
        (
            json!({"id": "x", "channels": [{"kind": "email", "to": ["truc-ban@dothi.test"]}]}),
            422,
            "SMTP relay",
        ),
        (
            json!({"id": "x", "channels": [webhook(&sink, "a")], "groupWait": "soon"}),
            400,
            "groupWait",
        ),
        (
            json!({"id": "floods", "channels": [webhook(&sink, "a")]}),
            409,
            "exists",
        ),
        (
            json!({"id": "x", "channels": [webhook(&sink, "a")], "extra": 1}),
            400,
            "unknown field",
        ),
    ] {
        let (s, problem) = app
            .send(app.admin.post(app.url("/alerts/v1/policies")).json(&body))
            .await;
        assert_eq!(s, status, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains(why),
            "{body}: {problem}"
        );
    }
    // Silences: an id is made, the author recorded.
    let ends = ngsi::entity::format_time(&(start_time() + chrono::TimeDelta::days(30)));
    let silence = app
        .create(
            "silences",
            json!({"matchers": [{"name": "rule", "value": "level-1"}],
                   "endsAt": ends, "comment": "bảo trì trạm"}),
        )
        .await;
    let id = silence["id"].as_str().expect("an id");
    assert!(
        silence["createdBy"].as_str().is_some_and(|a| !a.is_empty()),
        "{silence}"
    );
    assert!(silence["startsAt"].is_string(), "{silence}");
    let (s, _) = app
        .send(viewer.get(app.url(&format!("/alerts/v1/silences/{id}"))))
        .await;
    assert_eq!(s, 200);
    // Deleted once; then there is nothing to delete.
    for status in [204, 404] {
        let (s, _) = app
            .send(
                app.admin
                    .delete(app.url(&format!("/alerts/v1/silences/{id}"))),
            )
            .await;
        assert_eq!(s, status);
    }
    let (s, problem) = app
        .send(
            app.admin
                .post(app.url("/alerts/v1/inhibitions"))
                .json(&json!({
            "id": "levels", "source": [{"name": "alarmLevel", "value": "3"}], "target": []})),
        )
        .await;
    assert_eq!(s, 400, "{problem}");
}

#[tokio::test]
async fn twenty_gauges_rising_together_make_one_message_then_a_repeat_then_one_resolution() {
    let (_place, t0, app, sink) = started().await;
    app.create_rule(level_rule(1)).await;
    app.create_policy(json!({
        "id": "floods",
        "match": {"labels": [{"name": "category", "value": "naturalDisaster"}]},
        "channels": [webhook(&sink, "ops")],
        "groupWait": "30s", "groupInterval": "1m", "repeatInterval": "1h"
    }))
    .await;
    let gauges: Vec<String> = (0..20).map(|_| unique_id("WaterObserved")).collect();
    app.upsert_all(gauges.iter().map(|g| gauge(g, 3.5, t0)).collect())
        .await;
    app.until_alerts("level-1", "twenty alerts", |l| l.len() == 20)
        .await;
    still(&sink, "ops", 0, &app).await;
    app.advance(Duration::from_secs(30));
    let got = sink.until("ops", 1).await;
    still(&sink, "ops", 1, &app).await;
    let m = &got[0];
    assert_eq!(m["status"], "firing");
    assert_eq!(m["policy"], "floods");
    assert_eq!(m["groupLabels"]["rule"], "level-1");
    let mut expected = gauges.clone();
    expected.sort();
    assert_eq!(ids(m), expected);
    assert!(
        text(&m["title"]["vi"]).contains("20 cảnh báo đang hoạt động"),
        "{m}"
    );
    assert!(
        text(&m["title"]["en"]).contains("20 alert(s) firing"),
        "{m}"
    );
    assert!(
        text(&m["text"]["vi"]).contains("Trạm Thạch Hãn: mực nước 3.5 m, vượt báo động 1 (3.0 m)"),
        "{m}"
    );
    assert_eq!(m["alerts"][0]["labels"]["alarmLevel"], "1");
    // Unchanged: told again after the repeat interval, not before.
    app.advance(minutes(59));
    still(&sink, "ops", 1, &app).await;
    app.advance(minutes(1));
    let got = sink.until("ops", 2).await;
    assert_eq!(ids(&got[1]).len(), 20);
    // The water falls everywhere: one message says they resolved.
    app.upsert_all(gauges.iter().map(|g| gauge(g, 2.0, t0)).collect())
        .await;
    app.until_alerts("level-1", "all resolved", |l| {
        l.iter().all(|a| a["status"] == "resolved")
    })
    .await;
    app.deliver().await;
    app.advance(minutes(1));
    let got = sink.until("ops", 3).await;
    let r = &got[2];
    assert_eq!(r["status"], "resolved", "{r}");
    assert_eq!(ids(r).len(), 20);
    assert!(
        r["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["status"] == "resolved")),
        "{r}"
    );
    app.advance(minutes(120));
    still(&sink, "ops", 3, &app).await;
    assert_eq!(
        app.alerts.pending_notifications("").await.expect("outbox"),
        0
    );
}

#[tokio::test]
async fn a_silence_keeps_its_alerts_quiet_for_its_period() {
    let (_place, t0, app, sink) = started().await;
    app.create_rule(level_rule(1)).await;
    app.create_rule(level_rule(2)).await;
    app.create_policy(
        json!({"id": "default", "channels": [webhook(&sink, "ops")], "groupWait": "10s"}),
    )
    .await;
    let ends = t0 + chrono::TimeDelta::hours(1);
    app.create(
        "silences",
        json!({"id": "maintenance", "matchers": [{"name": "rule", "value": "level-1"}],
               "startsAt": ngsi::entity::format_time(&t0), "endsAt": ngsi::entity::format_time(&ends),
               "comment": "bảo trì"}),
    )
    .await;
    app.new_gauge(4.6, t0).await;
    app.until_one_alert("level-2", "level II fires").await;
    app.until_one_alert("level-1", "level I fires").await;
    app.deliver().await;
    app.advance(Duration::from_secs(10));
    // Level II is told; level I is silenced.
    let got = sink.until("ops", 1).await;
    assert_eq!(got[0]["groupLabels"]["rule"], "level-2", "{:?}", got[0]);
    app.advance(minutes(30));
    still(&sink, "ops", 1, &app).await;
    // The silence ends: level I, still firing, is told.
    app.advance(minutes(30));
    app.deliver().await;
    app.advance(Duration::from_secs(10));
    let got = sink.until("ops", 2).await;
    assert_eq!(got[1]["groupLabels"]["rule"], "level-1", "{:?}", got[1]);
    still(&sink, "ops", 2, &app).await;
}

#[tokio::test]
async fn level_three_inhibits_levels_one_and_two_of_the_same_gauge_only() {
    let (_place, t0, app, sink) = started().await;
    for level in [1, 2, 3] {
        app.create_rule(level_rule(level)).await;
    }
    app.create_policy(
        json!({"id": "default", "channels": [webhook(&sink, "ops")], "groupWait": "10s"}),
    )
    .await;
    app.create(
        "inhibitions",
        json!({"id": "levels", "source": [{"name": "alarmLevel", "value": "3"}],
               "target": [{"name": "alarmLevel", "op": "=~", "value": "1|2"}],
               "equal": ["entity"]}),
    )
    .await;
    let high = unique_id("WaterObserved");
    let low = unique_id("WaterObserved");
    app.upsert(gauge(&high, 6.2, t0)).await;
    app.upsert(gauge(&low, 3.1, t0)).await;
    app.until_one_alert("level-3", "level III fires").await;
    app.until_alerts("level-1", "level I fires twice", |l| l.len() == 2)
        .await;
    app.deliver().await;
    app.advance(Duration::from_secs(10));
    let got = sink.until("ops", 2).await;
    still(&sink, "ops", 2, &app).await;
    let by_rule = |rule: &str| {
        got.iter()
            .find(|m| m["groupLabels"]["rule"] == rule)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(ids(&by_rule("level-3")), [high.as_str()]);
    // The other gauge's level I is not inhibited: it has no level III.
    assert_eq!(ids(&by_rule("level-1")), [low.as_str()]);
    assert!(by_rule("level-2").is_null(), "{got:#?}");
}

#[tokio::test]
async fn an_alert_left_unacknowledged_is_escalated_to_the_next_contact() {
    let (_place, t0, app, sink) = started().await;
    app.create_rule(level_rule(2)).await;
    app.create_policy(
        json!({"id": "floods", "channels": [webhook(&sink, "duty")], "groupWait": "10s",
               "repeatInterval": "1d",
               "escalation": [{"after": "10m", "channels": [webhook(&sink, "chief")]},
                              {"after": "30m", "channels": [webhook(&sink, "director")]}]}),
    )
    .await;
    let seen = unique_id("WaterObserved");
    let ignored = unique_id("WaterObserved");
    app.upsert_all(vec![gauge(&seen, 4.7, t0), gauge(&ignored, 4.8, t0)])
        .await;
    let list = app
        .until_alerts("level-2", "two alerts", |l| l.len() == 2)
        .await;
    app.deliver().await;
    app.advance(Duration::from_secs(10));
    sink.until("duty", 1).await;
    // The officer on duty acknowledges one of them.
    let acked = list
        .iter()
        .find(|a| a["alertSource"] == seen.as_str())
        .and_then(|a| a["id"].as_str())
        .expect("the alert");
    let (s, body) = app
        .send(
            client(OPERATOR_KEY)
                .post(app.url(&format!("/alerts/v1/alerts/{acked}/acknowledge")))
                .json(&json!({"comment": "đang xử lý"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    app.advance(minutes(9));
    still(&sink, "chief", 0, &app).await;
    app.advance(minutes(1));
    let got = sink.until("chief", 1).await;
    assert_eq!(ids(&got[0]), [ignored.as_str()]);
    assert_eq!(got[0]["escalation"]["step"], 1);
    assert!(
        text(&got[0]["title"]["vi"]).contains("chưa được xác nhận sau 10m"),
        "{}",
        got[0]
    );
    still(&sink, "chief", 1, &app).await;
    app.advance(minutes(20));
    let got = sink.until("director", 1).await;
    assert_eq!(ids(&got[0]), [ignored.as_str()]);
    still(&sink, "director", 1, &app).await;
    still(&sink, "duty", 1, &app).await;
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_a_growing_delay() {
    let (_place, t0, app, sink) = started().await;
    app.create_rule(level_rule(1)).await;
    app.create_policy(
        json!({"id": "default", "channels": [webhook(&sink, "ops")], "groupWait": "0s"}),
    )
    .await;
    sink.fail_next("ops", 2);
    app.upsert(gauge(&unique_id("WaterObserved"), 3.3, t0))
        .await;
    app.until_one_alert("level-1", "fires").await;
    app.deliver().await;
    app.deliver().await;
    // Two failures so far at most; one second later, a second try; two more, a third.
    assert_eq!(
        app.alerts.pending_notifications("").await.expect("outbox"),
        1
    );
    still(&sink, "ops", 0, &app).await;
    app.advance(Duration::from_secs(1));
    app.deliver().await;
    app.advance(Duration::from_secs(2));
    let got = sink.until("ops", 1).await;
    assert_eq!(got[0]["status"], "firing");
    still(&sink, "ops", 1, &app).await;
    assert_eq!(
        app.alerts.pending_notifications("").await.expect("outbox"),
        0
    );
}

#[tokio::test]
async fn delivery_state_and_the_outbox_survive_a_restart() {
    let place = Place::new();
    let t0 = start_time();
    let url = store_url(&place.db()).await;
    let sink = Sink::start().await;
    let app = App::start_on(&url, t0).await;
    app.create_rule(level_rule(1)).await;
    app.create_policy(
        json!({"id": "default", "channels": [webhook(&sink, "ops"), webhook(&sink, "log")],
               "groupWait": "10s", "repeatInterval": "1h"}),
    )
    .await;
    app.upsert(gauge(&unique_id("WaterObserved"), 3.3, t0))
        .await;
    app.until_one_alert("level-1", "fires").await;
    app.deliver().await;
    // `ops` receives; `log` fails, and its message waits in the outbox.
    sink.fail_next("log", 1);
    app.advance(Duration::from_secs(10));
    let first = sink.until("ops", 1).await;
    app.deliver().await;
    assert_eq!(
        app.alerts.pending_notifications("").await.expect("outbox"),
        1
    );
    assert!(sink.on("log").is_empty());
    app.stop().await;
    // A new process over the same store, five minutes later.
    let later: DateTime<Utc> = t0 + chrono::TimeDelta::minutes(5);
    let app = App::start_on(&url, later).await;
    sink.until("log", 1).await;
    still(&sink, "ops", 1, &app).await;
    still(&sink, "log", 1, &app).await;
    // The repeat comes an hour after the first message, not a group wait after the
    // restart.
    app.advance(minutes(55));
    still(&sink, "ops", 1, &app).await;
    app.advance(minutes(1));
    let got = sink.until("ops", 2).await;
    assert_eq!(ids(&got[1]), ids(&first[0]));
    still(&sink, "ops", 2, &app).await;
}

#[tokio::test]
async fn policies_route_by_area_to_their_own_channels_and_the_rest_to_the_default() {
    let (_place, t0, app, sink) = started().await;
    app.create_rule(level_rule(1)).await;
    let commune = "urn:ngsi-ld:AdministrativeArea:VN-45-19489";
    app.create_policy(
        json!({"id": "dong-ha", "order": 1, "match": {"area": {"commune": commune}},
               "channels": [webhook(&sink, "dongha")], "groupWait": "0s"}),
    )
    .await;
    // A box around the gauges' point (107.183, 16.756).
    app.create_policy(json!({
        "id": "box", "order": 2,
        "match": {"area": {"polygon": [[[107.1, 16.7], [107.3, 16.7], [107.3, 16.8], [107.1, 16.8], [107.1, 16.7]]]},
                  "severity": ["high"]},
        "channels": [webhook(&sink, "box")], "groupWait": "0s"
    }))
    .await;
    app.create_policy(
        json!({"id": "default", "channels": [webhook(&sink, "rest")], "groupWait": "0s"}),
    )
    .await;
    let in_commune = unique_id("WaterObserved");
    let mut g = gauge(&in_commune, 3.2, t0);
    g["refAdministrativeArea"] = json!({"type": "Relationship", "object": commune});
    let elsewhere = unique_id("WaterObserved");
    let mut far = gauge(&elsewhere, 3.2, t0);
    far["location"] =
        json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [106.9, 17.1]}});
    let in_box = unique_id("WaterObserved");
    app.upsert_all(vec![g, far, gauge(&in_box, 3.2, t0)]).await;
    app.until_alerts("level-1", "three alerts", |l| l.len() == 3)
        .await;
    app.deliver().await;
    assert_eq!(
        ids(&sink.until("dongha", 1).await[0]),
        [in_commune.as_str()]
    );
    // The commune's gauge is in the box too, but the first policy took it.
    assert_eq!(ids(&sink.until("box", 1).await[0]), [in_box.as_str()]);
    assert_eq!(ids(&sink.until("rest", 1).await[0]), [elsewhere.as_str()]);
}

#[tokio::test]
async fn mqtt_channel_publishes_to_the_broker() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (t0, app) = App::start_now().await;
    let topic = format!("dothi-test/alerts/{}", unique_id("t").replace(':', "-"));
    let mut options = MqttOptions::new(
        format!("alerts-test-{}", std::process::id()),
        "127.0.0.1",
        1883,
    );
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 16);
    client
        .subscribe(&topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(serde_json::from_slice(&p.payload).unwrap_or(Value::Null));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .expect("subscribed in time")
        .expect("subscribed");
    app.create_rule(level_rule(1)).await;
    app.create_policy(json!({
        "id": "default", "groupWait": "0s",
        "channels": [{"kind": "mqtt", "url": format!("mqtt://127.0.0.1:1883/{topic}"), "lang": "en"}]
    }))
    .await;
    let g = app.new_gauge(3.4, t0).await;
    app.until_one_alert("level-1", "fires").await;
    app.deliver().await;
    let m = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message in time")
        .expect("a message");
    assert_eq!(ids(&m), [g.as_str()]);
    assert_eq!(m["status"], "firing");
    // English only, as the channel asks.
    assert!(
        m["title"]["en"].is_string() && m["title"]["vi"].is_null(),
        "{m}"
    );
    assert!(
        text(&m["text"]["en"]).contains("water level 3.4 m, above alarm level 1"),
        "{m}"
    );
}

/// The Python of a virtual environment holding aiosmtpd, made once under target/.
fn smtp_python() -> std::path::PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = READY.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("alerts-smtp-venv");
    let python = venv.join("bin/python");
    let has = |p: &std::path::Path| {
        std::process::Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "making {venv:?}");
        let pip = std::process::Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                "--disable-pip-version-check",
                "aiosmtpd>=1.4",
            ])
            .status()
            .expect("pip install aiosmtpd");
        assert!(pip.success(), "installing aiosmtpd");
    }
    python
}

/// A real SMTP server on loopback: its port, the file of the messages it got, and
/// the process (stopped when dropped).
async fn smtp_server(dir: &std::path::Path) -> (u16, std::path::PathBuf, tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    let python = tokio::task::spawn_blocking(smtp_python)
        .await
        .expect("the venv");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let file = dir.join("mail.jsonl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the SMTP server");
    let out = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(out).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the SMTP server starts in time")
        .expect("its output");
    assert_eq!(ready.as_deref(), Some("ready"));
    (port, file, child)
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server_in_both_languages() {
    let place = Place::new();
    let t0 = start_time();
    let (port, file, _server) = smtp_server(place.dir.path()).await;
    let relay = alerts::SmtpRelay {
        host: "127.0.0.1".into(),
        port,
        from: "Trung tâm IOC <canh-bao@dothi.test>".into(),
        credentials: None,
        security: alerts::SmtpSecurity::None,
    };
    let app = App::start_with(&store_url(&place.db()).await, t0, Some(relay)).await;
    app.create_rule(level_rule(2)).await;
    app.create_policy(json!({
        "id": "default", "groupWait": "5s",
        "channels": [{"kind": "email", "to": ["truc-ban@dothi.test", "chi-huy@dothi.test"]}]
    }))
    .await;
    app.new_gauge(4.9, t0).await;
    app.until_one_alert("level-2", "fires").await;
    app.deliver().await;
    app.advance(Duration::from_secs(5));
    let read = || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let mails = until(
        "an e-mail",
        || async { Value::Array(read()) },
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let mail = &mails[0];
    assert_eq!(mail["from"], "canh-bao@dothi.test");
    assert_eq!(
        mail["to"],
        json!(["truc-ban@dothi.test", "chi-huy@dothi.test"])
    );
    let subject = mail["subject"].as_str().unwrap_or_default();
    assert!(
        subject.contains("1 cảnh báo đang hoạt động") && subject.contains("1 alert(s) firing"),
        "{subject}"
    );
    let text = mail["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Trạm Thạch Hãn: mực nước 4.9 m, vượt báo động 2 (4.5 m)")
            && text.contains("Thạch Hãn gauge: water level 4.9 m, above alarm level 2 (4.5 m)"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read().len(), 1, "one e-mail");
}
