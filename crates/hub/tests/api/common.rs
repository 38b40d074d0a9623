//! The harness: a real hub over a real SQLite file (or, with
//! `DOTHI_TEST_STORE=postgres`, a real PostgreSQL database of its own), served on
//! 127.0.0.1:0 and spoken to over HTTP with reqwest; a tiny @context server; and
//! assertion helpers.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hub::HubConfig;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, RequestBuilder};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use hub::test_support::on_postgres;

/// The URL of the store at `db`: the SQLite file, or its PostgreSQL database
/// (created when missing; one per path, so that a restart at the same path finds the
/// same data). `DOTHI_TEST_STORE` is `sqlite` (the default) or `postgres`.
async fn store_url(db: &Path) -> String {
    hub::test_support::store_url_at("api", db).await
}

/// Drops the PostgreSQL database of a store file that is gone for good (the
/// SQLite file goes with its temporary directory).
fn drop_database(db: &Path) {
    if !on_postgres() {
        return;
    }
    let name = hub::test_support::database_at("api", db);
    if !hub::test_support::drop_database(&name) {
        eprintln!("test database {name} was not dropped");
    }
}

pub const CORE: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";
pub const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";
pub const JSON: &str = "application/json";
pub const JSON_LD: &str = "application/ld+json";
pub const GEO_JSON: &str = "application/geo+json";

/// A running hub.
pub struct App {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

impl Drop for App {
    /// The database of a hub over its own temporary directory goes with it.
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            drop_database(&dir.path().join("dothi.db"));
        }
    }
}

impl App {
    /// A hub with the default configuration over a fresh SQLite file.
    pub async fn start() -> App {
        App::start_with(HubConfig::default()).await
    }

