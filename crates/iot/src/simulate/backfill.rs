//! Past readings written as history: the demo's year, made by the simulator's own
//! model ([`Scenario::reading_at`]) and written in bulk, a few days of every device
//! in one store write ([`hub::Hub::add_past_history`]), never as live updates: the
//! entities keep their current values, no subscription fires and no alert is raised.
//!
//! **Newest first.** The history is written from the window's end backwards, so that
//! the last days, those an operator looks at first, are there within seconds.
//!
//! **Written once.** The window is decided at the first start and kept in a registry
//! record ([`COLLECTION`], [`KEY`]) with how far back the backfill has gone; a later
//! start reads it: done, nothing is written; interrupted, the backfill goes on from
//! there. Each chunk of days is one write, all of it or nothing, so the record may lag
//! behind the data by at most one chunk: on resuming, a chunk already in the history
//! is seen and skipped, never written twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hub::temporal::{TemporalAnswer, TemporalRequest};
use hub::{Hub, Records, Scope};
use ngsi::temporal::{TemporalParams, TimeRel};
use ngsi::{Attribute, Error};
use serde_json::{Value, json};
use store::RegistryWrite;

use super::{Scenario, SimDevice};

/// The registry collection of the backfill's record.
pub const COLLECTION: &str = "demo.history";
/// The record's key.
pub const KEY: &str = "year";
/// Time between two readings of a device.
pub const STEP: TimeDelta = TimeDelta::minutes(15);
/// How far back the history goes.
pub const SPAN: TimeDelta = TimeDelta::days(365);
/// The days of readings written in one store write.
const CHUNK: TimeDelta = TimeDelta::days(2);

/// The backfill's window and progress, as its record keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The first reading's time.
    pub from: DateTime<Utc>,
    /// The end, excluded: the hour of the first start (the demo data set's values
    /// are observed at that hour; the live readings come after).
    pub to: DateTime<Utc>,
    /// Written from here (included) to `to`.
    pub back_to: DateTime<Utc>,
    pub complete: bool,
}

impl Window {
    /// The window of a first start at `now`: the past [`SPAN`] up to the hour.
    pub fn first(now: DateTime<Utc>) -> Window {
        let to =
            DateTime::from_timestamp(now.timestamp().div_euclid(3600) * 3600, 0).unwrap_or(now);
        let from = to - SPAN;
        Window {
            from,
            to,
            back_to: to,
            complete: false,
        }
    }

    /// Keeps the window, with `report`'s counts, in the tenant's record, so that an
    /// interrupted run can go on from it.
    async fn keep(
        &self,
        records: &Records,
        tenant: &str,
        report: &Report,
        mode: RegistryWrite,
    ) -> Result<(), Error> {
        records
            .registry_put(
                COLLECTION,
                tenant,
                vec![(KEY.into(), self.record(report))],
                mode,
            )
            .await
            .map_err(crate::registry::store_error)
    }

    fn record(&self, report: &Report) -> Value {
        json!({
            "from": ngsi::entity::format_time(&self.from),
            "to": ngsi::entity::format_time(&self.to),
            "backTo": ngsi::entity::format_time(&self.back_to),
            "stepSeconds": STEP.num_seconds(),
            "complete": self.complete,
            "readings": report.readings,
            "instances": report.instances,
            "dataProvider": "dothi demo data",
            "description": "Demo history: readings made by the device simulator's year, not measurements.",
        })
    }

    fn from_record(v: &Value) -> Option<Window> {
        let time = |k: &str| v.get(k)?.as_str().and_then(ngsi::entity::parse_time);
        let w = Window {
            from: time("from")?,
            to: time("to")?,
            back_to: time("backTo")?,
            complete: v.get("complete")?.as_bool()?,
        };
        let sane = w.from <= w.back_to && w.back_to <= w.to && w.to - w.from <= SPAN;
        sane.then_some(w)
    }
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Readings written (one per device and time), in this run.
    pub readings: u64,
    /// Attribute instances written, in this run.
    pub instances: u64,
    /// Share of the window written so far, 0 to 1.
    pub done: f64,
    /// Nothing to do: an earlier start wrote the whole window.
    pub already_done: bool,
    /// This run went on from an interrupted one.
    pub resumed: bool,
    pub window: Option<Window>,
    pub elapsed: Duration,
}

