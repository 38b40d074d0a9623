//! Bearer tokens of an identity provider whose keys the hub fetches itself: its
//! discovery document and key set are served on loopback by the test, and rotated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use hub::HubConfig;
use hub::auth::identity::OidcIssuer;
use hub::auth::jwt::testing::{es256_key, jwks, sign};
use hub::auth::oidc::KeySource;
use serde_json::json;

use crate::common::*;

/// An identity provider on 127.0.0.1: `/.well-known/openid-configuration` and
/// `/keys`, whose key set the test can replace.
async fn provider(keys: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/keys")}).to_string();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { discovery }),
        )
        .route(
            "/keys",
            axum::routing::get(|State(keys): State<Arc<Mutex<String>>>| async move {
                keys.lock().unwrap().clone()
            }),
        )
        .with_state(keys);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn token(issuer: &str, kid: &str, signer: &hub::auth::jwt::testing::Signer) -> String {
    let now = chrono::Utc::now().timestamp();
    sign(
        &json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string(),
        &json!({
            "iss": issuer, "aud": "dothi", "sub": "officer-7",
            "exp": now + 300, "iat": now,
            "dothi_role": "viewer", "dothi_tenants": ["default"],
        })
        .to_string(),
        signer,
    )
}

#[tokio::test]
async fn tokens_are_checked_with_keys_fetched_from_the_provider() {
    let (first, first_jwk) = es256_key("k1");
    let keys = Arc::new(Mutex::new(jwks(&[&first_jwk])));
    let issuer = provider(keys.clone()).await;
    let mut config = HubConfig::default();
    config.identity.oidc.push(OidcIssuer {
        issuer: issuer.clone(),
        audiences: vec!["dothi".into()],
        keys: Arc::new(KeySource::discovered(&issuer).refetching_after(Duration::from_millis(500))),
        role_claim: "dothi_role".into(),
        tenants_claim: "dothi_tenants".into(),
    });
    let app = App::start_with(config).await;
    let bearer = |t: &str| client_with_key(Some(t));

    let r = send(bearer(&token(&issuer, "k1", &first)).get(app.url("/types"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A viewer: reads, does not write.
    let r = send(
        bearer(&token(&issuer, "k1", &first))
            .post(app.url("/entities"))
            .json(&json!({"id": "urn:ngsi-ld:T:1", "type": "T"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // The provider rotates to a new key: a token naming it makes the hub fetch the
    // set again, and the old key is gone.
    let (second, second_jwk) = es256_key("k2");
    *keys.lock().unwrap() = jwks(&[&second_jwk]);
    // Right after the last fetch the set is not fetched again...
    let r = send(bearer(&token(&issuer, "k2", &second)).get(app.url("/types"))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("token"), "{}", r.text);
    // ...but once the wait is over it is, and the new key is known.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = send(bearer(&token(&issuer, "k2", &second)).get(app.url("/types"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(bearer(&token(&issuer, "k1", &first)).get(app.url("/types"))).await;
    assert_eq!(r.status, 401, "the retired key still works: {}", r.text);

    // A token of another issuer is refused whatever its signature.
    let r = send(bearer(&token("https://elsewhere.example", "k1", &first)).get(app.url("/types")))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn an_unreachable_provider_refuses_tokens_and_keys_still_work() {
    let (signer, _) = es256_key("k1");
    // Nothing listens on port 9 of loopback.
    let issuer = "http://127.0.0.1:9".to_string();
    let mut config = HubConfig::default();
    config.identity.oidc.push(OidcIssuer {
        issuer: issuer.clone(),
        audiences: vec!["dothi".into()],
        keys: Arc::new(KeySource::discovered(&issuer)),
        role_claim: "dothi_role".into(),
        tenants_claim: "dothi_tenants".into(),
    });
    let app = App::start_with(config).await;
    let r =
        send(client_with_key(Some(&token(&issuer, "k1", &signer))).get(app.url("/types"))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("unavailable"), "{}", r.text);
    // API keys do not depend on the provider.
    app.get_ok("/types", &[]).await;
}
