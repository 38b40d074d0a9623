//! Evaluating queries on entities: a `q` expression, a `geoQ` and a `scopeQ`.
//!
//! This evaluation is the definition of what matches. A store may narrow the
//! candidates with its indexes first, but what it returns must agree with these
//! functions, and the subscription matcher calls them directly.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::context::NGSI_LD;
use crate::entity::{AttrKind, Attribute, Entity, format_time, parse_time};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::query::ast::{AttrPath, CompareOp, GeoQuery, GeoRel, QExpr, QTerm, QValue};

/// Largest compiled size of a `~=` pattern, so a hostile pattern cannot take much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A `q` expression with names already expanded, ready to test entities.
#[derive(Debug, Clone)]
pub struct QFilter {
    expr: QExpr,
    patterns: HashMap<String, Regex>,
}

impl QFilter {
    /// Prepares `expr` (names expanded), compiling its patterns once.
    pub fn new(expr: QExpr) -> Result<QFilter> {
        let mut patterns = HashMap::new();
        collect_patterns(&expr, &mut patterns)?;
        Ok(QFilter { expr, patterns })
    }

    pub fn expr(&self) -> &QExpr {
        &self.expr
    }

    pub fn matches(&self, e: &Entity) -> bool {
        self.eval(&self.expr, e)
    }

    fn eval(&self, expr: &QExpr, e: &Entity) -> bool {
        match expr {
            QExpr::And(items) => items.iter().all(|x| self.eval(x, e)),
            QExpr::Or(items) => items.iter().any(|x| self.eval(x, e)),
            QExpr::Term(QTerm::Exists(path)) => !targets(e, path).is_empty(),
            QExpr::Term(QTerm::NotExists(path)) => targets(e, path).is_empty(),
            QExpr::Term(QTerm::Compare { path, op, value }) => {
                let found = targets(e, path);
                match op {
                    // `!=` holds when the target exists and equals none of the values.
                    CompareOp::Ne => !found.is_empty() && !found.iter().any(|t| equals(t, value)),
                    CompareOp::NotMatches => {
                        !found.is_empty() && !found.iter().any(|t| self.pattern_matches(t, value))
                    }
                    CompareOp::Matches => found.iter().any(|t| self.pattern_matches(t, value)),
                    CompareOp::Eq => found.iter().any(|t| equals(t, value)),
                    ord => found.iter().any(|t| ordered(t, value, *ord)),
                }
            }
        }
    }

    fn pattern_matches(&self, target: &Value, pattern: &QValue) -> bool {
        let (Value::String(s), QValue::Text(p)) = (target, pattern) else {
            return false;
        };
        self.patterns.get(p).is_some_and(|re| re.is_match(s))
    }
}

fn collect_patterns(expr: &QExpr, out: &mut HashMap<String, Regex>) -> Result<()> {
    match expr {
        QExpr::And(items) | QExpr::Or(items) => {
            items.iter().try_for_each(|x| collect_patterns(x, out))
        }
        QExpr::Term(QTerm::Compare {
            op: CompareOp::Matches | CompareOp::NotMatches,
            value,
            ..
        }) => {
            let QValue::Text(p) = value else {
                return Err(Error::bad_data("a ~= pattern must be a quoted string"));
            };
            if !out.contains_key(p) {
                let re = RegexBuilder::new(p)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| Error::bad_data(format!("invalid pattern {p:?}: {e}")))?;
                out.insert(p.clone(), re);
            }
            Ok(())
        }
        QExpr::Term(_) => Ok(()),
    }
}

/// The values a path points at in an entity (one per instance, array elements spread).
pub(crate) fn targets(e: &Entity, path: &AttrPath) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(instances) = e.attrs.get(&path.attr) else {
        return out;
    };
    for inst in instances {
        collect_targets(inst, &path.sub_attrs, &path.compound, &mut out);
    }
    out
}

