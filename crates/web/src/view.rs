//! What the operations centre shows of an entity, as pure functions of the entity: its
//! sector layer, position, names, commune, state (normal, warning, alarm level I–III,
//! offline) and the few readings the map and tiles need.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::{Attribute, Context, Entity};
use serde::Serialize;
use serde_json::Value;

/// A sensor that has sent nothing for this long is shown offline.
pub const SILENT_AFTER: TimeDelta = TimeDelta::minutes(15);

/// The air-quality index above which a station counts on the dashboard.
pub const AQI_ALERT: f64 = 150.0;

/// `dataProvider` of the demo entities.
pub const DEMO_PROVIDER: &str = "dothi demo data";

/// The sector layers and the entity types each shows. Points of interest are split by
/// category between tourism, banking and commerce ([`layer_of_entity`]).
pub const LAYERS: &[(&str, &[&str])] = &[
    ("environment", &["AirQualityObserved", "WeatherObserved"]),
    (
        "water",
        &[
            "WaterObserved",
            "WaterConsumptionObserved",
            "FloodMonitoring",
        ],
    ),
    ("transport", &["TrafficFlowObserved"]),
    ("energy", &["Streetlight", "ACMeasurement"]),
    ("tourism", &["PointOfInterest"]),
    ("health", &["Hospital", "MedicalClinic"]),
    ("education", &["School"]),
    ("agriculture", &["AgriParcel"]),
    ("banking", &["PointOfInterest"]),
    ("commerce", &["PointOfInterest"]),
    ("planning", &["UrbanPlanningZone", "BuildingPermit"]),
];

/// Types whose entities are fed by devices (and so can fall silent).
pub const SENSOR_TYPES: &[&str] = &[
    "WaterObserved",
    "AirQualityObserved",
    "WeatherObserved",
    "TrafficFlowObserved",
];

/// The type of the communes.
pub const COMMUNE_TYPE: &str = "AdministrativeArea";

/// An entity's state, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Normal,
    Warning,
    Alarm1,
    Alarm2,
    Alarm3,
    Offline,
}

/// What an entity last told of itself, as the map and the public page show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    /// The latest `observedAt` of its attributes, if any (UTC).
    #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
    /// The reading that decides the state (water level in m, AQI...), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<f64>,
    /// For gauges: the alarm level reached (0–3).
    #[serde(rename = "alarmLevel", skip_serializing_if = "Option::is_none")]
    pub alarm_level: Option<u8>,
    /// For gauges: the water levels of alarm I, II and III (m), those it has.
    #[serde(rename = "alarmLevels", skip_serializing_if = "Option::is_none")]
    pub alarm_levels: Option<[Option<f64>; 3]>,
}

/// One entity as the map, the tiles and the explorer see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub layer: Option<&'static str>,
    pub name: String,
    #[serde(rename = "nameEn", skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// The commune's entity id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commune: Option<String>,
    /// The commune's name, as the entity's address gives it.
    #[serde(rename = "communeName", skip_serializing_if = "Option::is_none")]
    pub commune_name: Option<String>,
    /// Longitude and latitude (a polygon's centre).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<[f64; 2]>,
    pub state: State,
    pub demo: bool,
    /// The entity's last modification (UTC).
    #[serde(rename = "modifiedAt")]
    pub modified_at: DateTime<Utc>,
    #[serde(flatten)]
    pub observation: Observation,
    /// For a key performance indicator: which (`broadband`, `5g`); its value is the
    /// reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicator: Option<String>,
}

/// Reads compacted attributes of an entity.
pub struct View<'a> {
    entity: &'a Entity,
    ctx: &'a Context,
}

impl<'a> View<'a> {
    pub fn new(entity: &'a Entity, ctx: &'a Context) -> Self {
        View { entity, ctx }
    }

    /// The entity's first type, compacted.
    pub fn type_name(&self) -> String {
        self.entity
            .types
            .first()
            .map(|t| self.ctx.compact(t))
            .unwrap_or_default()
    }

