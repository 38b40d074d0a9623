//! The demo's year: what makes one day of the simulated province differ from another.
//!
//! The simulator's readings follow the hour of the day; the year adds the seasons and
//! the events of a year in Quảng Trị, as a pure function of the local date and time,
//! the same every year:
//!
//! - **Rivers.** Low in the dry season (lowest in July), high in the rainy season
//!   (September to December), and a flood season in October and November: four
//!   floods on the four rivers ([`FLOODS`]), measured in alarm levels, so that on the
//!   Thạch Hãn the first passes báo động I, the great flood of late October passes
//!   báo động III and the mid-November one báo động II. The alarm levels are those the
//!   gauges carry (the province's flood bulletins: Thạch Hãn 3.0 / 4.5 / 6.0 m).
//! - **Weather.** Monthly mean temperatures shaped on the climate of the coastal plain
//!   (coolest in January, hottest in June), hot dry spells of the west wind (gió Lào)
//!   in May to July, a dry season with little rain and heavy rain before each flood.
//! - **Traffic and air.** Fewer vehicles at weekends (with a flatter morning), the
//!   exodus before Tết, empty roads during Tết and the return after it, fewer vehicles
//!   on the other public holidays; NO₂ and CO follow the traffic, PM2.5 the traffic,
//!   the season (higher in the dry winter months) and the rain (washed out).
//! - **Silent devices.** A few devices send nothing for a while ([`SILENCES`]): their
//!   history has gaps.
//!
//! Holidays are data: the caller gives the calendar (the reports' shipped calendar of
//! Vietnam's public holidays, where Tết 2026 is 16–20 February); a year the calendar
//! lacks has no Tết. Every figure here is made up for the demo, shaped on the facts
//! named beside it; none is a measurement.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc, Weekday};

use super::VIETNAM_OFFSET_SECS;

/// One flood of the season: when it peaks (local time), how high (in alarm levels on a
/// river: 1 is báo động I, 3 báo động III, 3.5 half-way from III to one step above),
/// how long the water rises before the peak and falls after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flood {
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    /// On the Thạch Hãn; the other rivers a little less ([`river_share`]).
    pub severity: f64,
    pub rise_hours: i64,
    pub fall_hours: i64,
}

/// The flood season, every year. Quảng Trị's floods come with the north-east monsoon
/// and the storms of October and November (the "mùa lũ chính vụ", September to
/// December in the province's flood plans); the great flood of the season is shaped on
/// October 2020's (a rise of two to three days, a slower fall).
pub const FLOODS: [Flood; 4] = [
    // A first flood after the storms of early October: báo động I on the Thạch Hãn.
    Flood {
        month: 10,
        day: 9,
        hour: 20,
        severity: 1.4,
        rise_hours: 36,
        fall_hours: 60,
    },
    // The great flood of the season: báo động III passed on the Thạch Hãn.
    Flood {
        month: 10,
        day: 27,
        hour: 4,
        severity: 3.4,
        rise_hours: 60,
        fall_hours: 96,
    },
    // Mid-November: báo động II.
    Flood {
        month: 11,
        day: 14,
        hour: 16,
        severity: 2.4,
        rise_hours: 48,
        fall_hours: 72,
    },
    // The last rise of the season, under báo động I.
    Flood {
        month: 11,
        day: 29,
        hour: 10,
        severity: 0.7,
        rise_hours: 30,
        fall_hours: 48,
    },
];

/// A device that sends nothing from one local time to another, every year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Silence {
    pub device_id: &'static str,
    /// (month, day, hour), local time.
    pub from: (u32, u32, u32),
    pub to: (u32, u32, u32),
    pub why: &'static str,
}

/// The devices that go silent for a while.
pub const SILENCES: [Silence; 5] = [
    Silence {
        device_id: "gauge-dong-ha",
        from: (10, 27, 6),
        to: (10, 28, 18),
        why: "the station lost power in the great flood",
    },
    Silence {
        device_id: "gauge-thach-han",
        from: (11, 19, 8),
        to: (11, 19, 14),
        why: "maintenance after the flood season",
    },
    Silence {
        device_id: "air-lao-bao",
        from: (3, 3, 0),
        to: (3, 9, 12),
        why: "the analyser was away for calibration",
    },
    Silence {
        device_id: "weather-con-co",
        from: (9, 20, 18),
        to: (9, 24, 9),
        why: "a storm cut the island's link",
    },
    Silence {
        device_id: "traffic-ql9-cam-lo-1",
        from: (7, 14, 7),
        to: (7, 16, 17),
        why: "roadworks cut the counter's power",
    },
];

