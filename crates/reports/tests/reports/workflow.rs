//! The workflow and its deadlines, with a clock the test moves across Tết 2026.

use serde_json::{Value, json};

use crate::common::{App, send};

async fn act(app: &App, id: &str, action: Value) -> crate::common::Answer {
    send(
        app.admin
            .post(app.url(&format!("/reports/v1/requests/{id}/actions")))
            .json(&action),
    )
    .await
}

/// `act`, which must succeed: the request as it is after.
async fn act_ok(app: &App, id: &str, action: Value) -> Value {
    let r = act(app, id, action).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The report `id` as staff see it.
async fn staff_view(app: &App, id: &str) -> Value {
    send(
        app.admin
            .get(app.url(&format!("/reports/v1/requests/{id}"))),
    )
    .await
    .json()
}

async fn submit(app: &App, code: &str) -> (String, String) {
    let r = app.staff_report(code, "Ổ gà lớn").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (
        v[0]["service_request_id"]
            .as_str()
            .expect("an id")
            .to_string(),
        v[0]["token"].as_str().expect("a token").to_string(),
    )
}

#[tokio::test]
async fn deadlines_count_working_days_across_tet() {
    let app = App::with_categories().await;
    // Friday 13 Feb 2026, 10:00 in Quảng Trị; Tết runs from Saturday 14 to Sunday 22.
    app.clock.set("2026-02-13T03:00:00Z");
    let (id, token) = submit(&app, "duong-hu-hong").await;
    let r = staff_view(&app, &id).await;
    assert_eq!(
        r["dueAcceptAt"], "2026-02-24T16:59:59Z",
        "2 working days: Mon 23, Tue 24"
    );
    assert_eq!(
        r["expected_datetime"], "2026-03-13T16:59:59Z",
        "15 working days"
    );
    assert_eq!(r["workflowStatus"], "received");
    assert_eq!(r["overdue"], false);

    // Still in time on Tuesday 24 (local), overdue on Wednesday 25.
    app.clock.set("2026-02-24T10:00:00Z");
    let inbox = send(app.admin.get(app.url("/reports/v1/requests?overdue=true")))
        .await
        .json();
    assert_eq!(inbox, json!([]));
    app.clock.set("2026-02-25T01:00:00Z");
    let inbox = send(app.admin.get(app.url("/reports/v1/requests?overdue=true")))
        .await
        .json();
    assert_eq!(inbox.as_array().map(Vec::len), Some(1), "{inbox}");
    // The statistics now (kept between reads: the ones at the end show that they
    // follow every change made since).
    let stats = send(app.admin.get(app.url("/reports/v1/stats?by=agency")))
        .await
        .json();
    assert_eq!(stats[0]["received"], 1, "{stats}");
    assert_eq!(stats[0]["handled"], 0, "{stats}");
    assert_eq!(stats[0]["overdue"], 1, "{stats}");

    // Through the workflow; each step kept with its actor.
    assert_eq!(
        act(&app, &id, json!({"action": "start"})).await.status,
        422,
        "not before it is accepted"
    );
    act_ok(&app, &id, json!({"action": "accept"})).await;
    act_ok(
        &app,
        &id,
        json!({"action": "assign", "officer": "Đội duy tu số 2"}),
    )
    .await;
    act_ok(&app, &id, json!({"action": "start"})).await;
    // Extending the deadline by three working days needs a reason.
    let extend = |reason: &str| json!({"action": "extend", "working_days": 3, "reason": reason});
    let no_reason = act(&app, &id, extend(" ")).await;
    assert_eq!(
        no_reason.status, 400,
        "an extension needs a reason: {}",
        no_reason.text
    );
    let r = act_ok(&app, &id, extend("Chờ nhựa đường")).await;
    assert_eq!(
        r["expected_datetime"], "2026-03-18T16:59:59Z",
        "Mon 16, Tue 17, Wed 18"
    );
    app.clock.set("2026-03-02T02:00:00Z");
    act_ok(
        &app,
        &id,
        json!({"action": "resolve", "result": "Đã vá ổ gà"}),
    )
    .await;

    // A bad rating reopens it; a good one closes it.
    let rate = |rating: u8| {
        let token = token.clone();
        let app = &app;
        async move {
            send(
                app.anonymous
                    .post(app.url(&format!("/reports/v1/track/{token}/rating")))
                    .json(&json!({"rating": rating, "comment": "Chưa ổn"})),
            )
            .await
        }
    };
    let r = rate(2).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["workflowStatus"], "in_progress");
    act_ok(
        &app,
        &id,
        json!({"action": "resolve", "result": "Đã vá lại"}),
    )
    .await;
    let r = rate(5).await.json();
    assert_eq!(r["workflowStatus"], "closed");
    assert_eq!(r["status"], "closed");

    let r = staff_view(&app, &id).await;
    let history = r["workflowHistory"].as_array().expect("a history");
    let steps: Vec<(&str, &str)> = history
        .iter()
        .map(|h| {
            (
                h["to"].as_str().unwrap_or(""),
                h["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        [
            "accepted",
            "assigned",
            "in_progress",
            "in_progress",
            "resolved",
            "in_progress",
            "resolved",
            "closed"
        ]
    );
    assert!(steps[0].1.starts_with("key:"), "staff are named: {steps:?}");
    assert_eq!(steps[5].1, "reporter");
    assert_eq!(r["firstResponseAt"], "2026-02-25T01:00:00Z");

    // The statistics of the agency: answered after its extended deadline? No: on time.
    let stats = send(app.admin.get(app.url("/reports/v1/stats?by=agency")))
        .await
        .json();
    assert_eq!(stats[0]["key"], "Sở Xây dựng");
    assert_eq!(stats[0]["received"], 1);
    assert_eq!(stats[0]["handled_pct"], 100.0);
    assert_eq!(stats[0]["on_time"], 1);
    assert_eq!(stats[0]["satisfaction_pct"], 100.0);
    assert_eq!(stats[0]["overdue"], 0);
}

#[tokio::test]
async fn reports_are_rejected_merged_and_close_by_themselves() {
    let app = App::with_categories().await;
    app.clock.set("2026-04-22T02:00:00Z");
    let (a, _) = submit(&app, "den-chieu-sang").await;
    let (b, _) = submit(&app, "den-chieu-sang").await;
    let (c, _) = submit(&app, "den-chieu-sang").await;
    assert_eq!(
        act(&app, &a, json!({"action": "reject", "reason": ""}))
            .await
            .status,
        400
    );
    let r = act_ok(
        &app,
        &a,
        json!({"action": "reject", "reason": "Thuộc tuyến quốc lộ, do Cục Đường bộ quản lý"}),
    )
    .await;
    assert_eq!(r["status"], "closed");
    let r = act_ok(&app, &b, json!({"action": "merge", "into": c})).await;
    assert_eq!(r["mergedInto"], c.as_str());
    let target = staff_view(&app, &c).await;
    assert_eq!(target["supporters"], 1);
    for action in ["accept", "start"] {
        act_ok(&app, &c, json!({"action": action})).await;
    }
    act_ok(
        &app,
        &c,
        json!({"action": "resolve", "result": "Đã thay bóng"}),
    )
    .await;
    // Unrated for 7 days: closed by the sweep, by the service.
    app.clock.set("2026-04-28T02:00:00Z");
    assert_eq!(app.reports.sweep().await.expect("sweep").0, 0);
    app.clock.set("2026-04-29T03:00:00Z");
    assert_eq!(app.reports.sweep().await.expect("sweep").0, 1);
    let r = app.report(&c).await;
    assert_eq!(r.stage, reports::Stage::Closed);
    assert_eq!(
        r.history.last().map(|h| h.actor.as_str()),
        Some("system:reports")
    );
    // Bulk actions answer per report.
    let bulk = send(
        app.admin
            .post(app.url("/reports/v1/actions"))
            .json(&json!({"ids": [a, "KHONGCO"], "action": {"action": "accept"}})),
    )
    .await
    .json();
    assert_eq!(bulk[0]["ok"], false);
    assert_eq!(bulk[1]["ok"], false);
    // Statistics per category: three received, all handled, one a rejection.
    let stats = send(app.admin.get(app.url("/reports/v1/stats?by=category")))
        .await
        .json();
    assert_eq!(stats[0]["received"], 3);
    assert_eq!(stats[0]["handled"], 3);
    // Holidays are data an admin edits: a new holiday moves the next deadlines.
    let put = send(
        app.admin
            .put(app.url("/reports/v1/holidays/2026"))
            .json(&json!([{"date": "2026-05-04", "name": "Nghỉ bù thử"}])),
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let bad = send(
        app.admin
            .put(app.url("/reports/v1/holidays/2026"))
            .json(&json!([{"date": "2027-05-04", "name": "x"}])),
    )
    .await;
    assert_eq!(bad.status, 400);
    app.clock.set("2026-05-01T02:00:00Z"); // Friday
    let (d, _) = submit(&app, "den-chieu-sang").await;
    let r = staff_view(&app, &d).await;
    // Mon 4 is now off (the shipped 30/4 and 1/5 are replaced by this year's list).
    assert_eq!(r["dueAcceptAt"], "2026-05-06T16:59:59Z", "{r}");
}

/// One page of the inbox: ids, the total, and the next page's path.
async fn inbox_page(app: &App, path: &str) -> (Vec<String>, usize, Option<String>) {
    let r = app
        .admin
        .get(app.url(path))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 200, "{path}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("a text header").to_string())
    };
    let total = header("x-total-count")
        .expect("a total")
        .parse()
        .expect("a number");
    let next = header("link").map(|l| {
        let path = l
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("a next link: {l}"))
            .0;
        path.to_string()
    });
    let body: Value = r.json().await.expect("JSON");
    let ids = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["service_request_id"].as_str().expect("an id").to_string())
        .collect();
    (ids, total, next)
}

