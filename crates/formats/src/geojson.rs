//! GeoJSON FeatureCollections: each feature an entity, its geometry the `location`
//! GeoProperty, its other properties Properties.

use std::io::BufRead;

use serde_json::{Map, Value, json};

use super::json::{ArrayElements, parse};
use super::{Position, Record, Records};

/// How features become entities.
#[derive(Clone, Debug, Default)]
pub struct FeatureMapping {
    /// The property holding the entity id; None: the feature's own `id`.
    pub id_property: Option<String>,
    /// Put before each id (e.g. `urn:ngsi-ld:PointOfInterest:`).
    pub id_prefix: Option<String>,
    /// The type of every entity; None: from `type_property`.
    pub entity_type: Option<String>,
    /// The property holding the entity type (removed from the attributes either way).
    pub type_property: String,
}

/// An id value: a string, or a number written as text.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl FeatureMapping {
    /// The entity (normalized NGSI-LD JSON) of a feature.
    pub fn entity(&self, feature: Value) -> Result<Value, String> {
        let Value::Object(mut feature) = feature else {
            return Err("a feature must be a JSON object".into());
        };
        if feature.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err("not a GeoJSON Feature (its type must be \"Feature\")".into());
        }
        let mut props = match feature.remove("properties") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err("the feature's properties must be an object".into()),
        };
        let raw_id = match &self.id_property {
            Some(name) => props
                .remove(name)
                .ok_or_else(|| format!("the feature has no property {name:?} (its id)"))?,
            None => feature.remove("id").ok_or(
                "the feature has no id (name the property that holds it with --id-property)",
            )?,
        };
        let id = id_text(&raw_id).ok_or("the feature's id must be a string or a number")?;
        let id = format!("{}{id}", self.id_prefix.as_deref().unwrap_or(""));
        let type_value = props.remove(&self.type_property);
        let entity_type = match (&self.entity_type, type_value) {
            (Some(t), _) => Value::String(t.clone()),
            (None, Some(t @ (Value::String(_) | Value::Array(_)))) => t,
            (None, Some(_)) => {
                return Err(format!(
                    "the property {:?} (the entity type) must be a string",
                    self.type_property
                ));
            }
            (None, None) => {
                return Err(format!(
                    "the feature has no property {:?} for its type (or give --type)",
                    self.type_property
                ));
            }
        };
        let mut entity = Map::new();
        entity.insert("id".into(), Value::String(id));
        entity.insert("type".into(), entity_type);
        match feature.remove("geometry") {
            None | Some(Value::Null) => {}
            Some(geometry) => {
                if props.contains_key("location") {
                    return Err(
                        "the feature has both a geometry and a property \"location\"".into(),
                    );
                }
                entity.insert(
                    "location".into(),
                    json!({"type": "GeoProperty", "value": geometry}),
                );
            }
        }
        for (name, value) in props {
            // NGSI-LD has no null values: a null property is no attribute.
            if value.is_null() {
                continue;
            }
            if entity.contains_key(&name) {
                return Err(format!("the property {name:?} is a reserved name"));
            }
            entity.insert(name, json!({"type": "Property", "value": value}));
        }
        Ok(Value::Object(entity))
    }
}

/// The entities of a FeatureCollection.
pub fn records(input: impl BufRead + Send + 'static, mapping: FeatureMapping) -> Records {
    Box::new(ArrayElements::new(input, Some("features")).map(move |e| {
        e.map(|e| Record {
            at: Position::Feature {
                index: e.index,
                line: e.line,
            },
            entity: e
                .bytes
                .and_then(|b| parse(&b))
                .and_then(|f| mapping.entity(f)),
        })
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mapping() -> FeatureMapping {
        FeatureMapping {
            type_property: "type".into(),
            ..FeatureMapping::default()
        }
    }

    #[test]
    fn a_feature_becomes_an_entity() {
        let f = json!({"type": "Feature", "id": "urn:a:1",
            "geometry": {"type": "Point", "coordinates": [107.1, 16.8]},
            "properties": {"type": "School", "name": "THPT Đông Hà", "pupils": 900, "gone": null}});
        assert_eq!(
            mapping().entity(f).unwrap(),
            json!({"id": "urn:a:1", "type": "School",
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}},
                "name": {"type": "Property", "value": "THPT Đông Hà"},
                "pupils": {"type": "Property", "value": 900}})
        );
    }

    #[test]
    fn ids_and_types_from_flags_and_properties() {
        let m = FeatureMapping {
            id_property: Some("code".into()),
            id_prefix: Some("urn:ngsi-ld:AgriParcel:".into()),
            entity_type: Some("AgriParcel".into()),
            type_property: "type".into(),
        };
        let f = json!({"type": "Feature", "geometry": null,
            "properties": {"code": 42, "type": "ignored", "crop": "lúa"}});
        assert_eq!(
            m.entity(f).unwrap(),
            json!({"id": "urn:ngsi-ld:AgriParcel:42", "type": "AgriParcel",
                "crop": {"type": "Property", "value": "lúa"}})
        );
    }

    #[test]
    fn bad_features_are_refused_with_a_reason() {
        let cases = [
            (json!([1]), "a feature must be a JSON object"),
            (json!({"type": "Point"}), "not a GeoJSON Feature"),
            (
                json!({"type": "Feature", "properties": {"type": "T"}}),
                "the feature has no id",
            ),
            (
                json!({"type": "Feature", "id": "urn:a", "properties": {}}),
                "no property \"type\" for its type",
            ),
            (
                json!({"type": "Feature", "id": true, "properties": {"type": "T"}}),
                "must be a string or a number",
            ),
            (
                json!({"type": "Feature", "id": "urn:a", "geometry": {"type": "Point", "coordinates": [1, 2]},
                    "properties": {"type": "T", "location": "x"}}),
                "both a geometry and a property \"location\"",
            ),
            (
                json!({"type": "Feature", "id": "urn:a", "properties": {"type": "T", "id": "x"}}),
                "reserved name",
            ),
        ];
        for (f, want) in cases {
            let got = mapping().entity(f.clone()).unwrap_err();
            assert!(got.contains(want), "{f}: {got}");
        }
    }
}
