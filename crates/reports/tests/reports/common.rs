//! The harness: a hub with the reports service over a fresh SQLite file, or with
//! `DOTHI_TEST_STORE=postgres` a fresh PostgreSQL database (dropped with it), served on
//! 127.0.0.1:0 behind the front door, with an admin key (`hub::test_support`); a clock
//! the test moves.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hub::auth::Role;
use hub::test_support::{TestHub, TestStore};
use reports::places::Places;
use reports::{Reports, ReportsConfig};

pub const ADMIN_KEY: &str = "reports-test-admin-key-0123456789abcdefghij";

/// The communes' boundaries, loaded once for every test of the binary.
pub fn places() -> Arc<Places> {
    static PLACES: OnceLock<Arc<Places>> = OnceLock::new();
    PLACES
        .get_or_init(|| Arc::new(Places::load().expect("the Quảng Trị data set")))
        .clone()
}

/// A clock the test sets.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn set(&self, t: &str) {
        *self.0.lock().expect("clock") = DateTime::parse_from_rfc3339(t)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc);
    }
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

pub struct App {
    pub base: String,
    pub state: hub::AppState,
    pub reports: Arc<Reports>,
    pub clock: TestClock,
    /// Sends the admin key as a bearer header.
    pub admin: reqwest::Client,
    /// Sends nothing.
    pub anonymous: reqwest::Client,
    _hub: TestHub,
}

impl App {
    /// A server whose clock reads the real time until set.
    pub async fn start() -> App {
        App::start_with(ReportsConfig::default()).await
    }

    /// A server with the demo categories loaded, ready for reports.
    pub async fn with_categories() -> App {
        let app = App::start().await;
        app.categories().await;
        app
    }

    pub async fn start_with(config: ReportsConfig) -> App {
        App::start_behind(config, hub::HubConfig::default()).await
    }

    /// A server whose front door (rate limits and the like) is configured too.
    pub async fn start_behind(config: ReportsConfig, hub_config: hub::HubConfig) -> App {
        let mut hub = TestHub::new(TestStore::fresh("reports").await, &hub_config, ADMIN_KEY).await;
        let state = hub.state.clone();
        let clock = TestClock(Arc::new(Mutex::new(Utc::now())));
        let c = clock.clone();
        let reports = Arc::new(
            Reports::new(state.hub.clone(), state.identity.clone(), places(), config)
                .with_clock(Arc::new(move || c.now())),
        );
        // As `reports::start` does: the service's queries are tested against the
        // index as it is in use.
        reports
            .leave_uncompared_out_of_the_index()
            .await
            .expect("leave the uncompared attributes out of the index");
        hub.serve(vec![reports::component(reports.clone())]);
        App {
            base: hub.base.clone(),
            state,
            reports,
            clock,
            admin: client(Some(ADMIN_KEY)),
            anonymous: client(None),
            _hub: hub,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Loads the demo categories (not the reports).
    pub async fn categories(&self) {
        self.reports
            .put_categories(&hub::Scope::system("test", ""), reports::demo::categories())
            .await
            .expect("the demo categories");
    }

    /// POST a form (pairs in order, repeated keys kept).
    pub async fn form(
        &self,
        client: &reqwest::Client,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        send(
            client
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// A report of `code` at Đông Hà, sent with the admin key (so never limited).
    pub async fn staff_report(&self, code: &str, description: &str) -> Answer {
        self.report_at_dong_ha(
            &self.admin,
            "/open311/v2/requests.json",
            code,
            &[("description", description)],
        )
        .await
    }

    /// A report of `code` at Đông Hà, posted by `client` to `path` with the fields
    /// `more` after the place.
    pub async fn report_at_dong_ha(
        &self,
        client: &reqwest::Client,
        path: &str,
        code: &str,
        more: &[(&str, &str)],
    ) -> Answer {
        let mut pairs = vec![
            ("service_code", code),
            ("lat", DONG_HA.0),
            ("long", DONG_HA.1),
        ];
        pairs.extend_from_slice(more);
        self.form(client, path, &pairs).await
    }

    /// The stored report `id` (there must be one).
    pub async fn report(&self, id: &str) -> reports::Report {
        self.reports
            .get(id)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("no report {id}"))
    }

    pub async fn get(&self, client: &reqwest::Client, path: &str) -> Answer {
        send(client.get(self.url(path))).await
    }

    /// What anyone may read at `path`, as JSON.
    pub async fn public_json(&self, path: &str) -> serde_json::Value {
        self.get(&self.anonymous, path).await.json()
    }
}

/// Makes `secret` a key with this role on every tenant; the key's actor name.
pub async fn key(state: &hub::AppState, secret: &str, name: &str, role: Role) -> String {
    hub::test_support::ensure_key(state, secret, name, role, &["*"], None).await
}

pub fn client(key: Option<&str>) -> reqwest::Client {
    hub::test_support::client(key, Duration::from_secs(30))
}

/// An answer: status, content type, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub ctype: String,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status, and a body that holds `text`.
    pub fn assert_says(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.text.contains(text), "{}", self.text);
    }

    /// The `service_request_id` of the first request of a JSON answer.
    pub fn first_id(&self) -> String {
        self.json()[0]["service_request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {}", self.text))
            .to_string()
    }

    /// The text of the first `<tag>` element.
    pub fn xml_first(&self, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = self.text.find(&open)? + open.len();
        let end = self.text[start..].find(&format!("</{tag}>"))? + start;
        Some(self.text[start..end].to_string())
    }

    /// How many `<tag>` elements there are.
    pub fn xml_count(&self, tag: &str) -> usize {
        self.text.matches(&format!("<{tag}>")).count()
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Answer {
    let r = rb.send().await.expect("the server answers");
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.expect("a body");
    Answer {
        status,
        ctype,
        text,
    }
}

/// A point inside Phường Đông Hà (the provincial capital).
pub const DONG_HA: (&str, &str) = ("16.8163", "107.1003");
