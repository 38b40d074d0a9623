//! Two nodes over one PostgreSQL database: one evaluates, and the other takes over
//! when it stops, neither losing nor doubling an alert.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

async fn one_evaluator(nodes: &[&App]) -> usize {
    let start = Instant::now();
    loop {
        let holders: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].evaluates()).collect();
        assert!(holders.len() <= 1, "several nodes evaluate: {holders:?}");
        if let [one] = holders[..] {
            return one;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no node took the duties"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes over a fresh PostgreSQL database, on clocks set to `t0`: the one that
/// holds the duties, then the other (the place lives as long as the first).
async fn two_nodes() -> (Place, chrono::DateTime<chrono::Utc>, App, App) {
    let place = Place::postgres();
    let url = postgres_url(&place.db()).await;
    let t0 = start_time();
    let a = App::start_on(&url, t0).await;
    let b = App::start_on(&url, t0).await;
    let holder = one_evaluator(&[&a, &b]).await;
    let (first, second) = if holder == 0 { (a, b) } else { (b, a) };
    (place, t0, first, second)
}

/// Waits until `node` holds the duties.
async fn takes_over(node: &App) {
    let start = Instant::now();
    while !node.evaluates() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the survivor never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_fire_each_incident_once_and_one_takes_over() {
    let (_place, t0, evaluator, other) = two_nodes().await;
    // Rules and readings go through the node that does not evaluate.
    other
        .create_rule(json!({
            "id": "shared",
            "scope": {"type": "WaterObserved"},
            "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel1"},
            "clear": {"hysteresis": 0.1},
            "severity": "medium"
        }))
        .await;
    let g1 = unique_id("WaterObserved");
    let g2 = unique_id("WaterObserved");
    other.upsert(gauge(&g1, 2.0, t0)).await;
    other.upsert(gauge(&g1, 3.2, t0)).await;
    other.upsert(gauge(&g1, 3.4, t0)).await;
    other
        .until_one_alert("shared", "the evaluating node fires")
        .await;
    evaluator.settle().await;
    other.settle().await;
    assert_eq!(
        other.alerts_of("shared").await.len(),
        1,
        "once, not once per node"
    );
    // The evaluating node stops; the other takes over from the stored state.
    evaluator.stop().await;
    takes_over(&other).await;
    other.upsert(gauge(&g2, 3.1, t0)).await;
    other
        .until_alerts("shared", "the survivor fires", |l| l.len() == 2)
        .await;
    // The first incident is the survivor's now: it resolves it, and raises no twin.
    other.upsert(gauge(&g1, 2.5, t0)).await;
    let list = other
        .until_alerts("shared", "the survivor resolves", |l| {
            l.iter()
                .any(|x| x["alertSource"] == g1.as_str() && x["status"] == "resolved")
        })
        .await;
    assert_eq!(list.len(), 2, "{list:?}");
}

#[tokio::test]
async fn two_nodes_on_postgres_send_each_notification_once_and_one_takes_over() {
    use crate::notify::Sink;
    let (_place, t0, sender, other) = two_nodes().await;
    let sink = Sink::start().await;
    other
        .create_rule(json!({
            "id": "shared",
            "scope": {"type": "WaterObserved"},
            "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel1"},
            "severity": "high"
        }))
        .await;
    other
        .create(
            "policies",
            json!({"id": "default", "groupWait": "10s", "repeatInterval": "1h",
                   "channels": [{"kind": "webhook", "url": sink.url("ops")}]}),
        )
        .await;
    other
        .upsert(gauge(&unique_id("WaterObserved"), 3.3, t0))
        .await;
    other.until_one_alert("shared", "fires").await;
    for node in [&sender, &other] {
        node.deliver().await;
        node.advance(Duration::from_secs(10));
        node.deliver().await;
    }
    sink.until("ops", 1).await;
    for node in [&sender, &other] {
        node.deliver().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.on("ops").len(), 1, "once, not once per node");
    // The sender stops; the other takes over, and repeats on time from the stored
    // state: not at once, as a node that forgot would.
    sender.stop().await;
    takes_over(&other).await;
    other.advance(Duration::from_secs(30 * 60));
    other.deliver().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.on("ops").len(), 1);
    other.advance(Duration::from_secs(30 * 60));
    sink.until("ops", 2).await;
}
