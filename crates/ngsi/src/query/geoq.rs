//! Geo-queries (clause 4.10): the `georel`, `geometry`, `coordinates` and
//! `geoproperty` parameters, parsed together into a [`GeoQuery`] and printed back.

use serde_json::Value;

use super::ast::{GeoQuery, GeoRel};
use super::error::{ParseError, check_len};
use super::syntax::{check_name, is_number_shape};
use crate::geometry::Geometry;

/// The GeoProperty a geo-query applies to when the request names none.
pub const DEFAULT_GEOPROPERTY: &str = "location";

/// Parses the parameters of a geo-query, e.g. `near;maxDistance==2000`, `Point`,
/// `[107.1,16.8]`.
///
/// The four texts come from separate parameters, so an error's message starts with
/// the name of the parameter at fault (`georel: ...`) and its offset is into that one.
pub fn parse_geoq(
    georel: &str,
    geometry: &str,
    coordinates: &str,
    geoproperty: Option<&str>,
) -> Result<GeoQuery, ParseError> {
    let georel = parse_georel(georel).map_err(|e| prefixed("georel", e))?;
    let geometry = parse_geometry(geometry, coordinates)?;
    let geoproperty = match geoproperty {
        None => DEFAULT_GEOPROPERTY.to_string(),
        Some(name) => {
            check_len(name)
                .and_then(|()| check_name(name, 0, "a GeoProperty name"))
                .map_err(|e| prefixed("geoproperty", e))?;
            name.to_string()
        }
    };
    Ok(GeoQuery {
        georel,
        geometry,
        geoproperty,
    })
}

fn prefixed(parameter: &str, e: ParseError) -> ParseError {
    ParseError::new(e.offset, format!("{parameter}: {}", e.message))
}

impl GeoRel {
    /// The relationship's name as written in `georel`.
    pub fn name(&self) -> &'static str {
        match self {
            GeoRel::Near { .. } => "near",
            GeoRel::Within => "within",
            GeoRel::Contains => "contains",
            GeoRel::Intersects => "intersects",
            GeoRel::Disjoint => "disjoint",
            GeoRel::Equals => "equals",
            GeoRel::Overlaps => "overlaps",
        }
    }
}

impl GeoQuery {
    /// The `georel` parameter, e.g. `near;maxDistance==2000;minDistance==10`.
    /// A `Near` with neither distance (which the parser never builds) prints as
    /// `near`, which does not parse back.
    pub fn georel_text(&self) -> String {
        let mut text = self.georel.name().to_string();
        if let GeoRel::Near {
            max_distance,
            min_distance,
        } = self.georel
        {
            if let Some(d) = max_distance {
                text.push_str(&format!(";maxDistance=={d}"));
            }
            if let Some(d) = min_distance {
                text.push_str(&format!(";minDistance=={d}"));
            }
        }
        text
    }

    /// The `geometry` parameter: the GeoJSON type name.
    pub fn geometry_text(&self) -> &'static str {
        self.geometry.type_name()
    }

    /// The `coordinates` parameter: the geometry's coordinates as a JSON array.
    pub fn coordinates_text(&self) -> String {
        self.geometry
            .to_geojson()
            .get("coordinates")
            .map(Value::to_string)
            .unwrap_or_default()
    }
}

const RELATIONS: [(&str, GeoRel); 6] = [
    ("within", GeoRel::Within),
    ("contains", GeoRel::Contains),
    ("intersects", GeoRel::Intersects),
    ("disjoint", GeoRel::Disjoint),
    ("equals", GeoRel::Equals),
    ("overlaps", GeoRel::Overlaps),
];

