//! The demo: the category list and about 2,000 reports in every stage.

use std::collections::BTreeSet;

use crate::common::{App, places};

#[test]
fn the_demo_covers_every_stage_and_most_communes() {
    let cats = reports::demo::categories();
    assert!(cats.len() >= 12);
    assert!(cats.iter().any(|c| c.attributes.iter().any(|a| a.required)));
    assert!(cats.iter().filter(|c| c.urgent).count() >= 3);
    let groups: BTreeSet<_> = cats.iter().map(|c| &c.group).collect();
    assert!(groups.len() >= 6);
    for mut c in cats {
        c.check().expect("a valid category");
    }
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let list = reports::demo::reports(&places(), &reports::calendar::Calendar::shipped(), now);
    assert_eq!(list.len(), reports::demo::REPORTS);
    let stages: BTreeSet<_> = list.iter().map(|r| r.stage).collect();
    assert_eq!(stages.len(), reports::model::STAGES.len(), "{stages:?}");
    let communes: BTreeSet<_> = list.iter().filter_map(|r| r.commune_code.clone()).collect();
    assert!(communes.len() >= 70, "{}", communes.len());
    assert!(list.iter().all(|r| r.demo
        && r.requested_datetime <= now
        && r.requested_datetime >= now - chrono::TimeDelta::days(366)));
    assert!(list.iter().any(|r| r.is_overdue(now)));
    assert!(list.iter().filter(|r| r.rating.is_some()).count() > 500);
    // Every report sits inside the commune it names.
    let p = places();
    for r in &list {
        let loc = r.location.expect("a demo report has a point");
        let c = p.locate(loc.lon(), loc.lat()).expect("inside the province");
        assert_eq!(
            c.map(|c| c.code.clone()),
            r.commune_code,
            "{}",
            r.service_request_id
        );
    }
}

#[tokio::test]
async fn the_demo_loads_and_is_served() {
    let app = App::start().await;
    let loaded = reports::demo::load(&app.reports).await.expect("the demo");
    assert_eq!(loaded.reports, reports::demo::REPORTS);
    let services = app
        .get(&app.anonymous, "/open311/v2/services.json")
        .await
        .json();
    assert_eq!(services.as_array().map(Vec::len), Some(loaded.categories));
    let stats = app
        .get(&app.admin, "/reports/v1/stats?by=month")
        .await
        .json();
    let total: u64 = stats
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["received"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, reports::demo::REPORTS as u64);
    // Loading again replaces: still 2,000.
    reports::demo::load(&app.reports)
        .await
        .expect("the demo again");
    assert_eq!(
        app.reports.all().await.expect("all").len(),
        reports::demo::REPORTS
    );
}

#[tokio::test]
async fn the_simulator_files_new_reports_until_stopped() {
    let app = App::start().await;
    app.categories().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let every = (
        std::time::Duration::from_millis(5),
        std::time::Duration::from_millis(20),
    );
    let task = reports::demo::spawn_new_reports(app.reports.clone(), every, stopped);
    let new = || async {
        app.reports
            .all()
            .await
            .expect("all")
            .into_iter()
            .filter(|r| r.service_request_id.starts_with("DEMO-"))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while new().await.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "three new reports within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).expect("the simulator listens");
    task.await.expect("the simulator stops");
    let made = new().await;
    // Each is received now, marked demo, routed, and inside the commune it names.
    let p = places();
    for r in &made {
        assert_eq!(
            r.stage,
            reports::Stage::Received,
            "{}",
            r.service_request_id
        );
        assert!(r.demo && r.expected_datetime > r.requested_datetime);
        assert!(!r.agency_responsible.is_empty());
        let loc = r.location.expect("a point");
        let c = p.locate(loc.lon(), loc.lat()).expect("inside the province");
        assert_eq!(c.map(|c| c.code.clone()), r.commune_code);
    }
    // Stopped means stopped.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(new().await.len(), made.len());
}
