//! What the tests of dothi's crates share (feature `test-support`): a store of a test's
//! own (a SQLite file in a temporary directory, or with `DOTHI_TEST_STORE=postgres` a
//! PostgreSQL database of its own on the server `DOTHI_TEST_DATABASE_URL` names,
//! dropped with it), a hub over it served on 127.0.0.1:0 behind the front door with
//! an admin key, more keys, and HTTP clients. Test code: it panics on failure.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Role;
use crate::auth::identity::NewKey;
use crate::{AppState, Component, HubConfig};

/// Whether the tests run on PostgreSQL (`DOTHI_TEST_STORE=postgres`) rather than
/// SQLite.
pub fn on_postgres() -> bool {
    std::env::var("DOTHI_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The PostgreSQL server of the tests (`DOTHI_TEST_DATABASE_URL`, by default the
/// local one).
pub fn postgres_server() -> String {
    std::env::var("DOTHI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A connection to the tests' PostgreSQL server, to create and drop databases.
pub async fn postgres_admin() -> tokio_postgres::Client {
    let server = postgres_server();
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DOTHI_TEST_STORE=postgres needs a server: cannot connect to {server} ({e}); \
                 start PostgreSQL or set DOTHI_TEST_DATABASE_URL"
            )
        });
    tokio::spawn(connection);
    client
}

/// The URL of the database `name` on the tests' server.
fn database_url(name: &str) -> String {
    let server = postgres_server();
    let base = server.split('?').next().unwrap_or_default();
    let (prefix, _) = base.rsplit_once('/').expect("a database URL");
    format!("{prefix}/{name}")
}

/// Creates the database `name` on the tests' server, empty: dropped first if a
/// previous run left it there.
pub async fn recreate_database(name: &str) {
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
}

/// Drops a database of the tests' server, in a runtime of its own (the test's may be
/// shutting down); false if it could not be.
pub fn drop_database(name: &str) -> bool {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let dropped = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async { postgres_admin().await.batch_execute(&sql).await })
    })
    .join();
    matches!(dropped, Ok(Ok(())))
}

/// The PostgreSQL database standing for the store file `db` (`dothi_test_{prefix}_`
/// and a hash of the path): one per path, so that a hub restarted at the same path
/// finds the same data.
pub fn database_at(prefix: &str, db: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    db.hash(&mut h);
    format!("dothi_test_{prefix}_{:016x}", h.finish())
}

/// The URL of the store at `db`: the SQLite file, or on PostgreSQL the database of
/// that path ([`database_at`], created when missing).
pub async fn store_url_at(prefix: &str, db: &Path) -> String {
    if on_postgres() {
        postgres_url_at(prefix, db).await
    } else {
        format!("sqlite://{}", db.display())
    }
}

/// The PostgreSQL database of the store file `db`, created when missing, whichever
/// store the other tests use.
pub async fn postgres_url_at(prefix: &str, db: &Path) -> String {
    let name = database_at(prefix, db);
    let admin = postgres_admin().await;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("look up the test database")
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
    }
    database_url(&name)
}

/// The store of one test: a SQLite file in a temporary directory, or a fresh
/// PostgreSQL database, dropped with it.
pub struct TestStore {
    /// What `store::open` takes.
    pub url: String,
    dir: tempfile::TempDir,
    database: Option<String>,
}

impl TestStore {
    /// A fresh store, on PostgreSQL with `DOTHI_TEST_STORE=postgres` (the database
    /// `dothi_test_{prefix}_{process}_{n}`), else SQLite.
    pub async fn fresh(prefix: &str) -> TestStore {
        if on_postgres() {
            TestStore::postgres(prefix).await
        } else {
            TestStore::sqlite()
        }
    }

