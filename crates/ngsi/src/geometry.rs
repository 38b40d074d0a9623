//! GeoJSON geometries as NGSI-LD GeoProperties carry them, validated on the way in.
//!
//! Positions are `[longitude, latitude]` in WGS84 (RFC 7946). A geometry that is not
//! valid GeoJSON — a position out of range, a ring that is not closed, a line of one
//! point — is refused with a message that says where.

use serde_json::{Value, json};

/// `[longitude, latitude]`; an altitude, when given, is accepted and dropped.
pub type Position = [f64; 2];

#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Point(Position),
    MultiPoint(Vec<Position>),
    LineString(Vec<Position>),
    MultiLineString(Vec<Vec<Position>>),
    Polygon(Vec<Vec<Position>>),
    MultiPolygon(Vec<Vec<Vec<Position>>>),
}

/// Why a geometry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid geometry: {0}")]
pub struct GeometryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, GeometryError> {
    Err(GeometryError(msg.into()))
}

impl Geometry {
    /// The GeoJSON type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Geometry::Point(_) => "Point",
            Geometry::MultiPoint(_) => "MultiPoint",
            Geometry::LineString(_) => "LineString",
            Geometry::MultiLineString(_) => "MultiLineString",
            Geometry::Polygon(_) => "Polygon",
            Geometry::MultiPolygon(_) => "MultiPolygon",
        }
    }

    /// Parses a GeoJSON geometry object (`{"type": "Point", "coordinates": [..]}`).
    pub fn from_geojson(value: &Value) -> Result<Geometry, GeometryError> {
        let Some(obj) = value.as_object() else {
            return err("a geometry must be a JSON object");
        };
        let Some(kind) = obj.get("type").and_then(Value::as_str) else {
            return err("a geometry needs a string \"type\"");
        };
        let Some(coordinates) = obj.get("coordinates") else {
            return err("a geometry needs \"coordinates\"");
        };
        Geometry::from_parts(kind, coordinates)
    }

    /// Builds a geometry from its type name and its coordinates (as in a geoQ).
    pub fn from_parts(kind: &str, coordinates: &Value) -> Result<Geometry, GeometryError> {
        let geometry = match kind {
            "Point" => Geometry::Point(position(coordinates)?),
            "MultiPoint" => Geometry::MultiPoint(positions(coordinates, 1)?),
            "LineString" => Geometry::LineString(positions(coordinates, 2)?),
            "MultiLineString" => Geometry::MultiLineString(
                array(coordinates, "MultiLineString")?
                    .iter()
                    .map(|line| positions(line, 2))
                    .collect::<Result<_, _>>()?,
            ),
            "Polygon" => Geometry::Polygon(polygon(coordinates)?),
            "MultiPolygon" => Geometry::MultiPolygon(
                array(coordinates, "MultiPolygon")?
                    .iter()
                    .map(polygon)
                    .collect::<Result<_, _>>()?,
            ),
            other => return err(format!("unsupported geometry type {other:?}")),
        };
        if let Geometry::MultiLineString(v) = &geometry
            && v.is_empty()
        {
            return err("a MultiLineString needs at least one line");
        }
        if let Geometry::MultiPolygon(v) = &geometry
            && v.is_empty()
        {
            return err("a MultiPolygon needs at least one polygon");
        }
        Ok(geometry)
    }

    /// The GeoJSON object.
    pub fn to_geojson(&self) -> Value {
        let coordinates = match self {
            Geometry::Point(p) => json!(p),
            Geometry::MultiPoint(v) | Geometry::LineString(v) => json!(v),
            Geometry::MultiLineString(v) | Geometry::Polygon(v) => json!(v),
            Geometry::MultiPolygon(v) => json!(v),
        };
        json!({ "type": self.type_name(), "coordinates": coordinates })
    }

    /// Every position of the geometry.
    pub fn positions(&self) -> Vec<Position> {
        match self {
            Geometry::Point(p) => vec![*p],
            Geometry::MultiPoint(v) | Geometry::LineString(v) => v.clone(),
            Geometry::MultiLineString(v) | Geometry::Polygon(v) => v.concat(),
            Geometry::MultiPolygon(v) => v.iter().flat_map(|p| p.concat()).collect(),
        }
    }

    /// The bounding box `(min_lon, min_lat, max_lon, max_lat)`.
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        let mut b = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for [x, y] in self.positions() {
            b.0 = b.0.min(x);
            b.1 = b.1.min(y);
            b.2 = b.2.max(x);
            b.3 = b.3.max(y);
        }
        b
    }

    /// The same geometry as the `geo` crate models it, for spatial predicates.
    pub fn to_geo(&self) -> geo::Geometry<f64> {
        use geo::{Coord, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
        fn line(v: &[Position]) -> LineString<f64> {
            LineString(v.iter().map(|[x, y]| Coord { x: *x, y: *y }).collect())
        }
        fn poly(rings: &[Vec<Position>]) -> Polygon<f64> {
            let mut it = rings.iter();
            let exterior = it
                .next()
                .map(|r| line(r))
                .unwrap_or_else(|| LineString(vec![]));
            Polygon::new(exterior, it.map(|r| line(r)).collect())
        }
        match self {
            Geometry::Point([x, y]) => Point::new(*x, *y).into(),
            Geometry::MultiPoint(v) => {
                MultiPoint(v.iter().map(|[x, y]| Point::new(*x, *y)).collect()).into()
            }
            Geometry::LineString(v) => line(v).into(),
            Geometry::MultiLineString(v) => {
                MultiLineString(v.iter().map(|l| line(l)).collect()).into()
            }
            Geometry::Polygon(rings) => poly(rings).into(),
            Geometry::MultiPolygon(v) => MultiPolygon(v.iter().map(|p| poly(p)).collect()).into(),
        }
    }
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>, GeometryError> {
    value
        .as_array()
        .ok_or_else(|| GeometryError(format!("{what} coordinates must be an array")))
}

fn position(value: &Value) -> Result<Position, GeometryError> {
    let Some(items) = value.as_array() else {
        return err("a position must be an array [longitude, latitude]");
    };
    if !(2..=3).contains(&items.len()) {
        return err("a position has two or three numbers");
    }
    let mut numbers = [0.0; 3];
    for (slot, item) in numbers.iter_mut().zip(items) {
        *slot = item
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| GeometryError("a position holds numbers only".into()))?;
    }
    let [lon, lat, _] = numbers;
    if !(-180.0..=180.0).contains(&lon) {
        return err(format!("longitude {lon} is outside -180..180"));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return err(format!("latitude {lat} is outside -90..90"));
    }
    Ok([lon, lat])
}

