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