/// Mean temperature of each month, minus the year's mean (°C): the climate of the
/// coastal plain (Đông Hà's normals are about 19.5 °C in January, 29.5–30 °C in June
/// and July, 25 °C over the year), rounded.
const MONTHLY_TEMPERATURE: [f64; 12] = [
    -5.5, -4.5, -2.0, 1.5, 4.0, 5.0, 4.8, 4.0, 2.3, 0.3, -2.2, -4.5,
];

/// Relative humidity of each month (0–1): humid in the rainy season and the drizzly
/// winter, dry under the west wind of the summer.
const MONTHLY_HUMIDITY: [f64; 12] = [
    0.89, 0.89, 0.87, 0.83, 0.77, 0.71, 0.70, 0.74, 0.84, 0.88, 0.89, 0.89,
];

/// Each month's river level over the level of December (the gauges' `usual_level`):
/// falling through the dry season (February to August, lowest in July), rising with
/// the rains of September, highest in November.
const MONTHLY_RIVER: [f64; 12] = [
    0.92, 0.82, 0.74, 0.68, 0.66, 0.63, 0.58, 0.60, 0.75, 0.95, 1.06, 1.0,
];

/// The chance that a day has showers, by month (the flood rains come on top).
const MONTHLY_SHOWERS: [f64; 12] = [
    0.35, 0.25, 0.2, 0.2, 0.3, 0.25, 0.2, 0.3, 0.5, 0.6, 0.6, 0.5,
];

/// PM2.5 of each month over the year's mean: higher in the dry winter (stable air of
/// the north-east monsoon), washed out in the rainy season.
const MONTHLY_PM25: [f64; 12] = [
    1.25, 1.2, 1.15, 1.05, 0.95, 0.9, 0.9, 0.9, 0.85, 0.8, 0.85, 1.1,
];

/// Hot dry spells of the west wind (gió Lào), (month, first day, last day): a few
/// degrees more by day, drier air.
const WEST_WIND: [(u32, u32, u32); 3] = [(5, 18, 24), (6, 9, 17), (7, 3, 9)];

/// The year's story: the public holidays it knows, and the rest from the constants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Year {
    tet: BTreeSet<NaiveDate>,
    holidays: BTreeSet<NaiveDate>,
}