    pub async fn start_with(config: HubConfig) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dothi.db");
        let mut app = App::start_at(&db, config).await;
        app.dir = Some(dir);
        app
    }

    /// A hub over the SQLite file at `db` (created if missing), or over the
    /// PostgreSQL database named after that path.
    pub async fn start_at(db: &Path, mut config: HubConfig) -> App {
        // The tests' @context servers and notification receivers are on loopback.
        if *config.outbound == hub::outbound::OutboundPolicy::strict() {
            config.outbound =
                std::sync::Arc::new(hub::outbound::OutboundPolicy::strict().with_loopback());
        }
        App::serve_at(db, config, |_| Vec::new()).await
    }

    /// A hub over a fresh store, exactly as configured (a strict outbound policy
    /// stays strict: not even loopback is reached), serving beside its own routes
    /// the components `components` makes from its state.
    pub async fn start_exact(
        config: HubConfig,
        components: impl FnOnce(&hub::AppState) -> Vec<hub::Component>,
    ) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dothi.db");
        let mut app = App::serve_at(&db, config, components).await;
        app.dir = Some(dir);
        app
    }

    async fn serve_at(
        db: &Path,
        config: HubConfig,
        components: impl FnOnce(&hub::AppState) -> Vec<hub::Component>,
    ) -> App {
        let url = store_url(db).await;
        let store = store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open the store {url}: {e}"));
        let state = hub::state(store, &config).expect("the hub's state");
        admit(&state, ADMIN_KEY).await;
        let components = components(&state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(hub::serve_with(listener, state, components, async move {
            let _ = rx.await;
        }));
        let client = client_with_key(Some(ADMIN_KEY));
        App {
            base: format!("http://{addr}"),
            client,
            shutdown: Some(tx),
            task: Some(task),
            dir: None,
        }
    }

    /// Stops the hub gracefully and waits for it; the temporary directory (if this
    /// app owns one) is handed back so that the file can be opened again.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        // Idle keep-alive connections would hold a graceful shutdown open.
        self.client = client_with_key(Some(ADMIN_KEY));
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(joined) => joined.expect("server task").expect("server result"),
                Err(_) => panic!("the hub did not stop within 10 s"),
            }
        }
        self.dir.take()
    }

    /// The URL of an API path (`/entities` → `http://…/ngsi-ld/v1/entities`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/ngsi-ld/v1{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// GETs `path` with the @context at `context_url`, named by a Link header.
    pub async fn get_in_context(&self, path: &str, context_url: &str) -> Resp {
        send(self.get(path).header("link", link(context_url))).await
    }

    /// GETs `path` with the `query` parameters.
    pub async fn get_with<Q: serde::Serialize + ?Sized>(&self, path: &str, query: &Q) -> Resp {
        send(self.get(path).query(query)).await
    }

    /// GETs `path` with the `query` parameters, asserting that they are refused as
    /// BadRequestData.
    pub async fn get_refused(&self, path: &str, query: &[(&str, &str)]) {
        let r = self.get_with(path, query).await;
        assert_problem(&r, 400, "BadRequestData");
    }

    /// GETs `path` with the `query` parameters, asserting that the answer is a 200.
    pub async fn get_ok(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        let r = self.get_with(path, query).await;
        assert_eq!(r.status, 200, "GET {path} {query:?}: {}", r.text);
        r
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// DELETEs `path`, asserting 204.
    pub async fn delete_ok(&self, path: &str) {
        let r = send(self.delete(path)).await;
        assert_eq!(r.status, 204, "DELETE {path}: {}", r.text);
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        with_json(self.client.post(self.url(path)), body)
    }

    /// POSTs `body` as it is, said to be `content_type`.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(body)
    }

    /// POSTs `body` as application/ld+json, its @context inside it.
    pub fn post_ld(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .header(CONTENT_TYPE, JSON_LD)
            .body(body.to_string())
    }

    pub fn patch(&self, path: &str, body: &Value) -> RequestBuilder {
        with_json(self.client.patch(self.url(path)), body)
    }

    pub fn put(&self, path: &str, body: &Value) -> RequestBuilder {
        with_json(self.client.put(self.url(path)), body)
    }

    /// POST /entities, asserting 201.
    pub async fn create(&self, entity: Value) {
        let r = send(self.post("/entities", &entity)).await;
        assert_eq!(r.status, 201, "creating {entity}: {}", r.text);
    }

    /// POST /entityOperations/create, asserting 201.
    pub async fn create_all(&self, entities: Vec<Value>) {
        let body = Value::Array(entities);
        let r = send(self.post("/entityOperations/create", &body)).await;
        assert_eq!(r.status, 201, "batch create: {}", r.text);
    }

    /// GET /entities/{id} (normalized), asserting 200.
    pub async fn entity(&self, id: &str) -> Value {
        self.entity_with(id, &[]).await
    }

    /// GET /entities/{id} with query parameters, asserting 200.
    pub async fn entity_with(&self, id: &str, query: &[(&str, &str)]) -> Value {
        let r = self.get_with(&format!("/entities/{id}"), query).await;
        assert_eq!(r.status, 200, "retrieving {id} {query:?}: {}", r.text);
        r.body
    }

    /// GET /entities with query parameters, asserting 200; the ids returned.
    pub async fn query_ids(&self, query: &[(&str, &str)]) -> BTreeSet<String> {
        let r = self.get_with("/entities", query).await;
        assert_eq!(r.status, 200, "query {query:?}: {}", r.text);
        ids(&r.body)
    }

    /// Asserts that `r` is the ProblemDetails `status` and `kind`, and that the hub still
    /// answers after it.
    pub async fn assert_refused(&self, r: &Resp, status: u16, kind: &str) {
        assert_problem(r, status, kind);
        self.assert_alive().await;
    }

    /// Asserts that the hub still answers: health, a query and a write.
    pub async fn assert_alive(&self) {
        let r = send(self.client.get(format!("{}/health", self.base))).await;
        assert_eq!(r.status, 200, "health: {}", r.text);
        assert_eq!(r.body["status"], "ok");
        let r = self.get_with("/entities", &[("type", "Nothing")]).await;
        assert_eq!(r.status, 200, "query after an error: {}", r.text);
        let id = format!("urn:ngsi-ld:Probe:{}", uuid_like());
        let r = send(self.post(
            "/entities",
            &serde_json::json!({"id": id, "type": "Probe", "n": 1}),
        ))
        .await;
        assert_eq!(r.status, 201, "write after an error: {}", r.text);
    }
}

/// The admin key of every test hub, which its client sends.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz";

/// Makes `key` an admin key of the hub.
pub async fn admit(state: &hub::AppState, key: &str) {
    hub::test_support::ensure_key(
        state,
        key,
        "test-admin",
        hub::auth::Role::Admin,
        &["*"],
        None,
    )
    .await;
}

/// A client that sends `key` as its bearer credential (none: anonymous).
pub fn client_with_key(key: Option<&str>) -> Client {
    hub::test_support::client(key, Duration::from_secs(20))
}

