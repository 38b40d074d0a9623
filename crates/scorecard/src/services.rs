//! KPIs computed from what the other services keep in the hub, read as entities and
//! history like any client would: citizen reports (`Open311_ServiceRequest`), the open
//! data catalogue (`Dataset`), the air-quality stations' history (a daily temporal
//! aggregation) and the sensors fed by the IoT agent. Nothing here knows those
//! services' code: only the attribute names their entities carry.

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use hub::http::params::{Params, QuerySpec};
use hub::temporal::{TemporalAnswer, TemporalRequest};
use hub::{Hub, Scope};
use ngsi::temporal::{AggrMethod, TemporalParams};
use ngsi::{Context, Error};
use serde_json::Value;

use crate::sources::{Api, Input, KpiSource, Measured, Measurement, encode, round, run_query};

/// The entity type of citizen reports.
pub const REPORT_TYPE: &str = "Open311_ServiceRequest";
/// The workflow stages of a report that has been answered (`workflowStatus`).
pub const ANSWERED: [&str; 4] = ["resolved", "closed", "rejected", "merged"];
/// Reports are counted over the last 12 months of reception.
const REPORT_WINDOW: TimeDelta = TimeDelta::days(365);

/// The share of a percentage, rounded to one decimal.
fn percent(n: u64, d: u64) -> f64 {
    round(n as f64 * 100.0 / d as f64, 1)
}

