//! Access control through HTTP: deny by default, OIDC tokens and the attacks on them,
//! web sessions (cookie, CSRF token, logout, idle expiry, lockout, password policy),
//! the audit records of writes, refusals and logins, and the outbound policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hub::auth::identity::OidcIssuer;
use hub::auth::jwt::{self, testing};
use hub::{HubConfig, Permission, rule};
use reqwest::Client;
use serde_json::{Value, json};

use crate::common::*;

const TENANT: &str = "NGSILD-Tenant";

// ---- helpers

/// A key made by the admin: (its id, its secret).
pub(crate) async fn make_key(
    app: &App,
    name: &str,
    role: &str,
    tenants: &[&str],
) -> (String, String) {
    make_key_with(app, json!({"name": name, "role": role, "tenants": tenants})).await
}

async fn make_key_with(app: &App, body: Value) -> (String, String) {
    let r = send(with_json(
        app.client.post(format!("{}/auth/v1/keys", app.base)),
        &body,
    ))
    .await;
    assert_eq!(r.status, 201, "creating the key {body}: {}", r.text);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["key"].as_str().unwrap().to_string(),
    )
}

async fn make_user(app: &App, name: &str, password: &str, role: &str, tenants: &[&str]) {
    let r = send(with_json(
        app.client.post(format!("{}/auth/v1/users", app.base)),
        &json!({"username": name, "password": password, "role": role, "tenants": tenants}),
    ))
    .await;
    assert_eq!(r.status, 201, "creating the user {name}: {}", r.text);
}

/// A client with no credentials of its own.
fn anonymous() -> Client {
    client_with_key(None)
}

async fn login(app: &App, name: &str, password: &str) -> Resp {
    send(with_json(
        anonymous().post(format!("{}/auth/v1/login", app.base)),
        &json!({"username": name, "password": password}),
    ))
    .await
}

/// The session cookie (`dothi_session=…`) a login answer sets, and its CSRF token.
#[track_caller]
fn session_of(r: &Resp) -> (String, String) {
    assert_eq!(r.status, 200, "login: {}", r.text);
    let set = r.header("set-cookie").expect("a login sets a cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "the session cookie is HttpOnly and SameSite=Strict: {set}"
    );
    let cookie = set.split(';').next().unwrap().trim().to_string();
    assert!(cookie.starts_with("dothi_session="), "{set}");
    let csrf = r.body["csrf"].as_str().expect("a CSRF token").to_string();
    (cookie, csrf)
}

async fn me(app: &App, client: &Client, cookie: Option<&str>) -> Resp {
    let mut rb = client.get(format!("{}/auth/v1/me", app.base));
    if let Some(c) = cookie {
        rb = rb.header("cookie", c);
    }
    send(rb).await
}

/// Waits (up to 5 s) for the audit record of a request refused to the key `key_id`.
async fn audited_refusal(app: &App, what: &str, key_id: &str) -> Value {
    let actor = format!("key:{key_id}");
    audited(app, what, |r| {
        r["actor"] == actor.as_str() && r["outcome"] == "refused"
    })
    .await
}

/// A query of the gauges with a session cookie and nothing else.
async fn gauges_with_cookie(app: &App, browser: &Client, cookie: &str) -> Resp {
    send(
        browser
            .get(app.url("/entities"))
            .query(&[("type", "Gauge")])
            .header("cookie", cookie),
    )
    .await
}

/// A 403 ProblemDetails.
#[track_caller]
fn assert_forbidden(r: &Resp) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["type"], "urn:dothi:errors:Forbidden", "{}", r.text);
    assert!(r.body["detail"].is_string(), "{}", r.text);
}

#[track_caller]
fn assert_unauthenticated(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: a 401 says how to authenticate: {:?}",
        r.headers
    );
}

