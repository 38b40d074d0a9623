//! The benchmarks that run `dothi serve` child processes, at tiny sizes, against the
//! `dothi` executable built with this crate: every figure is produced and what was
//! loaded is what the hub counts. No timing is asserted.

#![cfg(feature = "bench")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bench::ingest::{BROKER_HOST, BROKER_PORT, IngestSizes};
use bench::notify::NotifySizes;
use bench::server::Backend;

fn dothi() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dothi"))
}

/// Runs a benchmark in a fresh temporary directory (its data directory's parent).
fn run_in_tempdir<T>(run: impl AsyncFnOnce(&Path) -> anyhow::Result<T>) -> T {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(dir.path()))
        .unwrap()
}

/// Each of `keys` is a figure of `report`, finite and not negative.
fn assert_figures(report: &bench::Report, keys: &[&str]) {
    for key in keys {
        let v = report.value(key);
        assert!(v.is_some_and(|v| v.is_finite() && v >= 0.0), "{key}: {v:?}");
    }
}

/// `bench hub` on SQLite, its four figures and access control; figure 4 restarts the
/// large store in a `dothi serve` process.
#[test]
fn tiny_hub_benchmark_runs_and_counts_agree() {
    let sizes = bench::Sizes::tiny(dothi());
    let report =
        run_in_tempdir(async |dir| bench::phases::run(&sizes, dir, &Backend::Sqlite).await);
    let c = &report.checks;
    assert_eq!(c.batch_written, 1_000);
    assert_eq!(c.batch_counted, 1_000);
    assert_eq!(c.raw_rows, 1_000);
    assert!(c.patch_ok > 0, "{c:?}");
    assert_eq!(c.patch_errors, 0);
    assert_eq!(c.query_loaded, 1_000);
    assert_eq!(c.query_counted, 1_000);
    assert_eq!((c.q_queries, c.geo_queries), (5, 5));
    assert!(c.q_returned > 0, "{c:?}");
    assert_eq!(c.q_mismatches, 0, "{c:?}");
    assert_eq!(
        (c.q_errors, c.geo_errors, c.sweep_errors),
        (0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.large_loaded, 1_000);
    assert_eq!(c.large_counted, 1_000);
    assert_eq!(c.large_counted_after_restart, 1_000);
    assert_eq!(c.sweep_queries, 8);
    assert_figures(
        &report,
        &[
            "batch_upsert_attr_writes_per_s",
            "batch_upsert_hub_over_raw",
            "patch_req_per_s",
            "query_q_p95_ms",
            "query_geo_p95_ms",
            "large_rss_mb",
            "large_restart_to_ready_s",
        ],
    );
    assert!(report.value("batch_upsert_attr_writes_per_s").unwrap() > 0.0);
    assert!(report.value("patch_req_per_s").unwrap() > 0.0);
    report.print_summary("hub");
}

/// `bench notify`, restart included: every acknowledged update is notified, nothing
/// else is.
#[test]
fn tiny_notify_benchmark_runs_and_counts_agree() {
    let sizes = NotifySizes {
        subscriptions: 20,
        rate: 100.0,
        secs: 3.0,
        clients: 4,
        restart: true,
        server_exe: dothi(),
    };
    let (report, c) = run_in_tempdir(async |dir| bench::notify::measure(&sizes, dir).await);
    assert_eq!(c.subscriptions_created, 20, "{c:?}");
    assert_eq!(c.updates_sent, 300, "{c:?}");
    assert!(c.acknowledged > 0, "{c:?}");
    assert_eq!(c.expected, c.acknowledged, "{c:?}");
    assert_eq!(c.received, c.expected, "{c:?}");
    assert_eq!(
        (c.missing, c.unexpected, c.out_of_order),
        (0, 0, 0),
        "{c:?}"
    );
    assert!(
        c.unacknowledged_notified <= c.updates_sent - c.acknowledged,
        "{c:?}"
    );
    assert_figures(
        &report,
        &[
            "notify_latency_p50_ms",
            "notify_latency_p99_ms",
            "notify_updates_sent_per_s",
            "notify_restart_s",
        ],
    );
    report.print_summary("notify");
}

/// `bench ingest` over the local Mosquitto: every published measure is stored,
/// without errors. It needs the broker on 127.0.0.1:1883, which scripts/test.sh
/// starts.
#[test]
fn tiny_ingest_benchmark_stores_every_measure() {
    assert!(
        std::net::TcpStream::connect((BROKER_HOST, BROKER_PORT)).is_ok(),
        "no MQTT broker on {BROKER_HOST}:{BROKER_PORT} (scripts/test.sh starts Mosquitto)"
    );
    let sizes = IngestSizes {
        devices: 20,
        secs: 3,
        publishers: 2,
        sample_every: 5,
        pollers: 4,
        server_exe: dothi(),
        broker_port: BROKER_PORT,
    };
    let (report, c) = run_in_tempdir(async |dir| bench::ingest::run_counted(&sizes, dir).await);
    assert_eq!(c.published, 60, "{c:?}");
    assert_eq!(c.stored, 60, "{c:?}");
    assert_eq!((c.publish_errors, c.connection_errors), (0, 0), "{c:?}");
    assert!(c.samples > 0, "{c:?}");
    assert_eq!(report.value("ingest_missing"), Some(0.0));
    report.print_summary("ingest");
}

/// `bench soak` for a few seconds at a low rate: the server's memory is sampled, the
/// updates, queries, notifications and the live stream go through without an error.
#[test]
fn tiny_soak_benchmark_runs_without_errors() {
    let sizes = bench::soak::SoakSizes {
        minutes: 0.1,
        rate: 50,
        entities: 50,
        clients: 2,
        subscriptions: 1,
        queries_per_second: 2,
        sample_secs: 2,
        server_exe: dothi(),
    };
    let report = run_in_tempdir(async |dir| bench::soak::run(&sizes, dir).await);
    assert_eq!(report.value("soak_errors"), Some(0.0));
    let rate = report.value("soak_updates_per_s").unwrap();
    assert!(rate > 10.0, "{rate} updates/s");
    assert!(report.value("soak_rss_growth_pct").unwrap().is_finite());
}
