//! Notifications of the real `dothi` binary survive a SIGKILL between the
//! acknowledgement of a write and the delivery of what it fired: the outbox row was
//! committed with the write, and the restarted server delivers it.
//!
//! Delivery is at least once (`docs/subscriptions.md`): a notification may arrive more
//! than once, so the test asserts that each expected one arrives at least once and
//! that nothing else arrives.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Dothi, Receiver, free_port};

fn gauge(id: &str, height: f64) -> Value {
    json!({
        "id": id,
        "type": "WaterObserved",
        "height": {"type": "Property", "value": height, "unitCode": "MTR"},
        "river": "Thạch Hãn"
    })
}

/// `notification.timesFailed` of the subscription `id`.
async fn times_failed(server: &Dothi, id: &str) -> u64 {
    let r = server.get_ok(&format!("/subscriptions/{id}"), &[]).await;
    let sub: Value = r.json().await.unwrap();
    sub["notification"]["timesFailed"].as_u64().unwrap_or(0)
}

/// (entity id, height) of each entity in each notification received, in order of
/// receipt, after checking that every notification is one of `subscription`'s.
fn notified(received: &[Value], subscription: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for n in received {
        assert_eq!(n["type"], "Notification", "{n}");
        assert_eq!(n["subscriptionId"], subscription, "{n}");
        for e in n["data"].as_array().unwrap() {
            assert_eq!(e["type"], "WaterObserved", "{e}");
            assert_eq!(e["river"]["value"], "Thạch Hãn", "{e}");
            out.push((
                e["id"].as_str().unwrap().to_string(),
                e["height"]["value"].as_f64().unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notification_acknowledged_then_sigkill_is_delivered_after_restart() {
    let (_dir, db) = common::temp_db();
    let mut server = Dothi::start(&db).await;
    // The receiver is down: nothing listens on its port yet.
    let receiver_port = free_port();
    let subscription = "urn:ngsi-ld:Subscription:notify-kill";

    let r = server
        .client
        .post(server.url("/subscriptions"))
        .header("content-type", "application/json")
        .body(
            json!({
                "id": subscription,
                "type": "Subscription",
                "entities": [{"type": "WaterObserved"}],
                "notification": {
                    "endpoint": {
                        "uri": format!("http://127.0.0.1:{receiver_port}/notify"),
                        "accept": "application/json"
                    }
                }
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Acknowledged writes, each firing one notification.
    let mut expected = Vec::new();
    for (n, id) in ["a", "b", "c"].iter().enumerate() {
        let id = format!("urn:ngsi-ld:WaterObserved:notify-{id}");
        let height = n as f64 + 1.5;
        let r = server
            .client
            .post(server.url("/entities"))
            .header("content-type", "application/json")
            .body(gauge(&id, height).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{id}");
        expected.push((id, height));
    }
    let patched = expected[0].0.clone();
    let r = server
        .client
        .patch(server.url(&format!("/entities/{patched}/attrs")))
        .header("content-type", "application/json")
        .body(json!({"height": {"type": "Property", "value": 10.5}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    expected.push((patched, 10.5));

    // The notifier has tried and failed: nothing was delivered.
    let deadline = Instant::now() + Duration::from_secs(20);
    while times_failed(&server, subscription).await == 0 {
        assert!(
            Instant::now() < deadline,
            "no delivery attempt within 20 s of the writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.kill();
    let receiver = Receiver::start(receiver_port).await;
    assert!(receiver.received().is_empty());
    let _server = Dothi::start(&db).await;

    let wanted: BTreeSet<(String, u64)> = expected
        .iter()
        .map(|(id, h)| (id.clone(), h.to_bits()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = notified(&receiver.received(), subscription);
        let seen: BTreeSet<(String, u64)> = got
            .iter()
            .map(|(id, h)| (id.clone(), h.to_bits()))
            .collect();
        assert!(
            seen.is_subset(&wanted),
            "unexpected notifications: {got:?}, expected {expected:?}"
        );
        if seen == wanted {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart, 30 s and only {got:?} of {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // In order per subscription: the entity's creation before its update.
    let first = |h: f64| got.iter().position(|(_, x)| *x == h).unwrap();
    assert!(first(1.5) < first(10.5), "{got:?}");
}
