//! A device simulator: readings for a set of devices, sent as devices would send them
//! (over MQTT, over HTTP, or straight to an in-process [`Agent`]). `dothi simulate` and
//! `dothi demo` use it to feed the demo sensors (`docs/iot.md`).
//!
//! Readings are a pure function of the seed, the device and the simulated time: daily
//! cycles (temperature, humidity, traffic), rush-hour pollution peaks (7–9 h and
//! 17–19 h, Vietnam time), noise, and a flood on the gauges that flood, rising through
//! alarm levels I, II and III and falling back. The same seed and start give the same
//! values; nothing depends on the wall clock but the default start.
//!
//! With a [`year::Year`], readings also follow the seasons and the events of the
//! demo's year (floods, dry season, Tết, silent devices), so that any past reading can
//! be made on its own ([`Scenario::reading_at`]): [`backfill`] writes a year of them as
//! history. [`flood2020`] is the historic flood of October 2020, replayed as an
//! [`Event`].

pub mod backfill;
pub mod flood2020;
pub mod year;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use ngsi::Error;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::agent::{Agent, Message, Payload, Transport};
use crate::model::{AttributeMapping, Device, RESOURCE, ServiceGroup};
use crate::registry::Registry;

pub use crate::model::is_key;

/// Vietnam's time (Asia/Ho_Chi_Minh): UTC+7 all year.
const VIETNAM_OFFSET_SECS: i64 = 7 * 3600;

/// How a simulated device behaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// A river gauge: its usual level, its alarm levels I–III (metres), and whether it
    /// floods.
    RiverGauge {
        usual_level: f64,
        alarm_levels: [Option<f64>; 3],
        floods: bool,
    },
    /// An air-quality station: typical PM2.5 and NO₂ (µg/m³) outside rush hours.
    AirQuality { pm25: f64, no2: f64 },
    /// A weather station: its mean temperature (°C), and a wind factor (1: inland).
    Weather {
        mean_temperature: f64,
        wind_factor: f64,
    },
    /// One direction of a traffic counter: vehicles in an ordinary daytime hour.
    TrafficCounter { vehicles_per_hour: f64 },
}

/// One measure a profile sends: its short name in payloads, the attribute it becomes,
/// its IoT-Agent type and its unit.
struct Measure {
    object_id: &'static str,
    name: &'static str,
    attr_type: &'static str,
    unit: Option<&'static str>,
}

const fn m(
    object_id: &'static str,
    name: &'static str,
    attr_type: &'static str,
    unit: Option<&'static str>,
) -> Measure {
    Measure {
        object_id,
        name,
        attr_type,
        unit,
    }
}

const GAUGE_MEASURES: [Measure; 2] = [
    m("l", "waterLevel", "Number", Some("MTR")),
    m("a", "alarmLevelReached", "Number", None),
];
const AIR_MEASURES: [Measure; 6] = [
    m("pm25", "pm25", "Number", Some("GQ")),
    m("pm10", "pm10", "Number", Some("GQ")),
    m("no2", "no2", "Number", Some("GQ")),
    m("o3", "o3", "Number", Some("GQ")),
    m("so2", "so2", "Number", Some("GQ")),
    m("co", "co", "Number", Some("GQ")),
];
const WEATHER_MEASURES: [Measure; 6] = [
    m("t", "temperature", "Number", Some("CEL")),
    m("h", "relativeHumidity", "Number", None),
    m("p", "precipitation", "Number", Some("MMT")),
    m("ws", "windSpeed", "Number", Some("MTS")),
    m("wd", "windDirection", "Number", Some("DD")),
    m("ap", "atmosphericPressure", "Number", Some("A97")),
];
const TRAFFIC_MEASURES: [Measure; 4] = [
    m("n", "intensity", "Number", None),
    m("o", "occupancy", "Number", None),
    m("s", "averageVehicleSpeed", "Number", Some("KMH")),
    m("c", "congested", "Boolean", None),
];

impl Profile {
    fn measures(&self) -> &'static [Measure] {
        match self {
            Profile::RiverGauge { .. } => &GAUGE_MEASURES,
            Profile::AirQuality { .. } => &AIR_MEASURES,
            Profile::Weather { .. } => &WEATHER_MEASURES,
            Profile::TrafficCounter { .. } => &TRAFFIC_MEASURES,
        }
    }

    /// The attribute mappings of a device of this profile: short measure names to the
    /// entity's attribute names.
    pub fn mappings(&self) -> Vec<AttributeMapping> {
        self.measures()
            .iter()
            .map(|m| AttributeMapping {
                object_id: Some(m.object_id.to_string()),
                name: m.name.to_string(),
                attr_type: m.attr_type.to_string(),
                unit_code: m.unit.map(str::to_string),
            })
            .collect()
    }
}