fn collect_targets(attr: &Attribute, subs: &[String], compound: &[String], out: &mut Vec<Value>) {
    if let Some((first, rest)) = subs.split_first() {
        // Metadata of the attribute reads as if it were a sub-attribute.
        if rest.is_empty()
            && compound.is_empty()
            && let Some(meta) = first.strip_prefix(NGSI_LD)
        {
            let v = match meta {
                "observedAt" => attr
                    .observed_at
                    .as_ref()
                    .map(|t| Value::String(format_time(t))),
                "createdAt" => Some(Value::String(format_time(&attr.created_at))),
                "modifiedAt" => Some(Value::String(format_time(&attr.modified_at))),
                "unitCode" => attr.unit_code.clone().map(Value::String),
                "datasetId" => attr.dataset_id.clone().map(Value::String),
                _ => None,
            };
            if let Some(v) = v {
                out.push(v);
                return;
            }
        }
        if let Some(sub) = attr.sub_attrs.get(first) {
            for inst in sub {
                collect_targets(inst, rest, compound, out);
            }
        }
        return;
    }
    let mut value = &attr.value;
    for key in compound {
        match value.get(key.as_str()) {
            Some(v) => value = v,
            None => return,
        }
    }
    match (attr.kind, value) {
        // A language property matches on any of its strings.
        (AttrKind::LanguageProperty, Value::Object(map)) if compound.is_empty() => {
            for v in map.values() {
                spread(v, out);
            }
        }
        (_, v) => spread(v, out),
    }
}

/// The values a `q` term on this attribute instance (no sub-attribute, no compound
/// path) compares with. Stores index exactly these.
pub fn value_targets(attr: &Attribute) -> Vec<Value> {
    let mut out = Vec::new();
    collect_targets(attr, &[], &[], &mut out);
    // A typed literal compares by its @value.
    out.into_iter()
        .map(|v| v.get("@value").cloned().unwrap_or(v))
        .collect()
}

fn spread(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => out.extend(items.iter().cloned()),
        other => out.push(other.clone()),
    }
}

/// A comparable form of a value: numbers, texts, booleans and instants.
#[derive(Debug, PartialEq, PartialOrd)]
enum Scalar {
    Num(f64),
    Text(String),
    Bool(bool),
    Instant(DateTime<Utc>),
    Day(NaiveDate),
    Clock(NaiveTime),
    Null,
}

fn scalar_of_query(v: &QValue) -> Option<Scalar> {
    Some(match v {
        QValue::Number(n) => Scalar::Num(*n),
        QValue::Text(s) | QValue::Uri(s) => Scalar::Text(s.clone()),
        QValue::Bool(b) => Scalar::Bool(*b),
        QValue::Null => Scalar::Null,
        QValue::DateTime(t) => Scalar::Instant(*t),
        QValue::Date(d) => Scalar::Day(*d),
        QValue::Time(t) => Scalar::Clock(*t),
        QValue::Range(..) | QValue::List(_) => return None,
    })
}

/// Reads the target in the form the query value asks for (a string is read as a
/// datetime when compared with one).
fn scalar_like(target: &Value, like: &Scalar) -> Option<Scalar> {
    Some(match (target, like) {
        (Value::Number(n), Scalar::Num(_)) => Scalar::Num(n.as_f64()?),
        (Value::String(s), Scalar::Instant(_)) => Scalar::Instant(parse_time(s)?),
        (Value::String(s), Scalar::Day(_)) => {
            Scalar::Day(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?)
        }
        (Value::String(s), Scalar::Clock(_)) => {
            Scalar::Clock(NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?)
        }
        (Value::String(s), Scalar::Text(_)) => Scalar::Text(s.clone()),
        (Value::Bool(b), Scalar::Bool(_)) => Scalar::Bool(*b),
        (Value::Null, Scalar::Null) => Scalar::Null,
        // An `@value` object (typed literal) compares by its value.
        (Value::Object(o), _) => return o.get("@value").and_then(|v| scalar_like(v, like)),
        _ => return None,
    })
}

fn equals(target: &Value, value: &QValue) -> bool {
    match value {
        QValue::List(items) => items.iter().any(|v| equals(target, v)),
        QValue::Range(lo, hi) => {
            ordered(target, lo, CompareOp::Ge) && ordered(target, hi, CompareOp::Le)
        }
        single => match scalar_of_query(single) {
            Some(q) => scalar_like(target, &q).is_some_and(|t| t == q),
            None => false,
        },
    }
}

