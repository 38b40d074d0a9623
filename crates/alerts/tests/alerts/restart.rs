//! Rule state is persisted: after the evaluator stops at the worst moment, the next
//! start raises what was due, once.

use std::sync::Arc;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_evaluator_stopped_between_incident_and_alert_raises_it_once_on_restart() {
    let place = Place::new();
    let t0 = start_time();
    let rule = json!({
        "id": "crash",
        "scope": {"type": "WaterObserved"},
        "condition": {"kind": "threshold", "attribute": "waterLevel", "op": ">=", "value": 3.0},
        "severity": "critical"
    });
    let a = unique_id("WaterObserved");
    let b = unique_id("WaterObserved");
    {
        let app = App::start_at(&place.db(), t0).await;
        app.create_rule(rule).await;
        app.upsert(gauge(&a, 1.0, t0)).await;
        app.upsert(gauge(&b, 1.0, t0)).await;
        app.settle().await;
        app.stop().await;
    }
    // While no evaluator runs: gauge a rises, and an incident of gauge b is left as an
    // evaluator stopped right after persisting it would leave it, its alert unwritten.
    {
        let url = store_url(&place.db()).await;
        let store = store::open(&url).await.expect("store");
        let state = hub::state(store, &hub::HubConfig::default()).expect("state");
        let hub = state.hub.clone();
        let scope = hub::Scope::system("test", "");
        let ctx = ngsi::Context::core();
        let reader = ngsi::entity::Reader { ctx: &ctx, now: t0 };
        let e = reader.entity(&gauge(&a, 3.5, t0), None).expect("entity");
        hub.batch_upsert(&scope, vec![Ok(e)], false)
            .await
            .expect("upsert");
        let e = reader.entity(&gauge(&b, 3.6, t0), None).expect("entity");
        hub.batch_upsert(&scope, vec![Ok(e)], false)
            .await
            .expect("upsert");
        let since = t0;
        let incident = json!({
            "phase": "firing",
            "since": ngsi::entity::format_time(&since),
            "alert": alerts::alert_id("crash", &b, since),
            "last": {"active": true, "cleared": false, "value": 3.6, "threshold": 3.0}
        });
        hub.records()
            .registry_put(
                alerts::INCIDENTS,
                "",
                vec![(format!("crash {b}"), incident)],
                store::RegistryWrite::Upsert,
            )
            .await
            .expect("incident");
        drop(hub);
        drop(Arc::new(state));
    }
    let app = App::start_at(&place.db(), t0).await;
    let list = app
        .until_alerts("crash", "both alerts", |l| l.len() == 2)
        .await;
    let sources: Vec<&str> = list
        .iter()
        .filter_map(|x| x["alertSource"].as_str())
        .collect();
    assert!(
        sources.contains(&a.as_str()) && sources.contains(&b.as_str()),
        "{list:?}"
    );
    assert_eq!(
        list.iter()
            .find(|x| x["alertSource"] == b.as_str())
            .map(|x| x["id"].clone()),
        Some(json!(alerts::alert_id("crash", &b, t0)))
    );
    app.settle().await;
    app.stop().await;
    // Another start: nothing doubled.
    let app = App::start_at(&place.db(), t0).await;
    app.settle().await;
    app.settle().await;
    let list = app.alerts_of("crash").await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|x| x["status"] == "firing"), "{list:?}");
}