/// A simulated device and the entity it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDevice {
    pub device_id: String,
    pub entity_id: String,
    /// A short type name under the core @context, as the entity has it.
    pub entity_type: String,
    pub profile: Profile,
}

impl SimDevice {
    /// The device as provisioned: only its mapped measures are written.
    pub fn device(&self, apikey: &str) -> Device {
        Device {
            device_id: self.device_id.clone(),
            apikey: apikey.to_string(),
            entity_name: self.entity_id.clone(),
            entity_type: self.entity_type.clone(),
            attributes: self.profile.mappings(),
            static_attributes: Vec::new(),
            explicit_attrs: Some(true),
            protocol: Some("IoTA-JSON".into()),
            transport: None,
            autoprovisioned: false,
        }
    }
}

/// The service group of simulated devices: no device is provisioned by its first
/// measure, and measures no mapping names are left out.
pub fn service_group(apikey: &str) -> ServiceGroup {
    ServiceGroup {
        apikey: apikey.to_string(),
        resource: RESOURCE.to_string(),
        entity_type: "Device".into(),
        attributes: Vec::new(),
        static_attributes: Vec::new(),
        explicit_attrs: Some(true),
        autoprovision: false,
    }
}

/// What [`provision`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub created: usize,
    pub replaced: usize,
    pub unchanged: usize,
}

/// Provisions the group of `apikey` and `devices` in `tenant`, idempotently: what is
/// missing is created, what differs is replaced, the rest is left alone. Fails when
/// the API key belongs to another tenant's group.
pub async fn provision(
    registry: &Registry,
    tenant: &str,
    apikey: &str,
    devices: &[SimDevice],
) -> Result<Provisioned, Error> {
    let group = service_group(apikey);
    match registry.group(tenant, apikey).await? {
        Some(g) if g == group => {}
        Some(_) => registry.replace_group(tenant, &group).await?,
        None => registry.create_groups(tenant, &[group]).await?,
    }
    let mut done = Provisioned::default();
    let mut missing = Vec::new();
    for d in devices {
        let device = d.device(apikey);
        match registry.device(tenant, &d.device_id).await? {
            Some(existing) if existing == device => done.unchanged += 1,
            Some(_) => {
                registry.replace_device(tenant, &device).await?;
                done.replaced += 1;
            }
            None => missing.push(device),
        }
    }
    for chunk in missing.chunks(crate::model::MAX_PER_REQUEST) {
        registry.create_devices(tenant, chunk).await?;
        done.created += chunk.len();
    }
    Ok(done)
}

/// A historic event a scenario replays: its values replace the usual ones where it
/// has some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The flood of October 2020 on the Thạch Hãn ([`flood2020`]).
    Flood2020,
}

/// How readings are made.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub seed: u64,
    /// The simulated time of the first reading.
    pub start: DateTime<Utc>,
    /// Simulated time between two readings of a device.
    pub step: TimeDelta,
    /// How long a flood takes to rise and fall back (simulated time); it starts at
    /// `start` and again after as long a calm. Zero: no such flood.
    pub flood: TimeDelta,
    /// The year's seasons and events; None: every day alike.
    pub year: Option<Arc<year::Year>>,
    /// A historic event replayed; its simulated times are those of the event.
    pub event: Option<Event>,
}

impl Scenario {
    /// The simulated time of reading `tick`.
    pub fn time(&self, tick: u64) -> DateTime<Utc> {
        let step_ms = self.step.num_milliseconds().max(1);
        self.start + TimeDelta::milliseconds(step_ms.saturating_mul(tick as i64))
    }

    /// Reading `tick` of a device: a JSON object of measures with its `TimeInstant`.
    pub fn reading(&self, device: &SimDevice, tick: u64) -> Map<String, Value> {
        self.reading_at(device, self.time(tick))
    }

    /// Whether the device sends nothing at `at` (the year's silences).
    pub fn silent(&self, device: &SimDevice, at: DateTime<Utc>) -> bool {
        self.year
            .as_ref()
            .is_some_and(|y| y.silent(&device.device_id, at))
    }