/// The start of a window, to the second.
fn since(now: DateTime<Utc>, window: TimeDelta) -> String {
    (now - window).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `attr >= since` where the attribute's value is a time written as text (the reports'
/// `requested_datetime`, a dataset's `modified`): compared as text, which orders ISO
/// 8601 UTC times as time and lets the store narrow it by its index.
fn at_or_after(attr: &str, since: &str) -> String {
    format!("{attr}%3E%3D%22{since}%22")
}

/// Citizen reports answered by their deadline, of those answered: the rule of the
/// reports' own statistics, read from each entity's attributes. A report refused or
/// merged is due at `dueAcceptAt`, any other at `expected_datetime`; it is answered at
/// `resolvedAt`, else `firstResponseAt`, else `updated_datetime`.
///
/// Reading every answered report is the costly part, so the count of a tenant is kept
/// and read again only when it may have changed: when the number of answered reports
/// differs, when one of them was updated since (`updated_datetime`, which the reports
/// service sets on every change), or after an hour (a change made around the service).
/// A report enters the answered set only by a change of its own, and the window only
/// drops reports, so an equal count with no update means the same reports.
#[derive(Default)]
pub struct ReportsOnTime {
    known: std::sync::Mutex<std::collections::HashMap<String, Known>>,
}

/// What the last full count of a tenant found.
#[derive(Clone)]
struct Known {
    answered: u64,
    on_time: u64,
    /// When the reports were read (a second early, since times compare to the second).
    read_at: DateTime<Utc>,
}

/// A kept count is read again after this long.
const KNOWN_FOR: TimeDelta = TimeDelta::hours(1);

impl ReportsOnTime {
    pub const RULE: &str = "answered (resolvedAt, else firstResponseAt, else updated_datetime) no later than due (dueAcceptAt when rejected or merged, else expected_datetime)";

    /// Whether one answered report (key-values) was answered on time; None when its
    /// times are missing.
    pub fn on_time(report: &serde_json::Map<String, Value>) -> Option<bool> {
        let time = |name: &str| {
            report
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let stage = report.get("workflowStatus").and_then(Value::as_str)?;
        let answered = time("resolvedAt")
            .or_else(|| time("firstResponseAt"))
            .or_else(|| time("updated_datetime"))?;
        let due = match stage {
            "rejected" | "merged" => time("dueAcceptAt")?,
            _ => time("expected_datetime")?,
        };
        Some(answered <= due)
    }

    /// The kept on-time count of the tenant, if the answered reports are the same.
    async fn still_known(
        &self,
        hub: &Hub,
        scope: &Scope,
        query: &str,
        answered: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, Error> {
        let known = self
            .known
            .lock()
            .ok()
            .and_then(|k| k.get(&scope.tenant).cloned());
        let Some(k) = known else {
            return Ok(None);
        };
        if k.answered != answered || now - k.read_at > KNOWN_FOR {
            return Ok(None);
        }
        let stamp = k.read_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let updated = query.replacen(
            "&attrs=",
            &format!(";{}&attrs=", at_or_after("updated_datetime", &stamp)),
            1,
        );
        let (changed, _) = run_query(hub, scope, &updated, false).await?;
        Ok((changed == 0).then_some(k.on_time))
    }

    fn query(since: &str) -> String {
        let stages: Vec<String> = ANSWERED.iter().map(|s| format!("%22{s}%22")).collect();
        format!(
            "type={REPORT_TYPE}&q=workflowStatus=={};{}&attrs=workflowStatus,resolvedAt,firstResponseAt,updated_datetime,dueAcceptAt,expected_datetime",
            stages.join(","),
            at_or_after("requested_datetime", since)
        )
    }
}

#[async_trait]
impl KpiSource for ReportsOnTime {
    fn kpi(&self) -> &str {
        "reports-on-time"
    }

    fn watches(&self) -> Vec<String> {
        vec![REPORT_TYPE.into()]
    }

    async fn measure(&self, hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
        let since = since(now, REPORT_WINDOW);
        let query = ReportsOnTime::query(&since);
        let (answered, _) = run_query(hub, scope, &query, false).await?;
        if answered == 0 {
            return Ok(None);
        }
        let on_time = match self.still_known(hub, scope, &query, answered, now).await? {
            Some(n) => n,
            None => {
                let read_at = now - TimeDelta::seconds(1);
                let (_, entities) = run_query(hub, scope, &query, true).await?;
                let n = entities
                    .iter()
                    .filter(|e| ReportsOnTime::on_time(&crate::engine::keyvalues(e)) == Some(true))
                    .count() as u64;
                if let Ok(mut known) = self.known.lock() {
                    known.insert(
                        scope.tenant.clone(),
                        Known {
                            answered: entities.len() as u64,
                            on_time: n,
                            read_at,
                        },
                    );
                }
                n
            }
        };
        Ok(Some(Measurement {
            value: percent(on_time, answered),
            formula: format!(
                "{on_time} reports answered on time / {answered} reports answered, received since {since}, × 100"
            ),
            inputs: vec![
                Input::counted("reports answered", query.clone(), answered),
                Input {
                    rule: Some(ReportsOnTime::RULE.into()),
                    ..Input::counted("of them answered on time", query, on_time)
                },
            ],
        }))
    }
}

/// Citizen reports rated 4 or 5 by their reporter, of those rated.
async fn reports_satisfaction(hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
    let since = since(now, REPORT_WINDOW);
    let window = at_or_after("requested_datetime", &since);
    let rated = format!("type={REPORT_TYPE}&q=rating%3E%3D1;{window}");
    let satisfied = format!("type={REPORT_TYPE}&q=rating%3E%3D4;{window}");
    share(
        hub,
        scope,
        ("reports rated 4 or 5", satisfied),
        ("reports rated", rated),
        |n, d| {
            format!("{n} reports rated 4 or 5 / {d} reports rated, received since {since}, × 100")
        },
    )
    .await
}

/// The share of the entities `whole` matches that `part` (a narrower query) matches,
/// × 100, with both queries as its inputs; None when `whole` matches nothing.
async fn share(
    hub: &Hub,
    scope: &Scope,
    part: (&str, String),
    whole: (&str, String),
    formula: impl FnOnce(u64, u64) -> String,
) -> Result<Option<Measurement>, Error> {
    let (d, _) = run_query(hub, scope, &whole.1, false).await?;
    if d == 0 {
        return Ok(None);
    }
    let (n, _) = run_query(hub, scope, &part.1, false).await?;
    Ok(Some(Measurement {
        value: percent(n, d),
        formula: formula(n, d),
        inputs: vec![
            Input::counted(part.0, part.1, n),
            Input::counted(whole.0, whole.1, d),
        ],
    }))
}

/// The entity type of the open data catalogue's datasets.
pub const DATASET_TYPE: &str = "Dataset";

/// The datasets of the open data catalogue.
async fn datasets_published(hub: &Hub, scope: &Scope, _now: DateTime<Utc>) -> Measured {
    let query = format!("type={DATASET_TYPE}");
    let (count, _) = run_query(hub, scope, &query, false).await?;
    if count == 0 {
        return Ok(None);
    }
    Ok(Some(Measurement {
        value: count as f64,
        formula: format!("{count} datasets in the open data catalogue"),
        inputs: vec![Input::counted("datasets", query, count)],
    }))
}

/// How recent a dataset's `modified` must be to count as updated.
pub const DATASET_FRESH: TimeDelta = TimeDelta::days(92);

/// The share of datasets whose `modified` (the portal sets it on every change of the
/// dataset) is within the last 3 months.
async fn datasets_updated(hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
    let since = since(now, DATASET_FRESH);
    share(
        hub,
        scope,
        (
            "datasets updated within 3 months",
            format!("type={DATASET_TYPE}&q={}", at_or_after("modified", &since)),
        ),
        ("datasets", format!("type={DATASET_TYPE}")),
        |n, d| format!("{n} datasets modified since {since} (3 months) / {d} datasets × 100"),
    )
    .await
}

/// The daily mean PM2.5 (µg/m³) at or under which a day is good: 25 µg/m³ is AQI 50
/// on the PM2.5 breakpoints of Vietnam's AQI (Decision 1459/QĐ-TCMT), as the data
/// set's `airQualityIndex` computes it.
pub const GOOD_PM25: f64 = 25.0;
/// Days looked back on, today included.
pub const AIR_DAYS: u64 = 30;
/// Days are counted in the province's time.
const VIETNAM: i64 = 7 * 3600;

/// The share of good-air days per station: the stations' PM2.5 history aggregated
/// per day (`aggrMethods=avg&aggrPeriodDuration=P1D`) over the last 30 days, today
/// included; a station-day is good when its mean is at most [`GOOD_PM25`].
pub struct GoodAirDays;

impl GoodAirDays {
    /// The local midnight `AIR_DAYS - 1` days before today's.
    pub fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
        let offset = TimeDelta::seconds(VIETNAM);
        let today = (now + offset).date_naive();
        let first = today
            .checked_sub_days(Days::new(AIR_DAYS - 1))
            .unwrap_or(today);
        first.and_time(NaiveTime::MIN).and_utc() - offset
    }

    pub fn query(from: &DateTime<Utc>, to: &DateTime<Utc>) -> String {
        format!(
            "type={AIR_TYPE}&q=pm25&attrs=pm25&timerel=between&timeAt={}&endTimeAt={}&format=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1D",
            encode(&ngsi::entity::format_time(from)),
            encode(&ngsi::entity::format_time(to)),
        )
    }
}

/// The share of good-air station-days (see [`GoodAirDays`]).
async fn good_air_days(hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
    // The stations measuring PM2.5: the aggregation pages over these alone.
    let stations_query = format!("type={AIR_TYPE}&q=pm25");
    let (stations, _) = run_query(hub, scope, &stations_query, false).await?;
    if stations == 0 {
        return Ok(None);
    }
    let from = GoodAirDays::window_start(now);
    let query = GoodAirDays::query(&from, &now);
    let means = daily_means(hub, scope, &query, stations).await?;
    let days = means.len() as u64;
    if days == 0 {
        return Ok(None);
    }
    let good = means.iter().filter(|m| **m <= GOOD_PM25).count() as u64;
    Ok(Some(Measurement {
        value: percent(good, days),
        formula: format!(
            "{good} good station-days (daily mean PM2.5 ≤ {GOOD_PM25} µg/m³, AQI ≤ 50) / {days} station-days with readings, {AIR_DAYS} days from {} × 100",
            ngsi::entity::format_time(&from)
        ),
        inputs: vec![
            Input::counted("air-quality stations", stations_query, stations),
            Input {
                api: Api::Temporal,
                rule: Some("daily buckets (avg of pm25) in the answer".into()),
                ..Input::counted("station-days with readings", query.clone(), days)
            },
            Input {
                api: Api::Temporal,
                rule: Some(format!("daily buckets whose avg is at most {GOOD_PM25}")),
                ..Input::counted("good station-days", query, good)
            },
        ],
    }))
}

/// The entity type of air-quality stations.
const AIR_TYPE: &str = "AirQualityObserved";

/// The daily means of the entities a temporal aggregation answers (`entities` of
/// them, read a page at a time): one per station-day that has readings.
async fn daily_means(
    hub: &Hub,
    scope: &Scope,
    query: &str,
    entities: u64,
) -> Result<Vec<f64>, Error> {
    const PAGE: usize = 100;
    let params = Params::parse(Some(query))?;
    let spec = QuerySpec::from_params(&params)?;
    let ctx = Context::core();
    let temporal = TemporalParams::parse(
        params.get("timerel"),
        params.get("timeAt"),
        params.get("endTimeAt"),
        None,
        None,
        &["aggregatedValues"],
        params.get("aggrMethods"),
        params.get("aggrPeriodDuration"),
    )?;
    let req = TemporalRequest {
        params: temporal,
        attrs: spec.attrs.iter().map(|a| ctx.expand(a)).collect(),
        limit: hub::temporal::MAX_INSTANCES,
    };
    let mut means = Vec::new();
    let mut offset = 0;
    while (offset as u64) < entities.min(MAX_STATIONS) {
        let (answers, _) = hub
            .temporal_query(scope, spec.build(&ctx, PAGE, offset, false)?, &req)
            .await?;
        for answer in answers {
            if let TemporalAnswer::Aggregated { attrs, .. } = answer {
                for bucket in attrs.values().flatten().flat_map(|a| &a.buckets) {
                    means.extend(
                        bucket
                            .values
                            .iter()
                            .find(|(m, _)| *m == AggrMethod::Avg)
                            .and_then(|(_, v)| v.as_f64()),
                    );
                }
            }
        }
        offset += PAGE;
    }
    Ok(means)
}

/// Most stations aggregated by one computation.
const MAX_STATIONS: u64 = 10_000;

/// A sensor fed by the IoT agent counts as up when its reading was observed this
/// recently (the operations centre shows it offline after the same time).
pub const SILENT_AFTER: TimeDelta = TimeDelta::minutes(15);

/// The sensor types and the attribute that carries each one's reading.
pub const SENSORS: [(&str, &str); 4] = [
    ("WaterObserved", "waterLevel"),
    ("AirQualityObserved", "pm25"),
    ("WeatherObserved", "temperature"),
    ("TrafficFlowObserved", "intensity"),
];

/// The share of sensors whose reading was observed within [`SILENT_AFTER`].
async fn device_uptime(hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
    let since = since(now, SILENT_AFTER);
    let mut inputs = Vec::new();
    let (mut all, mut up) = (0, 0);
    for (ty, attr) in SENSORS {
        // Every sensor of the type: one that never reported is not up. (This
        // count and the next are both decided by the store's indexes.)
        let sensors = format!("type={ty}");
        let (n, _) = run_query(hub, scope, &sensors, false).await?;
        if n == 0 {
            continue;
        }
        let recent = format!("type={ty}&q={attr}.observedAt%3E%3D{since}");
        let (r, _) = run_query(hub, scope, &recent, false).await?;
        all += n;
        up += r;
        inputs.push(Input::counted(format!("{ty} reporting"), recent, r));
        inputs.push(Input::counted(format!("{ty} sensors"), sensors, n));
    }
    if all == 0 {
        return Ok(None);
    }
    Ok(Some(Measurement {
        value: percent(up, all),
        formula: format!(
            "{up} sensors with a reading observed since {since} (15 minutes) / {all} sensors × 100"
        ),
        inputs,
    }))
}

/// A KPI measured by a function of the hub's entities alone, with nothing of its own
/// kept between measurements.
struct ServiceKpi {
    /// The KPI's slug.
    slug: &'static str,
    /// The entity types whose changes move the value; none where the schedule
    /// recomputes it.
    watches: &'static [&'static str],
    measure: for<'a> fn(&'a Hub, &'a Scope, DateTime<Utc>) -> BoxFuture<'a, Measured>,
}

#[async_trait]
impl KpiSource for ServiceKpi {
    fn kpi(&self) -> &str {
        self.slug
    }

    fn watches(&self) -> Vec<String> {
        self.watches.iter().map(|t| t.to_string()).collect()
    }

    async fn measure(&self, hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
        (self.measure)(hub, scope, now).await
    }
}

/// The KPIs measured by one function each.
const SERVICE_KPIS: [ServiceKpi; 5] = [
    ServiceKpi {
        slug: "reports-satisfaction",
        watches: &[REPORT_TYPE],
        measure: |hub, scope, now| Box::pin(reports_satisfaction(hub, scope, now)),
    },
    ServiceKpi {
        slug: "open-datasets",
        watches: &[DATASET_TYPE],
        measure: |hub, scope, now| Box::pin(datasets_published(hub, scope, now)),
    },
    ServiceKpi {
        slug: "open-datasets-updated",
        watches: &[DATASET_TYPE],
        measure: |hub, scope, now| Box::pin(datasets_updated(hub, scope, now)),
    },
    // Readings come every few minutes and the value moves by the day: the schedule
    // recomputes it, not every reading.
    ServiceKpi {
        slug: "good-air-days",
        watches: &[],
        measure: |hub, scope, now| Box::pin(good_air_days(hub, scope, now)),
    },
    // Silence is the absence of a change: the schedule recomputes it.
    ServiceKpi {
        slug: "device-uptime",
        watches: &[],
        measure: |hub, scope, now| Box::pin(device_uptime(hub, scope, now)),
    },
];

/// The sources of the KPIs that read the other services' entities.
pub fn service_sources() -> Vec<std::sync::Arc<dyn KpiSource>> {
    let mut sources: Vec<std::sync::Arc<dyn KpiSource>> =
        vec![std::sync::Arc::new(ReportsOnTime::default())];
    for kpi in SERVICE_KPIS {
        sources.push(std::sync::Arc::new(kpi));
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_report_is_on_time_when_answered_by_the_deadline_of_its_stage() {
        let due = "2026-10-10T10:00:00Z";
        let resolved = |at: &str| {
            kv(json!({"workflowStatus": "resolved", "resolvedAt": at,
                      "expected_datetime": due, "dueAcceptAt": "2026-10-02T10:00:00Z",
                      "updated_datetime": "2026-12-01T00:00:00Z"}))
        };
        assert_eq!(
            ReportsOnTime::on_time(&resolved("2026-10-10T10:00:00Z")),
            Some(true)
        );
        assert_eq!(
            ReportsOnTime::on_time(&resolved("2026-10-10T10:00:01Z")),
            Some(false)
        );
        // Refused reports are due at their acceptance deadline, answered at the first
        // response.
        let rejected = kv(json!({"workflowStatus": "rejected",
            "firstResponseAt": "2026-10-03T00:00:00Z", "expected_datetime": due,
            "dueAcceptAt": "2026-10-02T10:00:00Z", "updated_datetime": "2026-10-03T00:00:00Z"}));
        assert_eq!(ReportsOnTime::on_time(&rejected), Some(false));
        // Without any answer time, the last update counts.
        let closed = kv(json!({"workflowStatus": "closed", "expected_datetime": due,
            "updated_datetime": "2026-10-09T00:00:00Z"}));
        assert_eq!(ReportsOnTime::on_time(&closed), Some(true));
        assert_eq!(
            ReportsOnTime::on_time(&kv(json!({"workflowStatus": "closed"}))),
            None
        );
    }

    #[test]
    fn the_air_window_starts_at_a_local_midnight_thirty_days_back() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T18:30:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        // 01:30 on 7 December in Vietnam: the window starts on 8 November, local.
        assert_eq!(
            ngsi::entity::format_time(&GoodAirDays::window_start(now)),
            "2026-11-07T17:00:00Z"
        );
    }

    #[test]
    fn good_air_is_aqi_50_on_the_data_sets_breakpoints() {
        assert_eq!(city::demo::air_quality_index(GOOD_PM25).0, 50);
        assert!(city::demo::air_quality_index(GOOD_PM25 + 0.5).0 > 50);
    }

    #[test]
    fn every_query_of_the_service_sources_parses() {
        let now = Utc::now();
        let ctx = Context::core();
        let mut queries = vec![
            ReportsOnTime::query("2026-01-01T00:00:00Z"),
            GoodAirDays::query(&GoodAirDays::window_start(now), &now),
        ];
        for (ty, attr) in SENSORS {
            queries.push(format!(
                "type={ty}&q={attr}.observedAt%3E%3D2026-01-01T00:00:00Z"
            ));
        }
        for q in queries {
            let p = Params::parse(Some(&q)).expect("parameters");
            let built = QuerySpec::from_params(&p).and_then(|s| s.build(&ctx, 0, 0, true));
            assert!(built.is_ok(), "{q}: {:?}", built.err());
        }
    }
}
