//! The demo's sensors as devices: one simulated device per sensor of the data set
//! (`city::demo::sensors`), their provisioning, the year their readings follow, the
//! live simulator `dothi demo` runs and the year of history it writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use city::demo::{Sensor, SensorKind};
use iot::simulate::year::Year;
use iot::simulate::{Profile, Provisioned, Scenario, SimDevice, Simulator, Sink, Stats};

/// The API key of the demo devices' service group.
pub const DEMO_APIKEY: &str = "quangtri-demo";
/// The tenant of the data set, and so of its devices: the default one.
pub const DEMO_TENANT: &str = "";

/// The river whose gauge floods in the simulation.
const FLOOD_RIVER: &str = "Thạch Hãn";

/// One device per demo sensor, feeding that very entity.
pub fn devices() -> Vec<SimDevice> {
    city::demo::sensors().into_iter().map(device).collect()
}

fn device(s: Sensor) -> SimDevice {
    let profile = match s.kind {
        SensorKind::RiverGauge {
            river,
            usual_level,
            alarm_levels,
        } => Profile::RiverGauge {
            usual_level,
            alarm_levels,
            floods: river == FLOOD_RIVER,
        },
        SensorKind::AirQuality { pm25, no2 } => Profile::AirQuality { pm25, no2 },
        SensorKind::Weather {
            mean_temperature,
            wind_factor,
        } => Profile::Weather {
            mean_temperature,
            wind_factor,
        },
        SensorKind::TrafficCounter { vehicles_per_hour } => {
            Profile::TrafficCounter { vehicles_per_hour }
        }
    };
    SimDevice {
        device_id: s.device_id,
        entity_id: s.entity_id,
        entity_type: s.entity_type.to_string(),
        profile,
    }
}

/// Provisions the demo group and devices (idempotent: a second run changes nothing).
pub async fn provision(agent: &iot::Agent) -> anyhow::Result<Provisioned> {
    iot::simulate::provision(agent.registry(), DEMO_TENANT, DEMO_APIKEY, &devices())
        .await
        .map_err(|e| anyhow::anyhow!("provisioning the demo devices: {}", e.detail))
}

/// The demo's year: its seasons and events, with Vietnam's public holidays from the
/// calendar the citizen reports ship (Tết among them).
pub fn year() -> Arc<Year> {
    let calendar = reports::calendar::Calendar::shipped();
    let days: Vec<(chrono::NaiveDate, &str)> = calendar
        .years()
        .flat_map(|(_, days)| days.iter().map(|d| (d.date, d.name.as_str())))
        .collect();
    Arc::new(Year::new(days))
}

/// The simulator `dothi demo` runs: a reading of every device every 10 seconds, in
/// real time from now, with the seasons of the demo's year, and a flood rising and
/// falling over 30 minutes every hour.
pub fn simulator() -> Simulator {
    Simulator {
        scenario: Scenario {
            seed: 1,
            start: Utc::now(),
            step: TimeDelta::seconds(10),
            flood: TimeDelta::minutes(30),
            year: Some(year()),
            event: None,
        },
        apikey: DEMO_APIKEY.into(),
        devices: devices(),
        interval: Duration::from_secs(10),
    }
}

/// Runs the demo's simulator in the background until `stop` turns true; a summary is
/// logged every minute.
pub fn spawn_simulator(
    sink: Sink,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Stats> {
    let simulator = simulator();
    tracing::info!(
        devices = simulator.devices.len(),
        interval_secs = simulator.interval.as_secs(),
        "demo simulator started: readings of the demo sensors, and a flood on the Thạch Hãn"
    );
    tokio::spawn(async move {
        let mut last = Instant::now();
        simulator
            .run(&sink, None, stop, |s| {
                if last.elapsed() >= Duration::from_secs(60) {
                    last = Instant::now();
                    tracing::info!(
                        ticks = s.ticks,
                        sent = s.sent,
                        failed = s.failed,
                        "demo simulator"
                    );
                }
            })
            .await
    })
}

/// Writes the demo's past year of readings as history, in the background: once per
/// store (a later start finds it written, or goes on from where an interrupted one
/// stopped). Progress is logged at every tenth, and the total at the end. The history
/// ends at the hour of `until`: the hour the data set's observations are dated to, even
/// when the clock has passed into the next hour since they were loaded.
pub fn spawn_backfill(
    hub: Arc<hub::Hub>,
    until: chrono::DateTime<Utc>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let scope = hub::Scope::system("demo", DEMO_TENANT);
        // The live simulator's model and seed: the history leads into the live readings.
        let scenario = Scenario {
            seed: 1,
            year: Some(year()),
            ..Default::default()
        };
        let devices = devices();
        let mut next_tenth = 1.0;
        let run = iot::simulate::backfill::run(&hub, &scope, &scenario, &devices, until, |r| {
            if r.done * 10.0 >= next_tenth {
                next_tenth = (r.done * 10.0).floor() + 1.0;
                tracing::info!(
                    percent = (r.done * 100.0).round() as u64,
                    readings = r.readings,
                    elapsed_s = r.elapsed.as_secs(),
                    resumed = r.resumed,
                    "demo history: writing the past year, newest first"
                );
            }
        });
        match run.await {
            Ok(r) if r.already_done => {
                tracing::info!("demo history: the past year is already written")
            }
            Ok(r) => tracing::info!(
                devices = devices.len(),
                readings = r.readings,
                instances = r.instances,
                resumed = r.resumed,
                backfill_s = (r.elapsed.as_secs_f64() * 10.0).round() / 10.0,
                "demo history: the past year written (a reading of every device every 15 minutes)"
            ),
            Err(e) => tracing::warn!(
                error = %e.detail,
                "demo history: stopped; the next start goes on from where it stopped"
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_sensor_has_a_device_and_one_gauge_floods() {
        let devices = devices();
        assert_eq!(devices.len(), city::demo::sensors().len());
        let flooding: Vec<&str> = devices
            .iter()
            .filter(|d| matches!(d.profile, Profile::RiverGauge { floods: true, .. }))
            .map(|d| d.device_id.as_str())
            .collect();
        assert_eq!(flooding, ["gauge-thach-han"]);
    }

    #[test]
    fn the_demo_year_knows_tet_2026_from_the_holiday_calendar() {
        let year = year();
        let tet: Vec<String> = year.tet().map(|d| d.to_string()).collect();
        assert!(tet.contains(&"2026-02-17".to_string()), "{tet:?}");
        assert!(
            tet.iter().all(|d| d.contains("-02-")),
            "Tết falls in February: {tet:?}"
        );
        assert!(simulator().scenario.year.is_some());
    }
}
