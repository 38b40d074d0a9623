//! Synthetic air-quality stations over Quảng Trị, deterministic from their index, and
//! the small helpers the benchmarks need (random numbers, URL encoding, distances,
//! percentiles, printing, tasks, retries, file sizes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The entity type of every generated entity.
pub const TYPE: &str = "AirQualityObserved";
/// Values of `status`, with their shares: ok 65 %, warning 25 %, alarm 10 %.
pub const STATUSES: [&str; 3] = ["ok", "warning", "alarm"];
/// Entities per batch upsert while a benchmark loads the entities it works on.
pub const BATCH: usize = 1_000;
/// Quảng Trị's bounding box (longitude, latitude), the merged province.
pub const LON: (f64, f64) = (105.6, 107.6);
pub const LAT: (f64, f64) = (16.0, 18.1);

/// SplitMix64, shared with the demo layers; seeded by number here.
pub use city::rng::Rng;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

/// One station's observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    pub temperature: f64,
    pub humidity: f64,
    /// µg/m³, skewed low: median ≈ 37, P(> 50) ≈ 42 %, P(> 100) ≈ 18 %.
    pub pm25: f64,
    /// Index into [`STATUSES`].
    pub status: usize,
    pub lon: f64,
    pub lat: f64,
}

/// The observation of entity `i` of data set `set`: the same every run.
pub fn obs(set: u64, i: usize) -> Obs {
    let mut r = Rng::from_seed(set.wrapping_mul(0x0100_0000_01B3) ^ (i as u64).wrapping_mul(31));
    r.next_u64();
    let u = r.unit();
    let s = r.unit();
    Obs {
        temperature: round1(r.range(18.0, 38.0)),
        humidity: round1(r.range(40.0, 98.0)),
        pm25: round1(150.0 * u * u),
        status: if s < 0.65 {
            0
        } else if s < 0.90 {
            1
        } else {
            2
        },
        lon: round5(r.range(LON.0, LON.1)),
        lat: round5(r.range(LAT.0, LAT.1)),
    }
}

pub fn entity_id(prefix: &str, i: usize) -> String {
    format!("urn:ngsi-ld:{TYPE}:{prefix}-{i:07}")
}

fn point(o: &Obs) -> Value {
    json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [o.lon, o.lat]}})
}

/// A station with five attributes: temperature, humidity, pm25, status, location.
pub fn full_entity(prefix: &str, i: usize, o: &Obs) -> Value {
    json!({
        "id": entity_id(prefix, i),
        "type": TYPE,
        "temperature": {"type": "Property", "value": o.temperature},
        "humidity": {"type": "Property", "value": o.humidity},
        "pm25": {"type": "Property", "value": o.pm25},
        "status": {"type": "Property", "value": STATUSES[o.status]},
        "location": point(o),
    })
}

