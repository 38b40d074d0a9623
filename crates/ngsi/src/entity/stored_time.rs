//! Reading and writing the times of a stored entity fast. Stored documents hold the
//! times as chrono writes them, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; that form is read
//! here field by field, and any other text is left to chrono, so what is accepted and
//! what it means are chrono's either way. A download of a million entities reads
//! ten times per entity: the general parser was a tenth of its time. Writing is the
//! same: the times of years 0 to 9999 are written digit by digit, exactly as chrono
//! would (its formatting machinery was a few percent of a write's CPU: a stored
//! entity and its history write two times per attribute instance), and any other time
//! by chrono.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The time `text` means, when it is in the form chrono writes (`None` otherwise,
/// for chrono to decide).
fn canonical(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = num(20..b.len() - 1)?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    // A leap second (60) is chrono's to read.
    let time = date.and_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    (num(17..19)? < 60).then(|| time.and_utc())
}

fn parse<E: serde::de::Error>(text: &str) -> Result<DateTime<Utc>, E> {
    match canonical(text) {
        Some(t) => Ok(t),
        None => text.parse::<DateTime<Utc>>().map_err(E::custom),
    }
}

/// A time, for `#[serde(with = "stored_time")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&text)
}

/// The longest text [`canonical_text`] writes: nine fraction digits.
const MAX_TEXT: usize = "2026-03-01T10:00:00.123456789Z".len();

/// `t` as chrono writes it (RFC 3339, `Z`, the fraction in 0, 3, 6 or 9 digits as it
/// needs), into `out`; its length, or `None` for a year outside 0 to 9999 or a leap
/// second (chrono's to write).
fn canonical_text(t: &DateTime<Utc>, out: &mut [u8; MAX_TEXT]) -> Option<usize> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for slot in out[at..at + digits].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    let digits = match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    if digits > 0 {
        put(20, nanos / 10u32.pow(9 - digits as u32), digits);
    }
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[at] = c;
    }
    let mut end = 19;
    if digits > 0 {
        out[19] = b'.';
        end = 20 + digits;
    }
    out[end] = b'Z';
    Some(end + 1)
}

/// A time, for `#[serde(with = "stored_time")]`: the text chrono's own `Serialize` writes.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut out = [0u8; MAX_TEXT];
    match canonical_text(t, &mut out) {
        Some(n) => {
            s.serialize_str(std::str::from_utf8(&out[..n]).map_err(serde::ser::Error::custom)?)
        }
        None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// An optional time, for `#[serde(with = "stored_time::option")]` (with
/// `skip_serializing_if`).
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
            Some(text) => super::parse(&text).map(Some),
            None => Ok(None),
        }
    }

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{SecondsFormat, TimeZone};

    use super::*;

    fn chrono_reads(text: &str) -> Option<DateTime<Utc>> {
        text.parse::<DateTime<Utc>>().ok()
    }

    /// `n` pseudo-random numbers after `seed` (a linear congruential generator).
    fn seeds(mut seed: u64, n: usize) -> impl Iterator<Item = u64> {
        (0..n).map(move |_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed
        })
    }

    /// Every time as chrono writes it, at every precision, reads back as chrono reads it.
    #[test]
    fn reads_what_chrono_writes_as_chrono_does() {
        for seed in seeds(42, 20_000) {
            let secs = (seed >> 20) as i64 % 8_000_000_000 - 1_000_000_000;
            let nanos = (seed % 1_000_000_000) as u32;
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            for format in [
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
                SecondsFormat::AutoSi,
            ] {
                let text = t.to_rfc3339_opts(format, true);
                assert_eq!(canonical(&text), chrono_reads(&text), "{text}");
                assert!(canonical(&text).is_some(), "{text}");
            }
        }
    }

    /// Every time is written as chrono's `Serialize` writes it, at every precision, from
    /// years before 0 to after 9999 and leap seconds.
    #[test]
    fn writes_what_chrono_writes() {
        let written = |t: &DateTime<Utc>| {
            let mut out = Vec::new();
            serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
            String::from_utf8(out).unwrap()
        };
        for seed in seeds(7, 20_000) {
            let secs = (seed >> 20) as i64 % 400_000_000_000 - 100_000_000_000;
            for nanos in [
                0,
                (seed % 1_000) as u32 * 1_000_000,
                (seed % 1_000_000) as u32 * 1_000,
                (seed % 1_000_000_000) as u32,
            ] {
                let t = Utc.timestamp_opt(secs, nanos).unwrap();
                assert_eq!(written(&t), serde_json::to_string(&t).unwrap());
            }
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        for t in [
            leap,
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(written(&t), serde_json::to_string(&t).unwrap());
        }
        let mut out = Vec::new();
        option::serialize(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"null");
    }

    /// Whatever the fast path reads, chrono reads the same; what it leaves, chrono decides.
    #[test]
    fn agrees_with_chrono_on_odd_texts() {
        for text in [
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00.5Z",
            "2026-03-01T10:00:00.123456789Z",
            "2026-03-01T10:00:00.1234567891Z",
            "2026-02-29T10:00:00Z",
            "2024-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T10:60:00Z",
            "2026-06-30T23:59:60Z",
            "2026-03-01T10:00:00.Z",
            "2026-03-01t10:00:00Z",
            "2026-03-01T10:00:00+07:00",
            "2026-03-01 10:00:00Z",
            "2026-03-01T10:00:0xZ",
            "+2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00z",
            "",
        ] {
            let fast = canonical(text);
            if fast.is_some() {
                assert_eq!(fast, chrono_reads(text), "{text}");
            }
            assert_eq!(
                parse::<serde_json::Error>(text).ok(),
                chrono_reads(text),
                "{text}"
            );
        }
    }
}
