//! ISO 8601 durations, as `aggrPeriodDuration` gives them, and the aggregation periods
//! a duration cuts a time range into.

use chrono::{DateTime, Months, TimeDelta, Utc};

use crate::error::{Error, Result};

/// Longer than any sensible duration; a bound so that parsing costs little.
const MAX_DURATION_LEN: usize = 64;
/// Digits in one number of a duration: enough for any real period, and the parse of
/// each number cannot overflow.
const MAX_NUMBER_DIGITS: usize = 12;
/// Digits after the decimal mark of the seconds: nanoseconds at most.
const MAX_FRACTION_DIGITS: usize = 9;

const MILLIS_PER_SECOND: u64 = 1_000;
const MILLIS_PER_MINUTE: u64 = 60 * MILLIS_PER_SECOND;
const MILLIS_PER_HOUR: u64 = 60 * MILLIS_PER_MINUTE;
const MILLIS_PER_DAY: u64 = 24 * MILLIS_PER_HOUR;
const MILLIS_PER_WEEK: u64 = 7 * MILLIS_PER_DAY;

/// A duration in two parts: calendar months, which have no fixed length and so are
/// added on the calendar, and exact milliseconds for everything from days down. Years
/// count as 12 months and weeks as 7 days; a day is 24 hours, since every time here
/// is UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IsoDuration {
    pub months: u32,
    pub millis: u64,
}

/// The designators of the date part, in the only order ISO 8601 allows.
const DATE_UNITS: [(u8, Unit); 4] = [
    (b'Y', Unit::Months(12)),
    (b'M', Unit::Months(1)),
    (b'W', Unit::Millis(MILLIS_PER_WEEK)),
    (b'D', Unit::Millis(MILLIS_PER_DAY)),
];
/// The designators of the time part (after `T`), in order.
const TIME_UNITS: [(u8, Unit); 3] = [
    (b'H', Unit::Millis(MILLIS_PER_HOUR)),
    (b'M', Unit::Millis(MILLIS_PER_MINUTE)),
    (b'S', Unit::Millis(MILLIS_PER_SECOND)),
];

#[derive(Debug, Clone, Copy)]
enum Unit {
    Months(u32),
    Millis(u64),
}

impl IsoDuration {
    /// Parses `PnYnMnWnDTnHnMnS`: every part optional but at least one present, in
    /// this order, non-negative integers, and a fraction (`.` or `,`) on the seconds
    /// only. A fraction finer than a millisecond is refused rather than rounded, so
    /// that a tiny but non-zero period never silently becomes the zero duration (which
    /// means "the whole range"). Combined forms such as `P0001-02-03` are not accepted.
    pub fn parse(text: &str) -> Result<IsoDuration> {
        let bad = |why: &str| {
            Error::bad_data(format!(
                "{:?} is not an ISO 8601 duration such as PT1H, P1D or P1M: {why}",
                truncate(text)
            ))
        };
        if text.len() > MAX_DURATION_LEN {
            return Err(bad("too long"));
        }
        let Some(rest) = text.strip_prefix('P') else {
            return Err(bad("it must start with P"));
        };
        let (date, time) = match rest.split_once('T') {
            Some((date, time)) => (date, Some(time)),
            None => (rest, None),
        };
        if date.is_empty() && time.is_none() {
            return Err(bad("it has no number"));
        }
        if time.is_some_and(str::is_empty) {
            return Err(bad("T must be followed by hours, minutes or seconds"));
        }
        let mut total = IsoDuration::default();
        parse_part(date.as_bytes(), &DATE_UNITS, &mut total).map_err(bad)?;
        if let Some(time) = time {
            parse_part(time.as_bytes(), &TIME_UNITS, &mut total).map_err(bad)?;
        }
        Ok(total)
    }

