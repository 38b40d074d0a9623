//! Figure 5 of `dothi bench hub`: what access control costs. The same batch upsert
//! and PATCH load runs against three servers over fresh stores of the same backend,
//! one after the other: with an API key (the default), with `--insecure`
//! (authentication off), and with an API key but the audit of writes off; then
//! logins of a user, one after another.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::data::{ms, percentiles, section, thousands};
use super::phases::{prepare_batches, run_patches, send_batches};
use super::server::{Backend, Server};
use super::{Report, Sizes, Target};

/// Attributes per entity of the batches (as figure 1).
const ATTRS_PER_ENTITY: usize = 5;
/// Logins measured.
const LOGINS: usize = 30;

/// One server's run: attribute writes/s of the upsert, PATCH requests/s.
struct Run {
    upsert_rate: f64,
    patch_rate: f64,
    errors: u64,
}

async fn measure(
    sizes: &Sizes,
    dir: &Path,
    backend: &Backend,
    name: &str,
    config: hub::HubConfig,
) -> anyhow::Result<Run> {
    // A tenth of figure 1's entities: enough for a steady rate, short enough to run
    // three times.
    let n = (sizes.batch_entities / 10).max(sizes.batch_size);
    let (per, clients) = (sizes.batch_size, sizes.batch_clients);
    let postgres = matches!(backend, Backend::Postgres { .. });
    let (bodies, _, _) = tokio::task::spawn_blocking(move || prepare_batches(n, per, postgres))
        .await
        .map_err(super::data::join_error)??;
    let server =
        Server::start_configured(backend, &dir.join(format!("access-{name}.db")), config).await?;
    server.wait_healthy(Duration::from_secs(10)).await?;
    let sent = send_batches(&server, bodies, clients).await?;
    let retried = sent.retries.count;
    let upsert_rate = (n * ATTRS_PER_ENTITY) as f64 / sent.took.as_secs_f64();
    let patched = run_patches(
        &server,
        n,
        sizes.patch_clients,
        Duration::from_secs_f64(sizes.patch_secs),
    )
    .await?;
    println!(
        "  {name:<28} batch upsert {} attribute writes/s; PATCH {} requests/s ({} errors), latency {}",
        thousands(upsert_rate),
        thousands(patched.rate()),
        patched.errors,
        ms(&percentiles(&patched.latencies))
    );
    if let Some(e) = &patched.first_error {
        println!("  {:<28} first error: {e}", "");
    }
    server.stop().await?;
    Ok(Run {
        upsert_rate,
        patch_rate: patched.rate(),
        errors: patched.errors + retried,
    })
}

pub async fn run(
    sizes: &Sizes,
    dir: &Path,
    backend: &Backend,
    report: &mut Report,
) -> anyhow::Result<()> {
    section(
        "5. Access control: the same writes with an API key, with --insecure, and without the audit of writes",
    );
    let keyed = super::server::bench_config();
    let insecure = hub::HubConfig {
        gate: hub::http::gate::GateConfig {
            insecure: true,
            ..Default::default()
        },
        ..super::server::bench_config()
    };
    let unaudited = hub::HubConfig {
        audit: hub::audit::AuditPolicy {
            record_writes: false,
            ..Default::default()
        },
        ..super::server::bench_config()
    };
    // Each server twice, interleaved (A B C A B C), and each figure the better of its
    // two runs: the first server of a sequence runs on a colder machine, which would
    // otherwise count against it.
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let modes = [
        ("API key, audit on", keyed.clone()),
        ("--insecure, audit on", insecure),
        ("API key, audit off", unaudited),
    ];
    for round in 0..2 {
        for (i, (name, config)) in modes.iter().enumerate() {
            let tag = format!("{name} ({})", round + 1);
            runs[i].push(measure(sizes, dir, backend, &tag, config.clone()).await?);
        }
    }
    let best = |rs: &[Run]| Run {
        upsert_rate: rs.iter().map(|r| r.upsert_rate).fold(0.0, f64::max),
        patch_rate: rs.iter().map(|r| r.patch_rate).fold(0.0, f64::max),
        errors: rs.iter().map(|r| r.errors).sum(),
    };
    let (with_key, open, no_audit) = (best(&runs[0]), best(&runs[1]), best(&runs[2]));
    let clean = with_key.errors + open.errors + no_audit.errors == 0;
    let patch_ratio = with_key.patch_rate / open.patch_rate;
    let audit_ratio = with_key.upsert_rate / no_audit.upsert_rate;
    println!(
        "  best of two: PATCH with a key / with --insecure: {patch_ratio:.2}; batch upsert with audit / without: {audit_ratio:.2}"
    );
    report.row(
        "access_patch_key_vs_insecure",
        "5  PATCH with an API key / --insecure",
        patch_ratio,
        "×",
        Some(Target::AtLeast(0.9)),
        clean,
    );
    report.row(
        "access_upsert_audit_vs_none",
        "5  batch upsert with audit / without",
        audit_ratio,
        "×",
        Some(Target::AtLeast(0.9)),
        clean,
    );

    // Logins: each hashes the password once (argon2id, `hub::auth::password`).
    let server = Server::start_configured(backend, &dir.join("access-login.db"), keyed).await?;
    server.wait_healthy(Duration::from_secs(10)).await?;
    let password = "bench-password-0123456789";
    let created = server
        .client
        .post(server.url("/auth/v1/users"))
        .json(&serde_json::json!({
            "username": "bench-operator", "password": password,
            "role": "operator", "tenants": ["*"]
        }))
        .send()
        .await?;
    if created.status() != 201 {
        bail!("creating the bench user: {}", created.status());
    }
    let anonymous = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let t = Instant::now();
        let r = anonymous
            .post(server.url("/auth/v1/login"))
            .json(&serde_json::json!({"username": "bench-operator", "password": password}))
            .send()
            .await?;
        latencies.push(t.elapsed());
        if r.status() != 200 {
            bail!("a login answered {}", r.status());
        }
    }
    server.stop().await?;
    let p = percentiles(&latencies);
    println!(
        "  {LOGINS} logins one after another: latency {} (argon2id m={} MiB, t={}, p={})",
        ms(&p),
        hub::auth::password::ARGON2_MEMORY_KIB / 1024,
        hub::auth::password::ARGON2_ITERATIONS,
        hub::auth::password::ARGON2_PARALLELISM,
    );
    report.p95_row("login_p95_ms", "5  login, p95 latency", &p, 300.0, true);
    Ok(())
}
