//! The harness: a real hub with the portal's routes, over a fresh SQLite file or, with
//! `DOTHI_TEST_STORE=postgres`, a fresh PostgreSQL database (`DOTHI_TEST_DATABASE_URL`
//! names the server), dropped with it; the Quảng Trị data set and the demo catalogue
//! loaded; and the Python tools of the client tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hub::auth::Role;
use hub::auth::identity::NewKey;

pub const ADMIN_KEY: &str = "opendata-test-admin-key-0123456789abcdefghijkl";
pub const VIEWER_KEY: &str = "opendata-test-viewer-key-0123456789abcdefghijk";

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
        .unwrap_or_else(|e| panic!("DOTHI_TEST_STORE=postgres: cannot connect to {server}: {e}"));
    tokio::spawn(connection);
    client.batch_execute(&sql).await.expect("the test database");
}

/// A PostgreSQL database of one server, dropped with it.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0);
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(postgres(sql))
        })
        .join();
    }
}

pub struct Server {
    pub base: String,
    pub admin: reqwest::Client,
    pub anonymous: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _database: Option<Database>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn client(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().expect("a header value"),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("a client")
}

impl Server {
    /// A server with the Quảng Trị data set and the demo catalogue.
    pub async fn start() -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (url, database) = if on_postgres() {
            let name = format!(
                "dothi_test_opendata_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            postgres(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            postgres(format!("CREATE DATABASE {name}")).await;
            let server = postgres_server();
            let base = server.split('?').next().unwrap_or_default();
            let (prefix, _) = base.rsplit_once('/').expect("a database URL");
            (format!("{prefix}/{name}"), Some(Database(name)))
        } else {
            (
                format!("sqlite://{}", dir.path().join("dothi.db").display()),
                None,
            )
        };
        let store = store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open the store {url}: {e}"));
        let state = hub::state(store, &hub::HubConfig::default()).expect("the hub's state");
        for (key, name, role) in [
            (ADMIN_KEY, "test-admin", Role::Admin),
            (VIEWER_KEY, "test-viewer", Role::Viewer),
        ] {
            state
                .identity
                .ensure_key(
                    key,
                    NewKey {
                        name: name.into(),
                        role,
                        tenants: vec!["*".into()],
                        types: None,
                        expires: None,
                    },
                    "system:test",
                )
                .await
                .expect("a test key");
        }
        city::load(&state.hub)
            .await
            .expect("the Quảng Trị data set");
        let portal = opendata::Portal::new(state.hub.clone());
        opendata::load_demo(&portal)
            .await
            .expect("the demo catalogue");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let task = tokio::spawn(hub::serve_with(
            listener,
            state.clone(),
            vec![opendata::component(
                state.hub.clone(),
                opendata::OpendataConfig::default(),
            )],
            std::future::pending::<()>(),
        ));
        Server {
            base,
            admin: client(Some(ADMIN_KEY)),
            anonymous: client(None),
            task,
            _dir: dir,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A CKAN action by GET, anonymously: its status and body.
    pub async fn action(&self, name: &str, query: &str) -> (u16, serde_json::Value) {
        let r = self
            .anonymous
            .get(self.url(&format!("/api/3/action/{name}?{query}")))
            .send()
            .await
            .expect("a CKAN answer");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON answer"))
    }
}

/// The Python interpreter of the tests' virtual environment (ckanapi, pySHACL),
/// made by `scripts/python-tools.sh` when missing.
pub fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(make_python).clone()
}

fn make_python() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/python-tools.sh"))
        .output()
        .expect("run scripts/python-tools.sh");
    assert!(
        out.status.success(),
        "scripts/python-tools.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a Python script of tests/python with arguments; returns its standard output,
/// asserting it succeeded.
pub async fn run_python(script: &str, args: &[&str]) -> String {
    let python = python();
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::process::Command::new(python)
        .arg(&path)
        .args(&args)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
