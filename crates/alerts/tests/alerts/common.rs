//! The harness: a real hub with the alerts service over a real SQLite file (or, with
//! `DOTHI_TEST_STORE=postgres`, a PostgreSQL database of its own), served on
//! 127.0.0.1:0 and spoken to over HTTP; the evaluator runs on a controlled clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alerts::{Alerts, ManualClock, Settings};
use chrono::{DateTime, Utc};
use hub::test_support::Served;
use reqwest::Client;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const ADMIN_KEY: &str = "alerts-test-admin-key-0123456789abcdefghijklmn";
pub const VIEWER_KEY: &str = "alerts-test-viewer-key-0123456789abcdefghijkl";
pub const OPERATOR_KEY: &str = "alerts-test-operator-key-0123456789abcdefghi";
/// How long an effect may take to appear.
pub const WAIT: Duration = Duration::from_secs(15);

pub use hub::test_support::on_postgres;

/// The URL of the store at `db`: the SQLite file, or its PostgreSQL database.
pub async fn store_url(db: &Path) -> String {
    hub::test_support::store_url_at("alerts", db).await
}

/// The PostgreSQL database of `db` (created when missing), whichever store the
/// other tests use: several nodes share one only there.
pub async fn postgres_url(db: &Path) -> String {
    hub::test_support::postgres_url_at("alerts", db).await
}

fn drop_database(db: &Path) {
    hub::test_support::drop_database(&hub::test_support::database_at("alerts", db));
}

pub fn client(key: &str) -> Client {
    hub::test_support::client(Some(key), Duration::from_secs(20))
}

/// A file path no other test uses, in a directory that outlives the app.
pub struct Place {
    pub dir: tempfile::TempDir,
    /// On PostgreSQL whatever the other tests use.
    postgres: bool,
}

impl Place {
    pub fn new() -> Place {
        Place {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: on_postgres(),
        }
    }

    /// A place on PostgreSQL, for tests of several nodes.
    pub fn postgres() -> Place {
        Place {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: true,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("dothi.db")
    }
}

impl Drop for Place {
    /// Its PostgreSQL database, if one was made, goes with it.
    fn drop(&mut self) {
        if self.postgres {
            drop_database(&self.db());
        }
    }
}

/// A running hub with the alerts service.
pub struct App {
    pub base: String,
    pub admin: Client,
    pub alerts: Arc<Alerts>,
    pub clock: Arc<ManualClock>,
    evaluator: Option<JoinHandle<()>>,
    served: Served,
    /// The store's place when the app has one of its own: it goes after the app.
    place: Option<Place>,
}

/// The batch upsert of entities that updates those that exist.
pub const UPSERT: &str = "/ngsi-ld/v1/entityOperations/upsert?options=update";

/// `base` with the members of the object `extra` set over its own.
pub fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object") {
        base[k] = v.clone();
    }
    base
}

/// A JSON string's text ("" for anything else).
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An alert's status (`firing`, `acknowledged`, `resolved`).
pub fn status(a: &Value) -> &str {
    a["status"].as_str().unwrap_or_default()
}

pub fn start_time() -> DateTime<Utc> {
    ngsi::entity::now()
}

static KEYS: AtomicUsize = AtomicUsize::new(0);

impl App {
    /// A hub over a store of its own, which goes with it, its evaluator running on a
    /// clock set to `at`.
    pub async fn start(at: DateTime<Utc>) -> App {
        let place = Place::new();
        let mut app = App::start_at(&place.db(), at).await;
        app.place = Some(place);
        app
    }

    /// A hub over a store of its own, its evaluator's clock starting now; and that
    /// start.
    pub async fn start_now() -> (DateTime<Utc>, App) {
        let t0 = start_time();
        (t0, App::start(t0).await)
    }

    /// A hub over the store at `db`, its evaluator running on a clock set to `at`.
    pub async fn start_at(db: &Path, at: DateTime<Utc>) -> App {
        App::start_on(&store_url(db).await, at).await
    }

