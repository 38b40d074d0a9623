//! The change feed: what the hub publishes after a commit, over a real SQLite file and
//! real HTTP writes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hub::{ChangeKind, EntityChange, HubConfig};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

const VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

struct Served {
    base: String,
    state: hub::AppState,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("d.db").display()))
        .await
        .unwrap();
    // The change feed is what this test looks at: the server runs as `--insecure`.
    let mut config = HubConfig::default();
    config.gate.insecure = true;
    let state = hub::state(store, &config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ngsi-ld/v1", listener.local_addr().unwrap());
    tokio::spawn(hub::serve(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    Served {
        base,
        state,
        client: Client::new(),
        _dir: dir,
    }
}

impl Served {
    async fn send(&self, method: &str, path: &str, tenant: Option<&str>, body: Value) -> u16 {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            _ => self.client.delete(url),
        };
        if let Some(t) = tenant {
            req = req.header("NGSILD-Tenant", t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Posts a batch of entities to an `/entityOperations/...` path.
    async fn post_batch(&self, path: &str, batch: &Value) -> reqwest::StatusCode {
        let url = format!("{}/entityOperations/{path}", self.base);
        self.client
            .post(url)
            .json(batch)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn next(rx: &mut Receiver<Arc<EntityChange>>) -> EntityChange {
    match rx.try_recv() {
        Ok(c) => (*c).clone(),
        Err(e) => panic!("no change published: {e:?}"),
    }
}

fn gauge(id: &str, level: f64) -> Value {
    json!({"id": id, "type": "WaterObserved",
           "waterLevel": {"type": "Property", "value": level},
           "river": {"type": "Property", "value": "Thạch Hãn"}})
}

#[tokio::test]
async fn committed_changes_are_published_with_their_attributes_and_tenant() {
    let s = serve().await;
    let mut rx = s.state.hub.subscribe_changes();
    let id = "urn:ngsi-ld:WaterObserved:thach-han";

    assert_eq!(s.send("POST", "/entities", None, gauge(id, 1.2)).await, 201);
    let created = next(&mut rx);
    assert_eq!(created.kind, ChangeKind::Created);
    assert_eq!(created.id, id);
    assert_eq!(created.tenant, "");
    assert_eq!(created.types, vec![format!("{VOCAB}WaterObserved")]);
    assert!(created.attrs.contains(&format!("{VOCAB}waterLevel")));

    // Only the attribute written is reported.
    let patch = json!({"waterLevel": {"type": "Property", "value": 2.5}});
    let path = format!("/entities/{id}/attrs");
    assert_eq!(s.send("PATCH", &path, None, patch).await, 204);
    let updated = next(&mut rx);
    assert_eq!(updated.kind, ChangeKind::Updated);
    assert_eq!(updated.attrs, vec![format!("{VOCAB}waterLevel")]);

    // A refused write publishes nothing.
    assert_eq!(s.send("POST", "/entities", None, gauge(id, 3.0)).await, 409);
    let missing = json!({"waterLevel": {"type": "Property", "value": 1.0}});
    let path = "/entities/urn:ngsi-ld:WaterObserved:none/attrs";
    assert_eq!(s.send("PATCH", path, None, missing).await, 404);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);

    // Another tenant's change names its tenant.
    let other = "urn:ngsi-ld:WaterObserved:ben-hai";
    assert_eq!(
        s.send("POST", "/entities", Some("so-nn"), gauge(other, 0.4))
            .await,
        201
    );
    let elsewhere = next(&mut rx);
    assert_eq!(
        (elsewhere.tenant.as_str(), elsewhere.id.as_str()),
        ("so-nn", other)
    );

    let path = format!("/entities/{id}");
    assert_eq!(s.send("DELETE", &path, None, Value::Null).await, 204);
    let deleted = next(&mut rx);
    assert_eq!(
        (deleted.kind, deleted.id.as_str()),
        (ChangeKind::Deleted, id)
    );
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[tokio::test]
async fn a_change_carries_the_state_it_committed_in_the_order_of_its_writes() {
    let s = serve().await;
    let mut rx = s.state.hub.subscribe_changes();
    let id = "urn:ngsi-ld:WaterObserved:cam-lo";
    let scope = hub::Scope::system("test", "");
    let level = |c: &EntityChange| {
        let state = c.state.as_ref().expect("a state");
        let e = state.entity.as_ref().expect("an entity");
        e.attrs[&format!("{VOCAB}waterLevel")][0].value.clone()
    };

    assert_eq!(s.send("POST", "/entities", None, gauge(id, 1.2)).await, 201);
    let created = next(&mut rx);
    // The very entity the store holds, not another reading of it.
    let stored = s.state.hub.get_entity(&scope, id).await.unwrap();
    let state = created.state.clone().unwrap();
    assert_eq!(state.entity.as_deref(), Some(&stored));
    assert!(state.seq >= 1 && state.seq <= s.state.hub.change_sequence());

    // Two writes of the entity in one request: the later has the larger sequence.
    let batch = json!([gauge(id, 2.5), gauge(id, 3.5)]);
    let status = s.post_batch("upsert?options=update", &batch).await;
    assert!(status.is_success(), "{status}");
    let (first, second) = (next(&mut rx), next(&mut rx));
    assert_eq!((level(&first), level(&second)), (json!(2.5), json!(3.5)));
    let seq = |c: &EntityChange| c.state.as_ref().unwrap().seq;
    assert!(seq(&created) < seq(&first) && seq(&first) < seq(&second));

    // A deletion's state is the entity gone.
    let path = format!("/entities/{id}");
    assert_eq!(s.send("DELETE", &path, None, Value::Null).await, 204);
    let deleted = next(&mut rx).state.unwrap();
    assert!(deleted.entity.is_none() && deleted.seq > seq(&second));
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_never_holds_writers_back() {
    let s = serve().await;
    let mut idle = s.state.hub.subscribe_changes();
    let batches = (hub::changes::FEED_CAPACITY + 500).div_ceil(500);
    let total = batches * 500;
    for chunk in 0..batches {
        let batch: Vec<Value> = (0..500)
            .map(|i| {
                gauge(
                    &format!("urn:ngsi-ld:WaterObserved:g{}", chunk * 500 + i),
                    1.0,
                )
            })
            .collect();
        let status = s.post_batch("upsert", &Value::from(batch)).await;
        assert!(status.is_success(), "batch {chunk}: {status}");
    }
    // Every write went through; the idle subscriber lost the oldest changes and is
    // told how many, then reads the newest.
    match idle.recv().await {
        Err(RecvError::Lagged(n)) => assert_eq!(n as usize, total - hub::changes::FEED_CAPACITY),
        other => panic!("expected a lag, got {other:?}"),
    }
    let newest = idle.recv().await.unwrap();
    assert_eq!(newest.kind, ChangeKind::Created);
}

#[tokio::test]
async fn past_history_is_written_without_changing_or_publishing_anything() {
    let s = serve().await;
    let id = "urn:ngsi-ld:WaterObserved:thach-han";
    let mut body = gauge(id, 2.35);
    body["waterLevel"]["observedAt"] = json!("2026-12-06T06:00:00Z");
    assert_eq!(s.send("POST", "/entities", None, body).await, 201);
    let mut rx = s.state.hub.subscribe_changes();
    let get = |path: String| {
        let client = s.client.clone();
        async move {
            client
                .get(path)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = get(format!("{}/entities/{id}", s.base)).await;

    // Three readings of the past, and one for an entity that does not exist.
    let ctx = ngsi::Context::core();
    let reader = ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let mut past = Vec::new();
    for (hour, level) in [(1, 2.1), (2, 2.2), (3, 2.3)] {
        let mut attrs = serde_json::Map::new();
        attrs.insert(
            "waterLevel".into(),
            json!({"type": "Property", "value": level, "unitCode": "MTR",
                   "observedAt": format!("2026-12-05T0{hour}:00:00Z")}),
        );
        for (name, list) in reader.attributes(&attrs).unwrap() {
            past.extend(list.into_iter().map(|a| (name.clone(), a)));
        }
    }
    let scope = hub::Scope::system("test", "");
    let results = s
        .state
        .hub
        .add_past_history(
            &scope,
            vec![
                (id.to_string(), past.clone()),
                ("urn:ngsi-ld:WaterObserved:none".to_string(), past),
            ],
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(
        results[1].as_ref().unwrap_err().kind,
        ngsi::ErrorKind::ResourceNotFound
    );

    // The entity is as it was, and nobody heard of a change...
    assert_eq!(get(format!("{}/entities/{id}", s.base)).await, before);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    // ...but its history has the three readings before the current value.
    let history = get(format!(
        "{}/temporal/entities/{id}?attrs=waterLevel&options=temporalValues",
        s.base
    ))
    .await;
    let values: Vec<f64> = history["waterLevel"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_f64().unwrap())
        .collect();
    assert_eq!(values, [2.1, 2.2, 2.3, 2.35], "{history}");
}
