//! The smart-city maturity checklist and the Decision 766 dossier import.

use serde_json::json;

use crate::common::{ADMIN, App, OPERATOR, VIEWER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_reaches_a_level_when_every_criterion_passes_with_evidence() {
    let app = App::start().await;
    let (status, report) = app.get("/scorecard/v1/maturity", Some(VIEWER)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["draft"], true);
    assert_eq!(report["wards"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["wards"][0]["levelReached"], 0);
    // Pre-filled platform evidence: the coverage queries count the demo's units.
    assert_eq!(report["platformEvidence"]["coverage"][0]["count"], 78);

    let put = |ward: &str, code: &str, body: serde_json::Value| {
        app.req(
            reqwest::Method::PUT,
            &format!("/scorecard/v1/maturity/{ward}/{code}"),
            Some(OPERATOR),
        )
        .json(&body)
    };
    // No evidence means fail: a pass without it is refused.
    let (status, _) = crate::common::send(put("19333", "B1.1", json!({"result": "pass"}))).await;
    assert_eq!(status, 400);
    let (status, _) = crate::common::send(put("19999", "B1.1", json!({"result": "fail"}))).await;
    assert_eq!(status, 404, "not one of the plan's wards");
    let level1: Vec<String> = report["wards"][0]["criteria"]
        .as_array()
        .expect("criteria")
        .iter()
        .filter(|c| c["level"] == 1)
        .filter_map(|c| c["code"].as_str().map(String::from))
        .collect();
    let mut last = json!(null);
    for code in &level1 {
        let (status, v) = crate::common::send(put(
            "19333",
            code,
            json!({
                "result": "pass", "evidence": ["https://quangtri.gov.vn/ioc/bien-ban.pdf"]
            }),
        ))
        .await;
        assert_eq!(status, 200, "{v}");
        last = v;
    }
    assert_eq!(last["levelReached"], 1);
    assert!(
        last["criteria"][0]["assessment"]["assessor"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:"))
    );

    // The plan's smart-city KPI follows: one ward of three at level 1.
    app.post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    let kpi = app.kpi("smart-city-wards").await;
    assert_eq!(kpi["kpiValue"], json!(1.0), "{kpi}");
    assert_eq!(kpi["confirmed"], false, "computed, not yet confirmed");

    // An officer confirms the value they see; only a confirmed-mode KPI, only its
    // current value, only with the right to write.
    assert_eq!(confirm(&app, "smart-city-wards", VIEWER, 1.0).await.0, 403);
    assert_eq!(
        confirm(&app, "broadband-communes", OPERATOR, 100.0).await.0,
        400
    );
    let (status, v) = confirm(&app, "smart-city-wards", OPERATOR, 2.0).await;
    assert_eq!(status, 409, "{v}");
    let (status, kpi) = confirm(&app, "smart-city-wards", OPERATOR, 1.0).await;
    assert_eq!(status, 200, "{kpi}");
    assert_eq!(kpi["confirmed"], true, "{kpi}");
    assert!(
        kpi["confirmation"]["confirmedBy"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:")),
        "{kpi}"
    );
    let (_, public) = app.get("/scorecard/v1/public", None).await;
    let wards = public["kpis"]
        .as_array()
        .and_then(|a| a.iter().find(|k| k["slug"] == "smart-city-wards"))
        .expect("the wards' KPI");
    assert_eq!(wards["confirmed"], true);
    assert!(wards.get("confirmation").is_none(), "no names in public");
    let signed = crate::entered::audited(
        &app,
        "urn:ngsi-ld:KeyPerformanceIndicator:plan-smart-city-wards",
    )
    .await;
    assert!(
        signed.iter().any(|r| r["role"] == "operator"),
        "the confirmation is audited under the officer: {signed:?}"
    );

    // An admin replaces the draft with the annex.
    let (status, v) = crate::common::send(
        app.req(reqwest::Method::PUT, "/scorecard/v1/maturity/criteria", Some(ADMIN)).json(&json!({
            "draft": false, "source": "Thông tư 03/2026/TT-BXD, phụ lục",
            "criteria": [{"code": "B1.1", "group": "B1", "level": 1, "text": "Tiêu chí", "evidenceRequired": "Biên bản"}]
        })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["draft"], false);
    assert_eq!(v["wards"][0]["levelReached"], 1);
    // A second ward reaches level 1: the new value waits for its confirmation.
    let (status, v) = crate::common::send(put(
        "19351",
        "B1.1",
        json!({"result": "pass", "evidence": ["https://quangtri.gov.vn/ioc/bien-ban-2.pdf"]}),
    ))
    .await;
    assert_eq!(status, 200, "{v}");
    app.post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    let kpi = app.kpi("smart-city-wards").await;
    assert_eq!(kpi["kpiValue"], json!(2.0), "{kpi}");
    assert_eq!(kpi["confirmed"], false, "{kpi}");
    let (status, _) = app
        .put(
            "/scorecard/v1/maturity/criteria",
            Some(OPERATOR),
            &json!({}),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// Confirms `value` of the KPI `slug` with `key`.
async fn confirm(app: &App, slug: &str, key: &str, value: f64) -> (u16, serde_json::Value) {
    app.post(
        &format!("/scorecard/v1/kpis/{slug}/confirm"),
        Some(key),
        &json!({"value": value, "note": "Đã đối chiếu biên bản"}),
    )
    .await
}

const DOSSIERS: &str = "\
dossier_id,agency,received,due,finished,channel,fee,online_payment,digitised,supplements,supplement_days
d1,SXD,2026-10-01,2026-10-10,2026-10-09,2,1,1,1,0,0
d2,SXD,2026-10-02,2026-10-10,2026-10-12,1,1,0,0,0,0
d3,SXD,2026-10-03,2026-10-10,2026-10-13,2,0,0,1,1,3
d4,SXD,2026-10-04,2026-10-10,2026-10-08,2,1,2,1,2,0
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_file_with_a_bad_row_stores_nothing() {
    let app = App::start().await;
    let post = |body: String| {
        app.req(
            reqwest::Method::POST,
            "/scorecard/v1/egov/dossiers",
            Some(OPERATOR),
        )
        .header("content-type", "text/csv")
        .body(body)
    };
    let bad = format!("{DOSSIERS}d5,SXD,2026-10-05,2026-10-01,,1,0,0,0,0,0\n");
    let (status, v) = crate::common::send(post(bad)).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 6: due is before received")),
        "{v}"
    );
    let (_, report) = app.get("/scorecard/v1/egov", Some(VIEWER)).await;
    assert_eq!(report["indices"], json!([]), "nothing partial");

    let (status, v) = crate::common::send(post(DOSSIERS.to_string())).await;
    assert_eq!(status, 200, "{v}");
    let (_, report) = app.get("/scorecard/v1/egov", Some(VIEWER)).await;
    let sxd = &report["indices"][0];
    assert_eq!(sxd["agency"], "SXD");
    assert_eq!(sxd["dossiers"], 4);
    // On time: d1, d3 (its three days waiting for the citizen do not count) → 50 %.
    assert_eq!(sxd["rates"]["2.1"], json!(0.5));
    assert_eq!(sxd["points"]["TDGQ"], json!(10.0));
    assert_eq!(report["province"][0]["month"], "2026-10");
    let (status, _) = crate::common::send(
        app.req(
            reqwest::Method::POST,
            "/scorecard/v1/egov/dossiers",
            Some(VIEWER),
        )
        .body(DOSSIERS),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_adds_a_year_of_quarters_and_the_marked_dossier_sample() {
    let app = App::start().await;
    let loaded = scorecard::demo::load(&app.scorecard)
        .await
        .expect("the demo");
    assert_eq!(loaded.dossiers, 720);
    assert_eq!(loaded.history, 4 * 4, "four quarters of four computed KPIs");
    // The indices of four agencies over twelve months; e-government is now live.
    let (_, report) = app.get("/scorecard/v1/egov", Some(VIEWER)).await;
    assert_eq!(report["indices"].as_array().map(Vec::len), Some(48));
    app.post("/scorecard/v1/recompute", Some(ADMIN), &json!({}))
        .await;
    assert_eq!(
        app.kpi("priority-sectors-live").await["kpiValue"],
        json!(7.0)
    );
    let history = app.kpi_history("broadband-communes", "").await;
    let instances = history["kpiValue"].as_array().expect("instances");
    assert_eq!(instances.len(), 5, "{history}");
    let demo = instances
        .iter()
        .filter(|i| i["source"]["value"] == "demo")
        .count();
    assert_eq!(demo, 4, "every demo instance says so");
    // Loading again adds nothing.
    let again = scorecard::demo::load(&app.scorecard)
        .await
        .expect("the demo");
    assert_eq!((again.created, again.history), (0, 0));
    app.stop().await;
}
