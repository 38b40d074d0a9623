//! Working days in Vietnam and the deadlines counted in them.
//!
//! A working day is Monday to Friday, unless it is a public holiday. Holidays are data:
//! the calendar shipped for 2026–2027 (`data/holidays-vn.json`, with its source), which
//! an admin replaces year by year (Tết moves, and days are swapped by a yearly notice).
//! Days are those of Asia/Ho_Chi_Minh (UTC+7, no daylight saving time).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// The shipped holiday calendar.
pub const SHIPPED: &str = include_str!("../data/holidays-vn.json");

/// One public holiday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: String,
}

#[derive(Deserialize)]
struct Shipped {
    years: BTreeMap<String, Vec<Holiday>>,
}

/// The local time of the province.
pub fn local() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// Public holidays by year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    years: BTreeMap<i32, Vec<Holiday>>,
    days: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// The calendar shipped with dothi (2026 and 2027).
    pub fn shipped() -> Calendar {
        let mut c = Calendar::default();
        if let Ok(s) = serde_json::from_str::<Shipped>(SHIPPED) {
            for (year, days) in s.years {
                if let Ok(y) = year.parse() {
                    // The shipped file is checked by a test; a bad year is left out.
                    let _ = c.set_year(y, days);
                }
            }
        }
        c
    }

    /// Replaces the holidays of a year; each must fall in that year.
    pub fn set_year(&mut self, year: i32, mut days: Vec<Holiday>) -> Result<(), String> {
        if !(2000..=2100).contains(&year) {
            return Err(format!("year {year} is out of range"));
        }
        if days.len() > 60 {
            return Err("at most 60 holidays a year".into());
        }
        if let Some(d) = days.iter().find(|d| d.date.year() != year) {
            return Err(format!("{} is not in {year}", d.date));
        }
        if let Some(d) = days
            .iter()
            .find(|d| d.name.trim().is_empty() || d.name.len() > 200)
        {
            return Err(format!(
                "the holiday of {} needs a name (200 bytes at most)",
                d.date
            ));
        }
        days.sort_by_key(|d| d.date);
        days.dedup_by_key(|d| d.date);
        self.years.insert(year, days);
        self.days = self
            .years
            .values()
            .flatten()
            .map(|h| h.date)
            .collect::<BTreeSet<_>>();
        Ok(())
    }

    /// The holidays of a year (empty when none are known).
    pub fn year(&self, year: i32) -> &[Holiday] {
        self.years.get(&year).map_or(&[], Vec::as_slice)
    }

    pub fn years(&self) -> impl Iterator<Item = (&i32, &Vec<Holiday>)> {
        self.years.iter()
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.days.contains(&day)
    }

    /// The end of the `n`-th working day after the local day of `from` (the day of
    /// receipt itself does not count): 23:59:59 local time. With `n` = 0, the end
    /// of the day of receipt.
    pub fn add_working_days(&self, from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let mut day = from.with_timezone(&local()).date_naive();
        let mut left = n;
        // A year of days at most: no calendar has a year without working days.
        let mut guard = 0;
        while left > 0 && guard < 366 * 3 {
            day = day.succ_opt().unwrap_or(day);
            guard += 1;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        end_of_local_day(day)
    }

    /// Working days from `from` to `to`, counting the days after `from`'s day up to
    /// and including `to`'s day (0 when `to` is on the same day or before).
    pub fn working_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        let start = from.with_timezone(&local()).date_naive();
        let end = to.with_timezone(&local()).date_naive();
        let mut n = 0;
        let mut day = start;
        while day < end && n < 10_000 {
            day = day.succ_opt().unwrap_or(end);
            if self.is_working_day(day) {
                n += 1;
            }
        }
        n
    }
}

fn end_of_local_day(day: NaiveDate) -> DateTime<Utc> {
    let end = day
        .and_hms_opt(23, 59, 59)
        .unwrap_or_else(|| day.and_time(chrono::NaiveTime::MIN));
    (end - TimeDelta::hours(7)).and_utc()
}

/// The deadlines of a category: to accept or reject, and to resolve; an urgent report
/// counts in hours of the clock, every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// Working days to accept or reject (the national rule for feedback: 2).
    pub accept_working_days: u32,
    /// Working days to answer (the national rule: 15).
    pub resolve_working_days: u32,
    /// When urgent: hours to accept, and to resolve.
    pub urgent_accept_hours: u32,
    pub urgent_resolve_hours: u32,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            accept_working_days: 2,
            resolve_working_days: 15,
            urgent_accept_hours: 2,
            urgent_resolve_hours: 24,
        }
    }
}

