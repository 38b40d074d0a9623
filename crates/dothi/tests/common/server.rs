//! The whole server in this test's process, composed as `dothi serve` composes it:
//! the hub's routes and `/auth/v1`, the IoT agent's, the web app's, citizen reports',
//! the open data portal's, alerts' and the plan scorecard's, behind one front door
//! (without their periodic work: the tests call it when they need it). Over a fresh SQLite file, or with `DOTHI_TEST_STORE=postgres` over a
//! fresh PostgreSQL database (`DOTHI_TEST_DATABASE_URL` names the server), dropped
//! with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hub::auth::Role;
use hub::auth::identity::NewKey;

pub use super::ADMIN_KEY;

/// Whether the tests run on PostgreSQL (`DOTHI_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("DOTHI_TEST_STORE").is_ok_and(|v| v == "postgres")
}

fn postgres_server() -> String {
    std::env::var("DOTHI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn postgres_admin() -> tokio_postgres::Client {
    let server = postgres_server();
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("DOTHI_TEST_STORE=postgres: cannot connect to {server}: {e}"));
    tokio::spawn(connection);
    client
}

/// A PostgreSQL database of one server, dropped with it.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                postgres_admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
    }
}

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub state: hub::AppState,
    /// A client that sends the admin key.
    pub admin: reqwest::Client,
    /// Every route the server declares: the hub's and `/auth/v1`'s, then each
    /// component's, as the front door was given them.
    pub rules: Vec<hub::RouteRule>,
    pub reports: Arc<reports::Reports>,
    pub alerts: Arc<alerts::Alerts>,
    pub scorecard: Arc<scorecard::Scorecard>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _database: Option<Database>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start() -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (url, database) = if on_postgres() {
            let name = format!(
                "dothi_test_server_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let admin = postgres_admin().await;
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                admin
                    .batch_execute(&sql)
                    .await
                    .expect("create the test database");
            }
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
        let mut config = hub::HubConfig::default();
        config.http.openapi_extra.push(web::OPENAPI);
        config.http.openapi_extra.push(alerts::OPENAPI);
        config.outbound = Arc::new(hub::outbound::OutboundPolicy::strict().with_loopback());
        let state = hub::state(store, &config).expect("the hub's state");
        ensure_key(&state, ADMIN_KEY, "test-admin", Role::Admin, &["*"], None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let agent = Arc::new(iot::Agent::for_hub(&state));
        let reports = reports::start(
            &state,
            reports::ReportsConfig {
                base_url: base.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("citizen reports");
        let alerts = Arc::new(alerts::Alerts::new(state.hub.clone()));
        let scorecard = Arc::new(scorecard::Scorecard::new(state.hub.clone()));
        // The same services, in the same order, as `dothi serve`.
        let components = vec![
            iot::component(agent),
            web::component(state.hub.clone(), web::WebConfig::default()),
            reports::component(reports.clone()),
            opendata::component(state.hub.clone(), opendata::OpendataConfig::default()),
            alerts::component(alerts.clone()),
            scorecard::component(scorecard.clone()),
        ];
        let rules = hub::http::ROUTES
            .iter()
            .chain(hub::http::auth_api::ROUTES)
            .copied()
            .chain(components.iter().flat_map(|c| c.rules.iter().copied()))
            .collect();
        let task = tokio::spawn(hub::serve_with(
            listener,
            state.clone(),
            components,
            std::future::pending::<()>(),
        ));
        Server {
            base,
            state,
            admin: client(Some(ADMIN_KEY)),
            rules,
            reports,
            alerts,
            scorecard,
            task,
            _dir: dir,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Makes `secret` a key of the server with this role and these grants; its actor as
/// the audit log names it (`key:…`).
pub async fn ensure_key(
    state: &hub::AppState,
    secret: &str,
    name: &str,
    role: Role,
    tenants: &[&str],
    types: Option<&[&str]>,
) -> String {
    let view = state
        .identity
        .ensure_key(
            secret,
            NewKey {
                name: name.into(),
                role,
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
                types: types.map(|t| t.iter().map(|t| t.to_string()).collect()),
                expires: None,
            },
            "system:test",
        )
        .await
        .expect("a test key");
    format!("key:{}", view.id)
}

/// A client sending `key` as its bearer credential (none: anonymous).
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
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client")
}