    /// The reading a device makes at `at`, past or future: a pure function of the
    /// scenario, the device and the time.
    pub fn reading_at(&self, device: &SimDevice, at: DateTime<Utc>) -> Map<String, Value> {
        // Vietnam has no daylight saving time: local time is UTC+7 all year.
        let local = at + TimeDelta::seconds(VIETNAM_OFFSET_SECS);
        let hour = local.hour() as f64 + local.minute() as f64 / 60.0;
        let noise = Noise {
            key: mix(self.seed ^ fnv(&device.device_id)) ^ mix(at.timestamp_millis() as u64),
        };
        let year = self.year.as_deref();
        let replaying = self.event == Some(Event::Flood2020);
        let mut out = Map::new();
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_string(), v);
        };
        match &device.profile {
            Profile::RiverGauge {
                usual_level,
                alarm_levels,
                floods,
            } => {
                let daily = 0.04 * (std::f64::consts::TAU * hour / 12.0).sin();
                let share = year::river_share(&device.device_id, *floods);
                let base = match year {
                    Some(y) => y.river_level(at, *usual_level, alarm_levels, share),
                    None => *usual_level,
                };
                let base = if replaying {
                    let severity = flood2020::severity(at) * share;
                    if *floods {
                        flood2020::thach_han(at)
                    } else {
                        year::level_at_severity(severity, *usual_level, alarm_levels)
                    }
                } else {
                    base
                };
                let mut level = base + daily + 0.02 * noise.get(0);
                if *floods {
                    level += self.flood_rise(at, *usual_level, alarm_levels);
                }
                let level = round(level.max(0.0), 2);
                let reached = alarm_levels
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.is_some_and(|a| level >= a))
                    .map(|(i, _)| i + 1)
                    .max()
                    .unwrap_or(0);
                put("l", json!(level));
                put("a", json!(reached));
            }
            Profile::AirQuality { pm25, no2 } => {
                // Traffic makes NO₂ and CO, and part of the dust; rain washes it out.
                let (traffic, rush_share) = year.map_or((1.0, 1.0), |y| y.traffic(at));
                let rush = rush_hour(hour) * rush_share;
                let (season, washed) = match year {
                    Some(y) => (
                        y.pm25_season(at),
                        if self.rain_at(at, device) > 3.0 {
                            0.6
                        } else {
                            1.0
                        },
                    ),
                    None => (1.0, 1.0),
                };
                let from_traffic = 0.4 + 0.6 * traffic;
                // Cleaner air at night, traffic in the rush hours.
                let base = 0.85 + 0.15 * day(hour);
                let pm25 = pm25
                    * base
                    * season
                    * washed
                    * (0.6 + 0.4 * traffic)
                    * (1.0 + 0.9 * rush)
                    * (1.0 + 0.1 * noise.get(0));
                put("pm25", json!(round(pm25, 1)));
                put("pm10", json!(round(pm25 * (1.7 + 0.1 * noise.get(1)), 1)));
                let no2 =
                    no2 * base * from_traffic * (1.0 + 1.2 * rush) * (1.0 + 0.1 * noise.get(2));
                put("no2", json!(round(no2, 1)));
                // Ozone follows the sun.
                let o3 = 25.0 + 45.0 * sun(hour) + 4.0 * noise.get(3);
                put("o3", json!(round(o3, 1)));
                put("so2", json!(round(8.0 + 2.0 * noise.get(4), 1)));
                let co =
                    450.0 * base * from_traffic * (1.0 + 0.8 * rush) * (1.0 + 0.1 * noise.get(5));
                put("co", json!(round(co, 0)));
            }
            Profile::Weather {
                mean_temperature,
                wind_factor,
            } => {
                // Warmest at 14–15 h, coolest before dawn.
                let cycle = (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
                let story_rain = self.rain_at(at, device);
                let raining = self.raining(at) || story_rain > 3.0;
                let season = year.map_or(0.0, |y| y.temperature_offset(at));
                let t = mean_temperature + season + 3.5 * cycle - if raining { 2.0 } else { 0.0 }
                    + 0.3 * noise.get(0);
                put("t", json!(round(t, 1)));
                let humid = year.map_or(0.86, |y| y.humidity(at));
                let h =
                    (humid - 0.1 * cycle + if raining { 0.08 } else { 0.0 } + 0.02 * noise.get(1))
                        .clamp(0.3, 1.0);
                put("h", json!(round(h, 2)));
                let rain = if story_rain > 0.0 {
                    story_rain * (1.0 + 0.3 * noise.get(2))
                } else if self.raining(at) {
                    12.0 + 8.0 * noise.get(2)
                } else if year.is_some() {
                    0.0
                } else {
                    (0.6 * noise.get(2)).max(0.0)
                };
                put("p", json!(round(rain, 1)));
                let wind = wind_factor * (2.5 + 1.0 * cycle + 0.5 * noise.get(3));
                put("ws", json!(round(wind.max(0.0), 1)));
                // The north-east monsoon.
                let dir = (45.0 + 25.0 * noise.get(4)).rem_euclid(360.0);
                put("wd", json!(round(dir, 0)));
                let semi = (std::f64::consts::TAU * hour / 12.0).cos();
                put(
                    "ap",
                    json!(round(1013.0 + 1.2 * semi + 0.4 * noise.get(5), 1)),
                );
            }
            Profile::TrafficCounter { vehicles_per_hour } => {
                let (traffic, rush_share) = year.map_or((1.0, 1.0), |y| y.traffic(at));
                let load = 0.15 + 0.85 * day(hour) + 0.6 * rush_share * rush_hour(hour);
                let n = (vehicles_per_hour * traffic * load * (1.0 + 0.08 * noise.get(0))).max(0.0);
                let n = n.round();
                let occupancy = (n / 1600.0 * (1.0 + 0.1 * noise.get(1))).clamp(0.0, 0.95);
                let congested = occupancy > 0.55;
                let speed = if congested {
                    22.0 + 6.0 * noise.get(2)
                } else {
                    55.0 - 15.0 * occupancy + 5.0 * noise.get(2)
                };
                put("n", json!(n));
                put("o", json!(round(occupancy, 2)));
                put("s", json!(round(speed, 1)));
                put("c", json!(congested));
            }
        }
        out.insert(
            crate::measure::TIME_INSTANT.into(),
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        out
    }

    /// The rain of the year or of the event at `at` (mm in the hour); 0 without them.
    fn rain_at(&self, at: DateTime<Utc>, device: &SimDevice) -> f64 {
        if self.event == Some(Event::Flood2020) {
            return flood2020::rain(at);
        }
        self.year
            .as_ref()
            .map_or(0.0, |y| y.rain(at, fnv(&device.device_id)))
    }

    /// Whether it rains hard: the first half of a flood.
    fn raining(&self, at: DateTime<Utc>) -> bool {
        self.flood_phase(at).is_some_and(|p| p < 0.5)
    }

    /// How far into the flood cycle `at` is, from 0 to 1, or None in a calm.
    fn flood_phase(&self, at: DateTime<Utc>) -> Option<f64> {
        let flood = self.flood.num_milliseconds();
        if flood <= 0 {
            return None;
        }
        let since = (at - self.start).num_milliseconds().rem_euclid(2 * flood);
        (since < flood).then(|| since as f64 / flood as f64)
    }

    /// The flood's rise above the usual level: up to half a metre over the highest
    /// alarm level, and back, as sin² over the flood.
    fn flood_rise(&self, at: DateTime<Utc>, usual: f64, alarms: &[Option<f64>; 3]) -> f64 {
        let Some(phase) = self.flood_phase(at) else {
            return 0.0;
        };
        let top = alarms.iter().flatten().copied().fold(usual, f64::max);
        let peak = top + 0.5;
        (peak - usual) * (std::f64::consts::PI * phase).sin().powi(2)
    }
}

