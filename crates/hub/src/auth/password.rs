//! Human passwords: the policy a new password must meet, and its storage as
//! an argon2id hash.
//!
//! Unlike the random secrets of `secrets`, a password is chosen by a person
//! and can be guessed, so it is stored with a deliberately slow, memory-hard
//! hash whose cost is tuned below. The policy follows the length-over-rules
//! advice of NIST SP 800-63B: a minimum length, a generous maximum, and a
//! refusal of passwords that are known to be common or that repeat the user
//! name; no composition rules.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

use super::secrets::fill_random;

/// Fewest characters (Unicode scalar values, not bytes) a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have; long enough for any passphrase,
/// short enough that hashing it cannot be used to load the server.
pub const MAX_CHARS: usize = 256;

// Cost of one hash, aimed at 50-150 ms. Measured with the ignored test
// `hash_time` on the project's 2-core machine (release build, argon2 0.6.0,
// another build running beside it): hash 112-128 ms, verify 113 ms,
// dummy_verify 105 ms. Rerun it after changing these, and regenerate
// DUMMY_PHC. Each hash holds 64 MiB while it runs, so callers should bound
// how many run at once.
/// Memory per hash, in KiB.
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Passes over that memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes; the `argon2` crate runs them one after the other unless built with
/// its `parallel` feature, so more lanes would only add time here.
pub const ARGON2_PARALLELISM: u32 = 1;

const SALT_BYTES: usize = 16;

// Stored hashes whose parameters exceed these are refused unread: the
// parameters come from the hash itself, and a corrupted or planted hash with
// a huge memory cost would abort the process on allocation, or a huge
// iteration count would hang a worker. They leave room for retuning upwards.
const MAX_ACCEPTED_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ACCEPTED_ITERATIONS: u32 = 16;
const MAX_ACCEPTED_PARALLELISM: u32 = 8;

// Our own hashes must stay verifiable.
const _: () = assert!(
    ARGON2_MEMORY_KIB <= MAX_ACCEPTED_MEMORY_KIB
        && ARGON2_ITERATIONS <= MAX_ACCEPTED_ITERATIONS
        && ARGON2_PARALLELISM <= MAX_ACCEPTED_PARALLELISM
);

/// The fixed hash that [`dummy_verify`] checks against: the password
/// "dothi-dummy-password" under exactly the parameters above (a test keeps
/// them in step), so that it costs what a real verification costs.
const DUMMY_PHC: &str = "$argon2id$v=19$m=65536,t=2,p=1$WOAAgi1+mc24KJaoH6b6uA$HdLaGhOmO8k0NnPO5tIoS8z1R3kSJOSRO1GjTH2yAc4";

const PARAMS: Params = match Params::new(
    ARGON2_MEMORY_KIB,
    ARGON2_ITERATIONS,
    ARGON2_PARALLELISM,
    None,
) {
    Ok(params) => params,
    // Evaluated at compile time: bad constants fail the build.
    Err(_) => panic!("invalid argon2 parameters"),
};

/// Why a password was refused; the message is meant for the person who chose it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("the password must not be the same as the user name")]
    SameAsUsername,
    #[error("the password is too common; choose one that is harder to guess")]
    Common,
}

/// Why a password could not be hashed; these are server faults, not the user's.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Random(#[from] super::secrets::SecretsError),
    #[error("argon2 failed: {0}")]
    Argon2(argon2::password_hash::Error),
}

/// Checks a new password for `username` against the policy.
///
/// The name and the common-password list are compared without regard to
/// case, since changing case adds almost nothing to a guesser's work.
pub fn check_policy(username: &str, password: &str) -> Result<(), PolicyError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() {
        return Err(PolicyError::SameAsUsername);
    }
    if common_passwords().contains(lowered.as_str()) {
        return Err(PolicyError::Common);
    }
    Ok(())
}

