//! The reporter's personal data, kept apart from the report: registry records of the
//! store (collection [`PRIVATE`]) that no NGSI-LD operation, export or public route
//! returns. One collection, three kinds of key, written together in one transaction:
//!
//! - `contact:{ref}`: the contact, under an opaque random reference;
//! - `link:{service_request_id}`: the report's reference (the entity does not hold it);
//! - `token:{sha256 of the token}`: the report of a tracking token (kept as a digest).
//!
//! Reading a contact needs the "see reporter" right ([`ACCESS`]: actor → agencies),
//! held by admins and by the operators an admin names; every read is audited.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Contacts, links and tokens.
pub const PRIVATE: &str = "reports.private";

pub fn contact_key(reference: &str) -> String {
    format!("contact:{reference}")
}

pub fn link_key(service_request_id: &str) -> String {
    format!("link:{service_request_id}")
}

pub fn token_key(token: &str) -> String {
    format!("token:{}", digest(token))
}
/// The "see reporter" right ([`hub::grants`]): actor → the agencies whose reporters
/// they may see ("*": every agency).
pub const ACCESS: &str = "reports.reporter-access";
/// Holiday calendars by year (an admin's, replacing the shipped one).
pub const HOLIDAYS: &str = "reports.holidays";

/// The version of the consent text shown to reporters (recorded with each contact).
pub const CONSENT_VERSION: &str = "2026-01";

/// What a reporter gave of themselves, and their consent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self == &Contact::default()
    }

    /// The values, for checks that none of them leaks.
    pub fn values(&self) -> Vec<&str> {
        [
            &self.first_name,
            &self.last_name,
            &self.email,
            &self.phone,
            &self.device_id,
            &self.account_id,
        ]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect()
    }

    /// Bounded, trimmed; an email must look like one, a phone hold digits.
    pub fn check(mut self) -> Result<Contact, String> {
        for (what, v) in [
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("email", &mut self.email),
            ("phone", &mut self.phone),
            ("device_id", &mut self.device_id),
            ("account_id", &mut self.account_id),
        ] {
            if let Some(s) = v.take() {
                let s = s.trim().to_string();
                if s.len() > 200 || s.chars().any(char::is_control) {
                    return Err(format!("{what}: at most 200 bytes, no control characters"));
                }
                if !s.is_empty() {
                    *v = Some(s);
                }
            }
        }
        if let Some(e) = &self.email
            && (!e.contains('@') || e.contains(char::is_whitespace))
        {
            return Err("email is not an address".into());
        }
        if let Some(p) = &self.phone
            && (p.chars().filter(char::is_ascii_digit).count() < 6
                || !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c)))
        {
            return Err("phone: digits, spaces and + - ( ) . only".into());
        }
        Ok(self)
    }

    /// What a rate limit per contact counts: the email, else the phone.
    pub fn key(&self) -> Option<String> {
        self.email.as_deref().map(str::to_lowercase).or_else(|| {
            self.phone
                .as_ref()
                .map(|p| p.chars().filter(char::is_ascii_digit).collect())
        })
    }
}

/// The record kept under `contact:{ref}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub service_request_id: String,
    pub contact: Contact,
    pub consent_version: String,
    pub consent_at: DateTime<Utc>,
}

/// A new random secret (tokens, references): 128 bits, hex.
pub fn secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The digest a token is kept as.
pub fn digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` has the shape of a token (so that other strings are never looked up).
pub fn is_token(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}