/// A small station: pm25, status, location.
pub fn small_entity(prefix: &str, i: usize, o: &Obs) -> Value {
    json!({
        "id": entity_id(prefix, i),
        "type": TYPE,
        "pm25": {"type": "Property", "value": o.pm25},
        "status": {"type": "Property", "value": STATUSES[o.status]},
        "location": point(o),
    })
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Great-circle distance in metres (the mean Earth radius the `geo` crate uses).
pub fn distance_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// How many observations are within `max_m` metres of (lon, lat).
pub fn count_near(data: &[Obs], lon: f64, lat: f64, max_m: f64) -> usize {
    let dlat = max_m / 111_000.0 * 1.05;
    data.iter()
        .filter(|o| (o.lat - lat).abs() <= dlat && distance_m(lon, lat, o.lon, o.lat) <= max_m)
        .count()
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pcts {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentiles of the samples.
pub fn percentiles(samples: &[Duration]) -> Pcts {
    if samples.is_empty() {
        return Pcts::default();
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    Pcts {
        n: ms.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
    }
}

/// Latency percentiles for people.
pub fn ms(p: &Pcts) -> String {
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms (mean {:.2}, max {:.2}, n = {})",
        p.p50, p.p95, p.p99, p.mean, p.max, p.n
    )
}

/// The heading of a figure.
pub fn section(title: &str) {
    println!();
    println!("== {title} ==");
}

pub fn join_error(e: tokio::task::JoinError) -> anyhow::Error {
    anyhow!("a benchmark task failed: {e}")
}

/// What the loading tasks have loaded, told on stderr at each tenth of the total.
pub struct Progress {
    done: std::sync::atomic::AtomicU64,
    total: u64,
    /// What a line calls the load ("" or " instances") and its rate's unit.
    noun: &'static str,
    unit: &'static str,
    start: std::time::Instant,
}

impl Progress {
    pub fn new(total: u64, noun: &'static str, unit: &'static str) -> std::sync::Arc<Progress> {
        std::sync::Arc::new(Progress {
            done: std::sync::atomic::AtomicU64::new(0),
            total,
            noun,
            unit,
            start: std::time::Instant::now(),
        })
    }

    /// Counts `n` more loaded.
    pub fn add(&self, n: u64) {
        let before = self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let step = (self.total / 10).max(1);
        let after = before + n;
        if before / step != after / step {
            eprintln!(
                "  … {} / {}{} loaded ({} {}/s)",
                thousands(after as f64),
                thousands(self.total as f64),
                self.noun,
                thousands(after as f64 / self.start.elapsed().as_secs_f64()),
                self.unit
            );
        }
    }

    /// Waits for the loading tasks: how many were loaded, and their retries.
    pub async fn finish(
        &self,
        tasks: Vec<JoinHandle<anyhow::Result<Retries>>>,
    ) -> anyhow::Result<(u64, Retries)> {
        let mut retries = Retries::default();
        for r in join_all(tasks).await? {
            retries.merge(r);
        }
        Ok((
            self.done.load(std::sync::atomic::Ordering::Relaxed),
            retries,
        ))
    }
}

pub async fn join_all<T>(tasks: Vec<JoinHandle<anyhow::Result<T>>>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.map_err(join_error)??);
    }
    Ok(out)
}

/// How many times a batch is sent before the run gives up on it.
pub const BATCH_ATTEMPTS: usize = 3;

/// Failed batch attempts that were sent again: how many, and the first failure.
#[derive(Debug, Default)]
pub struct Retries {
    pub count: u64,
    first: Option<String>,
}

impl Retries {
    pub fn note(&mut self, e: &anyhow::Error) {
        self.count += 1;
        self.first.get_or_insert_with(|| format!("{e:#}"));
    }

    pub fn merge(&mut self, other: Retries) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    pub fn print(&self, what: &str) {
        if let Some(first) = &self.first {
            println!(
                "  ERRORS while {what}: {} failed batch attempts, each sent again; first: {first}",
                self.count
            );
        }
    }
}

/// The size of a file in MB (10⁶ bytes); 0 when it is not there.
pub fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// The WAL beside the SQLite database `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

/// The rows of `table` in a SQLite database.
pub fn count_rows(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// 1234567.8 → "1,234,568".
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let head = digits.len() % 3;
    let mut out = String::from(&digits[..head]);
    for (k, group) in digits.as_bytes()[head..].chunks(3).enumerate() {
        if head > 0 || k > 0 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The resident memory of this process, in bytes (Linux; None elsewhere).
pub fn rss_bytes() -> Option<u64> {
    rss_bytes_of("self")
}

/// The resident memory of process `pid` ("self" for this one), in bytes (Linux).
pub fn rss_bytes_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_and_in_the_box() {
        assert_eq!(obs(1, 42), obs(1, 42));
        assert_ne!(obs(1, 42), obs(1, 43));
        for i in 0..1000 {
            let o = obs(3, i);
            assert!((LON.0..=LON.1).contains(&o.lon) && (LAT.0..=LAT.1).contains(&o.lat));
            assert!((0.0..=150.0).contains(&o.pm25));
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(
            enc("pm25>50;status==\"alarm\""),
            "pm25%3E50%3Bstatus%3D%3D%22alarm%22"
        );
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        let d = distance_m(106.0, 17.0, 106.0, 17.01);
        assert!((d - 1112.0).abs() < 5.0, "{d}");
        let p = percentiles(&(1..=100).map(Duration::from_millis).collect::<Vec<_>>());
        assert_eq!((p.p50, p.p95, p.p99), (50.0, 95.0, 99.0));
    }
}