/// 1 in the middle of the morning (7–9 h) and evening (17–19 h) rush hours, 0 outside.
fn rush_hour(hour: f64) -> f64 {
    let bump = |from: f64| {
        let x = (hour - from) / 2.0;
        if (0.0..=1.0).contains(&x) {
            (std::f64::consts::PI * x).sin()
        } else {
            0.0
        }
    };
    bump(7.0).max(bump(17.0))
}

/// 1 from 6 h to 21 h, 0 at night, with an hour's ramp on either side.
fn day(hour: f64) -> f64 {
    ((hour - 5.0).min(22.0 - hour)).clamp(0.0, 1.0)
}

/// The sun's height, 0 before 6 h and after 18 h, 1 at noon.
fn sun(hour: f64) -> f64 {
    if (6.0..=18.0).contains(&hour) {
        (std::f64::consts::PI * (hour - 6.0) / 12.0).sin()
    } else {
        0.0
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Noise in [-1, 1], one value per channel, from a key made of the seed, the device
/// and the tick: no state, so any reading can be made on its own.
struct Noise {
    key: u64,
}

impl Noise {
    fn get(&self, channel: u64) -> f64 {
        let bits = mix(self.key ^ mix(channel.wrapping_add(0x9e37_79b9)));
        (bits >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a: a device id to a number, the same on every machine and Rust version.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where readings go.
pub enum Sink {
    /// Published (QoS 1) to `/json/{apikey}/{device_id}/attrs` on a broker.
    Mqtt(MqttSink),
    /// Posted to `{base}/iot/json?k={apikey}&i={device_id}`.
    Http {
        client: reqwest::Client,
        base: String,
    },
    /// Given to an agent in the same process, as an HTTP measure would be.
    Agent(Arc<Agent>),
}

/// A connection to a broker for publishing.
pub struct MqttSink {
    client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
    errors: Arc<std::sync::atomic::AtomicU64>,
}

impl MqttSink {
    /// Connects in the background (and reconnects after a second when the connection
    /// is lost).
    pub fn connect(config: &crate::MqttConfig) -> MqttSink {
        let mut options = rumqttc::MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(true);
        if let Some((user, password)) = &config.credentials {
            options.set_credentials(user, password);
        }
        let (client, mut events) = rumqttc::AsyncClient::new(options, 1024);
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = errors.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = events.poll().await {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, "simulator: MQTT connection error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        MqttSink {
            client,
            task,
            errors,
        }
    }

    /// Connection errors since the start.
    pub fn connection_errors(&self) -> u64 {
        self.errors.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    async fn send(&self, apikey: &str, device_id: &str, payload: &Map<String, Value>) -> bool {
        let body = Value::Object(payload.clone()).to_string();
        match self {
            Sink::Mqtt(m) => {
                let topic = format!("/json/{apikey}/{device_id}/attrs");
                m.client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                    .await
                    .is_ok()
            }
            Sink::Http { client, base } => client
                .post(format!("{}/iot/json", base.trim_end_matches('/')))
                .query(&[("k", apikey), ("i", device_id)])
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Sink::Agent(agent) => {
                let msg = Message {
                    transport: Transport::Http,
                    apikey,
                    device_id,
                    payload: Payload::Measures(body.as_bytes()),
                    timestamp: None,
                };
                let result = agent.ingest(&msg).await;
                agent.count(&msg, &result);
                result.is_ok_and(|u| u.iter().all(|u| u.accepted > 0))
            }
        }
    }
}

/// Messages sent and failed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub ticks: u64,
    pub sent: u64,
    pub failed: u64,
}

/// The simulator: a scenario, its devices, and where their readings go.
pub struct Simulator {
    pub scenario: Scenario,
    pub apikey: String,
    pub devices: Vec<SimDevice>,
    /// Real time between two ticks (every device sends one reading per tick).
    pub interval: Duration,
}

impl Simulator {
    /// Sends reading `tick` of every device but the silent ones; counts into `stats`.
    /// A replayed event's readings are stamped with the time they are sent (its own
    /// times are in the past).
    pub async fn tick(&self, sink: &Sink, tick: u64, stats: &mut Stats) {
        let at = self.scenario.time(tick);
        for d in &self.devices {
            if self.scenario.silent(d, at) {
                continue;
            }
            let mut reading = self.scenario.reading_at(d, at);
            if self.scenario.event.is_some() {
                reading.insert(
                    crate::measure::TIME_INSTANT.into(),
                    json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
            }
            if sink.send(&self.apikey, &d.device_id, &reading).await {
                stats.sent += 1;
            } else {
                stats.failed += 1;
            }
        }
        stats.ticks += 1;
    }

    /// Sends a tick every `interval` until `ticks` ticks were sent (None: no end) or
    /// `stop` turns true; `report` sees the figures after every tick.
    pub async fn run(
        &self,
        sink: &Sink,
        ticks: Option<u64>,
        mut stop: watch::Receiver<bool>,
        mut report: impl FnMut(&Stats),
    ) -> Stats {
        let mut stats = Stats::default();
        let mut timer = tokio::time::interval(self.interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = 0;
        while ticks.is_none_or(|n| tick < n) {
            tokio::select! {
                _ = timer.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            self.tick(sink, tick, &mut stats).await;
            report(&stats);
            tick += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64) -> Scenario {
        Scenario {
            seed,
            start: DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            step: TimeDelta::minutes(5),
            flood: TimeDelta::hours(12),
            ..Default::default()
        }
    }

    fn device(id: &str, profile: Profile) -> SimDevice {
        SimDevice {
            device_id: id.into(),
            entity_id: format!("urn:ngsi-ld:Thing:{id}"),
            entity_type: "Thing".into(),
            profile,
        }
    }

    fn thach_han() -> SimDevice {
        device(
            "gauge-thach-han",
            Profile::RiverGauge {
                usual_level: 2.35,
                alarm_levels: [Some(3.0), Some(4.5), Some(6.0)],
                floods: true,
            },
        )
    }

    fn all() -> Vec<SimDevice> {
        vec![
            thach_han(),
            device(
                "air",
                Profile::AirQuality {
                    pm25: 26.0,
                    no2: 23.5,
                },
            ),
            device(
                "weather",
                Profile::Weather {
                    mean_temperature: 24.0,
                    wind_factor: 1.0,
                },
            ),
            device(
                "traffic",
                Profile::TrafficCounter {
                    vehicles_per_hour: 900.0,
                },
            ),
        ]
    }

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let (a, b, c) = (scenario(7), scenario(7), scenario(8));
        for d in all() {
            for tick in 0..50 {
                assert_eq!(a.reading(&d, tick), b.reading(&d, tick), "{}", d.device_id);
            }
            let differ = (0..50).any(|t| a.reading(&d, t) != c.reading(&d, t));
            assert!(differ, "another seed changes {}", d.device_id);
        }
    }

    #[test]
    fn readings_are_timed_and_mapped() {
        let s = scenario(1);
        for d in all() {
            let r = s.reading(&d, 3);
            assert_eq!(r["TimeInstant"], "2026-11-27T00:15:00Z");
            let names: Vec<&str> = d.profile.measures().iter().map(|m| m.object_id).collect();
            for k in r.keys().filter(|k| *k != "TimeInstant") {
                assert!(names.contains(&k.as_str()), "{k} is mapped");
            }
            assert_eq!(r.len(), names.len() + 1);
        }
    }

    #[test]
    fn the_flood_crosses_levels_one_two_three_in_order_and_falls_back() {
        let s = scenario(3);
        let gauge = thach_han();
        // 12 h of flood at 5 minutes a reading: 144 readings, and a few of the calm.
        let levels: Vec<(f64, u64)> = (0..160)
            .map(|t| {
                let r = s.reading(&gauge, t);
                (
                    r["l"].as_f64().unwrap_or(f64::NAN),
                    r["a"].as_u64().unwrap_or(9),
                )
            })
            .collect();
        let first_above = |x: f64| levels.iter().position(|(l, _)| *l >= x);
        let (one, two, three) = (first_above(3.0), first_above(4.5), first_above(6.0));
        assert!(
            matches!((one, two, three), (Some(a), Some(b), Some(c)) if a < b && b < c),
            "{one:?} {two:?} {three:?}"
        );
        let peak = levels.iter().map(|(l, _)| *l).fold(0.0, f64::max);
        assert!(peak < 7.4, "below the record: {peak}");
        let last_above = levels.iter().rposition(|(l, _)| *l >= 3.0).unwrap_or(0);
        assert!(last_above > three.unwrap_or(0));
        assert!(levels[140..].iter().all(|(l, a)| *l < 3.0 && *a == 0));
        // The alarm level sent matches the water level.
        for (l, a) in &levels {
            let want = [3.0, 4.5, 6.0].iter().filter(|x| l >= *x).count() as u64;
            assert_eq!(*a, want, "level {l}");
        }
    }

    #[test]
    fn pollution_and_traffic_peak_in_the_rush_hours() {
        // Start at 00:00 UTC = 07:00 in Vietnam; 08:00 Vietnam is tick 12, 03:00 tick -48.
        let s = Scenario {
            start: scenario(1).start - TimeDelta::hours(7),
            ..scenario(1)
        };
        let at = |d: &SimDevice, local_hour: u64, k: &str| {
            s.reading(d, local_hour * 12)[k]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let devices = all();
        assert!(at(&devices[1], 8, "pm25") > 1.4 * at(&devices[1], 12, "pm25"));
        assert!(at(&devices[1], 18, "no2") > 1.5 * at(&devices[1], 3, "no2"));
        assert!(at(&devices[3], 8, "n") > 1.3 * at(&devices[3], 12, "n"));
        assert!(at(&devices[3], 3, "n") < 0.5 * at(&devices[3], 12, "n"));
        assert!(at(&devices[2], 15, "t") > at(&devices[2], 5, "t") + 4.0);
    }
}
