//! River gauges, air-quality and weather stations.

use serde_json::json;

use super::{Demo, prop, prop_in};
use crate::Result;
use crate::geom::Position;
use crate::rng::Rng;

pub(super) struct Gauge {
    pub(super) slug: &'static str,
    station: &'static str,
    pub(super) river: &'static str,
    unit: &'static str,
    near: Position,
    pub(super) level: f64,
    /// Báo động I, II, III in metres (the Hiếu at Đông Hà has no level II).
    pub(super) alarms: [Option<f64>; 3],
}

/// The four gauges of quang-tri-facts.md. Their coordinates were not found: each is
/// put on its river inside the commune of the station's name.
pub(super) const GAUGES: [Gauge; 4] = [
    Gauge {
        slug: "thach-han",
        station: "Thạch Hãn",
        river: "Thạch Hãn",
        unit: "19360",
        near: [107.1830, 16.7560],
        level: 2.35,
        alarms: [Some(3.0), Some(4.5), Some(6.0)],
    },
    Gauge {
        slug: "dong-ha",
        station: "Đông Hà",
        river: "Hiếu",
        unit: "19333",
        near: [107.1000, 16.8240],
        level: 1.15,
        alarms: [Some(2.0), None, Some(4.0)],
    },
    Gauge {
        slug: "hien-luong",
        station: "Hiền Lương",
        river: "Bến Hải",
        unit: "19501",
        near: [107.0535, 16.9990],
        level: 1.25,
        alarms: [Some(1.0), Some(2.0), Some(2.5)],
    },
    Gauge {
        slug: "hai-tan",
        station: "Hải Tân",
        river: "Ô Lâu",
        unit: "19681",
        near: [107.2650, 16.6550],
        level: 1.95,
        alarms: [Some(1.8), Some(2.8), Some(3.5)],
    },
];

pub(super) fn river_gauges(d: &mut Demo) -> Result<()> {
    for g in &GAUGES {
        let e = d.station(
            "WaterObserved",
            g.slug,
            (
                &format!("Trạm thủy văn {} (sông {})", g.station, g.river),
                &format!("{} river gauge ({} River)", g.station, g.river),
            ),
            g.unit,
            g.near,
        )?;
        let reached = g
            .alarms
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_some_and(|a| g.level >= a))
            .map(|(i, _)| i + 1)
            .max()
            .unwrap_or(0);
        let mut attrs = json!({
            "river": prop(g.river),
            "stationName": prop(g.station),
            "waterLevel": d.measured(g.level, Some("MTR")),
            "alarmLevelReached": d.measured(reached, None),
            "dateObserved": prop(d.observed_at.clone()),
            "description": {"type": "LanguageProperty", "languageMap": {
                "vi": "Dữ liệu mẫu. Mức báo động theo bản tin lũ của tỉnh; chưa có tọa độ trạm thật, vị trí đặt trên sông trong xã/phường.",
                "en": "Demo data. Alarm levels from the province's flood bulletins; the real station coordinates were not found, so the gauge is placed on the river inside the commune.",
            }},
        });
        for (i, a) in g.alarms.iter().enumerate() {
            if let (Some(a), Some(obj)) = (a, attrs.as_object_mut()) {
                obj.insert(format!("alarmLevel{}", i + 1), prop_in(*a, "MTR"));
            }
        }
        if g.slug == "thach-han"
            && let Some(obj) = attrs.as_object_mut()
        {
            obj.insert(
                "recordLevel".into(),
                json!({"type": "Property", "value": 7.40, "unitCode": "MTR",
                       "recordDate": {"type": "Property", "value": "2020-10-18"}}),
            );
        }
        d.push(e, attrs);
    }
    Ok(())
}

#[derive(Clone, Copy)]
pub(super) enum Setting {
    Urban,
    Industrial,
    Rural,
}

