//! The index rows of an entity, whatever the backend: its types, and per attribute
//! the kinds of its instances, the scalars `q` compares with and its geometries. A
//! write compares the rows before and after, attribute by attribute, and rewrites
//! only what differs.
//!
//! Observation times are indexed too, so that `q=attr.observedAt>=…` (how fresh a
//! feed is) is answered by the index rather than by reading every entity: each
//! attribute's `observedAt`s are value rows under a derived name
//! ([`observed_name`]), as fixed-width text whose order is the order of time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ngsi::Entity;
use serde_json::Value;

/// The index rows one entity has, attribute by attribute, so that a change rewrites
/// only the rows of the attributes that changed.
#[derive(Default, PartialEq)]
pub(crate) struct IndexRows {
    pub types: Vec<String>,
    pub attrs: BTreeMap<String, AttrRows>,
}

#[derive(Default, PartialEq)]
pub(crate) struct AttrRows {
    /// The kind of each instance.
    pub kinds: Vec<&'static str>,
    /// Every scalar q compares with: (num, txt).
    pub values: Vec<(Option<f64>, Option<String>)>,
    /// The bounding box of each geometry.
    pub boxes: Vec<(f64, f64, f64, f64)>,
    /// Each geometry as GeoJSON text (what PostGIS indexes).
    pub geometries: Vec<String>,
}

impl IndexRows {
    /// The rows of `e`, with no value rows for the attributes in `left_out`
    /// (`value_index`).
    pub fn of(e: &Entity, left_out: &BTreeSet<String>) -> IndexRows {
        let mut attrs = BTreeMap::new();
        for (name, instances) in &e.attrs {
            let mut rows = AttrRows::default();
            let values = !left_out.contains(name);
            for inst in instances {
                rows.kinds.push(inst.kind.name());
                // Index exactly the values q compares with (ngsi::filter decides which).
                if values {
                    rows.values.extend(
                        ngsi::filter::value_targets(inst)
                            .iter()
                            .filter_map(indexed_value),
                    );
                }
                if let Some(g) = inst.geometry() {
                    rows.boxes.push(g.bbox());
                    rows.geometries.push(g.to_geojson().to_string());
                }
            }
            attrs.insert(name.clone(), rows);
            let observed: Vec<_> = instances
                .iter()
                .filter_map(|inst| inst.observed_at.as_ref())
                .map(|t| (None, Some(observed_text(t))))
                .collect();
            if !observed.is_empty() {
                // Value rows alone: no kinds, so discovery never lists the name.
                let rows = AttrRows {
                    values: observed,
                    ..AttrRows::default()
                };
                attrs.insert(observed_name(name), rows);
            }
        }
        IndexRows {
            types: e.types.clone(),
            attrs,
        }
    }
}

/// The name under which attribute `name`'s observation times are indexed. An
/// expanded attribute name is an IRI, which holds no space: no attribute has it.
pub(crate) fn observed_name(name: &str) -> String {
    format!("{name} observedAt")
}

/// An observation time as indexed: UTC with nine fraction digits, so that comparing
/// the texts compares the times exactly (years 0 to 9999, all RFC 3339 can write).
pub(crate) fn observed_text(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// The indexed form of a scalar: (num, txt); None for what q cannot compare.
fn indexed_value(value: &Value) -> Option<(Option<f64>, Option<String>)> {
    match value {
        Value::Number(n) => Some((n.as_f64(), None)),
        Value::String(s) => Some((None, Some(s.clone()))),
        Value::Bool(b) => Some((None, Some(b.to_string()))),
        _ => None,
    }
}

/// An attribute kind from the name the index rows hold.
pub(crate) fn kind_of(name: &str) -> Option<ngsi::AttrKind> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}