impl Year {
    /// A year with these public holidays (local dates and names); those named "Tết
    /// Nguyên đán" are Tết.
    pub fn new<'a>(holidays: impl IntoIterator<Item = (NaiveDate, &'a str)>) -> Year {
        let mut year = Year::default();
        for (date, name) in holidays {
            if name.contains("Nguyên đán") {
                year.tet.insert(date);
            } else {
                year.holidays.insert(date);
            }
        }
        year
    }

    /// The days of Tết it knows.
    pub fn tet(&self) -> impl Iterator<Item = &NaiveDate> {
        self.tet.iter()
    }

    /// Whether `device_id` sends nothing at `at`.
    pub fn silent(&self, device_id: &str, at: DateTime<Utc>) -> bool {
        let local = local(at);
        SILENCES.iter().any(|s| {
            s.device_id == device_id
                && match (on(local.year(), s.from), on(local.year(), s.to)) {
                    (Some(from), Some(to)) => from <= local && local < to,
                    _ => false,
                }
        })
    }

    /// The river gauge's level at `at` without the hour's ripple and the noise: the
    /// season's level, and the floods over it. `share` is how much of a flood reaches
    /// this river (1 for the Thạch Hãn).
    pub fn river_level(
        &self,
        at: DateTime<Utc>,
        usual: f64,
        alarms: &[Option<f64>; 3],
        share: f64,
    ) -> f64 {
        let base = usual * monthly(&MONTHLY_RIVER, at);
        let local = local(at);
        let mut level = base;
        for f in &FLOODS {
            let Some(peak_at) = on(local.year(), (f.month, f.day, f.hour)) else {
                continue;
            };
            let shape = flood_shape(local - peak_at, f.rise_hours, f.fall_hours);
            if shape > 0.0 {
                let peak = level_at_severity(f.severity * share, base, alarms);
                level = level.max(base + (peak - base).max(0.0) * shape);
            }
        }
        level
    }

    /// How hard it rains at `at` (mm in the hour): heavy in the day and a half before
    /// a flood's peak, showers on some days of the month's share, dry otherwise.
    /// `key` decides which days have showers, so that stations differ.
    pub fn rain(&self, at: DateTime<Utc>, key: u64) -> f64 {
        let local = local(at);
        let mut rain: f64 = 0.0;
        for f in &FLOODS {
            if let Some(peak_at) = on(local.year(), (f.month, f.day, f.hour)) {
                let before = (peak_at - local).num_minutes() as f64 / 60.0;
                if (0.0..=f.rise_hours as f64 * 0.8).contains(&before) {
                    rain = rain.max(4.0 + 6.0 * f.severity);
                }
            }
        }
        let day = local.date_naive();
        let chance = MONTHLY_SHOWERS[day.month0() as usize];
        let roll = unit(key ^ day.num_days_from_ce() as u64);
        // Showers fall in the afternoon and evening.
        if roll < chance && (14..22).contains(&local.hour()) {
            rain = rain.max(1.0 + 5.0 * roll / chance.max(0.01));
        }
        rain
    }

    /// The day's mean temperature over the year's mean (°C), the west wind's spells
    /// included.
    pub fn temperature_offset(&self, at: DateTime<Utc>) -> f64 {
        let hot = if self.west_wind(at) { 3.0 } else { 0.0 };
        monthly(&MONTHLY_TEMPERATURE, at) + hot
    }

    /// The month's relative humidity (0–1), drier under the west wind.
    pub fn humidity(&self, at: DateTime<Utc>) -> f64 {
        let dry = if self.west_wind(at) { 0.15 } else { 0.0 };
        monthly(&MONTHLY_HUMIDITY, at) - dry
    }

    /// Whether the hot west wind blows at `at`.
    pub fn west_wind(&self, at: DateTime<Utc>) -> bool {
        let local = local(at);
        WEST_WIND
            .iter()
            .any(|(m, a, b)| local.month() == *m && (*a..=*b).contains(&local.day()))
    }

    /// How many vehicles there are compared with an ordinary weekday (1), and how
    /// strong the rush hours are (1 on a weekday).
    pub fn traffic(&self, at: DateTime<Utc>) -> (f64, f64) {
        let day = local(at).date_naive();
        if self.tet.contains(&day) {
            // The first days of Tết are the emptiest.
            let first = self.tet.range(..=day).count();
            return (if first <= 2 { 0.3 } else { 0.45 }, 0.2);
        }
        let days_to_tet = self.tet.range(day..).next().map(|t| (*t - day).num_days());
        if days_to_tet.is_some_and(|d| (1..=4).contains(&d)) {
            // The exodus: everyone goes home for Tết.
            return (1.3, 0.8);
        }
        let days_after_tet = self
            .tet
            .range(..day)
            .next_back()
            .map(|t| (day - *t).num_days());
        if days_after_tet.is_some_and(|d| (1..=3).contains(&d)) {
            return (1.2, 0.8);
        }
        if self.holidays.contains(&day) {
            return (0.75, 0.3);
        }
        match day.weekday() {
            Weekday::Sat => (0.9, 0.5),
            Weekday::Sun => (0.8, 0.35),
            _ => (1.0, 1.0),
        }
    }

    /// PM2.5 over the year's mean from the season alone.
    pub fn pm25_season(&self, at: DateTime<Utc>) -> f64 {
        monthly(&MONTHLY_PM25, at)
    }
}

/// How much of a flood reaches a river: all of it on the Thạch Hãn (the gauge that
/// `floods`), 85–95% elsewhere, the same for a device every time.
pub fn river_share(device_id: &str, floods: bool) -> f64 {
    if floods {
        1.0
    } else {
        0.85 + 0.1 * unit(super::fnv(device_id))
    }
}

