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
    let r = app
        .get_ok(
            &format!("/entities/{b1}"),
            &[("join", "flat"), ("joinLevel", "2")],
        )
        .await;
    assert_eq!(
        id_list(&r.body),
        [
            b1,
            "urn:ngsi-ld:City:DongHa",
            "urn:ngsi-ld:Province:QuangTri"
        ]
    );

    // A query lists a target shared by two entities once, after them.
    let r = app
        .get_ok("/entities", &[("type", "Building"), ("join", "flat")])
        .await;
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
        let r = app.get_with(&format!("/entities/{b1}"), &query).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_query_joins_as_its_body_asks() {
    let app = App::start().await;
    chain(&app).await;
    let query = |extra: Value| {
        let mut body = json!({"type": "Query", "entities": [{"type": "Building"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    // `join` and `joinLevel` in the body, with keyValues from the URL.
    let r = send(
        app.post(
            "/entityOperations/query",
            &query(json!({"join": "inline", "joinLevel": 2})),
        )
        .query(&[("options", "keyValues")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body[0]["locatedAt"]["locatedAt"]["population"], 1_870_000,
        "{}",
        r.body
    );
    let r = send(app.post("/entityOperations/query", &query(json!({"join": "flat"})))).await;
    assert_eq!(
        id_list(&r.body),
        [
            "urn:ngsi-ld:Building:b1",
            "urn:ngsi-ld:Building:b2",
            "urn:ngsi-ld:City:DongHa"
        ]
    );
    for bad in [json!({"join": "sideways"}), json!({"join": ["inline"]})] {
        let r = send(app.post("/entityOperations/query", &query(bad))).await;
        assert_problem(&r, 400, "BadRequestData");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relationship_the_projection_leaves_out_is_not_joined() {
    let app = App::start().await;
    chain(&app).await;
    let buildings = ["urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:b2"];
    for projection in [("pick", "id,type"), ("omit", "locatedAt")] {
        let r = app
            .get_ok(
                "/entities",
                &[("type", "Building"), ("join", "flat"), projection],
            )
            .await;
        assert_eq!(id_list(&r.body), buildings, "{projection:?}");
    }
    // Kept, it is joined.
    let r = app
        .get_with(
            "/entities",
            &[
                ("type", "Building"),
                ("join", "flat"),
                ("pick", "id,locatedAt"),
            ],
        )
        .await;
    assert_eq!(
        id_list(&r.body),
        [buildings[0], buildings[1], "urn:ngsi-ld:City:DongHa"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_and_omit_reach_into_linked_entities() {
    let app = App::start().await;
    chain(&app).await;
    let city = "urn:ngsi-ld:City:DongHa";
    let province = "urn:ngsi-ld:Province:QuangTri";
    let pick = "id,locatedAt{id,locatedAt{population}}";
    let query = |join: &'static str, key: &'static str, value: &'static str| {
        app.get("/entities").query(&[
            ("type", "Building"),
            ("join", join),
            ("joinLevel", "2"),
            (key, value),
        ])
    };
    // Inline: each level projected by its braces.
    let r = send(query("inline", "pick", pick)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rel = |object: &str, entity: Value| json!({"type": "Relationship", "object": object, "entity": entity});
    assert_eq!(
        r.body[0],
        json!({"id": "urn:ngsi-ld:Building:b1", "locatedAt": rel(city, json!({
            "id": city,
            "locatedAt": rel(province, json!({"population": {"type": "Property", "value": 1_870_000}}))
        }))})
    );
    // Flat: each linked entity projected by the braces of the link that reached it.
    let r = send(query("flat", "pick", pick)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body[2],
        json!({"id": city, "locatedAt": {"type": "Relationship", "object": province}})
    );
    assert_eq!(
        r.body[3],
        json!({"population": {"type": "Property", "value": 1_870_000}})
    );
    // An omit leaves the braced Relationship in place, and only its members go.
    let r = send(query("flat", "omit", "locatedAt{type,locatedAt}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["locatedAt"]["object"], city, "{}", r.body);
    assert_eq!(r.body[2], json!({"id": city}));
    // A link the linked entity's projection leaves out is not followed further.
    let r = send(query("flat", "pick", "id,locatedAt{id}")).await;
    assert_eq!(
        id_list(&r.body),
        ["urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:b2", city]
    );
    // Unbraced, a linked entity is whole.
    let r = send(query("flat", "pick", "id,locatedAt")).await;
    assert_eq!(r.body[2]["type"], "City", "{}", r.body);

    for bad in ["locatedAt{id", "locatedAt}", "id,,name", "locatedAt{}"] {
        let r = send(query("inline", "pick", bad)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
}
