//! Deadline conditions on a controlled clock: a citizen report past its due date
//! fires once, found by the timer's sweep; the alert clears when the date moves on
//! or the report leaves the rule's scope. And the demo's presets on reports.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::common::*;

const OPEN: &str = r#"workflowStatus=="received","accepted","assigned","in_progress""#;

/// A citizen report as the reports service writes it (the attributes that matter).
fn report(id: &str, stage: &str, accept_by: DateTime<Utc>, answer_by: DateTime<Utc>) -> Value {
    let open = if matches!(stage, "resolved" | "closed" | "rejected" | "merged") {
        "closed"
    } else {
        "open"
    };
    json!({
        "id": id,
        "type": "Open311_ServiceRequest",
        "service_name": {"type": "Property", "value": "Đèn đường hỏng"},
        "status": {"type": "Property", "value": open},
        "workflowStatus": {"type": "Property", "value": stage},
        "dueAcceptAt": {"type": "Property", "value": ngsi::entity::format_time(&accept_by)},
        "expected_datetime": {"type": "Property", "value": ngsi::entity::format_time(&answer_by)},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}}
    })
}

#[tokio::test]
async fn a_deadline_fires_once_past_due_and_clears_when_moved_or_out_of_scope() {
    let (t0, app) = App::start_now().await;
    app.create_rule(json!({
        "id": "overdue",
        "scope": {"type": "Open311_ServiceRequest", "q": OPEN},
        "condition": {"kind": "deadline", "attribute": "expected_datetime", "grace": "10m"},
        "severity": "medium",
        "message": {"en": "{entity} overdue: due {value}"}
    }))
    .await;
    let id = unique_id("Open311_ServiceRequest");
    let due = t0 + TimeDelta::hours(1);
    app.upsert(report(&id, "accepted", t0, due)).await;
    // Past the date but within the grace: nothing.
    app.pass(Duration::from_secs(65 * 60)).await;
    assert!(app.alerts_of("overdue").await.is_empty());
    // Past the grace: the timer finds it, with no change of the report.
    app.clock.advance(Duration::from_secs(6 * 60));
    let list = app
        .until_one_alert("overdue", "overdue past the grace")
        .await;
    assert_eq!(status(&list[0]), "firing");
    assert_eq!(list[0]["alertSource"], id.as_str());
    assert_eq!(list[0]["value"], ngsi::entity::format_time(&due).as_str());
    assert_eq!(
        list[0]["description"]["en"],
        format!("{id} overdue: due {}", ngsi::entity::format_time(&due)).as_str()
    );
    // Later sweeps raise nothing more.
    for _ in 0..3 {
        app.pass(Duration::from_secs(60)).await;
    }
    assert_eq!(app.alerts_of("overdue").await.len(), 1);
    // An extension moves the date to the future: it clears.
    let extended = t0 + TimeDelta::hours(3);
    app.upsert(report(&id, "in_progress", t0, extended)).await;
    app.until_resolved("overdue", "extended").await;
    // Past the new date: a new incident.
    app.clock.set(extended + TimeDelta::minutes(11));
    app.until_alerts("overdue", "overdue again", |l| {
        l.iter().filter(|a| status(a) == "firing").count() == 1 && l.len() == 2
    })
    .await;
    // Resolved by the agency: the report leaves the scope, and the alert clears.
    app.upsert(report(&id, "resolved", t0, extended)).await;
    app.until_alerts("overdue", "answered", |l| {
        l.len() == 2 && l.iter().all(|a| status(a) == "resolved")
    })
    .await;
    // Whatever time passes, a report out of scope raises nothing.
    assert_eq!(app.alerts_an_hour_later("overdue").await, 2);
}

#[tokio::test]
async fn a_deleted_report_leaves_the_sweep_and_its_alert_clears() {
    let (t0, app) = App::start_now().await;
    let id = unique_id("Open311_ServiceRequest");
    app.upsert(report(
        &id,
        "received",
        t0 + TimeDelta::minutes(5),
        t0 + TimeDelta::days(1),
    ))
    .await;
    app.create_rule(json!({
        "id": "accept-late",
        "scope": {"type": "Open311_ServiceRequest", "q": "workflowStatus==\"received\""},
        "condition": {"kind": "deadline", "attribute": "dueAcceptAt"},
        "severity": "low"
    }))
    .await;
    app.clock.advance(Duration::from_secs(6 * 60));
    app.until_one_alert("accept-late", "not accepted in time")
        .await;
    let (s, _) = app
        .send(
            app.admin
                .delete(app.url(&format!("/ngsi-ld/v1/entities/{id}"))),
        )
        .await;
    assert_eq!(s, 204);
    app.until_resolved("accept-late", "the report is gone")
        .await;
    assert_eq!(app.alerts_an_hour_later("accept-late").await, 1);
}

#[tokio::test]
async fn the_demo_presets_tell_of_reports_overdue_for_acceptance_then_for_an_answer() {
    let (t0, app) = App::start_now().await;
    let created = alerts::load_presets(&app.alerts, alerts::presets::demo(&[]))
        .await
        .expect("presets");
    assert!(created >= 2, "{created}");
    let id = unique_id("Open311_ServiceRequest");
    let (accept_by, answer_by) = (t0 + TimeDelta::hours(4), t0 + TimeDelta::days(3));
    app.upsert(report(&id, "received", accept_by, answer_by))
        .await;
    app.clock.set(accept_by + TimeDelta::minutes(1));
    let list = app
        .until_alerts("report-acceptance-overdue", "not accepted in time", |l| {
            l.len() == 1
        })
        .await;
    assert_eq!(list[0]["severity"], "low");
    assert!(
        text(&list[0]["description"]["vi"]).contains("quá hạn tiếp nhận"),
        "{}",
        list[0]
    );
    assert!(app.alerts_of("report-overdue").await.is_empty());
    // Accepted: the acceptance alert clears; the answer is not yet due.
    app.upsert(report(&id, "accepted", accept_by, answer_by))
        .await;
    app.until_resolved("report-acceptance-overdue", "accepted")
        .await;
    app.clock.set(answer_by + TimeDelta::seconds(31));
    app.until_one_alert("report-overdue", "not answered in time")
        .await;
    assert_eq!(app.alerts_of("report-acceptance-overdue").await.len(), 1);
}

#[tokio::test]
async fn a_deadline_on_something_that_is_not_a_date_time_is_refused() {
    let (t0, app) = App::start_now().await;
    let id = unique_id("Open311_ServiceRequest");
    app.upsert(report(&id, "accepted", t0, t0 + TimeDelta::days(1)))
        .await;
    for (attribute, says) in [
        ("workflowStatus", "holding \"accepted\""),
        ("location", "GeoProperty"),
    ] {
        let (s, body) = app
            .send(app.admin.post(app.url("/alerts/v1/rules")).json(&json!({
                "id": "wrong",
                "scope": {"type": "Open311_ServiceRequest"},
                "condition": {"kind": "deadline", "attribute": attribute},
                "severity": "low"
            })))
            .await;
        assert_eq!(s, 400, "{attribute}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("reads a date-time") && detail.contains(says),
            "{attribute}: {body}"
        );
    }
    // A bad grace says so too.
    let (s, body) = app
        .send(app.admin.post(app.url("/alerts/v1/rules")).json(&json!({
            "id": "wrong",
            "scope": {"type": "Open311_ServiceRequest"},
            "condition": {"kind": "deadline", "attribute": "expected_datetime", "grace": "soon"},
            "severity": "low"
        })))
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(text(&body["detail"]).contains("condition.grace"), "{body}");
}
