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
    let services = app.public_json("/open311/v2/services.json").await;
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
    let app = App::with_categories().await;
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

/// The newest report, as the list read from the facts has it.
async fn newest_from_facts(app: &App) -> reports::service::ReportPage {
    let newest = reports::service::ReportFilter {
        limit: 1,
        ..Default::default()
    };
    app.reports
        .page_from_facts(&newest, None)
        .await
        .expect("a page")
        .expect("the facts are known")
}

/// Lists are chosen from the reports' facts in memory once those are known; over the
/// demo's 2,000 reports in every stage, every filter the lists offer (alone, together,
/// page by page) chooses the same reports, in the same order, as the store does, and
/// a report written just before is in the next list.
#[tokio::test]
async fn lists_from_the_facts_agree_with_the_store() {
    use reports::open311::Request;
    use reports::service::{PageMark, ReportFilter};
    let app = App::start().await;
    reports::demo::load(&app.reports).await.expect("the demo");
    // The statistics read the facts: from here on they are known.
    app.reports
        .stats(reports::stats::By::All, None, None)
        .await
        .expect("statistics");
    let all = app.reports.all().await.expect("all");
    let first = &all[0];
    let loc = first.location.expect("a demo report has a point");
    let now = app.reports.now();
    let ids = |p: &reports::service::ReportPage| {
        p.reports
            .iter()
            .map(|r| r.service_request_id.clone())
            .collect::<Vec<_>>()
    };
    let around = |d: f64| Some([loc.lon() - d, loc.lat() - d, loc.lon() + d, loc.lat() + d]);
    let filters = [
        ReportFilter::default(),
        ReportFilter {
            bbox: around(0.02),
            ..Default::default()
        },
        ReportFilter {
            bbox: around(0.3),
            status: Some("open".into()),
            ..Default::default()
        },
        ReportFilter {
            status: Some("closed".into()),
            start: Some(now - chrono::TimeDelta::days(90)),
            ..Default::default()
        },
        ReportFilter {
            service_codes: vec![first.service_code.clone()],
            end: Some(now - chrono::TimeDelta::days(30)),
            ..Default::default()
        },
        ReportFilter {
            agency: Some(first.agency_responsible.clone()),
            overdue: Some(true),
            ..Default::default()
        },
        ReportFilter {
            commune: first.commune_code.clone(),
            ..Default::default()
        },
        ReportFilter {
            stages: vec![reports::Stage::Received, reports::Stage::Assigned],
            urgent: Some(false),
            ..Default::default()
        },
        ReportFilter {
            urgent: Some(true),
            overdue: Some(false),
            ..Default::default()
        },
    ];
    for filter in filters {
        for limit in [0, 7, 250] {
            let f = ReportFilter {
                limit,
                ..filter.clone()
            };
            // Page by page to the end (or the whole list with no limit).
            let mut after: Option<PageMark> = None;
            let mut pages = 0;
            loop {
                let from_facts = app
                    .reports
                    .page_from_facts(&f, after.as_ref())
                    .await
                    .expect("a page")
                    .expect("the facts are known");
                let from_store = app
                    .reports
                    .page_from_store(&f, after.as_ref())
                    .await
                    .expect("a page");
                assert_eq!(ids(&from_facts), ids(&from_store), "{f:?} after {after:?}");
                assert_eq!(from_facts.total, from_store.total, "{f:?}");
                assert_eq!(from_facts.next, from_store.next, "{f:?}");
                if after.is_none() {
                    // Open311's list, from the facts alone, shows the store's reports.
                    let listed = app.reports.open311_requests(&f).await.expect("a list");
                    let listed: Vec<Request> = listed.iter().map(|r| (**r).clone()).collect();
                    let read: Vec<Request> = from_store.reports.iter().map(Request::of).collect();
                    assert_eq!(listed, read, "{f:?}");
                }
                pages += 1;
                match from_facts.next {
                    Some(next) if pages < 4 => after = Some(next),
                    _ => break,
                }
            }
        }
    }
    // A report just written is in the next list.
    let made = app
        .staff_report("duong-hu-hong", "Ổ gà trước cổng chợ")
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.first_id();
    let newest = newest_from_facts(&app).await;
    assert_eq!(ids(&newest), vec![id.clone()]);
    // Listed (and so kept as read), then rejected: the next lists see it rejected.
    let received = ReportFilter {
        stages: vec![reports::Stage::Received],
        limit: 1,
        ..Default::default()
    };
    let listed = app.reports.page(&received, None).await.expect("a page");
    assert_eq!(ids(&listed), vec![id.clone()]);
    app.reports
        .act(
            &hub::Scope::system("test", ""),
            &id,
            &reports::workflow::Action::Reject {
                reason: "Trùng lặp".into(),
            },
        )
        .await
        .expect("rejected");
    let rejected = newest_from_facts(&app).await;
    assert_eq!(ids(&rejected), vec![id.clone()]);
    assert_eq!(rejected.reports[0].stage, reports::Stage::Rejected);
    let newest_open311 = app
        .reports
        .open311_requests(&ReportFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("a list");
    assert_eq!(*newest_open311[0], Request::of(&rejected.reports[0]));
    let still = app.reports.page(&received, None).await.expect("a page");
    assert!(!ids(&still).contains(&id), "{:?}", ids(&still));
}
