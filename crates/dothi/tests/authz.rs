//! The authorization matrix: every declared route of the server (the hub's, the
//! identity API's, the IoT agent's, the web app's) asked by an anonymous caller, a
//! viewer and an operator of the default tenant, an admin, and an operator of another
//! tenant, each getting what the table below says: 401, 403, or in (anything but 401
//! and 403). A declared route missing from the table, or a row for a route nobody
//! declared, fails the test. Runs on SQLite, or on PostgreSQL with
//! `DOTHI_TEST_STORE=postgres`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::server::{Server, client, ensure_key};
use hub::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

const VIEWER_KEY: &str = "matrix-viewer-key-0123456789abcdefghijklmnopq";
const OPERATOR_KEY: &str = "matrix-operator-key-0123456789abcdefghijklmno";
const OTHER_KEY: &str = "matrix-other-tenant-key-0123456789abcdefghijk";
const PASSWORD: &str = "Cầu Hiền Lương bắc qua sông Bến Hải";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Operator,
    Admin,
    /// An operator of the tenant `other`.
    Other,
}

/// The columns of the table, in order.
const WHO: [Who; 5] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Operator,
    Who::Admin,
    Who::Other,
];

impl Who {
    fn key(self) -> Option<&'static str> {
        match self {
            Who::Anonymous => None,
            Who::Viewer => Some(VIEWER_KEY),
            Who::Operator => Some(OPERATOR_KEY),
            Who::Admin => Some(common::ADMIN_KEY),
            Who::Other => Some(OTHER_KEY),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Viewer => "viewer",
            Who::Operator => "operator",
            Who::Admin => "admin",
            Who::Other => "other",
        }
    }
}

/// The row standing for every file of the web app's front-end (their names carry
/// content hashes, so they are listed by the build, not here).
const ASSETS: &str = "(each embedded asset of the web app)";

