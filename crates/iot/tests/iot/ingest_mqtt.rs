//! Measures over MQTT, published to the real broker: they become the entity's
//! attribute values and history; bad messages are counted and never stop the agent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{App, BROKER, Publisher, Relay, WAIT, mqtt_messages, send, unique};

/// A tenant with a thermometer: `t` → temperature (Number, CEL), `h` → humidity, a
/// static category. Returns (tenant, apikey, device id, entity id).
async fn thermometer(app: &App) -> (String, String, String, String) {
    let (tenant, apikey) = app
        .tenant_with_group(
            "mqtt",
            json!({"entity_type": "Thermometer", "autoprovision": false,
                   "static_attributes": [{"name": "category", "type": "Text", "value": "sensor"}]}),
        )
        .await;
    let device = unique("thermo");
    app.provision_device(
        &tenant,
        json!({
            "device_id": device,
            "attributes": [
                {"object_id": "t", "name": "temperature", "type": "Number",
                 "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}},
                {"object_id": "h", "name": "humidity", "type": "Integer"}
            ]
        }),
    )
    .await;
    let entity = format!("urn:ngsi-ld:Thermometer:{device}");
    (tenant, apikey, device, entity)
}

fn value_is(attr: &'static str, v: Value) -> impl Fn(&Value) -> bool {
    move |e: &Value| e[attr]["value"] == v
}

#[tokio::test]
async fn a_published_measure_becomes_the_entity_and_its_history() {
    let app = App::start().await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let accepted = app.metric(&mqtt_messages("accepted")).await;
    let mut publisher = Publisher::connect().await;
    let topic = format!("/json/{apikey}/{device}/attrs");
    publisher.publish(&topic, r#"{"t": 21.5, "h": "60"}"#).await;
    let e = app
        .wait_entity(&tenant, &entity, value_is("temperature", json!(21.5)))
        .await;
    assert_eq!(e["type"], "Thermometer");
    assert_eq!(e["temperature"]["type"], "Property");
    assert_eq!(e["temperature"]["unitCode"], "CEL");
    assert!(e["temperature"]["observedAt"].is_string(), "{e}");
    assert_eq!(e["humidity"]["value"], 60);
    assert_eq!(e["category"]["value"], "sensor");

    publisher.publish(&topic, r#"{"t": 22.0}"#).await;
    app.wait_entity(&tenant, &entity, value_is("temperature", json!(22.0)))
        .await;
    // Both readings are in the history; the static attribute, unchanged, once.
    let r = send(
        app.client
            .get(app.url(&format!("/ngsi-ld/v1/temporal/entities/{entity}")))
            .header("NGSILD-Tenant", &tenant),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut values: Vec<f64> = r.body["temperature"]
        .as_array()
        .unwrap_or_else(|| panic!("no temperature history: {}", r.text))
        .iter()
        .filter_map(|i| i["value"].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [21.5, 22.0], "{}", r.text);
    assert_eq!(
        r.body["category"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );

    assert_eq!(app.metric(&mqtt_messages("accepted")).await, accepted + 2);
    assert!(
        app.metric("dothi_iot_measures_total{transport=\"mqtt\",outcome=\"accepted\"}")
            .await
            >= 3
    );
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn the_payload_time_becomes_observed_at() {
    let app = App::start().await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let mut publisher = Publisher::connect().await;
    let topic = format!("/json/{apikey}/{device}/attrs");
    publisher
        .publish(
            &topic,
            r#"{"t": 19.0, "TimeInstant": "2026-11-27T08:30:00+07:00"}"#,
        )
        .await;
    let e = app
        .wait_entity(&tenant, &entity, value_is("temperature", json!(19.0)))
        .await;
    assert_eq!(e["temperature"]["observedAt"], "2026-11-27T01:30:00Z");
    assert!(e.get("TimeInstant").is_none(), "{e}");

    // A time far in the future: the measure is kept, timed when received, and the
    // refusal counted.
    let refused = "dothi_iot_timestamps_rejected_total{transport=\"mqtt\"}";
    let before = app.metric(refused).await;
    publisher
        .publish(
            &topic,
            r#"{"t": 20.0, "TimeInstant": "2999-01-01T00:00:00Z"}"#,
        )
        .await;
    let e = app
        .wait_entity(&tenant, &entity, value_is("temperature", json!(20.0)))
        .await;
    let observed =
        chrono::DateTime::parse_from_rfc3339(e["temperature"]["observedAt"].as_str().unwrap())
            .unwrap();
    let age = chrono::Utc::now().signed_duration_since(observed);
    assert!(age.num_seconds().abs() < 60, "observedAt {observed}");
    assert_eq!(app.metric(refused).await, before + 1);
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_single_measure_topic_sets_one_attribute() {
    let app = App::start().await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let mut publisher = Publisher::connect().await;
    publisher
        .publish(&format!("/json/{apikey}/{device}/attrs/t"), "23.5")
        .await;
    let e = app
        .wait_entity(&tenant, &entity, value_is("temperature", json!(23.5)))
        .await;
    assert_eq!(e["temperature"]["unitCode"], "CEL");
    assert!(e.get("humidity").is_none());
    // A plain text value on an unmapped measure.
    publisher
        .publish(&format!("/json/{apikey}/{device}/attrs/state"), "on")
        .await;
    app.wait_entity(&tenant, &entity, value_is("state", json!("on")))
        .await;
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_apikeys_and_devices_are_dropped_and_counted() {
    let app = App::start().await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let unknown_key = app.metric(&mqtt_messages("unknown_apikey")).await;
    let unknown_device = app.metric(&mqtt_messages("unknown_device")).await;
    let mut publisher = Publisher::connect().await;
    let stranger = unique("stranger");
    publisher
        .publish(
            &format!("/json/{}/{device}/attrs", unique("nokey")),
            r#"{"t": 1}"#,
        )
        .await;
    // The group does not provision devices by themselves.
    publisher
        .publish(&format!("/json/{apikey}/{stranger}/attrs"), r#"{"t": 2}"#)
        .await;
    // (Other tests' agents count their messages here too: hence "at least".)
    app.wait_metric(&mqtt_messages("unknown_apikey"), unknown_key + 1)
        .await;
    assert_eq!(
        app.wait_metric(&mqtt_messages("unknown_device"), unknown_device + 1)
            .await,
        unknown_device + 1
    );
    assert!(
        app.entity(&tenant, &format!("urn:ngsi-ld:Thermometer:{stranger}"))
            .await
            .is_none()
    );
    assert!(app.entity(&tenant, &entity).await.is_none());
    let r = send(app.iot(Method::GET, &format!("/iot/devices/{stranger}"), &tenant)).await;
    assert_eq!(r.status, 404);
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_group_with_autoprovision_provisions_new_devices() {
    let app = App::start().await;
    let (tenant, apikey) = app
        .tenant_with_group(
            "auto",
            json!({"entity_type": "AirQualityObserved", "autoprovision": true,
                   "attributes": [{"object_id": "p", "name": "pm25", "type": "Number",
                                   "metadata": {"unitCode": {"type": "Text", "value": "GQ"}}}]}),
        )
        .await;
    let device = unique("aq");
    let mut publisher = Publisher::connect().await;
    publisher
        .publish(&format!("/json/{apikey}/{device}/attrs"), r#"{"p": 12.5}"#)
        .await;
    let entity = format!("urn:ngsi-ld:AirQualityObserved:{device}");
    let e = app
        .wait_entity(&tenant, &entity, value_is("pm25", json!(12.5)))
        .await;
    // The group's mapping applies to the new device.
    assert_eq!(e["pm25"]["unitCode"], "GQ");
    let r = send(app.iot(Method::GET, &format!("/iot/devices/{device}"), &tenant)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["autoprovisioned"], true);
    assert_eq!(r.body["entity_name"], entity.as_str());
    assert_eq!(r.body["apikey"], apikey.as_str());
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn bad_messages_do_not_stop_the_agent_nor_lose_good_measures() {
    let app = App::start().await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let malformed = app.metric(&mqtt_messages("malformed")).await;
    let rejected = "dothi_iot_measures_total{transport=\"mqtt\",outcome=\"rejected\"}";
    let rejected_before = app.metric(rejected).await;
    let mut publisher = Publisher::connect().await;
    let topic = format!("/json/{apikey}/{device}/attrs");
    for garbage in [&b"{not json"[..], b"[1, 2]", b"42", b"\xff\xfe", b""] {
        publisher.publish(&topic, garbage).await;
    }
    // A measure declared Number that is not one is left out; the others are written.
    publisher
        .publish(&topic, r#"{"t": "warm", "h": 55, "note": null}"#)
        .await;
    let e = app
        .wait_entity(&tenant, &entity, value_is("humidity", json!(55)))
        .await;
    assert!(e.get("temperature").is_none(), "{e}");
    // And a good message after all that still arrives.
    publisher.publish(&topic, r#"{"t": 24.0}"#).await;
    app.wait_entity(&tenant, &entity, value_is("temperature", json!(24.0)))
        .await;
    assert_eq!(
        app.wait_metric(&mqtt_messages("malformed"), malformed + 5)
            .await,
        malformed + 5
    );
    assert_eq!(app.metric(rejected).await, rejected_before + 2);
    publisher.disconnect().await;
    app.stop().await;
}

/// With a persistent session, what is published while dothi is stopped is delivered
/// when it comes back, and written then.
#[tokio::test]
async fn messages_published_while_stopped_arrive_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dothi.db");
    let client_id = unique("dothi-test-persistent");
    let app = App::start_at(&db, &client_id, false, BROKER).await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    app.stop().await;

    let mut publisher = Publisher::connect().await;
    publisher
        .publish(&format!("/json/{apikey}/{device}/attrs"), r#"{"t": 30.5}"#)
        .await;
    publisher.disconnect().await;

    let app = App::start_at(&db, &client_id, false, BROKER).await;
    app.wait_entity(&tenant, &entity, value_is("temperature", json!(30.5)))
        .await;
    app.stop().await;
    // The broker forgets the session: a clean connection with the same id.
    Publisher::connect_as(&client_id, true)
        .await
        .disconnect()
        .await;
}

/// The connection to the broker is re-established by itself: after it is cut, the
/// agent connects and subscribes again, and later messages arrive.
#[tokio::test]
async fn the_agent_reconnects_after_the_connection_is_cut() {
    let relay = Relay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::start_at(
        &dir.path().join("dothi.db"),
        &unique("dothi-test-relay"),
        true,
        &relay.url,
    )
    .await;
    let (tenant, apikey, device, entity) = thermometer(&app).await;
    let mut publisher = Publisher::connect().await;
    let topic = format!("/json/{apikey}/{device}/attrs");
    publisher.publish(&topic, r#"{"t": 10.0}"#).await;
    app.wait_entity(&tenant, &entity, value_is("temperature", json!(10.0)))
        .await;

    relay.cut();
    let start = std::time::Instant::now();
    while relay.accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            start.elapsed() < WAIT,
            "the agent did not reconnect within {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    app.wait_subscribed().await;
    publisher.publish(&topic, r#"{"t": 11.0}"#).await;
    app.wait_entity(&tenant, &entity, value_is("temperature", json!(11.0)))
        .await;
    publisher.disconnect().await;
    app.stop().await;
    relay.stop();
}

/// A burst faster than the writes: the agent falls behind, the broker may drop what
/// overflows its queue for the agent, but the agent keeps taking messages (it once
/// stalled for good when its workers and its connection waited on each other).
#[tokio::test]
async fn a_burst_of_messages_never_stalls_the_agent() {
    let app = App::start().await;
    let (tenant, apikey) = app
        .tenant_with_group(
            "burst",
            json!({"entity_type": "Gauge", "autoprovision": true}),
        )
        .await;
    let mut publisher = Publisher::connect().await;
    for i in 0..3_000u32 {
        let topic = format!("/json/{apikey}/gauge-{}/attrs", i % 40);
        publisher.publish(&topic, format!(r#"{{"v": {i}}}"#)).await;
    }
    // The agent takes what the broker hands it until the broker has no more: at least
    // the broker's queue for it (Mosquitto keeps 1,000 by default, and drops beyond).
    let mut taken = app.metric(&mqtt_messages("accepted")).await;
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        let now = app.metric(&mqtt_messages("accepted")).await;
        if now == taken {
            break;
        }
        taken = now;
        assert!(start.elapsed() < WAIT * 4, "the burst is still being taken");
    }
    assert!(
        taken >= 1_000,
        "only {taken} messages of the burst were taken"
    );
    // And then a message of a new device is written.
    publisher
        .publish(&format!("/json/{apikey}/after-burst/attrs"), r#"{"v": -1}"#)
        .await;
    app.wait_entity(
        &tenant,
        "urn:ngsi-ld:Gauge:after-burst",
        value_is("v", json!(-1)),
    )
    .await;
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn nodes_in_a_shared_group_each_take_a_share_of_the_measures() {
    // Two nodes, each over its own store with the same device: in one shared group,
    // every measure reaches one of them.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let group = unique("group");
    let mut apps = Vec::new();
    for dir in &dirs {
        let config = iot::MqttConfig::from_url(BROKER, &unique("dothi-test-shared"))
            .unwrap()
            .shared(&group)
            .unwrap();
        let mut config = config;
        config.clean_session = true;
        apps.push(App::start_with(&dir.path().join("dothi.db"), config).await);
    }
    let (tenant, apikey, device) = (unique("shared"), unique("key"), unique("thermo"));
    for app in &apps {
        app.provision_group(
            &tenant,
            json!({"apikey": apikey, "entity_type": "Thermometer"}),
        )
        .await;
        app.provision_device(&tenant, json!({"device_id": device}))
            .await;
    }
    let accepted_before = [
        apps[0].metric(&mqtt_messages("accepted")).await,
        apps[1].metric(&mqtt_messages("accepted")).await,
    ];
    let mut publisher = Publisher::connect().await;
    let topic = format!("/json/{apikey}/{device}/attrs");
    const SENT: u64 = 40;
    for n in 0..SENT {
        publisher
            .publish(&topic, format!(r#"{{"t": {n}}}"#).as_str())
            .await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    let taken = loop {
        let taken = [
            apps[0].metric(&mqtt_messages("accepted")).await - accepted_before[0],
            apps[1].metric(&mqtt_messages("accepted")).await - accepted_before[1],
        ];
        if taken[0] + taken[1] >= SENT || std::time::Instant::now() > deadline {
            break taken;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Each measure once in all; with a share for each node.
    assert_eq!(taken[0] + taken[1], SENT, "taken by each node: {taken:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again = [
        apps[0].metric(&mqtt_messages("accepted")).await - accepted_before[0],
        apps[1].metric(&mqtt_messages("accepted")).await - accepted_before[1],
    ];
    assert_eq!(again, taken, "a measure reached both nodes");
    assert!(
        taken[0] > 0 && taken[1] > 0,
        "one node took every measure: {taken:?}"
    );
    publisher.disconnect().await;
    for app in apps {
        app.stop().await;
    }
}