fn uuid_like() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Location of a 201 Created without a body, checked to be in `collection`
/// (`/entities`...).
#[track_caller]
pub fn created_location(r: &Resp, collection: &str) -> String {
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.text.is_empty(), "a 201 has no body: {}", r.text);
    let location = r.header("location").expect("a Location header").to_string();
    assert!(
        location.starts_with(&format!("/ngsi-ld/v1{collection}/")),
        "Location {location}"
    );
    location
}

/// Sends `rb`, which names an @context the hub cannot have, and asserts that it is
/// refused (503 LdContextNotAvailable) within `within`.
pub async fn assert_context_unavailable(rb: RequestBuilder, within: Duration, what: &str) {
    let start = std::time::Instant::now();
    let r = send(rb).await;
    assert_problem(&r, 503, "LdContextNotAvailable");
    assert!(
        start.elapsed() < within,
        "{what} took {:?}",
        start.elapsed()
    );
}

/// `rb` with `body` as its JSON.
pub fn with_json(rb: RequestBuilder, body: &Value) -> RequestBuilder {
    rb.header(CONTENT_TYPE, JSON).body(body.to_string())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (Null when empty or not JSON).
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header (Link may come several times).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(", <").map(str::to_string).collect::<Vec<_>>())
            .map(|v| {
                if v.starts_with('<') {
                    v
                } else {
                    format!("<{v}")
                }
            })
            .collect()
    }

    /// The target of the Link with `rel="{rel}"`, if any.
    pub fn link_rel(&self, rel: &str) -> Option<String> {
        self.header_all("link")
            .into_iter()
            .find(|l| l.contains(&format!("rel=\"{rel}\"")))
            .and_then(|l| {
                l.strip_prefix('<')
                    .and_then(|r| r.split_once('>'))
                    .map(|(url, _)| url.to_string())
            })
    }

    /// The media type of the body, without parameters.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

pub async fn send(rb: RequestBuilder) -> Resp {
    let response = rb.send().await.expect("the request was answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        body,
    }
}

/// Asserts an NGSI-LD ProblemDetails: status, type URI, title and detail.
#[track_caller]
pub fn assert_problem(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "status of {}", r.text);
    assert_eq!(
        r.content_type(),
        JSON,
        "a ProblemDetails is JSON: {:?}",
        r.headers
    );
    assert_eq!(
        r.body["type"],
        format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
        "type of {}",
        r.text
    );
    assert_eq!(r.body["status"], status, "status member of {}", r.text);
    assert!(
        r.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title of {}",
        r.text
    );
    assert!(r.body["detail"].is_string(), "detail of {}", r.text);
}

/// The ids of an array of entities.
#[track_caller]
pub fn ids(body: &Value) -> BTreeSet<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {body}"))
        .iter()
        .map(|e| {
            e["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id in {e}"))
                .to_string()
        })
        .collect()
}

/// The ids in order.
#[track_caller]
pub fn id_list(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {body}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A set of strings from string literals.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A set of `urn:ngsi-ld:{kind}:{name}` ids.
pub fn urns(kind: &str, names: &[&str]) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| format!("urn:ngsi-ld:{kind}:{n}"))
        .collect()
}

/// The strings of a JSON array, as a set.
#[track_caller]
pub fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of strings, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

/// A `Link` header value naming an @context.
pub fn link(url: &str) -> String {
    format!("<{url}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\"")
}

/// Serves `app` on `addr` (port 0 for any free one) in a task of its own: the
/// server's base URL, and the task.
pub async fn serve_in_background(addr: &str, app: axum::Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind a test server");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// A local HTTP server of @context documents that counts its hits.
///
/// `/ctx.jsonld` serves the document given; `/missing.jsonld` answers 404; `/hang`
/// accepts the request and never answers.
pub struct ContextServer {
    pub base: String,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ContextServer {
    pub async fn start(doc: Value) -> ContextServer {
        use axum::routing::get;
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let body = doc.to_string();
        let app = axum::Router::new()
            .route(
                "/ctx.jsonld",
                get(move || {
                    let counter = counter.clone();
                    let body = body.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        ([(CONTENT_TYPE, JSON_LD)], body)
                    }
                }),
            )
            .route(
                "/missing.jsonld",
                get(|| async { (axum::http::StatusCode::NOT_FOUND, "no such context") }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    "too late"
                }),
            );
        let (base, task) = serve_in_background("127.0.0.1:0", app).await;
        ContextServer { base, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops serving: the port is closed once this returns.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
