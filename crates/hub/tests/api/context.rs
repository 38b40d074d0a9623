//! User @contexts: by Link header (fetched from a real local server, once, and kept
//! in the store), inline in application/ld+json bodies, and the response framing.

use std::time::{Duration, Instant};

use hub::HubConfig;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "https://example.org/ns/";

fn user_context() -> Value {
    json!({"@context": {
        "ex": NS,
        "temperature": "ex:temperature",
        "Sensor": "ex:Sensor",
        "owner": {"@id": "ex:owner", "@type": "@id"}
    }})
}

fn sensor() -> Value {
    json!({"id": "urn:ngsi-ld:Sensor:ctx", "type": "Sensor",
           "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL"},
           "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:lan"},
           "plain": 1})
}

/// A hub holding [`sensor`], created with the @context of a server of its own
/// ([`user_context`]): the server, the context's URL and the hub.
async fn with_sensor_in_user_context() -> (ContextServer, String, App) {
    let ctx = ContextServer::start(user_context()).await;
    let url = ctx.url("/ctx.jsonld");
    let app = App::start().await;
    let r = send(app.post("/entities", &sensor()).header("link", link(&url))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (ctx, url, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_context_expands_and_compacts_names() {
    let (ctx, url, app) = with_sensor_in_user_context().await;

    // Without the Link header: the full IRIs.
    let e = app.entity("urn:ngsi-ld:Sensor:ctx").await;
    assert_eq!(e["type"], format!("{NS}Sensor"));
    assert_eq!(
        e[format!("{NS}temperature").as_str()],
        json!({"type": "Property", "value": 21.5, "unitCode": "CEL"}),
        "{e}"
    );
    assert_eq!(
        e[format!("{NS}owner").as_str()]["object"],
        "urn:ngsi-ld:Person:lan"
    );
    assert!(e.get("temperature").is_none(), "{e}");
    assert_eq!(
        e["plain"]["value"], 1,
        "terms the context does not define use the default vocabulary"
    );

    // With it: the short names, and the Link echoed.
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Sensor:ctx", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": "urn:ngsi-ld:Sensor:ctx", "type": "Sensor",
               "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL"},
               "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:lan"},
               "plain": {"type": "Property", "value": 1}})
    );
    let echoed = r.header("link").expect("a Link header");
    assert!(echoed.contains(&format!("<{url}>")), "Link {echoed}");
    assert!(echoed.contains(CONTEXT_REL), "Link {echoed}");

    // Queries with the context: type and q names expand through it.
    let r = send(
        app.get("/entities")
            .query(&[("type", "Sensor"), ("q", "temperature>20")])
            .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body), set(&["urn:ngsi-ld:Sensor:ctx"]));
    assert_eq!(r.body[0]["temperature"]["value"], 21.5);
    // Without it, "Sensor" is another type.
    assert!(app.query_ids(&[("type", "Sensor")]).await.is_empty());
    assert_eq!(
        app.query_ids(&[("type", &format!("{NS}Sensor"))]).await,
        set(&["urn:ngsi-ld:Sensor:ctx"])
    );
    // Attribute operations name attributes through the context.
    let r = send(
        app.patch(
            "/entities/urn:ngsi-ld:Sensor:ctx/attrs/temperature",
            &json!({"value": 22.5}),
        )
        .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity("urn:ngsi-ld:Sensor:ctx").await[format!("{NS}temperature").as_str()]["value"],
        22.5
    );
    // Discovery compacts too.
    let r = app.get_in_context("/types", &url).await;
    assert_eq!(string_set(&r.body["typeList"]), set(&["Sensor"]));
    let r = send(app.get("/types")).await;
    assert_eq!(
        string_set(&r.body["typeList"]),
        set(&[&format!("{NS}Sensor")])
    );
    let r = app.get_in_context("/attributes/temperature", &url).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], format!("{NS}temperature"));
    assert_eq!(r.body["typeNames"], json!(["Sensor"]));

    assert_eq!(ctx.hits(), 1, "the context is fetched once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_context_in_ld_json() {
    let app = App::start().await;
    let body = json!({
        "@context": [{"humidity": "https://example.org/ns/humidity", "Room": "https://example.org/ns/Room"}, CORE],
        "id": "urn:ngsi-ld:Room:ld", "type": "Room", "humidity": 55
    });
    let r = send(app.post_ld("/entities", &body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = app.entity("urn:ngsi-ld:Room:ld").await;
    assert_eq!(e["type"], "https://example.org/ns/Room");
    assert_eq!(e["https://example.org/ns/humidity"]["value"], 55);
    assert!(e.get("@context").is_none());

    // application/ld+json without @context, or with a Link header too, is refused.
    let r = send(app.post_ld(
        "/entities",
        &json!({"id": "urn:ngsi-ld:Room:x", "type": "Room"}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(
        app.post_ld("/entities", &body)
            .header("link", link("https://example.org/ctx.jsonld")),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    // An @context in an application/json body is refused.
    let r = send(app.post("/entities", &body)).await;
    assert_problem(&r, 400, "BadRequestData");
    // An inline context in a batch, item by item.
    let items = json!([
        {"@context": {"humidity": "https://example.org/ns/humidity"}, "id": "urn:ngsi-ld:Room:b1", "type": "Room", "humidity": 50},
    ]);
    let r = send(app.post_ld("/entityOperations/create", &items)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = app.entity("urn:ngsi-ld:Room:b1").await;
    assert_eq!(e["https://example.org/ns/humidity"]["value"], 50);
    // A Link header beside it refuses the whole batch, not each item (207).
    let items = json!([
        {"@context": {"humidity": "https://example.org/ns/humidity"}, "id": "urn:ngsi-ld:Room:b2", "type": "Room", "humidity": 51},
    ]);
    for op in ["create", "upsert", "update", "merge"] {
        let r = send(
            app.post_ld(&format!("/entityOperations/{op}"), &items)
                .header("link", link("https://example.org/ctx.jsonld")),
        )
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = send(app.get("/entities/urn:ngsi-ld:Room:b2")).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_framing_follows_accept() {
    let (_ctx, url, app) = with_sensor_in_user_context().await;
    let id = "/entities/urn:ngsi-ld:Sensor:ctx";

    // application/ld+json: @context in the body, no Link.
    let r = send(
        app.get(id)
            .header("accept", JSON_LD)
            .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), JSON_LD);
    assert!(r.header("link").is_none(), "{:?}", r.headers);
    let context = &r.body["@context"];
    let names: Vec<&str> = match context {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        other => panic!("@context {other}"),
    };
    assert!(names.contains(&url.as_str()), "@context {context}");
    // The request's @context comes back as it was given, not merged with the core.
    assert_eq!(*context, json!(url));
    assert_eq!(r.body["temperature"]["value"], 21.5);
    // With the core context only.
    let r = send(app.get(id).header("accept", JSON_LD)).await;
    assert_eq!(r.body["@context"], json!(CORE));
    // In a query, each entity carries it.
    let r = send(
        app.get("/entities")
            .query(&[("type", "Sensor")])
            .header("accept", JSON_LD)
            .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.content_type(), JSON_LD);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert!(r.body[0].get("@context").is_some(), "{}", r.text);

    // application/json: a Link, no @context.
    let r = send(
        app.get(id)
            .header("accept", JSON)
            .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.content_type(), JSON);
    assert!(r.body.get("@context").is_none(), "{}", r.text);
    let l = r.header("link").expect("Link");
    assert!(
        l.contains(&format!("<{url}>")) && l.contains(CONTEXT_REL),
        "{l}"
    );
    // Accept preferences with q weights.
    let r = send(
        app.get(id)
            .header("accept", "application/json;q=0.5, application/ld+json"),
    )
    .await;
    assert_eq!(r.content_type(), JSON_LD);
    let r = send(app.get(id).header("accept", "*/*")).await;
    assert_eq!(r.content_type(), JSON);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_context_is_503_quickly() {
    let app = App::start().await;
    for (method, path) in [
        ("POST", "/entities"),
        ("GET", "/entities/urn:ngsi-ld:Sensor:ctx"),
        ("GET", "/entities"),
    ] {
        let rb = match method {
            "POST" => app.post(path, &sensor()),
            _ => app.get(path).query(&[("type", "Sensor")]),
        };
        let rb = rb.header("link", link("http://127.0.0.1:1/ctx.jsonld"));
        assert_context_unavailable(rb, Duration::from_secs(3), &format!("{method} {path}")).await;
    }
    // A context server that answers 404, or a document that is not a context.
    let ctx = ContextServer::start(json!({"not": "a context"})).await;
    let r = send(
        app.post("/entities", &sensor())
            .header("link", link(&ctx.url("/missing.jsonld"))),
    )
    .await;
    assert_problem(&r, 503, "LdContextNotAvailable");
    let r = send(
        app.post("/entities", &sensor())
            .header("link", link(&ctx.url("/ctx.jsonld"))),
    )
    .await;
    app.assert_refused(&r, 503, "LdContextNotAvailable").await;
    let r = send(app.get("/entities/urn:ngsi-ld:Sensor:ctx")).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_context_server_times_out() {
    let ctx = ContextServer::start(user_context()).await;
    let config = HubConfig {
        context_fetch_timeout: Duration::from_secs(1),
        ..HubConfig::default()
    };
    let app = App::start_with(config).await;
    let rb = app
        .post("/entities", &sensor())
        .header("link", link(&ctx.url("/hang")));
    assert_context_unavailable(rb, Duration::from_secs(5), "a context that never comes").await;
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_is_fetched_once_and_survives_a_restart_without_its_server() {
    let ctx = ContextServer::start(user_context()).await;
    let url = ctx.url("/ctx.jsonld");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dothi.db");
    let app = App::start_at(&db, HubConfig::default()).await;
    let r = send(app.post("/entities", &sensor()).header("link", link(&url))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    for _ in 0..5 {
        let r = app
            .get_in_context("/entities/urn:ngsi-ld:Sensor:ctx", &url)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = send(
            app.get("/entities")
                .query(&[("type", "Sensor")])
                .header("link", link(&url)),
        )
        .await;
        assert_eq!(r.body.as_array().unwrap().len(), 1);
    }
    assert_eq!(ctx.hits(), 1, "fetched once for repeated requests");
    app.stop().await;
    ctx.stop().await;
    // The context server is gone: the hub must use its stored copy.
    let app = App::start_at(&db, HubConfig::default()).await;
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Sensor:ctx", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Sensor");
    assert_eq!(r.body["temperature"]["value"], 21.5);
    let mut other = sensor();
    other["id"] = json!("urn:ngsi-ld:Sensor:after-restart");
    let r = send(app.post("/entities", &other).header("link", link(&url))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        app.entity("urn:ngsi-ld:Sensor:after-restart").await["type"],
        format!("{NS}Sensor")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vocab_core_urls_and_malformed_links() {
    let app = App::start().await;
    // @vocab: every undefined term goes to it.
    let body = json!({
        "@context": {"@vocab": "https://example.org/vocab/"},
        "id": "urn:ngsi-ld:Thing:v", "type": "Thing", "colour": "red"
    });
    let r = send(app.post_ld("/entities", &body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = app.entity("urn:ngsi-ld:Thing:v").await;
    assert_eq!(e["type"], "https://example.org/vocab/Thing");
    assert_eq!(e["https://example.org/vocab/colour"]["value"], "red");

    // Any published core context URL is the built-in one: no fetch.
    for version in ["1.3", "1.8"] {
        let url = format!("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld");
        let start = Instant::now();
        let r = app
            .get_in_context("/entities/urn:ngsi-ld:Thing:v", &url)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(r.body["type"], "https://example.org/vocab/Thing");
    }

    // Malformed or repeated Link headers.
    for value in ["no-angle-brackets", "<http://127.0.0.1:1/a.jsonld"] {
        let r = send(
            app.get("/entities")
                .query(&[("type", "T")])
                .header("link", value),
        )
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = send(
        app.get("/entities")
            .query(&[("type", "T")])
            .header("link", link("http://127.0.0.1:1/a.jsonld"))
            .header("link", link("http://127.0.0.1:1/b.jsonld")),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    // A Link with another rel is not a context.
    let r = send(
        app.get("/entities")
            .query(&[("type", "Thing")])
            .header("link", "<http://127.0.0.1:1/a.jsonld>; rel=\"alternate\""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Inline contexts that are not contexts.
    for ctx in [
        json!(42),
        json!({"term": 1}),
        json!("ftp://example.org/ctx"),
    ] {
        let r = send(app.post_ld(
            "/entities",
            &json!({"@context": ctx, "id": "urn:ngsi-ld:Thing:w", "type": "Thing"}),
        ))
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_context_name_the_context_redefines_is_answered_as_a_compact_iri() {
    let ctx = ContextServer::start(user_context()).await;
    let url = ctx.url("/ctx.jsonld");
    let app = App::start().await;
    // Created without a context: `temperature` is the default-context name.
    app.create(json!({"id": "urn:ngsi-ld:Sensor:dc", "type": "Sensor",
                      "temperature": 20.5, "plain": 1}))
        .await;
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Sensor:dc", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The context's `temperature` is ex:temperature: the default-context one is
    // written with the core's `ngsi-ld:` prefix, which expands back to it.
    assert_eq!(
        r.body["ngsi-ld:default-context/temperature"]["value"], 20.5,
        "{}",
        r.body
    );
    assert!(r.body.get("temperature").is_none(), "{}", r.body);
    assert_eq!(r.body["plain"]["value"], 1);
    assert_eq!(r.body["type"], "ngsi-ld:default-context/Sensor");
    // The compact IRI names the attribute in a request as well.
    let r = send(
        app.get("/entities")
            .query(&[
                ("type", "ngsi-ld:default-context/Sensor"),
                ("attrs", "ngsi-ld:default-context/temperature"),
            ])
            .header("link", link(&url)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(id_list(&r.body), vec!["urn:ngsi-ld:Sensor:dc".to_string()]);
}