    /// Whether this is the zero duration, which asks for one period over the whole range.
    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.millis == 0
    }

    /// `t` plus this duration: the months first, on the calendar (the day is clamped
    /// to the end of a shorter month, so Jan 31 + P1M is the last day of February),
    /// then the milliseconds. None when the result is not a representable time.
    pub fn add_to(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = if self.months == 0 {
            t
        } else {
            t.checked_add_months(Months::new(self.months))?
        };
        let millis = TimeDelta::try_milliseconds(i64::try_from(self.millis).ok()?)?;
        t.checked_add_signed(millis)
    }

    /// This duration `k` times over, or None when that does not fit.
    fn times(&self, k: u64) -> Option<IsoDuration> {
        Some(IsoDuration {
            months: u32::try_from(u64::from(self.months).checked_mul(k)?).ok()?,
            millis: self.millis.checked_mul(k)?,
        })
    }
}

/// Splits the digits that begin `text` from the rest: `none` when there are none,
/// `too_many` when there are more than `max`.
fn split_digits<'t>(
    text: &'t [u8],
    max: usize,
    none: &'static str,
    too_many: &'static str,
) -> Result<(&'t [u8], &'t [u8]), &'static str> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(none);
    }
    if digits > max {
        return Err(too_many);
    }
    Ok(text.split_at(digits))
}

/// Reads the numbers and designators of one part (date or time) into `total`.
fn parse_part(
    mut text: &[u8],
    units: &[(u8, Unit)],
    total: &mut IsoDuration,
) -> Result<(), &'static str> {
    // Index of the next designator allowed, so that each appears once and in order.
    let mut next_unit = 0;
    while !text.is_empty() {
        let (number, rest) = split_digits(
            text,
            MAX_NUMBER_DIGITS,
            "a number must come before each designator",
            "a number is too large",
        )?;
        let mut number = parse_digits(number);
        text = rest;
        let mut fraction_millis = 0;
        if let Some((&mark, rest)) = text.split_first()
            && (mark == b'.' || mark == b',')
        {
            let (fraction, rest) = split_digits(
                rest,
                MAX_FRACTION_DIGITS,
                "a decimal mark must be followed by digits",
                "the fraction has more than 9 digits",
            )?;
            if rest.first() != Some(&b'S') {
                return Err("only the seconds may have a fraction");
            }
            if fraction.iter().skip(3).any(|&b| b != b'0') {
                return Err("the fraction is finer than a millisecond");
            }
            // The first three digits, padded: ".5" is 500 ms.
            fraction_millis = fraction
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(3)
                .fold(0, |acc, &b| acc * 10 + u64::from(b - b'0'));
            text = rest;
        }
        let Some((&designator, rest)) = text.split_first() else {
            return Err("a number must be followed by a designator");
        };
        text = rest;
        let Some(found) = units[next_unit..]
            .iter()
            .position(|(d, _)| *d == designator)
        else {
            return Err("designators must be Y, M, W, D, then T and H, M, S, each once");
        };
        let unit = units[next_unit + found].1;
        next_unit += found + 1;
        match unit {
            Unit::Months(per) => {
                let months = u32::try_from(number)
                    .ok()
                    .and_then(|n| n.checked_mul(per))
                    .and_then(|m| total.months.checked_add(m))
                    .ok_or("too many months")?;
                total.months = months;
            }
            Unit::Millis(per) => {
                number = number.checked_mul(per).ok_or("too long")?;
                total.millis = total
                    .millis
                    .checked_add(number)
                    .and_then(|m| m.checked_add(fraction_millis))
                    .ok_or("too long")?;
            }
        }
    }
    Ok(())
}

fn parse_digits(digits: &[u8]) -> u64 {
    // At most MAX_NUMBER_DIGITS digits: this cannot overflow.
    digits
        .iter()
        .fold(0, |acc, &b| acc * 10 + u64::from(b - b'0'))
}

