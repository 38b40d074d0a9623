//! The authorization matrix: every declared route of the server (the hub's, the
//! identity API's, and those of every service `dothi serve` composes: the IoT agent,
//! the web app, citizen reports, the open data portal, alerts, the plan's scorecard)
//! asked by an anonymous caller, a viewer and an operator of the default tenant, an
//! admin, an operator of another tenant, a citizen, and an operator holding the
//! "see reporter" right, each getting what the table below says: 401, 403, or in
//! (anything but 401 and 403, and never a 5xx). The routes are those the test
//! server's front door was given, so a route a service adds is in the matrix at once:
//! a declared route missing from the table, or a row for a route nobody declared,
//! fails the test. Runs on SQLite, or on PostgreSQL with `DOTHI_TEST_STORE=postgres`.

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
const CITIZEN_KEY: &str = "matrix-citizen-key-0123456789abcdefghijklmnop";
const SEER_KEY: &str = "matrix-seer-key-0123456789abcdefghijklmnopqrst";
const PASSWORD: &str = "Cầu Hiền Lương bắc qua sông Bến Hải";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Operator,
    Admin,
    /// An operator of the tenant `other`.
    Other,
    /// A resident of the default tenant: files and follows their own reports.
    Citizen,
    /// An operator of the default tenant holding the "see reporter" right of
    /// citizen reports (for every agency).
    Seer,
}

/// The columns of the table, in order.
const WHO: [Who; 7] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Operator,
    Who::Admin,
    Who::Other,
    Who::Citizen,
    Who::Seer,
];

impl Who {
    fn key(self) -> Option<&'static str> {
        match self {
            Who::Anonymous => None,
            Who::Viewer => Some(VIEWER_KEY),
            Who::Operator => Some(OPERATOR_KEY),
            Who::Admin => Some(common::ADMIN_KEY),
            Who::Other => Some(OTHER_KEY),
            Who::Citizen => Some(CITIZEN_KEY),
            Who::Seer => Some(SEER_KEY),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Viewer => "viewer",
            Who::Operator => "operator",
            Who::Admin => "admin",
            Who::Other => "other",
            Who::Citizen => "citizen",
            Who::Seer => "seer",
        }
    }
}

/// The row standing for every file of the web app's front-end (their names carry
/// content hashes, so they are listed by the build, not here).
const ASSETS: &str = "(each embedded asset of the web app)";

