//! Plane geometry on WGS84 positions: containment, distance to a boundary, and finding
//! a position inside a unit near a wanted one.
//!
//! Distances use a local equirectangular approximation. Over the few kilometres these
//! functions work on, at 16–18° N, its error is far below a metre per kilometre, which
//! is plenty for placing demo points and simplifying boundaries for display.

use std::f64::consts::TAU;

pub use ngsi::geometry::Position;

use crate::rng::Rng;

pub type Ring = Vec<Position>;
pub type Polygon = Vec<Ring>;
pub type MultiPolygon = Vec<Polygon>;

const M_PER_DEG_LAT: f64 = 110_574.0;
const M_PER_DEG_LON_AT_EQUATOR: f64 = 111_320.0;

/// Metres per degree of longitude at a latitude.
pub fn m_per_deg_lon(lat: f64) -> f64 {
    M_PER_DEG_LON_AT_EQUATOR * lat.to_radians().cos()
}

/// Distance in metres between two nearby positions.
pub fn distance_m(a: Position, b: Position) -> f64 {
    let lat = (a[1] + b[1]) / 2.0;
    ((a[0] - b[0]) * m_per_deg_lon(lat)).hypot((a[1] - b[1]) * M_PER_DEG_LAT)
}

/// The position `d` metres from `p` towards `bearing` (radians clockwise from north).
pub fn offset(p: Position, d: f64, bearing: f64) -> Position {
    [
        p[0] + d * bearing.sin() / m_per_deg_lon(p[1]),
        p[1] + d * bearing.cos() / M_PER_DEG_LAT,
    ]
}

/// A position rounded to six decimals (about 0.1 m), as the source data is.
pub fn round6(p: Position) -> Position {
    [(p[0] * 1e6).round() / 1e6, (p[1] * 1e6).round() / 1e6]
}

/// Area of a polygon (exterior minus holes) in square kilometres.
pub fn area_km2(polygon: &Polygon) -> f64 {
    let ring_area = |r: &Ring| -> f64 {
        let Some(first) = r.first() else { return 0.0 };
        let kx = m_per_deg_lon(first[1]);
        let mut twice = 0.0;
        for w in r.windows(2) {
            let (a, b) = (w[0], w[1]);
            twice += ((a[0] - first[0]) * kx) * ((b[1] - first[1]) * M_PER_DEG_LAT)
                - ((b[0] - first[0]) * kx) * ((a[1] - first[1]) * M_PER_DEG_LAT);
        }
        (twice / 2.0).abs() / 1e6
    };
    let mut rings = polygon.iter();
    let outer = rings.next().map(ring_area).unwrap_or(0.0);
    outer - rings.map(ring_area).sum::<f64>()
}

/// A unit's area, ready for containment and distance tests.
#[derive(Debug, Clone)]
pub struct Shape {
    polygons: MultiPolygon,
    /// (min_lon, min_lat, max_lon, max_lat)
    bbox: [f64; 4],
}

impl Shape {
    pub fn new(polygons: MultiPolygon) -> Shape {
        let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for p in polygons.iter().flatten().flatten() {
            bbox = [
                bbox[0].min(p[0]),
                bbox[1].min(p[1]),
                bbox[2].max(p[0]),
                bbox[3].max(p[1]),
            ];
        }
        Shape { polygons, bbox }
    }

    pub fn polygons(&self) -> &MultiPolygon {
        &self.polygons
    }

    pub fn bbox(&self) -> [f64; 4] {
        self.bbox
    }

    /// Area in square kilometres.
    pub fn area_km2(&self) -> f64 {
        self.polygons.iter().map(area_km2).sum()
    }

    /// Whether `p` is inside (even-odd rule: in an exterior ring, in no hole).
    pub fn contains(&self, p: Position) -> bool {
        let [x0, y0, x1, y1] = self.bbox;
        if p[0] < x0 || p[0] > x1 || p[1] < y0 || p[1] > y1 {
            return false;
        }
        self.polygons.iter().any(|poly| {
            let mut rings = poly.iter();
            rings.next().is_some_and(|outer| in_ring(p, outer)) && !rings.any(|h| in_ring(p, h))
        })
    }

