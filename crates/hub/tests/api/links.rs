//! Linked entities: `join=inline|flat` and `joinLevel` on retrieval and query.

use serde_json::{Value, json};

use crate::common::*;

async fn chain(app: &App) {
    app.create_all(vec![
        json!({"id": "urn:ngsi-ld:Building:b1", "type": "Building",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:DongHa"}}),
        json!({"id": "urn:ngsi-ld:Building:b2", "type": "Building",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:DongHa"}}),
        json!({"id": "urn:ngsi-ld:City:DongHa", "type": "City",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:Province:QuangTri"}}),
        json!({"id": "urn:ngsi-ld:Province:QuangTri", "type": "Province",
               "population": {"type": "Property", "value": 1_870_000}}),
    ])
    .await;
}

fn strip_context(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("@context");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_entities_inline_and_flat() {
    let app = App::start().await;
    chain(&app).await;
    let b1 = "urn:ngsi-ld:Building:b1";

    // Inline, normalized, one level: the city inside the relationship, not its province.
    let e = strip_context(app.entity_with(b1, &[("join", "inline")]).await);
    let city = &e["locatedAt"]["entity"];
    assert_eq!(city["id"], "urn:ngsi-ld:City:DongHa", "{e}");
    assert_eq!(city["locatedAt"]["object"], "urn:ngsi-ld:Province:QuangTri");
    assert!(city["locatedAt"].get("entity").is_none(), "{e}");

    // Two levels, simplified: each target replaces its id.
    let e = strip_context(
        app.entity_with(
            b1,
            &[
                ("join", "inline"),
                ("joinLevel", "2"),
                ("options", "keyValues"),
            ],
        )
        .await,
    );
    assert_eq!(
        e,
        json!({"id": b1, "type": "Building", "locatedAt": {
            "id": "urn:ngsi-ld:City:DongHa", "type": "City", "locatedAt": {
                "id": "urn:ngsi-ld:Province:QuangTri", "type": "Province", "population": 1_870_000}}}),
    );

    // Flat: the entity, then each linked one.
    let r = send(
        app.get(&format!("/entities/{b1}"))
            .query(&[("join", "flat"), ("joinLevel", "2")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        id_list(&r.body),
        [
            b1,
            "urn:ngsi-ld:City:DongHa",
            "urn:ngsi-ld:Province:QuangTri"
        ]
    );

    // A query lists a target shared by two entities once, after them.
    let r = send(
        app.get("/entities")
            .query(&[("type", "Building"), ("join", "flat")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        id_list(&r.body),
        [
            "urn:ngsi-ld:Building:b1",
            "urn:ngsi-ld:Building:b2",
            "urn:ngsi-ld:City:DongHa"
        ]
    );

    for query in [
        [("join", "sideways"), ("joinLevel", "1")],
        [("join", "inline"), ("joinLevel", "0")],
    ] {
        let r = send(app.get(&format!("/entities/{b1}")).query(&query)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.assert_alive().await;
}
