//! Random secrets and the form in which the hub stores them.
//!
//! Every token the hub hands out (API keys, session tokens, TOTP seeds) is
//! drawn here from the operating system's generator, so there is one place to
//! audit for entropy. Such secrets are stored only as a SHA-256 digest: they
//! are long and uniformly random, so a database leak gives nothing to guess,
//! and a lookup by digest needs no key-stretching. Human passwords are a
//! different matter and go through `password` (argon2id) instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use subtle::ConstantTimeEq as _;

/// Marks a string as a dothi API key, so that a key pasted into a log, a
/// ticket or a repository can be recognised by secret scanners.
pub const API_KEY_PREFIX: &str = "dothi_";

/// Random bytes in a new API key: 256 bits.
pub const API_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Nothing sensible can be handed out without randomness, so the caller
    /// must fail the request rather than fall back to anything.
    #[error("the system random number generator failed")]
    Random,
}

/// Fills `buf` from the operating system's generator.
pub fn fill_random(buf: &mut [u8]) -> Result<(), SecretsError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| SecretsError::Random)
}

/// `bytes` random bytes, as URL-safe base64 without padding (fits in URLs,
/// headers and cookies unescaped).
pub fn random_token(bytes: usize) -> Result<String, SecretsError> {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(&buf))
}

/// A new API key: [`API_KEY_PREFIX`] followed by [`API_KEY_BYTES`] random
/// bytes in URL-safe base64. Show it to its owner once, store [`digest`].
pub fn new_api_key() -> Result<String, SecretsError> {
    Ok(format!("{API_KEY_PREFIX}{}", random_token(API_KEY_BYTES)?))
}

/// Whether `candidate` has the shape of a key made by [`new_api_key`], so a
/// caller can refuse junk before touching the database.
pub fn is_api_key_shaped(candidate: &str) -> bool {
    // 32 bytes encode to 43 characters without padding.
    const ENCODED_LEN: usize = (API_KEY_BYTES * 4).div_ceil(3);
    match candidate.strip_prefix(API_KEY_PREFIX) {
        Some(body) => {
            body.len() == ENCODED_LEN
                && URL_SAFE_NO_PAD
                    .decode(body)
                    .is_ok_and(|raw| raw.len() == API_KEY_BYTES)
        }
        None => false,
    }
}

/// Lowercase hex SHA-256 of a high-entropy secret, the form in which API
/// keys and session tokens are stored and looked up.
///
/// A fast hash is right here only because the input is random and long: an
/// attacker holding the digest would have to search 2^256 values. Never use
/// this for passwords.
pub fn digest(secret: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut hex = String::with_capacity(hash.as_ref().len() * 2);
    for byte in hash.as_ref() {
        hex.push(hex_digit(byte >> 4));
        hex.push(hex_digit(byte & 0x0f));
    }
    hex
}

/// Whether `secret` hashes to `stored_digest` (as made by [`digest`]),
/// compared in constant time.
pub fn digest_matches(secret: &str, stored_digest: &str) -> bool {
    constant_time_eq(digest(secret).as_bytes(), stored_digest.as_bytes())
}

/// Equality whose running time does not depend on where the inputs first
/// differ, for comparing secrets. Lengths are not hidden: they are public for
/// every secret this hub compares.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn random_token_has_the_encoded_length_and_differs_each_time() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(random_token(0).unwrap(), "");
    }

    #[test]
    fn api_keys_carry_the_prefix_and_are_recognised() {
        let key = new_api_key().unwrap();
        assert!(key.starts_with("dothi_"));
        assert_eq!(key.len(), "dothi_".len() + 43);
        assert!(is_api_key_shaped(&key));
        assert!(!is_api_key_shaped(&key[1..]));
        assert!(!is_api_key_shaped(&key[..key.len() - 1]));
        assert!(!is_api_key_shaped(&format!("{key}A")));
        assert!(!is_api_key_shaped(&format!("dothi_{}", "+".repeat(43))));
        assert!(!is_api_key_shaped(""));
    }

    #[test]
    fn digest_is_hex_sha256() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_matches_only_its_own_secret() {
        let key = new_api_key().unwrap();
        let stored = digest(&key);
        assert!(digest_matches(&key, &stored));
        assert!(!digest_matches(&format!("{key}x"), &stored));
        assert!(!digest_matches(&key, &stored[1..]));
        assert!(!digest_matches(&key, ""));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sama"));
        assert!(!constant_time_eq(b"same", b"same "));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