impl Sla {
    pub fn check(&self) -> Result<(), String> {
        let Sla {
            accept_working_days: a,
            resolve_working_days: r,
            urgent_accept_hours: ua,
            urgent_resolve_hours: ur,
        } = *self;
        if !(1..=60).contains(&a) || !(1..=120).contains(&r) || a > r {
            return Err("working days: accept 1–60, resolve 1–120, accept ≤ resolve".into());
        }
        if !(1..=72).contains(&ua) || !(1..=720).contains(&ur) || ua > ur {
            return Err("urgent hours: accept 1–72, resolve 1–720, accept ≤ resolve".into());
        }
        Ok(())
    }

    /// When a report received at `at` must be accepted (or rejected), and resolved.
    pub fn due(
        &self,
        calendar: &Calendar,
        at: DateTime<Utc>,
        urgent: bool,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        if urgent {
            (
                at + TimeDelta::hours(i64::from(self.urgent_accept_hours)),
                at + TimeDelta::hours(i64::from(self.urgent_resolve_hours)),
            )
        } else {
            (
                calendar.add_working_days(at, self.accept_working_days),
                calendar.add_working_days(at, self.resolve_working_days),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_shipped_calendar_holds_both_years() {
        let c = Calendar::shipped();
        assert_eq!(c.year(2026).len(), 11);
        assert_eq!(c.year(2027).len(), 11);
        // Every shipped holiday falls on a weekday: weekend days are never listed.
        for (_, days) in c.years() {
            for d in days {
                assert!(
                    !matches!(d.date.weekday(), Weekday::Sat | Weekday::Sun),
                    "{}",
                    d.date
                );
            }
        }
    }

    #[test]
    fn deadlines_skip_weekends_and_tet() {
        let c = Calendar::shipped();
        // Friday 13 Feb 2026, 10:00 local: Tết runs from Saturday 14 to Sunday 22.
        let received = at("2026-02-13T03:00:00Z");
        assert_eq!(
            c.add_working_days(received, 2),
            at("2026-02-24T16:59:59Z"),
            "Mon 23 and Tue 24 are the first working days after Tết"
        );
        // Without holidays the same count ends on Tuesday 17.
        assert_eq!(
            Calendar::default().add_working_days(received, 2),
            at("2026-02-17T16:59:59Z")
        );
        // 15 working days from Wed 22 Apr 2026: 27 Apr, 30 Apr, 1 May are off.
        let received = at("2026-04-22T02:00:00Z");
        assert_eq!(c.add_working_days(received, 15), at("2026-05-18T16:59:59Z"));
        assert_eq!(
            c.working_days_between(received, at("2026-05-18T10:00:00Z")),
            15
        );
        // A report received late on Friday evening local time (UTC still Friday).
        let late = at("2026-03-06T16:30:00Z"); // Fri 23:30 local
        assert_eq!(c.add_working_days(late, 1), at("2026-03-09T16:59:59Z"));
        let after_midnight = at("2026-03-06T17:30:00Z"); // Sat 00:30 local
        assert_eq!(
            c.add_working_days(after_midnight, 1),
            at("2026-03-09T16:59:59Z")
        );
    }

    #[test]
    fn urgent_reports_count_clock_hours() {
        let c = Calendar::shipped();
        let sla = Sla::default();
        let received = at("2026-02-14T01:00:00Z");
        let (accept, resolve) = sla.due(&c, received, true);
        assert_eq!(accept, at("2026-02-14T03:00:00Z"));
        assert_eq!(resolve, at("2026-02-15T01:00:00Z"));
    }

    #[test]
    fn a_year_is_checked_before_it_replaces_the_old_one() {
        let mut c = Calendar::shipped();
        let day = |d: &str| Holiday {
            date: d.parse().unwrap(),
            name: "x".into(),
        };
        assert!(c.set_year(2027, vec![day("2026-12-31")]).is_err());
        assert_eq!(c.year(2027).len(), 11);
        c.set_year(2027, vec![day("2027-03-03")]).unwrap();
        assert!(!c.is_working_day("2027-03-03".parse().unwrap()));
        assert!(c.is_working_day("2027-02-10".parse().unwrap()));
    }
}