/// What each caller gets, in the order of [`WHO`]: anonymous, viewer of the default
/// tenant, operator of the default tenant, admin, operator of another tenant.
/// `A`: let in (anything but 401 and 403), `U`: 401, `F`: 403.
const TABLE: &[(&str, &str, &str)] = &[
    // The hub: public documents, metrics for admins.
    ("GET", "/health", "AAAAA"),
    ("GET", "/metrics", "UFFAF"),
    ("GET", "/openapi.json", "AAAAA"),
    ("GET", "/docs", "AAAAA"),
    ("GET", "/docs/", "AAAAA"),
    ("GET", "/docs/{*rest}", "AAAAA"),
    // Entities: viewers read, operators write, in their tenant only.
    ("GET", "/ngsi-ld/v1/entities", "UAAAF"),
    ("POST", "/ngsi-ld/v1/entities", "UFAAF"),
    // A write without the entity id: refused as bad data once the writer is known.
    ("PUT", "/ngsi-ld/v1/entities", "UFAAA"),
    ("PATCH", "/ngsi-ld/v1/entities", "UFAAA"),
    ("GET", "/ngsi-ld/v1/entities/{id}", "UAAAF"),
    ("PUT", "/ngsi-ld/v1/entities/{id}", "UFAAF"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}", "UFAAF"),
    ("DELETE", "/ngsi-ld/v1/entities/{id}", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entities/{id}/attrs", "UFAAF"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs", "UFAAF"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", "UFAAF"),
    ("PUT", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", "UFAAF"),
    ("DELETE", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/create", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/upsert", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/update", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/merge", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/delete", "UFAAF"),
    ("POST", "/ngsi-ld/v1/entityOperations/query", "UAAAF"),
    ("GET", "/ngsi-ld/v1/types", "UAAAF"),
    ("GET", "/ngsi-ld/v1/types/{type}", "UAAAF"),
    ("GET", "/ngsi-ld/v1/attributes", "UAAAF"),
    ("GET", "/ngsi-ld/v1/attributes/{attr}", "UAAAF"),
    // History.
    ("GET", "/ngsi-ld/v1/temporal/entities", "UAAAF"),
    ("POST", "/ngsi-ld/v1/temporal/entities", "UFAAF"),
    ("GET", "/ngsi-ld/v1/temporal/entities/{id}", "UAAAF"),
    ("DELETE", "/ngsi-ld/v1/temporal/entities/{id}", "UFAAF"),
    ("POST", "/ngsi-ld/v1/temporal/entities/{id}/attrs", "UFAAF"),
    (
        "DELETE",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}",
        "UFAAF",
    ),
    (
        "PATCH",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}",
        "UFAAF",
    ),
    (
        "DELETE",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}",
        "UFAAF",
    ),
    ("POST", "/ngsi-ld/v1/temporalOperations/query", "UAAAF"),
    (
        "POST",
        "/ngsi-ld/v1/temporal/entityOperations/query",
        "UAAAF",
    ),
    // Subscriptions: viewers read them, operators manage them.
    ("GET", "/ngsi-ld/v1/subscriptions", "UAAAF"),
    ("POST", "/ngsi-ld/v1/subscriptions", "UFAAF"),
    ("GET", "/ngsi-ld/v1/subscriptions/{id}", "UAAAF"),
    ("PATCH", "/ngsi-ld/v1/subscriptions/{id}", "UFAAF"),
    ("DELETE", "/ngsi-ld/v1/subscriptions/{id}", "UFAAF"),
    // Identity: logging in is public, one's own session for anyone signed in, the
    // rest for admins.
    ("POST", "/auth/v1/login", "AAAAA"),
    ("GET", "/auth/v1/login-link", "AAAAA"),
    ("POST", "/auth/v1/logout", "UAAAA"),
    ("GET", "/auth/v1/me", "UAAAA"),
    ("POST", "/auth/v1/me/totp", "UAAAA"),
    ("GET", "/auth/v1/users", "UFFAF"),
    ("POST", "/auth/v1/users", "UFFAF"),
    ("GET", "/auth/v1/users/{name}", "UFFAF"),
    ("PATCH", "/auth/v1/users/{name}", "UFFAF"),
    ("DELETE", "/auth/v1/users/{name}", "UFFAF"),
    ("POST", "/auth/v1/users/{name}/totp", "UFFAF"),
    ("GET", "/auth/v1/keys", "UFFAF"),
    ("POST", "/auth/v1/keys", "UFFAF"),
    ("DELETE", "/auth/v1/keys/{id}", "UFFAF"),
    ("GET", "/auth/v1/sessions", "UFFAF"),
    ("DELETE", "/auth/v1/sessions/{id}", "UFFAF"),
    ("GET", "/auth/v1/audit", "UFFAF"),
    // The IoT agent: provisioning for operators of the tenant; measures carry their
    // group's key, which the agent checks.
    ("GET", "/iot/services", "UFAAF"),
    ("POST", "/iot/services", "UFAAF"),
    ("PUT", "/iot/services", "UFAAF"),
    ("DELETE", "/iot/services", "UFAAF"),
    ("GET", "/iot/devices", "UFAAF"),
    ("POST", "/iot/devices", "UFAAF"),
    ("GET", "/iot/devices/{device_id}", "UFAAF"),
    ("PUT", "/iot/devices/{device_id}", "UFAAF"),
    ("DELETE", "/iot/devices/{device_id}", "UFAAF"),
    ("POST", "/iot/json", "AAAAA"),
    ("POST", "/iot/json/attrs/{name}", "AAAAA"),
    // The web app: its page and assets are public, its data is a tenant's.
    ("GET", "/", "AAAAA"),
    ("GET", "/ioc", "AAAAA"),
    ("GET", "/ioc/", "AAAAA"),
    ("GET", "/data", "AAAAA"),
    ("GET", "/data/", "AAAAA"),
    ("GET", ASSETS, "AAAAA"),
    // The public page's data: open layers of the default tenant, for anyone.
    ("GET", "/public/api/config", "AAAAA"),
    ("GET", "/public/api/communes", "AAAAA"),
    ("GET", "/public/api/markers", "AAAAA"),
    ("GET", "/ioc/api/config", "AAAAA"),
    ("GET", "/ioc/api/communes", "UAAAF"),
    ("GET", "/ioc/api/markers", "UAAAF"),
    ("GET", "/ioc/api/summary", "UAAAF"),
    ("GET", "/ioc/api/entities", "UAAAF"),
    ("GET", "/ioc/api/export", "UAAAF"),
    ("GET", "/ioc/api/stream", "UAAAF"),
];