    pub fn attr(&self, name: &str) -> Option<&'a Attribute> {
        self.entity
            .attrs
            .get(&self.ctx.expand(name))
            .and_then(|v| v.first())
    }

    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.attr(name).map(|a| &a.value)
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        self.value(name).and_then(Value::as_f64)
    }

    /// Whether a boolean attribute is true.
    pub fn flag(&self, name: &str) -> bool {
        self.value(name).and_then(Value::as_bool) == Some(true)
    }

    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.value(name).and_then(Value::as_str)
    }

    /// A LanguageProperty's text in `lang`, or a plain string.
    pub fn localized(&self, name: &str, lang: &str) -> Option<String> {
        match self.value(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(map) => map
                .get(lang)
                .or_else(|| map.values().next())
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    }

    /// A Relationship's object.
    pub fn object(&self, name: &str) -> Option<&'a str> {
        self.attr(name).and_then(|a| a.value.as_str())
    }

    pub fn is_demo(&self) -> bool {
        self.text("dataProvider") == Some(DEMO_PROVIDER) || self.entity.id.contains(":demo")
    }

    /// The latest observation time of any attribute.
    pub fn observed_at(&self) -> Option<DateTime<Utc>> {
        self.entity
            .attrs
            .values()
            .flatten()
            .filter_map(|a| a.observed_at)
            .max()
    }

    /// When the entity last heard of its source: the latest time of any attribute,
    /// its `observedAt` or, without one, when it was written.
    pub fn last_heard(&self) -> DateTime<Utc> {
        self.entity
            .attrs
            .values()
            .flatten()
            .map(|a| a.observed_at.unwrap_or(a.modified_at))
            .max()
            .unwrap_or(self.entity.modified_at)
    }

    /// The position of `location`: a point, or the mean of a polygon's outer ring.
    pub fn position(&self) -> Option<[f64; 2]> {
        let geometry = self.value("location")?;
        let coords = geometry.get("coordinates")?;
        let ring = match geometry.get("type")?.as_str()? {
            "Point" => return point(coords),
            "Polygon" => coords.get(0)?,
            "MultiPolygon" => coords.get(0)?.get(0)?,
            "LineString" => coords,
            _ => return None,
        };
        let points: Vec<[f64; 2]> = ring.as_array()?.iter().filter_map(point).collect();
        if points.is_empty() {
            return None;
        }
        let n = points.len() as f64;
        Some([
            points.iter().map(|p| p[0]).sum::<f64>() / n,
            points.iter().map(|p| p[1]).sum::<f64>() / n,
        ])
    }
}

fn point(v: &Value) -> Option<[f64; 2]> {
    Some([v.get(0)?.as_f64()?, v.get(1)?.as_f64()?])
}

/// The sector layer of a type.
pub fn layer_of(type_name: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .find(|(_, types)| types.contains(&type_name))
        .map(|(layer, _)| *layer)
}

/// The sector layer of an entity: that of its type, but a point of interest's is the
/// sector of its category (`city::demo::POI_SECTORS`: banks and ATMs are banking,
/// markets and shops commerce, the rest tourism).
pub fn layer_of_entity(type_name: &str, v: &View) -> Option<&'static str> {
    if type_name == "PointOfInterest" {
        let categories: Vec<&str> = match v.value("category") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(one)) => vec![one.as_str()],
            _ => Vec::new(),
        };
        if let Some(sector) = city::demo::poi_sector(categories)
            && let Some((layer, _)) = LAYERS.iter().find(|(l, _)| *l == sector)
        {
            return Some(layer);
        }
    }
    layer_of(type_name)
}

/// Vietnam's AQI for a PM2.5 concentration in µg/m³ (the data set's computation).
pub fn aqi_pm25(pm25: f64) -> f64 {
    if !pm25.is_finite() || pm25 <= 0.0 {
        return 0.0;
    }
    f64::from(city::demo::air_quality_index(pm25).0)
}

/// The alarm level (0–3) a water level reaches given the levels I, II and III.
pub fn alarm_level(level: f64, thresholds: [Option<f64>; 3]) -> u8 {
    thresholds
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_some_and(|t| level >= t))
        .map(|(i, _)| i as u8 + 1)
        .max()
        .unwrap_or(0)
}

fn warning_if(flag: bool) -> State {
    if flag { State::Warning } else { State::Normal }
}

fn alarm_state(level: u8) -> State {
    match level {
        0 => State::Normal,
        1 => State::Alarm1,
        2 => State::Alarm2,
        _ => State::Alarm3,
    }
}

