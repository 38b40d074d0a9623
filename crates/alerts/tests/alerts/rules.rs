//! Rules over the API: CRUD, validation with clear 4xx, roles and tenants.

use serde_json::{Value, json};

use crate::common::*;

fn flood_rule(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Báo động II",
        "scope": {"type": "WaterObserved"},
        "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel2"},
        "clear": {"hysteresis": 0.1},
        "severity": "high",
        "labels": {"river": "thach-han"},
        "message": {"vi": "{place}: {value} m ≥ {threshold} m", "en": "{place}: {value} m ≥ {threshold} m"}
    })
}

#[tokio::test]
async fn rules_are_created_read_replaced_listed_and_deleted() {
    let app = App::start(start_time()).await;
    app.create_rule(flood_rule("level-2")).await;
    let (s, got) = app
        .send(app.admin.get(app.url("/alerts/v1/rules/level-2")))
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["condition"]["other"], "alarmLevel2");
    assert_eq!(got["enabled"], true);
    // The same id again is a conflict.
    let (s, body) = app
        .post_json("/alerts/v1/rules", &flood_rule("level-2"))
        .await;
    assert_eq!(s, 409, "{body}");
    // Replaced: the path's id is the rule's.
    let mut changed = flood_rule("level-2");
    changed["severity"] = json!("critical");
    changed.as_object_mut().expect("object").remove("id");
    let (s, body) = app.put_json("/alerts/v1/rules/level-2", &changed).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["severity"], "critical");
    let (s, _) = app.put_json("/alerts/v1/rules/nope", &changed).await;
    assert_eq!(s, 404);
    app.create_rule(flood_rule("level-3")).await;
    let (s, list) = app.send(app.admin.get(app.url("/alerts/v1/rules"))).await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 2);
    let (s, _) = app
        .send(app.admin.delete(app.url("/alerts/v1/rules/level-3")))
        .await;
    assert_eq!(s, 204);
    let (s, body) = app
        .send(app.admin.get(app.url("/alerts/v1/rules/level-3")))
        .await;
    assert_eq!(s, 404);
    assert!(text(&body["detail"]).contains("level-3"));
    let (s, _) = app
        .send(app.admin.delete(app.url("/alerts/v1/rules/level-3")))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_rules_are_refused_with_problem_details_that_say_why() {
    let app = App::start(start_time()).await;
    // A gauge whose alarmLevel2 is text: a comparison with it cannot be evaluated.
    let mut g = gauge("urn:ngsi-ld:WaterObserved:text-level", 1.0, start_time());
    g["alarmLevel2"] = json!({"type": "Property", "value": "high"});
    app.upsert(g).await;
    let mut bad_q = flood_rule("bad-q");
    bad_q["condition"] = json!({"kind": "q", "q": "waterLevel>>"});
    let mut unknown_kind = flood_rule("bad-kind");
    unknown_kind["condition"] = json!({"kind": "sometimes", "attribute": "waterLevel"});
    let mut no_commune = flood_rule("no-commune");
    no_commune["scope"]["area"] = json!({"commune": "urn:ngsi-ld:AdministrativeArea:nowhere"});
    let cases = [
        (flood_rule("text-compare"), 400, "compares numbers"),
        (bad_q, 400, "condition.q"),
        (unknown_kind, 400, "unknown variant"),
        (no_commune, 400, "commune"),
        (json!([1, 2]), 400, "JSON object"),
        (json!({"id": "x"}), 400, "missing field"),
    ];
    for (rule, status, says) in cases {
        let r = app
            .admin
            .post(app.url("/alerts/v1/rules"))
            .json(&rule)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), status, "{rule}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: Value = r.json().await.expect("ProblemDetails");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{rule}: {detail}");
        assert!(body["type"].as_str().is_some(), "{body}");
    }
    let (s, _) = app
        .send(
            app.admin
                .post(app.url("/alerts/v1/rules"))
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(s, 400);
    let (_, list) = app.send(app.admin.get(app.url("/alerts/v1/rules"))).await;
    assert_eq!(list["count"], 0, "nothing was stored");
}

/// POSTs the flood rule `id` with `client`: the status and the answer.
async fn post_flood_rule(app: &App, client: &reqwest::Client, id: &str) -> (u16, Value) {
    app.send(
        client
            .post(app.url("/alerts/v1/rules"))
            .json(&flood_rule(id)),
    )
    .await
}

#[tokio::test]
async fn viewers_read_rules_operators_write_them_and_tenants_are_apart() {
    let app = App::start(start_time()).await;
    let viewer = client(VIEWER_KEY);
    let operator = client(OPERATOR_KEY);
    let (s, _) = post_flood_rule(&app, &viewer, "v").await;
    assert_eq!(s, 403);
    let (s, body) = post_flood_rule(&app, &operator, "op").await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app.send(viewer.get(app.url("/alerts/v1/rules/op"))).await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = app
        .send(viewer.delete(app.url("/alerts/v1/rules/op")))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .send(reqwest::Client::new().get(app.url("/alerts/v1/rules")))
        .await;
    assert_eq!(s, 401);
    // Another tenant sees none of the default tenant's rules.
    let (s, list) = app.get_in_tenant("other", "/alerts/v1/rules").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 0);
    let (s, _) = app.get_in_tenant("other", "/alerts/v1/rules/op").await;
    assert_eq!(s, 404);
}
