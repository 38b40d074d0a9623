//! KPIs read from the other services' entities: citizen reports and the open data
//! catalogue loaded by those services themselves, the air-quality history, the
//! sensors' last readings.

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::common::{ADMIN, App, VIEWER, api_count};

async fn recompute(app: &App) -> Value {
    let (status, v) = app
        .post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The input of a KPI's evidence named `name`.
fn input<'a>(kpi: &'a Value, name: &str) -> &'a Value {
    kpi["evidence"]["inputs"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no input {name:?} in {kpi}"))
}

/// Every input counted by entities answers its count again through the API.
async fn check_counts(app: &App, kpi: &Value) {
    for i in kpi["evidence"]["inputs"].as_array().expect("inputs") {
        if i.get("rule").is_none() && i.get("api").is_none() {
            let href = i["href"].as_str().expect("href");
            assert_eq!(
                Some(api_count(app, href).await),
                i["count"].as_u64(),
                "{href}"
            );
        }
    }
}

/// The reports' figures by the reports' own model: answered (handled) reports and
/// those on time (`Report::on_time`), rated and satisfied (4 or 5), of the reports
/// received since `since`.
#[derive(Debug)]
struct Figures {
    handled: u64,
    on_time: u64,
    rated: u64,
    satisfied: u64,
}

impl Figures {
    fn of(all: &[reports::model::Report], since: chrono::DateTime<Utc>) -> Figures {
        let window: Vec<_> = all
            .iter()
            .filter(|r| r.requested_datetime >= since)
            .collect();
        let count = |f: &dyn Fn(&reports::model::Report) -> bool| {
            window.iter().filter(|r| f(r)).count() as u64
        };
        Figures {
            handled: count(&|r| r.stage.is_handled()),
            on_time: count(&|r| r.on_time() == Some(true)),
            rated: count(&|r| r.rating.is_some()),
            satisfied: count(&|r| r.rating.is_some_and(|x| x >= 4)),
        }
    }
}

