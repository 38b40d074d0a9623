//! Measures to NGSI-LD attributes: pure functions from a device's payload and its
//! provisioning to the attributes written on its entity.
//!
//! A payload is a JSON object of measures (`{"t": 21.5, "h": 60}`), or an array of
//! such objects, each its own update. Each measure is converted on its own: one that
//! cannot be converted is reported and left out, and the others are written.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ngsi::entity::{Reader, format_time, parse_time};
use ngsi::{Attribute, Context};
use serde_json::{Map, Value, json};

use crate::model::{AttributeMapping, StaticAttribute};

/// The measure that carries the observation time of the others (ISO 8601).
pub const TIME_INSTANT: &str = "TimeInstant";
/// Largest payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Most measures in one object.
pub const MAX_MEASURES: usize = 256;
/// Most objects in one multi-measure array.
pub const MAX_GROUPS: usize = 100;
/// How far ahead of the receiving clock an observation time may be.
pub const MAX_FUTURE: TimeDelta = TimeDelta::days(1);

/// The earliest observation time accepted: 2000-01-01T00:00:00Z.
pub fn earliest_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// What the IoT-Agent `type` of an attribute makes of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Number {
        integer: bool,
    },
    Boolean,
    Text,
    DateTime,
    Relationship,
    Geo,
    Language,
    Json,
    /// Any other type: a Property holding the value as sent.
    Other,
}

fn declared(attr_type: &str) -> Declared {
    match attr_type.to_ascii_lowercase().as_str() {
        "number" | "float" | "double" | "decimal" => Declared::Number { integer: false },
        "integer" | "int" | "long" => Declared::Number { integer: true },
        "boolean" | "bool" => Declared::Boolean,
        "text" | "string" => Declared::Text,
        "datetime" | "iso8601" => Declared::DateTime,
        "relationship" => Declared::Relationship,
        "geoproperty" | "geo:json" | "geo:point" | "point" | "linestring" | "polygon"
        | "multipoint" | "multilinestring" | "multipolygon" => Declared::Geo,
        "languageproperty" => Declared::Language,
        "jsonproperty" => Declared::Json,
        _ => Declared::Other,
    }
}

fn number(value: &Value, integer: bool) -> Result<Value, String> {
    let parsed = match value {
        Value::Number(n) => {
            if !integer || n.is_i64() || n.is_u64() {
                return Ok(value.clone());
            }
            n.as_f64().unwrap_or(f64::NAN)
        }
        Value::String(s) => {
            let s = s.trim();
            if integer && let Ok(i) = s.parse::<i64>() {
                return Ok(Value::from(i));
            }
            s.parse::<f64>()
                .map_err(|_| format!("{value} is not a number"))?
        }
        other => return Err(format!("{other} is not a number")),
    };
    if !parsed.is_finite() {
        return Err(format!("{value} is not a finite number"));
    }
    if integer {
        if parsed.fract() != 0.0 || parsed.abs() > 9.007_199_254_740_992e15 {
            return Err(format!("{value} is not an integer"));
        }
        return Ok(Value::from(parsed as i64));
    }
    serde_json::Number::from_f64(parsed)
        .map(Value::Number)
        .ok_or_else(|| format!("{value} is not a number"))
}

fn boolean(value: &Value) -> Result<Value, String> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        other => Err(format!("{other} is not a boolean")),
    }
}

fn geometry(value: &Value) -> Result<Value, String> {
    let point = |lon: f64, lat: f64| json!({"type": "Point", "coordinates": [lon, lat]});
    match value {
        Value::Object(_) => Ok(value.clone()),
        // [longitude, latitude(, altitude)], as GeoJSON orders them.
        Value::Array(items)
            if (2..=3).contains(&items.len()) && items.iter().all(Value::is_number) =>
        {
            Ok(json!({"type": "Point", "coordinates": items}))
        }
        // "latitude, longitude", as NGSI-v2's geo:point writes it.
        Value::String(s) => {
            let parts: Vec<&str> = s.split(',').map(str::trim).collect();
            match parts.as_slice() {
                [lat, lon] => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                    (Ok(lat), Ok(lon)) if lat.is_finite() && lon.is_finite() => Ok(point(lon, lat)),
                    _ => Err(format!("{value} is not \"latitude, longitude\"")),
                },
                _ => Err(format!("{value} is not \"latitude, longitude\"")),
            }
        }
        other => Err(format!("{other} is not a geometry")),
    }
}

