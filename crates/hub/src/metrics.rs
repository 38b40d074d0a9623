//! Prometheus metrics: request counts and latency histograms by route.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; 12],
}

/// Counters kept in memory and rendered in the Prometheus text format.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Series>>,
    counters: Mutex<BTreeMap<String, u64>>,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let s = l
                .entry((method.to_string(), route.to_string()))
                .or_default();
            let secs = elapsed.as_secs_f64();
            s.count += 1;
            s.sum += secs;
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    s.buckets[i] += 1;
                }
            }
        }
    }

    /// Adds to a named counter (for components other than HTTP). The name may carry
    /// labels, already escaped: `dothi_iot_messages_total{outcome="accepted"}`.
    pub fn add(&self, name: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(name.to_string()).or_default() += n;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP dothi_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE dothi_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((method, route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "dothi_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        out.push_str("# HELP dothi_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE dothi_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for ((method, route), s) in l.iter() {
                let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "dothi_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                        s.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "dothi_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    s.count
                );
                let _ = writeln!(
                    out,
                    "dothi_http_request_duration_seconds_sum{{{labels}}} {}",
                    s.sum
                );
                let _ = writeln!(
                    out,
                    "dothi_http_request_duration_seconds_count{{{labels}}} {}",
                    s.count
                );
            }
        }
        if let Ok(c) = self.counters.lock() {
            // A name may carry labels (`family{label="value"}`): the series of a family
            // are written together, after one TYPE line.
            let mut families: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
            for (name, n) in c.iter() {
                let family = name.split('{').next().unwrap_or(name);
                families.entry(family).or_default().push((name, *n));
            }
            for (family, series) in families {
                let _ = writeln!(out, "# TYPE {family} counter");
                for (name, n) in series {
                    let _ = writeln!(out, "{name} {n}");
                }
            }
        }
        out
    }
}