/// The start of `text`, for an error detail that stays short whatever the client sent.
fn truncate(text: &str) -> &str {
    match text.char_indices().nth(MAX_DURATION_LEN) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The periods from `start` that hold every instance up to `last` (included), the
/// last period whole rather than clipped: the periods of a range with an open end,
/// which ends where the data does (not at the time of the request, which would make
/// the number of periods grow with the age of the data).
pub fn buckets_through(
    start: DateTime<Utc>,
    last: DateTime<Utc>,
    period: Option<&IsoDuration>,
    max: usize,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let end = last
        .checked_add_signed(chrono::TimeDelta::milliseconds(1))
        .unwrap_or(last);
    let mut out = buckets(start, end, period, max)?;
    let n = out.len() as u64;
    if let (Some(p), Some(final_period)) = (period.filter(|p| !p.is_zero()), out.last_mut())
        && let Some(whole) = p.times(n).and_then(|d| d.add_to(start))
    {
        final_period.1 = final_period.1.max(whole);
    }
    Ok(out)
}

/// Cuts `[start, end)` into consecutive half-open aggregation periods of `period`,
/// the last one clipped to end at `end`. No period, or the zero duration, gives one
/// period over the whole range; an empty range gives none.
///
/// The k-th boundary is `start + k × period`, each computed from `start`, never by
/// adding `period` to the previous boundary: from Jan 31, P1M gives Feb 29 (or 28),
/// Mar 31, Apr 30, not Feb 29, Mar 29, Apr 29. A database computing the same periods
/// must do the same (`start + n * interval`, not a running sum).
///
/// More than `max` periods is the client's doing (a period too short for the range),
/// so it is a BadRequestData that says what to change.
pub fn buckets(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    period: Option<&IsoDuration>,
    max: usize,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    if start > end {
        return Err(Error::bad_data(format!(
            "the aggregation range ends ({}) before it starts ({})",
            crate::entity::format_time(&end),
            crate::entity::format_time(&start)
        )));
    }
    let too_many = || {
        Error::bad_data(format!(
            "the aggregation would have more than {max} periods: use a longer \
             aggrPeriodDuration or a shorter time range"
        ))
    };
    if start == end {
        return Ok(Vec::new());
    }
    let period = match period {
        Some(p) if !p.is_zero() => p,
        _ if max == 0 => return Err(too_many()),
        _ => return Ok(vec![(start, end)]),
    };
    let mut out = Vec::with_capacity(max.min(1_024));
    let mut from = start;
    let mut k: u64 = 0;
    while from < end {
        if out.len() >= max {
            return Err(too_many());
        }
        k += 1;
        // A boundary past what can be represented is past `end` too.
        let to = period
            .times(k)
            .and_then(|p| p.add_to(start))
            .map_or(end, |t| t.min(end));
        out.push((from, to));
        from = to;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entity::parse_time;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    const HOUR: u64 = MILLIS_PER_HOUR;
    const DAY: u64 = MILLIS_PER_DAY;

    fn t(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn check(text: &str, months: u32, millis: u64) {
        assert_eq!(
            IsoDuration::parse(text),
            Ok(IsoDuration { months, millis }),
            "{text}"
        );
    }

    #[test]
    fn parses_durations() {
        check("PT1H", 0, HOUR);
        check("P1D", 0, DAY);
        check("P1M", 1, 0);
        check("PT1M", 0, 60_000);
        check("P1Y", 12, 0);
        check("P2W", 0, 14 * DAY);
        check(
            "P1Y2M3DT4H5M6.5S",
            14,
            3 * DAY + 4 * HOUR + 5 * 60_000 + 6_500,
        );
        check("PT0.25S", 0, 250);
        check("PT1,5S", 0, 1_500);
        check("PT1.500000000S", 0, 1_500);
        check("PT36H", 0, 36 * HOUR);
        check("P1WT1S", 0, 7 * DAY + 1_000);
        check("PT0S", 0, 0);
        check("P0D", 0, 0);
        assert!(IsoDuration::parse("PT0S").unwrap().is_zero());
        assert!(!IsoDuration::parse("PT0.001S").unwrap().is_zero());
    }

    #[test]
    fn refuses_invalid_durations() {
        for text in [
            "",
            "P",
            "PT",
            "1D",
            "p1d",
            "P1d",
            "-P1D",
            "P-1D",
            "P1",
            "PD",
            "P1.5D",
            "PT1.5M",
            "PT1.S",
            "PT.5S",
            "P1H",
            "PT1D",
            "P1D1M",
            "P1M1Y",
            "P1D1D",
            "PT1S1M",
            "P1DT",
            "PT0.0001S",
            "PT1.0000000001S",
            "P1 D",
            " P1D",
            "P1DT1H ",
            "P0001-02-03",
            "P1Y2M3DT4H5M6S7",
            "P9999999999999D",
            "P99999999999Y",
            "PT１S",
            &format!("P{}D", "1".repeat(100)),
        ] {
            let err = IsoDuration::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{text}");
        }
    }

    #[test]
    fn adds_months_on_the_calendar() {
        let p1m = IsoDuration::parse("P1M").unwrap();
        assert_eq!(
            p1m.add_to(t("2024-01-31T10:00:00Z")),
            Some(t("2024-02-29T10:00:00Z"))
        );
        assert_eq!(
            p1m.add_to(t("2023-01-31T10:00:00Z")),
            Some(t("2023-02-28T10:00:00Z"))
        );
        let mixed = IsoDuration::parse("P1MT1H").unwrap();
        assert_eq!(
            mixed.add_to(t("2024-03-31T23:30:00Z")),
            Some(t("2024-05-01T00:30:00Z"))
        );
        let p1y = IsoDuration::parse("P1Y").unwrap();
        assert_eq!(
            p1y.add_to(t("2024-02-29T00:00:00Z")),
            Some(t("2025-02-28T00:00:00Z"))
        );
        let huge = IsoDuration {
            months: u32::MAX,
            millis: u64::MAX,
        };
        assert_eq!(huge.add_to(t("2024-01-01T00:00:00Z")), None);
    }

    fn check_buckets(start: &str, end: &str, period: Option<&str>, expected: &[&str]) {
        let period = period.map(|p| IsoDuration::parse(p).unwrap());
        let got = buckets(t(start), t(end), period.as_ref(), 10_000).unwrap();
        let want: Vec<_> = expected.windows(2).map(|w| (t(w[0]), t(w[1]))).collect();
        assert_eq!(got, want, "{start} .. {end} by {period:?}");
    }

    #[test]
    fn cuts_ranges_into_periods() {
        // The last period is clipped to the end of the range.
        check_buckets(
            "2024-01-01T00:00:00Z",
            "2024-01-01T03:30:00Z",
            Some("PT1H"),
            &[
                "2024-01-01T00:00:00Z",
                "2024-01-01T01:00:00Z",
                "2024-01-01T02:00:00Z",
                "2024-01-01T03:00:00Z",
                "2024-01-01T03:30:00Z",
            ],
        );
        // Month ends: every boundary from the start, so Jan 31 stays the 31st when it can.
        check_buckets(
            "2024-01-31T00:00:00Z",
            "2024-05-01T00:00:00Z",
            Some("P1M"),
            &[
                "2024-01-31T00:00:00Z",
                "2024-02-29T00:00:00Z",
                "2024-03-31T00:00:00Z",
                "2024-04-30T00:00:00Z",
                "2024-05-01T00:00:00Z",
            ],
        );
        check_buckets(
            "2023-01-31T00:00:00Z",
            "2023-03-31T00:00:00Z",
            Some("P1M"),
            &[
                "2023-01-31T00:00:00Z",
                "2023-02-28T00:00:00Z",
                "2023-03-31T00:00:00Z",
            ],
        );
        // A leap day and yearly periods.
        check_buckets(
            "2024-02-29T12:00:00Z",
            "2028-03-01T00:00:00Z",
            Some("P1Y"),
            &[
                "2024-02-29T12:00:00Z",
                "2025-02-28T12:00:00Z",
                "2026-02-28T12:00:00Z",
                "2027-02-28T12:00:00Z",
                "2028-02-29T12:00:00Z",
                "2028-03-01T00:00:00Z",
            ],
        );
        // A period longer than the range: one clipped period.
        check_buckets(
            "2024-01-01T00:00:00Z",
            "2024-01-02T00:00:00Z",
            Some("P1M"),
            &["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
        );
        // No period, or the zero one: the whole range.
        for period in [None, Some("PT0S"), Some("P0D")] {
            check_buckets(
                "2024-01-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
                period,
                &["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"],
            );
        }
        // An empty range has no periods.
        check_buckets(
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            Some("PT1H"),
            &[],
        );
    }

    #[test]
    fn bounds_the_number_of_periods() {
        let minute = IsoDuration::parse("PT1M").unwrap();
        let (start, end) = (t("2024-01-01T00:00:00Z"), t("2024-01-02T00:00:00Z"));
        assert_eq!(
            buckets(start, end, Some(&minute), 1_440).unwrap().len(),
            1_440
        );
        let err = buckets(start, end, Some(&minute), 1_439).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequestData);
        assert!(err.detail.contains("longer aggrPeriodDuration"), "{err}");
        assert!(buckets(start, end, None, 0).is_err());
        // The bound holds however short the period and however long the range.
        let ms = IsoDuration {
            months: 0,
            millis: 1,
        };
        let far = t("9999-12-31T23:59:59Z");
        assert!(buckets(t("0001-01-01T00:00:00Z"), far, Some(&ms), 100).is_err());
        let backwards = buckets(end, start, None, 10).unwrap_err();
        assert_eq!(backwards.kind, ErrorKind::BadRequestData);
    }

    fn duration() -> impl Strategy<Value = IsoDuration> {
        (0u32..30, 0u64..(40 * DAY)).prop_map(|(months, millis)| IsoDuration { months, millis })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = IsoDuration::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "P[0-9YMWDTHS.,]{0,20}") {
            if let Ok(d) = IsoDuration::parse(&s) {
                let _ = d.add_to(Utc::now());
            }
        }

        #[test]
        fn parses_what_it_is_given(y in 0u32..100, mo in 0u32..100, d in 0u64..1000,
                                   h in 0u64..100, mi in 0u64..100, s in 0u64..100, ms in 0u64..1000) {
            let text = format!("P{y}Y{mo}M{d}DT{h}H{mi}M{s}.{ms:03}S");
            let want = IsoDuration {
                months: y * 12 + mo,
                millis: d * DAY + h * HOUR + mi * 60_000 + s * 1_000 + ms,
            };
            prop_assert_eq!(IsoDuration::parse(&text), Ok(want));
        }

        #[test]
        fn periods_tile_the_range(start in 0i64..4_000_000_000, len in 0i64..400_000_000, p in duration()) {
            let start = DateTime::from_timestamp(start, 0).unwrap();
            let end = start + TimeDelta::seconds(len);
            match buckets(start, end, Some(&p), 500) {
                Ok(periods) => {
                    prop_assert_eq!(periods.is_empty(), start == end);
                    if let (Some(first), Some(last)) = (periods.first(), periods.last()) {
                        prop_assert_eq!(first.0, start);
                        prop_assert_eq!(last.1, end);
                    }
                    for w in periods.windows(2) {
                        prop_assert_eq!(w[0].1, w[1].0);
                    }
                    for (from, to) in &periods {
                        prop_assert!(from < to);
                    }
                    prop_assert!(periods.len() <= 500);
                }
                Err(e) => prop_assert_eq!(e.kind, crate::error::ErrorKind::BadRequestData),
            }
        }
    }
}
