//! The registry: small JSON records kept beside the entities, each under a
//! (collection, tenant, key), for the configuration components keep for themselves —
//! the IoT agent's service groups and devices.
//!
//! **Invariant:** a registry record is never an entity. No NGSI-LD operation reads or
//! returns one, so a record may hold secrets (a device group's API key). Writes go the
//! way every write goes: durable when the call returns, serialized with the others.

use serde_json::Value;

/// How [`crate::Store::registry_put`] treats keys that already hold a record. A put
/// writes all its records or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryWrite {
    /// Every key must be free; otherwise nothing is written and the put is refused
    /// with `AlreadyExists`.
    Create,
    /// Every key must hold a record; otherwise nothing is written and the put is
    /// refused with `ResourceNotFound`.
    Replace,
    /// Each record is created or replaced.
    Upsert,
}

/// One record, as a lookup across tenants returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    pub tenant: String,
    pub key: String,
    pub value: Value,
}

/// A page of one tenant's records of a collection, in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryPage {
    pub records: Vec<RegistryRecord>,
    /// How many records the tenant has in the collection, in all.
    pub count: u64,
}

/// Registry records written with an entity operation ([`crate::WriteOp::with_records`]):
/// they commit with the operation, and a refusal of either fails both.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryPut {
    pub collection: String,
    pub tenant: String,
    /// (key, value)
    pub records: Vec<(String, Value)>,
    pub mode: RegistryWrite,
}

impl RegistryPut {
    pub fn new(
        collection: impl Into<String>,
        tenant: impl Into<String>,
        records: Vec<(String, Value)>,
        mode: RegistryWrite,
    ) -> Self {
        RegistryPut {
            collection: collection.into(),
            tenant: tenant.into(),
            records,
            mode,
        }
    }
}

/// Why a put of records under `keys` is refused, given which keys hold a record:
/// a `Create` when a key is taken or repeated, a `Replace` when one is free. Every
/// backend decides with this, before it writes anything.
pub(crate) fn refusal<'a>(
    mode: RegistryWrite,
    keys: impl IntoIterator<Item = &'a str>,
    mut exists: impl FnMut(&str) -> bool,
) -> Option<ngsi::Error> {
    if mode == RegistryWrite::Upsert {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        let found = exists(key);
        let repeated = !seen.insert(key);
        match mode {
            RegistryWrite::Create if found || repeated => {
                return Some(ngsi::Error::already_exists(format!(
                    "{key:?} already exists"
                )));
            }
            RegistryWrite::Replace if !found => {
                return Some(ngsi::Error::not_found(format!("{key:?} not found")));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_is_refused_as_its_mode_says() {
        let taken = |k: &str| k == "a";
        let kind = |mode, keys: &[&str]| refusal(mode, keys.iter().copied(), taken).map(|e| e.kind);
        use ngsi::ErrorKind::{AlreadyExists, ResourceNotFound};
        assert_eq!(kind(RegistryWrite::Create, &["b", "c"]), None);
        assert_eq!(
            kind(RegistryWrite::Create, &["b", "a"]),
            Some(AlreadyExists)
        );
        assert_eq!(
            kind(RegistryWrite::Create, &["b", "b"]),
            Some(AlreadyExists)
        );
        assert_eq!(kind(RegistryWrite::Replace, &["a"]), None);
        assert_eq!(
            kind(RegistryWrite::Replace, &["a", "b"]),
            Some(ResourceNotFound)
        );
        assert_eq!(kind(RegistryWrite::Upsert, &["a", "a", "b"]), None);
    }
}