    /// Whether some boundary segment is closer to `p` than `margin_m` metres.
    pub fn near_boundary(&self, p: Position, margin_m: f64) -> bool {
        let kx = m_per_deg_lon(p[1]);
        let ky = M_PER_DEG_LAT;
        let (dx, dy) = (margin_m / kx, margin_m / ky);
        for ring in self.polygons.iter().flatten() {
            for w in ring.windows(2) {
                let (a, b) = (w[0], w[1]);
                // Segments whose box is farther than the margin cannot be closer.
                if a[0].max(b[0]) < p[0] - dx
                    || a[0].min(b[0]) > p[0] + dx
                    || a[1].max(b[1]) < p[1] - dy
                    || a[1].min(b[1]) > p[1] + dy
                {
                    continue;
                }
                let a = ((a[0] - p[0]) * kx, (a[1] - p[1]) * ky);
                let b = ((b[0] - p[0]) * kx, (b[1] - p[1]) * ky);
                if segment_origin_distance(a, b) < margin_m {
                    return true;
                }
            }
        }
        false
    }

    /// Inside, and at least `margin_m` metres from the boundary.
    pub fn holds(&self, p: Position, margin_m: f64) -> bool {
        self.contains(p) && !self.near_boundary(p, margin_m)
    }

    /// The position nearest `wanted` (searched on rings of growing radius, up to
    /// 15 km) that the shape holds with `margin_m`, rounded to six decimals.
    pub fn place(&self, wanted: Position, margin_m: f64) -> Option<Position> {
        let wanted = round6(wanted);
        if self.holds(wanted, margin_m) {
            return Some(wanted);
        }
        let mut r = 25.0;
        while r <= 15_000.0 {
            // About one try every 25 m of circumference, at most 128 per ring.
            let n = ((TAU * r / 25.0).ceil() as usize).clamp(8, 128);
            for i in 0..n {
                let c = round6(offset(wanted, r, TAU * i as f64 / n as f64));
                if self.holds(c, margin_m) {
                    return Some(c);
                }
            }
            r += (r * 0.1).max(25.0);
        }
        None
    }

    /// A position drawn uniformly from the shape, `margin_m` from its boundary.
    pub fn sample(&self, rng: &mut Rng, margin_m: f64) -> Option<Position> {
        let [x0, y0, x1, y1] = self.bbox;
        (0..20_000).find_map(|_| {
            let p = round6([rng.range(x0, x1), rng.range(y0, y1)]);
            self.holds(p, margin_m).then_some(p)
        })
    }

    /// A position drawn around `centre` (normal spread `spread_m`), inside the shape.
    pub fn sample_near(
        &self,
        rng: &mut Rng,
        centre: Position,
        spread_m: f64,
        margin_m: f64,
    ) -> Option<Position> {
        (0..2_000).find_map(|_| {
            let d = rng.normal().abs() * spread_m;
            let p = round6(offset(centre, d, rng.range(0.0, TAU)));
            self.holds(p, margin_m).then_some(p)
        })
    }
}

/// Ray casting: whether `p` is inside a closed ring.
fn in_ring(p: Position, ring: &Ring) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// Distance from the origin to the segment a–b (plane coordinates).
fn segment_origin_distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
    };
    (a.0 + t * dx).hypot(a.1 + t * dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Shape {
        // About 2.1 km × 2.2 km, with a hole in the middle.
        Shape::new(vec![vec![
            vec![
                [107.0, 16.8],
                [107.02, 16.8],
                [107.02, 16.82],
                [107.0, 16.82],
                [107.0, 16.8],
            ],
            vec![
                [107.009, 16.809],
                [107.011, 16.809],
                [107.011, 16.811],
                [107.009, 16.811],
                [107.009, 16.809],
            ],
        ]])
    }

    #[test]
    fn contains_and_margins() {
        let s = square();
        assert!(s.contains([107.005, 16.805]));
        assert!(!s.contains([107.01, 16.81]), "in the hole");
        assert!(!s.contains([107.03, 16.81]));
        // 0.0005° of longitude is about 53 m here.
        assert!(s.holds([107.0005, 16.81], 40.0));
        assert!(!s.holds([107.0005, 16.81], 60.0));
        let area = s.area_km2();
        assert!((4.5..4.8).contains(&area), "{area}");
    }

    #[test]
    fn places_outside_points_just_inside() {
        let s = square();
        let p = s.place([106.995, 16.81], 30.0).expect("placed");
        assert!(s.holds(p, 30.0));
        // The nearest valid position is about 530 m + 30 m away.
        let d = distance_m(p, [106.995, 16.81]);
        assert!((500.0..700.0).contains(&d), "{d}");
        assert_eq!(s.place([107.005, 16.805], 30.0), Some([107.005, 16.805]));
        assert_eq!(s.place([110.0, 16.8], 30.0), None);
    }

    #[test]
    fn samples_stay_inside() {
        let s = square();
        let mut rng = Rng::new("t");
        for _ in 0..100 {
            let p = s.sample(&mut rng, 50.0).expect("sample");
            assert!(s.holds(p, 50.0));
        }
    }
}
