//! `dothi simulate`: the demo's devices (`demo::sensors`) sending readings to a broker
//! or a server, live or replaying the flood of October 2020.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, ValueEnum};
use iot::simulate::{Event, Scenario, Simulator, Sink, Stats, flood2020};

/// The default speed of the flood-2020 replay: a simulated hour a minute.
const FLOOD_2020_SPEED: f64 = 60.0;

/// What `dothi simulate` plays.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioName {
    /// The demo's readings from now on, a Thạch Hãn flood every `--flood-secs`.
    Demo,
    /// The historic flood of October 2020 on the Thạch Hãn (7.40 m on 18 October),
    /// replayed from 15 to 23 October 2020 and stamped with the time of sending.
    #[value(name = "flood-2020")]
    Flood2020,
}

#[derive(Args, Clone)]
pub struct SimulateArgs {
    /// What to play.
    #[arg(long, value_enum, default_value = "demo")]
    pub scenario: ScenarioName,
    /// Broker to publish readings to (topics /json/{apikey}/{device_id}/attrs).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_url: String,
    /// The simulator's MQTT client id.
    #[arg(long, default_value = "dothi-simulator")]
    pub mqtt_client_id: String,
    /// Post readings over HTTP to this dothi (e.g. http://127.0.0.1:1026) instead of
    /// publishing them over MQTT.
    #[arg(long)]
    pub http: Option<String>,
    /// API key of the devices (`dothi demo` provisions them with this one).
    #[arg(long, default_value = demo::DEMO_APIKEY)]
    pub apikey: String,
    /// Real seconds between two readings of a device.
    #[arg(long, default_value_t = 10.0)]
    pub interval_secs: f64,
    /// How long to run, in real seconds (without it: until stopped).
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// How much faster than real time the simulated clock runs (default: 1, and 60 for
    /// flood-2020: one simulated hour a minute, the whole flood in 3 h 12 min).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Seed of the noise: the same seed and start give the same readings.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time of the first reading, RFC 3339 (default: now; for flood-2020,
    /// 2020-10-15T00:00:00+07:00, and it must fall within the flood's days).
    #[arg(long)]
    pub start: Option<String>,
    /// Simulated seconds the Thạch Hãn flood takes to rise and fall back; it starts
    /// with the simulation and comes back after as long a calm.
    #[arg(long, default_value_t = 1800)]
    pub flood_secs: u64,
    /// Real seconds between two summary lines.
    #[arg(long, default_value_t = 10)]
    pub report_secs: u64,
}

/// Where `dothi simulate` sends readings.
enum Target {
    Mqtt(iot::MqttConfig),
    Http(String),
}