/// Whether `password` is on the embedded common-password list (any case).
pub fn is_common(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Hashes `password` with argon2id, the current parameters and a fresh
/// random salt, and returns the PHC string to store
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    hash_with(&PARAMS, password)
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt)?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = hasher
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(HashError::Argon2)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`. Any malformed,
/// unsupported or absurdly expensive hash gives `false`; this never panics.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Some(parsed) = parse_acceptable(phc) else {
        return false;
    };
    // The algorithm, version and cost come from the stored hash, so hashes
    // made under older parameters keep working.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one [`verify_password`] and returns nothing, for a
/// login whose user name is unknown: answering at once would tell an
/// attacker which names exist.
pub fn dummy_verify(password: &str) {
    std::hint::black_box(verify_password(password, DUMMY_PHC));
}

/// Whether `phc` was made with other than the current parameters (or is not
/// a usable hash), so that the caller may store a fresh hash after the next
/// successful login.
pub fn needs_rehash(phc: &str) -> bool {
    let Some(parsed) = parse_acceptable(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != Algorithm::Argon2id.as_str()
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() != ARGON2_MEMORY_KIB
        || params.t_cost() != ARGON2_ITERATIONS
        || params.p_cost() != ARGON2_PARALLELISM
}

fn parse_acceptable(phc: &str) -> Option<PasswordHash> {
    let parsed = PasswordHash::new(phc).ok()?;
    Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let affordable = params.m_cost() <= MAX_ACCEPTED_MEMORY_KIB
        && params.t_cost() <= MAX_ACCEPTED_ITERATIONS
        && params.p_cost() <= MAX_ACCEPTED_PARALLELISM;
    affordable.then_some(parsed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Small enough to keep debug-build tests quick; correctness does not
    /// depend on the cost.
    fn cheap() -> Params {
        Params::new(64, 1, 1, None).unwrap()
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert_eq!(check_policy("ana", "short"), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy("ana", "elevenchars"),
            Err(PolicyError::TooShort)
        );
        assert_eq!(check_policy("ana", "twelve chars"), Ok(()));
        // 11 characters, 22 bytes: still too short.
        assert_eq!(
            check_policy("ana", "ééééééééééé"),
            Err(PolicyError::TooShort)
        );
        assert_eq!(check_policy("ana", "éééééééééééé"), Ok(()));
    }

    #[test]
    fn policy_caps_the_length() {
        assert_eq!(check_policy("ana", &"x7".repeat(128)), Ok(()));
        assert_eq!(
            check_policy("ana", &format!("{}z", "x7".repeat(128))),
            Err(PolicyError::TooLong)
        );
        // 256 characters of three bytes each are fine.
        assert_eq!(check_policy("ana", &"€".repeat(256)), Ok(()));
    }

    #[test]
    fn policy_refuses_the_username_in_any_case() {
        assert_eq!(
            check_policy("Maintenance-Crew", "maintenance-crew"),
            Err(PolicyError::SameAsUsername)
        );
        assert_eq!(
            check_policy("maintenance-crew", "MAINTENANCE-CREW"),
            Err(PolicyError::SameAsUsername)
        );
        assert_eq!(
            check_policy("maintenance-crew", "maintenance-crew2"),
            Ok(())
        );
    }

    #[test]
    fn policy_refuses_common_passwords_in_any_case() {
        assert_eq!(
            check_policy("ana", "qwerty123456"),
            Err(PolicyError::Common)
        );
        assert_eq!(
            check_policy("ana", "QWERTY123456"),
            Err(PolicyError::Common)
        );
        assert_eq!(
            check_policy("ana", "1q2w3e4r5t6y"),
            Err(PolicyError::Common)
        );
        assert!(is_common("Q1w2E3r4T5y6"));
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn common_list_is_lowercase_and_long_enough_to_matter() {
        let list = common_passwords();
        assert!(list.len() > 150, "{} entries", list.len());
        for entry in list {
            assert_eq!(*entry, entry.to_lowercase());
            assert!(entry.chars().count() >= MIN_CHARS, "{entry}");
        }
    }

    #[test]
    fn policy_messages_are_readable() {
        assert_eq!(
            PolicyError::TooShort.to_string(),
            "the password must have at least 12 characters"
        );
        assert_eq!(
            PolicyError::TooLong.to_string(),
            "the password must have at most 256 characters"
        );
    }

    #[test]
    fn hash_then_verify_round_trips() {
        let phc = hash_with(&cheap(), "correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn salts_differ_between_hashes() {
        let a = hash_with(&cheap(), "same password here").unwrap();
        let b = hash_with(&cheap(), "same password here").unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same password here", &a));
        assert!(verify_password("same password here", &b));
    }

    #[test]
    fn hash_password_uses_the_current_parameters() {
        let phc = hash_password("a real-cost password").unwrap();
        let expected = format!(
            "$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_PARALLELISM}$"
        );
        assert!(phc.starts_with(&expected), "{phc}");
        assert!(!needs_rehash(&phc));
        assert!(verify_password("a real-cost password", &phc));
    }

    #[test]
    fn malformed_hashes_verify_false() {
        let good = hash_with(&cheap(), "correct horse battery staple").unwrap();
        let truncated = &good[..good.len() - 5];
        let bad = [
            "",
            "$",
            "plain text",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=x,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            truncated,
        ];
        for phc in bad {
            assert!(
                !verify_password("correct horse battery staple", phc),
                "{phc}"
            );
            assert!(needs_rehash(phc), "{phc}");
        }
    }

    #[test]
    fn verify_survives_every_truncation_and_single_character_change() {
        let good = hash_with(&cheap(), "correct horse battery staple").unwrap();
        for end in 0..good.len() {
            assert!(!verify_password(
                "correct horse battery staple",
                &good[..end]
            ));
        }
        for (at, _) in good.char_indices() {
            for replacement in ['$', '=', ',', '0', '9', 'A', '/', '+', '\u{e9}'] {
                let mut mutated = good.clone();
                mutated.replace_range(at..=at, &replacement.to_string());
                // Only "no panic" is asserted: a change can leave the hash intact.
                verify_password("correct horse battery staple", &mutated);
                needs_rehash(&mutated);
            }
        }
    }

    #[test]
    fn absurd_costs_are_refused_without_running() {
        // Would ask for 4 TiB of memory, or run ~forever, if taken at face value.
        for params in [
            "m=4294967295,t=1,p=1",
            "m=64,t=4294967295,p=1",
            "m=65536,t=1,p=64",
        ] {
            let phc = format!("$argon2id$v=19${params}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
            assert!(!verify_password("whatever it is", &phc), "{phc}");
        }
    }

    #[test]
    fn other_argon2_variants_still_verify_but_want_a_rehash() {
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cheap());
        let phc = argon2i
            .hash_password_with_salt(b"legacy password", b"saltsaltsalt")
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2i$"));
        assert!(verify_password("legacy password", &phc));
        assert!(needs_rehash(&phc));
        let cheap_id = hash_with(&cheap(), "legacy password").unwrap();
        assert!(needs_rehash(&cheap_id));
    }

    #[test]
    fn dummy_hash_matches_the_current_parameters() {
        // If this fails after retuning, regenerate DUMMY_PHC with
        // hash_password("dothi-dummy-password").
        assert!(!needs_rehash(DUMMY_PHC));
        assert!(verify_password("dothi-dummy-password", DUMMY_PHC));
        dummy_verify("anything");
    }

    /// Prints the time of one hash, one verification and one dummy
    /// verification under the current parameters. Run it in a release build:
    /// `cargo test --release -- --ignored --nocapture hash_time`.
    #[test]
    #[ignore]
    fn hash_time() {
        const RUNS: u32 = 10;
        let time = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            for _ in 0..RUNS {
                f();
            }
            (start.elapsed() / RUNS).as_millis()
        };
        let phc = hash_password("timing the password hash").unwrap();
        let hash = time(&|| {
            hash_password("timing the password hash").unwrap();
        });
        let verify = time(&|| assert!(verify_password("timing the password hash", &phc)));
        let dummy = time(&|| dummy_verify("timing the password hash"));
        println!(
            "argon2id m={ARGON2_MEMORY_KIB} KiB t={ARGON2_ITERATIONS} p={ARGON2_PARALLELISM}: \
             hash {hash} ms, verify {verify} ms, dummy_verify {dummy} ms"
        );
    }
}
