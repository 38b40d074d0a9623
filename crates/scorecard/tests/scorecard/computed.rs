//! Computed KPIs: their values, their evidence, and how they follow their inputs.

use serde_json::{Value, json};

use crate::common::{ADMIN, App, VIEWER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_data_and_computed_kpis_carry_the_queries_that_made_them() {
    let app = App::start().await;
    let (status, v) = app
        .post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    assert_eq!(status, 200, "{v}");

    // Eight task groups, in order, with their owners.
    let (status, tasks) = app.get("/scorecard/v1/tasks", Some(VIEWER)).await;
    assert_eq!(status, 200, "{tasks}");
    let numbers: Vec<u64> = tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["number"].as_u64())
        .collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<u64>>());

    // The demo gives every one of the 78 units broadband and 5G above 0.
    let broadband = app.kpi("broadband-communes").await;
    assert_eq!(
        broadband["id"],
        "urn:ngsi-ld:KeyPerformanceIndicator:plan-broadband-communes"
    );
    assert_eq!(broadband["kpiValue"], json!(100.0));
    assert_eq!(broadband["target"], json!({"2025": 100.0, "2030": 100.0}));
    assert_eq!(broadband["mode"], "computed");
    assert_eq!(broadband["status"], "onTrack");
    assert_eq!(broadband["currentStanding"], "veryGood");
    assert_eq!(app.kpi("5g-communes").await["kpiValue"], json!(100.0));

    // The evidence: each query, run again through the NGSI-LD API, counts the same.
    let inputs = broadband["evidence"]["inputs"]
        .as_array()
        .expect("inputs")
        .clone();
    assert!(!inputs.is_empty());
    for input in &inputs {
        let href = input["href"].as_str().expect("href");
        let count = crate::common::api_count(&app, href).await;
        assert_eq!(Some(count), input["count"].as_u64(), "{href}");
    }
    assert_eq!(inputs[0]["count"], json!(78));

    // Sectors and domains with live data: the demo has no e-government feed; it has
    // data for all eight essential services.
    let sectors = app.kpi("priority-sectors-live").await;
    assert_eq!(sectors["kpiValue"], json!(6.0), "{sectors}");
    assert_eq!(sectors["status"], "offTrack");
    let services = app.kpi("essential-services-live").await;
    assert_eq!(services["kpiValue"], json!(8.0), "{services}");
    let formula = services["evidence"]["formula"].as_str().expect("formula");
    for domain in [
        "electricity",
        "water",
        "banking",
        "commerce",
        "e-commerce",
        "tourism",
        "environment",
        "urban-planning-housing",
    ] {
        assert!(formula.contains(domain), "{domain}: {formula}");
    }
    // Each domain's queries count what the API counts, and the points of interest are
    // split between banking, commerce and tourism without overlap.
    let mut poi = 0;
    for input in services["evidence"]["inputs"].as_array().expect("inputs") {
        let href = input["href"].as_str().expect("href");
        let count = input["count"].as_u64().expect("count");
        assert!(count > 0, "{href}");
        assert_eq!(crate::common::api_count(&app, href).await, count, "{href}");
        if href.contains("type=PointOfInterest") {
            poi += count;
        }
    }
    let all = crate::common::api_count(&app, "/ngsi-ld/v1/entities?type=PointOfInterest").await;
    assert_eq!(poi, all);

    // Recomputing unchanged inputs adds no history.
    let (status, again) = app
        .post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    let written: Vec<&Value> = again["recomputed"]
        .as_array()
        .expect("recomputed")
        .iter()
        .filter(|r| r["written"] == true)
        .collect();
    assert!(written.is_empty(), "{written:?}");

    // Entered KPIs have no value until one is approved.
    let grdp = app.kpi("digital-economy-grdp").await;
    assert_eq!(grdp["status"], "noData");
    assert!(grdp.get("kpiValue").is_none());
    app.stop().await;
}

/// The id of the demo's broadband indicator of one unit.
fn demo_broadband(code: &str) -> String {
    format!("urn:ngsi-ld:KeyPerformanceIndicator:demo-broadband-{code}")
}

async fn wait_for(app: &App, slug: &str, want: f64) -> Value {
    crate::common::wait_until(app, slug, |k| k["kpiValue"].as_f64() == Some(want)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_kpi_follows_its_inputs() {
    let app = App::start().await;
    app.post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    wait_for(&app, "broadband-communes", 100.0).await;

    // One commune loses its broadband: the province moves by one unit of 78.
    let id = demo_broadband("19333");
    let status = app
        .patch_attrs(&id, &json!({"kpiValue": {"type": "Property", "value": 0}}))
        .await;
    assert_eq!(status, 204);
    let kpi = wait_for(&app, "broadband-communes", 98.7).await;
    assert_eq!(kpi["evidence"]["inputs"][0]["count"], json!(77));
    // Judged against the open 2030 target of 100 %: short by less than 10 points.
    assert_eq!(kpi["status"], "atRisk");

    // And back.
    app.patch_attrs(
        &id,
        &json!({"kpiValue": {"type": "Property", "value": 91.5}}),
    )
    .await;
    wait_for(&app, "broadband-communes", 100.0).await;

    // The values are the KPI's time series.
    let history = app
        .kpi_history("broadband-communes", "&options=temporalValues")
        .await;
    let values: Vec<f64> = history["kpiValue"]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|p| p[0].as_f64())
        .collect();
    assert_eq!(values, vec![100.0, 98.7, 100.0], "{history}");
    app.stop().await;
}
