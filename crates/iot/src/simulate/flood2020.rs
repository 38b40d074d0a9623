//! The historic flood of October 2020 on the Thạch Hãn, reconstructed for exercises:
//! `dothi simulate --scenario flood-2020` replays it as live readings.
//!
//! **What it is anchored on** (the facts the demo data set carries, from the
//! province's 2020 flood bulletins as gathered in `quang-tri-facts.md`):
//!
//! - the Thạch Hãn at the Thạch Hãn station reached **7.40 m on 18 October 2020**, its
//!   record (the gauge's `recordLevel`);
//! - the station's alarm levels: báo động I 3.0 m, II 4.5 m, III 6.0 m.
//!
//! **What is reconstructed** (plausible, not measured): the hours. The water is put at
//! 3.4 m on 15 October (above báo động I: the floods of early October had not gone
//! down), rising through báo động II on the 17th in the morning and báo động III that
//! evening, to the peak at noon on the 18th (the hour of the peak is not known), then
//! falling more slowly than it rose: under báo động III on the 19th, under báo động I
//! on the 22nd. The rain is heaviest in the two days before the peak. The other rivers
//! rise in proportion, measured in their own alarm levels; their figures are
//! illustrative only.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::VIETNAM_OFFSET_SECS;
use super::year::level_at_severity;

/// The Thạch Hãn's record: 7.40 m.
pub const PEAK_LEVEL: f64 = 7.40;
/// The Thạch Hãn's alarm levels I, II, III (m).
pub const ALARMS: [Option<f64>; 3] = [Some(3.0), Some(4.5), Some(6.0)];

/// The reconstruction's points on the Thạch Hãn: (day of October 2020, local hour,
/// level in metres). The peak is the record.
const LEVELS: [(u32, u32, f64); 13] = [
    (15, 0, 3.40),
    (15, 18, 3.70),
    (16, 12, 4.20),
    (17, 6, 5.20),
    (17, 18, 6.30),
    (18, 4, 7.05),
    (18, 12, PEAK_LEVEL),
    (19, 0, 6.85),
    (19, 18, 5.80),
    (20, 12, 4.80),
    (21, 12, 3.90),
    (22, 12, 3.20),
    (23, 12, 2.80),
];

/// Rain (mm in the hour) at the weather stations: (day, hour, mm).
const RAIN: [(u32, u32, f64); 7] = [
    (15, 0, 8.0),
    (16, 0, 18.0),
    (17, 0, 28.0),
    (17, 18, 30.0),
    (18, 6, 14.0),
    (18, 18, 3.0),
    (19, 12, 0.0),
];

/// A local time of October 2020.
fn october(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 10, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
        - TimeDelta::seconds(VIETNAM_OFFSET_SECS)
}

/// When the replay starts: 15 October 2020, 00:00 local time.
pub fn start() -> DateTime<Utc> {
    october(LEVELS[0].0, LEVELS[0].1)
}

/// When it ends: 23 October 2020, 12:00 local time.
pub fn end() -> DateTime<Utc> {
    let (d, h, _) = LEVELS[LEVELS.len() - 1];
    october(d, h)
}

/// When the Thạch Hãn peaks: 18 October 2020, 12:00 local time.
pub fn peak() -> DateTime<Utc> {
    october(18, 12)
}

/// The Thạch Hãn's level at `at` (m): the points joined by a monotone cubic (no
/// overshoot, so the peak is the record), flat before and after.
pub fn thach_han(at: DateTime<Utc>) -> f64 {
    let points: Vec<(f64, f64)> = LEVELS
        .iter()
        .map(|(d, h, l)| (hours(october(*d, *h)), *l))
        .collect();
    monotone(&points, hours(at))
}

