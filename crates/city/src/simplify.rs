//! Boundaries simplified for display, keeping the map's topology.
//!
//! In the source data, neighbouring units share their common border vertex for vertex.
//! The borders are cut at *junctions* (vertices where more than two units meet, or
//! where a shared border ends) into *arcs*; each arc is simplified once with
//! Douglas–Peucker and used by every unit it bounds, so simplified neighbours still
//! meet exactly, without gaps or slivers. When a simplified arc would cross or touch
//! another, or a ring would fall below four positions, the arcs at fault are simplified
//! again with half the tolerance, until the whole map is valid.
//!
//! Coordinates are handled as integers in millionths of a degree: the source has six
//! decimals, so this is exact, and the crossing tests are exact too.

use std::collections::{BTreeSet, HashMap};

use crate::geom::{MultiPolygon, Position, m_per_deg_lon};

/// A position in millionths of a degree.
type Pt = (i64, i64);

/// Rounds of halving before giving up (50 m / 2^30 is far below the data's precision).
const MAX_ROUNDS: usize = 30;

/// Grid cell for the crossing test, in millionths of a degree (about 1 km).
const CELL: i64 = 10_000;

/// Metres per millionth of a degree, at the province's middle latitude (17.2° N).
fn scale() -> (f64, f64) {
    (m_per_deg_lon(17.2) * 1e-6, 110_574.0 * 1e-6)
}

#[derive(Debug, thiserror::Error)]
pub enum SimplifyError {
    #[error("unit {unit}: a ring has fewer than three distinct positions")]
    Degenerate { unit: usize },
    #[error("the source boundaries of units {units:?} cross or touch each other: {detail}")]
    InvalidSource { units: Vec<usize>, detail: String },
}

fn to_pt(p: Position) -> Pt {
    ((p[0] * 1e6).round() as i64, (p[1] * 1e6).round() as i64)
}

fn to_position(p: Pt) -> Position {
    [p.0 as f64 / 1e6, p.1 as f64 / 1e6]
}

struct Arc {
    /// The arc in canonical direction; first and last are junctions (equal for a
    /// closed ring without junctions).
    points: Vec<Pt>,
    tolerance: f64,
    kept: Vec<Pt>,
    /// Units it bounds (indexes into the input).
    units: BTreeSet<usize>,
}

/// A ring as a sequence of arcs, each maybe walked backwards.
type ArcRing = Vec<(usize, bool)>;

/// The simplified boundaries, and where the source's own borders overlap.
#[derive(Debug, Clone)]
pub struct Simplified {
    /// The units, in the order given.
    pub units: Vec<MultiPolygon>,
    /// Pairs of units (indexes, smaller first) whose source borders cross or overlap
    /// each other, with a position where they do. Each unit on its own is valid.
    pub source_overlaps: Vec<(usize, usize, Position)>,
}