fn positions(value: &Value, min: usize) -> Result<Vec<Position>, GeometryError> {
    let items = array(value, "line")?;
    if items.len() < min {
        return err(format!(
            "expected at least {min} positions, got {}",
            items.len()
        ));
    }
    items.iter().map(position).collect()
}

fn polygon(value: &Value) -> Result<Vec<Vec<Position>>, GeometryError> {
    let rings = array(value, "Polygon")?;
    if rings.is_empty() {
        return err("a Polygon needs at least one ring");
    }
    rings
        .iter()
        .map(|ring| {
            let ring = positions(ring, 4)?;
            if ring.first() != ring.last() {
                return err("a polygon ring must be closed (first position equal to the last)");
            }
            Ok(ring)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(input: Value, ok: bool) {
        assert_eq!(Geometry::from_geojson(&input).is_ok(), ok, "{input}");
    }

    #[test]
    fn validates_geometries() {
        check(json!({"type": "Point", "coordinates": [107.1, 16.8]}), true);
        check(
            json!({"type": "Point", "coordinates": [107.1, 16.8, 12.0]}),
            true,
        );
        check(json!({"type": "Point", "coordinates": [181, 16.8]}), false);
        check(json!({"type": "Point", "coordinates": [107.1, 91]}), false);
        check(json!({"type": "Point", "coordinates": ["a", 1]}), false);
        check(
            json!({"type": "LineString", "coordinates": [[1, 1]]}),
            false,
        );
        check(
            json!({"type": "LineString", "coordinates": [[1, 1], [2, 2]]}),
            true,
        );
        check(
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
            true,
        );
        check(
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            false,
        );
        check(json!({"type": "MultiPolygon", "coordinates": []}), false);
        check(json!({"type": "Circle", "coordinates": [0, 0]}), false);
        check(json!([1, 2]), false);
    }

    #[test]
    fn round_trips_through_geojson() {
        let g = json!({"type": "MultiPolygon", "coordinates": [[[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]]});
        assert_eq!(Geometry::from_geojson(&g).unwrap().to_geojson(), g);
    }
}