/// A percentage to one decimal, as the reports' statistics round it.
fn pct(n: u64, d: u64) -> f64 {
    (n as f64 * 1000.0 / d as f64).round() / 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_report_kpis_agree_with_the_reports_own_statistics() {
    let app = App::start().await;
    // No report yet: no value.
    recompute(&app).await;
    assert!(app.kpi("reports-on-time").await.get("kpiValue").is_none());

    let reports = reports::start(app.state(), reports::ReportsConfig::default())
        .await
        .expect("citizen reports");
    let loaded = reports::demo::load(&reports).await.expect("demo reports");
    assert!(loaded.reports > 1_000, "{}", loaded.reports);
    recompute(&app).await;

    let on_time = app.kpi("reports-on-time").await;
    let satisfaction = app.kpi("reports-satisfaction").await;
    // The window the KPIs used, from their query.
    let query = input(&on_time, "reports answered")["query"]
        .as_str()
        .expect("query");
    let since = query
        .split("requested_datetime%3E%3D%22")
        .nth(1)
        .and_then(|s| s.split("%22").next())
        .expect("a window");
    let since = chrono::DateTime::parse_from_rfc3339(since)
        .expect("a time")
        .with_timezone(&Utc);

    // The reports service's own rule over the same window.
    let f = Figures::of(&reports.all().await.expect("reports"), since);
    assert!(f.handled > 0 && f.rated > 0, "{f:?}");
    // Each KPI: its inputs' counts (the whole, then the part) and the part's share.
    for (kpi, (whole, of_whole), (part, of_part)) in [
        (
            &on_time,
            ("reports answered", f.handled),
            ("of them answered on time", f.on_time),
        ),
        (
            &satisfaction,
            ("reports rated", f.rated),
            ("reports rated 4 or 5", f.satisfied),
        ),
    ] {
        assert_eq!(input(kpi, whole)["count"], json!(of_whole));
        assert_eq!(input(kpi, part)["count"], json!(of_part));
        assert_eq!(
            kpi["kpiValue"].as_f64(),
            Some(pct(of_part, of_whole)),
            "{kpi}"
        );
    }
    assert!(
        input(&on_time, "of them answered on time")["rule"].is_string(),
        "the on-time count says how it is read"
    );
    check_counts(&app, &on_time).await;
    check_counts(&app, &satisfaction).await;

    // Unchanged reports: the same counts (from the kept count).
    recompute(&app).await;
    let again = app.kpi("reports-on-time").await;
    assert_eq!(again["evidence"]["inputs"], on_time["evidence"]["inputs"]);

    // A report answered on time is found to have been resolved a day late, and updated
    // as the reports service does: the count follows, and agrees again.
    let (_, resolved) = app
        .get(
            "/ngsi-ld/v1/entities?type=Open311_ServiceRequest&q=workflowStatus==%22resolved%22&limit=100&options=keyValues",
            Some(ADMIN),
        )
        .await;
    let late = resolved
        .as_array()
        .expect("resolved reports")
        .iter()
        .find(|r| r["resolvedAt"].as_str() < r["expected_datetime"].as_str())
        .expect("a report resolved on time");
    let due =
        chrono::DateTime::parse_from_rfc3339(late["expected_datetime"].as_str().expect("due"))
            .expect("a time")
            .with_timezone(&Utc);
    let id = late["id"].as_str().expect("an id");
    let attrs = json!({
        "resolvedAt": {"type": "Property", "value": ngsi::entity::format_time(&(due + TimeDelta::days(1)))},
        "updated_datetime": {"type": "Property", "value": ngsi::entity::format_time(&Utc::now())}
    });
    let status = app.patch_attrs(id, &attrs).await;
    assert_eq!(status, 204);
    recompute(&app).await;
    let after = app.kpi("reports-on-time").await;
    assert_eq!(
        input(&after, "of them answered on time")["count"],
        json!(f.on_time - 1)
    );
    let f = Figures::of(&reports.all().await.expect("reports"), since);
    assert_eq!(
        after["kpiValue"].as_f64(),
        Some(pct(f.on_time, f.handled)),
        "{after}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_data_kpis_count_the_catalogue_and_follow_its_updates() {
    let app = App::start().await;
    let portal = opendata::Portal::new(app.hub.clone());
    let published = opendata::load_demo(&portal)
        .await
        .expect("the demo catalogue");
    let n = published.datasets.len() as f64;
    assert!(n > 5.0, "{n}");
    recompute(&app).await;
    let datasets = app.kpi("open-datasets").await;
    assert_eq!(datasets["kpiValue"].as_f64(), Some(n), "{datasets}");
    let updated = app.kpi("open-datasets-updated").await;
    assert_eq!(updated["kpiValue"], json!(100.0), "{updated}");
    check_counts(&app, &datasets).await;
    check_counts(&app, &updated).await;

    // A dataset left unchanged for half a year no longer counts as updated; the
    // change feed recomputes the share.
    let (_, list) = app
        .get("/ngsi-ld/v1/entities?type=Dataset&limit=1", Some(ADMIN))
        .await;
    let id = list[0]["id"].as_str().expect("a dataset").to_string();
    let old = ngsi::entity::format_time(&(Utc::now() - TimeDelta::days(180)));
    let status = app
        .patch_attrs(
            &id,
            &json!({"modified": {"type": "Property", "value": old}}),
        )
        .await;
    assert_eq!(status, 204);
    let want = ((n - 1.0) * 1000.0 / n).round() / 10.0;
    let updated = crate::common::wait_until(&app, "open-datasets-updated", |k| {
        k["kpiValue"].as_f64() == Some(want)
    })
    .await;
    assert_eq!(
        input(&updated, "datasets updated within 3 months")["count"],
        json!(published.datasets.len() - 1)
    );
    check_counts(&app, &updated).await;
    app.stop().await;
}

/// The daily buckets the temporal API answers for an evidence link: (all, good).
async fn air_days(app: &App, href: &str) -> (u64, u64) {
    let (status, v) = app.get(&format!("{href}&limit=100"), Some(VIEWER)).await;
    assert_eq!(status, 200, "{v}");
    let mut days = 0;
    let mut good = 0;
    for station in v.as_array().expect("stations") {
        for bucket in station["pm25"]["avg"].as_array().into_iter().flatten() {
            days += 1;
            if bucket[0].as_f64().is_some_and(|m| m <= 25.0) {
                good += 1;
            }
        }
    }
    (days, good)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_air_days_come_from_the_daily_aggregation_of_the_history() {
    let app = App::start().await;
    recompute(&app).await;
    let before = app.kpi("good-air-days").await;
    let href = input(&before, "station-days with readings")["href"]
        .as_str()
        .expect("href")
        .to_string();
    assert!(href.starts_with("/ngsi-ld/v1/temporal/entities?"), "{href}");
    let days = input(&before, "station-days with readings")["count"]
        .as_u64()
        .expect("days");
    let good = input(&before, "good station-days")["count"]
        .as_u64()
        .expect("good");
    assert!(days > 0, "{before}");
    assert_eq!(air_days(&app, &href).await, (days, good));

    // A station of its own with four past days of readings: daily means 10, 20 and
    // 24.9 (good) and 30 (not good), two readings a day.
    // Days are local: the readings are taken at 03:00 and 04:00 in Vietnam.
    let first_day = scorecard::services::GoodAirDays::window_start(Utc::now());
    let mut instances = Vec::new();
    for (back, values) in [
        (2, [8.0, 12.0]),
        (3, [15.0, 25.0]),
        (4, [24.8, 25.0]),
        (5, [20.0, 40.0]),
    ] {
        for (i, v) in values.iter().enumerate() {
            let at = first_day + TimeDelta::days(29 - back) + TimeDelta::hours(3 + i as i64);
            instances.push(json!({"type": "Property", "value": v, "unitCode": "GQ",
                                  "observedAt": ngsi::entity::format_time(&at)}));
        }
    }
    let (status, v) = app
        .post(
            "/ngsi-ld/v1/temporal/entities",
            Some(ADMIN),
            &json!({"id": "urn:ngsi-ld:AirQualityObserved:test-station",
                    "type": "AirQualityObserved", "pm25": instances}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    recompute(&app).await;
    let after = app.kpi("good-air-days").await;
    let days_after = input(&after, "station-days with readings")["count"].as_u64();
    let good_after = input(&after, "good station-days")["count"].as_u64();
    assert_eq!(days_after, Some(days + 4), "{after}");
    assert_eq!(good_after, Some(good + 3), "{after}");
    let want = ((good + 3) as f64 * 1000.0 / (days + 4) as f64).round() / 10.0;
    assert_eq!(after["kpiValue"].as_f64(), Some(want));
    let href = input(&after, "good station-days")["href"]
        .as_str()
        .expect("href");
    assert_eq!(air_days(&app, href).await, (days + 4, good + 3));
    check_counts(&app, &after).await;
    app.stop().await;
}

/// Sets a river gauge's reading, observed at `at`.
async fn gauge_reading(app: &App, id: &str, at: chrono::DateTime<Utc>) {
    let attrs = json!({"waterLevel": {"type": "Property", "value": 1.2,
                                  "observedAt": ngsi::entity::format_time(&at)}});
    let status = app.patch_attrs(id, &attrs).await;
    assert_eq!(status, 204);
}

/// The sensors reporting and all the sensors, summed from a KPI's inputs.
fn sensors(kpi: &Value) -> (u64, u64) {
    let sum = |suffix: &str| -> u64 {
        kpi["evidence"]["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .filter(|i| i["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .filter_map(|i| i["count"].as_u64())
            .sum()
    };
    (sum(" reporting"), sum(" sensors"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_uptime_counts_the_sensors_heard_from_recently() {
    let app = App::start().await;
    // Every river gauge reports now.
    let (_, list) = app
        .get(
            "/ngsi-ld/v1/entities?type=WaterObserved&limit=100",
            Some(ADMIN),
        )
        .await;
    let gauges: Vec<String> = list
        .as_array()
        .expect("gauges")
        .iter()
        .filter_map(|g| g["id"].as_str().map(String::from))
        .collect();
    assert!(gauges.len() > 1, "{list}");
    for id in &gauges {
        gauge_reading(&app, id, Utc::now()).await;
    }
    recompute(&app).await;
    let kpi = app.kpi("device-uptime").await;
    assert_eq!(
        input(&kpi, "WaterObserved reporting")["count"],
        json!(gauges.len())
    );
    let (up, all) = sensors(&kpi);
    // The data set's readings are dated to the hour: the other sensors report or
    // not depending on the minute; the value is what the counts say.
    assert_eq!(all, 67, "the demo's sensors");
    assert_eq!(
        kpi["kpiValue"].as_f64(),
        Some((up as f64 * 1000.0 / all as f64).round() / 10.0),
        "{kpi}"
    );
    check_counts(&app, &kpi).await;

    // One gauge's last reading is an hour old: one sensor fewer.
    gauge_reading(&app, &gauges[0], Utc::now() - TimeDelta::hours(1)).await;
    recompute(&app).await;
    let kpi = app.kpi("device-uptime").await;
    assert_eq!(
        input(&kpi, "WaterObserved reporting")["count"],
        json!(gauges.len() - 1)
    );
    assert_eq!(sensors(&kpi), (up - 1, all));
    check_counts(&app, &kpi).await;
    app.stop().await;
}
