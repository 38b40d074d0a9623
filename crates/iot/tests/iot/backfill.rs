//! A year of past readings written as history, over a real SQLite file with the demo
//! data set loaded: as many readings as the year plans, the entity's current value
//! untouched, and nothing written twice, whether the backfill is done or its record
//! lags behind the history.

use chrono::{DateTime, TimeDelta, Utc};
use iot::simulate::backfill::{self, COLLECTION, KEY, Window, planned_readings};
use iot::simulate::year::Year;
use iot::simulate::{Profile, Scenario, SimDevice};
use serde_json::{Value, json};
use store::RegistryWrite;

use crate::common::App;

const GAUGE: &str = "urn:ngsi-ld:WaterObserved:demo-thach-han";

fn gauge() -> SimDevice {
    SimDevice {
        device_id: "gauge-thach-han".into(),
        entity_id: GAUGE.into(),
        entity_type: "WaterObserved".into(),
        profile: Profile::RiverGauge {
            usual_level: 2.35,
            alarm_levels: [Some(3.0), Some(4.5), Some(6.0)],
            floods: true,
        },
    }
}

async fn get(app: &App, path: &str, query: &[(&str, &str)]) -> Value {
    let r = app
        .client
        .get(format!("{}/ngsi-ld/v1{path}", app.base))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The gauge's waterLevel readings in the window, counted by the temporal API.
async fn count(app: &App, w: &Window) -> u64 {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = get(
        app,
        &format!("/temporal/entities/{GAUGE}"),
        &[
            ("attrs", "waterLevel"),
            ("timerel", "between"),
            ("timeAt", &fmt(w.from)),
            ("endTimeAt", &fmt(w.to)),
            ("options", "aggregatedValues"),
            ("aggrMethods", "totalCount"),
            ("aggrPeriodDuration", "P1D"),
        ],
    )
    .await;
    body["waterLevel"]["totalCount"]
        .as_array()
        .map(|days| days.iter().map(|d| d[0].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_history_is_written_once() {
    let app = App::start().await;
    // The window ends at the hour of `now`. Taken before the data set loads, it never
    // holds the loaded values, observed at the hour of their loading (a load across
    // the hour's end put one inside).
    let now = Utc::now();
    city::load(&app.hub).await.expect("the data set loads");
    let scope = hub::Scope::system("test", "");
    let scenario = Scenario {
        seed: 1,
        year: Some(std::sync::Arc::new(Year::default())),
        ..Default::default()
    };
    let devices = [gauge()];
    let before = get(&app, &format!("/entities/{GAUGE}"), &[]).await;

    let mut seen = Vec::new();
    let done = backfill::run(&app.hub, &scope, &scenario, &devices, now, |r| {
        seen.push(r.done)
    })
    .await
    .unwrap();
    let w = done.window.clone().unwrap();
    assert!(w.complete && !done.resumed && !done.already_done);
    let planned = planned_readings(&scenario, &gauge(), &w, w.from, w.to);
    // A reading every 15 minutes for a year, less the gauge's 6 silent hours.
    assert_eq!(planned, 365 * 96 - 24);
    assert_eq!(done.readings, planned);
    assert_eq!(
        done.instances,
        2 * planned,
        "waterLevel and alarmLevelReached"
    );
    assert_eq!(count(&app, &w).await, planned);
    // Progress went forward to the end, newest first.
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(1.0));
    // The entity is as loaded.
    assert_eq!(get(&app, &format!("/entities/{GAUGE}"), &[]).await, before);

    // Again: nothing to do.
    let again = backfill::run(&app.hub, &scope, &scenario, &devices, now, |_| {})
        .await
        .unwrap();
    assert!(again.already_done);
    assert_eq!(again.readings, 0);

    // A record that lags behind the history (its chunks committed, its updates lost):
    // the chunks found in the history are skipped, none is written twice.
    let records = app.hub.records();
    let mut record = records
        .registry_get(COLLECTION, "", KEY)
        .await
        .unwrap()
        .unwrap();
    let lagging = w.from + TimeDelta::days(9);
    record["backTo"] = json!(ngsi::entity::format_time(&lagging));
    record["complete"] = json!(false);
    records
        .registry_put(
            COLLECTION,
            "",
            vec![(KEY.into(), record)],
            RegistryWrite::Upsert,
        )
        .await
        .unwrap();
    let resumed = backfill::run(&app.hub, &scope, &scenario, &devices, now, |_| {})
        .await
        .unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.readings, 0);
    assert_eq!(count(&app, &w).await, planned);
    let kept = backfill::window(&app.hub, "").await.unwrap().unwrap();
    assert!(kept.complete, "{kept:?}");
    assert_eq!((kept.from, kept.to), (w.from, w.to));
}