/// The level of a river at a flood of `severity` alarm levels: báo động I at 1, II at
/// 2, III at 3, and as far again above III at 4 as III is above II; never under the
/// river's level before the flood. A river without a level II has it half-way.
pub fn level_at_severity(severity: f64, base: f64, alarms: &[Option<f64>; 3]) -> f64 {
    let [a1, a2, a3] = *alarms;
    let (Some(a1), Some(a3)) = (a1, a3) else {
        return base + severity;
    };
    let a2 = a2.unwrap_or((a1 + a3) / 2.0);
    let points = [
        (0.0, base),
        (1.0, a1),
        (2.0, a2),
        (3.0, a3),
        (4.0, a3 + (a3 - a2)),
    ];
    let s = severity.clamp(0.0, 4.0);
    let mut level = base;
    for w in points.windows(2) {
        let ((s0, l0), (s1, l1)) = (w[0], w[1]);
        if s <= s1 {
            level = l0 + (s - s0) / (s1 - s0) * (l1 - l0);
            break;
        }
    }
    level.max(base)
}

/// A flood's shape around its peak, 0 to 1: a smooth rise over `rise` hours, then an
/// exponential fall, a twentieth left after `fall` hours and nothing after twice that.
pub fn flood_shape(from_peak: TimeDelta, rise: i64, fall: i64) -> f64 {
    let hours = from_peak.num_seconds() as f64 / 3600.0;
    let (rise, fall) = (rise.max(1) as f64, fall.max(1) as f64);
    if hours < -rise || hours > 2.0 * fall {
        0.0
    } else if hours <= 0.0 {
        let x = (hours + rise) / rise;
        x * x * (3.0 - 2.0 * x)
    } else {
        (-3.0 * hours / fall).exp()
    }
}

/// Local time (UTC+7) as a UTC-typed time, so that its date and hour are local.
fn local(at: DateTime<Utc>) -> DateTime<Utc> {
    at + TimeDelta::seconds(VIETNAM_OFFSET_SECS)
}

/// (month, day, hour) of `year`, as a local time typed UTC (see [`local`]).
fn on(year: i32, (month, day, hour): (u32, u32, u32)) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(year, month, day, hour, 0, 0).single()
}

/// A monthly figure at `at`, interpolated between the middles of the months.
fn monthly(table: &[f64; 12], at: DateTime<Utc>) -> f64 {
    let local = local(at);
    let days = days_in_month(local.year(), local.month()) as f64;
    let position = (local.day() as f64 - 1.0 + local.hour() as f64 / 24.0) / days;
    let this = local.month0() as usize;
    let (a, b, x) = if position < 0.5 {
        ((this + 11) % 12, this, position + 0.5)
    } else {
        (this, (this + 1) % 12, position - 0.5)
    };
    table[a] + (table[b] - table[a]) * x
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (next, NaiveDate::from_ymd_opt(year, month, 1)) {
        (Some(n), Some(f)) => (n - f).num_days() as u32,
        _ => 30,
    }
}

