//! Evaluation on a controlled clock: every condition kind, hysteresis,
//! for-duration, keep-firing, acknowledging and resolving by hand.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::common::*;

fn rule(id: &str, condition: Value, extra: Value) -> Value {
    let r = json!({
        "id": id,
        "scope": {"type": "WaterObserved"},
        "condition": condition,
        "severity": "high",
        "category": "naturalDisaster",
        "subCategory": "flood",
        "message": {"vi": "{place}: mực nước {value} m, báo động ({threshold} m)",
                    "en": "{place}: water level {value} m, alarm ({threshold} m)"}
    });
    with(r, extra)
}

/// The condition "waterLevel >= `level`".
fn level_at_least(level: f64) -> Value {
    json!({"kind": "threshold", "attribute": "waterLevel", "op": ">=", "value": level})
}

/// A rule `name` of the condition "waterLevel >= 3" and a new gauge at `level`, once
/// the rule's one alert for it fires: the gauge's id and the alerts.
async fn firing_gauge(
    app: &App,
    t0: DateTime<Utc>,
    name: &str,
    level: f64,
) -> (String, Vec<Value>) {
    app.create_rule(rule(name, level_at_least(3.0), json!({})))
        .await;
    let id = app.new_gauge(level, t0).await;
    let list = app.until_one_alert(name, "fires").await;
    (id, list)
}

