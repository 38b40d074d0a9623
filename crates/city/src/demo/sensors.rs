//! Which demo entities are sensors: the river gauges, air-quality and weather
//! stations and traffic counters whose measured values a device could send. `dothi`
//! provisions one IoT device per sensor (`docs/data.md`); what the devices send is
//! the IoT agent's business, not this crate's.

use super::environment::{AIR_STATIONS, GAUGES, Setting, WEATHER_STATIONS};
use super::mobility::COUNTERS;

/// A demo entity fed by a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// The id of the entity it feeds (as in the data set).
    pub entity_id: String,
    /// Its entity type, a short name under the core @context.
    pub entity_type: &'static str,
    /// A short, unique device id, e.g. `gauge-thach-han`, `traffic-ql1-dong-ha-1`.
    pub device_id: String,
    pub kind: SensorKind,
}

/// What a sensor measures, with the figures the data set gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorKind {
    /// A river gauge: its usual level and its báo động I, II, III levels (metres).
    RiverGauge {
        river: &'static str,
        usual_level: f64,
        alarm_levels: [Option<f64>; 3],
    },
    /// An air-quality station: typical PM2.5 and NO₂ (µg/m³) for its setting.
    AirQuality { pm25: f64, no2: f64 },
    /// A weather station: its mean temperature (°C) and how windy it is (1: inland).
    Weather {
        mean_temperature: f64,
        wind_factor: f64,
    },
    /// One direction of a traffic counter: vehicles in an ordinary daytime hour.
    TrafficCounter { vehicles_per_hour: f64 },
}

/// Every demo sensor, in data-set order: 4 gauges, 13 air-quality and 12 weather
/// stations, 38 traffic counters (one per direction).
pub fn sensors() -> Vec<Sensor> {
    let mut out = Vec::new();
    for g in &GAUGES {
        out.push(Sensor {
            entity_id: format!("urn:ngsi-ld:WaterObserved:demo-{}", g.slug),
            entity_type: "WaterObserved",
            device_id: format!("gauge-{}", g.slug),
            kind: SensorKind::RiverGauge {
                river: g.river,
                usual_level: g.level,
                alarm_levels: g.alarms,
            },
        });
    }
    for (slug, _, _, _, setting) in AIR_STATIONS {
        let (pm25, no2) = match setting {
            Setting::Urban => (26.0, 23.5),
            Setting::Industrial => (36.5, 30.0),
            Setting::Rural => (13.0, 7.5),
        };
        out.push(Sensor {
            entity_id: format!("urn:ngsi-ld:AirQualityObserved:demo-{slug}"),
            entity_type: "AirQualityObserved",
            device_id: format!("air-{slug}"),
            kind: SensorKind::AirQuality { pm25, no2 },
        });
    }
    for (slug, _, _, _, cooler) in WEATHER_STATIONS {
        out.push(Sensor {
            entity_id: format!("urn:ngsi-ld:WeatherObserved:demo-{slug}"),
            entity_type: "WeatherObserved",
            device_id: format!("weather-{slug}"),
            kind: SensorKind::Weather {
                mean_temperature: 24.0 - cooler,
                wind_factor: if slug == "con-co" { 2.5 } else { 1.0 },
            },
        });
    }
    for (road, place, _, _, both_ways) in COUNTERS {
        let site = format!("{}-{}", road.to_lowercase(), super::slug(place));
        for lane in ["1", "2"] {
            out.push(Sensor {
                entity_id: format!("urn:ngsi-ld:TrafficFlowObserved:demo-{site}-{lane}"),
                entity_type: "TrafficFlowObserved",
                device_id: format!("traffic-{site}-{lane}"),
                kind: SensorKind::TrafficCounter {
                    vehicles_per_hour: both_ways / 2.0,
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensors_are_the_demo_entities_with_unique_devices() {
        let all = sensors();
        assert_eq!(all.len(), 4 + 13 + 12 + 38);
        let mut ids: Vec<&str> = all.iter().map(|s| s.device_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "device ids are unique");
        let data = crate::DataSet::build(chrono::Utc::now()).expect("the data set builds");
        for s in &all {
            let e = data
                .entities
                .iter()
                .find(|e| e["id"] == s.entity_id.as_str())
                .unwrap_or_else(|| panic!("{} is in the data set", s.entity_id));
            assert_eq!(e["type"], s.entity_type);
        }
    }
}