/// Every route the server declares.
fn declared() -> Vec<hub::RouteRule> {
    hub::http::ROUTES
        .iter()
        .chain(hub::http::auth_api::ROUTES)
        .chain(iot::ROUTE_RULES)
        .copied()
        .chain(web::route_rules())
        .collect()
}

fn asset_paths() -> BTreeSet<&'static str> {
    web::assets::ASSETS.iter().map(|a| a.path).collect()
}

#[test]
fn the_table_covers_exactly_the_declared_routes() {
    let assets = asset_paths();
    assert!(!assets.is_empty(), "the web app embeds its front-end");
    let table: BTreeSet<(&str, &str)> = TABLE.iter().map(|(m, p, _)| (*m, *p)).collect();
    assert_eq!(table.len(), TABLE.len(), "a route is twice in the table");
    let mut problems = Vec::new();
    let mut declared_set = BTreeSet::new();
    for r in declared() {
        declared_set.insert((r.method, r.path));
        let covered = table.contains(&(r.method, r.path))
            || (r.method == "GET" && assets.contains(r.path) && table.contains(&("GET", ASSETS)));
        if !covered {
            problems.push(format!(
                "{} {} is declared ({:?}) but not in the table",
                r.method, r.path, r.permission
            ));
        }
    }
    for (m, p) in &table {
        if *p == ASSETS {
            continue;
        }
        if !declared_set.contains(&(*m, *p)) {
            problems.push(format!("the table has {m} {p}, which nobody declares"));
        }
    }
    for expected in TABLE.iter().map(|(_, _, e)| e) {
        assert!(
            expected.len() == WHO.len() && expected.chars().all(|c| "AUF".contains(c)),
            "{expected}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What the requests of the matrix need: a user, an IoT group and device.
async fn fixtures(s: &Server) {
    for (secret, name, role, tenant) in [
        (VIEWER_KEY, "viewer", Role::Viewer, ""),
        (OPERATOR_KEY, "operator", Role::Operator, ""),
        (OTHER_KEY, "other", Role::Operator, "other"),
    ] {
        ensure_key(&s.state, secret, name, role, &[tenant], None).await;
    }
    for user in ["matrix.user", "matrix.totp"] {
        let r = s
            .admin
            .post(s.url("/auth/v1/users"))
            .json(
                &json!({"username": user, "password": PASSWORD, "role": "viewer", "tenants": [""]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // The other tenant has data of its own.
    let r = s
        .admin
        .post(s.url("/ngsi-ld/v1/entities"))
        .header("NGSILD-Tenant", "other")
        .json(&json!({"id": "urn:ngsi-ld:Matrix:elsewhere", "type": "Matrix", "temperature": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

fn entity_id(who: Who) -> String {
    format!("urn:ngsi-ld:Matrix:{}", who.tag())
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Makes what one request of `who` on `path` acts on exist (as the admin); returns
/// the values of the path's parameters and the query.
async fn prepare(
    s: &Server,
    method: &str,
    path: &str,
    who: Who,
) -> (BTreeMap<&'static str, String>, String) {
    let admin = &s.admin;
    let id = entity_id(who);
    let mut params = BTreeMap::new();
    let mut query = String::new();
    if path.starts_with("/ngsi-ld/") {
        let r = admin
            .post(s.url("/ngsi-ld/v1/entityOperations/upsert"))
            .json(&json!([{
                "id": id, "type": "Matrix",
                "temperature": {"type": "Property", "value": 20, "observedAt": "2025-05-01T00:00:00Z"}
            }]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        params.insert("id", id.clone());
        params.insert("attr", "temperature".into());
        params.insert("type", "Matrix".into());
        if path.ends_with("{instance}") {
            // The instance the upsert above recorded.
            let r = admin
                .get(s.url(&format!("/ngsi-ld/v1/temporal/entities/{id}")))
                .send()
                .await
                .unwrap();
            let history: Value = r.json().await.unwrap();
            let instance = history["temperature"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|i| i["instanceId"].as_str())
                .unwrap_or_else(|| panic!("an instance in {history}"));
            params.insert("instance", instance.to_string());
        }
        if matches!(
            path,
            "/ngsi-ld/v1/entities" | "/ngsi-ld/v1/temporal/entities"
        ) {
            query = "type=Matrix".into();
        }
    }
    if path.starts_with("/ngsi-ld/v1/subscriptions/") {
        let r = admin
            .post(s.url("/ngsi-ld/v1/subscriptions"))
            .json(&json!({
                "type": "Subscription",
                "entities": [{"type": "Matrix"}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        params.insert("id", location.rsplit('/').next().unwrap().to_string());
    }
    if path.starts_with("/iot/") {
        let r = admin
            .post(s.url("/iot/services"))
            .json(&json!({"services": [{"apikey": "matrix-apikey", "entity_type": "Matrix", "resource": "/iot/json"}]}))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 201 | 409),
            "{}",
            r.text().await.unwrap()
        );
        let r = admin
            .post(s.url("/iot/devices"))
            .json(&json!({"devices": [{"device_id": "matrix-dev", "apikey": "matrix-apikey", "entity_type": "Matrix"}]}))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 201 | 409),
            "{}",
            r.text().await.unwrap()
        );
        params.insert("device_id", "matrix-dev".into());
        params.insert("name", "t".into());
        if path.starts_with("/iot/json") {
            query = "k=matrix-apikey&i=matrix-dev".into();
        }
        if path == "/iot/services" {
            query = "resource=/iot/json&apikey=matrix-apikey".into();
        }
    }
    match path {
        // Deleting a user is tried on one that does not exist (404): the others
        // are used by the rows after.
        "/auth/v1/users/{name}" if method == "DELETE" => {
            params.insert("name", "no.such.user".into());
        }
        "/auth/v1/users/{name}" => {
            params.insert("name", "matrix.user".into());
        }
        "/auth/v1/users/{name}/totp" => {
            params.insert("name", "matrix.totp".into());
        }
        "/auth/v1/keys/{id}" => {
            params.insert("id", "no-such-key".into());
        }
        "/auth/v1/sessions/{id}" => {
            params.insert("id", "no-such-session".into());
        }
        "/auth/v1/login-link" => {
            let token = s
                .state
                .identity
                .login_link("matrix.user", std::time::Duration::from_secs(3600))
                .await
                .unwrap();
            query = format!("token={token}");
        }
        "/docs/{*rest}" => {
            params.insert("*rest", "index.html".into());
        }
        "/ioc/api/export" => query = "format=csv".into(),
        _ => {}
    }
    (params, query)
}

/// A small valid body for a write.
fn body(method: &str, path: &str, who: Who) -> Option<Value> {
    let id = entity_id(who);
    let fresh = || format!("urn:ngsi-ld:Matrix:{}", unique(who.tag()));
    let instance = json!({"type": "Property", "value": 21, "observedAt": "2025-05-02T00:00:00Z"});
    Some(match (method, path) {
        ("POST", "/ngsi-ld/v1/entities") => {
            json!({"id": fresh(), "type": "Matrix", "temperature": 1})
        }
        ("PUT", "/ngsi-ld/v1/entities/{id}") => {
            json!({"id": id, "type": "Matrix", "temperature": 2})
        }
        ("PATCH", "/ngsi-ld/v1/entities/{id}") => json!({"temperature": 3}),
        ("POST", "/ngsi-ld/v1/entities/{id}/attrs") => json!({"humidity": 40}),
        ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs") => json!({"temperature": 4}),
        ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs/{attr}") => json!({"value": 5}),
        ("PUT", "/ngsi-ld/v1/entities/{id}/attrs/{attr}") => {
            json!({"type": "Property", "value": 6})
        }
        ("POST", "/ngsi-ld/v1/entityOperations/create") => {
            json!([{"id": fresh(), "type": "Matrix", "temperature": 7}])
        }
        ("POST", "/ngsi-ld/v1/entityOperations/upsert") => {
            json!([{"id": id, "type": "Matrix", "temperature": 8}])
        }
        ("POST", "/ngsi-ld/v1/entityOperations/update") => json!([{"id": id, "temperature": 9}]),
        ("POST", "/ngsi-ld/v1/entityOperations/merge") => {
            json!([{"id": id, "type": "Matrix", "temperature": 10}])
        }
        ("PUT" | "PATCH", "/ngsi-ld/v1/entities") => json!({"type": "Matrix"}),
        ("POST", "/ngsi-ld/v1/entityOperations/delete") => json!([id]),
        ("POST", "/ngsi-ld/v1/entityOperations/query") => {
            json!({"type": "Query", "entities": [{"type": "Matrix"}]})
        }
        ("POST", "/ngsi-ld/v1/temporal/entities") => {
            json!({"id": fresh(), "type": "Matrix", "temperature": [instance]})
        }
        ("POST", "/ngsi-ld/v1/temporal/entities/{id}/attrs") => json!({"temperature": [instance]}),
        ("PATCH", "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}") => instance,
        ("POST", "/ngsi-ld/v1/temporalOperations/query")
        | ("POST", "/ngsi-ld/v1/temporal/entityOperations/query") => json!({
            "type": "Query", "entities": [{"type": "Matrix"}],
            "temporalQ": {"timerel": "before", "timeAt": "2030-01-01T00:00:00Z"}
        }),
        ("POST", "/ngsi-ld/v1/subscriptions") => json!({
            "type": "Subscription", "entities": [{"type": "Matrix"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}
        }),
        ("PATCH", "/ngsi-ld/v1/subscriptions/{id}") => json!({"subscriptionName": "renamed"}),
        ("POST", "/auth/v1/login") => json!({"username": "matrix.user", "password": PASSWORD}),
        ("POST", "/auth/v1/users") => json!({
            "username": unique(who.tag()), "password": PASSWORD, "role": "viewer"
        }),
        ("PATCH", "/auth/v1/users/{name}") => json!({"unlock": true}),
        ("POST", "/auth/v1/keys") => json!({
            "name": unique(who.tag()), "role": "viewer", "tenants": [""]
        }),
        ("POST", "/iot/services") => json!({"services": [{
            "apikey": unique(&format!("apikey-{}", who.tag())), "entity_type": "Matrix",
            "resource": "/iot/json"
        }]}),
        ("PUT", "/iot/services") => json!({"entity_type": "Matrix"}),
        ("POST", "/iot/devices") => json!({"devices": [{
            "device_id": unique(&format!("dev-{}", who.tag())), "apikey": "matrix-apikey",
            "entity_type": "Matrix"
        }]}),
        ("PUT", "/iot/devices/{device_id}") => json!({"entity_type": "Matrix"}),
        ("POST", "/iot/json") => json!({"t": 21.5}),
        _ => return None,
    })
}

fn fill(path: &str, params: &BTreeMap<&'static str, String>) -> String {
    let mut out = path.to_string();
    for (name, value) in params {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    assert!(!out.contains('{'), "{path}: a parameter is left in {out}");
    out
}

/// The outcome class of a status: what the table's letters say.
fn class(status: u16) -> char {
    match status {
        401 => 'U',
        403 => 'F',
        _ => 'A',
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_declared_route_lets_in_exactly_the_callers_the_table_says() {
    let s = Server::start().await;
    fixtures(&s).await;
    let assets = asset_paths();
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    for (m, p, e) in TABLE {
        if *p == ASSETS {
            rows.extend(assets.iter().map(|a| (m.to_string(), a.to_string(), *e)));
        } else {
            rows.push((m.to_string(), p.to_string(), *e));
        }
    }
    let mut wrong = Vec::new();
    let mut seen = BTreeMap::new();
    for (method, path, expected) in &rows {
        for (who, want) in WHO.iter().zip(expected.chars()) {
            let (params, query) = prepare(&s, method, path, *who).await;
            let mut url = s.url(&fill(path, &params));
            if !query.is_empty() {
                url = format!("{url}?{query}");
            }
            let mut request =
                client(who.key()).request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if path == "/iot/json/attrs/{name}" {
                request = request.header("content-type", "text/plain").body("22.5");
            } else if let Some(b) = body(method, path, *who) {
                request = request.json(&b);
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let challenge = r.headers().contains_key("www-authenticate");
            let streaming = r
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
            let text = if streaming {
                String::from("(an event stream)")
            } else {
                r.text().await.unwrap_or_default()
            };
            let got = class(status);
            *seen.entry(status).or_insert(0) += 1;
            if got != want || (got == 'U' && !challenge) || (got == 'A' && status >= 500) {
                wrong.push(format!(
                    "{method} {path} as {}: expected {want}, got {status} {}",
                    who.tag(),
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    eprintln!("statuses of the matrix: {seen:?}");
    assert!(
        wrong.is_empty(),
        "{} of {} requests got the wrong answer:\n{}",
        wrong.len(),
        rows.len() * WHO.len(),
        wrong.join("\n")
    );
}
