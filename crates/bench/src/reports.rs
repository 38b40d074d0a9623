//! `dothi bench reports`: citizen reports at a province's scale. Over a fresh SQLite
//! file, served in this process with the reports service:
//!
//! 1. reports created over Open311 (`POST /open311/v2/requests.json`, form-encoded, no
//!    photos) by concurrent clients: reports/s;
//! 2. open reports in a map bounding box (`GET /open311/v2/requests.json?status=open&bbox=`):
//!    p50/p95/p99;
//! 3. a year's statistics per agency (`GET /reports/v1/stats?by=agency&from=&to=`);
//! 4. processing a photo of about 2 MB (decode, check, re-encode without metadata,
//!    thumbnail): p50/p95/p99.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::data::{Rng, ms, percentiles, section, thousands};
use super::server::{admit, bench_config, client};
use super::{Common, Report, Target, count};

pub struct ReportsSizes {
    pub reports: usize,
    pub clients: usize,
    pub queries: usize,
    pub stats_runs: usize,
    pub photos: usize,
}

/// `dothi bench reports`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReportsArgs {
    /// Reports created over Open311, 1 to 5000000 [default: 200000; 5000 with
    /// --quick].
    #[arg(long, value_parser = count(1..=5_000_000))]
    pub entities: Option<usize>,
    /// Bounding-box queries [default: 200; 50 with --quick].
    #[arg(long, value_parser = count(1..))]
    pub queries: Option<usize>,
    /// Concurrent clients creating reports.
    #[arg(long, default_value_t = 16, value_parser = count(1..))]
    pub patch_clients: usize,
    #[command(flatten)]
    pub common: Common,
}

impl ReportsArgs {
    /// The sizes these flags ask for.
    pub fn sizes(&self) -> ReportsSizes {
        ReportsSizes {
            reports: self.common.size(self.entities, 5_000, 200_000),
            clients: self.patch_clients,
            queries: self.common.size(self.queries, 50, 200),
            stats_runs: self.common.default_size(5, 20),
            photos: self.common.default_size(5, 30),
        }
    }
}

impl ReportsSizes {
    pub fn describe(&self) -> String {
        format!(
            "{} reports by {} clients, {} bounding-box queries, {} statistics runs, {} photos",
            thousands(self.reports as f64),
            self.clients,
            self.queries,
            self.stats_runs,
            self.photos
        )
    }
}

