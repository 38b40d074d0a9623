//! Traffic counters on national roads QL1 (north–south along the coast) and QL9 (Đông
//! Hà to the Lao Bảo border crossing), one entity per direction as Smart Data Models
//! count per lane.

use chrono::TimeDelta;
use serde_json::json;

use super::{Demo, prop};
use crate::Result;
use crate::geom::Position;
use crate::rng::Rng;

/// (road, place, unit, near, vehicles per hour both ways)
#[rustfmt::skip]
pub(super) const COUNTERS: [(&str, &str, &str, Position, f64); 19] = [
    ("QL1", "Phú Trạch", "19021", [106.4700, 17.9100], 900.0),
    ("QL1", "Ba Đồn", "19009", [106.4150, 17.7450], 1300.0),
    ("QL1", "Bắc Trạch", "19126", [106.5000, 17.6500], 1000.0),
    ("QL1", "Hoàn Lão", "19111", [106.5300, 17.5800], 1100.0),
    ("QL1", "Đồng Sơn", "18871", [106.5850, 17.4600], 1700.0),
    ("QL1", "Quảng Ninh", "19207", [106.6350, 17.3950], 1200.0),
    ("QL1", "Lệ Ninh", "19246", [106.7100, 17.2400], 950.0),
    ("QL1", "Vĩnh Linh", "19363", [107.0050, 17.0500], 1000.0),
    ("QL1", "Bến Hải", "19501", [107.0550, 16.9900], 950.0),
    ("QL1", "Gio Linh", "19495", [107.0700, 16.9000], 1050.0),
    ("QL1", "Đông Hà", "19333", [107.1000, 16.8350], 1800.0),
    ("QL1", "Triệu Phong", "19624", [107.1650, 16.7700], 1300.0),
    ("QL1", "Quảng Trị", "19360", [107.1975, 16.7530], 1400.0),
    ("QL1", "Hải Lăng", "19702", [107.2300, 16.6900], 1100.0),
    ("QL9", "Đông Hà", "19333", [107.0600, 16.8100], 900.0),
    ("QL9", "Cam Lộ", "19597", [106.9800, 16.7950], 650.0),
    ("QL9", "Hướng Hiệp", "19555", [106.8800, 16.7000], 420.0),
    ("QL9", "Khe Sanh", "19429", [106.7500, 16.6300], 480.0),
    ("QL9", "Lao Bảo", "19432", [106.6000, 16.6250], 520.0),
];

pub(super) fn traffic_counters(d: &mut Demo) -> Result<()> {
    let mut rng = Rng::new("traffic");
    let to = d.observed_at.clone();
    let from = ngsi::entity::format_time(&(d.at - TimeDelta::hours(1)));
    for (road, place, code, near, both_ways) in COUNTERS {
        let unit = d.unit(code)?;
        let site = format!("{}-{}", road.to_lowercase(), super::slug(place));
        // Both directions share one position: the counting station.
        let first_id = format!("urn:ngsi-ld:TrafficFlowObserved:demo-{site}-1");
        let at = d.known(&first_id, unit, near)?;
        let directions: [(&str, &str, &str); 2] = if road == "QL1" {
            [
                ("1", "hướng Bắc", "northbound"),
                ("2", "hướng Nam", "southbound"),
            ]
        } else {
            [
                ("1", "hướng Đông", "eastbound"),
                ("2", "hướng Tây", "westbound"),
            ]
        };
        for (lane, dir_vi, dir_en) in directions {
            let id = format!("urn:ngsi-ld:TrafficFlowObserved:demo-{site}-{lane}");
            let intensity = (both_ways / 2.0 * rng.range(0.8, 1.2)).round();
            let occupancy = Rng::round((intensity / 1600.0 * rng.range(0.8, 1.2)).min(0.95), 2);
            let congested = occupancy > 0.55;
            let speed = if congested {
                rng.value(15.0, 30.0, 1)
            } else {
                rng.value(40.0, 65.0, 1)
            };
            let e = d.base(
                &id,
                "TrafficFlowObserved",
                (
                    &format!("Trạm đếm xe {road} {place} ({dir_vi})"),
                    &format!("{road} traffic counter at {place} ({dir_en})"),
                ),
                unit,
                at,
            );
            let attrs = json!({
                // The base address, with the road as street.
                "address": prop(json!({
                    "addressCountry": "VN",
                    "addressRegion": "Tỉnh Quảng Trị",
                    "addressLocality": unit.full_name,
                    "streetAddress": if road == "QL1" { "Quốc lộ 1" } else { "Quốc lộ 9" },
                })),
                "laneId": prop(lane.parse::<u32>().unwrap_or(1)),
                "laneDirection": prop(if lane == "1" { "forward" } else { "backward" }),
                "dateObserved": prop(format!("{from}/{to}")),
                "dateObservedFrom": prop(from.clone()),
                "dateObservedTo": prop(to.clone()),
                "intensity": d.measured(intensity, None),
                "occupancy": d.measured(occupancy, None),
                "averageVehicleSpeed": d.measured(speed, Some("KMH")),
                "congested": d.measured(congested, None),
                "vehicleType": prop("anyVehicle"),
            });
            d.push(e, attrs);
        }
    }
    Ok(())
}
