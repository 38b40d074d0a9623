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
