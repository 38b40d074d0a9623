//! The harness: a real hub with the scorecard's routes and its recomputation task,
//! over a temporary SQLite file (or, with `DOTHI_TEST_STORE=postgres`, a PostgreSQL
//! database of its own), served on 127.0.0.1:0, holding the Quảng Trị data set; and
//! API keys of each role.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hub::auth::Role;
use reqwest::{Client, RequestBuilder};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long an effect may take to appear.
pub const WAIT: Duration = Duration::from_secs(60);

fn on_postgres() -> bool {
    std::env::var("DOTHI_TEST_STORE").is_ok_and(|v| v == "postgres")
}

fn postgres_server() -> String {
    std::env::var("DOTHI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn postgres(sql: String) {
    let server = postgres_server();
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("DOTHI_TEST_STORE=postgres needs {server}: {e}"));
    tokio::spawn(connection);
    client.batch_execute(&sql).await.expect("the statement");
}

/// A running hub with the scorecard.
pub struct App {
    pub base: String,
    pub hub: Arc<hub::Hub>,
    pub scorecard: Arc<scorecard::Scorecard>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    recompute: JoinHandle<()>,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

/// The tests' API keys, one per role (two admins, for the four-eyes rule).
pub const ADMIN: &str = "scorecard-test-admin-key-0123456789abcdefghij";
pub const ADMIN2: &str = "scorecard-test-admin2-key-0123456789abcdefghi";
pub const OPERATOR: &str = "scorecard-test-operator-key-0123456789abcdefg";
pub const VIEWER: &str = "scorecard-test-viewer-key-0123456789abcdefghi";
/// A viewer of another tenant only.
pub const OUTSIDER: &str = "scorecard-test-outsider-key-0123456789abcdefg";

impl App {
    /// A hub over a fresh store, with the Quảng Trị data set and the plan seeded.
    pub async fn start() -> App {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, database) = if on_postgres() {
            let name = format!(
                "dothi_test_scorecard_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            postgres(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            postgres(format!("CREATE DATABASE {name}")).await;
            let server = postgres_server();
            let base = server.split('?').next().unwrap_or_default();
            let (prefix, _) = base.rsplit_once('/').expect("a database URL");
            (format!("{prefix}/{name}"), Some(name))
        } else {
            (
                format!("sqlite://{}", dir.path().join("dothi.db").display()),
                None,
            )
        };
        let store = store::open(&url).await.expect("open the store");
        let state = hub::state(store, &hub::HubConfig::default()).expect("the hub's state");
        for (key, name, role, tenants) in [
            (ADMIN, "test-admin", Role::Admin, vec!["*"]),
            (ADMIN2, "test-admin-2", Role::Admin, vec!["*"]),
            (OPERATOR, "test-operator", Role::Operator, vec!["default"]),
            (VIEWER, "test-viewer", Role::Viewer, vec!["default"]),
            (OUTSIDER, "test-outsider", Role::Viewer, vec!["elsewhere"]),
        ] {
            state
                .identity
                .ensure_key(
                    key,
                    hub::auth::identity::NewKey {
                        name: name.into(),
                        role,
                        tenants: tenants.into_iter().map(String::from).collect(),
                        types: None,
                        expires: None,
                    },
                    "system:test",
                )
                .await
                .expect("a test key");
        }
        let hub = state.hub.clone();
        city::load(&hub).await.expect("the Quảng Trị data set");
        let scorecard = Arc::new(scorecard::Scorecard::new(hub.clone()));
        scorecard.seed("").await.expect("the plan");
        // Scheduled recomputation rarely; changes trigger it.
        let recompute = scorecard.clone().spawn(Duration::from_secs(3_600));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(hub::serve_with(
            listener,
            state,
            vec![scorecard::component(scorecard.clone())],
            async move {
                let _ = rx.await;
            },
        ));
        App {
            base: format!("http://{addr}"),
            hub,
            scorecard,
            shutdown: Some(tx),
            task: Some(task),
            recompute,
            database,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `key` (None: anonymous).
    pub fn req(&self, method: reqwest::Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let r = Client::new()
            .request(method, self.url(path))
            .timeout(Duration::from_secs(30));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        send(self.req(reqwest::Method::GET, path, key)).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        send(self.req(reqwest::Method::POST, path, key).json(body)).await
    }

    /// The plan's KPI of this slug, as the scorecard API shows it.
    pub async fn kpi(&self, slug: &str) -> Value {
        let (status, v) = self
            .get(&format!("/scorecard/v1/kpis/{slug}"), Some(ADMIN))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.recompute.abort();
        if let Some(name) = self.database.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(postgres(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            })
            .join();
        }
    }
}

pub async fn send(r: RequestBuilder) -> (u16, Value) {
    let response = r.send().await.expect("a response");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