#[tokio::test]
async fn a_comparison_with_hysteresis_fires_once_per_incident_and_clears() {
    let (t0, app) = App::start_now().await;
    app.create_rule(rule(
        "level-2",
        json!({"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel2"}),
        json!({"clear": {"hysteresis": 0.1}, "labels": {"river": "thach-han"}}),
    ))
    .await;
    let id = app.new_gauge(4.0, t0).await;
    app.settle().await;
    assert!(app.alerts_of("level-2").await.is_empty());
    // Readings at or above level II: one alert, with the first reading's value.
    app.upsert(gauge(&id, 4.5, t0)).await;
    let list = app.until_one_alert("level-2", "one alert fires").await;
    for level in [4.8, 5.1] {
        app.upsert(gauge(&id, level, t0)).await;
    }
    app.settle().await;
    let list2 = app.alerts_of("level-2").await;
    assert_eq!(
        list2.len(),
        1,
        "still one alert after more readings: {list2:?}"
    );
    let a = &list[0];
    assert_eq!(status(a), "firing");
    assert_eq!(a["type"], "Alert");
    assert_eq!(a["alertSource"], id.as_str());
    assert_eq!(a["severity"], "high");
    assert_eq!(a["category"], "naturalDisaster");
    assert_eq!(a["subCategory"], "flood");
    assert_eq!(a["rule"], "level-2");
    assert_eq!(a["value"], 4.5);
    assert_eq!(a["threshold"], 4.5);
    assert_eq!(a["labels"]["river"], "thach-han");
    assert_eq!(a["location"]["type"], "Point");
    assert!(
        a["dateIssued"].is_string() && a["validFrom"].is_string(),
        "{a}"
    );
    assert_eq!(
        a["description"]["vi"], "Trạm Thạch Hãn: mực nước 4.5 m, báo động (4.5 m)",
        "{a}"
    );
    // Within the hysteresis (4.45 ≥ 4.5 − 0.1) it keeps firing; below, it resolves.
    app.upsert(gauge(&id, 4.45, t0)).await;
    app.settle().await;
    assert_eq!(status(&app.alerts_of("level-2").await[0]), "firing");
    app.upsert(gauge(&id, 4.39, t0)).await;
    let list = app
        .until_alerts("level-2", "the alert resolves", |l| {
            l.len() == 1 && status(&l[0]) == "resolved"
        })
        .await;
    assert!(list[0]["validTo"].is_string());
    // A new rise, later, is a new incident, with a new alert.
    app.clock.advance(Duration::from_secs(60));
    app.upsert(gauge(&id, 4.6, t0 + TimeDelta::seconds(1)))
        .await;
    app.until_alerts("level-2", "a second incident", |l| l.len() == 2)
        .await;
    // Alerts are NGSI-LD entities: the hub's API serves them too.
    let (s, body) = app
        .send(
            app.admin
                .get(app.url("/ngsi-ld/v1/entities?type=Alert&q=rule==%22level-2%22")),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test]
async fn for_duration_and_keep_firing_follow_the_clock() {
    let (t0, app) = App::start_now().await;
    app.create_rule(rule(
        "held",
        json!({"kind": "threshold", "attribute": "waterLevel", "op": ">", "value": 3.0}),
        json!({"for": "10m", "keepFiringFor": "5m"}),
    ))
    .await;
    let id = app.new_gauge(3.5, t0).await;
    app.until_phase("held", &id, "pending").await;
    app.pass(Duration::from_secs(9 * 60)).await;
    assert!(
        app.alerts_of("held").await.is_empty(),
        "not yet: 9 of 10 minutes"
    );
    app.clock.advance(Duration::from_secs(60));
    let list = app.until_one_alert("held", "fires after 10 minutes").await;
    // The incident began with the first reading; the alert was issued 10 minutes on.
    let from =
        ngsi::entity::parse_time(list[0]["validFrom"].as_str().expect("validFrom")).expect("time");
    let issued = ngsi::entity::parse_time(list[0]["dateIssued"].as_str().expect("dateIssued"))
        .expect("time");
    assert_eq!((issued - from).num_seconds(), 600);
    // Cleared: it keeps firing for 5 minutes.
    app.upsert(gauge(&id, 2.0, t0)).await;
    app.until_incident("held", &id, "clearing", |i| i["clearing"].is_string())
        .await;
    app.pass(Duration::from_secs(4 * 60)).await;
    assert_eq!(status(&app.alerts_of("held").await[0]), "firing");
    app.clock.advance(Duration::from_secs(60));
    app.until_resolved("held", "resolves after keep-firing")
        .await;
    app.until_phase("held", &id, "idle").await;
    // A blip shorter than the for-duration raises nothing.
    app.upsert(gauge(&id, 3.5, t0)).await;
    app.until_phase("held", &id, "pending").await;
    app.clock.advance(Duration::from_secs(60));
    app.upsert(gauge(&id, 2.5, t0)).await;
    app.until_phase("held", &id, "idle").await;
    assert_eq!(app.alerts_an_hour_later("held").await, 1);
}

#[tokio::test]
async fn staleness_fires_when_a_sensor_goes_silent_and_clears_when_it_speaks() {
    let (t0, app) = App::start_now().await;
    let id = app.new_gauge(1.0, t0).await;
    app.create_rule(rule(
        "silent",
        json!({"kind": "stale", "after": "15m", "attribute": "waterLevel"}),
        json!({"severity": "medium", "message": {"en": "{place}: no data since {value}"}}),
    ))
    .await;
    app.pass(Duration::from_secs(10 * 60)).await;
    assert!(app.alerts_of("silent").await.is_empty());
    app.clock.advance(Duration::from_secs(6 * 60));
    let list = app.until_one_alert("silent", "silent for 16 minutes").await;
    assert!(
        text(&list[0]["description"]["en"]).starts_with("Thạch Hãn gauge: no data since "),
        "{}",
        list[0]
    );
    app.upsert(gauge(&id, 1.0, t0 + TimeDelta::minutes(16)))
        .await;
    app.until_resolved("silent", "speaks again").await;
}

#[tokio::test]
async fn a_rate_of_change_reads_the_window_from_history() {
    let (t0, app) = App::start_now().await;
    app.create_rule(rule(
        "rising",
        json!({"kind": "rate", "attribute": "waterLevel", "op": ">", "value": 0.5, "window": "1h"}),
        json!({}),
    ))
    .await;
    let id = unique_id("WaterObserved");
    app.upsert(gauge(&id, 2.0, t0 - TimeDelta::minutes(90)))
        .await;
    app.upsert(gauge(&id, 2.2, t0 - TimeDelta::minutes(40)))
        .await;
    app.upsert(gauge(&id, 2.6, t0 - TimeDelta::minutes(10)))
        .await;
    app.settle().await;
    // 2.6 − 2.2 (the oldest within the hour) = 0.4: not yet.
    assert!(app.alerts_of("rising").await.is_empty());
    app.upsert(gauge(&id, 2.8, t0)).await;
    let list = app.until_one_alert("rising", "rose 0.6 m in an hour").await;
    assert_eq!(list[0]["value"], 2.8);
}

#[tokio::test]
async fn q_conditions_and_areas_select_what_fires() {
    let (t0, app) = App::start_now().await;
    // A square around the first gauge only.
    app.create_rule(rule(
        "in-area",
        json!({"kind": "q", "q": "waterLevel>3"}),
        json!({"scope": {"type": "WaterObserved", "area": {"polygon": [[[107.1, 16.7], [107.3, 16.7], [107.3, 16.8], [107.1, 16.8], [107.1, 16.7]]]}}}),
    ))
    .await;
    let inside = unique_id("WaterObserved");
    let outside = unique_id("WaterObserved");
    let mut far = gauge(&outside, 5.0, t0);
    far["location"]["value"]["coordinates"] = json!([106.5, 17.5]);
    app.upsert(far).await;
    app.upsert(gauge(&inside, 5.0, t0)).await;
    let list = app
        .until_alerts("in-area", "the gauge inside fires", |l| !l.is_empty())
        .await;
    app.settle().await;
    let list2 = app.alerts_of("in-area").await;
    assert_eq!(list2.len(), 1, "{list2:?}");
    assert_eq!(list[0]["alertSource"], inside.as_str());
    // A commune: the entities that name it.
    let commune = unique_id("AdministrativeArea");
    app.upsert(json!({"id": commune, "type": "AdministrativeArea",
        "name": {"type": "Property", "value": "Phường Quảng Trị"}}))
        .await;
    app.create_rule(rule(
        "in-commune",
        json!({"kind": "threshold", "attribute": "waterLevel", "op": ">", "value": 3.0}),
        json!({"scope": {"type": "WaterObserved", "area": {"commune": commune}}}),
    ))
    .await;
    let named = unique_id("WaterObserved");
    let mut g = gauge(&named, 5.0, t0);
    g["refAdministrativeArea"] = json!({"type": "Relationship", "object": commune});
    app.upsert(g).await;
    app.until_alerts("in-commune", "the gauge of the commune fires", |l| {
        !l.is_empty()
    })
    .await;
    app.settle().await;
    let list = app.alerts_of("in-commune").await;
    assert_eq!(list.len(), 1, "only the gauge naming the commune: {list:?}");
    assert_eq!(list[0]["alertSource"], named.as_str());
}

#[tokio::test]
async fn acknowledge_assign_and_resolve_by_hand_are_audited_and_a_resolved_incident_latches() {
    let (t0, app) = App::start_now().await;
    let (id, list) = firing_gauge(&app, t0, "hand", 3.2).await;
    let alert = list[0]["id"].as_str().expect("id").to_string();
    let operator = client(OPERATOR_KEY);
    let viewer = client(VIEWER_KEY);
    let act = |who: &reqwest::Client, what: &str| {
        who.post(app.url(&format!("/alerts/v1/alerts/{alert}/{what}")))
    };
    // The operator acts on the alert with a JSON body.
    let operate = |what: &str, body: Value| app.send(act(&operator, what).json(&body));
    let (s, _) = app.send(act(&viewer, "acknowledge").json(&json!({}))).await;
    assert_eq!(s, 403, "viewers do not acknowledge");
    let (s, body) = operate("acknowledge", json!({"comment": "đang xử lý"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert!(text(&body["acknowledgedBy"]).starts_with("key:"), "{body}");
    assert_eq!(body["comment"], "đang xử lý");
    let (s, body) = app.send(act(&operator, "acknowledge")).await;
    assert_eq!(s, 422, "acknowledged twice: {body}");
    let (s, body) = operate("assign", json!({"assignee": "ca trực 2"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["assignedTo"], "ca trực 2");
    let (s, body) = operate("assign", json!({})).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = operate("resolve", json!({"comment": "đã kiểm tra"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    // The audit log names the operator on the alert.
    let (s, audit) = app
        .send(
            app.admin
                .get(app.url("/auth/v1/audit?action=POST%20/alerts/v1/alerts")),
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("key:") && text.contains(&alert), "{text}");
    assert!(
        text.contains("/resolve") && text.contains("/acknowledge"),
        "{text}"
    );
    // Still above: resolved by hand, it does not fire again until it has cleared.
    app.until_phase("hand", &id, "latched").await;
    app.upsert(gauge(&id, 3.4, t0)).await;
    app.settle().await;
    assert_eq!(app.alerts_of("hand").await.len(), 1);
    app.upsert(gauge(&id, 2.0, t0)).await;
    app.until_phase("hand", &id, "idle").await;
    app.clock.advance(Duration::from_secs(60));
    app.upsert(gauge(&id, 3.3, t0)).await;
    app.until_alerts("hand", "a new incident", |l| l.len() == 2)
        .await;
    // Unknown alerts are 404, bad bodies 400.
    let (s, _) = app
        .send(operator.post(app.url("/alerts/v1/alerts/urn:ngsi-ld:Alert:none/resolve")))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.send(act(&operator, "resolve").json(&json!([1]))).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn deleting_a_rule_resolves_its_alerts() {
    let (t0, app) = App::start_now().await;
    let (id, _) = firing_gauge(&app, t0, "gone", 3.2).await;
    let (s, _) = app
        .send(app.admin.delete(app.url("/alerts/v1/rules/gone")))
        .await;
    assert_eq!(s, 204);
    app.until_resolved("gone", "resolved with its rule").await;
    app.until_phase("gone", &id, "idle").await;
}

#[tokio::test]
async fn the_live_stream_sends_open_alerts_then_each_change() {
    let (t0, app) = App::start_now().await;
    let (id, _) = firing_gauge(&app, t0, "live", 3.5).await;
    let mut r = client(VIEWER_KEY)
        .get(app.url("/alerts/v1/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let mut read_until = async |text: &mut String, what: &str| {
        let start = std::time::Instant::now();
        while !text.contains(what) {
            assert!(start.elapsed() < WAIT, "no {what} in {text}");
            let chunk = tokio::time::timeout(WAIT, r.chunk())
                .await
                .expect("in time");
            text.push_str(&String::from_utf8_lossy(
                &chunk.expect("chunk").expect("data"),
            ));
        }
    };
    read_until(&mut text, "event: snapshot").await;
    read_until(&mut text, "\"status\":\"firing\"").await;
    // The gauge falls: the stream tells of the resolved alert.
    app.upsert(gauge(&id, 1.0, t0)).await;
    read_until(&mut text, "event: alert").await;
    read_until(&mut text, "\"status\":\"resolved\"").await;
    // Another tenant's stream is its own: nothing of this one in its first event.
    let mut other = app
        .admin
        .get(app.url("/alerts/v1/stream"))
        .header("NGSILD-Tenant", "elsewhere")
        .send()
        .await
        .expect("stream");
    let first = tokio::time::timeout(WAIT, other.chunk())
        .await
        .expect("in time");
    let first = String::from_utf8_lossy(&first.expect("chunk").expect("data")).to_string();
    assert!(
        first.contains("event: snapshot") && first.contains("\"alerts\":[]"),
        "{first}"
    );
}

#[tokio::test]
async fn a_whole_entity_is_stale_from_its_latest_update_as_the_feed_told_the_sweep() {
    let (t0, app) = App::start_now().await;
    let id = app.new_gauge(1.0, t0).await;
    app.create_rule(rule(
        "silent-gauge",
        json!({"kind": "stale", "after": "15m"}),
        json!({"severity": "medium"}),
    ))
    .await;
    // A reading 10 minutes on: the sweep counts from it, not from the first one.
    app.clock.advance(Duration::from_secs(10 * 60));
    app.upsert(gauge(&id, 1.1, t0 + TimeDelta::minutes(10)))
        .await;
    app.settle().await;
    app.pass(Duration::from_secs(6 * 60)).await;
    assert!(
        app.alerts_of("silent-gauge").await.is_empty(),
        "16 minutes after the first reading, 6 after the last"
    );
    app.clock.advance(Duration::from_secs(10 * 60));
    app.until_alerts("silent-gauge", "silent 16 minutes after the last", |l| {
        l.len() == 1
    })
    .await;
}

#[tokio::test]
async fn a_burst_longer_than_the_change_feed_is_evaluated_without_a_full_pass() {
    const GAUGES: usize = 300;
    let (t0, app) = App::start_now().await;
    app.create_rule(rule("burst", level_at_least(5.0), json!({})))
        .await;
    let ids: Vec<String> = (0..GAUGES).map(|_| unique_id("WaterObserved")).collect();
    let round = |level: f64| -> Value { ids.iter().map(|id| gauge(id, level, t0)).collect() };
    // More changes than the feed holds, written as fast as the hub takes them, all
    // under the threshold, then one round over it.
    let rounds = hub::changes::FEED_CAPACITY / GAUGES + 2;
    for r in 0..rounds {
        let (s, body) = app.post_json(UPSERT, &round(1.0 + r as f64 / 100.0)).await;
        assert!(s == 201 || s == 204, "upsert: {s} {body}");
    }
    let (s, body) = app.post_json(UPSERT, &round(5.5)).await;
    assert_eq!(s, 204, "{body}");
    app.until_alerts("burst", "every gauge's alert", |l| l.len() >= GAUGES)
        .await;
    app.settle().await;
    let list = app.alerts_of("burst").await;
    assert_eq!(list.len(), GAUGES, "one alert per gauge, none doubled");
    let sources: std::collections::BTreeSet<&str> = list
        .iter()
        .filter_map(|a| a["alertSource"].as_str())
        .collect();
    assert_eq!(sources.len(), GAUGES);
    assert!(
        list.iter()
            .all(|a| a["value"] == 5.5 && status(a) == "firing")
    );
    assert_eq!(
        app.alerts.gaps(),
        0,
        "no change was lost, so no rule was evaluated again over its scope"
    );
}

#[tokio::test]
async fn two_writes_of_one_gauge_evaluated_together_are_judged_on_the_later() {
    let (t0, app) = App::start_now().await;
    app.create_rule(rule("later", level_at_least(5.0), json!({})))
        .await;
    let id = app.new_gauge(1.0, t0).await;
    app.settle().await;
    // One request, two writes of the gauge: their changes are published together,
    // so the evaluator finds them merged in one entry of its backlog. The first
    // crosses, the second falls back; only the second is the gauge now.
    let app = &app;
    let upsert = |batch: Value| async move {
        let (s, body) = app.post_json(UPSERT, &batch).await;
        assert_eq!(s, 204, "{body}");
    };
    upsert(json!([gauge(&id, 5.5, t0), gauge(&id, 1.5, t0)])).await;
    app.settle().await;
    assert!(
        app.alerts_of("later").await.is_empty(),
        "evaluated on the earlier state"
    );
    // The other way round, it fires, with the later write's value.
    upsert(json!([gauge(&id, 1.5, t0), gauge(&id, 5.7, t0)])).await;
    let list = app.until_one_alert("later", "the later write fires").await;
    assert_eq!(list[0]["value"], 5.7);
    assert_eq!(app.alerts.gaps(), 0);
}

#[tokio::test]
async fn changes_lost_by_a_lagging_feed_are_read_and_still_raise_the_alert() {
    let (t0, app) = App::start_now().await;
    let watched = unique_id("WaterObserved");
    app.create_rule(rule(
        "lagged",
        level_at_least(5.0),
        json!({"scope": {"type": "WaterObserved", "ids": [watched]}}),
    ))
    .await;
    app.upsert(gauge(&watched, 1.0, t0)).await;
    app.settle().await;
    // One write of more entities than the feed holds, the watched gauge's crossing
    // first: its change is published with the others at once, before the evaluator's
    // drain can take any, and the oldest are lost.
    let ctx = ngsi::Context::core();
    let reader = ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let others = (0..hub::changes::FEED_CAPACITY + 100).map(|_| unique_id("WaterObserved"));
    let batch = std::iter::once((watched.clone(), 5.5))
        .chain(others.map(|id| (id, 1.0)))
        .map(|(id, level)| {
            reader
                .entity(&gauge(&id, level, t0), None)
                .map_err(|e| (id, e))
        })
        .collect();
    let scope = hub::Scope::system("test", "");
    for (id, r) in app
        .alerts
        .hub()
        .batch_upsert(&scope, batch, false)
        .await
        .expect("the batch")
    {
        assert!(r.is_ok(), "{id}: {r:?}");
    }
    let list = app
        .until_one_alert("lagged", "the crossing, read again")
        .await;
    assert_eq!(list[0]["value"], 5.5);
    assert!(app.alerts.gaps() >= 1, "the feed lagged, yet no full pass");
}
