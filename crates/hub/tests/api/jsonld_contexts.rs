//! @context management (clause 5.13): hosted contexts added, listed, served, used
//! by URL with no network, deleted, kept across a restart, and the errors; fetched
//! contexts listed, served, reloaded and deleted as `Cached`; the contexts created
//! for subscriptions (`ImplicitlyCreated`); the core context; whose URLs are the
//! hub's own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hub::HubConfig;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "https://example.org/hosted/";

fn document() -> Value {
    json!({"@context": {
        "ex": NS,
        "Pump": "ex:Pump",
        "flow": "ex:flow"
    }})
}

/// Adds `doc` and returns the Location (a path on the hub).
async fn add(app: &App, doc: &Value) -> String {
    let r = send(app.post("/jsonldContexts", doc)).await;
    created_location(&r, "/jsonldContexts")
}

fn local_id(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_context_is_added_listed_served_and_deleted() {
    let app = App::start().await;
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));

    let location = add(&app, &document()).await;
    let id = local_id(&location);
    let url = format!("{}{location}", app.base);

    // Served as it was sent, as JSON.
    let r = app.get_ok(&format!("/jsonldContexts/{id}"), &[]).await;
    assert_eq!(r.content_type(), JSON);
    assert_eq!(r.body, document());
    let r = app
        .get_ok(&format!("/jsonldContexts/{id}"), &[("details", "false")])
        .await;
    assert_eq!(r.body, document());

    // Its details.
    let r = app
        .get_ok(&format!("/jsonldContexts/{id}"), &[("details", "true")])
        .await;
    assert_eq!(r.body["URL"], url.as_str());
    assert_eq!(r.body["localId"], id);
    assert_eq!(r.body["kind"], "Hosted");
    let created = r.body["createdAt"].as_str().expect("createdAt");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    // Listed as a URL, or with details; by kind.
    let second = add(&app, &json!({"@context": {"other": "urn:x:other"}})).await;
    let r = app.get_ok("/jsonldContexts", &[]).await;
    assert_eq!(
        r.body,
        json!([url, format!("{}{second}", app.base)]),
        "in the order added"
    );
    let r = app
        .get_ok(
            "/jsonldContexts",
            &[("details", "true"), ("kind", "Hosted")],
        )
        .await;
    let listed = r.body.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["localId"], id);
    assert_eq!(listed[0]["kind"], "Hosted");
    for kind in ["Cached", "ImplicitlyCreated"] {
        let r = app.get_ok("/jsonldContexts", &[("kind", kind)]).await;
        assert_eq!(r.body, json!([]), "{kind}");
    }

    // Deleted: gone from the listing, 404 after.
    let r = send(app.delete(&format!("/jsonldContexts/{id}"))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = send(app.get(&format!("/jsonldContexts/{id}"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.delete(&format!("/jsonldContexts/{id}"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = app.get_ok("/jsonldContexts", &[]).await;
    assert_eq!(r.body, json!([format!("{}{second}", app.base)]));
}

/// The hub reaches nothing outside (a strict outbound policy, not even loopback):
/// the hosted context is still resolved, from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_context_is_used_by_link_without_any_fetch() {
    let app = App::start_exact(HubConfig::default(), |_| Vec::new()).await;
    let location = add(&app, &document()).await;
    let url = format!("{}{location}", app.base);
    let pump = json!({"id": "urn:ngsi-ld:Pump:1", "type": "Pump",
                      "flow": {"type": "Property", "value": 12.5}});

    let r = send(app.post("/entities", &pump).header("link", link(&url))).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Stored under the expanded names.
    let e = app.entity("urn:ngsi-ld:Pump:1").await;
    assert_eq!(e["type"], format!("{NS}Pump"));
    assert_eq!(e[format!("{NS}flow").as_str()]["value"], 12.5, "{e}");

    // Read back in the short names with the same Link.
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:1", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Pump", "{}", r.text);
    assert_eq!(r.body["flow"]["value"], 12.5, "{}", r.text);

    // Named inside an application/ld+json body too, beside the core context.
    let mut body = json!({"id": "urn:ngsi-ld:Pump:2", "type": "Pump",
                          "flow": {"type": "Property", "value": 3}});
    body["@context"] = json!([url, CORE]);
    let r = send(app.post_ld("/entities", &body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = app.entity("urn:ngsi-ld:Pump:2").await;
    assert_eq!(e["type"], format!("{NS}Pump"));

    // Once deleted, the URL is no longer resolved (and not fetched: refused).
    app.delete_ok(&format!("/jsonldContexts/{}", local_id(&location)))
        .await;
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:1", &url)
        .await;
    assert_problem(&r, 503, "LdContextNotAvailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_contexts_outlive_a_restart() {
    let app = App::start().await;
    let location = add(&app, &document()).await;
    let id = local_id(&location).to_string();
    let dir = app.stop().await.expect("the app's directory");
    let app = App::start_at(&dir.path().join("dothi.db"), HubConfig::default()).await;
    let r = app.get_ok(&format!("/jsonldContexts/{id}"), &[]).await;
    assert_eq!(r.body, document());
    let url = format!("{}{location}", app.base);
    let pump = json!({"id": "urn:ngsi-ld:Pump:r", "type": "Pump"});
    let r = send(app.post("/entities", &pump).header("link", link(&url))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        app.entity("urn:ngsi-ld:Pump:r").await["type"],
        format!("{NS}Pump")
    );
    drop(app);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused() {
    let app = App::start().await;
    // Not JSON; no "@context"; an @context of the wrong type.
    let r = send(app.post_raw(
        "/jsonldContexts",
        JSON,
        "{\"A1\": \"urn:a\" \"A2\": \"urn:b\"}",
    ))
    .await;
    assert_problem(&r, 400, "InvalidRequest");
    let r = send(app.post("/jsonldContexts", &json!({"A1": "urn:a"}))).await;
    assert_problem(&r, 400, "InvalidRequest");
    let r = send(app.post("/jsonldContexts", &json!({"@context": 7}))).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post("/jsonldContexts", &json!({"@context": {"a": 7}}))).await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));

    // Parameters out of their domains.
    for (key, value) in [("details", "other"), ("kind", "other"), ("kind", "hosted")] {
        app.get_refused("/jsonldContexts", &[(key, value)]).await;
    }

    // Unknown ids; the core context; reload of a hosted context.
    let r = send(app.get("/jsonldContexts/1234567890")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.delete("/jsonldContexts/1234567890")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let core = url::form_urlencoded::byte_serialize(CORE.as_bytes()).collect::<String>();
    let r = send(app.delete(&format!("/jsonldContexts/{core}"))).await;
    assert_problem(&r, 400, "BadRequestData");
    let location = add(&app, &document()).await;
    let id = local_id(&location);
    for reload in ["true", "xxx"] {
        let r = send(
            app.delete(&format!("/jsonldContexts/{id}"))
                .query(&[("reload", reload)]),
        )
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.get_ok(&format!("/jsonldContexts/{id}"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_larger_than_the_bound_is_refused() {
    let config = HubConfig {
        context_max_bytes: 2_000,
        ..HubConfig::default()
    };
    let app = App::start_with(config).await;
    let big = json!({"@context": {"big": format!("urn:x:{}", "y".repeat(2_000))}});
    let r = send(app.post("/jsonldContexts", &big)).await;
    assert_problem(&r, 413, "PayloadTooLarge");
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
    add(&app, &document()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_writer_of_every_tenant() {
    let app = App::start().await;
    let anonymous = client_with_key(None);
    let r = send(with_json(
        anonymous.post(app.url("/jsonldContexts")),
        &document(),
    ))
    .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = send(anonymous.get(app.url("/jsonldContexts"))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_hosted_contexts_is_bounded() {
    use futures_util::StreamExt;
    let app = App::start().await;
    // An implicitly created context does not take a hosted one's room.
    let sub = inline_subscription("bound");
    assert_eq!(subscribe(&app, &sub).await.status, 201);
    let max = hub::hosted_contexts::MAX_STORED_CONTEXTS as usize;
    let statuses: Vec<u16> = futures_util::stream::iter(0..max)
        .map(|i| {
            let doc = json!({"@context": {"term": format!("urn:x:{i}")}});
            let rb = app.post("/jsonldContexts", &doc);
            async move { send(rb).await.status }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let r = send(app.post("/jsonldContexts", &document())).await;
    assert_problem(&r, 422, "OperationNotSupported");
    let listed = app
        .get_ok("/jsonldContexts", &[("kind", "Hosted")])
        .await
        .body;
    assert_eq!(listed.as_array().map(Vec::len), Some(max));
    only_one(&app, "ImplicitlyCreated").await;

    // Deleting one makes room for another.
    let first = listed[0].as_str().unwrap();
    app.delete_ok(&format!("/jsonldContexts/{}", local_id(first)))
        .await;
    add(&app, &document()).await;
}

fn encoded(url: &str) -> String {
    url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// The details of the one context of `kind` listed.
async fn only_one(app: &App, kind: &str) -> Value {
    let r = app
        .get_ok("/jsonldContexts", &[("details", "true"), ("kind", kind)])
        .await;
    let listed = r.body.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{kind}: {}", r.body);
    listed[0].clone()
}

fn pump(id: &str) -> Value {
    json!({"id": id, "type": "Pump", "flow": {"type": "Property", "value": 1}})
}

/// POST /entities of a pump, with the @context at `url` in a Link header.
async fn create_pump(app: &App, id: &str, url: &str) -> Resp {
    send(app.post("/entities", &pump(id)).header("link", link(url))).await
}

/// POST /subscriptions of `body`, which carries its @context (JSON-LD).
async fn subscribe(app: &App, body: &Value) -> Resp {
    send(app.post_ld("/subscriptions", body)).await
}

/// A hub holding the pump `id`, created with the @context ([`document`]) of a server
/// of its own: the hub, the server and the context's URL.
async fn with_pump_in_served_context(id: &str) -> (App, ContextServer, String) {
    let app = App::start().await;
    let server = ContextServer::start(document()).await;
    let url = server.url("/ctx.jsonld");
    let r = create_pump(&app, id, &url).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (app, server, url)
}

/// A subscription whose @context has an inline object, which gets an implicitly
/// created context; its notifications go nowhere.
fn inline_subscription(name: &str) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:Subscription:{name}"),
        "type": "Subscription",
        "entities": [{"type": "Pump"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
        "@context": [{"Pump": "https://example.org/hosted/Pump"}, CORE],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_context_is_listed_served_and_deleted_as_cached() {
    let (app, server, url) = with_pump_in_served_context("urn:ngsi-ld:Pump:c1").await;
    assert_eq!(server.hits(), 1);

    // Listed by URL, with every kind but Hosted and ImplicitlyCreated.
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([url]));
    let r = app.get_ok("/jsonldContexts", &[("kind", "Cached")]).await;
    assert_eq!(r.body, json!([url]));
    for kind in ["Hosted", "ImplicitlyCreated"] {
        let r = app.get_ok("/jsonldContexts", &[("kind", kind)]).await;
        assert_eq!(r.body, json!([]), "{kind}");
    }
    let d = only_one(&app, "Cached").await;
    assert_eq!(d["URL"], url.as_str());
    assert_eq!(d["kind"], "Cached");
    assert_eq!(d["numberOfHits"], 1, "the request that fetched it: {d}");
    assert!(d["lastUsage"].is_string(), "{d}");
    assert!(d["createdAt"].is_string(), "{d}");
    let local_id = d["localId"].as_str().unwrap().to_string();
    let by_id = format!("/jsonldContexts/{local_id}");

    // Served by its URL (percent-encoded) or its local id; a serve is a use, counted
    // after the answer.
    let r = app
        .get_ok(&format!("/jsonldContexts/{}", encoded(&url)), &[])
        .await;
    assert_eq!(r.content_type(), JSON);
    assert_eq!(r.body, document());
    let r = app.get_ok(&by_id, &[("details", "true")]).await;
    assert_eq!(r.body["numberOfHits"], 2, "{}", r.body);
    // Each request naming it counts, though its built context is reused.
    let r = create_pump(&app, "urn:ngsi-ld:Pump:c2", &url).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.get_ok(&by_id, &[("details", "true")]).await;
    assert_eq!(r.body["numberOfHits"], 4, "{}", r.body);
    assert_eq!(server.hits(), 1, "read from the cache");

    // Deleted: gone, and fetched again when next named.
    app.delete_ok(&format!("/jsonldContexts/{}", encoded(&url)))
        .await;
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
    let r = send(app.get(&by_id)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:c1", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Pump");
    assert_eq!(server.hits(), 2);
    let d = only_one(&app, "Cached").await;
    assert_ne!(d["localId"], local_id.as_str());
    assert_eq!(d["numberOfHits"], 1, "{d}");
}

/// A server of [`document`] at `/ctx.jsonld` that can be taken down: it then
/// answers 503, whatever connection the hub reuses.
struct Switchable {
    url: String,
    up: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Switchable {
    async fn start() -> Switchable {
        let up = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let (serving, counted) = (up.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/ctx.jsonld",
            axum::routing::get(move || {
                let (serving, counted) = (serving.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    if serving.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, document().to_string())
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ctx.jsonld", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Switchable {
            url,
            up,
            hits,
            task,
        }
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_context_is_reloaded_and_kept_when_its_server_is_gone() {
    let app = App::start().await;
    let server = Switchable::start().await;
    let url = server.url.clone();
    let r = create_pump(&app, "urn:ngsi-ld:Pump:r1", &url).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let before = only_one(&app, "Cached").await;

    // Fetched again: the same entry, its uses kept.
    let path = format!("/jsonldContexts/{}", encoded(&url));
    let r = send(app.delete(&path).query(&[("reload", "true")])).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    let after = only_one(&app, "Cached").await;
    assert_eq!(after["localId"], before["localId"]);
    assert_eq!(after["numberOfHits"], before["numberOfHits"]);

    // Its server gone, a reload fails and the cached document stays in use.
    server.up.store(false, Ordering::SeqCst);
    let r = send(app.delete(&path).query(&[("reload", "true")])).await;
    assert_problem(&r, 503, "LdContextNotAvailable");
    let r = app.get_ok(&path, &[("details", "true")]).await;
    assert_eq!(r.body["kind"], "Cached");
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:r1", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["flow"]["value"], 1, "{}", r.text);

    // Deleted, it cannot be had again.
    app.delete_ok(&path).await;
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:r1", &url)
        .await;
    assert_problem(&r, 503, "LdContextNotAvailable");
    // A reload of what is not cached is a bad request (the ETSI suite's 051_04).
    let r = send(app.delete(&path).query(&[("reload", "true")])).await;
    assert_problem(&r, 400, "BadRequestData");
}

/// A cached context outlives a restart in the store: deleting it by URL reaches
/// the store's copy too, though the node has not read it since it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_context_is_deleted_from_the_store_after_a_restart() {
    let (app, server, url) = with_pump_in_served_context("urn:ngsi-ld:Pump:s1").await;
    let dir = app.stop().await.expect("the app's directory");
    let app = App::start_at(&dir.path().join("dothi.db"), HubConfig::default()).await;
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
    app.delete_ok(&format!("/jsonldContexts/{}", encoded(&url)))
        .await;
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:s1", &url)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(server.hits(), 2, "fetched again, not read from the store");
    drop(app);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_with_several_contexts_gets_an_implicit_one() {
    let app = App::start().await;
    let server = ContextServer::start(document()).await;
    let url = server.url("/ctx.jsonld");
    let receiver = crate::subscriptions::Receiver::start().await;
    let context = json!([url, {"level": "https://example.org/hosted/level"}]);
    let sub = json!({
        "id": "urn:ngsi-ld:Subscription:implicit",
        "type": "Subscription",
        "entities": [{"type": "Pump"}],
        "notification": {"format": "keyValues",
                         "endpoint": {"uri": receiver.url("/ok/n"), "accept": JSON}},
        "@context": context,
    });
    let r = subscribe(&app, &sub).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // The subscription names it; it is listed and served with its kind.
    let r = app
        .get_ok("/subscriptions/urn:ngsi-ld:Subscription:implicit", &[])
        .await;
    let implicit = r.body["jsonldContext"]
        .as_str()
        .expect("jsonldContext")
        .to_string();
    assert!(
        implicit.starts_with(&format!("{}/ngsi-ld/v1/jsonldContexts/", app.base)),
        "{implicit}"
    );
    let d = only_one(&app, "ImplicitlyCreated").await;
    assert_eq!(d["URL"], implicit.as_str());
    assert_eq!(d["kind"], "ImplicitlyCreated");
    let id = d["localId"].as_str().unwrap().to_string();
    assert_eq!(
        implicit,
        format!("{}/ngsi-ld/v1/jsonldContexts/{id}", app.base)
    );
    let r = app.get_ok(&format!("/jsonldContexts/{id}"), &[]).await;
    assert_eq!(r.body, json!({"@context": context}));
    assert_eq!(
        app.get_ok("/jsonldContexts", &[("kind", "Hosted")])
            .await
            .body,
        json!([])
    );
    // Not fetched, so not reloaded.
    let r = send(
        app.delete(&format!("/jsonldContexts/{id}"))
            .query(&[("reload", "true")]),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");

    // Notifications name it in their Link and use its terms.
    let r = send(
        app.post(
            "/entities",
            &json!({"id": "urn:ngsi-ld:Pump:i1", "type": "Pump",
                    "level": {"type": "Property", "value": 3}}),
        )
        .header("link", link(&implicit)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = receiver
        .wait("/ok/n", 1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1, "one notification");
    let linked = got[0]
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(linked.contains(&implicit), "{linked}");
    assert_eq!(got[0].body["data"][0]["type"], "Pump", "{}", got[0].body);
    assert_eq!(got[0].body["data"][0]["level"], 3, "{}", got[0].body);

    // Deleting the subscription deletes it.
    app.delete_ok("/subscriptions/urn:ngsi-ld:Subscription:implicit")
        .await;
    let r = send(app.get(&format!("/jsonldContexts/{id}"))).await;
    assert_problem(&r, 404, "ResourceNotFound");

    // One URL needs none.
    let mut single = sub.clone();
    single["id"] = json!("urn:ngsi-ld:Subscription:single");
    single["@context"] = json!([url, CORE]);
    let r = subscribe(&app, &single).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .get_ok("/subscriptions/urn:ngsi-ld:Subscription:single", &[])
        .await;
    assert!(r.body.get("jsonldContext").is_none(), "{}", r.body);
    assert_eq!(
        app.get_ok("/jsonldContexts", &[("kind", "ImplicitlyCreated")])
            .await
            .body,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implicit_context_is_deleted_on_its_own() {
    let app = App::start().await;
    let sub = inline_subscription("own");
    let r = subscribe(&app, &sub).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = only_one(&app, "ImplicitlyCreated").await;
    let id = d["localId"].as_str().unwrap();
    app.delete_ok(&format!("/jsonldContexts/{id}")).await;
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
    // The subscription stays; deleting it later finds no context to delete.
    app.delete_ok("/subscriptions/urn:ngsi-ld:Subscription:own")
        .await;
}

/// An implicitly created context belongs to its subscription's tenant: listed,
/// served and deleted for that tenant's callers alone, and not counted against the
/// hosted contexts' bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implicit_context_is_seen_by_its_tenant_alone() {
    const TENANT: &str = "NGSILD-Tenant";
    let app = App::start().await;
    let sub = inline_subscription("east");
    let r = send(app.post_ld("/subscriptions", &sub).header(TENANT, "east")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let implicit = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .expect("an array")
            .iter()
            .map(|d| d["localId"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let list = |client: &reqwest::Client, tenant: &str| {
        client
            .get(app.url("/jsonldContexts"))
            .query(&[("details", "true"), ("kind", "ImplicitlyCreated")])
            .header(TENANT, tenant)
    };

    // The admin sees it under its tenant only.
    let r = send(list(&app.client, "east")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids = implicit(&r);
    assert_eq!(ids.len(), 1, "{}", r.body);
    let id = ids[0].clone();
    let r = send(app.client.get(app.url("/jsonldContexts"))).await;
    assert_eq!(r.body, json!([]), "the default tenant has none");

    // A caller of another tenant neither lists, reads nor deletes it.
    let (_, west) = crate::security::make_key(&app, "west-op", "operator", &["west"]).await;
    let west = client_with_key(Some(&west));
    let r = send(list(&west, "west")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!([]));
    let r = send(list(&west, "east")).await;
    assert!(
        r.status == 403 || (r.status == 200 && implicit(&r).is_empty()),
        "{} {}",
        r.status,
        r.text
    );
    let r = send(west.get(app.url(&format!("/jsonldContexts/{id}")))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(west.delete(app.url(&format!("/jsonldContexts/{id}")))).await;
    assert_problem(&r, 404, "ResourceNotFound");

    // Its own tenant's operator reads it and may delete it.
    let (_, east) = crate::security::make_key(&app, "east-op", "operator", &["east"]).await;
    let east = client_with_key(Some(&east));
    let r = send(list(&east, "east")).await;
    assert_eq!(implicit(&r), vec![id.clone()], "{}", r.text);
    let r = send(east.get(app.url(&format!("/jsonldContexts/{id}")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["@context"][0]["Pump"],
        "https://example.org/hosted/Pump"
    );
    let r = send(east.delete(app.url(&format!("/jsonldContexts/{id}")))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(list(&app.client, "east")).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_context_is_served_by_its_url() {
    let app = App::start().await;
    for url in [
        CORE,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
    ] {
        let path = format!("/jsonldContexts/{}", encoded(url));
        let r = app.get_ok(&path, &[]).await;
        assert_eq!(r.content_type(), JSON);
        assert_eq!(
            r.body["@context"]["Property"], "ngsi-ld:Property",
            "{}",
            r.text
        );
        let r = app.get_ok(&path, &[("details", "true")]).await;
        assert_eq!(r.body["URL"], CORE);
        assert_eq!(r.body["kind"], "Cached");
        assert!(r.body["createdAt"].is_string(), "{}", r.body);
        // Built in: a reload changes nothing; a deletion is refused.
        let r = send(app.delete(&path).query(&[("reload", "true")])).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = send(app.delete(&path)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    // Not listed: it is not managed.
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([]));
}

/// A URL of the form of a hosted context's, on another server, is fetched like any
/// other (here the port is closed): only the hub's own are read from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hubs_own_urls_are_read_from_the_store() {
    let app = App::start().await;
    let location = add(&app, &document()).await;
    let elsewhere = format!("http://127.0.0.1:9{location}");
    let r = create_pump(&app, "urn:ngsi-ld:Pump:o1", &elsewhere).await;
    assert_problem(&r, 503, "LdContextNotAvailable");
    let own = format!("{}{location}", app.base);
    let r = create_pump(&app, "urn:ngsi-ld:Pump:o1", &own).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // The origin is the one the request was sent to.
    let other_host = format!("http://hub.example{location}");
    let r = send(
        app.get("/entities/urn:ngsi-ld:Pump:o1")
            .header("host", "hub.example")
            .header("link", link(&other_host)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Pump", "{}", r.text);
    let r = send(
        app.get("/entities/urn:ngsi-ld:Pump:o1")
            .header("host", "hub.example")
            .header("link", link(&own)),
    )
    .await;
    assert_problem(&r, 503, "LdContextNotAvailable");
}

/// With a public URL configured, the URLs of held contexts are under it, and only
/// they are the hub's own, whatever the request's origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_public_url_makes_the_contexts_urls() {
    let public = "https://hub.example.gov.vn/city";
    let config = HubConfig {
        public_url: Some(format!("{public}/")),
        ..HubConfig::default()
    };
    // Nothing outside is reached: what resolves is read from the store.
    let app = App::start_exact(config, |_| Vec::new()).await;
    let location = add(&app, &document()).await;
    let id = local_id(&location);
    let url = format!("{public}{location}");
    assert_eq!(app.get_ok("/jsonldContexts", &[]).await.body, json!([url]));
    let r = app
        .get_ok(&format!("/jsonldContexts/{id}"), &[("details", "true")])
        .await;
    assert_eq!(r.body["URL"], url.as_str());

    let r = create_pump(&app, "urn:ngsi-ld:Pump:p1", &url).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let by_request = format!("{}{location}", app.base);
    let r = app
        .get_in_context("/entities/urn:ngsi-ld:Pump:p1", &by_request)
        .await;
    assert_problem(&r, 503, "LdContextNotAvailable");

    // A subscription's implicit context is under it too.
    let sub = json!({
        "id": "urn:ngsi-ld:Subscription:public",
        "type": "Subscription",
        "entities": [{"type": "Pump"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
        "@context": [url, {"level": "https://example.org/hosted/level"}],
    });
    let r = subscribe(&app, &sub).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = only_one(&app, "ImplicitlyCreated").await;
    assert!(
        d["URL"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{public}/ngsi-ld/v1/jsonldContexts/")),
        "{d}"
    );
}

/// Reading any kind needs the read right; deleting or reloading a cached context
/// needs the write right on every tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_contexts_need_the_same_rights() {
    let (app, server, url) = with_pump_in_served_context("urn:ngsi-ld:Pump:a1").await;
    let path = format!("/jsonldContexts/{}", encoded(&url));
    let anonymous = client_with_key(None);
    let r = send(anonymous.get(app.url(&path))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = send(
        anonymous
            .delete(app.url(&path))
            .query(&[("reload", "true")]),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = send(anonymous.delete(app.url(&path))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(server.hits(), 1);
    app.get_ok(&path, &[]).await;
}
