//! `dothi serve --tls-cert --tls-key`: HTTPS with a certificate made by the test,
//! session cookies marked Secure and HSTS sent; plain HTTP is not answered.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, free_port, quiet_dothi};

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let mut child = quiet_dothi(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("d.db").display()))
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .spawn()
        .unwrap();
    // The certificate is the test's own: trust it, and only it.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            break r;
        }
        assert!(Instant::now() < deadline, "no HTTPS answer within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status(), 200);
    assert!(
        health
            .headers()
            .get("strict-transport-security")
            .is_some_and(|v| v.to_str().unwrap().contains("max-age")),
        "HSTS under TLS"
    );

    // A user logs in: the session cookie is Secure.
    let created = client
        .post(format!("{base}/auth/v1/users"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({
            "username": "tls-viewer", "password": "a long enough password 42",
            "role": "viewer", "tenants": ["default"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let login = client
        .post(format!("{base}/auth/v1/login"))
        .json(
            &serde_json::json!({"username": "tls-viewer", "password": "a long enough password 42"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }

    // Plain HTTP on the same port gets no answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    child.kill().unwrap();
    child.wait().unwrap();
}