    /// A hub over the store at `url`, its evaluator running on a clock set to `at`.
    pub async fn start_on(url: &str, at: DateTime<Utc>) -> App {
        App::start_with(url, at, None).await
    }

    /// The same, e-mail going through `smtp`. Outbound requests may reach loopback,
    /// where the tests' webhook receivers and broker are.
    pub async fn start_with(url: &str, at: DateTime<Utc>, smtp: Option<alerts::SmtpRelay>) -> App {
        let store = store::open(url).await.expect("open the store");
        let config = hub::HubConfig {
            outbound: Arc::new(hub::outbound::OutboundPolicy::strict().with_loopback()),
            ..Default::default()
        };
        let state = hub::state(store, &config).expect("the hub's state");
        for (key, role) in [
            (ADMIN_KEY, hub::auth::Role::Admin),
            (VIEWER_KEY, hub::auth::Role::Viewer),
            (OPERATOR_KEY, hub::auth::Role::Operator),
        ] {
            let name = format!(
                "test-{}-{}",
                role.as_str(),
                KEYS.fetch_add(1, Ordering::Relaxed)
            );
            hub::test_support::ensure_key(&state, key, &name, role, &["*"], None).await;
        }
        let clock = Arc::new(ManualClock::new(at));
        let mut alerts = Alerts::with_clock(
            state.hub.clone(),
            clock.clone(),
            Settings {
                tick: Duration::from_millis(50),
                sweep: Duration::from_secs(30),
            },
        );
        if let Some(relay) = smtp {
            alerts = alerts.with_smtp(relay).expect("the SMTP relay");
        }
        let alerts = Arc::new(alerts);
        let evaluator = alerts.clone().spawn();
        let served = Served::start(state, vec![alerts::component(alerts.clone())]).await;
        App {
            base: served.base.clone(),
            admin: client(ADMIN_KEY),
            alerts,
            clock,
            evaluator: Some(evaluator),
            served,
            place: None,
        }
    }

    /// Whether this node holds the duties (and so evaluates).
    pub fn evaluates(&self) -> bool {
        *self.alerts.hub().duties().borrow()
    }

    /// Stops the evaluator at once (as a kill would) and the server.
    pub async fn stop(mut self) {
        if let Some(e) = self.evaluator.take() {
            e.abort();
            let _ = e.await;
        }
        self.served.stop(Duration::from_secs(10)).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; the status and the JSON body (Null when none).
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs `path` as the admin in `tenant`: the status and the answer.
    pub async fn get_in_tenant(&self, tenant: &str, path: &str) -> (u16, Value) {
        self.send(
            self.admin
                .get(self.url(path))
                .header("NGSILD-Tenant", tenant),
        )
        .await
    }

    /// POSTs `body` to `path` as the admin: the status and the answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.admin.post(self.url(path)).json(body)).await
    }