#[rustfmt::skip]
pub(super) const AIR_STATIONS: [(&str, &str, &str, Position, Setting); 13] = [
    ("dong-ha", "Đông Hà", "19333", [107.0950, 16.8180], Setting::Urban),
    ("nam-dong-ha", "Nam Đông Hà", "19351", [107.1150, 16.7980], Setting::Urban),
    ("quang-tri", "Quảng Trị", "19360", [107.1880, 16.7480], Setting::Urban),
    ("dong-hoi", "Đồng Hới", "18880", [106.6200, 17.4700], Setting::Urban),
    ("dong-son", "Đồng Sơn", "18871", [106.5800, 17.4500], Setting::Urban),
    ("ba-don", "Ba Đồn", "19009", [106.4150, 17.7550], Setting::Urban),
    ("hon-la", "Hòn La", "19021", [106.4600, 17.9000], Setting::Industrial),
    ("cua-viet", "Cửa Việt", "19496", [107.1850, 16.9020], Setting::Industrial),
    ("lao-bao", "Lao Bảo", "19432", [106.6000, 16.6200], Setting::Industrial),
    ("khe-sanh", "Khe Sanh", "19429", [106.7300, 16.6280], Setting::Rural),
    ("vinh-linh", "Vĩnh Linh", "19363", [107.0100, 17.0600], Setting::Rural),
    ("le-thuy", "Lệ Thủy", "19249", [106.7900, 17.2200], Setting::Rural),
    ("phong-nha", "Phong Nha", "19138", [106.3000, 17.6100], Setting::Rural),
];

/// Vietnam's AQI breakpoints for PM2.5 (µg/m³ → index), QĐ 1459/QĐ-TCMT.
const PM25_BREAKPOINTS: [(f64, f64); 8] = [
    (0.0, 0.0),
    (25.0, 50.0),
    (50.0, 100.0),
    (80.0, 150.0),
    (150.0, 200.0),
    (250.0, 300.0),
    (350.0, 400.0),
    (500.0, 500.0),
];

/// The PM2.5 part of the index, and its level.
pub fn aqi(pm25: f64) -> (u32, &'static str) {
    let mut index = 500.0;
    for w in PM25_BREAKPOINTS.windows(2) {
        let ((c0, i0), (c1, i1)) = (w[0], w[1]);
        if pm25 <= c1 {
            index = i0 + (pm25 - c0) / (c1 - c0) * (i1 - i0);
            break;
        }
    }
    let level = match index {
        i if i <= 50.0 => "good",
        i if i <= 100.0 => "moderate",
        i if i <= 150.0 => "poor",
        i if i <= 200.0 => "bad",
        i if i <= 300.0 => "veryBad",
        _ => "hazardous",
    };
    (index.round() as u32, level)
}

pub(super) fn air_quality(d: &mut Demo) -> Result<()> {
    let mut rng = Rng::new("air-quality");
    for (slug, name, code, near, setting) in AIR_STATIONS {
        let e = d.station(
            "AirQualityObserved",
            slug,
            (
                &format!("Trạm quan trắc không khí {name}"),
                &format!("{name} air quality station"),
            ),
            code,
            near,
        )?;
        let (pm25_range, no2_range, location) = match setting {
            Setting::Urban => ((14.0, 38.0), (12.0, 35.0), "urban"),
            Setting::Industrial => ((18.0, 55.0), (15.0, 45.0), "industrial"),
            Setting::Rural => ((6.0, 20.0), (3.0, 12.0), "rural"),
        };
        let pm25 = rng.value(pm25_range.0, pm25_range.1, 1);
        let pm10 = Rng::round(pm25 * rng.range(1.4, 2.1), 1);
        let (index, level) = aqi(pm25);
        let attrs = json!({
            "dateObserved": prop(d.observed_at.clone()),
            "typeofLocation": prop(location),
            "pm25": d.measured(pm25, Some("GQ")),
            "pm10": d.measured(pm10, Some("GQ")),
            "no2": d.measured(rng.value(no2_range.0, no2_range.1, 1), Some("GQ")),
            "o3": d.measured(rng.value(25.0, 80.0, 1), Some("GQ")),
            "so2": d.measured(rng.value(3.0, 20.0, 1), Some("GQ")),
            "co": d.measured(rng.value(300.0, 1200.0, 0), Some("GQ")),
            "airQualityIndex": d.measured(index, None),
            "airQualityLevel": d.measured(level, None),
            "reliability": prop(rng.value(0.8, 1.0, 2)),
        });
        d.push(e, attrs);
    }
    Ok(())
}