fn ordered(target: &Value, value: &QValue, op: CompareOp) -> bool {
    let Some(q) = scalar_of_query(value) else {
        return false;
    };
    let Some(t) = scalar_like(target, &q) else {
        return false;
    };
    let Some(ord) = t.partial_cmp(&q) else {
        return false;
    };
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Lt => ord == Less,
        CompareOp::Le => ord != Greater,
        CompareOp::Gt => ord == Greater,
        CompareOp::Ge => ord != Less,
        _ => false,
    }
}

/// A geoQ ready to test geometries (the reference geometry converted once).
#[derive(Debug, Clone)]
pub struct GeoFilter {
    pub query: GeoQuery,
    reference: geo::Geometry<f64>,
}

impl GeoFilter {
    pub fn new(query: GeoQuery) -> Result<GeoFilter> {
        if let GeoRel::Near { .. } = query.georel
            && !matches!(query.geometry, Geometry::Point(_))
        {
            return Err(Error::bad_data("near needs a Point as reference geometry"));
        }
        let reference = query.geometry.to_geo();
        Ok(GeoFilter { query, reference })
    }

    /// The area to look in, `(min_lon, min_lat, max_lon, max_lat)`, or None when any
    /// geometry may match (disjoint, minDistance alone).
    pub fn search_box(&self) -> Option<(f64, f64, f64, f64)> {
        match self.query.georel {
            GeoRel::Disjoint => None,
            GeoRel::Near {
                max_distance: None, ..
            } => None,
            GeoRel::Near {
                max_distance: Some(d),
                ..
            } => {
                let (x, y, _, _) = self.query.geometry.bbox();
                // Degrees of latitude are ~111.2 km; longitude shrinks with cos(lat).
                let dlat = d / 111_195.0 * 1.01 + 1e-9;
                let cos = y.to_radians().cos().max(0.01);
                let dlon = (dlat / cos).min(360.0);
                Some((x - dlon, y - dlat, x + dlon, y + dlat))
            }
            _ => Some(self.query.geometry.bbox()),
        }
    }

    /// Whether an entity's geometry stands in the asked relation to the reference.
    pub fn matches(&self, geometry: &Geometry) -> bool {
        use geo::{Contains, Distance, Haversine, HaversineClosestPoint, Intersects, Relate};
        let g = geometry.to_geo();
        match self.query.georel {
            GeoRel::Near {
                max_distance,
                min_distance,
            } => {
                let geo::Geometry::Point(reference) = self.reference else {
                    return false;
                };
                let distance = if g.intersects(&reference) {
                    0.0
                } else {
                    match g.haversine_closest_point(&reference) {
                        geo::Closest::Intersection(_) => 0.0,
                        geo::Closest::SinglePoint(p) => Haversine::distance(p, reference),
                        geo::Closest::Indeterminate => return false,
                    }
                };
                max_distance.is_none_or(|d| distance <= d)
                    && min_distance.is_none_or(|d| distance >= d)
            }
            // A point is within an area when it lies in its interior (not on its
            // edge): what `contains` answers directly, without the relate matrix
            // that a map's query would otherwise build for every candidate.
            GeoRel::Within => match (&g, &self.reference) {
                (geo::Geometry::Point(p), geo::Geometry::Polygon(area)) => area.contains(p),
                (geo::Geometry::Point(p), geo::Geometry::MultiPolygon(area)) => area.contains(p),
                _ => g.relate(&self.reference).is_within(),
            },
            GeoRel::Contains => g.relate(&self.reference).is_contains(),
            GeoRel::Intersects => g.intersects(&self.reference),
            GeoRel::Disjoint => !g.intersects(&self.reference),
            // The same coordinates are equal even where the shape is not valid (a
            // ring that crosses itself), which the relate matrix cannot judge.
            GeoRel::Equals => g == self.reference || g.relate(&self.reference).is_equal_topo(),
            GeoRel::Overlaps => g.relate(&self.reference).is_overlaps(),
        }
    }

