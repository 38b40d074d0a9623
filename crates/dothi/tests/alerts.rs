//! Alerts of the real `dothi` binary across a SIGKILL: gauges rise, the process is
//! killed while their alerts are being raised, and after a restart on the same file
//! every gauge has exactly one alert.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Dothi, get_json};

const GAUGES: usize = 20;

impl Dothi {
    async fn post(&self, path: &str, body: &Value) -> u16 {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The alerts of the rule, by gauge: how many each has, and their statuses.
    async fn alerts_by_gauge(&self) -> BTreeMap<String, Vec<String>> {
        let body = get_json(
            &self.client,
            format!("{}/alerts/v1/alerts?rule=kill&limit=1000", self.base),
        )
        .await;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in body["alerts"].as_array().unwrap() {
            out.entry(a["alertSource"].as_str().unwrap().to_string())
                .or_default()
                .push(a["status"].as_str().unwrap().to_string());
        }
        out
    }
}

fn gauge(n: usize, level: f64) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:WaterObserved:kill-{n}"),
        "type": "WaterObserved",
        "waterLevel": {"type": "Property", "value": level}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_while_alerts_fire_loses_none_and_doubles_none() {
    let (_dir, db) = common::temp_db();
    let mut node = Dothi::start(&db).await;
    let rule = json!({
        "id": "kill",
        "scope": {"type": "WaterObserved"},
        "condition": {"kind": "threshold", "attribute": "waterLevel", "op": ">=", "value": 3.0},
        "severity": "critical"
    });
    assert_eq!(node.post("/alerts/v1/rules", &rule).await, 201);
    let low: Vec<Value> = (0..GAUGES).map(|n| gauge(n, 1.0)).collect();
    assert_eq!(
        node.post("/ngsi-ld/v1/entityOperations/upsert", &Value::Array(low))
            .await,
        201
    );
    // Every gauge rises, one write each, and the process dies while the evaluator
    // works through them.
    for n in 0..GAUGES {
        let body = Value::Array(vec![gauge(n, 3.5)]);
        let status = node
            .post("/ngsi-ld/v1/entityOperations/upsert?options=update", &body)
            .await;
        assert!(status == 204 || status == 201, "{status}");
    }
    node.kill();
    let node = Dothi::start(&db).await;
    let start = Instant::now();
    loop {
        let by_gauge = node.alerts_by_gauge().await;
        if by_gauge.len() == GAUGES {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "alerts after the restart: {by_gauge:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once more, after the evaluator has had time to do anything twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_gauge = node.alerts_by_gauge().await;
    assert_eq!(by_gauge.len(), GAUGES, "{by_gauge:?}");
    for (gauge, alerts) in &by_gauge {
        assert_eq!(alerts, &["firing"], "{gauge}: {alerts:?}");
    }
}