/// Simplifies every unit's boundary with `tolerance_m` (metres), keeping shared borders
/// shared.
pub fn simplify(units: &[MultiPolygon], tolerance_m: f64) -> Result<Simplified, SimplifyError> {
    // Rings as open integer sequences, consecutive duplicates removed.
    let mut rings: Vec<Vec<Vec<Vec<Pt>>>> = Vec::with_capacity(units.len());
    for (u, mp) in units.iter().enumerate() {
        let mut polys = Vec::with_capacity(mp.len());
        for poly in mp {
            let mut out = Vec::with_capacity(poly.len());
            for ring in poly {
                let mut r: Vec<Pt> = Vec::with_capacity(ring.len());
                for p in ring {
                    let p = to_pt(*p);
                    if r.last() != Some(&p) {
                        r.push(p);
                    }
                }
                while r.len() > 1 && r.first() == r.last() {
                    r.pop();
                }
                if r.len() < 3 {
                    return Err(SimplifyError::Degenerate { unit: u });
                }
                out.push(r);
            }
            polys.push(out);
        }
        rings.push(polys);
    }

    // A vertex is a junction when its neighbours differ between the rings through it.
    let mut neighbours: HashMap<Pt, Vec<Pt>> = HashMap::new();
    for r in rings.iter().flatten().flatten() {
        let n = r.len();
        for i in 0..n {
            let entry = neighbours.entry(r[i]).or_default();
            for q in [r[(i + n - 1) % n], r[(i + 1) % n]] {
                if !entry.contains(&q) {
                    entry.push(q);
                }
            }
        }
    }
    let is_junction = |p: &Pt| neighbours.get(p).is_some_and(|v| v.len() > 2);

    let mut arcs: Vec<Arc> = Vec::new();
    let mut index: HashMap<Vec<Pt>, usize> = HashMap::new();
    let mut topology: Vec<Vec<Vec<ArcRing>>> = Vec::with_capacity(rings.len());
    for (u, polys) in rings.iter().enumerate() {
        let mut tp = Vec::with_capacity(polys.len());
        for poly in polys {
            let mut tr = Vec::with_capacity(poly.len());
            for r in poly {
                let mut arc_ring = ArcRing::new();
                let (pieces, has_junction) = split_ring(r, &is_junction);
                for piece in pieces {
                    let (canonical, reversed) = canonical(piece, !has_junction);
                    let id = *index.entry(canonical.clone()).or_insert_with(|| {
                        arcs.push(Arc {
                            points: canonical,
                            tolerance: tolerance_m,
                            kept: Vec::new(),
                            units: BTreeSet::new(),
                        });
                        arcs.len() - 1
                    });
                    arcs[id].units.insert(u);
                    arc_ring.push((id, reversed));
                }
                tr.push(arc_ring);
            }
            tp.push(tr);
        }
        topology.push(tp);
    }

    // Crossings already in the source between arcs of different units (sub-metre
    // digitising noise where borders meet) are the source's, not the simplification's:
    // they are reported, and only crossings that simplifying adds are repaired.
    let originals: Vec<&[Pt]> = arcs.iter().map(|a| a.points.as_slice()).collect();
    let mut source_overlaps = Vec::new();
    let mut exempt: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (a, b, p) in conflicts(&originals) {
        if arcs[a].units.is_disjoint(&arcs[b].units) {
            exempt.insert((a, b));
            for &ua in &arcs[a].units {
                for &ub in &arcs[b].units {
                    source_overlaps.push((ua.min(ub), ua.max(ub), to_position(p)));
                }
            }
        }
    }
    source_overlaps.sort_by_key(|x| (x.0, x.1));
    source_overlaps.dedup_by(|x, y| (x.0, x.1) == (y.0, y.1));

    let mut stale: BTreeSet<usize> = (0..arcs.len()).collect();
    for _ in 0..MAX_ROUNDS {
        for &a in &stale {
            let arc = &mut arcs[a];
            arc.kept = douglas_peucker(&arc.points, arc.tolerance);
        }
        let mut bad: BTreeSet<usize> = BTreeSet::new();
        for ring in topology.iter().flatten().flatten() {
            if assemble(ring, &arcs).len() < 4 {
                bad.extend(ring.iter().map(|(a, _)| *a));
            }
        }
        let lines: Vec<&[Pt]> = arcs.iter().map(|a| a.kept.as_slice()).collect();
        for (a, b, _) in conflicts(&lines) {
            if !exempt.contains(&(a, b)) {
                bad.insert(a);
                bad.insert(b);
            }
        }
        if bad.is_empty() {
            let units = topology
                .iter()
                .map(|polys| {
                    polys
                        .iter()
                        .map(|poly| {
                            poly.iter()
                                .map(|ring| {
                                    assemble(ring, &arcs).into_iter().map(to_position).collect()
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect();
            return Ok(Simplified {
                units,
                source_overlaps,
            });
        }
        if let Some(&a) = bad.iter().find(|&&a| arcs[a].tolerance == 0.0) {
            // Already at full detail: the source itself is at fault.
            let units: BTreeSet<usize> = bad.iter().flat_map(|&b| arcs[b].units.clone()).collect();
            let first = arcs[a].points[0];
            return Err(SimplifyError::InvalidSource {
                units: units.into_iter().collect(),
                detail: format!("near {:?}", to_position(first)),
            });
        }
        for &a in &bad {
            let t = arcs[a].tolerance / 2.0;
            // Below a few centimetres the source's own precision is reached.
            arcs[a].tolerance = if t < 0.05 { 0.0 } else { t };
        }
        stale = bad;
    }
    Err(SimplifyError::InvalidSource {
        units: Vec::new(),
        detail: "no valid simplification found".into(),
    })
}

/// Cuts an open ring at its junctions into pieces whose ends are junctions. A ring
/// without junctions is one closed piece; the flag says so.
fn split_ring(r: &[Pt], is_junction: &impl Fn(&Pt) -> bool) -> (Vec<Vec<Pt>>, bool) {
    let n = r.len();
    let Some(start) = (0..n).find(|&i| is_junction(&r[i])) else {
        let mut closed = r.to_vec();
        closed.push(r[0]);
        return (vec![closed], false);
    };
    let mut pieces = Vec::new();
    let mut current = vec![r[start]];
    for k in 1..=n {
        let p = r[(start + k) % n];
        current.push(p);
        if is_junction(&p) {
            pieces.push(std::mem::replace(&mut current, vec![p]));
        }
    }
    (pieces, true)
}

/// The form of a piece that every unit using it agrees on, and whether the piece runs
/// against it. A piece between junctions keeps its ends and runs from the smaller end;
/// a ring without junctions (`free`) may start anywhere, so it starts at its smallest
/// point.
fn canonical(mut piece: Vec<Pt>, free: bool) -> (Vec<Pt>, bool) {
    let n = piece.len();
    if free {
        let open = &piece[..n - 1];
        let m = open.len();
        let min_i = (0..m).min_by_key(|&i| open[i]).unwrap_or(0);
        let forward = open[(min_i + 1) % m] <= open[(min_i + m - 1) % m];
        let out = (0..=m)
            .map(|k| {
                if forward {
                    open[(min_i + k) % m]
                } else {
                    open[(min_i + m - k % m) % m]
                }
            })
            .collect();
        return (out, !forward);
    }
    // Closed pieces (one junction) compare their second and second-last points.
    let forward = if piece[0] == piece[n - 1] {
        piece[1] <= piece[n - 2]
    } else {
        piece[0] <= piece[n - 1]
    };
    if !forward {
        piece.reverse();
    }
    (piece, !forward)
}

/// A ring's positions from its arcs, closed (first == last).
fn assemble(ring: &ArcRing, arcs: &[Arc]) -> Vec<Pt> {
    let mut out: Vec<Pt> = Vec::new();
    for &(a, reversed) in ring {
        let kept = &arcs[a].kept;
        let iter: Box<dyn Iterator<Item = &Pt>> = if reversed {
            Box::new(kept.iter().rev())
        } else {
            Box::new(kept.iter())
        };
        for &p in iter {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    }
    if out.first() != out.last()
        && let Some(&f) = out.first()
    {
        out.push(f);
    }
    out
}

/// Douglas–Peucker with both ends kept; distances in metres.
fn douglas_peucker(points: &[Pt], tolerance_m: f64) -> Vec<Pt> {
    let n = points.len();
    if n <= 2 {
        return points.to_vec();
    }
    let (kx, ky) = scale();
    let metres = |p: Pt| (p.0 as f64 * kx, p.1 as f64 * ky);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut stack = vec![(0, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j <= i + 1 {
            continue;
        }
        let (a, b) = (metres(points[i]), metres(points[j]));
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy);
        let mut far = (i, -1.0);
        for (k, p) in points.iter().enumerate().take(j).skip(i + 1) {
            let p = metres(*p);
            let d = if len == 0.0 {
                (p.0 - a.0).hypot(p.1 - a.1)
            } else {
                (dx * (p.1 - a.1) - dy * (p.0 - a.0)).abs() / len
            };
            if d > far.1 {
                far = (k, d);
            }
        }
        if far.1 > tolerance_m {
            keep[far.0] = true;
            stack.push((i, far.0));
            stack.push((far.0, j));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

fn orient(a: Pt, b: Pt, c: Pt) -> i64 {
    // Exact: coordinates differ by at most a few million, products fit in i64.
    ((b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)).signum()
}

fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    p.0 >= a.0.min(b.0) && p.0 <= a.0.max(b.0) && p.1 >= a.1.min(b.1) && p.1 <= a.1.max(b.1)
}

/// Whether two segments meet anywhere but at an endpoint they share.
fn segments_conflict(a: (Pt, Pt), b: (Pt, Pt)) -> bool {
    let (o1, o2) = (orient(a.0, a.1, b.0), orient(a.0, a.1, b.1));
    let (o3, o4) = (orient(b.0, b.1, a.0), orient(b.0, b.1, a.1));
    if o1 * o2 < 0 && o3 * o4 < 0 {
        return true;
    }
    let mut contacts: Vec<Pt> = Vec::new();
    for (o, seg, p) in [(o1, a, b.0), (o2, a, b.1), (o3, b, a.0), (o4, b, a.1)] {
        if o == 0 && on_segment(seg.0, seg.1, p) && !contacts.contains(&p) {
            contacts.push(p);
        }
    }
    match contacts.as_slice() {
        [] => false,
        [p] => !((*p == a.0 || *p == a.1) && (*p == b.0 || *p == b.1)),
        // Collinear and overlapping along a stretch.
        _ => true,
    }
}

/// Pairs of lines (by index) with segments that cross or touch anywhere but at a
/// shared endpoint, with the first offending position. Consecutive segments of one
/// line share their vertex, which is allowed.
pub(crate) fn conflicts(lines: &[&[Pt]]) -> Vec<(usize, usize, Pt)> {
    let mut segments: Vec<(usize, Pt, Pt)> = Vec::new();
    for (l, line) in lines.iter().enumerate() {
        for w in line.windows(2) {
            segments.push((l, w[0], w[1]));
        }
    }
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (s, &(_, a, b)) in segments.iter().enumerate() {
        for cx in a.0.min(b.0).div_euclid(CELL)..=a.0.max(b.0).div_euclid(CELL) {
            for cy in a.1.min(b.1).div_euclid(CELL)..=a.1.max(b.1).div_euclid(CELL) {
                grid.entry((cx, cy)).or_default().push(s);
            }
        }
    }
    let mut found = BTreeSet::new();
    let mut out = Vec::new();
    for cell in grid.values() {
        for (i, &s) in cell.iter().enumerate() {
            for &t in &cell[i + 1..] {
                let (la, a0, a1) = segments[s];
                let (lb, b0, b1) = segments[t];
                if segments_conflict((a0, a1), (b0, b1)) {
                    let key = (la.min(lb), la.max(lb));
                    if found.insert(key) {
                        out.push((key.0, key.1, a0));
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// What is wrong with a (multi)polygon as a map shape: rings that are not closed, have
/// fewer than four positions, or whose edges cross or touch (other than consecutive
/// edges at their shared vertex). Empty when it is valid.
pub fn problems(mp: &MultiPolygon) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines: Vec<Vec<Pt>> = Vec::new();
    for (i, poly) in mp.iter().enumerate() {
        if poly.is_empty() {
            out.push(format!("polygon {i} has no ring"));
        }
        for (j, ring) in poly.iter().enumerate() {
            if ring.len() < 4 {
                out.push(format!(
                    "polygon {i} ring {j} has {} positions (at least 4 needed)",
                    ring.len()
                ));
            }
            if ring.first() != ring.last() {
                out.push(format!("polygon {i} ring {j} is not closed"));
            }
            let mut line: Vec<Pt> = Vec::with_capacity(ring.len());
            for p in ring {
                let p = to_pt(*p);
                if line.last() != Some(&p) {
                    line.push(p);
                }
            }
            lines.push(line);
        }
    }
    let refs: Vec<&[Pt]> = lines.iter().map(Vec::as_slice).collect();
    for (a, b, p) in conflicts(&refs) {
        out.push(format!(
            "rings {a} and {b} cross or touch near {:?}",
            to_position(p)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(points: &[(f64, f64)]) -> Vec<Position> {
        points.iter().map(|&(x, y)| [x, y]).collect()
    }

    #[test]
    fn finds_crossings_and_allows_shared_endpoints() {
        let p = |x, y| (x, y);
        assert!(segments_conflict(
            (p(0, 0), p(10, 10)),
            (p(0, 10), p(10, 0))
        ));
        assert!(!segments_conflict(
            (p(0, 0), p(10, 0)),
            (p(10, 0), p(20, 5))
        ));
        // T-touch: an endpoint on the other's interior.
        assert!(segments_conflict((p(0, 0), p(10, 0)), (p(5, 0), p(5, 5))));
        // Collinear overlap.
        assert!(segments_conflict((p(0, 0), p(10, 0)), (p(5, 0), p(15, 0))));
        // Collinear, continuing after a shared endpoint.
        assert!(!segments_conflict(
            (p(0, 0), p(10, 0)),
            (p(10, 0), p(15, 0))
        ));
        // Doubling back along itself.
        assert!(segments_conflict((p(0, 0), p(10, 0)), (p(10, 0), p(5, 0))));
    }

    #[test]
    fn reports_a_bow_tie() {
        let bow = vec![vec![ring(&[
            (0.0, 0.0),
            (0.01, 0.01),
            (0.01, 0.0),
            (0.0, 0.01),
            (0.0, 0.0),
        ])]];
        assert_eq!(problems(&bow).len(), 1, "{:?}", problems(&bow));
        let open = vec![vec![ring(&[(0.0, 0.0), (0.01, 0.0), (0.01, 0.01)])]];
        assert_eq!(problems(&open).len(), 2);
    }

    #[test]
    fn neighbours_keep_their_shared_border() {
        // Two squares side by side sharing a wiggly border; the wiggle is below the
        // tolerance, so it goes, identically for both.
        let border = [(0.01, 0.0), (0.01001, 0.005), (0.01, 0.01)];
        let mut left = vec![(0.0, 0.0)];
        left.extend(border);
        left.extend([(0.0, 0.01), (0.0, 0.0)]);
        let mut right: Vec<(f64, f64)> = vec![(0.02, 0.0), (0.02, 0.01)];
        right.extend(border.iter().rev());
        right.push((0.02, 0.0));
        let units = vec![vec![vec![ring(&left)]], vec![vec![ring(&right)]]];
        let out = simplify(&units, 50.0).map(|s| s.units).unwrap_or_default();
        assert_eq!(out.len(), 2);
        assert!(!out[0][0][0].contains(&[0.01001, 0.005]));
        for mp in &out {
            assert!(problems(mp).is_empty(), "{:?}", problems(mp));
            assert!(mp[0][0].contains(&[0.01, 0.0]) && mp[0][0].contains(&[0.01, 0.01]));
            assert_eq!(mp[0][0].len(), 5);
        }
    }

    #[test]
    fn small_islands_keep_four_positions() {
        // About 30 m across: far below the tolerance, still a valid ring afterwards.
        let island = ring(&[
            (0.0, 0.0),
            (0.0001, 0.00005),
            (0.0003, 0.0),
            (0.00025, 0.0002),
            (0.0001, 0.00025),
            (0.0, 0.0),
        ]);
        let out = simplify(&[vec![vec![island]]], 50.0)
            .map(|s| s.units)
            .unwrap_or_default();
        assert!(out[0][0][0].len() >= 4);
        assert!(problems(&out[0]).is_empty());
    }
}