/// A number in [0, 1) from a key.
fn unit(key: u64) -> f64 {
    (super::mix(key) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 00:00 local time on a date.
    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
            - TimeDelta::seconds(VIETNAM_OFFSET_SECS)
    }

    fn year() -> Year {
        // Tết 2026 as the shipped calendar has it, and two other holidays.
        let mut days: Vec<(NaiveDate, &str)> = (16..=20)
            .filter_map(|d| NaiveDate::from_ymd_opt(2026, 2, d))
            .map(|d| (d, "Tết Nguyên đán"))
            .collect();
        days.extend(NaiveDate::from_ymd_opt(2026, 4, 30).map(|d| (d, "Ngày Giải phóng")));
        days.extend(NaiveDate::from_ymd_opt(2026, 5, 1).map(|d| (d, "Quốc tế Lao động")));
        Year::new(days)
    }

    const THACH_HAN: [Option<f64>; 3] = [Some(3.0), Some(4.5), Some(6.0)];

    #[test]
    fn severities_map_onto_the_alarm_levels() {
        assert_eq!(level_at_severity(1.0, 2.0, &THACH_HAN), 3.0);
        assert_eq!(level_at_severity(2.0, 2.0, &THACH_HAN), 4.5);
        assert_eq!(level_at_severity(3.0, 2.0, &THACH_HAN), 6.0);
        assert!((level_at_severity(3.4, 2.0, &THACH_HAN) - 6.6).abs() < 1e-9);
        // The Hiếu has no level II: half-way between I and III.
        let hieu = [Some(2.0), None, Some(4.0)];
        assert_eq!(level_at_severity(2.0, 1.0, &hieu), 3.0);
        // Never under the river's level.
        assert_eq!(
            level_at_severity(0.5, 1.25, &[Some(1.0), Some(2.0), Some(2.5)]),
            1.25
        );
    }

    #[test]
    fn the_thach_han_passes_alarm_three_in_the_flood_season_only() {
        let y = year();
        let mut season_peak: f64 = 0.0;
        let mut rest_peak: f64 = 0.0;
        let mut reached = [false; 3];
        let start = at(2026, 1, 1, 0);
        for h in 0..365 * 24 {
            let t = start + TimeDelta::hours(h);
            let level = y.river_level(t, 2.35, &THACH_HAN, 1.0);
            let month = local(t).month();
            if month == 10 || month == 11 {
                season_peak = season_peak.max(level);
                for (i, a) in [3.0, 4.5, 6.0].iter().enumerate() {
                    reached[i] |= level >= *a;
                }
            } else {
                rest_peak = rest_peak.max(level);
            }
        }
        assert!(season_peak > 6.0, "above báo động III: {season_peak}");
        assert!(season_peak < 7.4, "below the 2020 record: {season_peak}");
        assert_eq!(reached, [true; 3]);
        assert!(rest_peak < 3.0, "no alarm outside the season: {rest_peak}");
        // The great flood peaks on 27 October.
        let peak = y.river_level(at(2026, 10, 27, 4), 2.35, &THACH_HAN, 1.0);
        assert!((peak - season_peak).abs() < 1e-9);
    }

    #[test]
    fn the_dry_season_is_low_and_hot() {
        let y = year();
        let july = y.river_level(at(2026, 7, 15, 12), 2.35, &THACH_HAN, 1.0);
        let december = y.river_level(at(2026, 12, 15, 12), 2.35, &THACH_HAN, 1.0);
        assert!(july < 0.7 * december, "{july} {december}");
        assert!(
            y.temperature_offset(at(2026, 6, 20, 12))
                > y.temperature_offset(at(2026, 1, 15, 12)) + 8.0
        );
        assert!(y.west_wind(at(2026, 6, 10, 12)));
        assert!(y.humidity(at(2026, 6, 10, 12)) < y.humidity(at(2026, 11, 10, 12)) - 0.2);
        // Rain before the great flood, none in the middle of a dry night.
        assert!(y.rain(at(2026, 10, 26, 8), 7) > 20.0);
        assert_eq!(y.rain(at(2026, 7, 10, 3), 7), 0.0);
    }

    #[test]
    fn traffic_dips_at_tet_and_at_weekends() {
        let y = year();
        // 17 February 2026 (the first day of the lunar year) and an ordinary Tuesday.
        let (tet, _) = y.traffic(at(2026, 2, 17, 10));
        let (tuesday, rush) = y.traffic(at(2026, 3, 10, 10));
        assert!(tet < 0.5 * tuesday, "{tet} {tuesday}");
        assert_eq!(rush, 1.0);
        let (sunday, sunday_rush) = y.traffic(at(2026, 3, 8, 10));
        assert!(sunday < tuesday && sunday_rush < rush);
        // The exodus before Tết.
        assert!(y.traffic(at(2026, 2, 13, 10)).0 > tuesday);
        assert!(y.traffic(at(2026, 4, 30, 10)).0 < tuesday);
        assert_eq!(y.tet().count(), 5);
    }

    #[test]
    fn silences_are_the_planned_ones() {
        let y = year();
        assert!(y.silent("gauge-dong-ha", at(2026, 10, 27, 12)));
        assert!(!y.silent("gauge-dong-ha", at(2026, 10, 28, 18)));
        assert!(!y.silent("gauge-thach-han", at(2026, 10, 27, 12)));
        assert!(y.silent("gauge-thach-han", at(2026, 11, 19, 13)));
        assert!(y.silent("air-lao-bao", at(2027, 3, 5, 0)), "every year");
    }
}