/// What each caller gets, in the order of [`WHO`]: anonymous, viewer of the default
/// tenant, operator of the default tenant, admin, operator of another tenant,
/// citizen, operator with the "see reporter" right.
/// `A`: let in (anything but 401 and 403), `U`: 401, `F`: 403.
const TABLE: &[(&str, &str, &str)] = &[
    // The hub: public documents, metrics for admins.
    ("GET", "/health", "AAAAAAA"),
    ("GET", "/metrics", "UFFAFFF"),
    ("GET", "/openapi.json", "AAAAAAA"),
    ("GET", "/docs", "AAAAAAA"),
    ("GET", "/docs/", "AAAAAAA"),
    ("GET", "/docs/{*rest}", "AAAAAAA"),
    // Entities: viewers read, operators write, in their tenant only.
    ("GET", "/ngsi-ld/v1/entities", "UAAAFFA"),
    ("POST", "/ngsi-ld/v1/entities", "UFAAFFA"),
    // A write without the entity id: refused as bad data once the writer is known.
    ("PUT", "/ngsi-ld/v1/entities", "UFAAAFA"),
    ("PATCH", "/ngsi-ld/v1/entities", "UFAAAFA"),
    ("GET", "/ngsi-ld/v1/entities/{id}", "UAAAFFA"),
    ("PUT", "/ngsi-ld/v1/entities/{id}", "UFAAFFA"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}", "UFAAFFA"),
    ("DELETE", "/ngsi-ld/v1/entities/{id}", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entities/{id}/attrs", "UFAAFFA"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs", "UFAAFFA"),
    ("PATCH", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", "UFAAFFA"),
    ("PUT", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", "UFAAFFA"),
    (
        "DELETE",
        "/ngsi-ld/v1/entities/{id}/attrs/{attr}",
        "UFAAFFA",
    ),
    ("POST", "/ngsi-ld/v1/entityOperations/create", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entityOperations/upsert", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entityOperations/update", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entityOperations/merge", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entityOperations/delete", "UFAAFFA"),
    ("POST", "/ngsi-ld/v1/entityOperations/query", "UAAAFFA"),
    ("GET", "/ngsi-ld/v1/types", "UAAAFFA"),
    ("GET", "/ngsi-ld/v1/types/{type}", "UAAAFFA"),
    ("GET", "/ngsi-ld/v1/attributes", "UAAAFFA"),
    ("GET", "/ngsi-ld/v1/attributes/{attr}", "UAAAFFA"),
    // History.
    ("GET", "/ngsi-ld/v1/temporal/entities", "UAAAFFA"),
    ("POST", "/ngsi-ld/v1/temporal/entities", "UFAAFFA"),
    ("GET", "/ngsi-ld/v1/temporal/entities/{id}", "UAAAFFA"),
    ("DELETE", "/ngsi-ld/v1/temporal/entities/{id}", "UFAAFFA"),
    (
        "POST",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs",
        "UFAAFFA",
    ),
    (
        "DELETE",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}",
        "UFAAFFA",
    ),
    (
        "PATCH",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}",
        "UFAAFFA",
    ),
    (
        "DELETE",
        "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}",
        "UFAAFFA",
    ),
    ("POST", "/ngsi-ld/v1/temporalOperations/query", "UAAAFFA"),
    (
        "POST",
        "/ngsi-ld/v1/temporal/entityOperations/query",
        "UAAAFFA",
    ),
    // Subscriptions: viewers read them, operators manage them.
    // Hosted @contexts: shared by every tenant, so only a writer of every tenant
    // (an admin) adds or deletes one; any reader may read them.
    ("GET", "/ngsi-ld/v1/jsonldContexts", "UAAAAFA"),
    ("POST", "/ngsi-ld/v1/jsonldContexts", "UFFAFFF"),
    ("GET", "/ngsi-ld/v1/jsonldContexts/{id}", "UAAAAFA"),
    ("DELETE", "/ngsi-ld/v1/jsonldContexts/{id}", "UFFAFFF"),
    ("GET", "/ngsi-ld/v1/subscriptions", "UAAAFFA"),
    ("POST", "/ngsi-ld/v1/subscriptions", "UFAAFFA"),
    ("GET", "/ngsi-ld/v1/subscriptions/{id}", "UAAAFFA"),
    ("PATCH", "/ngsi-ld/v1/subscriptions/{id}", "UFAAFFA"),
    ("DELETE", "/ngsi-ld/v1/subscriptions/{id}", "UFAAFFA"),
    // Identity: logging in is public, one's own session for anyone signed in, the
    // rest for admins.
    ("POST", "/auth/v1/login", "AAAAAAA"),
    ("GET", "/auth/v1/login-link", "AAAAAAA"),
    ("POST", "/auth/v1/logout", "UAAAAAA"),
    ("GET", "/auth/v1/me", "UAAAAAA"),
    ("POST", "/auth/v1/me/totp", "UAAAAAA"),
    ("GET", "/auth/v1/users", "UFFAFFF"),
    ("POST", "/auth/v1/users", "UFFAFFF"),
    ("GET", "/auth/v1/users/{name}", "UFFAFFF"),
    ("PATCH", "/auth/v1/users/{name}", "UFFAFFF"),
    ("DELETE", "/auth/v1/users/{name}", "UFFAFFF"),
    ("POST", "/auth/v1/users/{name}/totp", "UFFAFFF"),
    ("GET", "/auth/v1/keys", "UFFAFFF"),
    ("POST", "/auth/v1/keys", "UFFAFFF"),
    ("DELETE", "/auth/v1/keys/{id}", "UFFAFFF"),
    ("GET", "/auth/v1/sessions", "UFFAFFF"),
    ("DELETE", "/auth/v1/sessions/{id}", "UFFAFFF"),
    ("GET", "/auth/v1/audit", "UFFAFFF"),
    // The IoT agent: provisioning for operators of the tenant; measures carry their
    // group's key, which the agent checks.
    ("GET", "/iot/services", "UFAAFFA"),
    ("POST", "/iot/services", "UFAAFFA"),
    ("PUT", "/iot/services", "UFAAFFA"),
    ("DELETE", "/iot/services", "UFAAFFA"),
    ("GET", "/iot/devices", "UFAAFFA"),
    ("POST", "/iot/devices", "UFAAFFA"),
    ("GET", "/iot/devices/{device_id}", "UFAAFFA"),
    ("PUT", "/iot/devices/{device_id}", "UFAAFFA"),
    ("DELETE", "/iot/devices/{device_id}", "UFAAFFA"),
    ("POST", "/iot/json", "AAAAAAA"),
    ("POST", "/iot/json/attrs/{name}", "AAAAAAA"),
    // The web app: its page and assets are public, its data is a tenant's.
    ("GET", "/", "AAAAAAA"),
    ("GET", "/ioc", "AAAAAAA"),
    ("GET", "/ioc/", "AAAAAAA"),
    ("GET", "/data", "AAAAAAA"),
    ("GET", "/data/", "AAAAAAA"),
    ("GET", "/report", "AAAAAAA"),
    ("GET", "/report/", "AAAAAAA"),
    ("GET", "/report/track", "AAAAAAA"),
    ("GET", ASSETS, "AAAAAAA"),
    // The public page's data: open layers of the default tenant, for anyone.
    ("GET", "/public/api/config", "AAAAAAA"),
    ("GET", "/public/api/communes", "AAAAAAA"),
    ("GET", "/public/api/markers", "AAAAAAA"),
    ("GET", "/ioc/api/config", "AAAAAAA"),
    ("GET", "/ioc/api/communes", "UAAAFFA"),
    ("GET", "/ioc/api/markers", "UAAAFFA"),
    ("GET", "/ioc/api/summary", "UAAAFFA"),
    ("GET", "/ioc/api/entities", "UAAAFFA"),
    ("GET", "/ioc/api/export", "UAAAFFA"),
    ("GET", "/ioc/api/stream", "UAAAFFA"),
    // Citizen reports, Open311: public (a key, when sent, is checked); only keys of
    // staff and citizens file reports. Public answers carry no reporter data (the
    // reports crate's privacy test checks that).
    ("GET", "/open311/v2/{file}", "AAAAAAA"),
    ("POST", "/open311/v2/{file}", "AFAAAAA"),
    ("GET", "/open311/v2/services/{file}", "AAAAAAA"),
    ("GET", "/open311/v2/requests/{file}", "AAAAAAA"),
    ("GET", "/open311/v2/tokens/{file}", "AAAAAAA"),
    ("GET", "/reports/v1/media/{file}", "AAAAAAA"),
    // The staff's inbox: the reports are the default tenant's.
    ("GET", "/reports/v1/requests", "UAAAFFA"),
    ("GET", "/reports/v1/requests/{id}", "UAAAFFA"),
    ("POST", "/reports/v1/requests/{id}/actions", "UFAAFFA"),
    ("POST", "/reports/v1/actions", "UFAAFFA"),
    // The reporter's contact: admins, and operators an admin gave the right.
    ("GET", "/reports/v1/requests/{id}/reporter", "UFFAFFA"),
    ("POST", "/reports/v1/requests/{id}/support", "AAAAAAA"),
    ("PUT", "/reports/v1/reporter-access/{actor}", "UFFAFFF"),
    ("GET", "/reports/v1/categories", "AAAAAAA"),
    ("POST", "/reports/v1/categories", "UFFAFFF"),
    ("GET", "/reports/v1/stats", "UAAAFFA"),
    ("GET", "/reports/v1/public/stats", "AAAAAAA"),
    ("GET", "/reports/v1/public/requests", "AAAAAAA"),
    ("GET", "/reports/v1/nearby", "AAAAAAA"),
    ("GET", "/reports/v1/holidays", "UAAAFFA"),
    ("PUT", "/reports/v1/holidays/{year}", "UFFAFFF"),
    ("POST", "/reports/v1/sweep", "UFFAFFF"),
    // The reporter's own report: the tracking token is the credential.
    ("GET", "/reports/v1/track/{token}", "AAAAAAA"),
    ("DELETE", "/reports/v1/track/{token}/contact", "AAAAAAA"),
    ("POST", "/reports/v1/track/{token}/rating", "AAAAAAA"),
    // The open data portal: public; CKAN's writes are decided by the action (below).
    ("GET", "/api/3/action/{action}", "AAAAAAA"),
    ("POST", "/api/3/action/{action}", "AAAAAAA"),
    ("GET", "/api/action/{action}", "AAAAAAA"),
    ("POST", "/api/action/{action}", "AAAAAAA"),
    ("GET", "/catalog.ttl", "AAAAAAA"),
    ("GET", "/catalog.jsonld", "AAAAAAA"),
    ("GET", "/catalog.rdf", "AAAAAAA"),
    ("GET", "/dataset/{file}", "AAAAAAA"),
    ("GET", "/dataset/{name}/{file}", "AAAAAAA"),
    // Alerts: viewers read rules and alerts, operators change rules and act.
    ("GET", "/alerts/v1/rules", "UAAAFFA"),
    ("POST", "/alerts/v1/rules", "UFAAFFA"),
    ("GET", "/alerts/v1/rules/{id}", "UAAAFFA"),
    ("PUT", "/alerts/v1/rules/{id}", "UFAAFFA"),
    ("DELETE", "/alerts/v1/rules/{id}", "UFAAFFA"),
    ("GET", "/alerts/v1/alerts", "UAAAFFA"),
    ("GET", "/alerts/v1/alerts/{id}", "UAAAFFA"),
    ("POST", "/alerts/v1/alerts/{id}/acknowledge", "UFAAFFA"),
    ("POST", "/alerts/v1/alerts/{id}/assign", "UFAAFFA"),
    ("POST", "/alerts/v1/alerts/{id}/resolve", "UFAAFFA"),
    ("POST", "/alerts/v1/backtest", "UAAAFFA"),
    ("GET", "/alerts/v1/stream", "UAAAFFA"),
    // Notification policies name contacts: operators read them; silences and
    // inhibitions are read by viewers. All are written by operators.
    ("GET", "/alerts/v1/policies", "UFAAFFA"),
    ("POST", "/alerts/v1/policies", "UFAAFFA"),
    ("GET", "/alerts/v1/policies/{id}", "UFAAFFA"),
    ("PUT", "/alerts/v1/policies/{id}", "UFAAFFA"),
    ("DELETE", "/alerts/v1/policies/{id}", "UFAAFFA"),
    ("GET", "/alerts/v1/silences", "UAAAFFA"),
    ("POST", "/alerts/v1/silences", "UFAAFFA"),
    ("GET", "/alerts/v1/silences/{id}", "UAAAFFA"),
    ("PUT", "/alerts/v1/silences/{id}", "UFAAFFA"),
    ("DELETE", "/alerts/v1/silences/{id}", "UFAAFFA"),
    ("GET", "/alerts/v1/inhibitions", "UAAAFFA"),
    ("POST", "/alerts/v1/inhibitions", "UFAAFFA"),
    ("GET", "/alerts/v1/inhibitions/{id}", "UAAAFFA"),
    ("PUT", "/alerts/v1/inhibitions/{id}", "UFAAFFA"),
    ("DELETE", "/alerts/v1/inhibitions/{id}", "UFAAFFA"),
    // The plan's scorecard: a public summary; operators enter values, an admin
    // (another than the one who entered it) approves them.
    ("GET", "/scorecard/v1/public", "AAAAAAA"),
    ("GET", "/scorecard/v1/kpis", "UAAAFFA"),
    ("GET", "/scorecard/v1/kpis/{slug}", "UAAAFFA"),
    ("POST", "/scorecard/v1/kpis/{slug}/submissions", "UFAAFFA"),
    ("POST", "/scorecard/v1/kpis/{slug}/confirm", "UFAAFFA"),
    ("GET", "/scorecard/v1/submissions", "UAAAFFA"),
    ("POST", "/scorecard/v1/submissions/{id}/approve", "UFFAFFF"),
    ("POST", "/scorecard/v1/submissions/{id}/reject", "UFFAFFF"),
    ("POST", "/scorecard/v1/recompute", "UFAAFFA"),
    ("POST", "/scorecard/v1/plan", "UFFAFFF"),
    ("GET", "/scorecard/v1/tasks", "UAAAFFA"),
    ("PATCH", "/scorecard/v1/tasks/{number}", "UFAAFFA"),
    ("GET", "/scorecard/v1/members", "UFFAFFF"),
    ("GET", "/scorecard/v1/members/me", "UAAAFFA"),
    ("PUT", "/scorecard/v1/members/{actor}", "UFFAFFF"),
    ("GET", "/scorecard/v1/maturity", "UAAAFFA"),
    ("PUT", "/scorecard/v1/maturity/criteria", "UFFAFFF"),
    ("PUT", "/scorecard/v1/maturity/{ward}/{code}", "UFAAFFA"),
    ("GET", "/scorecard/v1/dti", "UAAAFFA"),
    ("GET", "/scorecard/v1/egov", "UAAAFFA"),
    ("POST", "/scorecard/v1/egov/dossiers", "UFAAFFA"),
    ("GET", "/scorecard/v1/export.xlsx", "UAAAFFA"),
    ("POST", "/scorecard/v1/egov/portal-scores", "UFAAFFA"),
    ("POST", "/scorecard/v1/egov/portal-scores.csv", "UFAAFFA"),
    ("POST", "/scorecard/v1/evidence", "UFAAFFA"),
    ("GET", "/scorecard/v1/evidence/{id}", "UAAAFFA"),
];

