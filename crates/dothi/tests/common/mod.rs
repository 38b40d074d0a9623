//! The real `dothi serve` process, started and stopped by the integration tests that
//! need one (restart, kill and several-node tests), and a notification receiver.

#![allow(dead_code, clippy::unwrap_used)]

pub mod server;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

/// The admin key of every server the tests start.
pub const ADMIN_KEY: &str = "dothi-test-admin-key-0123456789abcdefghijklmnop";

/// A client sending the tests' admin key.
pub fn client(timeout: Duration) -> reqwest::Client {
    hub::test_support::client(Some(ADMIN_KEY), timeout)
}

/// The JSON body of a GET of `url`.
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// A SQLite file `dothi.db` in a temporary directory, removed with the directory.
pub fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dothi.db");
    (dir, db)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dothi <args>` with the tests' admin key, quiet (warnings only, its output and input
/// closed): to be spawned.
pub fn quiet_dothi(args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dothi"));
    command
        .args(args)
        .env("DOTHI_ADMIN_KEY", ADMIN_KEY)
        .env("DOTHI_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Waits until `base`/health answers 200 (checked every 50 ms), panicking when
/// `patience` runs out; how long it took, or `child`'s exit status when it exits first.
pub async fn healthy_or_exited(
    child: &mut Child,
    client: &reqwest::Client,
    base: &str,
    patience: Duration,
) -> Result<Duration, std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status);
        }
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status() == 200
        {
            return Ok(started.elapsed());
        }
        assert!(
            started.elapsed() < patience,
            "dothi was not ready within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `dothi serve` in a process of its own, over one SQLite file or a PostgreSQL
/// database.
pub struct Dothi {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Dothi {
    /// Starts `dothi serve` on a free port over `db` and waits until /health is 200.
    pub async fn start(db: &Path) -> Dothi {
        Dothi::serve(&format!("sqlite://{}", db.display())).await
    }

    /// Starts `dothi serve` on a free port over the store `url` and waits until
    /// /health is 200.
    pub async fn serve(url: &str) -> Dothi {
        // Not a measure of start-up: under load (several test binaries and builds on
        // two cores) a start has taken longer than 20 s.
        let patience = Duration::from_secs(60);
        Dothi::launch(patience, Duration::from_secs(10), |port| {
            quiet_dothi([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--store",
                url,
                "--outbound-allow",
                "127.0.0.0/8",
            ])
        })
        .await
    }

    /// Spawns the command `dothi_on` builds for a free port and waits (up to
    /// `patience`) until its /health is 200; its client times out after
    /// `client_timeout`.
    pub async fn launch(
        patience: Duration,
        client_timeout: Duration,
        dothi_on: impl Fn(u16) -> Command,
    ) -> Dothi {
        // The port was free when picked, but another test's connection may take it
        // before dothi binds it; dothi then exits, and starts again on another.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let child = dothi_on(port).spawn().expect("start dothi");
            let mut d = Dothi {
                child,
                base: format!("http://127.0.0.1:{port}"),
                client: client(client_timeout),
            };
            match healthy_or_exited(&mut d.child, &d.client, &d.base, patience).await {
                Ok(_) => return d,
                Err(status) if attempt < ATTEMPTS => {
                    eprintln!("dothi on port {port} exited before it was ready ({status}); again");
                }
                Err(status) => panic!("dothi exited before it was ready: {status}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/ngsi-ld/v1{path}", self.base)
    }

    /// GET of an API path (`/entities`…) with the `query` parameters, asserting 200.
    pub async fn get_ok(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dothi did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Dothi {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A notification receiver on 127.0.0.1: answers 200 and records every body it is
/// sent.
pub struct Receiver {
    /// The port it answers on (the one asked for, or the one picked for port 0).
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts answering on `port` (0: any free port, then read `port`).
    pub async fn start(port: u16) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/notify", post(record))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            port,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(received): State<Arc<Mutex<Vec<Value>>>>, body: String) -> StatusCode {
    match serde_json::from_str(&body) {
        Ok(v) => {
            received.lock().unwrap().push(v);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