/// The audit records the filter `query` selects, newest first.
async fn audit(app: &App, query: &[(&str, &str)]) -> Vec<Value> {
    let r = send(
        app.client
            .get(format!("{}/auth/v1/audit", app.base))
            .query(query),
    )
    .await;
    assert_eq!(r.status, 200, "the audit log: {}", r.text);
    r.body["records"].as_array().unwrap().clone()
}

/// Waits (up to 5 s) for an audit record that `found` accepts.
async fn audited(app: &App, what: &str, found: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let records = audit(app, &[("limit", "1000")]).await;
        if let Some(r) = records.iter().find(|r| found(r)) {
            return r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no audit record of {what} in {}",
            serde_json::to_string_pretty(&records).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn actor_of(app: &App, key: &str) -> String {
    let r = me(app, &client_with_key(Some(key)), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["actor"].as_str().unwrap().to_string()
}

// ---- deny by default

/// A component with a route it declares nothing for, and a route that declares GET
/// but also answers POST: neither undeclared pair reaches its handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_a_declaration_is_refused() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hits = reached.clone();
    let app = App::start_exact(HubConfig::default(), move |_| {
        let handler = move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "reached"
            }
        };
        vec![
            hub::Component {
                router: axum::Router::new()
                    .route("/dummy/undeclared", axum::routing::get(handler.clone()))
                    .route(
                        "/dummy/half",
                        axum::routing::get(handler.clone()).post(handler.clone()),
                    ),
                rules: vec![rule("GET", "/dummy/half", Permission::Read)],
            },
            // A component with an empty rule list: every route of it is refused.
            hub::Component {
                router: axum::Router::new().route("/dummy/empty", axum::routing::get(handler)),
                rules: Vec::new(),
            },
        ]
    })
    .await;
    let url = |p: &str| format!("{}{p}", app.base);
    for path in ["/dummy/undeclared", "/dummy/empty"] {
        // Neither an admin nor anybody else.
        let r = send(app.client.get(url(path))).await;
        assert_forbidden(&r);
        let r = send(anonymous().get(url(path))).await;
        assert_forbidden(&r);
        let r = send(app.client.post(url(path))).await;
        assert_eq!(r.status, 403, "POST {path}: {}", r.text);
    }
    // A method the path does not declare never reaches its handler, whoever asks:
    // the door answers 405 and names the declared methods.
    for client in [app.client.clone(), anonymous()] {
        let r = send(client.post(url("/dummy/half"))).await;
        assert_problem(&r, 405, "MethodNotAllowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{:?}", r.headers);
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "no handler ran");
    // The declared method works, with its permission.
    let r = send(anonymous().get(url("/dummy/half"))).await;
    assert_unauthenticated(&r, "anonymous GET of a Read route");
    let r = send(app.client.get(url("/dummy/half"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

// ---- OIDC tokens

const ISSUER: &str = "https://id.dothi.test/realms/quangtri";

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn claims(overrides: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": ISSUER,
        "aud": "dothi",
        "sub": "mai.tran",
        "iat": now,
        "exp": now + 600,
        "dothi_role": "operator",
        "dothi_tenants": ["default"],
    });
    for (k, v) in overrides.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_verified_and_forgeries_refused() {
    let (es, es_jwk) = testing::es256_key("es-1");
    let (rs, rs_jwk) = testing::rs256_key("rs-1");
    let mut config = HubConfig::default();
    config.identity.oidc.push(OidcIssuer {
        issuer: ISSUER.into(),
        audiences: vec!["dothi".into()],
        keys: Arc::new(hub::auth::oidc::KeySource::fixed(
            jwt::Jwks::from_json(&testing::jwks(&[&es_jwk, &rs_jwk])).unwrap(),
        )),
        role_claim: "dothi_role".into(),
        tenants_claim: "dothi_tenants".into(),
    });
    let app = App::start_with(config).await;
    app.create(json!({"id": "urn:ngsi-ld:Gauge:1", "type": "Gauge", "level": 1.5}))
        .await;
    let r = send(
        app.post(
            "/entities",
            &json!({"id": "urn:ngsi-ld:Gauge:hue", "type": "Gauge", "level": 2}),
        )
        .header(TENANT, "hue"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let es_header = r#"{"alg":"ES256","typ":"JWT","kid":"es-1"}"#;
    let rs_header = r#"{"alg":"RS256","typ":"JWT","kid":"rs-1"}"#;
    let read = |token: String| {
        client_with_key(Some(&token))
            .get(app.url("/entities/urn:ngsi-ld:Gauge:1"))
            .send()
    };

    // A good token: an operator of the default tenant.
    let good = testing::sign(es_header, &claims(json!({})), &es);
    let r = send(
        client_with_key(Some(&good))
            .get(app.url("/entities/urn:ngsi-ld:Gauge:1"))
            .header("accept", JSON),
    )
    .await;
    assert_eq!(r.status, 200, "a good ES256 token reads: {}", r.text);
    assert_eq!(r.body["level"]["value"], 1.5);
    let r = me(&app, &client_with_key(Some(&good)), None).await;
    assert_eq!(r.body["via"], "token", "{}", r.text);
    assert_eq!(r.body["role"], "operator");
    assert_eq!(r.body["actor"], format!("oidc:{ISSUER}#mai.tran"));
    // It writes too (an operator), but not in a tenant it is not granted.
    let r = send(with_json(
        client_with_key(Some(&good)).post(app.url("/entities")),
        &json!({"id": "urn:ngsi-ld:Gauge:2", "type": "Gauge", "level": 3}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(
        client_with_key(Some(&good))
            .get(app.url("/entities/urn:ngsi-ld:Gauge:hue"))
            .header(TENANT, "hue"),
    )
    .await;
    assert_forbidden(&r);
    // RS256 is accepted as well; a viewer's token reads but does not write.
    let viewer = testing::sign(rs_header, &claims(json!({"dothi_role": "viewer"})), &rs);
    let r =
        send(client_with_key(Some(&viewer)).get(app.url("/entities/urn:ngsi-ld:Gauge:1"))).await;
    assert_eq!(r.status, 200, "a good RS256 token reads: {}", r.text);
    let r = send(with_json(
        client_with_key(Some(&viewer)).post(app.url("/entities")),
        &json!({"id": "urn:ngsi-ld:Gauge:3", "type": "Gauge", "level": 3}),
    ))
    .await;
    assert_forbidden(&r);

    // Forgeries and bad tokens: 401, each.
    let (other_key, _) = testing::es256_key("es-1");
    let now = chrono::Utc::now().timestamp();
    let good_claims = claims(json!({}));
    let mut bad: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&good_claims)
            ),
        ),
        (
            "alg none with the good signature",
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"none","typ":"JWT","kid":"es-1"}"#),
                b64(&good_claims),
                good.rsplit('.').next().unwrap()
            ),
        ),
        (
            "signed with another key of the same kid",
            testing::sign(es_header, &good_claims, &other_key),
        ),
        (
            "expired an hour ago",
            testing::sign(
                es_header,
                &claims(json!({"exp": now - 3600, "iat": now - 7200})),
                &es,
            ),
        ),
        (
            "for another audience",
            testing::sign(es_header, &claims(json!({"aud": "another-app"})), &es),
        ),
        (
            "from another issuer",
            testing::sign(
                es_header,
                &claims(json!({"iss": "https://evil.example/"})),
                &es,
            ),
        ),
        (
            "naming no role of dothi",
            testing::sign(es_header, &claims(json!({"dothi_role": "superuser"})), &es),
        ),
        ("claims changed after signing", {
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1] = b64(&claims(
                json!({"dothi_role": "admin", "dothi_tenants": ["*"]}),
            ));
            parts.join(".")
        }),
    ];
    // HS256 keyed with the public key, in the forms an attacker would try.
    let rs_n = serde_json::from_str::<Value>(&rs_jwk).unwrap()["n"]
        .as_str()
        .unwrap()
        .to_string();
    for (what, secret) in [
        (
            "HS256 keyed with the public JWK",
            rs_jwk.as_bytes().to_vec(),
        ),
        (
            "HS256 keyed with the public modulus",
            URL_SAFE_NO_PAD.decode(&rs_n).unwrap(),
        ),
        (
            "HS256 keyed with the public EC JWK",
            es_jwk.as_bytes().to_vec(),
        ),
    ] {
        for kid in ["rs-1", "es-1"] {
            let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
            let input = format!("{}.{}", b64(&header), b64(&good_claims));
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
            let tag = ring::hmac::sign(&key, input.as_bytes());
            bad.push((
                what,
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            ));
        }
    }
    for (what, token) in bad {
        let response = read(token.clone()).await.unwrap();
        let status = response.status().as_u16();
        let challenge = response.headers().get("www-authenticate").cloned();
        let text = response.text().await.unwrap();
        assert_eq!(status, 401, "a token {what} is refused: {text}");
        assert!(
            challenge.is_some(),
            "{what}: a 401 says how to authenticate"
        );
        assert!(
            !text.contains("1.5"),
            "{what}: nothing of the entity: {text}"
        );
        // Nor does it pass on a public route or as a cookie.
        let r = send(client_with_key(Some(&token)).get(format!("{}/auth/v1/me", app.base))).await;
        assert_eq!(r.status, 401, "{what} on /auth/v1/me: {}", r.text);
    }
}

// ---- sessions

const PASSWORD: &str = "Sông Hương chảy qua Huế";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_needs_its_csrf_token_to_write_and_ends_at_logout() {
    let app = App::start().await;
    make_user(&app, "lan", PASSWORD, "operator", &[""]).await;
    let browser = anonymous();
    let r = me(&app, &browser, None).await;
    assert_unauthenticated(&r, "no cookie");

    let (cookie, csrf) = session_of(&login(&app, "lan", PASSWORD).await);
    let r = me(&app, &browser, Some(&cookie)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["via"], "session");
    assert_eq!(r.body["actor"], "user:lan");
    assert_eq!(r.body["csrf"], csrf.as_str());

    // Admins see the session, never its token or CSRF token.
    let r = send(
        app.client
            .get(format!("{}/auth/v1/sessions?user=lan", app.base)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.body[0]["username"], "lan");
    let token = cookie.trim_start_matches("dothi_session=");
    assert!(
        !r.text.contains(&csrf) && !r.text.contains(token) && r.body[0].get("csrf").is_none(),
        "{}",
        r.text
    );
    // Reads with the cookie need nothing else.
    let r = gauges_with_cookie(&app, &browser, &cookie).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A write without the CSRF token, or with a wrong one, is refused.
    let entity = json!({"id": "urn:ngsi-ld:Gauge:csrf", "type": "Gauge", "level": 1});
    for token in [None, Some("not-the-token"), Some("")] {
        let mut rb =
            with_json(browser.post(app.url("/entities")), &entity).header("cookie", &cookie);
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        let r = send(rb).await;
        assert_forbidden(&r);
    }
    let r = send(app.get("/entities/urn:ngsi-ld:Gauge:csrf")).await;
    assert_eq!(r.status, 404, "the refused write wrote nothing: {}", r.text);
    // With it, allowed.
    let r = send(
        with_json(browser.post(app.url("/entities")), &entity)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Logging out is a write too.
    let logout = || browser.post(format!("{}/auth/v1/logout", app.base));
    let r = send(logout().header("cookie", &cookie)).await;
    assert_forbidden(&r);
    let r = send(
        logout()
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.starts_with("dothi_session=;") && c.contains("Max-Age=0")),
        "logout removes the cookie: {:?}",
        r.headers
    );
    // The session is over: the cookie is worth nothing.
    let r = me(&app, &browser, Some(&cookie)).await;
    assert_unauthenticated(&r, "after logout");
    let r = send(
        with_json(browser.post(app.url("/entities")), &entity)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_unauthenticated(&r, "a write after logout");
    // A made-up cookie is nobody.
    let r = me(&app, &browser, Some("dothi_session=made-up-token")).await;
    assert_unauthenticated(&r, "a made-up cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_after_its_idle_time_and_activity_keeps_it() {
    let mut config = HubConfig::default();
    config.identity.session_idle = Duration::from_secs(2);
    config.identity.admin_session_idle = Duration::from_secs(2);
    let app = App::start_with(config).await;
    make_user(&app, "huong", PASSWORD, "viewer", &[""]).await;
    let browser = anonymous();

    // Used every half second for twice its idle time, it stays open.
    let (cookie, _) = session_of(&login(&app, "huong", PASSWORD).await);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let r = me(&app, &browser, Some(&cookie)).await;
        assert_eq!(
            r.status,
            200,
            "a session in use stays open ({:?} after login): {}",
            start.elapsed(),
            r.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Left alone for longer than its idle time, it is over.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let r = me(&app, &browser, Some(&cookie)).await;
    assert_unauthenticated(&r, "an idle session");
    let r = gauges_with_cookie(&app, &browser, &cookie).await;
    assert_unauthenticated(&r, "a read with an idle session");
    let r = send(
        app.client
            .get(format!("{}/auth/v1/sessions?user=huong", app.base)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!([]), "the idle session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_an_account_until_an_admin_unlocks_it() {
    let app = App::start().await;
    make_user(&app, "binh", PASSWORD, "viewer", &[""]).await;
    for i in 1..=5 {
        let r = login(&app, "binh", &format!("wrong password {i}")).await;
        assert_unauthenticated(&r, &format!("wrong password {i}"));
        assert!(r.header("set-cookie").is_none());
    }
    // The sixth, with the right password, is refused: the account is locked.
    let r = login(&app, "binh", PASSWORD).await;
    assert_unauthenticated(&r, "the right password on a locked account");
    assert!(
        r.header("set-cookie").is_none(),
        "no session: {:?}",
        r.headers
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("locked"),
        "{}",
        r.text
    );
    let users = format!("{}/auth/v1/users/binh", app.base);
    let r = send(app.client.get(&users)).await;
    assert!(r.body["locked_until"].is_string(), "{}", r.text);
    // A user name spelled otherwise is the same account.
    let r = login(&app, "BINH", PASSWORD).await;
    assert_unauthenticated(&r, "another spelling of a locked account");
    // Unlocking is for admins.
    let unlock = json!({"unlock": true});
    let r = send(with_json(anonymous().patch(&users), &unlock)).await;
    assert_unauthenticated(&r, "an anonymous unlock");
    let (_, viewer) = make_key(&app, "viewer", "viewer", &[""]).await;
    let r = send(with_json(
        client_with_key(Some(&viewer)).patch(&users),
        &unlock,
    ))
    .await;
    assert_forbidden(&r);
    let r = login(&app, "binh", PASSWORD).await;
    assert_eq!(r.status, 401, "still locked: {}", r.text);
    let r = send(with_json(app.client.patch(&users), &unlock)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("locked_until").is_none(), "{}", r.text);
    let (cookie, _) = session_of(&login(&app, "binh", PASSWORD).await);
    assert_eq!(me(&app, &anonymous(), Some(&cookie)).await.status, 200);
    // A good login starts the count again: four failures do not lock.
    for _ in 0..4 {
        assert_eq!(login(&app, "binh", "nope nope nope").await.status, 401);
    }
    session_of(&login(&app, "binh", PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_follow_the_policy() {
    let app = App::start().await;
    let users = format!("{}/auth/v1/users", app.base);
    for (name, password, why) in [
        ("thu", "short-pw", "shorter than 12 characters"),
        ("thu", "qwerty123456", "on the common-password list"),
        ("thu", "QWERTY123456", "on the list in another case"),
        ("nguyen.van.thu", "Nguyen.Van.Thu", "the user name"),
    ] {
        let r = send(with_json(
            app.client.post(&users),
            &json!({"username": name, "password": password, "role": "viewer"}),
        ))
        .await;
        assert_problem(&r, 400, "BadRequestData");
        assert!(
            !r.text.contains(password),
            "a refusal never repeats the password ({why}): {}",
            r.text
        );
    }
    let r = send(app.client.get(&users)).await;
    assert_eq!(r.body, json!([]), "no user was made: {}", r.text);
    // A good one, then a bad change of it.
    make_user(&app, "thu", PASSWORD, "viewer", &[""]).await;
    for bad in ["short-pw", "qwerty123456", "THU"] {
        let r = send(with_json(
            app.client.patch(format!("{users}/thu")),
            &json!({"password": bad}),
        ))
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    session_of(&login(&app, "thu", PASSWORD).await);
}

// ---- the audit log

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refusals_and_logins_leave_audit_records() {
    let app = App::start().await;
    let admin = actor_of(&app, ADMIN_KEY).await;
    let (viewer_id, viewer) = make_key(&app, "viewer", "viewer", &[""]).await;
    let (other_id, other) = make_key(&app, "other-op", "operator", &["hue"]).await;
    make_user(&app, "lan", PASSWORD, "operator", &[""]).await;

    // A write.
    let id = "urn:ngsi-ld:Gauge:audit-1";
    app.create(json!({"id": id, "type": "Gauge", "level": 1}))
        .await;
    let r = audited(&app, "a write", |r| {
        r["action"] == "POST /ngsi-ld/v1/entities" && r["targets"] == json!([id])
    })
    .await;
    assert_eq!(r["actor"], admin.as_str(), "{r}");
    assert_eq!(r["role"], "admin", "{r}");
    assert_eq!(r["tenant"], "", "the default tenant: {r}");
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(
        r["request_id"].is_string() && r["client"] == "127.0.0.1",
        "{r}"
    );
    assert!(r["time"].is_string() && r["id"].is_i64(), "{r}");
    // A write in another tenant names it.
    let r = send(
        app.post("/entities", &json!({"id": id, "type": "Gauge", "level": 2}))
            .header(TENANT, "hue"),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = audited(&app, "a write in hue", |r| {
        r["tenant"] == "hue" && r["targets"] == json!([id])
    })
    .await;
    assert_eq!(r["outcome"], "ok", "{r}");

    // A request the role may not make, refused at the door.
    let r = send(with_json(
        client_with_key(Some(&viewer)).post(app.url("/entities")),
        &json!({"id": "urn:ngsi-ld:Gauge:audit-2", "type": "Gauge"}),
    ))
    .await;
    assert_eq!(r.status, 403);
    let r = audited_refusal(&app, "a refusal at the door", &viewer_id).await;
    assert_eq!(r["action"], "POST /ngsi-ld/v1/entities", "{r}");
    assert_eq!(r["role"], "viewer", "{r}");
    // A request refused by the hub's tenant grants.
    let r = send(client_with_key(Some(&other)).get(app.url(&format!("/entities/{id}")))).await;
    assert_eq!(r.status, 403);
    let r = audited_refusal(&app, "a refusal by the grants", &other_id).await;
    assert_eq!(r["action"], "GET /ngsi-ld/v1/entities/{id}", "{r}");
    // No credentials, and bad credentials.
    let r = send(
        anonymous()
            .get(app.url("/entities"))
            .query(&[("type", "Gauge")]),
    )
    .await;
    assert_eq!(r.status, 401);
    audited(&app, "an anonymous request", |r| {
        r["actor"] == "anonymous"
            && r["outcome"] == "denied"
            && r["action"] == "GET /ngsi-ld/v1/entities"
    })
    .await;
    let forged = "not-a-key-of-this-hub-0123456789abcdefghij";
    let r = send(client_with_key(Some(forged)).delete(app.url(&format!("/entities/{id}")))).await;
    assert_eq!(r.status, 401);
    audited(&app, "a request with a bad key", |r| {
        r["outcome"] == "denied" && r["action"] == "DELETE /ngsi-ld/v1/entities/{id}"
    })
    .await;

    // Logins, good and bad.
    session_of(&login(&app, "lan", PASSWORD).await);
    let r = audited(&app, "a login", |r| {
        r["action"] == "auth.login" && r["outcome"] == "ok"
    })
    .await;
    assert_eq!(r["actor"], "user:lan", "{r}");
    assert_eq!(r["targets"], json!(["user:lan"]), "{r}");
    assert_eq!(login(&app, "lan", "a wrong password!").await.status, 401);
    let r = audited(&app, "a failed login", |r| {
        r["action"] == "auth.login" && r["outcome"] == "denied"
    })
    .await;
    assert_eq!(r["targets"], json!(["user:lan"]), "{r}");
    assert!(r.get("tenant").is_none(), "a login is outside tenants: {r}");

    // The filters select; no secret is ever written.
    let viewer_actor = format!("key:{viewer_id}");
    let only = audit(&app, &[("actor", viewer_actor.as_str()), ("limit", "1000")]).await;
    assert!(!only.is_empty() && only.iter().all(|r| r["actor"] == viewer_actor.as_str()));
    let logins = audit(&app, &[("action", "auth."), ("limit", "1000")]).await;
    assert!(
        logins.len() >= 2
            && logins
                .iter()
                .all(|r| r["action"].as_str().unwrap().starts_with("auth."))
    );
    let all = serde_json::to_string(&audit(&app, &[("limit", "1000")]).await).unwrap();
    for secret in [
        ADMIN_KEY,
        viewer.as_str(),
        other.as_str(),
        forged,
        PASSWORD,
        "a wrong password!",
    ] {
        assert!(!all.contains(secret), "the audit log holds a secret");
    }
    // Only admins read it.
    for key in [viewer.as_str(), other.as_str()] {
        let r = send(client_with_key(Some(key)).get(format!("{}/auth/v1/audit", app.base))).await;
        assert_forbidden(&r);
    }
}

// ---- the outbound policy

/// A local HTTP server that counts every request it gets, whatever the path.
struct Counter {
    base: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    async fn start() -> Counter {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                (
                    [("content-type", JSON_LD)],
                    r#"{"@context": {"level": "urn:x:level"}}"#,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Counter { base, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits (up to 10 s) until the subscription says a notification failed.
async fn failed_notification(app: &App, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get_ok(&format!("/subscriptions/{id}"), &[]).await;
        if r.body["notification"]["timesFailed"].as_u64().unwrap_or(0) >= 1 {
            return r.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no failed notification within 10 s: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_outbound_policy_reaches_no_metadata_private_or_loopback_address() {
    let app = App::start_exact(HubConfig::default(), |_| Vec::new()).await;
    let local = Counter::start().await;

    // Remote @contexts at refused addresses: 503, quickly, and nothing is reached.
    for url in [
        "http://169.254.169.254/latest/meta-data/ctx.jsonld".to_string(),
        "http://[fd00:ec2::254]/ctx.jsonld".to_string(),
        "http://10.20.30.40/ctx.jsonld".to_string(),
        "http://metadata.google.internal/ctx.jsonld".to_string(),
        format!("{}/ctx.jsonld", local.base),
        format!(
            "http://localhost:{}/ctx.jsonld",
            local.base.rsplit(':').next().unwrap()
        ),
    ] {
        let gauge = json!({"id": "urn:ngsi-ld:Gauge:ctx", "type": "Gauge", "level": 1});
        let rb = app.post("/entities", &gauge).header("link", link(&url));
        // Refused before any connection.
        assert_context_unavailable(rb, Duration::from_secs(3), &url).await;
        let r = send(
            app.get("/entities")
                .query(&[("type", "Gauge")])
                .header("link", link(&url)),
        )
        .await;
        assert_problem(&r, 503, "LdContextNotAvailable");
    }
    assert_eq!(local.hits(), 0, "the loopback server was never reached");
    let r = send(app.get("/entities/urn:ngsi-ld:Gauge:ctx")).await;
    assert_eq!(r.status, 404, "nothing was written: {}", r.text);

    // Notifications to refused addresses fail, and say so.
    let mut subs = Vec::new();
    for uri in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
        format!("{}/notify", local.base),
        // A broker on loopback (the tests' Mosquitto) is refused as well.
        "mqtt://127.0.0.1:1883/dothi/strict-policy".to_string(),
    ] {
        let r = send(app.post(
            "/subscriptions",
            &json!({
                "type": "Subscription",
                "entities": [{"type": "Gauge"}],
                "notification": {"endpoint": {"uri": uri, "accept": "application/json"}}
            }),
        ))
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let location = r.header("location").unwrap().to_string();
        subs.push((uri, location.rsplit('/').next().unwrap().to_string()));
    }
    app.create(json!({"id": "urn:ngsi-ld:Gauge:n", "type": "Gauge", "level": 9}))
        .await;
    for (uri, id) in &subs {
        let sub = failed_notification(&app, id).await;
        let n = &sub["notification"];
        assert_eq!(n["status"], "failed", "{uri}: {sub}");
        // Nothing was sent: the counter is not shown until something is.
        assert!(n.get("timesSent").is_none(), "{uri}: {sub}");
        assert!(n["timesFailed"].as_u64() >= Some(1), "{uri}: {sub}");
        assert!(n["lastFailure"].is_string(), "{uri}: {sub}");
        assert!(n.get("lastSuccess").is_none(), "{uri}: {sub}");
    }
    assert_eq!(
        local.hits(),
        0,
        "no notification reached the loopback server"
    );
}

/// A viewer reads a subscription without the receiver's credentials; an operator sees
/// them (it manages the subscription).
#[tokio::test]
async fn a_viewer_never_sees_a_subscriptions_credentials() {
    let app = App::start().await;
    let r = send(app.post(
        "/subscriptions",
        &json!({
            "id": "urn:ngsi-ld:Subscription:with-secret",
            "type": "Subscription",
            "entities": [{"type": "Gauge"}],
            "notification": {"endpoint": {
                "uri": "http://user:pa55word@127.0.0.1:9/notify",
                "accept": "application/json",
                "receiverInfo": [{"key": "Authorization", "value": "Bearer receiver-secret"}]
            }}
        }),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = |role: &str| {
        let app = &app;
        let role = role.to_string();
        async move {
            let r = send(app.client.post(format!("{}/auth/v1/keys", app.base)).json(
                &json!({"name": format!("{role}-key"), "role": role, "tenants": ["default"]}),
            ))
            .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["key"].as_str().unwrap().to_string()
        }
    };
    let (viewer, operator) = (key("viewer").await, key("operator").await);
    let read = |k: &str| {
        send(
            client_with_key(Some(k))
                .get(app.url("/subscriptions/urn:ngsi-ld:Subscription:with-secret")),
        )
    };
    let seen = read(&viewer).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert!(!seen.text.contains("receiver-secret"), "{}", seen.text);
    assert!(!seen.text.contains("pa55word"), "{}", seen.text);
    let listed = send(client_with_key(Some(&viewer)).get(app.url("/subscriptions"))).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(!listed.text.contains("receiver-secret"), "{}", listed.text);
    let managed = read(&operator).await;
    assert!(managed.text.contains("receiver-secret"), "{}", managed.text);
}
