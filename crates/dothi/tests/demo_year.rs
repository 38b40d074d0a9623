//! The demo's year of history, with the real `dothi demo` over a real SQLite file: the
//! last 30 days of a gauge arrive soon after the start, as many readings as the
//! simulator's year plans, the gauge's current value is left as loaded, and a restart
//! on the same store writes none of it again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::{Dothi, get_json, quiet_dothi};
use iot::simulate::Scenario;
use iot::simulate::backfill::{SPAN, STEP, Window, planned_readings};
use serde_json::Value;

const GAUGE: &str = "urn:ngsi-ld:WaterObserved:demo-thach-han";
/// How long a debug build on a busy machine may take; a hang, not a speed, fails.
const PATIENCE: Duration = Duration::from_secs(600);

struct Demo {
    dothi: Dothi,
    started: Instant,
}

impl Demo {
    async fn start(db: &Path) -> Demo {
        let started = Instant::now();
        let store = format!("sqlite://{}", db.display());
        let dothi = Dothi::launch(PATIENCE, Duration::from_secs(30), |port| {
            quiet_dothi([
                "demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--store",
                &store,
                "--no-simulate",
                // A session of its own at the machine's broker: under the default
                // client id, the broker hands over the measures queued for whichever
                // `dothi` process used it last (another demo's simulator), which would
                // land in this gauge's history.
                "--mqtt-client-id",
                &format!("demo-year-{}-{port}", std::process::id()),
            ])
        })
        .await;
        println!("demo ready after {:.1} s", started.elapsed().as_secs_f64());
        Demo { dothi, started }
    }

    /// The gauge's current water level and when it was observed.
    async fn level(&self) -> (f64, DateTime<Utc>) {
        let e = get_json(
            &self.dothi.client,
            format!("{}/ngsi-ld/v1/entities/{GAUGE}", self.dothi.base),
        )
        .await;
        let at = e["waterLevel"]["observedAt"].as_str().unwrap();
        (
            e["waterLevel"]["value"].as_f64().unwrap(),
            DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    /// The gauge's waterLevel readings observed in `[from, to)`, counted by the
    /// temporal API one day at a time.
    async fn count(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (from, to) = (fmt(from), fmt(to));
        let query = [
            ("attrs", "waterLevel"),
            ("timerel", "between"),
            ("timeAt", from.as_str()),
            ("endTimeAt", to.as_str()),
            ("options", "aggregatedValues"),
            ("aggrMethods", "totalCount"),
            ("aggrPeriodDuration", "P1D"),
        ];
        let r = self
            .dothi
            .get_ok(&format!("/temporal/entities/{GAUGE}"), &query)
            .await;
        let body: Value = r.json().await.unwrap();
        body["waterLevel"]["totalCount"]
            .as_array()
            .map(|days| days.iter().map(|d| d[0].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        assert!(self.dothi.terminate().await.success());
    }
}

/// Waits until `count` reaches `want` (or the patience runs out); returns the last
/// count.
async fn wait_for(demo: &Demo, from: DateTime<Utc>, to: DateTime<Utc>, want: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n = demo.count(from, to).await;
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_demo_has_a_month_of_gauge_history_and_a_restart_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let demo = Demo::start(&db).await;

    // The data set's values are observed at the hour of the start, where the history
    // ends.
    let (level, to) = demo.level().await;
    let window = Window {
        from: to - SPAN,
        to,
        back_to: to,
        complete: false,
    };
    let gauge = dothi_gauge();
    let scenario = Scenario {
        seed: 1,
        year: Some(demo::sensors::year()),
        ..Default::default()
    };
    let month = to - TimeDelta::days(30);
    let planned = planned_readings(&scenario, &gauge, &window, month, to);
    // A reading every 15 minutes, less the gauge's planned silences.
    let every = (TimeDelta::days(30).num_seconds() / STEP.num_seconds()) as u64;
    assert!(
        planned <= every && planned + 96 > every,
        "{planned} of {every}"
    );

    let got = wait_for(&demo, month, to, planned).await;
    println!(
        "30 days of the gauge's history ({got} readings) {:.1} s after the start",
        demo.started.elapsed().as_secs_f64()
    );
    assert_eq!(got, planned, "readings of the last 30 days");
    // Nothing from the backfill is newer than the data set's value: the gauge's
    // current value is still the one loaded.
    assert_eq!(demo.level().await, (level, to));
    assert_eq!(
        demo.count(to, to + TimeDelta::days(1)).await,
        1,
        "the loaded value"
    );

    // The month before, as far as it has gone.
    let before = demo.count(month - TimeDelta::days(30), month).await;
    demo.stop().await;

    let again = Demo::start(&db).await;
    // The backfill goes on (or is already done): the month before fills up...
    let planned_before = planned_readings(
        &scenario,
        &gauge,
        &window,
        month - TimeDelta::days(30),
        month,
    );
    let filled = wait_for(&again, month - TimeDelta::days(30), month, planned_before).await;
    assert!(filled >= before);
    assert_eq!(filled, planned_before, "the month before, once");
    // ...and the last month has exactly what it had.
    assert_eq!(again.count(month, to).await, planned, "no reading twice");
    again.stop().await;
}

/// The Thạch Hãn gauge's simulated device, as `dothi demo` provisions it.
fn dothi_gauge() -> iot::simulate::SimDevice {
    demo::sensors::devices()
        .into_iter()
        .find(|d| d.entity_id == GAUGE)
        .expect("the Thạch Hãn gauge is a demo device")
}