/// How high the flood is at `at`, in alarm levels of the Thạch Hãn (1 at báo động I,
/// 3 at III), for the other rivers to rise in proportion.
pub fn severity(at: DateTime<Utc>) -> f64 {
    let level = thach_han(at);
    // The inverse of `level_at_severity` on the Thạch Hãn, by bisection.
    let (mut lo, mut hi) = (0.0, 4.0);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if level_at_severity(mid, 2.35, &ALARMS) < level {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Rain at `at` (mm in the hour).
pub fn rain(at: DateTime<Utc>) -> f64 {
    let points: Vec<(f64, f64)> = RAIN
        .iter()
        .map(|(d, h, r)| (hours(october(*d, *h)), *r))
        .collect();
    monotone(&points, hours(at)).max(0.0)
}

fn hours(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 / 3600.0
}

/// Monotone cubic Hermite interpolation (Fritsch–Carlson) through points of
/// increasing x; flat outside them.
fn monotone(points: &[(f64, f64)], x: f64) -> f64 {
    let n = points.len();
    match (points.first(), points.last()) {
        (Some(first), _) if x <= first.0 => return first.1,
        (_, Some(last)) if x >= last.0 => return last.1,
        (None, _) | (_, None) => return 0.0,
        _ => {}
    }
    let slope = |i: usize| (points[i + 1].1 - points[i].1) / (points[i + 1].0 - points[i].0);
    let tangent = |i: usize| -> f64 {
        if i == 0 {
            slope(0)
        } else if i == n - 1 {
            slope(n - 2)
        } else {
            let (a, b) = (slope(i - 1), slope(i));
            if a * b <= 0.0 {
                0.0
            } else {
                // The weighted harmonic mean keeps the curve monotone on each side.
                let (h0, h1) = (points[i].0 - points[i - 1].0, points[i + 1].0 - points[i].0);
                let (w1, w2) = (2.0 * h1 + h0, h1 + 2.0 * h0);
                (w1 + w2) / (w1 / a + w2 / b)
            }
        }
    };
    let i = points.windows(2).position(|w| x < w[1].0).unwrap_or(n - 2);
    let ((x0, y0), (x1, y1)) = (points[i], points[i + 1]);
    let h = x1 - x0;
    let t = (x - x0) / h;
    let (m0, m1) = (tangent(i) * h, tangent(i + 1) * h);
    let (t2, t3) = (t * t, t * t * t);
    (2.0 * t3 - 3.0 * t2 + 1.0) * y0
        + (t3 - 2.0 * t2 + t) * m0
        + (-2.0 * t3 + 3.0 * t2) * y1
        + (t3 - t2) * m1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_peaks_at_the_record_on_18_october_2020() {
        let mut highest = (start(), 0.0);
        let mut t = start();
        while t <= end() {
            let l = thach_han(t);
            if l > highest.1 {
                highest = (t, l);
            }
            t += TimeDelta::minutes(10);
        }
        assert!((highest.1 - PEAK_LEVEL).abs() < 1e-9, "{highest:?}");
        assert_eq!(highest.0, peak());
        assert_eq!(
            (highest.0 + TimeDelta::hours(7)).date_naive().to_string(),
            "2020-10-18"
        );
    }

    #[test]
    fn it_rises_over_days_through_the_alarm_levels_and_falls_slower() {
        let first_at = |level: f64| {
            let mut t = start();
            while thach_han(t) < level && t < end() {
                t += TimeDelta::minutes(10);
            }
            t
        };
        let (one, two, three) = (first_at(3.0), first_at(4.5), first_at(6.0));
        assert!(one <= two && two < three && three < peak());
        let rise = peak() - first_at(3.5);
        assert!(
            rise >= TimeDelta::hours(48) && rise <= TimeDelta::hours(84),
            "{rise}"
        );
        // Monotone up to the peak, then down.
        let mut t = start();
        let mut last = thach_han(t);
        while t < end() {
            t += TimeDelta::minutes(30);
            let l = thach_han(t);
            if t <= peak() {
                assert!(l >= last - 1e-9, "rising at {t}");
            } else {
                assert!(l <= last + 1e-9, "falling at {t}");
            }
            last = l;
        }
        // Under báo động III a day after the peak; under báo động I by the 23rd.
        assert!(thach_han(peak() + TimeDelta::hours(36)) < 6.0);
        assert!(thach_han(end()) < 3.0);
        // The severity follows the alarm levels.
        assert!(
            (severity(peak()) - 3.9333).abs() < 0.01,
            "{}",
            severity(peak())
        );
        assert!(rain(peak() - TimeDelta::hours(30)) > 20.0);
        assert_eq!(rain(end()), 0.0);
    }
}