/// `relation(;modifier)*`, where only `near` takes (and needs) modifiers.
fn parse_georel(text: &str) -> Result<GeoRel, ParseError> {
    check_len(text)?;
    // Each part with its byte offset, surrounding whitespace trimmed.
    let mut parts = Vec::new();
    let mut offset = 0;
    for raw in text.split(';') {
        let lead = raw.len() - raw.trim_start().len();
        parts.push((offset + lead, raw.trim()));
        offset += raw.len() + 1;
    }
    let mut parts = parts.into_iter();
    let (name_at, name) = parts.next().unwrap_or((0, ""));
    if name.is_empty() {
        return Err(ParseError::new(name_at, "expected a geo-relationship"));
    }
    let mut max_distance = None;
    let mut min_distance = None;
    let mut first_modifier = None;
    for (at, part) in parts {
        first_modifier.get_or_insert(at);
        let Some((key, value)) = part.split_once("==") else {
            return Err(ParseError::new(
                at,
                "expected maxDistance==<metres> or minDistance==<metres>",
            ));
        };
        let slot = match key.trim_end() {
            "maxDistance" => &mut max_distance,
            "minDistance" => &mut min_distance,
            other => return Err(ParseError::new(at, format!("unknown modifier {other:?}"))),
        };
        if slot.is_some() {
            return Err(ParseError::new(
                at,
                format!("{} given twice", key.trim_end()),
            ));
        }
        let value_at = at + key.len() + 2 + (value.len() - value.trim_start().len());
        let value = value.trim();
        let distance = if is_number_shape(value) {
            value.parse::<f64>().ok()
        } else {
            None
        };
        match distance {
            Some(d) if d.is_finite() && d >= 0.0 => *slot = Some(d),
            _ => {
                return Err(ParseError::new(
                    value_at,
                    format!("a distance is a finite number of metres >= 0, not {value:?}"),
                ));
            }
        }
    }
    if name == "near" {
        if max_distance.is_none() && min_distance.is_none() {
            return Err(ParseError::new(
                text.len(),
                "near needs maxDistance or minDistance",
            ));
        }
        if let (Some(max), Some(min)) = (max_distance, min_distance)
            && min > max
        {
            return Err(ParseError::new(
                name_at,
                "minDistance is greater than maxDistance",
            ));
        }
        return Ok(GeoRel::Near {
            max_distance,
            min_distance,
        });
    }
    let Some((_, rel)) = RELATIONS.iter().find(|(n, _)| *n == name) else {
        return Err(ParseError::new(
            name_at,
            format!(
                "unknown geo-relationship {name:?}; expected near, within, contains, intersects, disjoint, equals or overlaps"
            ),
        ));
    };
    if let Some(at) = first_modifier {
        return Err(ParseError::new(
            at,
            format!("{name} takes no distance; only near does"),
        ));
    }
    Ok(*rel)
}

const GEOMETRY_TYPES: [&str; 6] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
];

fn parse_geometry(kind: &str, coordinates: &str) -> Result<Geometry, ParseError> {
    let kind_trimmed = kind.trim();
    if !GEOMETRY_TYPES.contains(&kind_trimmed) {
        let at = kind.len() - kind.trim_start().len();
        return Err(ParseError::new(
            at,
            format!(
                "geometry: unsupported geometry type {kind_trimmed:?}; expected one of {}",
                GEOMETRY_TYPES.join(", ")
            ),
        ));
    }
    check_len(coordinates).map_err(|e| prefixed("coordinates", e))?;
    let value: Value = serde_json::from_str(coordinates).map_err(|e| {
        let at = if e.is_eof() {
            coordinates.len()
        } else {
            json_offset(coordinates, e.line(), e.column())
        };
        ParseError::new(at, format!("coordinates: invalid JSON: {e}"))
    })?;
    Geometry::from_parts(kind_trimmed, &value)
        .map_err(|e| ParseError::new(0, format!("coordinates: {e}")))
}

