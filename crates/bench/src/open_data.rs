//! `dothi bench opendata`: the open data portal. Figure 1 streams the CSV download of
//! a dataset of many entities and measures its rate and the server's memory while it
//! streams; figure 2 measures `package_search` over a catalogue of many datasets.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hub::Scope;
use ngsi::entity::Reader;
use opendata::{Contact, Dataset, Organization, Portal, Text, View};

use super::data::{self, BATCH, full_entity, obs, percentiles, rss_bytes, section, thousands};
use super::server::{admit, bench_config, client};
use super::{Common, Report, Target, count};

/// Organisations of the catalogue of figure 2.
const ORGS: usize = 20;

#[derive(Debug, Clone)]
pub struct OpendataSizes {
    /// Entities in the dataset streamed in figure 1.
    pub entities: usize,
    /// Datasets in the catalogue of figure 2.
    pub datasets: usize,
    /// `package_search` calls measured in figure 2.
    pub searches: usize,
}

/// `dothi bench opendata`.
#[derive(clap::Args, Clone, Debug)]
pub struct OpendataArgs {
    /// Entities in the dataset whose CSV is streamed (figure 1) [default: 1000000;
    /// 20000 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub entities: Option<usize>,
    /// package_search calls measured (figure 2) [default: 500; 100 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub queries: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

impl OpendataArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> OpendataSizes {
        OpendataSizes {
            entities: self.common.size(self.entities, 20_000, 1_000_000),
            datasets: self.common.default_size(100, 1_000),
            searches: self.common.size(self.queries, 100, 500),
        }
    }
}

impl OpendataSizes {
    pub fn describe(&self) -> String {
        format!(
            "CSV of {} entities; package_search × {} over {} datasets",
            thousands(self.entities as f64),
            self.searches,
            thousands(self.datasets as f64)
        )
    }
}

fn text(vi: String, en: String) -> Text {
    Text { vi, en }
}

fn dataset(name: String, org: usize, i: usize, types: &str) -> Dataset {
    let words = [
        "nước",
        "không khí",
        "giao thông",
        "y tế",
        "giáo dục",
        "đất đai",
    ];
    Dataset {
        title: text(
            format!("Bộ dữ liệu {i} về {}", words[i % words.len()]),
            format!("Dataset {i}"),
        ),
        description: text(
            format!("Dữ liệu {} của tỉnh, số {i}", words[(i / 7) % words.len()]),
            String::new(),
        ),
        organization: format!("org-{org:02}"),
        contact: Contact {
            name: "Dữ liệu mở".into(),
            email: "data@example.gov.vn".into(),
        },
        theme: ["ENVI", "TRAN", "HEAL", "EDUC", "GOVE"][i % 5].into(),
        keywords: vec![
            words[i % words.len()].to_string(),
            format!("nhóm {}", i % 17),
        ],
        licence: "cc-by-4.0".into(),
        frequency: "CONT".into(),
        view: View {
            types: vec![types.into()],
            q: None,
            attrs: vec![
                "temperature".into(),
                "pm25".into(),
                "status".into(),
                "location".into(),
            ],
            ..Default::default()
        },
        name,
        ..Default::default()
    }
}

