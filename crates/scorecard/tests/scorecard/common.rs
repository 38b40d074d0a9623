//! The harness: a real hub with the scorecard's routes and its recomputation task,
//! over a temporary SQLite file (or, with `DOTHI_TEST_STORE=postgres`, a PostgreSQL
//! database of its own), served on 127.0.0.1:0 (`hub::test_support`), holding the
//! Quảng Trị data set; and API keys of each role.

use std::sync::Arc;
use std::time::Duration;

use hub::auth::Role;
use hub::test_support::{TestHub, TestStore, ensure_key};
use reqwest::{Client, RequestBuilder};
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long an effect may take to appear.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running hub with the scorecard.
pub struct App {
    pub base: String,
    pub hub: Arc<hub::Hub>,
    pub scorecard: Arc<scorecard::Scorecard>,
    recompute: JoinHandle<()>,
    server: TestHub,
}

/// The tests' API keys, one per role (two admins, for the four-eyes rule).
pub const ADMIN: &str = "scorecard-test-admin-key-0123456789abcdefghij";
pub const ADMIN2: &str = "scorecard-test-admin2-key-0123456789abcdefghi";
pub const OPERATOR: &str = "scorecard-test-operator-key-0123456789abcdefg";
/// An operator of the tenant who acts for no owner agency (`OPERATOR` acts for all).
pub const OTHER_OPERATOR: &str = "scorecard-test-other-operator-key-0123456789";
pub const VIEWER: &str = "scorecard-test-viewer-key-0123456789abcdefghi";
/// A viewer of another tenant only.
pub const OUTSIDER: &str = "scorecard-test-outsider-key-0123456789abcdefg";

impl App {
    /// A hub over a fresh store, with the Quảng Trị data set and the plan seeded.
    pub async fn start() -> App {
        let mut server = TestHub::new(
            TestStore::fresh("scorecard").await,
            &hub::HubConfig::default(),
            ADMIN,
        )
        .await;
        let state = server.state.clone();
        let mut operator = String::new();
        for (key, name, role, tenants) in [
            (ADMIN2, "test-admin-2", Role::Admin, vec!["*"]),
            (OPERATOR, "test-operator", Role::Operator, vec!["default"]),
            (
                OTHER_OPERATOR,
                "test-other-operator",
                Role::Operator,
                vec!["default"],
            ),
            (VIEWER, "test-viewer", Role::Viewer, vec!["default"]),
            (OUTSIDER, "test-outsider", Role::Viewer, vec!["elsewhere"]),
        ] {
            let actor = ensure_key(&state, key, name, role, &tenants, None).await;
            if key == OPERATOR {
                operator = actor;
            }
        }
        let hub = state.hub.clone();
        city::load(&hub).await.expect("the Quảng Trị data set");
        let scorecard =
            Arc::new(scorecard::Scorecard::new(hub.clone()).with_audit(state.identity.clone()));
        scorecard.seed("").await.expect("the plan");
        // Scheduled recomputation rarely; changes trigger it.
        let recompute = scorecard.clone().spawn(Duration::from_secs(3_600));
        server.serve(vec![scorecard::component(scorecard.clone())]);
        let app = App {
            base: server.base.clone(),
            hub,
            scorecard,
            recompute,
            server,
        };
        // OPERATOR acts for every agency that owns a task group or a KPI.
        let agencies: std::collections::BTreeSet<&str> = scorecard::plan::TASK_GROUPS
            .iter()
            .map(|t| t.owner)
            .chain(scorecard::plan::KPIS.iter().map(|k| k.owner))
            .collect();
        let (status, v) = app
            .put(
                &format!("/scorecard/v1/members/{operator}"),
                Some(ADMIN),
                &serde_json::json!({ "agencies": agencies }),
            )
            .await;
        assert_eq!(status, 204, "{v}");
        app
    }

    /// The server's state, to start the other services over the same hub.
    pub fn state(&self) -> &hub::AppState {
        &self.server.state
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

    /// GET `path` with `key`: the response itself, its body not yet read.
    pub async fn get_response(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, key)
            .send()
            .await
            .expect("an answer")
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        send(self.req(reqwest::Method::GET, path, key)).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        send(self.req(reqwest::Method::POST, path, key).json(body)).await
    }

    /// POST a submission of the KPI `slug` with `key`.
    pub async fn submit(&self, slug: &str, key: &str, body: &Value) -> (u16, Value) {
        self.post(
            &format!("/scorecard/v1/kpis/{slug}/submissions"),
            Some(key),
            body,
        )
        .await
    }

    pub async fn put(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        send(self.req(reqwest::Method::PUT, path, key).json(body)).await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        send(self.req(reqwest::Method::PATCH, path, key).json(body)).await
    }

    /// PATCHes `attrs` of the entity `id` through the NGSI-LD API, as the admin: the
    /// status.
    pub async fn patch_attrs(&self, id: &str, attrs: &Value) -> u16 {
        self.req(
            reqwest::Method::PATCH,
            &format!("/ngsi-ld/v1/entities/{id}/attrs"),
            Some(ADMIN),
        )
        .json(attrs)
        .send()
        .await
        .expect("patch")
        .status()
        .as_u16()
    }

    /// The temporal entity of the plan's KPI `slug` with its `kpiValue` history
    /// (`options`: more of the query, from `&`), read as the admin.
    pub async fn kpi_history(&self, slug: &str, options: &str) -> Value {
        let path = format!(
            "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:KeyPerformanceIndicator:plan-{slug}?attrs=kpiValue{options}"
        );
        let (status, history) = self.get(&path, Some(ADMIN)).await;
        assert_eq!(status, 200, "{history}");
        history
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
        let _ = self.server.stop(Duration::from_secs(60)).await;
    }
}

impl Drop for App {
    /// The recomputation stops, then the server, then its store goes.
    fn drop(&mut self) {
        self.recompute.abort();
    }
}

/// The count the NGSI-LD API gives for an evidence link, asked by a viewer.
pub async fn api_count(app: &App, href: &str) -> u64 {
    let response = app
        .get_response(&format!("{href}&count=true&limit=0"), Some(VIEWER))
        .await;
    assert_eq!(response.status(), 200, "{href}");
    response
        .headers()
        .get("NGSILD-Results-Count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a count")
}

/// The KPI of `slug` once `done` holds of it (within [`WAIT`]).
pub async fn wait_until(app: &App, slug: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let kpi = app.kpi(slug).await;
        if done(&kpi) {
            return kpi;
        }
        assert!(
            started.elapsed() < WAIT,
            "{slug} did not change as expected within {WAIT:?}: {kpi}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn send(r: RequestBuilder) -> (u16, Value) {
    let response = r.send().await.expect("a response");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
