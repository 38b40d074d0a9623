//! Urban planning and housing in the three smart-city wards: planning zones as
//! polygons (`UrbanPlanningZone`) and building permits as points (`BuildingPermit`).
//!
//! Neither the FIWARE Smart Data Models nor schema.org has a type for a zoning plan's
//! zone or for a permit, so both types are dothi's own; where an attribute has a name
//! in the Smart Data Models' `Building` (`category`, `floorsAboveGround`) it is used.
//! Everything here is demo: the zones, their plans, and every permit. Permits carry
//! no applicant: who builds what is personal data.

use std::f64::consts::PI;

use chrono::{Months, NaiveDate, TimeDelta};
use serde_json::{Value, json};

use super::agriculture::rectangle;
use super::{Demo, MARGIN_M, SMART_WARDS, prop, prop_in};
use crate::geom::{Position, Shape, distance_m};
use crate::rng::Rng;
use crate::{Error, Result};

/// Planning zones per ward, in the order of [`SMART_WARDS`].
const ZONES: [usize; 3] = [8, 6, 6];
/// Building permits per ward, in the order of [`SMART_WARDS`].
const PERMITS: [usize; 3] = [80, 60, 60];

/// (land use, Vietnamese, English, most floors, building density %, land-use coefficient)
const LAND_USES: [(&str, &str, &str, u32, f64, f64); 6] = [
    ("residential", "Đất ở", "Housing", 5, 70.0, 3.5),
    ("mixedUse", "Đất hỗn hợp", "Mixed use", 15, 60.0, 7.0),
    (
        "commercial",
        "Đất thương mại, dịch vụ",
        "Commerce and services",
        12,
        60.0,
        6.0,
    ),
    (
        "publicFacilities",
        "Đất công trình công cộng",
        "Public facilities",
        5,
        40.0,
        2.0,
    ),
    (
        "greenSpace",
        "Đất cây xanh, mặt nước",
        "Parks and water",
        1,
        5.0,
        0.05,
    ),
    ("residential", "Đất ở mới", "New housing", 7, 60.0, 4.0),
];

/// A zone as the permits see it: its id, shape and land use.
struct Zone {
    id: String,
    shape: Shape,
    land_use: &'static str,
}

pub(super) fn zones(d: &mut Demo) -> Result<()> {
    for ((code, centre), count) in SMART_WARDS.into_iter().zip(ZONES) {
        for zone in ward_zones(d, code, centre, count)? {
            d.push(zone.0, zone.1);
        }
    }
    Ok(())
}