/// Six of these towns host national hydro-meteorological stations (Đông Hà, Khe Sanh,
/// Cồn Cỏ, Đồng Hới, Ba Đồn, Tuyên Hóa); positions and figures here are demo.
#[rustfmt::skip]
pub(super) const WEATHER_STATIONS: [(&str, &str, &str, Position, f64); 12] = [
    // (slug, name, unit, near, how much cooler than the coast, °C)
    ("dong-ha", "Đông Hà", "19333", [107.0900, 16.8300], 0.0),
    ("khe-sanh", "Khe Sanh", "19429", [106.7300, 16.6300], 4.0),
    ("con-co", "Cồn Cỏ", "19742", [107.3400, 17.1580], -0.5),
    ("dong-hoi", "Đồng Hới", "18859", [106.6000, 17.4800], 0.0),
    ("ba-don", "Ba Đồn", "19009", [106.4100, 17.7600], 0.3),
    ("tuyen-hoa", "Tuyên Hóa", "18949", [106.0200, 17.8800], 1.5),
    ("quang-tri", "Quảng Trị", "19360", [107.1850, 16.7480], 0.0),
    ("le-thuy", "Lệ Thủy", "19249", [106.7950, 17.2150], 0.3),
    ("minh-hoa", "Minh Hóa", "18901", [105.9800, 17.7800], 2.0),
    ("cua-tung", "Cửa Tùng", "19414", [107.1000, 17.0200], -0.3),
    ("ta-rut", "Tà Rụt", "19588", [107.0000, 16.4600], 3.5),
    ("phong-nha", "Phong Nha", "19138", [106.3000, 17.6050], 1.0),
];

pub(super) fn weather(d: &mut Demo) -> Result<()> {
    let mut rng = Rng::new("weather");
    for (slug, name, code, near, cooler) in WEATHER_STATIONS {
        let e = d.station(
            "WeatherObserved",
            slug,
            (
                &format!("Trạm khí tượng {name}"),
                &format!("{name} weather station"),
            ),
            code,
            near,
        )?;
        let windy = if slug == "con-co" { 2.5 } else { 1.0 };
        let attrs = json!({
            "dateObserved": prop(d.observed_at.clone()),
            "temperature": d.measured(Rng::round(rng.range(22.5, 25.5) - cooler, 1), Some("CEL")),
            "relativeHumidity": d.measured(rng.value(0.78, 0.95, 2), None),
            "precipitation": d.measured(rng.value(0.0, 18.0, 1), Some("MMT")),
            "windSpeed": d.measured(Rng::round(rng.range(1.0, 5.0) * windy, 1), Some("MTS")),
            "windDirection": d.measured(rng.value(0.0, 360.0, 0), Some("DD")),
            "atmosphericPressure": d.measured(rng.value(1009.0, 1017.0, 1), Some("A97")),
        });
        d.push(e, attrs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::aqi;

    #[test]
    fn aqi_follows_the_breakpoints() {
        assert_eq!(aqi(0.0), (0, "good"));
        assert_eq!(aqi(25.0), (50, "good"));
        assert_eq!(aqi(37.5), (75, "moderate"));
        assert_eq!(aqi(65.0), (125, "poor"));
        assert_eq!(aqi(600.0), (500, "hazardous"));
    }
}
