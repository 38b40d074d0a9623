//! Demo sector layers over the real units: every entity here is made up for the demo
//! and says so (`dataProvider` is [`DEMO_PROVIDER`], the id contains `demo`).
//!
//! Types and attribute names follow the FIWARE Smart Data Models where one exists
//! (`WaterObserved`, `AirQualityObserved`, `WeatherObserved`, `TrafficFlowObserved`,
//! `Streetlight`, `ACMeasurement`, `WaterConsumptionObserved`, `PointOfInterest`,
//! `AgriCrop`, `AgriParcel`, `KeyPerformanceIndicator`) and schema.org where none does
//! (`Hospital`, `MedicalClinic`, `School`). Urban planning has no model in either, so
//! its two types are dothi's own (`UrbanPlanningZone`, `BuildingPermit`), described in
//! `docs/data.md`.
//!
//! Positions: well-known places start from their approximate real coordinates; where
//! those fall outside the named commune (or within 60 m of its border) they are moved
//! to the nearest position inside. Everything else is drawn inside its commune by a
//! generator seeded per layer, so every run gives the same data set.

mod agriculture;
mod banking;
mod commerce;
mod connectivity;
mod environment;
mod mobility;
mod places;
mod planning;
mod sensors;
mod utilities;

pub use environment::aqi as air_quality_index;
pub use sensors::{Sensor, SensorKind, sensors};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::admin::AdminUnit;
use crate::geom::{Position, distance_m};
use crate::rng::Rng;
use crate::{DEMO_PROVIDER, DEMO_SOURCE, Error, Result};

/// How far inside its commune's border every demo position is. More than the display
/// tolerance, so demo points also fall inside the simplified boundaries.
pub const MARGIN_M: f64 = 60.0;

/// The smart-city wards of the plan: Phường Đông Hà, Phường Nam Đông Hà, Phường Quảng
/// Trị, with a central position of each for the urban layers.
pub const SMART_WARDS: [(&str, Position); 3] = [
    ("19333", [107.1003, 16.8163]),
    ("19351", [107.1130, 16.8000]),
    ("19360", [107.1890, 16.7470]),
];

/// The categories of the demo's `PointOfInterest` entities and the sector each belongs
/// to: banks and ATMs are banking, markets and shops commerce, the rest tourism. A
/// point of interest belongs to the sector of its first category.
pub const POI_SECTORS: &[(&str, &str)] = &[
    ("bank", "banking"),
    ("atm", "banking"),
    ("market", "commerce"),
    ("supermarket", "commerce"),
    ("shoppingCentre", "commerce"),
    ("tradeCentre", "commerce"),
    ("historicSite", "tourism"),
    ("monument", "tourism"),
    ("museum", "tourism"),
    ("memorial", "tourism"),
    ("cemetery", "tourism"),
    ("placeOfWorship", "tourism"),
    ("bridge", "tourism"),
    ("borderCrossing", "tourism"),
    ("beach", "tourism"),
    ("island", "tourism"),
    ("nature", "tourism"),
    ("nationalPark", "tourism"),
    ("worldHeritageSite", "tourism"),
    ("cave", "tourism"),
];

/// The sector of a point of interest with these categories (its first known one).
pub fn poi_sector<'c>(categories: impl IntoIterator<Item = &'c str>) -> Option<&'static str> {
    categories.into_iter().find_map(|c| {
        POI_SECTORS
            .iter()
            .find(|(category, _)| *category == c)
            .map(|(_, sector)| *sector)
    })
}

/// A well-known place moved from its given coordinates to fit inside its commune.
#[derive(Debug, Clone)]
pub struct Placement {
    pub id: String,
    pub wanted: Position,
    pub placed: Position,
}

impl Placement {
    pub fn distance_m(&self) -> f64 {
        distance_m(self.wanted, self.placed)
    }
}

/// The demo layers and the placements of their well-known places.
pub struct Layers {
    pub entities: Vec<Value>,
    pub placements: Vec<Placement>,
}

/// Builds every demo layer over `units` (the 78 commune-level units).
pub fn entities(units: &[AdminUnit], observed_at: DateTime<Utc>) -> Result<Layers> {
    let mut demo = Demo {
        units: units.iter().map(|u| (u.code.as_str(), u)).collect(),
        all: units,
        observed_at: ngsi::entity::format_time(&observed_at),
        at: observed_at,
        entities: Vec::new(),
        placements: Vec::new(),
    };
    environment::river_gauges(&mut demo)?;
    environment::air_quality(&mut demo)?;
    environment::weather(&mut demo)?;
    mobility::traffic_counters(&mut demo)?;
    utilities::street_lights(&mut demo)?;
    utilities::meters(&mut demo)?;
    places::points_of_interest(&mut demo)?;
    places::health(&mut demo)?;
    places::schools(&mut demo)?;
    agriculture::parcels(&mut demo)?;
    connectivity::coverage(&mut demo)?;
    banking::offices(&mut demo)?;
    banking::cashless(&mut demo)?;
    commerce::markets(&mut demo)?;
    commerce::ecommerce(&mut demo)?;
    planning::zones(&mut demo)?;
    planning::permits(&mut demo)?;
    Ok(Layers {
        entities: demo.entities,
        placements: demo.placements,
    })
}

