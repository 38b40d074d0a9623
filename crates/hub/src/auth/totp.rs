//! Time-based one-time passwords (RFC 6238) for the second login factor.
//!
//! This module owns the TOTP seed format (RFC 4648 base32, as authenticator
//! apps expect it), code computation, verification with a bounded clock-skew
//! window, and the `otpauth://` URI that enrols an app. It uses the settings
//! every common app supports: HMAC-SHA-1, 6 digits, 30-second steps. SHA-1 is
//! still sound here: HOTP relies on HMAC being a PRF, not on collision
//! resistance. Remembering the last accepted step per user, to refuse a
//! replayed code, is the caller's job; [`verify`] returns the step for it.

use ring::hmac;

use super::secrets::{SecretsError, constant_time_eq, fill_random};

/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Seconds per time step (RFC 6238 `X`; `T0` is the Unix epoch).
pub const STEP_SECS: i64 = 30;
/// Largest skew window [`verify`] honours, in steps either side: larger
/// requests are cut to this, so a misconfiguration cannot turn a 6-digit
/// code into a guessable one or make a verification loop for long.
pub const MAX_SKEW_STEPS: u32 = 10;

/// Length of new seeds: 160 bits, as RFC 4226 section 4 recommends.
const SECRET_BYTES: usize = 20;
/// Shortest seed accepted: RFC 4226 section 4 requires 128 bits.
const MIN_SECRET_BYTES: usize = 16;

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP secret is not valid base32 of at least 128 bits")]
    BadSecret,
    #[error("the time is before the Unix epoch")]
    BeforeEpoch,
    #[error(transparent)]
    Random(#[from] SecretsError),
}

/// A new random seed, base32 without padding (32 characters).
pub fn new_secret() -> Result<String, TotpError> {
    let mut seed = [0u8; SECRET_BYTES];
    fill_random(&mut seed)?;
    Ok(base32_encode(&seed))
}

/// The code for `unix_secs`.
pub fn code_at(secret_b32: &str, unix_secs: i64) -> Result<String, TotpError> {
    let key = decode_secret(secret_b32)?;
    Ok(hotp(&key, time_step(unix_secs)?, DIGITS))
}

/// Checks `code` against the steps within `skew_steps` (at most
/// [`MAX_SKEW_STEPS`]) of the one holding `unix_secs`, and returns the step
/// that matched, preferring the nearest. `None` for a wrong code, a code of
/// the wrong shape, a bad secret or a time before the epoch.
///
/// The caller must refuse a step at or below the last one it accepted for
/// this user, or a code overheard once could be used again within its window.
pub fn verify(secret_b32: &str, code: &str, unix_secs: i64, skew_steps: u32) -> Option<i64> {
    let key = decode_secret(secret_b32).ok()?;
    let current = i64::try_from(time_step(unix_secs).ok()?).ok()?;
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let skew = i64::from(skew_steps.min(MAX_SKEW_STEPS));
    let mut matched = None;
    // Nearest first, so the rare code valid at two steps counts as the
    // nearer one; every candidate is computed whichever matches.
    for distance in 0..=skew {
        let candidates = if distance == 0 {
            [Some(current), None]
        } else {
            [current.checked_sub(distance), current.checked_add(distance)]
        };
        for step in candidates.into_iter().flatten() {
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let expected = hotp(&key, counter, DIGITS);
            if constant_time_eq(expected.as_bytes(), code.as_bytes()) && matched.is_none() {
                matched = Some(step);
            }
        }
    }
    matched
}

/// The enrolment URI that authenticator apps read from a QR code, in the
/// Key URI format: `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER…`.
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account),
        secret = percent_encode(secret_b32),
    )
}

/// RFC 4648 section 6 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        acc = (acc << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(acc >> bits));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base32_char(acc << (5 - bits)));
    }
    out
}

