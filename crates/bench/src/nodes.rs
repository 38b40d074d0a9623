//! `dothi bench nodes`: one PostgreSQL database served by one `dothi serve` process,
//! then by two at once, each process loaded over HTTP with PATCH requests (writes)
//! and with GET of an entity (reads): the throughput of each node and of both
//! together, beside one node alone.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::header::CONTENT_TYPE;

use super::data::{Rng, entity_id, full_entity, join_all, obs, section, thousands};
use super::server::{Backend, Server};
use super::{Common, Report, count, postgres_url, secs_up_to_an_hour};

/// The data set of this benchmark's entities.
const SET_NODES: u64 = 4;
/// Entities per batch upsert when loading.
const LOAD_BATCH: usize = 500;
/// The figures of each load: one node alone, each of two, two together.
const PATCH_KEYS: [&str; 4] = [
    "patch_one_node",
    "patch_node_1_of_2",
    "patch_node_2_of_2",
    "patch_two_nodes",
];
const GET_KEYS: [&str; 4] = [
    "get_one_node",
    "get_node_1_of_2",
    "get_node_2_of_2",
    "get_two_nodes",
];

#[derive(Debug, Clone)]
pub struct NodesSizes {
    /// The PostgreSQL server (a database is created there for the run).
    pub server: String,
    pub entities: usize,
    /// Concurrent clients in all, split evenly between the nodes.
    pub clients: usize,
    pub secs: f64,
}

/// `dothi bench nodes`.
#[derive(clap::Args, Clone, Debug)]
pub struct NodesArgs {
    /// The PostgreSQL server the nodes share (postgres://user@host/db, with PostGIS):
    /// a database is created there for the run, and dropped after.
    #[arg(long, value_parser = postgres_url)]
    pub store: String,
    /// Entities loaded before the loads [default: 20000; 2000 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub entities: Option<usize>,
    /// Concurrent clients in all, split evenly between the nodes; at least 2.
    #[arg(long, default_value_t = 16, value_parser = count(2..))]
    pub patch_clients: usize,
    /// Seconds of each load, in (0, 3600] [default: 10; 3 with --quick].
    #[arg(long, value_parser = secs_up_to_an_hour)]
    pub secs: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

impl NodesArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> NodesSizes {
        NodesSizes {
            server: self.store.clone(),
            entities: self.common.size(self.entities, 2_000, 20_000),
            clients: self.patch_clients,
            secs: self.common.size(self.secs, 3.0, 10.0),
        }
    }
}

impl NodesSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} entities; {} clients in all for {} s per load, on one node then split over two",
            thousands(self.entities as f64),
            self.clients,
            self.secs
        )
    }
}

/// What one load measured on each node: requests answered as expected, and others.
struct Load {
    ok: Vec<u64>,
    errors: u64,
    took: Duration,
}

impl Load {
    fn rate(&self, node: usize) -> f64 {
        self.ok[node] as f64 / self.took.as_secs_f64()
    }

    fn total(&self) -> f64 {
        self.ok.iter().sum::<u64>() as f64 / self.took.as_secs_f64()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Patch,
    Get,
}

pub async fn run(sizes: &NodesSizes, dir: &Path) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let backend = Backend::postgres(&sizes.server);
    let result = measure(sizes, dir, &exe, &backend).await;
    backend.drop_databases().await?;
    result
}

