//! The harness: a real hub with the portal's routes, over a fresh SQLite file or, with
//! `DOTHI_TEST_STORE=postgres`, a fresh PostgreSQL database (`DOTHI_TEST_DATABASE_URL`
//! names the server), dropped with it (`hub::test_support`); the Quảng Trị data set
//! and the demo catalogue loaded; and the Python tools of the client tests.

use std::time::Duration;

use hub::auth::Role;
use hub::test_support::{TestHub, TestStore, ensure_key};

pub const ADMIN_KEY: &str = "opendata-test-admin-key-0123456789abcdefghijkl";
pub const VIEWER_KEY: &str = "opendata-test-viewer-key-0123456789abcdefghijk";

pub struct Server {
    pub base: String,
    pub admin: reqwest::Client,
    pub anonymous: reqwest::Client,
    _hub: TestHub,
}

/// The text under `key` of each member of the array `list`.
pub fn texts<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m[key].as_str().unwrap())
        .collect()
}

pub fn client(key: Option<&str>) -> reqwest::Client {
    hub::test_support::client(key, Duration::from_secs(120))
}

impl Server {
    /// A server with the Quảng Trị data set and the demo catalogue.
    pub async fn start() -> Server {
        let mut hub = TestHub::new(
            TestStore::fresh("opendata").await,
            &hub::HubConfig::default(),
            ADMIN_KEY,
        )
        .await;
        let state = hub.state.clone();
        ensure_key(
            &state,
            VIEWER_KEY,
            "test-viewer",
            Role::Viewer,
            &["*"],
            None,
        )
        .await;
        city::load(&state.hub)
            .await
            .expect("the Quảng Trị data set");
        let portal = opendata::Portal::new(state.hub.clone());
        opendata::load_demo(&portal)
            .await
            .expect("the demo catalogue");
        hub.serve(vec![opendata::component(
            state.hub.clone(),
            opendata::OpendataConfig::default(),
        )]);
        Server {
            base: hub.base.clone(),
            admin: client(Some(ADMIN_KEY)),
            anonymous: client(None),
            _hub: hub,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` anonymously: its status and body.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.anonymous.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
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