/// Rights a handler decides beyond the route's permission: (method, route, case,
/// expected). The CKAN actions share one route; those that publish are for admins,
/// and CKAN clients expect 403 ("Authorization Error"), not 401, without a key.
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/api/3/action/{action}",
        "package_create",
        "FFFAFFF",
    ),
    (
        "POST",
        "/api/3/action/{action}",
        "package_update",
        "FFFAFFF",
    ),
    ("POST", "/api/3/action/{action}", "package_patch", "FFFAFFF"),
    (
        "POST",
        "/api/3/action/{action}",
        "package_delete",
        "FFFAFFF",
    ),
    (
        "POST",
        "/api/3/action/{action}",
        "organization_create",
        "FFFAFFF",
    ),
    ("GET", "/api/3/action/{action}", "package_create", "FFFAFFF"),
    ("POST", "/api/action/{action}", "package_create", "FFFAFFF"),
    // Four eyes: a value is decided by another than the one who entered it, even an
    // admin (the value is entered by the caller when its role may, else by the
    // operator).
    (
        "POST",
        "/scorecard/v1/submissions/{id}/approve",
        "own",
        "UFFFFFF",
    ),
    (
        "POST",
        "/scorecard/v1/submissions/{id}/reject",
        "own",
        "UFFFFFF",
    ),
];