/// Writes the history of `devices` (their entities must exist) over the past year,
/// or what an interrupted run left, in `scope`'s tenant. `progress` sees the report
/// after every chunk.
pub async fn run(
    hub: &Hub,
    scope: &Scope,
    scenario: &Scenario,
    devices: &[SimDevice],
    now: DateTime<Utc>,
    mut progress: impl FnMut(&Report),
) -> Result<Report, Error> {
    let started = Instant::now();
    let records = hub.records();
    let tenant = scope.tenant.clone();
    let kept = records
        .registry_get(COLLECTION, &tenant, KEY)
        .await
        .map_err(crate::registry::store_error)?;
    let mut report = Report::default();
    let mut window = match kept.as_ref().and_then(Window::from_record) {
        Some(w) if w.complete => {
            report.already_done = true;
            report.done = 1.0;
            report.window = Some(w);
            return Ok(report);
        }
        Some(w) => {
            report.resumed = true;
            w
        }
        None => {
            let w = Window::first(now);
            let mode = if kept.is_some() {
                RegistryWrite::Upsert
            } else {
                RegistryWrite::Create
            };
            w.keep(&records, &tenant, &report, mode).await?;
            w
        }
    };
    if report.resumed {
        // The chunk before the record's may be in already (its write committed, the
        // record's update did not).
        while window.back_to > window.from
            && chunk_written(hub, scope, devices, chunk_start(&window), window.back_to).await?
        {
            window.back_to = chunk_start(&window);
        }
        if window.back_to <= window.from {
            // Everything was in: only the record lagged.
            window.complete = true;
            window
                .keep(&records, &tenant, &report, RegistryWrite::Upsert)
                .await?;
        }
    }
    let templates: Vec<Templates> = devices.iter().map(Templates::of).collect();
    let total = (window.to - window.from).num_seconds().max(1) as f64;
    // The next chunk is made while the store writes this one.
    let make = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let (s, d, t) = (scenario.clone(), devices.to_vec(), templates.clone());
        tokio::task::spawn_blocking(move || make_chunk(&s, &d, &t, from, to))
    };
    let mut next =
        (window.back_to > window.from).then(|| make(chunk_start(&window), window.back_to));
    while let Some(made) = next.take() {
        let chunk = made
            .await
            .map_err(|e| Error::new(ngsi::ErrorKind::InternalError, e.to_string()))?;
        let start = chunk_start(&window);
        if start > window.from {
            next = Some(make((start - CHUNK).max(window.from), start));
        }
        let (readings, instances) = (chunk.readings, chunk.instances);
        for r in hub.add_past_history(scope, chunk.entries).await? {
            r?;
        }
        window.back_to = start;
        window.complete = start <= window.from;
        report.readings += readings;
        report.instances += instances;
        report.done = (window.to - window.back_to).num_seconds() as f64 / total;
        window
            .keep(&records, &tenant, &report, RegistryWrite::Upsert)
            .await?;
        report.elapsed = started.elapsed();
        progress(&report);
    }
    report.elapsed = started.elapsed();
    report.done = 1.0;
    report.window = Some(window);
    Ok(report)
}

/// The start of the chunk that ends where the history written so far begins.
fn chunk_start(w: &Window) -> DateTime<Utc> {
    (w.back_to - CHUNK).max(w.from)
}