pub async fn run(sizes: &OpendataSizes, dir: &Path) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let store = store::open(&format!("sqlite://{}", dir.join("opendata.db").display()))
        .await
        .context("opening the store")?;
    let state = hub::state(store, &bench_config())?;
    admit(&state).await?;
    let hub = state.hub.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(hub::serve_with(
        listener,
        state,
        vec![opendata::component(
            hub.clone(),
            opendata::OpendataConfig::default(),
        )],
        std::future::pending::<()>(),
    ));
    let http = client()?;
    let portal = Portal::new(hub.clone());
    let scope = Scope::system("bench", "");
    for o in 0..ORGS {
        portal
            .put_organization(
                &scope,
                Organization {
                    name: format!("org-{o:02}"),
                    title: text(format!("Sở thứ {o}"), format!("Department {o}")),
                    description: Text::default(),
                    email: String::new(),
                    homepage: String::new(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }

    section(&format!(
        "Figure 1: the CSV download of a dataset of {} entities",
        thousands(sizes.entities as f64)
    ));
    let started = Instant::now();
    let reader_ctx = ngsi::Context::core();
    for start in (0..sizes.entities).step_by(BATCH) {
        let reader = Reader {
            ctx: &reader_ctx,
            now: ngsi::entity::now(),
        };
        let batch = (start..(start + BATCH).min(sizes.entities))
            .map(|i| {
                reader
                    .entity(&full_entity("od", i, &obs(18, i)), None)
                    .map_err(|e| (data::entity_id("od", i), e))
            })
            .collect();
        for (id, r) in hub.batch_upsert(&scope, batch, true).await? {
            r.map_err(|e| anyhow::anyhow!("{id}: {}", e.detail))?;
        }
    }
    println!("  loaded in {:.1} s", started.elapsed().as_secs_f64());
    portal
        .put_dataset(
            &scope,
            dataset("bench-stations".into(), 0, 0, data::TYPE),
            true,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rss_before = rss_bytes().unwrap_or(0);
    let started = Instant::now();
    let mut r = http
        .get(format!("{base}/dataset/bench-stations/data.csv"))
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("the CSV download answered {}", r.status());
    }
    let (mut bytes, mut lines) = (0u64, 0u64);
    let (mut rss_early, mut rss_max) = (0u64, 0u64);
    let mut next_sample = 0u64;
    while let Some(chunk) = r.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if lines >= next_sample {
            let rss = rss_bytes().unwrap_or(0);
            if rss_early == 0 && lines >= sizes.entities as u64 / 10 {
                rss_early = rss;
            }
            rss_max = rss_max.max(rss);
            next_sample = lines + (sizes.entities as u64 / 100).max(1);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = lines.saturating_sub(1);
    let clean = rows == sizes.entities as u64;
    let mb_s = bytes as f64 / 1e6 / secs;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "  {} rows, {:.1} MB in {secs:.2} s: {mb_s:.1} MB/s",
        thousands(rows as f64),
        mb(bytes)
    );
    println!(
        "  VmRSS of this process (server and client): {:.1} MB before, {:.1} MB at 10 % of the rows, {:.1} MB at most",
        mb(rss_before),
        mb(rss_early),
        mb(rss_max)
    );
    report.row(
        "csv_mb_per_s",
        format!(
            "CSV download of {} entities",
            thousands(sizes.entities as f64)
        ),
        mb_s,
        "MB/s",
        Some(Target::AtLeast(50.0)),
        clean,
    );
    report.row(
        "csv_rss_growth_mb",
        "memory growth from 10 % to the end of it",
        mb(rss_max.saturating_sub(rss_early)),
        "MB",
        Some(Target::AtMost(32.0)),
        clean && rss_early > 0,
    );
    report.extra("csv_rows", rows as f64);
    report.extra("csv_bytes", bytes as f64);

    section(&format!(
        "Figure 2: package_search over {} datasets",
        thousands(sizes.datasets as f64)
    ));
    for i in 1..sizes.datasets {
        portal
            .put_dataset(
                &scope,
                dataset(format!("bo-du-lieu-{i:05}"), i % ORGS, i, data::TYPE),
                true,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let searches = [
        "rows=10",
        "q=n%C6%B0%E1%BB%9Bc&rows=10",
        "fq=organization:org-03&rows=10&start=10",
        "q=d%E1%BB%AF%20li%E1%BB%87u&facet.field=%5B%22tags%22,%22organization%22,%22res_format%22%5D&rows=20",
        "fq=tags:%22nh%C3%B3m%205%22&sort=metadata_modified%20desc",
    ];
    let mut samples = Vec::with_capacity(sizes.searches);
    let mut errors = 0;
    let mut found = 0u64;
    for n in 0..sizes.searches + 10 {
        let url = format!(
            "{base}/api/3/action/package_search?{}",
            searches[n % searches.len()]
        );
        let t = Instant::now();
        let answer = http.get(&url).send().await;
        let body = match answer {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        let took = t.elapsed();
        match body {
            Some(b) if b["success"] == true => {
                found += b["result"]["count"].as_u64().unwrap_or(0);
                // The first ten warm up the server and the connection.
                if n >= 10 {
                    samples.push(took);
                }
            }
            _ => errors += 1,
        }
    }
    let p = percentiles(&samples);
    println!("  {}; {errors} errors", data::ms(&p));
    report.p95_row(
        "search_p95_ms",
        format!(
            "package_search p95 at {} datasets",
            thousands(sizes.datasets as f64)
        ),
        &p,
        20.0,
        errors == 0 && found > 0,
    );
    report.extra("search_p50_ms", p.p50);
    server.abort();
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The benchmark's whole path at tiny sizes: every row is streamed and every
    /// search answers. No timing is asserted.
    #[test]
    fn tiny_opendata_benchmark_streams_every_row() {
        let sizes = OpendataSizes {
            entities: 2_500,
            datasets: 30,
            searches: 10,
        };
        let dir = tempfile::tempdir().unwrap();
        let report = crate::tests::runtime()
            .block_on(run(&sizes, dir.path()))
            .unwrap();
        assert!(report.rows.iter().all(|r| r.clean), "{:?}", report.rows);
        let extra = |k: &str| report.extra.iter().find(|e| e.0 == k).unwrap().1;
        assert_eq!(extra("csv_rows"), 2_500.0);
        assert!(extra("csv_bytes") > 2_500.0 * 40.0);
    }
}