#[tokio::test]
async fn the_inbox_pages_newest_first_without_skipping_or_repeating() {
    let app = App::with_categories().await;
    // Five reports, three of them in the same instant (the clock stands still), so
    // that the order among them rests on their ids.
    let mut made = Vec::new();
    for (at, code) in [
        ("2026-03-02T01:00:00Z", "duong-hu-hong"),
        ("2026-03-02T02:00:00Z", "duong-hu-hong"),
        ("2026-03-02T02:00:00Z", "cay-do-chan-duong"),
        ("2026-03-02T02:00:00Z", "duong-hu-hong"),
        ("2026-03-02T03:00:00Z", "duong-hu-hong"),
    ] {
        app.clock.set(at);
        made.push((at, submit(&app, code).await.0));
    }
    made.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let newest_first: Vec<String> = made.into_iter().map(|(_, id)| id).collect();

    let (all, total, next) = inbox_page(&app, "/reports/v1/requests").await;
    assert_eq!((all.clone(), total, next), (newest_first.clone(), 5, None));

    // Pages of two; a report made between two reads is newer than the marks, so it
    // shows on no later page and nothing is skipped or repeated.
    let (first, total, next) = inbox_page(&app, "/reports/v1/requests?limit=2").await;
    assert_eq!((first.as_slice(), total), (&newest_first[..2], 5));
    app.clock.set("2026-03-02T04:00:00Z");
    let newer = submit(&app, "duong-hu-hong").await.0;
    let next = next.expect("a second page");
    assert!(next.contains("limit=2"), "the query is kept: {next}");
    let (second, total, next) = inbox_page(&app, &next).await;
    assert_eq!((second.as_slice(), total), (&newest_first[2..4], 6));
    let (third, _, next) = inbox_page(&app, &next.expect("a third page")).await;
    assert_eq!((third.as_slice(), next), (&newest_first[4..], None));
    let (first, _, _) = inbox_page(&app, "/reports/v1/requests?limit=2").await;
    assert_eq!(first, [newer.clone(), newest_first[0].clone()]);

    // Filters apply before paging, and the total counts what they keep.
    let (urgent, total, _) = inbox_page(&app, "/reports/v1/requests?urgent=true").await;
    let (calm, calm_total, _) = inbox_page(&app, "/reports/v1/requests?urgent=false").await;
    assert_eq!(total + calm_total, 6);
    assert_eq!(urgent.len() + calm.len(), 6);
    assert_eq!(total, 1, "the fallen tree is urgent");

    for bad in [
        "after=yesterday",
        "after=2026-03-02T02:00:00Z~%3Cb%3E",
        "urgent=maybe",
    ] {
        let r = send(
            app.admin
                .get(app.url(&format!("/reports/v1/requests?{bad}"))),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}
