//! The administrative units of Quảng Trị: the province and its 78 commune-level units
//! since 1 July 2025, read from the embedded source files, and their
//! `AdministrativeArea` entities.
//!
//! Names and codes come from the national unit list, boundaries and areas from the
//! boundary files, the pre-2025 units from the merge list; the three are checked
//! against each other when loading, so a mismatch fails loudly instead of producing a
//! half-joined data set.

use std::collections::BTreeMap;

use ngsi::Geometry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::geom::{MultiPolygon, Position, Shape};
use crate::{DISPLAY_TOLERANCE_M, Error, Result, simplify, source};

/// The province's code in the national list.
pub const PROVINCE_CODE: &str = "44";

/// Source of the names and boundaries, and of the merge list.
pub const UNITS_SOURCE: &str = "https://github.com/thanglequoc/vietnamese-provinces-database";
pub const MERGES_SOURCE: &str = "https://github.com/dvhcvn/20250701";

/// What kind of unit, as its official name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// Tỉnh
    Province,
    /// Phường (urban ward)
    Ward,
    /// Xã (rural commune)
    Commune,
    /// Đặc khu (special zone: Cồn Cỏ)
    SpecialZone,
}

impl UnitKind {
    /// The Vietnamese word, as in the unit's full name.
    pub fn word(self) -> &'static str {
        match self {
            UnitKind::Province => "tỉnh",
            UnitKind::Ward => "phường",
            UnitKind::Commune => "xã",
            UnitKind::SpecialZone => "đặc khu",
        }
    }

    fn of_full_name(full_name: &str) -> Option<UnitKind> {
        [
            ("Tỉnh ", UnitKind::Province),
            ("Phường ", UnitKind::Ward),
            ("Xã ", UnitKind::Commune),
            ("Đặc khu ", UnitKind::SpecialZone),
        ]
        .into_iter()
        .find_map(|(prefix, kind)| full_name.starts_with(prefix).then_some(kind))
    }
}

/// A unit before 2025 that a unit of today was formed from.
#[derive(Debug, Clone, PartialEq)]
pub struct FormerUnit {
    pub code: String,
    pub name: String,
    /// Whether all of it went into this unit (otherwise only part of it).
    pub whole: bool,
}

/// A province or commune-level unit.
#[derive(Debug, Clone)]
pub struct AdminUnit {
    /// "44" for the province, five digits for a commune-level unit.
    pub code: String,
    /// Short names ("Đông Hà", "Dong Ha") and full names ("Phường Đông Hà",
    /// "Dong Ha Ward").
    pub name: String,
    pub name_en: String,
    pub full_name: String,
    pub full_name_en: String,
    pub kind: UnitKind,
    /// Area as the source gives it.
    pub area_km2: f64,
    /// The full boundary, as in the source.
    pub shape: Shape,
    /// The boundary simplified for display.
    pub display: MultiPolygon,
    pub formed_from: Vec<FormerUnit>,
}

impl AdminUnit {
    /// `urn:ngsi-ld:AdministrativeArea:VN-44` or `...:VN-44-19333`.
    pub fn id(&self) -> String {
        area_id(&self.code)
    }
}