/// The zones of one ward, as (common attributes, the others). Zones do not overlap:
/// their circumscribed circles are apart.
fn ward_zones(
    d: &Demo,
    code: &str,
    centre: Position,
    count: usize,
) -> Result<Vec<(serde_json::Map<String, Value>, Value)>> {
    let unit = d.unit(code)?;
    let mut rng = Rng::new(&format!("planning-zones-{code}"));
    let mut placed: Vec<(Position, f64)> = Vec::new();
    let mut out = Vec::new();
    for n in 1..=count {
        let id = format!("urn:ngsi-ld:UrbanPlanningZone:demo-{code}-{n:02}");
        let (width, depth) = (rng.range(250.0, 700.0), rng.range(250.0, 700.0));
        let radius = (width / 2.0).hypot(depth / 2.0);
        let angle = rng.range(0.0, PI);
        let (at, ring) = (0..400)
            .find_map(|_| {
                let at = unit.shape.sample_near(&mut rng, centre, 1800.0, MARGIN_M)?;
                if placed
                    .iter()
                    .any(|(c, r)| distance_m(*c, at) < r + radius + 20.0)
                {
                    return None;
                }
                let ring = rectangle(at, width, depth, angle);
                edges_inside(&unit.shape, &ring).then_some((at, ring))
            })
            .ok_or_else(|| Error::Placement {
                what: id.clone(),
                why: format!("no room for a planning zone in {}", unit.full_name),
            })?;
        placed.push((at, radius));
        let (land_use, vi, en, floors, density, coefficient) = LAND_USES[(n - 1) % LAND_USES.len()];
        let mut e = d.base_in_unit(
            &id,
            "UrbanPlanningZone",
            (
                &format!("Khu {n:02} – {vi}"),
                &format!("Zone {n:02} – {en}"),
            ),
            unit,
            at,
        );
        e.insert(
            "location".into(),
            json!({"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}}),
        );
        // Zoning plans (1/2000) cover the first zones of a ward; later ones have a
        // detailed plan (1/500). One zone in each ward is still being reviewed.
        let detailed = n > count / 2;
        let (level, scale) = if detailed {
            ("detailed", "1:500")
        } else {
            ("zoning", "1:2000")
        };
        let plan = if detailed {
            format!(
                "Quy hoạch chi tiết tỷ lệ 1/500 khu {n:02}, {}",
                unit.full_name
            )
        } else {
            format!("Quy hoạch phân khu tỷ lệ 1/2000 {}", unit.full_name)
        };
        let reviewing = n == count;
        let approved = NaiveDate::from_ymd_opt(
            2019 + rng.below(7) as i32,
            1 + rng.below(12) as u32,
            1 + rng.below(28) as u32,
        );
        let mut attrs = json!({
            "landUse": prop(land_use),
            "planName": prop(plan),
            "planLevel": prop(level),
            "mapScale": prop(scale),
            "status": prop(if reviewing { "underReview" } else { "approved" }),
            "area": prop_in(Rng::round(width * depth, 0), "MTK"),
            "maxFloorsAboveGround": prop(floors),
            "buildingDensity": prop_in(density, "P1"),
            "landUseCoefficient": prop(coefficient),
        });
        if let (false, Some(date), Some(obj)) = (reviewing, approved, attrs.as_object_mut()) {
            obj.insert(
                "approvalDate".into(),
                prop(date.format("%Y-%m-%d").to_string()),
            );
            obj.insert("approvedBy".into(), prop("UBND tỉnh Quảng Trị"));
        }
        out.push((e, attrs));
    }
    Ok(out)
}

/// Whether every point along the ring's edges is well inside `shape`.
fn edges_inside(shape: &Shape, ring: &[Position]) -> bool {
    ring.windows(2).all(|w| {
        (0..=20).all(|k| {
            let t = f64::from(k) / 20.0;
            let p = [
                w[0][0] + t * (w[1][0] - w[0][0]),
                w[0][1] + t * (w[1][1] - w[0][1]),
            ];
            shape.holds(p, MARGIN_M)
        })
    })
}

/// (SDM `Building` category, share in thousandths, floors)
const PERMIT_KINDS: [(&str, usize, (usize, usize)); 5] = [
    ("house", 760, (1, 5)),
    ("retail", 100, (2, 5)),
    ("apartments", 40, (5, 16)),
    ("office", 60, (3, 10)),
    ("hotel", 40, (4, 12)),
];

pub(super) fn permits(d: &mut Demo) -> Result<()> {
    for ((code, centre), count) in SMART_WARDS.into_iter().zip(PERMITS) {
        let unit = d.unit(code)?;
        // The ward's zones again, to link each permit to the zone it lies in.
        let zone_count = SMART_WARDS
            .iter()
            .position(|(c, _)| *c == code)
            .map(|i| ZONES[i])
            .unwrap_or(0);
        let zones: Vec<Zone> = ward_zones(d, code, centre, zone_count)?
            .into_iter()
            .filter_map(|(e, attrs)| {
                let id = e.get("id")?.as_str()?.to_string();
                let ring: Vec<Position> =
                    serde_json::from_value(e.get("location")?["value"]["coordinates"][0].clone())
                        .ok()?;
                let land_use = match attrs["landUse"]["value"].as_str()? {
                    "greenSpace" => "greenSpace",
                    _ => "buildable",
                };
                Some(Zone {
                    id,
                    shape: Shape::new(vec![vec![ring]]),
                    land_use,
                })
            })
            .collect();
        let mut rng = Rng::new(&format!("building-permits-{code}"));
        let today = d.at.date_naive();
        for n in 1..=count {
            let id = format!("urn:ngsi-ld:BuildingPermit:demo-{code}-{n:04}");
            // Nobody builds in a park: draw again when the point falls in green space.
            let mut at = d.around(&id, unit, &mut rng, centre, 1500.0)?;
            for _ in 0..50 {
                let in_green = zones
                    .iter()
                    .any(|z| z.land_use == "greenSpace" && z.shape.contains(at));
                if !in_green {
                    break;
                }
                at = d.around(&id, unit, &mut rng, centre, 1500.0)?;
            }
            let zone = zones.iter().find(|z| z.shape.contains(at));
            let pick = rng.below(1000);
            let mut acc = 0;
            let (category, floors) = PERMIT_KINDS
                .iter()
                .find(|(_, share, _)| {
                    acc += share;
                    pick < acc
                })
                .map(|(c, _, f)| (*c, *f))
                .unwrap_or(("house", (1, 5)));
            let floors = floors.0 + rng.below(floors.1 - floors.0 + 1);
            let footprint = match category {
                "house" => rng.range(60.0, 160.0),
                "retail" => rng.range(80.0, 300.0),
                _ => rng.range(300.0, 1500.0),
            };
            let permit_type = match rng.below(20) {
                0..=14 => "newConstruction",
                15..=18 => "renovation",
                _ => "extension",
            };
            // Applied within the last year; decided 5 to 20 days later (the law gives
            // 15 days for a house, 20 for other works).
            let applied = today - TimeDelta::days(rng.below(365) as i64);
            let limit = if category == "house" { 15 } else { 20 };
            let decided = applied + TimeDelta::days(5 + rng.below(limit - 4) as i64);
            let refused = rng.chance(0.08);
            let (status, decided) = if decided > today {
                let waited = (today - applied).num_days();
                (
                    if waited < 3 {
                        "submitted"
                    } else {
                        "underReview"
                    },
                    None,
                )
            } else if refused {
                ("refused", Some(decided))
            } else {
                ("issued", Some(decided))
            };
            let e = d.base_in_unit(
                &id,
                "BuildingPermit",
                (
                    &format!("Giấy phép xây dựng {n:04}"),
                    &format!("Building permit {n:04}"),
                ),
                unit,
                at,
            );
            let mut attrs = json!({
                "permitNumber": prop(format!("{n:04}/{}/GPXD-{code}", applied.format("%Y"))),
                "permitType": prop(permit_type),
                "category": prop(json!([category])),
                "floorsAboveGround": prop(floors),
                "grossFloorArea": prop_in(Rng::round(footprint * floors as f64, 0), "MTK"),
                "status": prop(status),
                "dateApplied": prop(applied.format("%Y-%m-%d").to_string()),
            });
            if let Some(obj) = attrs.as_object_mut() {
                if let Some(date) = decided {
                    obj.insert(
                        "dateDecided".into(),
                        prop(date.format("%Y-%m-%d").to_string()),
                    );
                    if status == "issued"
                        && let Some(until) = date.checked_add_months(Months::new(12))
                    {
                        // A permit lapses if works do not start within 12 months.
                        obj.insert(
                            "validUntil".into(),
                            prop(until.format("%Y-%m-%d").to_string()),
                        );
                    }
                }
                if let Some(z) = zone {
                    obj.insert(
                        "refUrbanPlanningZone".into(),
                        json!({"type": "Relationship", "object": z.id, "objectType": "UrbanPlanningZone"}),
                    );
                }
            }
            d.push(e, attrs);
        }
    }
    Ok(())
}