/// The NGSI-LD attribute for `value` declared of IoT-Agent type `attr_type`: the
/// expanded name and the instance. The error says why the value does not fit.
pub fn attribute(
    name: &str,
    attr_type: &str,
    value: &Value,
    unit_code: Option<&str>,
    observed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(String, Attribute), String> {
    let ctx = Context::core();
    let iri = ngsi::entity::expand_attr(name, &ctx).map_err(|e| e.detail)?;
    if value.is_null() {
        return Err("null is not a value".into());
    }
    let mut fragment = match declared(attr_type) {
        Declared::Number { integer } => {
            json!({"type": "Property", "value": number(value, integer)?})
        }
        Declared::Boolean => json!({"type": "Property", "value": boolean(value)?}),
        Declared::Text => match value {
            Value::String(_) => json!({"type": "Property", "value": value}),
            Value::Number(_) | Value::Bool(_) => {
                json!({"type": "Property", "value": value.to_string()})
            }
            other => return Err(format!("{other} is not text")),
        },
        Declared::DateTime => {
            let t = value
                .as_str()
                .and_then(parse_time)
                .ok_or_else(|| format!("{value} is not an ISO 8601 date and time"))?;
            json!({"type": "Property", "value": {"@type": "DateTime", "@value": format_time(&t)}})
        }
        Declared::Relationship => json!({"type": "Relationship", "object": value}),
        Declared::Geo => json!({"type": "GeoProperty", "value": geometry(value)?}),
        Declared::Language => json!({"type": "LanguageProperty", "languageMap": value}),
        Declared::Json => json!({"type": "JsonProperty", "json": value}),
        Declared::Other => json!({"type": "Property", "value": value}),
    };
    if let Some(obj) = fragment.as_object_mut() {
        if let Some(t) = observed_at {
            obj.insert("observedAt".into(), Value::String(format_time(&t)));
        }
        if let Some(u) = unit_code {
            obj.insert("unitCode".into(), Value::String(u.to_string()));
        }
    }
    let reader = Reader { ctx: &ctx, now };
    let mut instances = reader
        .attribute(name, &iri, &fragment, 0)
        .map_err(|e| e.detail)?;
    match (instances.pop(), instances.is_empty()) {
        (Some(inst), true) => Ok((iri, inst)),
        _ => Err("one value gives one instance".into()),
    }
}

/// A measure left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The measure's name in the payload.
    pub measure: String,
    pub reason: String,
}

/// One update of an entity, from one object of measures.
#[derive(Debug, Default)]
pub struct Update {
    /// Expanded attribute name → the instance.
    pub measures: BTreeMap<String, Vec<Attribute>>,
    pub rejected: Vec<Rejection>,
    /// The observation time given in the payload, when it was refused: why.
    pub bad_timestamp: Option<String>,
}

/// How a device's measures map: its attribute mappings (the device's first, then its
/// group's) and whether unmapped measures are refused.
pub struct Mapping<'a> {
    pub attributes: Vec<&'a AttributeMapping>,
    pub explicit: bool,
}

impl Mapping<'_> {
    fn find(&self, key: &str) -> Option<&AttributeMapping> {
        self.attributes
            .iter()
            .find(|a| a.object_id.as_deref() == Some(key))
            .or_else(|| {
                self.attributes
                    .iter()
                    .find(|a| a.object_id.is_none() && a.name == key)
            })
            .copied()
    }
}

/// Checks an observation time: ISO 8601, from 2000 on, at most a day ahead of `now`.
pub fn observation_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = parse_time(text).ok_or_else(|| format!("{text:?} is not an ISO 8601 time"))?;
    if t < earliest_time() {
        return Err(format!("{text} is before 2000"));
    }
    if t > now + MAX_FUTURE {
        return Err(format!("{text} is more than a day ahead"));
    }
    Ok(t)
}