/// The entity id of the unit with this code.
pub fn area_id(code: &str) -> String {
    if code == PROVINCE_CODE {
        format!("urn:ngsi-ld:AdministrativeArea:VN-{PROVINCE_CODE}")
    } else {
        format!("urn:ngsi-ld:AdministrativeArea:VN-{PROVINCE_CODE}-{code}")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UnitRecord {
    code: String,
    name: String,
    name_en: String,
    full_name: String,
    full_name_en: String,
    #[serde(default)]
    wards: Vec<UnitRecord>,
}

#[derive(Deserialize)]
struct MergeRecord {
    #[serde(alias = "level1_id", alias = "level2_id")]
    id: String,
    merges: Vec<MergedRecord>,
    #[serde(default)]
    level2s: Vec<MergeRecord>,
}

#[derive(Deserialize)]
struct MergedRecord {
    old_id: String,
    name: String,
    #[serde(rename = "type")]
    extent: String,
}

#[derive(Deserialize)]
struct FeatureCollection {
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    geometry: Value,
    properties: FeatureProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeatureProperties {
    code: String,
    full_name: String,
    area_km2: f64,
}

fn source_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Source(format!("{what}: {e}"))
}

/// The province's record in a source list (`what`, in errors).
fn province_record<T: serde::de::DeserializeOwned>(
    json: &str,
    what: &str,
    is_province: impl Fn(&T) -> bool,
) -> Result<T> {
    let all: Vec<T> = serde_json::from_str(json).map_err(|e| source_error(what, e))?;
    all.into_iter()
        .find(is_province)
        .ok_or_else(|| source_error(what, "no province 44"))
}

/// Some names in the merge list carry doubled or trailing spaces.
fn tidy(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn former(records: &[MergedRecord]) -> Result<Vec<FormerUnit>> {
    records
        .iter()
        .map(|m| {
            let whole = match m.extent.as_str() {
                "full" => true,
                "partial" => false,
                other => return Err(source_error("merge type", format!("{other:?}"))),
            };
            Ok(FormerUnit {
                code: m.old_id.clone(),
                name: tidy(&m.name),
                whole,
            })
        })
        .collect()
}

/// Reads one boundary file: its single feature's properties and MultiPolygon, which
/// must pass the hub's own geometry validation.
fn boundary(code: &str, text: &str) -> Result<(FeatureProperties, MultiPolygon)> {
    let what = format!("boundary of {code}");
    let fc: FeatureCollection = serde_json::from_str(text).map_err(|e| source_error(&what, e))?;
    let [feature]: [Feature; 1] = fc
        .features
        .try_into()
        .map_err(|_| source_error(&what, "expected exactly one feature"))?;
    if feature.properties.code != code {
        return Err(source_error(
            &what,
            format!("the file holds unit {}", feature.properties.code),
        ));
    }
    match Geometry::from_geojson(&feature.geometry).map_err(|e| source_error(&what, e))? {
        Geometry::MultiPolygon(mp) => Ok((feature.properties, mp)),
        other => Err(source_error(
            &what,
            format!("a {} where a MultiPolygon was expected", other.type_name()),
        )),
    }
}

/// The province and its units, joined from the three sources.
pub struct Units {
    pub province: AdminUnit,
    /// In code order.
    pub units: Vec<AdminUnit>,
    /// Pairs of neighbouring units (codes) whose source borders overlap slightly, with
    /// a position where they do (see [`simplify::Simplified::source_overlaps`]).
    pub overlaps: Vec<(String, String, Position)>,
}

/// The province and its units, joined from the three sources, with boundaries
/// simplified for display.
pub fn units() -> Result<Units> {
    let province = province_record(source::UNITS, "unit list", |p: &UnitRecord| {
        p.code == PROVINCE_CODE
    })?;
    let province_merges = province_record(source::MERGES, "merge list", |m: &MergeRecord| {
        m.id == PROVINCE_CODE
    })?;
    let mut unit_merges: BTreeMap<String, Vec<MergedRecord>> = province_merges
        .level2s
        .into_iter()
        .map(|m| (m.id, m.merges))
        .collect();

    let mut records: BTreeMap<String, UnitRecord> = BTreeMap::new();
    for w in province.wards {
        records.insert(w.code.clone(), w);
    }
    let files: BTreeMap<&str, &str> = source::WARDS.iter().copied().collect();
    if records.len() != files.len() || records.keys().any(|c| !files.contains_key(c.as_str())) {
        return Err(source_error(
            "unit list",
            "its units and the boundary files differ",
        ));
    }

    let mut parts = Vec::with_capacity(records.len());
    for (code, r) in records {
        let (props, mp) = boundary(&code, files.get(code.as_str()).copied().unwrap_or(""))?;
        if props.full_name != r.full_name {
            return Err(source_error(
                &format!("unit {code}"),
                format!(
                    "named {:?} in the list, {:?} in its boundary file",
                    r.full_name, props.full_name
                ),
            ));
        }
        let merged = unit_merges
            .remove(&code)
            .ok_or_else(|| source_error("merge list", format!("no entry for {code}")))?;
        parts.push((r, props.area_km2, mp, former(&merged)?));
    }
    if let Some(code) = unit_merges.keys().next() {
        return Err(source_error(
            "merge list",
            format!("unit {code} is not in the unit list"),
        ));
    }

    let shapes: Vec<MultiPolygon> = parts.iter().map(|p| p.2.clone()).collect();
    let simplified = simplify::simplify(&shapes, DISPLAY_TOLERANCE_M).map_err(|e| match e {
        // Name the units by code rather than by position in the list.
        simplify::SimplifyError::InvalidSource { units, detail } => {
            let codes: Vec<&str> = units
                .iter()
                .filter_map(|&i| parts.get(i).map(|p| p.0.code.as_str()))
                .collect();
            source_error(&format!("boundaries of {codes:?}"), detail)
        }
        other => Error::Simplify(other),
    })?;
    let overlaps = simplified
        .source_overlaps
        .iter()
        .filter_map(|&(a, b, at)| {
            Some((
                parts.get(a)?.0.code.clone(),
                parts.get(b)?.0.code.clone(),
                at,
            ))
        })
        .collect();
    let mut units = Vec::with_capacity(parts.len());
    for ((r, area_km2, mp, formed_from), display) in parts.into_iter().zip(simplified.units) {
        units.push(unit(r, area_km2, mp, display, formed_from)?);
    }

    let (props, mp) = boundary(PROVINCE_CODE, source::PROVINCE)?;
    let display = simplify::simplify(std::slice::from_ref(&mp), DISPLAY_TOLERANCE_M)?
        .units
        .pop()
        .unwrap_or_default();
    let province = unit(
        UnitRecord {
            wards: Vec::new(),
            ..province
        },
        props.area_km2,
        mp,
        display,
        former(&province_merges.merges)?,
    )?;
    Ok(Units {
        province,
        units,
        overlaps,
    })
}

fn unit(
    r: UnitRecord,
    area_km2: f64,
    mp: MultiPolygon,
    display: MultiPolygon,
    formed_from: Vec<FormerUnit>,
) -> Result<AdminUnit> {
    let kind = UnitKind::of_full_name(&r.full_name)
        .ok_or_else(|| source_error("unit kind", format!("{:?}", r.full_name)))?;
    Ok(AdminUnit {
        code: r.code,
        name: r.name,
        name_en: r.name_en,
        full_name: r.full_name,
        full_name_en: r.full_name_en,
        kind,
        area_km2,
        shape: Shape::new(mp),
        display,
        formed_from,
    })
}

/// A MultiPolygon as GeoJSON.
pub fn geometry_json(mp: &MultiPolygon) -> Value {
    Geometry::MultiPolygon(mp.clone()).to_geojson()
}

/// The unit's `AdministrativeArea` entity; `parent` is the province (None for the
/// province itself).
pub fn entity(u: &AdminUnit, parent: Option<&AdminUnit>) -> Value {
    let formed_from: Vec<Value> = u
        .formed_from
        .iter()
        .map(|f| {
            json!({
                "code": f.code,
                "name": f.name,
                "extent": if f.whole { "full" } else { "partial" },
            })
        })
        .collect();
    let mut e = json!({
        "id": u.id(),
        "type": "AdministrativeArea",
        "code": {"type": "Property", "value": u.code},
        "name": {"type": "LanguageProperty", "languageMap": {"vi": u.full_name, "en": u.full_name_en}},
        "alternateName": {"type": "LanguageProperty", "languageMap": {"vi": u.name, "en": u.name_en}},
        "kind": {"type": "Property", "value": u.kind.word()},
        "areaKm2": {"type": "Property", "value": u.area_km2, "unitCode": "KMK"},
        "location": {"type": "GeoProperty", "value": geometry_json(u.shape.polygons())},
        "displayBoundary": {
            "type": "GeoProperty",
            "value": geometry_json(&u.display),
            "simplificationTolerance": {"type": "Property", "value": DISPLAY_TOLERANCE_M, "unitCode": "MTR"},
        },
        "formedFrom": {
            "type": "Property",
            "value": formed_from,
            "effectiveSince": {"type": "Property", "value": "2025-07-01"},
            "source": {"type": "Property", "value": MERGES_SOURCE},
        },
        "address": {"type": "Property", "value": {"addressCountry": "VN", "addressRegion": "Tỉnh Quảng Trị"}},
        "source": {"type": "Property", "value": UNITS_SOURCE},
    });
    if let (Some(p), Some(obj)) = (parent, e.as_object_mut()) {
        obj.insert(
            "containedInPlace".into(),
            json!({"type": "Relationship", "object": p.id(), "objectType": "AdministrativeArea"}),
        );
    }
    e
}