    /// PUTs `body` at `path` as the admin: the status and the answer.
    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.admin.put(self.url(path)).json(body)).await
    }

    /// Moves the clock on by `by` and lets the evaluator catch up.
    pub async fn pass(&self, by: Duration) {
        self.clock.advance(by);
        self.settle().await;
    }

    /// How many alerts `rule` has once another hour has passed: time alone raises
    /// nothing more and loses none.
    pub async fn alerts_an_hour_later(&self, rule: &str) -> usize {
        self.pass(Duration::from_secs(3_600)).await;
        self.alerts_of(rule).await.len()
    }

    pub async fn create_rule(&self, rule: Value) {
        let (s, body) = self.post_json("/alerts/v1/rules", &rule).await;
        assert_eq!(s, 201, "creating {rule}: {body}");
    }

    /// Upserts an entity (normalized NGSI-LD) in the default tenant.
    pub async fn upsert(&self, entity: Value) {
        let (s, body) = self.post_json(UPSERT, &json!([entity])).await;
        assert!(s == 201 || s == 204, "upsert: {s} {body}");
    }

    /// A new river gauge reading `level` (m) at `at`; its id.
    pub async fn new_gauge(&self, level: f64, at: DateTime<Utc>) -> String {
        let id = unique_id("WaterObserved");
        self.upsert(gauge(&id, level, at)).await;
        id
    }

    /// The alerts of a rule (any status), via the alerts API.
    pub async fn alerts_of(&self, rule: &str) -> Vec<Value> {
        let (s, body) = self
            .send(
                self.admin
                    .get(self.url(&format!("/alerts/v1/alerts?rule={rule}&limit=1000"))),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `rule` has one alert; returns the list it is in.
    pub async fn until_one_alert(&self, rule: &str, what: &str) -> Vec<Value> {
        self.until_alerts(rule, what, |l| l.len() == 1).await
    }

    /// Waits until the alerts of `rule` satisfy `ok`; returns them.
    pub async fn until_alerts(
        &self,
        rule: &str,
        what: &str,
        ok: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let list = until(
            what,
            || async { Value::Array(self.alerts_of(rule).await) },
            |v| ok(v.as_array().map_or(&[], Vec::as_slice)),
        )
        .await;
        list.as_array().cloned().unwrap_or_default()
    }

    /// Waits until the first alert of `rule` is resolved (by `what`).
    pub async fn until_resolved(&self, rule: &str, what: &str) {
        self.until_alerts(rule, what, |l| status(&l[0]) == "resolved")
            .await;
    }

    /// The stored incident of (rule, entity), as JSON (null for none).
    async fn incident_json(&self, rule: &str, entity: &str) -> Value {
        let inc = self
            .alerts
            .incident("", rule, entity)
            .await
            .expect("incident");
        serde_json::to_value(&inc).expect("json")
    }

    /// Waits until the stored incident of (rule, entity) is in `phase` ("idle" for none).
    pub async fn until_phase(&self, rule: &str, entity: &str, phase: &str) {
        self.until_incident(rule, entity, phase, |v| {
            v["phase"].as_str().unwrap_or("idle") == phase
        })
        .await;
    }

    /// Waits until the stored incident of (rule, entity) satisfies `ok`.
    pub async fn until_incident(
        &self,
        rule: &str,
        entity: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) {
        until(what, || self.incident_json(rule, entity), ok).await;
    }

    /// Lets the evaluator finish what it is doing: a tick run by hand waits for it.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.alerts.tick().await.expect("tick");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(e) = &self.evaluator {
            e.abort();
        }
        self.served.signal_stop();
    }
}

/// Polls `read` until `ok` holds of what it reads (within [`WAIT`]); returns it.
pub async fn until<F: std::future::Future<Output = Value>>(
    what: &str,
    read: impl Fn() -> F,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = read().await;
        if ok(&v) {
            return v;
        }
        assert!(start.elapsed() < WAIT, "{what}: still {v}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// A river gauge with its level and alarm levels I–III, observed at `at`.
pub fn gauge(id: &str, level: f64, at: DateTime<Utc>) -> Value {
    let t = ngsi::entity::format_time(&at);
    json!({
        "id": id,
        "type": "WaterObserved",
        "name": {"type": "LanguageProperty", "languageMap": {"vi": "Trạm Thạch Hãn", "en": "Thạch Hãn gauge"}},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.183, 16.756]}},
        "waterLevel": {"type": "Property", "value": level, "unitCode": "MTR", "observedAt": t},
        "alarmLevel1": {"type": "Property", "value": 3.0, "unitCode": "MTR"},
        "alarmLevel2": {"type": "Property", "value": 4.5, "unitCode": "MTR"},
        "alarmLevel3": {"type": "Property", "value": 6.0, "unitCode": "MTR"}
    })
}

/// A unique entity id of a type.
pub fn unique_id(kind: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "urn:ngsi-ld:{kind}:t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