/// Whether any device's entity has history in `[from, to)`.
async fn chunk_written(
    hub: &Hub,
    scope: &Scope,
    devices: &[SimDevice],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<bool, Error> {
    for d in devices {
        let req = TemporalRequest {
            params: TemporalParams {
                timerel: Some(TimeRel::Between(from, to)),
                last_n: Some(1),
                ..Default::default()
            },
            attrs: Vec::new(),
            limit: 1,
        };
        match hub.temporal_entity(scope, &d.entity_id, &req).await {
            Ok(TemporalAnswer::Instances { entity, .. })
                if entity.attrs.values().any(|v| !v.is_empty()) =>
            {
                return Ok(true);
            }
            Ok(_) => {}
            Err(e) if e.kind == ngsi::ErrorKind::ResourceNotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// One chunk of history, ready to write.
struct Chunk {
    entries: Vec<(String, Vec<(String, Attribute)>)>,
    readings: u64,
    instances: u64,
}

/// A device's measures as instances to fill in: object id → (expanded name, instance).
#[derive(Clone)]
struct Templates(BTreeMap<String, (String, Attribute)>);

impl Templates {
    /// Made the way the agent makes an attribute of a measure, once per measure.
    fn of(d: &SimDevice) -> Templates {
        let t = DateTime::UNIX_EPOCH;
        let mut out = BTreeMap::new();
        for m in d.profile.measures() {
            let sample = if m.attr_type == "Boolean" {
                json!(false)
            } else {
                json!(0)
            };
            if let Ok(made) =
                crate::measure::attribute(m.name, m.attr_type, &sample, m.unit, Some(t), t)
            {
                out.insert(m.object_id.to_string(), made);
            }
        }
        Templates(out)
    }

    /// The instances of one reading.
    fn instances(
        &self,
        reading: &serde_json::Map<String, Value>,
        at: DateTime<Utc>,
        out: &mut Vec<(String, Attribute)>,
    ) {
        for (key, value) in reading {
            if let Some((name, template)) = self.0.get(key) {
                let mut inst = template.clone();
                inst.value = value.clone();
                inst.observed_at = Some(at);
                // Recorded when observed, as a device's reading would have been.
                inst.created_at = at;
                inst.modified_at = at;
                out.push((name.clone(), inst));
            }
        }
    }
}

fn make_chunk(
    scenario: &Scenario,
    devices: &[SimDevice],
    templates: &[Templates],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Chunk {
    let mut chunk = Chunk {
        entries: Vec::with_capacity(devices.len()),
        readings: 0,
        instances: 0,
    };
    for (d, t) in devices.iter().zip(templates) {
        let mut instances = Vec::new();
        let mut at = from;
        while at < to {
            if !scenario.silent(d, at) {
                let reading = scenario.reading_at(d, at);
                t.instances(&reading, at, &mut instances);
                chunk.readings += 1;
            }
            at += STEP;
        }
        chunk.instances += instances.len() as u64;
        if !instances.is_empty() {
            chunk.entries.push((d.entity_id.clone(), instances));
        }
    }
    chunk
}

/// The number of readings of `device` the backfill writes in `[from, to)` of its
/// window (its times are the window's start plus whole steps).
pub fn planned_readings(
    scenario: &Scenario,
    device: &SimDevice,
    window: &Window,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> u64 {
    let mut at = window.from;
    if from > at {
        let steps = (from - at).num_seconds().div_euclid(STEP.num_seconds());
        at += STEP * steps as i32;
    }
    let mut n = 0;
    while at < to.min(window.to) {
        if at >= from && !scenario.silent(device, at) {
            n += 1;
        }
        at += STEP;
    }
    n
}

/// The backfill's record in `tenant`, if there is one.
pub async fn window(hub: &Hub, tenant: &str) -> Result<Option<Window>, Error> {
    let kept = hub
        .records()
        .registry_get(COLLECTION, tenant, KEY)
        .await
        .map_err(crate::registry::store_error)?;
    Ok(kept.as_ref().and_then(Window::from_record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Profile;

    #[test]
    fn instances_are_those_the_agent_would_write() {
        let d = SimDevice {
            device_id: "traffic-x-1".into(),
            entity_id: "urn:ngsi-ld:TrafficFlowObserved:x".into(),
            entity_type: "TrafficFlowObserved".into(),
            profile: Profile::TrafficCounter {
                vehicles_per_hour: 900.0,
            },
        };
        let at = DateTime::from_timestamp(1_780_000_200, 0).unwrap_or_default();
        let reading = Scenario::default().reading_at(&d, at);
        let mut made = Vec::new();
        Templates::of(&d).instances(&reading, at, &mut made);
        assert_eq!(made.len(), 4);
        for (name, inst) in &made {
            let m = d
                .profile
                .measures()
                .iter()
                .find(|m| name.ends_with(m.name))
                .unwrap_or_else(|| panic!("{name} is a measure"));
            let (want_name, mut want) = crate::measure::attribute(
                m.name,
                m.attr_type,
                &reading[m.object_id],
                m.unit,
                Some(at),
                at,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            want.created_at = at;
            assert_eq!(&want_name, name);
            assert_eq!(&want, inst);
        }
    }

    #[test]
    fn the_window_is_the_past_year_on_quarter_hours() {
        let now = DateTime::from_timestamp(1_796_540_000, 0).unwrap_or_default();
        let w = Window::first(now);
        assert_eq!(w.to.timestamp() % 3600, 0);
        assert!(w.to <= now && now - w.to < TimeDelta::hours(1));
        assert_eq!(w.to - w.from, SPAN);
        let report = Report::default();
        assert_eq!(Window::from_record(&w.record(&report)), Some(w.clone()));
        let mut bad = w.record(&report);
        bad["backTo"] = json!("1999-01-01T00:00:00Z");
        assert_eq!(Window::from_record(&bad), None);
    }
}