impl SimulateArgs {
    fn validate(self) -> anyhow::Result<(Simulator, Target, Option<u64>, Duration)> {
        let replay = self.scenario == ScenarioName::Flood2020;
        if !(0.01..=86_400.0).contains(&self.interval_secs) {
            bail!("--interval-secs must be between 0.01 and 86400");
        }
        let speed = self
            .speed
            .unwrap_or(if replay { FLOOD_2020_SPEED } else { 1.0 });
        if !(0.001..=1_000_000.0).contains(&speed) {
            bail!("--speed must be between 0.001 and 1000000");
        }
        if self.flood_secs == 0 || self.flood_secs > 366 * 86_400 {
            bail!("--flood-secs must be between 1 and a year");
        }
        if !iot::simulate::is_key(&self.apikey) {
            bail!("--apikey {:?} is not a valid API key", self.apikey);
        }
        let start = match &self.start {
            Some(s) => DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?
                .with_timezone(&Utc),
            None if replay => flood2020::start(),
            None => Utc::now(),
        };
        if replay && !(flood2020::start()..flood2020::end()).contains(&start) {
            bail!(
                "--start must fall within the flood of 2020, from {} to {}",
                flood2020::start(),
                flood2020::end()
            );
        }
        let step_ms = (self.interval_secs * speed * 1000.0).round().max(1.0) as i64;
        let ticks = match self.duration_secs {
            Some(d) if !(d > 0.0 && d.is_finite()) => bail!("--duration-secs must be positive"),
            Some(d) => Some((d / self.interval_secs).ceil().max(1.0) as u64),
            // A replay ends with its event.
            None if replay => {
                let left = (flood2020::end() - start).num_milliseconds() as f64;
                Some((left / step_ms as f64).floor() as u64 + 1)
            }
            None => None,
        };
        let target = match self.http {
            Some(url) => {
                let parsed = reqwest::Url::parse(&url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"));
                if parsed.is_none() {
                    bail!("--http {url:?} is not a URL like http://127.0.0.1:1026");
                }
                Target::Http(url)
            }
            None => Target::Mqtt(
                iot::MqttConfig::from_url(&self.mqtt_url, &self.mqtt_client_id)
                    .map_err(|e| anyhow::anyhow!("--mqtt-url: {e}"))?,
            ),
        };
        let simulator = Simulator {
            scenario: Scenario {
                seed: self.seed,
                start,
                step: TimeDelta::milliseconds(step_ms),
                // The replay has its own flood.
                flood: TimeDelta::seconds(if replay { 0 } else { self.flood_secs as i64 }),
                year: Some(demo::sensors::year()),
                event: replay.then_some(Event::Flood2020),
            },
            apikey: self.apikey,
            devices: demo::sensors::devices(),
            interval: Duration::from_secs_f64(self.interval_secs),
        };
        let report = Duration::from_secs(self.report_secs.max(1));
        Ok((simulator, target, ticks, report))
    }
}

/// `dothi simulate`: sends readings until the duration is over or Ctrl-C.
pub async fn run(args: SimulateArgs) -> anyhow::Result<std::process::ExitCode> {
    let (simulator, target, ticks, every) = args.validate()?;
    let sink = match &target {
        Target::Mqtt(config) => Sink::Mqtt(iot::simulate::MqttSink::connect(config)),
        Target::Http(base) => Sink::Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("building the HTTP client")?,
            base: base.clone(),
        },
    };
    let to = match &target {
        Target::Mqtt(c) => format!("mqtt://{}:{}", c.host, c.port),
        Target::Http(base) => base.clone(),
    };
    println!(
        "simulate: {} devices, a reading each every {:?}, to {to} (apikey {})",
        simulator.devices.len(),
        simulator.interval,
        simulator.apikey
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    if simulator.scenario.event == Some(Event::Flood2020) {
        println!(
            "simulate: the flood of October 2020 from {} (local time), {} simulated per real second; readings stamped with the time they are sent",
            local_time(simulator.scenario.start),
            human(simulator.scenario.step.num_seconds() as f64 / simulator.interval.as_secs_f64())
        );
    }
    let mut last = Instant::now();
    let scenario = simulator.scenario.clone();
    let stats = simulator
        .run(&sink, ticks, stopped, |s| {
            if last.elapsed() >= every {
                last = Instant::now();
                println!("{}", summary(s));
                if scenario.event == Some(Event::Flood2020) {
                    let at = scenario.time(s.ticks.saturating_sub(1));
                    println!(
                        "simulate: {} (local), Thạch Hãn at {:.2} m",
                        local_time(at),
                        flood2020::thach_han(at)
                    );
                }
            }
        })
        .await;
    if let Sink::Mqtt(m) = &sink {
        // Let the last QoS 1 messages leave before the connection is dropped.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if m.connection_errors() > 0 {
            println!("simulate: {} MQTT connection errors", m.connection_errors());
        }
    }
    println!("{}", summary(&stats));
    Ok(if stats.failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// How fast the replay goes, for people: "1 h", "10 min".
fn human(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

/// A time in Vietnam (UTC+7), to the minute.
fn local_time(at: DateTime<Utc>) -> String {
    (at + TimeDelta::hours(7))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// One summary line.
pub fn summary(s: &Stats) -> String {
    format!(
        "simulate: {} ticks, {} messages sent, {} failed",
        s.ticks, s.sent, s.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(more: &[&str]) -> SimulateArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SimulateArgs,
        }
        let mut argv = vec!["simulate", "--http", "http://127.0.0.1:1026"];
        argv.extend_from_slice(more);
        <Cli as clap::Parser>::try_parse_from(argv)
            .map(|c| c.args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flood_2020_replays_the_flood_at_a_simulated_hour_a_minute() {
        let (sim, _, ticks, _) = args(&["--scenario", "flood-2020"])
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sim.scenario.event, Some(Event::Flood2020));
        assert_eq!(sim.scenario.start, flood2020::start());
        // 10 s a tick at 60 times real time: 10 simulated minutes a tick.
        assert_eq!(sim.scenario.step, TimeDelta::minutes(10));
        assert_eq!(sim.scenario.flood, TimeDelta::zero());
        // To the end of the flood, the peak on the way.
        let ticks = ticks.unwrap_or(0);
        assert_eq!(sim.scenario.time(ticks - 1), flood2020::end());
        let gauge = sim
            .devices
            .iter()
            .find(|d| d.device_id == "gauge-thach-han")
            .cloned()
            .unwrap_or_else(|| panic!("the Thạch Hãn gauge"));
        let peak = (0..ticks)
            .map(|t| sim.scenario.reading(&gauge, t))
            .max_by(|a, b| {
                a["l"]
                    .as_f64()
                    .partial_cmp(&b["l"].as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or_default();
        assert!(
            (peak["l"].as_f64().unwrap_or(0.0) - 7.4).abs() < 0.1,
            "{peak:?}"
        );
        assert_eq!(peak["a"], 3);
        // A start outside the flood is refused; a faster replay is allowed.
        assert!(
            args(&[
                "--scenario",
                "flood-2020",
                "--start",
                "2020-11-01T00:00:00Z"
            ])
            .validate()
            .is_err()
        );
        let (fast, _, _, _) = args(&["--scenario", "flood-2020", "--speed", "360"])
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fast.scenario.step, TimeDelta::hours(1));
        // The demo scenario is as it was: real time, the hourly flood.
        let (demo, _, none, _) = args(&[]).validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((demo.scenario.event, none), (None, None));
        assert_eq!(demo.scenario.step, TimeDelta::seconds(10));
    }
}
