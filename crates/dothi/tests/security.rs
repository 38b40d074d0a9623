//! Security of the real `dothi` binary: the audit log's hash chain catches an edited
//! or a deleted record (`dothi audit verify` exits 3 naming it), and `--insecure` is
//! refused anywhere but on a loopback address, where every answer says it is on.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Dothi, free_port};
use serde_json::json;

/// `dothi audit verify` over the SQLite file `db`.
fn verify(db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dothi"))
        .args(["audit", "verify", "--store"])
        .arg(format!("sqlite://{}", db.display()))
        .env("DOTHI_LOG", "warn")
        .output()
        .expect("run dothi audit verify")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a run of `dothi` succeeded, showing its output when it did not.
fn assert_exited_0(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Creates the gauges `audit-{n}` for each `n` in `numbers`, one request each.
async fn create_gauges(server: &Dothi, numbers: std::ops::Range<u32>) {
    for n in numbers {
        let r = server
            .client
            .post(server.url("/entities"))
            .json(
                &json!({"id": format!("urn:ngsi-ld:Gauge:audit-{n}"), "type": "Gauge", "level": n}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

/// The sealed audit rows, in chain order: (id, seq, record).
fn sealed(db: &Path) -> Vec<(i64, i64, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, seq, record FROM audit_log WHERE seq IS NOT NULL ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn execute(db: &Path, sql: &str, params: impl rusqlite::Params) -> usize {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(sql, params)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_an_edited_or_a_deleted_record() {
    let (_dir, db) = common::temp_db();
    let mut server = Dothi::start(&db).await;
    create_gauges(&server, 0..6).await;
    // Checked while the server writes and seals, from another process.
    let verifying = tokio::task::spawn_blocking({
        let db = db.clone();
        move || verify(&db)
    });
    create_gauges(&server, 6..12).await;
    let out = verifying.await.unwrap();
    assert_exited_0(&out);
    // A refused request is recorded too.
    let r = reqwest::Client::new()
        .delete(server.url("/entities/urn:ngsi-ld:Gauge:audit-0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(server.terminate().await.success());

    let out = verify(&db);
    assert_exited_0(&out);
    assert!(
        text(&out.stdout).contains("the audit chain holds"),
        "{}",
        text(&out.stdout)
    );
    let rows = sealed(&db);
    assert!(
        rows.len() >= 7,
        "every write and the refusal are sealed: {rows:?}"
    );
    let writes: Vec<&(i64, i64, String)> = rows
        .iter()
        .filter(|(_, _, r)| r.contains("\"POST /ngsi-ld/v1/entities\""))
        .collect();
    assert_eq!(writes.len(), 12, "{rows:?}");
    assert!(
        rows.iter()
            .any(|(_, _, r)| r.contains("\"outcome\":\"denied\"")
                && r.contains("\"actor\":\"anonymous\"")),
        "{rows:?}"
    );

    // One record of the middle edited: the chain breaks at it.
    let (id, seq, original) = writes[2].clone();
    let edited = original.replace("\"outcome\":\"ok\"", "\"outcome\":\"failed\"");
    assert_ne!(edited, original);
    assert_eq!(
        execute(
            &db,
            "UPDATE audit_log SET record = ?2 WHERE id = ?1",
            (id, &edited)
        ),
        1
    );
    let out = verify(&db);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("broken at record {id} (sequence {seq})")),
        "verify names the edited record {id}: {stdout}"
    );
    // Even an edit that changes no meaning (white space) breaks it.
    let spaced = original.replacen('{', "{ ", 1);
    execute(
        &db,
        "UPDATE audit_log SET record = ?2 WHERE id = ?1",
        (id, &spaced),
    );
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains(&format!("record {id} ")));
    // Put back, it holds again.
    execute(
        &db,
        "UPDATE audit_log SET record = ?2 WHERE id = ?1",
        (id, &original),
    );
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A record of the middle deleted: the chain breaks at the one after it.
    let (gone, _, _) = rows[3];
    let (next, next_seq, _) = rows[4].clone();
    assert_eq!(
        execute(&db, "DELETE FROM audit_log WHERE id = ?1", [gone]),
        1
    );
    let out = verify(&db);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("broken at record {next} (sequence {next_seq})"))
            && stdout.contains("missing"),
        "verify names where the chain breaks after the deleted record {gone}: {stdout}"
    );
    // Nor is the gap hidden by renumbering the records after it (in two steps, as
    // `seq` is unique): their hashes bind their numbers.
    execute(
        &db,
        "UPDATE audit_log SET seq = -seq WHERE seq > ?1",
        [rows[3].1],
    );
    execute(&db, "UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0", ());
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
}

/// Starts `dothi serve` with `args` (and a fresh store); the child.
fn serve(args: &[&str], store: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dothi"))
        .arg("serve")
        .args(args)
        .arg("--store")
        .arg(format!("sqlite://{}", store.display()))
        .env("DOTHI_LOG", "warn")
        .env_remove("DOTHI_ADMIN_KEY")
        .env_remove("DOTHI_INSECURE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dothi")
}

/// Waits (up to 20 s) for the child to exit; None if it is still running (then killed).
fn exited(mut child: Child) -> Option<Output> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn insecure_is_refused_off_loopback() {
    let (_dir, db) = common::temp_db();
    for listen in [
        format!("0.0.0.0:{}", free_port()),
        format!("[::]:{}", free_port()),
        format!("192.0.2.10:{}", free_port()),
    ] {
        let out = exited(serve(&["--insecure", "--listen", &listen], &db))
            .unwrap_or_else(|| panic!("dothi serve --insecure --listen {listen} kept running"));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "--listen {listen}: {stderr}");
        assert!(
            stderr.contains("--insecure") && stderr.contains("loopback"),
            "--listen {listen}: the refusal says why: {stderr}"
        );
    }
    // The variable is refused the same way.
    let child = Command::new(env!("CARGO_BIN_EXE_dothi"))
        .args(["serve", "--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--store")
        .arg(format!("sqlite://{}", db.display()))
        .env("DOTHI_INSECURE", "true")
        .env("DOTHI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exited(child).expect("DOTHI_INSECURE=true on 0.0.0.0 kept running");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("loopback"),
        "{}",
        text(&out.stderr)
    );
    assert!(!db.exists(), "nothing was opened before the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_on_loopback_says_so_on_every_answer() {
    let (_dir, db) = common::temp_db();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = serve(&["--insecure", "--listen", &listen], &db);
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    if let Err(status) =
        common::healthy_or_exited(&mut child, &http, &base, Duration::from_secs(20)).await
    {
        panic!("dothi --insecure on {listen} exited: {status}");
    }
    let requests = [
        http.get(format!("{base}/health")),
        http.get(format!("{base}/ngsi-ld/v1/entities?type=Gauge")),
        http.post(format!("{base}/ngsi-ld/v1/entities"))
            .json(&json!({"id": "urn:ngsi-ld:Gauge:1", "type": "Gauge", "level": 1})),
        http.get(format!("{base}/ngsi-ld/v1/entities/urn:ngsi-ld:Gauge:1")),
        http.get(format!("{base}/ngsi-ld/v1/entities/urn:ngsi-ld:Gauge:none")),
        http.get(format!("{base}/no/such/path")),
        http.get(format!("{base}/auth/v1/me")),
        http.get(format!("{base}/auth/v1/audit")),
        http.get(format!("{base}/metrics")),
        http.get(format!("{base}/")),
        http.get(format!("{base}/ioc/api/summary")),
        http.get(format!("{base}/iot/services")),
        // Credentials are not looked at: a made-up key acts as admin too.
        http.get(format!("{base}/ngsi-ld/v1/types"))
            .bearer_auth("made-up-key-0123456789abcdefghijklmnopqrstu"),
    ];
    let mut statuses = Vec::new();
    for rb in requests {
        let r = rb.send().await.unwrap();
        let url = r.url().to_string();
        statuses.push((url.clone(), r.status().as_u16()));
        assert_eq!(
            r.headers()
                .get("x-dothi-insecure")
                .map(|v| v.to_str().unwrap().to_string()),
            Some("authentication is off".to_string()),
            "{url}: {:?}",
            r.headers()
        );
        assert!(
            !matches!(r.status().as_u16(), 401 | 403),
            "{url}: {}",
            r.status()
        );
        if url.ends_with("/auth/v1/me") {
            let me: serde_json::Value = r.json().await.unwrap();
            assert_eq!(me["actor"], "insecure", "{me}");
            assert_eq!(me["role"], "admin", "{me}");
        }
    }
    assert!(
        statuses
            .iter()
            .any(|(u, s)| u.ends_with("/entities") && *s == 201),
        "{statuses:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