/// Decodes RFC 4648 base32; accepts lower case and trailing `=` padding,
/// refuses anything else, lengths no encoder produces, and non-zero
/// leftover bits (so each value has one spelling).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if !matches!(body.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 5 / 8);
    let mut acc: u16 = 0;
    let mut bits: u32 = 0;
    for c in body.bytes() {
        acc = (acc << 5) | u16::from(base32_value(c)?);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

fn base32_char(five_bits: u16) -> char {
    char::from(BASE32_ALPHABET[usize::from(five_bits & 0x1f)])
}

fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

fn decode_secret(secret_b32: &str) -> Result<Vec<u8>, TotpError> {
    match base32_decode(secret_b32) {
        Some(key) if key.len() >= MIN_SECRET_BYTES => Ok(key),
        _ => Err(TotpError::BadSecret),
    }
}

fn time_step(unix_secs: i64) -> Result<u64, TotpError> {
    u64::try_from(unix_secs.div_euclid(STEP_SECS)).map_err(|_| TotpError::BeforeEpoch)
}

/// RFC 4226 HOTP. The digit count is a parameter only so the 8-digit
/// vectors of RFC 6238 can be checked; the hub uses [`DIGITS`].
fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    // A SHA-1 tag is 20 bytes, so the offset (0..=15) plus 3 stays inside it.
    let mac = tag.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let truncated = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(truncated) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// Percent-encodes all but RFC 3986 unreserved characters, byte by byte in
/// UTF-8; spaces become `%20`, which authenticator apps expect, not `+`.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The seed of RFC 6238 appendix B (SHA-1) and RFC 4226 appendix D.
    const RFC_SEED: &[u8] = b"12345678901234567890";

    fn rfc_secret() -> String {
        base32_encode(RFC_SEED)
    }

    #[test]
    fn rfc6238_appendix_b_sha1_eight_digits() {
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, expected) in vectors {
            let step = time_step(time).unwrap();
            assert_eq!(hotp(RFC_SEED, step, 8), expected, "T = {time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_truncation_of_the_rfc_vectors() {
        // The 6-digit code is the 31-bit value mod 10^6, i.e. the last six
        // digits of the 8-digit one.
        let vectors = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        let secret = rfc_secret();
        for (time, expected) in vectors {
            assert_eq!(code_at(&secret, time).unwrap(), expected, "T = {time}");
            assert_eq!(verify(&secret, expected, time, 0), Some(time / 30));
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, counter as u64, 6), *code, "count {counter}");
        }
    }

    #[test]
    fn base32_rfc4648_section_10_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, padded) in vectors {
            let unpadded = padded.trim_end_matches('=');
            assert_eq!(base32_encode(plain.as_bytes()), unpadded);
            assert_eq!(base32_decode(padded).unwrap(), plain.as_bytes());
            assert_eq!(base32_decode(unpadded).unwrap(), plain.as_bytes());
            assert_eq!(
                base32_decode(&unpadded.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(rfc_secret(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn bad_base32_is_refused() {
        for text in [
            "1",
            "0",
            "8",
            "MZXW6!",
            "MZXW 6YTB",
            "M",
            "MZX",
            "MZXW6Y",
            "=MY",
            "MY=A",
            "MZ",
            "MZXR",
        ] {
            assert_eq!(base32_decode(text), None, "{text:?}");
        }
        assert!(matches!(
            code_at("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!", 59),
            Err(TotpError::BadSecret)
        ));
        assert_eq!(verify("not base32 at all", "287082", 59, 1), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        let fifteen = base32_encode(&[7u8; 15]);
        let sixteen = base32_encode(&[7u8; 16]);
        assert!(matches!(code_at(&fifteen, 59), Err(TotpError::BadSecret)));
        assert!(matches!(code_at("", 59), Err(TotpError::BadSecret)));
        assert!(code_at(&sixteen, 59).is_ok());
    }

    #[test]
    fn skew_window_accepts_neighbouring_steps_only_when_asked() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / 30;
        let previous = code_at(&secret, now - 30).unwrap();
        let next = code_at(&secret, now + 30).unwrap();
        let two_back = code_at(&secret, now - 60).unwrap();

        assert_eq!(verify(&secret, &previous, now, 0), None);
        assert_eq!(verify(&secret, &previous, now, 1), Some(step - 1));
        assert_eq!(verify(&secret, &next, now, 0), None);
        assert_eq!(verify(&secret, &next, now, 1), Some(step + 1));
        assert_eq!(verify(&secret, &two_back, now, 1), None);
        assert_eq!(verify(&secret, &two_back, now, 2), Some(step - 2));
    }

    #[test]
    fn step_boundaries_follow_the_thirty_second_clock() {
        let secret = rfc_secret();
        let at_59 = code_at(&secret, 59).unwrap();
        assert_eq!(code_at(&secret, 30).unwrap(), at_59);
        assert_ne!(code_at(&secret, 60).unwrap(), at_59);
        assert_eq!(verify(&secret, &at_59, 60, 0), None);
        assert_eq!(verify(&secret, &at_59, 60, 1), Some(1));
    }

    #[test]
    fn skew_is_capped() {
        let secret = rfc_secret();
        let now = 2_000_000_000;
        let eleven_back = code_at(&secret, now - 11 * 30).unwrap();
        let ten_back = code_at(&secret, now - 10 * 30).unwrap();
        assert_eq!(verify(&secret, &eleven_back, now, u32::MAX), None);
        assert_eq!(
            verify(&secret, &ten_back, now, u32::MAX),
            Some(now / 30 - 10)
        );
    }

    #[test]
    fn codes_of_the_wrong_shape_are_refused() {
        let secret = rfc_secret();
        for code in [
            "",
            "28708",
            "2870822",
            "28708a",
            "287 082",
            "-28708",
            "２８７０８２",
        ] {
            assert_eq!(verify(&secret, code, 59, 1), None, "{code:?}");
        }
        // Whitespace pasted around a code is forgiven.
        assert_eq!(verify(&secret, " 287082\n", 59, 0), Some(1));
        assert_eq!(verify(&secret, "287083", 59, 1), None);
    }

    #[test]
    fn times_before_the_epoch_are_refused() {
        let secret = rfc_secret();
        assert!(matches!(code_at(&secret, -1), Err(TotpError::BeforeEpoch)));
        assert_eq!(verify(&secret, "755224", -1, 1), None);
        // Step 0 is still reachable, and the window does not reach below it.
        assert_eq!(verify(&secret, "755224", 10, 3), Some(0));
    }

    #[test]
    fn new_secrets_are_twenty_random_bytes() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(base32_decode(&a).unwrap().len(), 20);
        let code = code_at(&a, 1_700_000_000).unwrap();
        assert_eq!(code.len(), 6);
        assert_eq!(
            verify(&a, &code, 1_700_000_000, 0),
            Some(1_700_000_000 / 30)
        );
    }

    #[test]
    fn otpauth_uri_percent_encodes_the_label_and_issuer() {
        let uri = otpauth_uri(
            "Dothi City",
            "ana@example.org",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        );
        assert_eq!(
            uri,
            "otpauth://totp/Dothi%20City:ana%40example.org\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Dothi%20City\
             &algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri("Hà Nội", "a:b&c=d", "MZXW6");
        assert!(
            uri.starts_with("otpauth://totp/H%C3%A0%20N%E1%BB%99i:a%3Ab%26c%3Dd?secret=MZXW6&"),
            "{uri}"
        );
        assert!(uri.contains("&issuer=H%C3%A0%20N%E1%BB%99i&"), "{uri}");
    }
}
