//! Reading the times of a stored entity fast. Stored documents hold the times as
//! chrono writes them, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; that form is read here
//! field by field, and any other text is left to chrono, so what is accepted and
//! what it means are chrono's either way. A download of a million entities reads
//! ten times per entity: the general parser was a tenth of its time.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

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

/// A time, for `#[serde(deserialize_with)]`.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&text)
}

/// An optional time, for `#[serde(deserialize_with)]`.
pub fn de_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
        Some(text) => parse(&text).map(Some),
        None => Ok(None),
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

    /// Every time as chrono writes it, at every precision, reads back as chrono reads it.
    #[test]
    fn reads_what_chrono_writes_as_chrono_does() {
        let mut seed: u64 = 42;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
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