/// serde_json reports 1-based lines and columns; turn them into a byte offset.
fn json_offset(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn near(max: Option<f64>, min: Option<f64>) -> GeoRel {
        GeoRel::Near {
            max_distance: max,
            min_distance: min,
        }
    }

    fn point(lon: f64, lat: f64) -> Geometry {
        Geometry::Point([lon, lat])
    }

    /// Parses the four parameters and compares with the expected query, or with the
    /// expected error offset and a fragment of its message. A parsed query must also
    /// print back into parameters that parse to the same query.
    fn check(
        params: (&str, &str, &str, Option<&str>),
        expected: Result<(GeoRel, Geometry, &str), (usize, &str)>,
    ) {
        let (georel, geometry, coordinates, geoproperty) = params;
        let got = parse_geoq(georel, geometry, coordinates, geoproperty);
        match (&got, expected) {
            (Ok(q), Ok((rel, geom, prop))) => {
                let want = GeoQuery {
                    georel: rel,
                    geometry: geom,
                    geoproperty: prop.to_string(),
                };
                assert_eq!(q, &want, "{params:?}");
                let again = parse_geoq(
                    &q.georel_text(),
                    q.geometry_text(),
                    &q.coordinates_text(),
                    Some(&q.geoproperty),
                );
                assert_eq!(again.as_ref(), Ok(q), "{params:?}");
            }
            (Err(e), Err((offset, fragment))) => {
                assert!(
                    e.message.contains(fragment),
                    "{params:?}: {e} lacks {fragment:?}"
                );
                assert_eq!(e.offset, offset, "{params:?}: {e}");
            }
            _ => panic!("{params:?}: got {got:?}"),
        }
    }

    const SQUARE: &str = "[[[0,0],[1,0],[1,1],[0,1],[0,0]]]";

    fn square() -> Geometry {
        Geometry::Polygon(vec![vec![
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0],
            [0.0, 0.0],
        ]])
    }

    #[test]
    fn parses_geo_queries() {
        let p = point(107.1, 16.8);
        check(
            ("near;maxDistance==2000", "Point", "[107.1,16.8]", None),
            Ok((near(Some(2000.0), None), p.clone(), "location")),
        );
        check(
            ("near;minDistance==10", "Point", "[107.1,16.8]", None),
            Ok((near(None, Some(10.0)), p.clone(), "location")),
        );
        check(
            (
                "near;maxDistance==2000;minDistance==10.5",
                "Point",
                "[107.1, 16.8]",
                None,
            ),
            Ok((near(Some(2000.0), Some(10.5)), p.clone(), "location")),
        );
        check(
            (
                "near; minDistance == 0 ;maxDistance==1e3",
                "Point",
                " [107.1,16.8,5] ",
                Some("position"),
            ),
            Ok((near(Some(1000.0), Some(0.0)), p.clone(), "position")),
        );
        check(
            ("within", "Polygon", SQUARE, None),
            Ok((GeoRel::Within, square(), "location")),
        );
        check(
            ("contains", "Point", "[0.5,0.5]", None),
            Ok((GeoRel::Contains, point(0.5, 0.5), "location")),
        );
        check(
            ("intersects", "LineString", "[[0,0],[1,1]]", None),
            Ok((
                GeoRel::Intersects,
                Geometry::LineString(vec![[0.0, 0.0], [1.0, 1.0]]),
                "location",
            )),
        );
        check(
            ("disjoint", "MultiPoint", "[[0,0]]", None),
            Ok((
                GeoRel::Disjoint,
                Geometry::MultiPoint(vec![[0.0, 0.0]]),
                "location",
            )),
        );
        check(
            ("equals", "Point", "[0,0]", Some("https://ex.org/where")),
            Ok((GeoRel::Equals, point(0.0, 0.0), "https://ex.org/where")),
        );
        check(
            ("overlaps", "MultiPolygon", &format!("[{SQUARE}]"), None),
            Ok((
                GeoRel::Overlaps,
                Geometry::MultiPolygon(vec![vec![vec![
                    [0.0, 0.0],
                    [1.0, 0.0],
                    [1.0, 1.0],
                    [0.0, 1.0],
                    [0.0, 0.0],
                ]]]),
                "location",
            )),
        );
    }

    #[test]
    fn refuses_bad_geo_queries() {
        let pt = "[1,2]";
        check(
            ("", "Point", pt, None),
            Err((0, "georel: expected a geo-relationship")),
        );
        check(
            ("near", "Point", pt, None),
            Err((4, "near needs maxDistance")),
        );
        check(
            ("near;", "Point", pt, None),
            Err((5, "expected maxDistance==")),
        );
        check(
            ("near;maxDistance:2000", "Point", pt, None),
            Err((5, "expected maxDistance==")),
        );
        check(
            ("near;maxDistance=2000", "Point", pt, None),
            Err((5, "expected maxDistance==")),
        );
        check(
            ("near;distance==5", "Point", pt, None),
            Err((5, "unknown modifier")),
        );
        check(
            ("near;maxDistance==-1", "Point", pt, None),
            Err((18, "finite number")),
        );
        check(
            ("near;maxDistance==abc", "Point", pt, None),
            Err((18, "finite number")),
        );
        check(
            ("near;maxDistance==1e999", "Point", pt, None),
            Err((18, "finite number")),
        );
        check(
            ("near;maxDistance==inf", "Point", pt, None),
            Err((18, "finite number")),
        );
        check(
            ("near;maxDistance==", "Point", pt, None),
            Err((18, "finite number")),
        );
        check(
            ("near;maxDistance==1;maxDistance==2", "Point", pt, None),
            Err((20, "given twice")),
        );
        check(
            ("near;maxDistance==1;minDistance==2", "Point", pt, None),
            Err((0, "greater than")),
        );
        check(
            ("within;maxDistance==1", "Point", pt, None),
            Err((7, "takes no distance")),
        );
        check(
            ("Within", "Point", pt, None),
            Err((0, "unknown geo-relationship")),
        );
        check(
            ("covers", "Point", pt, None),
            Err((0, "unknown geo-relationship")),
        );
        check(
            ("within", "Circle", pt, None),
            Err((0, "geometry: unsupported")),
        );
        check(("within", "", pt, None), Err((0, "geometry: unsupported")));
        check(
            ("within", "Point", "", None),
            Err((0, "coordinates: invalid JSON")),
        );
        check(
            ("within", "Point", "[1,2", None),
            Err((4, "coordinates: invalid JSON")),
        );
        check(
            ("within", "Point", "[1,\n 2,]", None),
            Err((7, "coordinates: invalid JSON")),
        );
        check(
            ("within", "Point", "[181,0]", None),
            Err((0, "coordinates: invalid geometry")),
        );
        check(
            ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", None),
            Err((0, "closed")),
        );
        check(
            ("within", "Point", "{\"a\":1}", None),
            Err((0, "coordinates:")),
        );
        check(
            ("within", "Point", pt, Some("")),
            Err((0, "geoproperty: expected")),
        );
        check(
            ("within", "Point", pt, Some("loc ation")),
            Err((3, "geoproperty: invalid char")),
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse_geoq("within", "Polygon", &deep, None).unwrap_err();
        assert!(e.message.starts_with("coordinates:"), "{e}");
        let huge = format!("[{}]", "1,".repeat(40_000));
        assert!(
            parse_geoq("within", "Point", &huge, None)
                .unwrap_err()
                .message
                .contains("longer than")
        );
    }

    #[test]
    fn prints_parameters() {
        let q = parse_geoq(
            "near;minDistance==10;maxDistance==2000.5",
            "Point",
            "[107.1, 16.8]",
            None,
        )
        .unwrap();
        assert_eq!(q.georel_text(), "near;maxDistance==2000.5;minDistance==10");
        assert_eq!(q.geometry_text(), "Point");
        assert_eq!(q.coordinates_text(), "[107.1,16.8]");
        let q = parse_geoq("within", "Polygon", SQUARE, None).unwrap();
        assert_eq!(q.georel_text(), "within");
        assert_eq!(
            q.coordinates_text(),
            "[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,1.0],[0.0,0.0]]]"
        );
    }

    /// Micro-degree coordinates (GPS precision), which JSON carries exactly.
    fn coordinate(limit: i64) -> impl Strategy<Value = f64> {
        (-limit * 1_000_000..=limit * 1_000_000).prop_map(|n| n as f64 / 1e6)
    }

    fn geo_query() -> impl Strategy<Value = GeoQuery> {
        let distance = || {
            prop::option::of(prop_oneof![
                (0.0f64..1e7),
                (0u32..100_000).prop_map(f64::from)
            ])
        };
        let rel = prop_oneof![
            (distance(), distance())
                .prop_filter("some distance", |(a, b)| a.is_some() || b.is_some())
                .prop_map(|(a, b)| match (a, b) {
                    (Some(x), Some(y)) => near(Some(x.max(y)), Some(x.min(y))),
                    (max, min) => near(max, min),
                }),
            prop::sample::select(RELATIONS.iter().map(|(_, r)| *r).collect::<Vec<_>>()),
        ];
        let geometry = prop_oneof![
            (coordinate(180), coordinate(90)).prop_map(|(x, y)| point(x, y)),
            prop::collection::vec(
                (coordinate(180), coordinate(90)).prop_map(|(x, y)| [x, y]),
                2..6
            )
            .prop_map(Geometry::LineString),
            (-179_000_000i64..179_000_000, -89_000_000i64..89_000_000).prop_map(|(x, y)| {
                let [x0, y0, x1, y1] = [x, y, x + 1_000_000, y + 1_000_000].map(|n| n as f64 / 1e6);
                Geometry::Polygon(vec![vec![[x0, y0], [x1, y0], [x1, y1], [x0, y0]]])
            }),
        ];
        let prop_name = prop_oneof!["[a-zA-Z][a-zA-Z0-9_]{0,10}", "https://ex\\.org/[a-z]{1,8}"];
        (rel, geometry, prop_name).prop_map(|(georel, geometry, geoproperty)| GeoQuery {
            georel,
            geometry,
            geoproperty,
        })
    }

    proptest! {
        #[test]
        fn never_panics(a in any::<String>(), b in any::<String>(), c in any::<String>(), d in any::<Option<String>>()) {
            let _ = parse_geoq(&a, &b, &c, d.as_deref());
        }

        #[test]
        fn never_panics_on_near_misses(
            a in "(near|within)?[;=a-zA-Z0-9.-]{0,30}",
            c in "[\\[\\]0-9,.e -]{0,40}",
        ) {
            let _ = parse_geoq(&a, "Polygon", &c, None);
            let _ = parse_geoq(&a, "Point", &c, None);
        }

        #[test]
        fn print_then_parse_round_trips(q in geo_query()) {
            let again = parse_geoq(&q.georel_text(), q.geometry_text(), &q.coordinates_text(), Some(&q.geoproperty));
            prop_assert_eq!(again.as_ref(), Ok(&q));
            let again = again.unwrap();
            prop_assert_eq!(again.georel_text(), q.georel_text());
            prop_assert_eq!(again.coordinates_text(), q.coordinates_text());
        }
    }
}
