//! NGSILD-Tenant: tenants are created by their first write and never see each other.

use serde_json::{Value, json};

use crate::common::*;

const TENANT: &str = "NGSILD-Tenant";

/// GET `path` in `tenant`.
async fn get_in(app: &App, tenant: &str, path: &str) -> Resp {
    send(app.get(path).header(TENANT, tenant)).await
}

/// POST `body` to `path` in `tenant`.
async fn post_in(app: &App, tenant: &str, path: &str, body: &Value) -> Resp {
    send(app.post(path, body).header(TENANT, tenant)).await
}

/// The query of every Bin in `tenant`.
async fn bins_in(app: &App, tenant: &str) -> Resp {
    send(
        app.get("/entities")
            .query(&[("type", "Bin")])
            .header(TENANT, tenant),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let app = App::start().await;
    let e = json!({"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fill": 0.5});
    let r = post_in(&app, "quangtri", "/entities", &e).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Visible in its tenant.
    let r = get_in(&app, "quangtri", "/entities/urn:ngsi-ld:Bin:1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fill"]["value"], 0.5);
    let r = bins_in(&app, "quangtri").await;
    assert_eq!(ids(&r.body), set(&["urn:ngsi-ld:Bin:1"]));

    // Invisible in the default tenant.
    let r = send(app.get("/entities/urn:ngsi-ld:Bin:1")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    assert!(app.query_ids(&[("type", "Bin")]).await.is_empty());
    let r = send(app.get("/types")).await;
    assert_eq!(r.body["typeList"], json!([]));

    // An unknown tenant: 404 NonexistentTenant on reads.
    for rb in [
        app.get("/entities/urn:ngsi-ld:Bin:1"),
        app.get("/entities").query(&[("type", "Bin")]),
        app.get("/types"),
        app.get("/attributes"),
        app.post(
            "/entityOperations/query",
            &json!({"type": "Query", "entities": [{"type": "Bin"}]}),
        ),
    ] {
        let r = send(rb.header(TENANT, "hue")).await;
        assert_problem(&r, 404, "NonexistentTenant");
    }

    // The same id in another tenant is another entity; the first write creates it.
    let other = json!({"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fill": 0.9});
    let r = post_in(&app, "hue", "/entities", &other).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = get_in(&app, "hue", "/entities/urn:ngsi-ld:Bin:1").await;
    assert_eq!(r.body["fill"]["value"], 0.9);
    let r = get_in(&app, "quangtri", "/entities/urn:ngsi-ld:Bin:1").await;
    assert_eq!(r.body["fill"]["value"], 0.5);

    // Deleting in one tenant leaves the other.
    let r = send(
        app.delete("/entities/urn:ngsi-ld:Bin:1")
            .header(TENANT, "hue"),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get_in(&app, "quangtri", "/entities/urn:ngsi-ld:Bin:1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The tenant stays, empty.
    let r = bins_in(&app, "hue").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!([]));

    // Batches and discovery are per tenant too.
    let bin = json!([{"id": "urn:ngsi-ld:Bin:2", "type": "Bin", "fill": 0.1}]);
    let r = post_in(&app, "quangtri", "/entityOperations/create", &bin).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = get_in(&app, "quangtri", "/types/Bin").await;
    assert_eq!(r.body["entityCount"], 2);
    let r = get_in(&app, "quangtri", "/attributes/fill").await;
    assert_eq!(r.body["attributeCount"], 2);
    let r = send(app.get("/types/Bin")).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_does_not_create_a_tenant() {
    let app = App::start().await;
    let bin = json!({"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fill": null});
    let r = post_in(&app, "danang", "/entities", &bin).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = bins_in(&app, "danang").await;
    assert_problem(&r, 404, "NonexistentTenant");
    let r = send(
        app.patch("/entities/urn:ngsi-ld:Bin:1/attrs", &json!({"fill": 1}))
            .header(TENANT, "danang"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = bins_in(&app, "danang").await;
    assert_problem(&r, 404, "NonexistentTenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tenant_names_are_refused() {
    let app = App::start().await;
    let r = bins_in(&app, "bad tenant!").await;
    assert_problem(&r, 400, "BadRequestData");
    let long = "t".repeat(200);
    let bin = json!({"id": "urn:ngsi-ld:Bin:1", "type": "Bin"});
    let r = post_in(&app, &long, "/entities", &bin).await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_writes_nothing_does_not_create_a_tenant() {
    let app = App::start().await;
    let bins = json!([{"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fill": null}, {"id": "nope", "type": "Bin"}]);
    let r = post_in(&app, "danang", "/entityOperations/create", &bins).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([]));
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
    let bin_ids = json!(["urn:ngsi-ld:Bin:1"]);
    let r = post_in(&app, "danang", "/entityOperations/delete", &bin_ids).await;
    assert_eq!(r.status, 207, "{}", r.text);
    let r = get_in(&app, "danang", "/types").await;
    assert_problem(&r, 404, "NonexistentTenant");
}