    /// A fresh SQLite store, whatever `DOTHI_TEST_STORE` says.
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("a temporary directory");
        TestStore {
            url: format!("sqlite://{}", dir.path().join("dothi.db").display()),
            dir,
            database: None,
        }
    }

    async fn postgres(prefix: &str) -> TestStore {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "dothi_test_{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        recreate_database(&name).await;
        TestStore {
            url: database_url(&name),
            dir: tempfile::tempdir().expect("a temporary directory"),
            database: Some(name),
        }
    }

    /// The test's temporary directory (the SQLite file is `dothi.db` in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file (on PostgreSQL, where it would be).
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("dothi.db")
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(name) = self.database.take()
            && !drop_database(&name)
        {
            eprintln!("test database {name} was not dropped");
        }
    }
}

/// Makes `secret` a key with this role and these grants (tenant names, `*` for all;
/// entity types, None for all); its actor as the audit log names it (`key:…`).
pub async fn ensure_key(
    state: &AppState,
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

/// A client builder sending `key` as its bearer credential (None: anonymous).
pub fn client_builder(key: Option<&str>) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().expect("a header value"),
        );
    }
    reqwest::Client::builder().default_headers(headers)
}

/// A client sending `key` (None: anonymous) with this timeout per request.
pub fn client(key: Option<&str>, timeout: Duration) -> reqwest::Client {
    client_builder(key)
        .timeout(timeout)
        .build()
        .expect("a client")
}

/// A hub over a [`TestStore`] with an admin key (of every tenant), listening on
/// 127.0.0.1:0. Made in two steps, so that services can be built over its state and
/// its address before it serves: [`TestHub::new`], then [`TestHub::serve`].
/// Dropping it stops the server, then drops the store.
pub struct TestHub {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub state: AppState,
    listener: Option<tokio::net::TcpListener>,
    served: Option<Served>,
    // Last: the database goes once the server is stopped.
    store: TestStore,
}

impl TestHub {
    /// The hub's state over `store`, `admin_key` an admin's key, the address taken.
    pub async fn new(store: TestStore, config: &HubConfig, admin_key: &str) -> TestHub {
        let opened = store::open(&store.url)
            .await
            .unwrap_or_else(|e| panic!("open the store {}: {e}", store.url));
        let state = crate::state(opened, config).expect("the hub's state");
        ensure_key(&state, admin_key, "test-admin", Role::Admin, &["*"], None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        TestHub {
            base,
            state,
            listener: Some(listener),
            served: None,
            store,
        }
    }

    /// Serves the hub's routes and these components' (once).
    pub fn serve(&mut self, components: Vec<Component>) {
        let listener = self.listener.take().expect("a hub served once");
        self.served = Some(Served::on(listener, self.state.clone(), components));
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The store the hub is over.
    pub fn store(&self) -> &TestStore {
        &self.store
    }

    /// Stops serving gracefully (open requests finish) and waits at most `within`;
    /// what the server returned, None if it was not serving or did not stop in time.
    pub async fn stop(&mut self, within: Duration) -> Option<std::io::Result<()>> {
        self.served.as_mut()?.stop(within).await
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(task) = self.served.as_ref().and_then(|s| s.task.as_ref()) {
            task.abort();
        }
    }
}

/// A hub's routes and components served on a listener of their own, until
/// [`Served::stop`] (or until it is dropped, open requests finishing).
pub struct Served {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Serves `state`'s routes and `components`' on 127.0.0.1, at a port of their own.
    pub async fn start(state: AppState, components: Vec<Component>) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Served::on(listener, state, components)
    }

    /// Serves `state`'s routes and `components`' on `listener`.
    pub fn on(
        listener: tokio::net::TcpListener,
        state: AppState,
        components: Vec<Component>,
    ) -> Served {
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::serve_with(listener, state, components, async move {
            let _ = rx.await;
        }));
        Served {
            base,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Asks the server to stop (open requests finish), without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops serving gracefully (open requests finish) and waits at most `within`;
    /// what the server returned, None if it was not serving or did not stop in time.
    pub async fn stop(&mut self, within: Duration) -> Option<std::io::Result<()>> {
        self.signal_stop();
        let task = self.task.take()?;
        match tokio::time::timeout(within, task).await {
            Ok(joined) => Some(joined.expect("the server task")),
            Err(_) => None,
        }
    }
}
