//! The simulator feeding the demo sensors of the Quảng Trị data set: a real hub with
//! the data set loaded, the demo devices provisioned in-process, readings sent over
//! MQTT (the real broker), over HTTP and to the agent in-process, and the entities and
//! their history seen to follow.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use iot::MqttConfig;
use iot::simulate::{MqttSink, Scenario, Simulator, Sink, Stats, provision};

use crate::common::{App, BROKER, WAIT, send, unique};

/// (device, measure in payloads, attribute on the entity) watched by the test.
const WATCHED: [(&str, &str, &str); 4] = [
    ("gauge-thach-han", "l", "waterLevel"),
    ("air-dong-ha", "pm25", "pm25"),
    ("weather-dong-ha", "t", "temperature"),
    ("traffic-ql1-dong-ha-1", "n", "intensity"),
];

/// How many instances of `attr` the entity's history has.
async fn history_len(app: &App, id: &str, attr: &str) -> usize {
    let r = send(
        app.client
            .get(app.url(&format!("/ngsi-ld/v1/temporal/entities/{id}")))
            .query(&[
                ("attrs", attr),
                ("options", "temporalValues"),
                ("lastN", "100"),
            ]),
    )
    .await;
    assert_eq!(r.status, 200, "history of {id}: {}", r.text);
    r.body[attr]["values"].as_array().map_or(0, Vec::len)
}

/// Waits until every watched entity holds the reading `tick` sent and its history has
/// at least `instances` values of the watched attribute.
async fn wait_for_tick(app: &App, sim: &Simulator, tick: u64, instances: usize) {
    for (device_id, measure, attr) in WATCHED {
        let device = sim
            .devices
            .iter()
            .find(|d| d.device_id == device_id)
            .unwrap_or_else(|| panic!("{device_id} is a demo device"));
        let want = sim.scenario.reading(device, tick)[measure].as_f64();
        let observed = sim.scenario.reading(device, tick)["TimeInstant"].clone();
        app.wait_entity("", &device.entity_id, |e| {
            e[attr]["value"].as_f64() == want && e[attr]["observedAt"] == observed
        })
        .await;
        let start = Instant::now();
        loop {
            let n = history_len(app, &device.entity_id, attr).await;
            if n >= instances {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "{} has {n} values of {attr} in its history, not {instances}, after {WAIT:?}",
                device.entity_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_feeds_the_demo_sensors_over_mqtt_and_http() {
    let app = App::start().await;
    city::load(&app.hub).await.expect("the data set loads");
    let apikey = unique("quangtri-sim");
    let devices = demo::sensors::devices();
    let n = devices.len();
    let done = provision(app.agent.registry(), "", &apikey, &devices)
        .await
        .expect("provisioning");
    assert_eq!(done.created, n);
    let again = provision(app.agent.registry(), "", &apikey, &devices)
        .await
        .expect("provisioning again");
    assert_eq!((again.created, again.unchanged), (0, n), "idempotent");

    // A 30-minute flood starting 15 minutes ago: reading 90 (10 s apart) is now, and
    // the Thạch Hãn at its highest.
    let sim = Simulator {
        scenario: Scenario {
            seed: 42,
            start: Utc::now() - TimeDelta::minutes(15),
            step: TimeDelta::seconds(10),
            flood: TimeDelta::minutes(30),
            ..Default::default()
        },
        apikey,
        devices,
        interval: Duration::from_millis(100),
    };

    // Over MQTT: readings 90, 91, 92.
    let config = MqttConfig::from_url(BROKER, &unique("dothi-sim")).expect("MQTT settings");
    let mqtt = Sink::Mqtt(MqttSink::connect(&config));
    let mut stats = Stats::default();
    for tick in 90..93 {
        sim.tick(&mqtt, tick, &mut stats).await;
    }
    assert_eq!((stats.sent, stats.failed), (3 * n as u64, 0));
    // The data set's value, then three readings.
    wait_for_tick(&app, &sim, 92, 4).await;
    let gauge = app
        .entity("", "urn:ngsi-ld:WaterObserved:demo-thach-han")
        .await
        .expect("the gauge");
    assert_eq!(gauge["alarmLevelReached"]["value"], 3, "{gauge}");
    assert!(gauge["waterLevel"]["value"].as_f64() > Some(6.0), "{gauge}");

    // Over HTTP: readings 93, 94, 95, each answered once written.
    let http = Sink::Http {
        client: app.client.clone(),
        base: app.base.clone(),
    };
    let mut stats = Stats::default();
    for tick in 93..96 {
        sim.tick(&http, tick, &mut stats).await;
    }
    assert_eq!((stats.sent, stats.failed), (3 * n as u64, 0));
    wait_for_tick(&app, &sim, 95, 7).await;

    // Straight to the agent, as `dothi demo` does without a broker: readings 96, 97.
    let in_process = Sink::Agent(app.agent.clone());
    let mut stats = Stats::default();
    for tick in 96..98 {
        sim.tick(&in_process, tick, &mut stats).await;
    }
    assert_eq!((stats.sent, stats.failed), (2 * n as u64, 0));
    wait_for_tick(&app, &sim, 97, 9).await;

    // The devices fed the data set's entities: no other entity of these types appeared.
    let r = send(app.client.get(app.url("/ngsi-ld/v1/entities")).query(&[
        (
            "type",
            "WaterObserved,AirQualityObserved,WeatherObserved,TrafficFlowObserved",
        ),
        ("pick", "id"),
        ("limit", "1000"),
    ]))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_array().map(Vec::len), Some(n));
    app.stop().await;
}