/// A named place of the demo data: (Vietnamese name, English name, unit, near,
/// categories).
type Landmark = (
    &'static str,
    &'static str,
    &'static str,
    Position,
    &'static [&'static str],
);

/// What the layers share while being built.
struct Demo<'a> {
    units: BTreeMap<&'a str, &'a AdminUnit>,
    all: &'a [AdminUnit],
    /// The observation time, as written on the wire.
    observed_at: String,
    at: DateTime<Utc>,
    entities: Vec<Value>,
    placements: Vec<Placement>,
}

impl<'a> Demo<'a> {
    fn unit(&self, code: &str) -> Result<&'a AdminUnit> {
        self.units
            .get(code)
            .copied()
            .ok_or_else(|| Error::Placement {
                what: format!("unit {code}"),
                why: "no such unit".into(),
            })
    }

    /// A well-known place: its approximate coordinates, moved inside `unit` if needed.
    fn known(&mut self, id: &str, unit: &AdminUnit, wanted: Position) -> Result<Position> {
        let placed = unit
            .shape
            .place(wanted, MARGIN_M)
            .ok_or_else(|| Error::Placement {
                what: id.to_string(),
                why: format!("no position inside {} near {wanted:?}", unit.full_name),
            })?;
        self.placements.push(Placement {
            id: id.to_string(),
            wanted,
            placed,
        });
        Ok(placed)
    }

    /// The attributes of a named place of type `kind` at its approximate coordinates in
    /// unit `code`; its id is `urn:ngsi-ld:{kind}:demo-{slug of its Vietnamese name}`.
    fn landmark(
        &mut self,
        kind: &str,
        name: (&str, &str),
        code: &str,
        near: Position,
    ) -> Result<Map<String, Value>> {
        self.station(kind, &slug(name.0), name, code, near)
    }

    /// The attributes of a station of type `kind` at its approximate coordinates in
    /// unit `code`; its id is `urn:ngsi-ld:{kind}:demo-{slug}`.
    fn station(
        &mut self,
        kind: &str,
        slug: &str,
        name: (&str, &str),
        code: &str,
        near: Position,
    ) -> Result<Map<String, Value>> {
        let id = format!("urn:ngsi-ld:{kind}:demo-{slug}");
        let unit = self.unit(code)?;
        let at = self.known(&id, unit, near)?;
        Ok(self.base(&id, kind, name, unit, at))
    }

    /// The attributes of a commune's own place of type `kind`
    /// (`urn:ngsi-ld:{kind}:demo-{slug}`), drawn anywhere inside `unit` by a generator
    /// seeded with its id; the generator goes on to draw the place's figures.
    fn commune_place(
        &self,
        kind: &str,
        slug: &str,
        name: (&str, &str),
        unit: &AdminUnit,
    ) -> Result<(Map<String, Value>, Rng)> {
        let id = format!("urn:ngsi-ld:{kind}:demo-{slug}");
        let mut rng = Rng::new(&id);
        let at = self.anywhere(&id, unit, &mut rng)?;
        Ok((self.base(&id, kind, name, unit, at), rng))
    }

    /// A position drawn anywhere inside `unit`.
    fn anywhere(&self, id: &str, unit: &AdminUnit, rng: &mut Rng) -> Result<Position> {
        unit.shape
            .sample(rng, MARGIN_M)
            .ok_or_else(|| Error::Placement {
                what: id.to_string(),
                why: format!("no position found inside {}", unit.full_name),
            })
    }

    /// A position drawn around `centre`, inside `unit`.
    fn around(
        &self,
        id: &str,
        unit: &AdminUnit,
        rng: &mut Rng,
        centre: Position,
        spread_m: f64,
    ) -> Result<Position> {
        unit.shape
            .sample_near(rng, centre, spread_m, MARGIN_M)
            .ok_or_else(|| Error::Placement {
                what: id.to_string(),
                why: format!(
                    "no position found inside {} near {centre:?}",
                    unit.full_name
                ),
            })
    }

    /// One label position for a unit's figures: the position inside it nearest the
    /// middle of its box.
    fn label(&self, what: &str, unit: &AdminUnit) -> Result<Position> {
        let [x0, y0, x1, y1] = unit.shape.bbox();
        unit.shape
            .place([(x0 + x1) / 2.0, (y0 + y1) / 2.0], MARGIN_M)
            .ok_or_else(|| Error::Placement {
                what: format!("{what} of {}", unit.code),
                why: "no position inside".into(),
            })
    }

    /// The attributes every demo entity has: name, location, address, commune, and
    /// the demo marks.
    fn base(
        &self,
        id: &str,
        kind: &str,
        name: (&str, &str),
        unit: &AdminUnit,
        at: Position,
    ) -> Map<String, Value> {
        let v = json!({
            "id": id,
            "type": kind,
            "name": {"type": "LanguageProperty", "languageMap": {"vi": name.0, "en": name.1}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": at}},
            "address": {"type": "Property", "value": {
                "addressCountry": "VN",
                "addressRegion": "Tỉnh Quảng Trị",
                "addressLocality": unit.full_name,
            }},
            "refAdministrativeArea": {"type": "Relationship", "object": unit.id(), "objectType": "AdministrativeArea"},
            "dataProvider": {"type": "Property", "value": DEMO_PROVIDER},
            "source": {"type": "Property", "value": DEMO_SOURCE},
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The attributes of one of a commune's things, named "{name} – {commune}" in
    /// both languages.
    fn base_in_unit(
        &self,
        id: &str,
        kind: &str,
        name: (&str, &str),
        unit: &AdminUnit,
        at: Position,
    ) -> Map<String, Value> {
        let vi = format!("{} – {}", name.0, unit.full_name);
        let en = format!("{} – {}", name.1, unit.full_name_en);
        self.base(id, kind, (&vi, &en), unit, at)
    }

    /// The attributes of a commune's demo KPI `slug`
    /// (`urn:ngsi-ld:KeyPerformanceIndicator:demo-{slug}-{code}`), named after the KPI
    /// and the commune.
    fn unit_kpi(
        &self,
        slug: &str,
        name: (&str, &str),
        unit: &AdminUnit,
        at: Position,
    ) -> Map<String, Value> {
        let id = format!(
            "urn:ngsi-ld:KeyPerformanceIndicator:demo-{slug}-{}",
            unit.code
        );
        self.base_in_unit(&id, "KeyPerformanceIndicator", name, unit, at)
    }

    /// The attributes of a commune's KPI in per cent from a manual survey, reported
    /// quarterly over the year so far.
    fn surveyed_percent(&self, process: &str, indicator: &str, percent: f64) -> Value {
        let from = self.at.format("%Y-01-01").to_string();
        let to = self.at.format("%Y-%m-%d").to_string();
        kpi_figure(
            process,
            indicator,
            percent,
            "P1",
            (&from, &to),
            "quarterly",
            "manual",
        )
    }

    /// A measured Property, stamped with the observation time.
    fn measured(&self, value: impl Into<Value>, unit_code: Option<&str>) -> Value {
        let mut v =
            json!({"type": "Property", "value": value.into(), "observedAt": self.observed_at});
        if let (Some(u), Some(obj)) = (unit_code, v.as_object_mut()) {
            obj.insert("unitCode".into(), json!(u));
        }
        v
    }

    fn push(&mut self, mut e: Map<String, Value>, attrs: Value) {
        if let Value::Object(more) = attrs {
            e.extend(more);
        }
        self.entities.push(Value::Object(e));
    }
}

/// A plain Property.
fn prop(value: impl Into<Value>) -> Value {
    json!({"type": "Property", "value": value.into()})
}

/// A Property with a unit code (UN/CEFACT).
fn prop_in(value: impl Into<Value>, unit_code: &str) -> Value {
    json!({"type": "Property", "value": value.into(), "unitCode": unit_code})
}

/// The attributes of a commune's quantitative demo KPI: the figure of `indicator`
/// (part of `process`) in `unit_code` over `period` (from, to), calculated every
/// `frequency` by `method` (`manual` for a survey, `automatic` for a feed).
fn kpi_figure(
    process: &str,
    indicator: &str,
    value: impl Into<Value>,
    unit_code: &str,
    period: (&str, &str),
    frequency: &str,
    method: &str,
) -> Value {
    json!({
        "category": prop(json!(["quantitative"])),
        "process": prop(process),
        "indicator": prop(indicator),
        "kpiValue": prop_in(value, unit_code),
        "calculationPeriod": prop(json!({"from": period.0, "to": period.1})),
        "calculationFrequency": prop(frequency),
        "calculationMethod": prop(method),
    })
}

/// A slug for ids: lower-case ASCII letters and digits, words joined by `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(fold_vietnamese) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Vietnamese letters without their marks (đ → d, ế → e, ...).
fn fold_vietnamese(c: char) -> Option<char> {
    const GROUPS: [(&str, char); 14] = [
        ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ", 'A'),
        ("èéẻẽẹêềếểễệ", 'e'),
        ("ÈÉẺẼẸÊỀẾỂỄỆ", 'E'),
        ("ìíỉĩị", 'i'),
        ("ÌÍỈĨỊ", 'I'),
        ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("ÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ", 'O'),
        ("ùúủũụưừứửữự", 'u'),
        ("ÙÚỦŨỤƯỪỨỬỮỰ", 'U'),
        ("ỳýỷỹỵ", 'y'),
        ("ỲÝỶỸỴ", 'Y'),
        ("đ", 'd'),
        ("Đ", 'D'),
    ];
    if c.is_ascii() {
        return Some(c);
    }
    GROUPS
        .iter()
        .find_map(|(set, base)| set.contains(c).then_some(*base))
        .or(Some(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_ascii() {
        assert_eq!(slug("Thành Cổ Quảng Trị"), "thanh-co-quang-tri");
        assert_eq!(slug("Địa đạo Vịnh Mốc"), "dia-dao-vinh-moc");
        assert_eq!(slug("Phong Nha – Kẻ Bàng"), "phong-nha-ke-bang");
    }
}
