//! Durability of the real `dothi` binary: every write acknowledged before a SIGKILL
//! is there after a restart on the same SQLite file; a graceful stop (SIGTERM) exits
//! cleanly and loses nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::Dothi;

/// What the durability tests ask of the server, beside starting and stopping it.
impl Dothi {
    async fn create(&self, entity: &Value) -> reqwest::Result<u16> {
        let r = self
            .client
            .post(self.url("/entities"))
            .header("content-type", "application/json")
            .body(entity.to_string())
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    /// Creates the gauges `{prefix}-0` to `{prefix}-{count - 1}` one by one, each
    /// acknowledged; their ids.
    async fn create_gauges(&self, prefix: &str, count: usize) -> Vec<String> {
        let ids: Vec<String> = (0..count)
            .map(|n| format!("urn:ngsi-ld:WaterObserved:{prefix}-{n}"))
            .collect();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(self.create(&gauge(id, n)).await.unwrap(), 201, "{id}");
        }
        ids
    }

    async fn get(&self, id: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(&format!("/entities/{id}")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn count(&self, entity_type: &str) -> String {
        let r = self
            .get_ok(
                "/entities",
                &[("type", entity_type), ("count", "true"), ("limit", "0")],
            )
            .await;
        r.headers()
            .get("NGSILD-Results-Count")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

fn gauge(id: &str, n: usize) -> Value {
    json!({
        "id": id,
        "type": "WaterObserved",
        "height": {"type": "Property", "value": n as f64 + 0.5, "unitCode": "MTR"},
        "river": "Thạch Hãn",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1905, 16.753]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let (_dir, db) = common::temp_db();
    let mut server = Dothi::start(&db).await;

    // One by one, each acknowledged.
    let sequential = server.create_gauges("seq", 40).await;

    // Then writers racing the kill: whatever was acknowledged must survive.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let client = server.client.clone();
    let url = server.url("/entities");
    let mut writers = Vec::new();
    for w in 0..6 {
        let (client, url, acknowledged) = (client.clone(), url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("urn:ngsi-ld:WaterObserved:race-{w}-{n}");
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(gauge(&id, n).to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.lock().unwrap().insert(id);
                    }
                    Ok(r) => panic!("{id}: {}", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let raced = acknowledged.lock().unwrap().clone();
    assert!(
        !raced.is_empty(),
        "some writes were acknowledged before the kill"
    );

    let server = Dothi::start(&db).await;
    for (n, id) in sequential.iter().enumerate() {
        let (status, e) = server.get(id).await;
        assert_eq!(status, 200, "{id} was acknowledged, then lost");
        assert_eq!(e["height"]["value"], json!(n as f64 + 0.5), "{id}");
        assert_eq!(e["river"]["value"], "Thạch Hãn");
    }
    for id in &raced {
        let (status, _) = server.get(id).await;
        assert_eq!(status, 200, "{id} was acknowledged, then lost");
    }
    let total: usize = server.count("WaterObserved").await.parse().unwrap();
    assert!(
        total >= sequential.len() + raced.len(),
        "{total} entities after the restart, {} acknowledged",
        sequential.len() + raced.len()
    );
    // The store still takes writes.
    assert_eq!(
        server
            .create(&gauge("urn:ngsi-ld:WaterObserved:after", 0))
            .await
            .unwrap(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_restart_exits_cleanly_and_keeps_everything() {
    let (_dir, db) = common::temp_db();
    let mut server = Dothi::start(&db).await;
    let ids = server.create_gauges("g", 20).await;
    let old_base = server.base.clone();
    let status = server.terminate().await;
    assert!(
        status.success(),
        "a graceful stop exits with 0, not {status}"
    );
    assert!(
        server
            .client
            .get(format!("{old_base}/health"))
            .send()
            .await
            .is_err(),
        "the stopped server no longer answers"
    );

    let mut server = Dothi::start(&db).await;
    for (n, id) in ids.iter().enumerate() {
        let (status, e) = server.get(id).await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(e["height"]["value"], json!(n as f64 + 0.5));
        assert_eq!(
            e["location"]["value"],
            json!({"type": "Point", "coordinates": [107.1905, 16.753]})
        );
    }
    assert_eq!(server.count("WaterObserved").await, "20");
    // Geo and q queries still work on the reopened file.
    let query = [
        ("type", "WaterObserved"),
        ("q", "height>=10"),
        ("georel", "near;maxDistance==1000"),
        ("geometry", "Point"),
        ("coordinates", "[107.19,16.753]"),
        ("count", "true"),
    ];
    let r = server.get_ok("/entities", &query).await;
    assert_eq!(
        r.headers()
            .get("NGSILD-Results-Count")
            .and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
}