fn asset_paths() -> BTreeSet<&'static str> {
    web::assets::ASSETS.iter().map(|a| a.path).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_covers_exactly_the_declared_routes() {
    let s = Server::start().await;
    let assets = asset_paths();
    assert!(!assets.is_empty(), "the web app embeds its front-end");
    let table: BTreeSet<(&str, &str)> = TABLE.iter().map(|(m, p, _)| (*m, *p)).collect();
    assert_eq!(table.len(), TABLE.len(), "a route is twice in the table");
    let mut problems = Vec::new();
    let mut declared = BTreeSet::new();
    for r in &s.rules {
        if !declared.insert((r.method, r.path)) {
            problems.push(format!("{} {} is declared twice", r.method, r.path));
        }
        let covered = table.contains(&(r.method, r.path))
            || (r.method == "GET" && assets.contains(r.path) && table.contains(&("GET", ASSETS)));
        if !covered {
            problems.push(format!(
                "{} {} is declared ({:?}) but not in the table",
                r.method, r.path, r.permission
            ));
        }
    }
    // Every service of `dothi serve` is there.
    for prefix in [
        "/ngsi-ld/v1/",
        "/auth/v1/",
        "/iot/",
        "/ioc/api/",
        "/open311/v2/",
        "/reports/v1/",
        "/api/3/action/",
        "/alerts/v1/",
        "/scorecard/v1/",
    ] {
        if !declared.iter().any(|(_, p)| p.starts_with(prefix)) {
            problems.push(format!("no route under {prefix} is declared"));
        }
    }
    for (m, p) in &table {
        if *p == ASSETS {
            continue;
        }
        if !declared.contains(&(*m, *p)) {
            problems.push(format!("the table has {m} {p}, which nobody declares"));
        }
    }
    for (m, p, c, _) in CASES {
        if !declared.contains(&(*m, *p)) {
            problems.push(format!("the case {c} of {m} {p} is of no declared route"));
        }
    }
    for expected in TABLE
        .iter()
        .map(|(_, _, e)| e)
        .chain(CASES.iter().map(|(_, _, _, e)| e))
    {
        assert!(
            expected.len() == WHO.len() && expected.chars().all(|c| "AUF".contains(c)),
            "{expected}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The Open311 category the matrix files its reports in, and a point of Đông Hà.
const CATEGORY: &str = "duong-hu-hong";
const DONG_HA: (&str, &str) = ("16.8163", "107.1003");
/// The KPI values are entered for, and one of the plan's wards.
const KPI: &str = "digital-economy-grdp";
const WARD: &str = "19333";

/// What the requests of the matrix act on, made once.
struct World {
    s: Server,
    /// A report with a reporter's contact, and its tracking token.
    report: String,
    token: String,
    /// An alert of the rule `matrix`.
    alert: String,
}

/// Files a report as `client` (with a contact); its id and tracking token.
async fn file_report(s: &Server, client: &reqwest::Client) -> (String, String) {
    let email = format!("{}@example.vn", unique("reporter"));
    let r = client
        .post(s.url("/open311/v2/requests.json"))
        .form(&[
            ("service_code", CATEGORY),
            ("lat", DONG_HA.0),
            ("long", DONG_HA.1),
            ("description", "Ổ gà trên đường"),
            ("email", &email),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    (
        v[0]["service_request_id"].as_str().unwrap().to_string(),
        v[0]["token"].as_str().unwrap().to_string(),
    )
}

/// Enters a value of [`KPI`] with `key`; the submission's id.
async fn submission(s: &Server, key: &str) -> String {
    let r = client(Some(key))
        .post(s.url(&format!("/scorecard/v1/kpis/{KPI}/submissions")))
        .json(&submission_body())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The smallest evidence file: a PDF of one empty page.
const MATRIX_PDF: &str = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
    2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
    3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n\
    trailer << /Root 1 0 R >>\n%%EOF\n";

fn submission_body() -> Value {
    json!({
        "value": 12.5, "periodEnd": "2025-12-31",
        "evidenceUrl": "https://thongke.quangtri.gov.vn/bao-cao-2025.pdf"
    })
}

fn alert_rule(id: &str) -> Value {
    json!({
        "id": id,
        "scope": {"type": "MatrixGauge"},
        "condition": {"kind": "threshold", "attribute": "waterLevel", "op": ">=", "value": 3.0},
        "severity": "high"
    })
}

/// A policy, silence or inhibition of `/alerts/v1/{plural}` (without its id). The
/// policy matches no alert, so it never sends anything.
fn alert_record(plural: &str) -> Value {
    let never = json!([{"name": "matrix", "value": "never"}]);
    match plural {
        "policies" => json!({
            "match": {"labels": never},
            "channels": [{"kind": "mqtt", "url": "mqtt://broker.example.org/dothi-matrix"}]
        }),
        "silences" => json!({
            "matchers": never,
            "endsAt": ngsi::entity::format_time(&(ngsi::entity::now() + chrono::TimeDelta::days(1)))
        }),
        _ => json!({"source": never, "target": never, "equal": ["entity"]}),
    }
}

/// Creates, as the admin, what [`prepare`] asks for: sends `request`, which must
/// get 200 or 201 (or 409 if made before).
async fn made(request: reqwest::RequestBuilder) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    assert!(
        matches!(status, 200 | 201 | 204 | 409),
        "{status} {}",
        r.text().await.unwrap()
    );
}

/// What the requests of the matrix need: the callers, a user, reports, an alert,
/// the plan, a dataset.
async fn fixtures(s: Server) -> World {
    let mut operator = String::new();
    for (secret, name, role, tenant) in [
        (VIEWER_KEY, "viewer", Role::Viewer, ""),
        (OPERATOR_KEY, "operator", Role::Operator, ""),
        (OTHER_KEY, "other", Role::Operator, "other"),
        (CITIZEN_KEY, "citizen", Role::Citizen, ""),
    ] {
        let actor = ensure_key(&s.state, secret, name, role, &[tenant], None).await;
        if secret == OPERATOR_KEY {
            operator = actor;
        }
    }
    let seer = ensure_key(&s.state, SEER_KEY, "seer", Role::Operator, &[""], None).await;
    made(
        s.admin
            .put(s.url(&format!("/reports/v1/reporter-access/{seer}")))
            .json(&json!({"agencies": ["*"]})),
    )
    .await;
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
    // Citizen reports: the demo's categories, one report with a contact.
    s.reports
        .put_categories(
            &hub::Scope::system("matrix", ""),
            reports::demo::categories(),
        )
        .await
        .unwrap();
    let (report, token) = file_report(&s, &s.admin).await;
    // An alert: a rule, a gauge above it, an evaluation.
    made(
        s.admin
            .post(s.url("/alerts/v1/rules"))
            .json(&alert_rule("matrix")),
    )
    .await;
    made(s.admin.post(s.url("/ngsi-ld/v1/entities")).json(
        &json!({"id": "urn:ngsi-ld:MatrixGauge:1", "type": "MatrixGauge", "waterLevel": 5.0}),
    ))
    .await;
    s.alerts.evaluate_all().await.unwrap();
    let r = s
        .admin
        .get(s.url("/alerts/v1/alerts?rule=matrix"))
        .send()
        .await
        .unwrap();
    let alerts: Value = r.json().await.unwrap();
    let alert = alerts["alerts"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an alert in {alerts}"))
        .to_string();
    // The plan's KPIs and task groups; both operators act for the agencies that own
    // the KPIs and the task group the matrix writes.
    s.scorecard.seed("").await.unwrap();
    for actor in [&operator, &seer] {
        made(
            s.admin
                .put(s.url(&format!("/scorecard/v1/members/{actor}")))
                .json(&json!({"agencies": [
                    scorecard::plan::DEPT_SCIENCE,
                    scorecard::plan::STATISTICS_OFFICE,
                    scorecard::plan::PROVINCE_OFFICE,
                ]})),
        )
        .await;
    }
    // A dataset of the open data portal.
    for (action, body) in [
        (
            "organization_create",
            json!({"name": "matrix-org", "title": "Ma trận"}),
        ),
        (
            "package_create",
            json!({
                "name": "matrix-data", "title": "Ma trận", "notes": "Thử nghiệm",
                "owner_org": "matrix-org", "license_id": "cc-by-4.0",
                "ngsi_ld_view": {"types": ["Matrix"], "attrs": ["temperature"]}
            }),
        ),
    ] {
        made(
            s.admin
                .post(s.url(&format!("/api/3/action/{action}")))
                .json(&body),
        )
        .await;
    }
    World {
        s,
        report,
        token,
        alert,
    }
}

fn entity_id(who: Who) -> String {
    format!("urn:ngsi-ld:Matrix:{}", who.tag())
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Makes what one request of `who` on `path` (in the `case` of a shared route) acts
/// on exist (as the admin); returns the values of the path's parameters and the
/// query.
async fn prepare(
    w: &World,
    method: &str,
    path: &str,
    case: Option<&str>,
    who: Who,
) -> (BTreeMap<&'static str, String>, String) {
    let s = &w.s;
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
    // No hosted @context of that id: 404 once let in.
    if path == "/ngsi-ld/v1/jsonldContexts/{id}" {
        params.insert("id", "00000000-0000-0000-0000-000000000000".into());
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
        for (provision, body) in [
            (
                "/iot/services",
                json!({"services": [{"apikey": "matrix-apikey", "entity_type": "Matrix", "resource": "/iot/json"}]}),
            ),
            (
                "/iot/devices",
                json!({"devices": [{"device_id": "matrix-dev", "apikey": "matrix-apikey", "entity_type": "Matrix"}]}),
            ),
        ] {
            let r = admin
                .post(s.url(provision))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(
                matches!(r.status().as_u16(), 201 | 409),
                "{}",
                r.text().await.unwrap()
            );
        }
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
        "/open311/v2/{file}" => {
            params.insert("file", "requests.json".into());
        }
        "/open311/v2/services/{file}" => {
            params.insert("file", format!("{CATEGORY}.json"));
        }
        "/open311/v2/requests/{file}" => {
            params.insert("file", format!("{}.json", w.report));
        }
        "/open311/v2/tokens/{file}" => {
            params.insert("file", format!("{}.json", w.token));
        }
        // No photo of that name: whoever asks, 404.
        "/reports/v1/media/{file}" => {
            params.insert("file", "0123456789abcdef0123456789abcdef.jpg".into());
        }
        // Acting on a report: a fresh one each time.
        "/reports/v1/requests/{id}/actions" => {
            params.insert("id", file_report(s, admin).await.0);
        }
        "/reports/v1/requests/{id}" | "/reports/v1/requests/{id}/reporter" => {
            params.insert("id", w.report.clone());
        }
        // One support per address and report: a fresh report each time.
        "/reports/v1/requests/{id}/support" => {
            params.insert("id", file_report(s, admin).await.0);
        }
        // A right granted (and taken back) for an actor that does not exist.
        "/reports/v1/reporter-access/{actor}" => {
            params.insert("actor", "key:matrix-nobody".into());
        }
        "/reports/v1/nearby" => {
            query = format!(
                "lat={}&long={}&service_code={CATEGORY}",
                DONG_HA.0, DONG_HA.1
            );
        }
        "/reports/v1/holidays/{year}" => {
            params.insert("year", "2031".into());
        }
        "/reports/v1/track/{token}"
        | "/reports/v1/track/{token}/contact"
        | "/reports/v1/track/{token}/rating" => {
            params.insert("token", w.token.clone());
        }
        "/api/3/action/{action}" | "/api/action/{action}" => {
            let action = case.unwrap_or(if method == "GET" {
                "package_list"
            } else {
                "package_search"
            });
            params.insert("action", action.to_string());
            if method == "GET" && case.is_some() {
                query = format!("name={}", unique("matrix-get"));
            }
        }
        "/dataset/{file}" => {
            params.insert("file", "matrix-data.ttl".into());
        }
        "/dataset/{name}/{file}" => {
            params.insert("name", "matrix-data".into());
            params.insert("file", "data.csv".into());
        }
        "/alerts/v1/rules/{id}" if method == "GET" => {
            params.insert("id", "matrix".into());
        }
        // Changing or deleting a rule: a fresh one each time.
        "/alerts/v1/rules/{id}" => {
            let rule = unique(&format!("matrix-{}", who.tag()));
            made(
                admin
                    .post(s.url("/alerts/v1/rules"))
                    .json(&alert_rule(&rule)),
            )
            .await;
            params.insert("id", rule);
        }
        // A policy, silence or inhibition: a fresh one each time.
        "/alerts/v1/policies/{id}" | "/alerts/v1/silences/{id}" | "/alerts/v1/inhibitions/{id}" => {
            let plural = path.split('/').nth(3).unwrap();
            let id = unique(&format!("matrix-{}", who.tag()));
            let mut body = alert_record(plural);
            body["id"] = json!(id);
            made(
                admin
                    .post(s.url(&format!("/alerts/v1/{plural}")))
                    .json(&body),
            )
            .await;
            params.insert("id", id);
        }
        "/alerts/v1/alerts/{id}"
        | "/alerts/v1/alerts/{id}/acknowledge"
        | "/alerts/v1/alerts/{id}/assign"
        | "/alerts/v1/alerts/{id}/resolve" => {
            params.insert("id", w.alert.clone());
        }
        "/scorecard/v1/kpis/{slug}" | "/scorecard/v1/kpis/{slug}/submissions" => {
            params.insert("slug", KPI.into());
        }
        // The plan's KPI in confirmed mode (without a value yet: 400 once let in).
        "/scorecard/v1/kpis/{slug}/confirm" => {
            params.insert("slug", "smart-city-wards".into());
        }
        // A decision is on a fresh value, entered by the operator (in the case `own`,
        // by the caller when it may).
        "/scorecard/v1/submissions/{id}/approve" | "/scorecard/v1/submissions/{id}/reject" => {
            let key = match (case, who) {
                (Some("own"), Who::Operator | Who::Admin | Who::Seer) => who.key(),
                _ => None,
            };
            params.insert("id", submission(s, key.unwrap_or(OPERATOR_KEY)).await);
        }
        "/scorecard/v1/tasks/{number}" => {
            params.insert("number", "3".into());
        }
        // A membership granted to an actor that does not exist.
        "/scorecard/v1/members/{actor}" => {
            params.insert("actor", "key:matrix-nobody".into());
        }
        "/scorecard/v1/egov/portal-scores.csv" => {
            query = "department=44&periodEnd=2025-12-31&evidenceUrl=https%3A%2F%2Fdichvucong.gov.vn%2Fp%2Fhome".into();
        }
        // A file uploaded by the admin.
        "/scorecard/v1/evidence/{id}" => {
            let r = admin
                .post(s.url("/scorecard/v1/evidence?name=matrix.pdf"))
                .header("content-type", "application/pdf")
                .body(MATRIX_PDF)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 201, "{v}");
            let href = v["href"].as_str().unwrap();
            params.insert("id", href.rsplit('/').next().unwrap().to_string());
        }
        "/scorecard/v1/maturity/{ward}/{code}" => {
            params.insert("ward", WARD.into());
            params.insert("code", "B1.1".into());
        }
        _ => {}
    }
    (params, query)
}

/// What a request carries.
enum Payload {
    Json(Value),
    Form(Vec<(&'static str, String)>),
    Text(&'static str, String),
}

/// A small valid body for a write.
async fn payload(
    w: &World,
    method: &str,
    path: &str,
    case: Option<&str>,
    who: Who,
) -> Option<Payload> {
    let s = &w.s;
    Some(match (method, path) {
        ("POST", "/iot/json/attrs/{name}") => Payload::Text("text/plain", "22.5".into()),
        ("POST", "/open311/v2/{file}") => Payload::Form(vec![
            ("service_code", CATEGORY.into()),
            ("lat", DONG_HA.0.into()),
            ("long", DONG_HA.1.into()),
            ("description", "Đèn đường hỏng".into()),
            ("email", format!("{}@example.vn", unique(who.tag()))),
        ]),
        ("POST", "/reports/v1/requests/{id}/actions") => {
            Payload::Json(json!({"action": "accept", "note": "đã tiếp nhận"}))
        }
        ("POST", "/reports/v1/actions") => Payload::Json(json!({
            "ids": [file_report(s, &s.admin).await.0],
            "action": {"action": "accept"}
        })),
        ("PUT", "/reports/v1/reporter-access/{actor}") => {
            Payload::Json(json!({"agencies": ["Sở Xây dựng"]}))
        }
        ("POST", "/reports/v1/categories") => {
            let mine: Vec<_> = reports::demo::categories()
                .into_iter()
                .filter(|c| c.service_code == CATEGORY)
                .collect();
            Payload::Json(json!(mine))
        }
        ("PUT", "/reports/v1/holidays/{year}") => Payload::Json(json!([
            {"date": "2031-01-01", "name": "Tết Dương lịch"}
        ])),
        // The report is not resolved yet: once let in, the rating is refused (422).
        ("POST", "/reports/v1/track/{token}/rating") => Payload::Json(json!({"rating": 5})),
        ("POST", "/api/3/action/{action}" | "/api/action/{action}") => Payload::Json(match case {
            Some("package_create") => json!({
                "name": unique("matrix-new"), "title": "Ma trận", "notes": "Thử nghiệm",
                "owner_org": "matrix-org", "license_id": "cc-by-4.0",
                "ngsi_ld_view": {"types": ["Matrix"], "attrs": ["temperature"]}
            }),
            Some("package_update" | "package_patch") => {
                json!({"id": "matrix-data", "notes": "Đã sửa"})
            }
            // A dataset that does not exist: deleting it is 404 for an admin.
            Some("package_delete") => json!({"id": "matrix-nothing"}),
            Some("organization_create") => {
                json!({"name": unique("matrix-org"), "title": "Ma trận"})
            }
            _ => json!({"q": "Ma trận"}),
        }),
        ("POST", "/alerts/v1/rules") => {
            Payload::Json(alert_rule(&unique(&format!("matrix-{}", who.tag()))))
        }
        ("PUT", "/alerts/v1/rules/{id}") => {
            let mut r = alert_rule("ignored");
            r.as_object_mut().unwrap().remove("id");
            r["severity"] = json!("critical");
            Payload::Json(r)
        }
        ("POST", "/alerts/v1/alerts/{id}/acknowledge" | "/alerts/v1/alerts/{id}/resolve") => {
            Payload::Json(json!({"comment": "đã xem"}))
        }
        ("POST", "/alerts/v1/alerts/{id}/assign") => {
            Payload::Json(json!({"assignee": "doi-truc", "comment": "xử lý"}))
        }
        ("POST" | "PUT", "/alerts/v1/policies" | "/alerts/v1/silences" | "/alerts/v1/inhibitions"
            | "/alerts/v1/policies/{id}" | "/alerts/v1/silences/{id}" | "/alerts/v1/inhibitions/{id}") => {
            Payload::Json(alert_record(path.split('/').nth(3).unwrap()))
        }
        ("POST", "/alerts/v1/backtest") => Payload::Json(json!({
            "rule": alert_rule("matrix-backtest"),
            "from": "2025-01-01T00:00:00Z", "to": "2025-01-02T00:00:00Z"
        })),
        ("POST", "/scorecard/v1/kpis/{slug}/submissions") => Payload::Json(submission_body()),
        ("POST", "/scorecard/v1/kpis/{slug}/confirm") => Payload::Json(json!({"value": 1})),
        ("PUT", "/scorecard/v1/members/{actor}") => {
            Payload::Json(json!({"agencies": ["Sở Xây dựng"]}))
        }
        ("POST", "/scorecard/v1/submissions/{id}/approve") => Payload::Json(json!({})),
        ("POST", "/scorecard/v1/submissions/{id}/reject") => {
            Payload::Json(json!({"reason": "thiếu minh chứng"}))
        }
        ("PATCH", "/scorecard/v1/tasks/{number}") => {
            Payload::Json(json!({"status": "inProgress", "progress": 40}))
        }
        ("PUT", "/scorecard/v1/maturity/criteria") => Payload::Json(json!({
            "draft": false, "source": "Phụ lục",
            "criteria": [{"code": "B1.1", "group": "B1", "level": 1, "text": "Tiêu chí",
                          "evidenceRequired": "Biên bản"}]
        })),
        ("PUT", "/scorecard/v1/maturity/{ward}/{code}") => Payload::Json(json!({
            "result": "pass", "evidence": ["https://quangtri.gov.vn/bien-ban.pdf"]
        })),
        ("POST", "/scorecard/v1/egov/dossiers") => Payload::Text(
            "text/csv",
            "dossier_id,agency,received,due,finished,channel,fee,online_payment,digitised,supplements,supplement_days\n\
             m1,SXD,2026-10-01,2026-10-10,2026-10-09,2,1,1,1,0,0\n"
                .into(),
        ),
        ("POST", "/scorecard/v1/evidence") => Payload::Text("application/pdf", MATRIX_PDF.into()),
        ("POST", "/scorecard/v1/egov/portal-scores.csv") => Payload::Text(
            "text/csv",
            "departmentCode,totalScore,CKMB,TDGQ,CLGQ,TTTT,MDSH,MDHL\n44,71.5,17,15.5,9,6,12,12\n"
                .into(),
        ),
        ("POST", "/scorecard/v1/egov/portal-scores") => Payload::Json(json!({
            "export": {"data": {"evaluation": [{"departmentCode": "44", "totalScore": 71.5,
                "groupScores": {"CKMB": 17.0, "TDGQ": 15.5, "CLGQ": 9.0, "TTTT": 6.0,
                                "MDSH": 12.0, "MDHL": 12.0}}]}},
            "department": "44", "periodEnd": "2025-12-31",
            "evidenceUrl": "https://dichvucong.gov.vn/p/home/dvc-danh-gia-chat-luong.html"
        })),
        _ => return body(method, path, who).map(Payload::Json),
    })
}

/// A small valid body for a write of the hub, the identity API or the IoT agent.
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
        ("POST", "/ngsi-ld/v1/jsonldContexts") => {
            json!({"@context": {"matrix": "urn:ngsi-ld:Matrix:term"}})
        }
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
    let w = fixtures(Server::start().await).await;
    let s = &w.s;
    let assets = asset_paths();
    let mut rows: Vec<(String, String, Option<&str>, &str)> = Vec::new();
    for (m, p, e) in TABLE {
        if *p == ASSETS {
            rows.extend(
                assets
                    .iter()
                    .map(|a| (m.to_string(), a.to_string(), None, *e)),
            );
        } else {
            rows.push((m.to_string(), p.to_string(), None, *e));
        }
    }
    for (m, p, c, e) in CASES {
        rows.push((m.to_string(), p.to_string(), Some(*c), *e));
    }
    let mut wrong = Vec::new();
    let mut seen = BTreeMap::new();
    for (method, path, case, expected) in &rows {
        for (who, want) in WHO.iter().zip(expected.chars()) {
            let (params, query) = prepare(&w, method, path, *case, *who).await;
            let mut url = s.url(&fill(path, &params));
            if !query.is_empty() {
                url = format!("{url}?{query}");
            }
            let mut request =
                client(who.key()).request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
            match payload(&w, method, path, *case, *who).await {
                Some(Payload::Json(b)) => request = request.json(&b),
                Some(Payload::Form(pairs)) => request = request.form(&pairs),
                Some(Payload::Text(kind, text)) => {
                    request = request.header("content-type", kind).body(text)
                }
                None => {}
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
                    "{method} {path}{} as {}: expected {want}, got {status} {}",
                    case.map(|c| format!(" ({c})")).unwrap_or_default(),
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