/// Maps one object of measures. `timestamp` is an observation time given outside the
/// payload (the HTTP `t` parameter); `TimeInstant` in the payload comes first. When the
/// given time is refused, the receipt time `now` is used instead and the refusal noted.
pub fn map_object(
    object: &Map<String, Value>,
    mapping: &Mapping,
    timestamp: Option<&str>,
    now: DateTime<Utc>,
) -> Update {
    let mut update = Update::default();
    let given = match object.get(TIME_INSTANT) {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            update.bad_timestamp = Some(format!("{TIME_INSTANT} {other} is not a string"));
            None
        }
        None => timestamp,
    };
    let observed_at = match given.map(|t| observation_time(t, now)) {
        Some(Ok(t)) => t,
        Some(Err(reason)) => {
            update.bad_timestamp = Some(reason);
            now
        }
        None => now,
    };
    for (key, value) in object {
        if key == TIME_INSTANT {
            continue;
        }
        let reject = |reason: String| Rejection {
            measure: key.clone(),
            reason,
        };
        if update.measures.len() + update.rejected.len() >= MAX_MEASURES {
            update
                .rejected
                .push(reject(format!("more than {MAX_MEASURES} measures")));
            continue;
        }
        let (name, attr_type, unit) = match mapping.find(key) {
            Some(m) => (
                m.name.as_str(),
                m.attr_type.as_str(),
                m.unit_code.as_deref(),
            ),
            None if mapping.explicit => {
                update
                    .rejected
                    .push(reject("not a provisioned attribute (explicitAttrs)".into()));
                continue;
            }
            None => (key.as_str(), "Property", None),
        };
        match attribute(name, attr_type, value, unit, Some(observed_at), now) {
            Ok((iri, inst)) => match update.measures.entry(iri) {
                std::collections::btree_map::Entry::Occupied(_) => update
                    .rejected
                    .push(reject(format!("another measure already sets {name}"))),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(vec![inst]);
                }
            },
            Err(reason) => update.rejected.push(reject(reason)),
        }
    }
    update
}

/// The static attributes of a device, as attributes (no observation time). They were
/// checked when provisioned; one that no longer converts is reported and left out.
pub fn statics(
    attrs: &[&StaticAttribute],
    now: DateTime<Utc>,
) -> (BTreeMap<String, Vec<Attribute>>, Vec<Rejection>) {
    let mut out = BTreeMap::new();
    let mut rejected = Vec::new();
    for s in attrs {
        match attribute(
            &s.name,
            &s.attr_type,
            &s.value,
            s.unit_code.as_deref(),
            None,
            now,
        ) {
            Ok((iri, inst)) => {
                out.entry(iri).or_insert_with(|| vec![inst]);
            }
            Err(reason) => rejected.push(Rejection {
                measure: s.name.clone(),
                reason,
            }),
        }
    }
    (out, rejected)
}

/// Why a payload cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Reads a payload of measures into its objects: one object, or an array of them.
pub fn objects(payload: &[u8]) -> Result<Vec<Map<String, Value>>, Malformed> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Malformed(format!(
            "{} bytes: at most {MAX_PAYLOAD_BYTES} are accepted",
            payload.len()
        )));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Malformed(format!("the payload is not JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(vec![obj]),
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_GROUPS => items
            .into_iter()
            .map(|item| match item {
                Value::Object(obj) => Ok(obj),
                _ => Err(Malformed(
                    "an array of measures must hold JSON objects".into(),
                )),
            })
            .collect(),
        Value::Array(items) if items.is_empty() => Err(Malformed("an empty array".into())),
        Value::Array(_) => Err(Malformed(format!(
            "more than {MAX_GROUPS} objects of measures in one array"
        ))),
        _ => Err(Malformed(
            "the payload must be a JSON object of measures".into(),
        )),
    }
}

