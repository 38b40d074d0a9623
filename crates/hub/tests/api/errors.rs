//! Refusals: each one a ProblemDetails with the right type and status, and the hub
//! keeps answering afterwards.

use hub::{HttpConfig, HubConfig};
use serde_json::{Map, Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_400() {
    let app = App::start().await;
    for body in [
        "{not json",
        "",
        "{\"id\": \"urn:x:1\", \"type\": \"T\",}",
        "\u{0}",
    ] {
        let r = send(app.post_raw("/entities", JSON, body)).await;
        assert_problem(&r, 400, "InvalidRequest");
    }
    let r = send(app.post_raw("/entityOperations/upsert", JSON, "[{")).await;
    assert_problem(&r, 400, "InvalidRequest");
    let r = send(
        app.client
            .patch(app.url("/entities/urn:x:1/attrs"))
            .header("content-type", JSON)
            .body("nope"),
    )
    .await;
    assert_problem(&r, 400, "InvalidRequest");
    // JSON that is not an object is not a request for an entity at all (InvalidRequest);
    // an object that is not a valid entity is bad data.
    for body in [json!([1, 2]), json!("text"), json!(42)] {
        let r = send(app.post("/entities", &body)).await;
        assert_problem(&r, 400, "InvalidRequest");
    }
    for body in [json!({"type": "T"}), json!({"id": "urn:x:1"})] {
        let r = send(app.post("/entities", &body)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415() {
    let app = App::start().await;
    let body = json!({"id": "urn:ngsi-ld:T:1", "type": "T"}).to_string();
    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        let r = send(app.post_raw("/entities", ct, body.clone())).await;
        assert_problem(&r, 415, "UnsupportedMediaType");
    }
    let r = send(app.client.post(app.url("/entities")).body(body.clone())).await;
    assert_problem(&r, 415, "UnsupportedMediaType");
    let r = send(app.post_raw(
        "/entityOperations/create",
        "text/plain",
        format!("[{body}]"),
    ))
    .await;
    assert_problem(&r, 415, "UnsupportedMediaType");
    // Parameters of the media type are fine.
    let r = send(app.post_raw("/entities", "application/json; charset=utf-8", body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacceptable_accept_is_406() {
    let app = App::start().await;
    app.create(json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": 1}))
        .await;
    for path in [
        "/entities/urn:ngsi-ld:T:1",
        "/entities?type=T",
        "/types",
        "/attributes",
    ] {
        let r = send(app.client.get(app.url(path)).header("accept", "text/html")).await;
        assert_problem(&r, 406, "NotAcceptable");
    }
    let r = send(
        app.get("/entities/urn:ngsi-ld:T:1")
            .header("accept", "text/html, application/json;q=0"),
    )
    .await;
    assert_problem(&r, 406, "NotAcceptable");
    let r = send(
        app.get("/entities/urn:ngsi-ld:T:1")
            .header("accept", "text/html, application/json;q=0.1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let config = HubConfig {
        http: HttpConfig {
            max_body_bytes: 1024,
            ..HttpConfig::default()
        },
        ..HubConfig::default()
    };
    let app = App::start_with(config).await;
    let big = json!({"id": "urn:ngsi-ld:T:big", "type": "T", "text": "x".repeat(4096)});
    let r = send(app.post("/entities", &big)).await;
    assert_problem(&r, 413, "PayloadTooLarge");
    let r = send(app.post("/entityOperations/upsert", &json!([big]))).await;
    assert_problem(&r, 413, "PayloadTooLarge");
    let r = send(app.get("/entities/urn:ngsi-ld:T:big")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    // Just under the limit is fine.
    let small = json!({"id": "urn:ngsi-ld:T:small", "type": "T", "text": "x".repeat(900)});
    assert!(small.to_string().len() <= 1024);
    app.create(small).await;
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_accepts_a_few_megabytes() {
    let app = App::start().await;
    let text = "đ".repeat(1_500_000);
    let e = json!({"id": "urn:ngsi-ld:T:large", "type": "T", "text": text});
    assert!(e.to_string().len() > 2 * 1024 * 1024);
    let r = send(app.post("/entities", &e)).await;
    assert_eq!(
        r.status, 201,
        "a 3 MB body is under the 8 MiB default: {}",
        r.text
    );
    let got = app.entity("urn:ngsi-ld:T:large").await;
    assert_eq!(got["text"]["value"].as_str().map(str::len), Some(3_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_not_uris_are_400() {
    let app = App::start().await;
    for id in ["not a uri", "plainword", "", ":nothing", "urn:x:<y>"] {
        let r = send(app.post("/entities", &json!({"id": id, "type": "T"}))).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = send(app.post("/entities", &json!({"id": 42, "type": "T"}))).await;
    assert_problem(&r, 400, "BadRequestData");
    for path in ["/entities/plainword", "/entities/not%20a%20uri"] {
        let r = send(app.get(path)).await;
        assert_problem(&r, 400, "BadRequestData");
        let r = send(app.delete(path)).await;
        assert_problem(&r, 400, "BadRequestData");
        let r = send(app.patch(&format!("{path}/attrs"), &json!({"a": 1}))).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    // Relationship objects and datasetIds must be URIs too.
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:T:1", "type": "T",
        "r": {"type": "Relationship", "object": "nope"}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:T:1", "type": "T",
        "a": {"type": "Property", "value": 1, "datasetId": "nope"}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    app.create(json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": 1}))
        .await;
    let r = send(
        app.delete("/entities/urn:ngsi-ld:T:1/attrs/a")
            .query(&[("datasetId", "nope")]),
    )
    .await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_q_and_geo_queries_are_400() {
    let app = App::start().await;
    for q in [
        "level=3",
        "level==",
        "level>>3",
        "(level==1",
        "level==1)",
        "level==\"unterminated",
        "level~=\"[unclosed\"",
        "level<true",
        "level==abc",
        ";",
        "level==1..",
        &format!("{}level==1{}", "(".repeat(10_000), ")".repeat(10_000)),
    ] {
        app.get_refused("/entities", &[("type", "T"), ("q", q)])
            .await;
    }
    let point = ("geometry", "Point");
    let coords = ("coordinates", "[107.1,16.8]");
    let bad_geo: Vec<Vec<(&str, &str)>> = vec![
        vec![("georel", "near"), point, coords],
        vec![("georel", "near;maxDistance==abc"), point, coords],
        vec![("georel", "near;furthest==10"), point, coords],
        vec![("georel", "nearby;maxDistance==10"), point, coords],
        vec![("georel", "within"), ("geometry", "Circle"), coords],
        vec![("georel", "within"), point, ("coordinates", "[107.1]")],
        vec![("georel", "within"), point, ("coordinates", "[200,16.8]")],
        vec![("georel", "within"), point, ("coordinates", "[107.1,95]")],
        vec![("georel", "within"), point, ("coordinates", "not json")],
        vec![
            ("georel", "within"),
            ("geometry", "Polygon"),
            ("coordinates", "[[[0.5,0.5],[1.5,0.5],[1.5,1.5],[0.5,1.5]]]"),
        ],
        vec![
            ("georel", "near;maxDistance==10"),
            ("geometry", "Polygon"),
            ("coordinates", "[[[0.5,0.5],[1.5,0.5],[1.5,1.5],[0.5,0.5]]]"),
        ],
        vec![("georel", "within"), point],
        vec![("georel", "within"), coords],
        vec![
            ("georel", "within"),
            point,
            coords,
            ("geoproperty", "bad name!"),
        ],
    ];
    for params in &bad_geo {
        let r = app.get_with("/entities", params).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = send(app.post(
        "/entityOperations/query",
        &json!({"type": "Query", "geoQ": {"georel": "within", "geometry": "Point", "coordinates": [200, 1]}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post("/entityOperations/query", &json!({"type": "Subscription"}))).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post("/entityOperations/query", &json!({"q": 5}))).await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_geometries_are_400() {
    let app = App::start().await;
    let geo = |g: Value| json!({"id": "urn:ngsi-ld:Shape:bad", "type": "Shape", "location": {"type": "GeoProperty", "value": g}});
    for g in [
        json!({"type": "Polygon", "coordinates": [[[107.0, 16.7], [107.3, 16.7], [107.3, 16.9], [107.0, 16.9]]]}),
        json!({"type": "Point", "coordinates": [200.5, 16.8]}),
        json!({"type": "Point", "coordinates": [107.1, -91.5]}),
        json!({"type": "Point", "coordinates": [107.1]}),
        json!({"type": "Point", "coordinates": ["107.1", "16.8"]}),
        json!({"type": "LineString", "coordinates": [[107.1, 16.8]]}),
        json!({"type": "MultiPolygon", "coordinates": []}),
        json!({"type": "Circle", "coordinates": [107.1, 16.8]}),
        json!({"type": "Point"}),
    ] {
        let r = send(app.post("/entities", &geo(g.clone()))).await;
        assert_problem(&r, 400, "BadRequestData");
        assert!(r.body["detail"].is_string(), "{g}");
    }
    // A concise geometry under location is checked the same way.
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:Shape:bad", "type": "Shape",
        "location": {"type": "Point", "coordinates": [200.5, 16.8]}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    // And in updates.
    app.create(json!({"id": "urn:ngsi-ld:Shape:ok", "type": "Shape",
        "location": {"type": "Point", "coordinates": [107.1, 16.8]}}))
        .await;
    let r = send(app.patch(
        "/entities/urn:ngsi-ld:Shape:ok/attrs/location",
        &json!({"value": {"type": "Point", "coordinates": [200.5, 16.8]}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post("/entities/urn:ngsi-ld:Shape:ok/attrs",
        &json!({"location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 100.5]}}})))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(
        app.entity("urn:ngsi-ld:Shape:ok").await["location"]["value"],
        json!({"type": "Point", "coordinates": [107.1, 16.8]})
    );
    let r = send(app.get("/entities/urn:ngsi-ld:Shape:bad")).await;
    app.assert_refused(&r, 404, "ResourceNotFound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_400_without_a_crash() {
    let app = App::start().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = send(app.post_raw("/entities", JSON, deep.clone())).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://uri.etsi.org/ngsi-ld/errors/")),
        "{}",
        r.text
    );
    let r = send(app.post_raw("/entityOperations/create", JSON, deep.clone())).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let inside = format!("{{\"id\": \"urn:ngsi-ld:T:deep\", \"type\": \"T\", \"a\": {deep}}}");
    let r = send(app.post_raw("/entities", JSON, inside)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let objects = format!(
        "{{\"id\": \"urn:ngsi-ld:T:deep\", \"type\": \"T\", \"a\": {}1{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let r = send(app.post_raw("/entities", JSON, objects)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Sub-attributes nested deeper than the limit (within what JSON parsing accepts).
    let mut attr = json!({"type": "Property", "value": 1});
    for _ in 0..20 {
        attr = json!({"type": "Property", "value": 1, "sub": attr});
    }
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:T:subs", "type": "T", "a": attr}),
    ))
    .await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_attributes_is_400() {
    let app = App::start().await;
    let mut e = Map::new();
    e.insert("id".into(), json!("urn:ngsi-ld:T:wide"));
    e.insert("type".into(), json!("T"));
    for i in 0..5_000 {
        e.insert(format!("a{i}"), json!(i));
    }
    let r = send(app.post("/entities", &Value::Object(e))).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.get("/entities/urn:ngsi-ld:T:wide")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    // Growing past the limit by appends is refused too.
    let mut e = Map::new();
    e.insert("id".into(), json!("urn:ngsi-ld:T:grow"));
    e.insert("type".into(), json!("T"));
    let mut more = Map::new();
    for i in 0..1_500 {
        e.insert(format!("a{i}"), json!(i));
        more.insert(format!("b{i}"), json!(i));
    }
    app.create(Value::Object(e)).await;
    let r = send(app.post(
        "/entities/urn:ngsi-ld:T:grow/attrs",
        &Value::Object(more.clone()),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.patch("/entities/urn:ngsi-ld:T:grow", &Value::Object(more))).await;
    assert_problem(&r, 400, "BadRequestData");
    let got = app
        .entity_with("urn:ngsi-ld:T:grow", &[("options", "keyValues")])
        .await;
    assert_eq!(got.as_object().unwrap().len(), 1_502);
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404() {
    let app = App::start().await;
    for url in [
        format!("{}/ngsi-ld/v1/nothing", app.base),
        format!("{}/ngsi-ld/v2/entities", app.base),
        format!("{}/nothing", app.base),
        format!("{}/ngsi-ld/v1/entities/urn:x:1/attrs/a/b", app.base),
    ] {
        let r = send(app.client.get(&url)).await;
        assert_problem(&r, 404, "ResourceNotFound");
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_values_are_400() {
    let app = App::start().await;
    for bad in [
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a;b": 1}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": null}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "Bogus", "value": 1}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "Property"}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "Property", "value": 1, "observedAt": "yesterday"}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "LanguageProperty", "languageMap": {"vi": 3}}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "ListProperty", "valueList": 3}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": "ListRelationship", "objectList": ["nope"]}}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2}]}),
        json!({"id": "urn:ngsi-ld:T:1", "type": ["T", 3]}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T T"}),
        json!({"id": "urn:ngsi-ld:T:1", "type": "T", "scope": "no-slash"}),
    ] {
        let r = send(app.post("/entities", &bad)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = send(app.get("/entities/urn:ngsi-ld:T:1")).await;
    app.assert_refused(&r, 404, "ResourceNotFound").await;
}
