//! Farm parcels in the rural communes, with the crops typical of each part of the
//! province: rice and peanut on the coastal plain, pepper and rubber on the red-soil
//! hills of Cam Lộ, Gio Linh and Vĩnh Linh, coffee on the Hướng Hóa plateau, cassava and
//! rubber in the western mountains.

use std::f64::consts::PI;

use serde_json::json;

use super::{Demo, MARGIN_M, prop, prop_in};
use crate::admin::UnitKind;
use crate::geom::{Position, offset, round6};
use crate::rng::Rng;
use crate::{DEMO_PROVIDER, DEMO_SOURCE, Error, Result};

/// (slug, Vietnamese, English, parcel category)
const CROPS: [(&str, &str, &str, &str); 6] = [
    ("rice", "Lúa", "Rice", "arable"),
    ("peanut", "Lạc", "Peanut", "arable"),
    ("black-pepper", "Hồ tiêu", "Black pepper", "tree"),
    ("rubber", "Cao su", "Rubber", "tree"),
    ("coffee", "Cà phê", "Coffee", "tree"),
    ("cassava", "Sắn", "Cassava", "arable"),
];

const PLATEAU: [&str; 7] = [
    "19429", "19432", "19435", "19441", "19462", "19483", "19489",
];
const HILLS: [&str; 6] = ["19597", "19603", "19537", "19366", "19405", "19495"];
const MOUNTAINS: [&str; 15] = [
    "18904", "18919", "18922", "18943", "18901", "18949", "18952", "18958", "19147", "19204",
    "19318", "19564", "19588", "19594", "19567",
];

/// The two crops grown in a commune's demo parcels.
fn crops_of(code: &str) -> [&'static str; 2] {
    if PLATEAU.contains(&code) {
        ["coffee", "cassava"]
    } else if HILLS.contains(&code) {
        ["black-pepper", "rubber"]
    } else if MOUNTAINS.contains(&code) {
        ["cassava", "rubber"]
    } else {
        ["rice", "peanut"]
    }
}

pub(super) fn parcels(d: &mut Demo) -> Result<()> {
    for (slug, vi, en, _) in CROPS {
        d.entities.push(json!({
            "id": format!("urn:ngsi-ld:AgriCrop:demo-{slug}"),
            "type": "AgriCrop",
            "name": {"type": "LanguageProperty", "languageMap": {"vi": vi, "en": en}},
            "dataProvider": prop(DEMO_PROVIDER),
            "source": prop(DEMO_SOURCE),
        }));
    }
    for unit in d.all {
        if unit.kind != UnitKind::Commune {
            continue;
        }
        let mut rng = Rng::new(&format!("parcels-{}", unit.code));
        for (n, crop) in crops_of(&unit.code).into_iter().enumerate() {
            let id = format!("urn:ngsi-ld:AgriParcel:demo-{}-{}", unit.code, n + 1);
            let (_, vi, en, category) = CROPS
                .iter()
                .copied()
                .find(|c| c.0 == crop)
                .unwrap_or(CROPS[0]);
            let (width, depth) = (rng.range(60.0, 220.0), rng.range(60.0, 220.0));
            let angle = rng.range(0.0, PI);
            let corners = (0..200)
                .find_map(|_| {
                    let centre = unit.shape.sample(&mut rng, MARGIN_M)?;
                    let corners = rectangle(centre, width, depth, angle);
                    // Every point along the edges, not only the corners, must be inside.
                    let inside = corners.windows(2).all(|w| {
                        (0..=10).all(|k| {
                            let t = f64::from(k) / 10.0;
                            let p = [
                                w[0][0] + t * (w[1][0] - w[0][0]),
                                w[0][1] + t * (w[1][1] - w[0][1]),
                            ];
                            unit.shape.holds(p, MARGIN_M)
                        })
                    });
                    inside.then_some((centre, corners))
                })
                .ok_or_else(|| Error::Placement {
                    what: id.clone(),
                    why: format!("no room for a parcel in {}", unit.full_name),
                })?;
            let (centre, ring) = corners;
            let mut e = d.base_in_unit(
                &id,
                "AgriParcel",
                (
                    &format!("Thửa {} {}", vi.to_lowercase(), n + 1),
                    &format!("{en} parcel {}", n + 1),
                ),
                unit,
                centre,
            );
            e.insert(
                "location".into(),
                json!({"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}}),
            );
            let status = [
                "seeded",
                "justBorn",
                "growing",
                "maturing",
                "readyForHarvesting",
            ][rng.below(5)];
            let irrigation = match crop {
                "rice" => "flood",
                "black-pepper" | "coffee" => "drip",
                _ => "none",
            };
            let attrs = json!({
                "category": prop(category),
                "area": prop_in(Rng::round(width * depth, 0), "MTK"),
                "hasAgriCrop": {"type": "Relationship", "object": format!("urn:ngsi-ld:AgriCrop:demo-{crop}")},
                "cropStatus": d.measured(status, None),
                "irrigationSystemType": prop(irrigation),
                "lastPlantedAt": prop(format!("2026-{:02}-{:02}", 1 + rng.below(9), 1 + rng.below(28))),
            });
            d.push(e, attrs);
        }
    }
    Ok(())
}

/// A closed rectangle of `width` × `depth` metres around `centre`, turned by `angle`.
pub(super) fn rectangle(centre: Position, width: f64, depth: f64, angle: f64) -> Vec<Position> {
    let half_diagonal = (width / 2.0).hypot(depth / 2.0);
    let corner_angle = (width / 2.0).atan2(depth / 2.0);
    let mut ring: Vec<Position> = [
        angle + corner_angle,
        angle + PI - corner_angle,
        angle + PI + corner_angle,
        angle + 2.0 * PI - corner_angle,
    ]
    .iter()
    .map(|&a| round6(offset(centre, half_diagonal, a)))
    .collect();
    if let Some(&first) = ring.first() {
        ring.push(first);
    }
    ring
}