/// Reads the payload of a one-measure message (`.../attrs/{name}`): a JSON value, or
/// else the text as a string.
pub fn single(name: &str, payload: &[u8]) -> Result<Map<String, Value>, Malformed> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Malformed(format!(
            "{} bytes: at most {MAX_PAYLOAD_BYTES} are accepted",
            payload.len()
        )));
    }
    let value = match serde_json::from_slice::<Value>(payload) {
        Ok(v) => v,
        Err(_) => match std::str::from_utf8(payload) {
            Ok(text) => Value::String(text.trim().to_string()),
            Err(_) => return Err(Malformed("the payload is neither JSON nor text".into())),
        },
    };
    let mut obj = Map::new();
    obj.insert(name.to_string(), value);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn now() -> DateTime<Utc> {
        parse_time("2026-11-27T08:00:00Z").unwrap()
    }

    /// One value through `attribute`: the NGSI-LD kind, value and unit, or the error.
    fn check(attr_type: &str, value: Value, expected: Result<(&str, Value), &str>) {
        let got = attribute("m", attr_type, &value, None, None, now());
        match (got, expected) {
            (Ok((_, inst)), Ok((kind, v))) => {
                assert_eq!(inst.kind.name(), kind, "{attr_type} {value}");
                assert_eq!(inst.value, v, "{attr_type} {value}");
            }
            (Err(e), Err(part)) => assert!(e.contains(part), "{attr_type} {value}: {e}"),
            (got, expected) => panic!("{attr_type} {value}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn values_are_converted_by_their_declared_type() {
        type Case = (
            &'static str,
            Value,
            Result<(&'static str, Value), &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("Number", json!(21.5), Ok(("Property", json!(21.5)))),
            ("Float", json!("21.5"), Ok(("Property", json!(21.5)))),
            ("Number", json!(" 7 "), Ok(("Property", json!(7.0)))),
            ("Number", json!("45%"), Err("not a number")),
            ("Number", json!(true), Err("not a number")),
            ("Number", json!("NaN"), Err("finite")),
            ("Integer", json!("12"), Ok(("Property", json!(12)))),
            ("Integer", json!(12.0), Ok(("Property", json!(12)))),
            ("Integer", json!(12.5), Err("not an integer")),
            ("Boolean", json!("TRUE"), Ok(("Property", json!(true)))),
            ("Boolean", json!(1), Err("not a boolean")),
            ("Text", json!(42), Ok(("Property", json!("42")))),
            ("Text", json!({"a": 1}), Err("not text")),
            (
                "DateTime",
                json!("2026-11-27T07:00:00+07:00"),
                Ok((
                    "Property",
                    json!({"@type": "DateTime", "@value": "2026-11-27T00:00:00Z"}),
                )),
            ),
            ("DateTime", json!("yesterday"), Err("ISO 8601")),
            (
                "Relationship",
                json!("urn:ngsi-ld:Building:1"),
                Ok(("Relationship", json!("urn:ngsi-ld:Building:1"))),
            ),
            ("Relationship", json!("not a uri"), Err("URI")),
            (
                "geo:point",
                json!("16.8, 107.1"),
                Ok((
                    "GeoProperty",
                    json!({"type": "Point", "coordinates": [107.1, 16.8]}),
                )),
            ),
            (
                "GeoProperty",
                json!([107.1, 16.8]),
                Ok((
                    "GeoProperty",
                    json!({"type": "Point", "coordinates": [107.1, 16.8]}),
                )),
            ),
            ("geo:json", json!({"type": "Point"}), Err("")),
            (
                "StructuredValue",
                json!({"a": [1]}),
                Ok(("Property", json!({"a": [1]}))),
            ),
            ("Property", json!("45%"), Ok(("Property", json!("45%")))),
            ("Number", Value::Null, Err("null")),
        ];
        for (attr_type, value, expected) in cases {
            check(attr_type, value, expected);
        }
    }

    #[test]
    fn the_unit_and_the_observation_time_are_kept() {
        let t = parse_time("2026-11-27T07:59:00Z").unwrap();
        let (iri, inst) = attribute(
            "temperature",
            "Number",
            &json!(21),
            Some("CEL"),
            Some(t),
            now(),
        )
        .unwrap();
        assert_eq!(iri, Context::core().expand("temperature"));
        assert_eq!(inst.unit_code.as_deref(), Some("CEL"));
        assert_eq!(inst.observed_at, Some(t));
        assert!(attribute("type", "Number", &json!(1), None, None, now()).is_err());
    }

    fn mapping_of(attrs: &[AttributeMapping], explicit: bool) -> Mapping<'_> {
        Mapping {
            attributes: attrs.iter().collect(),
            explicit,
        }
    }

    #[test]
    fn an_object_maps_measure_by_measure() {
        let attrs = vec![
            AttributeMapping {
                object_id: Some("t".into()),
                name: "temperature".into(),
                attr_type: "Number".into(),
                unit_code: Some("CEL".into()),
            },
            AttributeMapping {
                object_id: None,
                name: "status".into(),
                attr_type: "Text".into(),
                unit_code: None,
            },
        ];
        let payload =
            json!({"t": "bad", "status": "ok", "h": 60, "TimeInstant": "2026-11-27T07:00:00Z"});
        let update = map_object(
            payload.as_object().unwrap(),
            &mapping_of(&attrs, false),
            None,
            now(),
        );
        let ctx = Context::core();
        assert_eq!(update.measures.len(), 2, "{update:?}");
        let h = &update.measures[&ctx.expand("h")][0];
        assert_eq!(h.value, json!(60));
        assert_eq!(h.observed_at, parse_time("2026-11-27T07:00:00Z"));
        assert!(update.measures.contains_key(&ctx.expand("status")));
        assert_eq!(update.rejected.len(), 1);
        assert_eq!(update.rejected[0].measure, "t");
        assert!(update.bad_timestamp.is_none());

        // With explicitAttrs, the unmapped `h` is left out.
        let update = map_object(
            payload.as_object().unwrap(),
            &mapping_of(&attrs, true),
            None,
            now(),
        );
        assert_eq!(update.measures.len(), 1);
        assert_eq!(update.rejected.len(), 2);
    }

    #[test]
    fn observation_times_out_of_range_fall_back_to_receipt() {
        for (given, ok) in [
            ("2026-11-27T07:00:00Z", true),
            ("2026-11-28T07:59:00Z", true),
            ("2026-11-28T08:01:00Z", false),
            ("1999-12-31T23:59:59Z", false),
            ("27/11/2026", false),
        ] {
            let obj = json!({"x": 1, "TimeInstant": given});
            let update = map_object(
                obj.as_object().unwrap(),
                &mapping_of(&[], false),
                None,
                now(),
            );
            let inst = &update.measures[&Context::core().expand("x")][0];
            if ok {
                assert_eq!(inst.observed_at, parse_time(given), "{given}");
                assert!(update.bad_timestamp.is_none());
            } else {
                assert_eq!(inst.observed_at, Some(now()), "{given}");
                assert!(update.bad_timestamp.is_some(), "{given}");
            }
        }
        // The HTTP `t` parameter, when the payload has no TimeInstant.
        let obj = json!({"x": 1});
        let update = map_object(
            obj.as_object().unwrap(),
            &mapping_of(&[], false),
            Some("2026-11-27T06:00:00Z"),
            now(),
        );
        let inst = &update.measures[&Context::core().expand("x")][0];
        assert_eq!(inst.observed_at, parse_time("2026-11-27T06:00:00Z"));
    }

    #[test]
    fn payloads_are_objects_or_arrays_of_objects() {
        assert_eq!(objects(br#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(objects(br#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        for bad in [&b"{"[..], b"42", b"[]", b"[1]", b"\"x\"", b"\xff"] {
            assert!(objects(bad).is_err(), "{bad:?}");
        }
        assert!(objects(&vec![b' '; MAX_PAYLOAD_BYTES + 1]).is_err());
        assert_eq!(single("t", b"21.5").unwrap()["t"], json!(21.5));
        assert_eq!(single("s", b"on \n").unwrap()["s"], json!("on"));
        assert!(single("s", b"\xff\xfe").is_err());
    }
}
