//! Backtests over stored history.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::common::*;

async fn backtest(app: &App, body: &Value) -> (u16, Value) {
    app.send(app.admin.post(app.url("/alerts/v1/backtest")).json(body))
        .await
}

fn level_2(extra: Value) -> Value {
    let r = json!({
        "id": "level-2",
        "scope": {"type": "WaterObserved"},
        "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel2"},
        "clear": {"hysteresis": 0.1},
        "severity": "high"
    });
    with(r, extra)
}

#[tokio::test]
async fn a_backtest_shows_what_a_rule_would_have_raised_and_raises_nothing() {
    let (t0, app) = App::start_now().await;
    let id = unique_id("WaterObserved");
    // Hourly readings over the last ten hours.
    let levels = [2.0, 3.1, 4.6, 4.7, 4.45, 4.3, 6.1, 5.0, 2.0, 1.5];
    for (i, level) in levels.iter().enumerate() {
        let at = t0 - TimeDelta::hours(10 - i as i64);
        app.upsert(gauge(&id, *level, at)).await;
    }
    let h = |n: i64| ngsi::entity::format_time(&(t0 - TimeDelta::hours(n)));
    let body =
        json!({"rule": level_2(json!({})), "from": h(12), "to": ngsi::entity::format_time(&t0)});
    let (s, report) = backtest(&app, &body).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["count"], 2, "{report}");
    let a = &report["alerts"];
    // 4.6 fires at −8 h; 4.45 is within the hysteresis; 4.3 clears at −5 h.
    assert_eq!(a[0]["firedAt"], h(8));
    assert_eq!(a[0]["resolvedAt"], h(5));
    assert_eq!(a[0]["value"], 4.6);
    assert_eq!(a[0]["threshold"], 4.5);
    assert_eq!(a[1]["firedAt"], h(4));
    assert_eq!(a[1]["resolvedAt"], h(2));
    assert_eq!(a[1]["entity"], id.as_str());
    // Held for 2 h 30 min: a value holds until the next reading, so the first rise
    // (−8 h to −6 h) is too short, the second (−4 h to −2 h) too; 90 minutes, both.
    let min = |n: i64| ngsi::entity::format_time(&(t0 - TimeDelta::minutes(n)));
    let body = json!({"rule": level_2(json!({"for": "150m"})), "from": h(12)});
    let (s, report) = backtest(&app, &body).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["count"], 0, "{report}");
    let body = json!({"rule": level_2(json!({"for": "90m"})), "from": h(12)});
    let (s, report) = backtest(&app, &body).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["count"], 2, "{report}");
    let a = &report["alerts"];
    assert_eq!(a[0]["since"], h(8));
    assert_eq!(a[0]["firedAt"], min(8 * 60 - 90));
    assert_eq!(a[0]["value"], 4.7, "the value when it fell due");
    assert_eq!(a[0]["resolvedAt"], h(5));
    assert_eq!(a[1]["firedAt"], min(4 * 60 - 90));
    assert_eq!(a[1]["resolvedAt"], h(2));
    // Silent stretches: readings an hour apart are stale after 30 minutes each time.
    let stale = json!({"id": "silent", "scope": {"type": "WaterObserved"},
        "condition": {"kind": "stale", "after": "30m", "attribute": "waterLevel"}, "severity": "low"});
    let (s, report) = backtest(&app, &json!({"rule": stale, "from": h(12), "to": h(7)})).await;
    assert_eq!(s, 200, "{report}");
    // Gaps after −10, −9, −8 h within the period, and the stretch after the −7 h reading
    // is cut by the period's end exactly at −7 h (not stale yet).
    assert_eq!(report["count"], 3, "{report}");
    // Nothing was raised for real.
    assert!(app.alerts_of("level-2").await.is_empty());
    // What cannot be backtested says why.
    let q = json!({"id": "q", "scope": {"type": "WaterObserved"}, "condition": {"kind": "q", "q": "waterLevel>3"}, "severity": "low"});
    let (s, body) = backtest(&app, &json!({"rule": q})).await;
    assert_eq!(s, 422, "{body}");
    for (bad, says) in [
        (
            json!({"rule": level_2(json!({})), "from": h(1), "to": h(2)}),
            "before",
        ),
        (
            json!({"rule": level_2(json!({})), "from": "yesterday"}),
            "ISO 8601",
        ),
        (
            json!({"rule": level_2(json!({})), "extra": 1}),
            "unknown member",
        ),
        (json!({"from": h(1)}), "needs a rule"),
    ] {
        let (s, body) = backtest(&app, &bad).await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(says),
            "{body}"
        );
    }
}