async fn measure(
    sizes: &NodesSizes,
    dir: &Path,
    exe: &Path,
    backend: &Backend,
) -> anyhow::Result<Report> {
    let url = backend.store_url(&dir.join("nodes.db")).await?;
    let first = Server::spawn_url(exe, &url).await?;
    first.wait_healthy(Duration::from_secs(60)).await?;
    section(&format!(
        "Loading {} entities through the first node",
        thousands(sizes.entities as f64)
    ));
    load(&first, sizes.entities).await?;

    let mut report = Report::default();
    let mut clean = true;
    let mut figures = Vec::new();
    for kind in [Kind::Patch, Kind::Get] {
        let what = match kind {
            Kind::Patch => "PATCH attrs",
            Kind::Get => "GET entity",
        };
        section(&format!("{what}: one node, {} clients", sizes.clients));
        let one = drive(&[&first], kind, sizes).await?;
        println!(
            "  {} requests/s ({} errors)",
            thousands(one.total()),
            one.errors
        );
        clean &= one.errors == 0;
        figures.push((kind, one));
    }
    let second = Server::spawn_url(exe, &url).await?;
    second.wait_healthy(Duration::from_secs(60)).await?;
    for (kind, one) in figures {
        let (what, key, keys) = match kind {
            Kind::Patch => ("PATCH attrs", "patch", PATCH_KEYS),
            Kind::Get => ("GET entity", "get", GET_KEYS),
        };
        section(&format!(
            "{what}: two nodes, {} clients on each",
            sizes.clients / 2
        ));
        let two = drive(&[&first, &second], kind, sizes).await?;
        let ratio = two.total() / one.total().max(f64::MIN_POSITIVE);
        println!(
            "  node 1: {} requests/s, node 2: {} requests/s, together {} requests/s ({} errors); one node alone: {} requests/s; two / one: {ratio:.2}",
            thousands(two.rate(0)),
            thousands(two.rate(1)),
            thousands(two.total()),
            two.errors,
            thousands(one.total()),
        );
        clean &= two.errors == 0;
        let values = [one.total(), two.rate(0), two.rate(1), two.total()];
        let labels = [
            "one node",
            "node 1 of 2",
            "node 2 of 2",
            "two nodes together",
        ];
        for ((key, label), value) in keys.into_iter().zip(labels).zip(values) {
            report.row(
                key,
                format!("{what}, {label}, requests/s"),
                value,
                "/s",
                None,
                clean,
            );
        }
        report.extra(format!("{key}_two_over_one"), ratio);
    }
    second.stop().await?;
    first.stop().await?;
    Ok(report)
}

/// Creates the entities through `node`, in batches.
async fn load(node: &Server, n: usize) -> anyhow::Result<()> {
    let url = node.url("/ngsi-ld/v1/entityOperations/upsert");
    for start in (0..n).step_by(LOAD_BATCH) {
        let batch: Vec<_> = (start..n.min(start + LOAD_BATCH))
            .map(|i| full_entity("n", i, &obs(SET_NODES, i)))
            .collect();
        let r = node
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&batch)?)
            .send()
            .await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!(
                "loading answered {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Runs `sizes.clients` clients, split evenly over `nodes`, for `sizes.secs`.
async fn drive(nodes: &[&Server], kind: Kind, sizes: &NodesSizes) -> anyhow::Result<Load> {
    let ok: Arc<Vec<AtomicU64>> = Arc::new(nodes.iter().map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(sizes.secs);
    let mut tasks = Vec::new();
    for c in 0..sizes.clients {
        let node = c % nodes.len();
        let client = nodes[node].client.clone();
        let base = nodes[node].url("/ngsi-ld/v1/entities/");
        let (ok, errors, n) = (ok.clone(), errors.clone(), sizes.entities);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::from_seed(7_000 + c as u64);
            while Instant::now() < deadline {
                let id = entity_id("n", rng.below(n));
                let sent = match kind {
                    Kind::Patch => {
                        client
                            .patch(format!("{base}{id}/attrs"))
                            .header(CONTENT_TYPE, "application/json")
                            .body(format!(
                                r#"{{"temperature":{{"type":"Property","value":{:.1}}}}}"#,
                                rng.range(18.0, 38.0)
                            ))
                            .send()
                            .await
                    }
                    Kind::Get => client.get(format!("{base}{id}")).send().await,
                };
                let expected = if kind == Kind::Patch { 204 } else { 200 };
                let answered = match sent {
                    Ok(r) => r.status().as_u16() == expected && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if answered { &ok[node] } else { &*errors };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    join_all(tasks).await?;
    Ok(Load {
        ok: ok.iter().map(|n| n.load(Ordering::Relaxed)).collect(),
        errors: errors.load(Ordering::Relaxed),
        took: start.elapsed(),
    })
}