/// A JPEG of about 2 MB: a photo-like gradient with grain, at high quality.
fn two_mb_jpeg() -> anyhow::Result<Vec<u8>> {
    let mut rng = Rng::from_seed(7);
    let img = image::RgbImage::from_fn(2400, 1800, |x, y| {
        let n = (rng.next_u64() & 0x3f) as u32;
        image::Rgb([
            ((x / 10 + n) % 256) as u8,
            ((y / 8 + n) % 256) as u8,
            (((x + y) / 20 + n) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut Cursor::new(&mut out), 80)
        .encode_image(&img)
        .context("encoding the test photo")?;
    Ok(out)
}

pub async fn run(sizes: &ReportsSizes, dir: &Path) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let url = format!("sqlite://{}", dir.join("reports.db").display());
    let store = store::open(&url).await.context("opening the store")?;
    let state = hub::state(store, &bench_config())?;
    admit(&state).await?;
    let config = reports::ReportsConfig {
        per_address_per_hour: 0,
        per_contact_per_hour: 0,
        ..Default::default()
    };
    let service = reports::start(&state, config)
        .await
        .context("the reports service")?;
    service
        .put_categories(
            &hub::Scope::system("bench", ""),
            reports::demo::categories(),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let codes: Vec<String> = reports::demo::categories()
        .into_iter()
        .filter(|c| !c.attributes.iter().any(|a| a.required))
        .map(|c| c.service_code)
        .collect();
    let points = reports::demo::points(service.places(), 5_000, 11);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hub::serve_with(
        listener,
        state.clone(),
        vec![reports::component(service.clone())],
        async move {
            let _ = stopped.await;
        },
    ));
    let http = client()?;

    section("1. reports created over Open311 (form-encoded, no photos)");
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per = sizes.reports.div_ceil(sizes.clients);
    let codes = Arc::new(codes);
    let points = Arc::new(points);
    for c in 0..sizes.clients {
        let (http, base, codes, points) =
            (http.clone(), base.clone(), codes.clone(), points.clone());
        let n = per.min(sizes.reports.saturating_sub(c * per));
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::from_seed(100 + c as u64);
            let mut errors = 0usize;
            for _ in 0..n {
                let (lon, lat) = points[rng.below(points.len())];
                let (lat, lon) = (lat.to_string(), lon.to_string());
                let form = [
                    ("service_code", codes[rng.below(codes.len())].as_str()),
                    ("lat", lat.as_str()),
                    ("long", lon.as_str()),
                    ("description", "Phản ánh thử tải"),
                    ("email", "bench@example.vn"),
                ];
                let ok = http
                    .post(format!("{base}/open311/v2/requests.json"))
                    .form(&form)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 201);
                errors += usize::from(!ok);
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.map_err(super::data::join_error)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = sizes.reports as f64 / secs;
    println!(
        "  {} reports in {secs:.1} s: {} reports/s ({errors} errors)",
        thousands(sizes.reports as f64),
        thousands(rate)
    );
    report.row(
        "create_per_s",
        "create over the API (no photos)",
        rate,
        "reports/s",
        Some(Target::AtLeast(2_000.0)),
        errors == 0,
    );

    section("2. open reports in a map bounding box");
    let mut rng = Rng::from_seed(3);
    let mut lat_samples = Vec::new();
    let mut returned = 0u64;
    let mut bad = 0;
    for _ in 0..sizes.queries {
        let (lon, lat) = points[rng.below(points.len())];
        // About 2 km × 2 km: a street-level map view.
        let (dx, dy) = (0.01, 0.009);
        let q = format!(
            "{base}/open311/v2/requests.json?status=open&bbox={},{},{},{}",
            lon - dx,
            lat - dy,
            lon + dx,
            lat + dy
        );
        let t = Instant::now();
        match http.get(&q).send().await {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                lat_samples.push(t.elapsed());
                returned += v.as_array().map_or(0, |a| a.len() as u64);
            }
            _ => bad += 1,
        }
    }
    let p = percentiles(&lat_samples);
    println!(
        "  {}; {:.1} reports per answer ({bad} errors)",
        ms(&p),
        returned as f64 / sizes.queries as f64
    );
    report.p95_row(
        "bbox_p95_ms",
        "open reports in a bounding box, p95",
        &p,
        50.0,
        bad == 0,
    );

    section("3. a year's statistics per agency");
    let now = chrono::Utc::now();
    let from =
        (now - chrono::TimeDelta::days(365)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut samples = Vec::new();
    let mut bad = 0;
    for _ in 0..sizes.stats_runs {
        let t = Instant::now();
        match http
            .get(format!("{base}/reports/v1/stats"))
            .query(&[
                ("by", "agency"),
                ("from", from.as_str()),
                ("to", to.as_str()),
            ])
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                samples.push(t.elapsed());
            }
            _ => bad += 1,
        }
    }
    let p = percentiles(&samples);
    println!("  {} ({bad} errors)", ms(&p));
    report.p95_row(
        "stats_p95_ms",
        "a year's statistics per agency, p95",
        &p,
        200.0,
        bad == 0,
    );

    section("4. processing a 2 MB photo");
    let photo = Arc::new(two_mb_jpeg()?);
    println!(
        "  the photo: {:.2} MB, 2400 × 1800",
        photo.len() as f64 / 1e6
    );
    let mut samples = Vec::new();
    for _ in 0..sizes.photos {
        let p = photo.clone();
        let t = Instant::now();
        let done = tokio::task::spawn_blocking(move || reports::media::process(&p))
            .await
            .map_err(super::data::join_error)?;
        samples.push(t.elapsed());
        if let Err(e) = done {
            bail!("the photo was refused: {e}");
        }
    }
    let p = percentiles(&samples);
    println!("  {}", ms(&p));
    report.p95_row(
        "photo_p95_ms",
        "processing a 2 MB photo, p95",
        &p,
        300.0,
        true,
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    Ok(report)
}