    /// Whether the entity's geoproperty (expanded name in the query) matches.
    pub fn matches_entity(&self, e: &Entity) -> bool {
        e.attrs.get(&self.query.geoproperty).is_some_and(|v| {
            v.iter()
                .filter_map(Attribute::geometry)
                .any(|g| self.matches(&g))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::entity::Reader;
    use serde_json::json;

    fn path(attr: &str, subs: &[&str], compound: &[&str]) -> AttrPath {
        let ctx = Context::core();
        AttrPath {
            attr: ctx.expand(attr),
            sub_attrs: subs.iter().map(|s| ctx.expand(s)).collect(),
            compound: compound.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn cmp(p: AttrPath, op: CompareOp, value: QValue) -> QExpr {
        QExpr::Term(QTerm::Compare { path: p, op, value })
    }

    #[test]
    fn evaluates_q_terms() {
        let ctx = Context::core();
        let e = Reader { ctx: &ctx, now: Utc::now() }
            .entity(
                &json!({"id": "urn:x:1", "type": "T",
                    "level": {"type": "Property", "value": 4.6, "observedAt": "2020-10-18T07:00:00Z",
                              "quality": {"type": "Property", "value": "good"}},
                    "address": {"type": "Property", "value": {"city": "Đông Hà", "zip": 48000}},
                    "tags": ["river", "gauge"],
                    "name": {"type": "LanguageProperty", "languageMap": {"vi": "Sông Hiếu", "en": "Hieu River"}},
                    "on": true}),
                None,
            )
            .unwrap();
        let check = |expr: QExpr, want: bool| {
            assert_eq!(
                QFilter::new(expr.clone()).unwrap().matches(&e),
                want,
                "{expr:?}"
            )
        };
        let plain = |attr: &str| path(attr, &[], &[]);
        let sub = |attr: &str, sub: &str| path(attr, &[sub], &[]);
        let member = |attr: &str, key: &str| path(attr, &[], &[key]);
        let four_to_five =
            QValue::Range(Box::new(QValue::Number(4.0)), Box::new(QValue::Number(5.0)));
        let since_six = QValue::DateTime(parse_time("2020-10-18T06:00:00Z").unwrap());
        let tags = QValue::List(vec![QValue::Text("gauge".into()), QValue::Text("x".into())]);
        let compares = [
            (plain("level"), CompareOp::Gt, QValue::Number(4.5), true),
            (plain("level"), CompareOp::Le, QValue::Number(4.5), false),
            (plain("level"), CompareOp::Eq, four_to_five, true),
            (plain("level"), CompareOp::Ne, QValue::Number(4.6), false),
            (plain("missing"), CompareOp::Ne, QValue::Number(4.6), false),
            (
                sub("level", "quality"),
                CompareOp::Eq,
                QValue::Text("good".into()),
                true,
            ),
            (sub("level", "observedAt"), CompareOp::Ge, since_six, true),
            (
                member("address", "city"),
                CompareOp::Eq,
                QValue::Text("Đông Hà".into()),
                true,
            ),
            (
                member("address", "zip"),
                CompareOp::Lt,
                QValue::Number(50000.0),
                true,
            ),
            (plain("tags"), CompareOp::Eq, tags, true),
            (
                plain("name"),
                CompareOp::Matches,
                QValue::Text("^Sông".into()),
                true,
            ),
            (
                plain("name"),
                CompareOp::NotMatches,
                QValue::Text("River$".into()),
                false,
            ),
            (plain("on"), CompareOp::Eq, QValue::Bool(true), true),
        ];
        for (attr, op, value, want) in compares {
            check(cmp(attr, op, value), want);
        }
        check(
            QExpr::Term(QTerm::NotExists(path("missing", &[], &[]))),
            true,
        );
        check(
            QExpr::Or(vec![
                QExpr::Term(QTerm::Exists(path("missing", &[], &[]))),
                QExpr::Term(QTerm::Exists(path("on", &[], &[]))),
            ]),
            true,
        );
        check(
            QExpr::And(vec![
                QExpr::Term(QTerm::Exists(path("missing", &[], &[]))),
                QExpr::Term(QTerm::Exists(path("on", &[], &[]))),
            ]),
            false,
        );
        assert!(
            QFilter::new(cmp(
                path("a", &[], &[]),
                CompareOp::Matches,
                QValue::Text("(".into())
            ))
            .is_err()
        );
    }

    #[test]
    fn evaluates_geo_relations() {
        let square = Geometry::from_geojson(&json!({"type": "Polygon", "coordinates": [[[107.0, 16.7], [107.2, 16.7], [107.2, 16.9], [107.0, 16.9], [107.0, 16.7]]]})).unwrap();
        let inside = Geometry::Point([107.1, 16.8]);
        let outside = Geometry::Point([106.0, 16.8]);
        let f = |georel, geometry: &Geometry| {
            GeoFilter::new(GeoQuery {
                georel,
                geometry: geometry.clone(),
                geoproperty: "location".into(),
            })
            .unwrap()
        };
        assert!(f(GeoRel::Within, &square).matches(&inside));
        assert!(!f(GeoRel::Within, &square).matches(&outside));
        assert!(f(GeoRel::Contains, &inside).matches(&square));
        assert!(f(GeoRel::Intersects, &square).matches(&inside));
        assert!(f(GeoRel::Disjoint, &square).matches(&outside));
        assert!(f(GeoRel::Equals, &inside).matches(&inside));
        assert!(f(GeoRel::Equals, &square).matches(&square));
        assert!(!f(GeoRel::Equals, &square).matches(&inside));
        // A polygon whose ring crosses itself equals its own coordinates.
        let crossed = Geometry::from_geojson(&json!({"type": "Polygon", "coordinates": [[[13.2865906,52.5648645],[13.2879639,52.5648645],[13.2797241,52.4988679],[13.477478,52.4712703],[13.5049438,52.5373084],[13.2865906,52.5648645]]]})).unwrap();
        assert!(f(GeoRel::Equals, &crossed).matches(&crossed));
        assert!(!f(GeoRel::Equals, &crossed).matches(&square));
        // 0.01 degree of latitude is about 1.11 km.
        let near = |max, min| {
            f(
                GeoRel::Near {
                    max_distance: max,
                    min_distance: min,
                },
                &inside,
            )
        };
        assert!(near(Some(1200.0), None).matches(&Geometry::Point([107.1, 16.81])));
        assert!(!near(Some(1000.0), None).matches(&Geometry::Point([107.1, 16.81])));
        assert!(near(None, Some(1000.0)).matches(&Geometry::Point([107.1, 16.81])));
        assert!(near(Some(10.0), None).matches(&square));
        let (x0, y0, x1, y1) = near(Some(2000.0), None).search_box().unwrap();
        assert!(x0 < 107.1 && x1 > 107.1 && y0 < 16.79 && y1 > 16.81);
    }

    /// `within` tests a point by `contains`, every other geometry by the relate matrix:
    /// both agree on points inside, outside, on edges and vertices, and in holes.
    #[test]
    fn a_point_within_an_area_agrees_with_the_relate_matrix() {
        use geo::Relate;
        let areas = [
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [0.0, 0.0]],
                                                      [[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0], [1.0, 1.0]]]}),
            json!({"type": "MultiPolygon", "coordinates": [[[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 0.0]]],
                                                           [[[3.0, 3.0], [5.0, 3.0], [5.0, 5.0], [3.0, 5.0], [3.0, 3.0]]]]}),
        ];
        for area in &areas {
            let area = Geometry::from_geojson(area).unwrap();
            let filter = GeoFilter::new(GeoQuery {
                georel: GeoRel::Within,
                geometry: area.clone(),
                geoproperty: "location".into(),
            })
            .unwrap();
            let mut inside = 0;
            // Every half unit from -1 to 6: vertices, edges, holes, inside and out.
            for i in -2..=12 {
                for j in -2..=12 {
                    let point = Geometry::Point([f64::from(i) / 2.0, f64::from(j) / 2.0]);
                    let by_relate = point.to_geo().relate(&area.to_geo()).is_within();
                    assert_eq!(filter.matches(&point), by_relate, "{point:?} in {area:?}");
                    inside += usize::from(by_relate);
                }
            }
            assert!(inside > 0, "some points are inside {area:?}");
        }
    }
}