/// What the operations centre shows of an entity, at time `now`.
pub fn item(entity: &Entity, ctx: &Context, now: DateTime<Utc>) -> Item {
    let v = View::new(entity, ctx);
    let type_name = v.type_name();
    let observed_at = v.observed_at();
    let mut reading = None;
    let mut alarm = None;
    let mut alarm_levels = None;
    let mut state = match type_name.as_str() {
        "WaterObserved" | "FloodMonitoring" => {
            let level = v.number("waterLevel");
            reading = level;
            let thresholds = ["alarmLevel1", "alarmLevel2", "alarmLevel3"].map(|n| v.number(n));
            let reached = level.map(|l| alarm_level(l, thresholds)).unwrap_or(0);
            alarm = Some(reached);
            alarm_levels = thresholds.iter().any(Option::is_some).then_some(thresholds);
            alarm_state(reached)
        }
        "AirQualityObserved" => {
            let aqi = v
                .number("pm25")
                .map(aqi_pm25)
                .or(v.number("airQualityIndex"));
            reading = aqi;
            match aqi.unwrap_or(0.0) {
                a if a > 300.0 => State::Alarm3,
                a if a > 200.0 => State::Alarm2,
                a if a > AQI_ALERT => State::Alarm1,
                a if a > 100.0 => State::Warning,
                _ => State::Normal,
            }
        }
        "TrafficFlowObserved" => {
            reading = v.number("intensity");
            warning_if(v.flag("congested"))
        }
        "Streetlight" => match v.text("status") {
            Some("ok") | None => State::Normal,
            Some(_) => State::Warning,
        },
        "WaterConsumptionObserved" => {
            reading = v.number("waterConsumption");
            warning_if(v.flag("alarmInProgress"))
        }
        "WeatherObserved" => {
            reading = v.number("temperature");
            State::Normal
        }
        "KeyPerformanceIndicator" => {
            reading = v.number("kpiValue");
            State::Normal
        }
        _ => State::Normal,
    };
    if SENSOR_TYPES.contains(&type_name.as_str()) && now - v.last_heard() > SILENT_AFTER {
        state = State::Offline;
    }
    let address = v.value("address");
    Item {
        id: entity.id.clone(),
        layer: layer_of_entity(&type_name, &v),
        name: v
            .localized("name", "vi")
            .unwrap_or_else(|| entity.id.rsplit(':').next().unwrap_or_default().to_string()),
        name_en: v.localized("name", "en"),
        commune: v.object("refAdministrativeArea").map(str::to_string),
        commune_name: address
            .and_then(|a| a.get("addressLocality"))
            .and_then(Value::as_str)
            .map(str::to_string),
        position: v.position(),
        state,
        demo: v.is_demo(),
        modified_at: entity.modified_at,
        observation: Observation {
            observed_at,
            reading,
            alarm_level: alarm,
            alarm_levels,
        },
        indicator: (type_name == "KeyPerformanceIndicator")
            .then(|| v.text("indicator").map(str::to_string))
            .flatten(),
        type_name,
    }
}

/// Folds Vietnamese text for searching: lower case, without tone marks or the stroke
/// of đ ("Đông Hà" and "dong ha" match).
pub fn fold(text: &str) -> String {
    const GROUPS: [(&str, char); 6] = [
        ("àáạảãâầấậẩẫăằắặẳẵ", 'a'),
        ("èéẹẻẽêềếệểễ", 'e'),
        ("ìíịỉĩ", 'i'),
        ("òóọỏõôồốộổỗơờớợởỡ", 'o'),
        ("ùúụủũưừứựửữ", 'u'),
        ("ỳýỵỷỹ", 'y'),
    ];
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c == 'đ' {
                return 'd';
            }
            GROUPS
                .iter()
                .find(|(set, _)| set.contains(c))
                .map_or(c, |(_, base)| *base)
        })
        .collect()
}

/// Per-commune figures for shading the map, by commune id.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Indicators {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadband: Option<f64>,
    #[serde(rename = "5g", skip_serializing_if = "Option::is_none")]
    pub five_g: Option<f64>,
    /// The worst AQI of the commune's stations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aqi: Option<f64>,
    /// Entities in warning, alarm or offline.
    pub alerts: u32,
    /// Located entities of the sector layers.
    pub entities: u32,
}

/// The indicators of each commune (by id) from the items: the KPIs' broadband and 5G
/// figures, the worst AQI of its stations, and how many entities and alerts it has.
pub fn indicators<'a>(items: impl IntoIterator<Item = &'a Item>) -> BTreeMap<String, Indicators> {
    let mut out: BTreeMap<String, Indicators> = BTreeMap::new();
    for item in items {
        let Some(commune) = &item.commune else {
            continue;
        };
        if let (Some(which), Some(value)) = (&item.indicator, item.observation.reading) {
            let slot = out.entry(commune.clone()).or_default();
            match which.as_str() {
                "broadband" => slot.broadband = Some(value),
                "5g" => slot.five_g = Some(value),
                _ => {}
            }
        }
        if item.layer.is_none() {
            continue;
        }
        let slot = out.entry(commune.clone()).or_default();
        slot.entities += 1;
        if item.state != State::Normal {
            slot.alerts += 1;
        }
        if item.type_name == "AirQualityObserved"
            && let Some(aqi) = item.observation.reading
        {
            slot.aqi = Some(slot.aqi.map_or(aqi, |a: f64| a.max(aqi)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aqi_follows_the_breakpoints() {
        for (pm25, aqi) in [
            (0.0, 0.0),
            (25.0, 50.0),
            (65.0, 125.0),
            (80.0, 150.0),
            (115.0, 175.0),
            (900.0, 500.0),
            (-3.0, 0.0),
        ] {
            assert_eq!(aqi_pm25(pm25), aqi, "pm25 {pm25}");
        }
    }

    #[test]
    fn alarm_levels_skip_missing_thresholds() {
        let hieu = [Some(3.0), None, Some(5.0)];
        for (level, reached) in [(2.9, 0), (3.0, 1), (4.5, 1), (5.2, 3)] {
            assert_eq!(alarm_level(level, hieu), reached, "level {level}");
        }
    }

    #[test]
    fn folding_ignores_tones_and_case() {
        assert_eq!(fold("Phường Đông Hà"), "phuong dong ha");
        assert_eq!(fold("Thạch Hãn"), "thach han");
        assert_eq!(fold("Xã Hướng Lập"), "xa huong lap");
    }
}
