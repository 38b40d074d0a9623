//! The device registry: service groups and devices kept as the store's registry
//! records (never as entities: a group's API key is a secret).
//!
//! Groups are keyed by API key and devices by device id, within their tenant. A measure
//! names an API key and a device id but no tenant, so both are also looked up across
//! tenants; provisioning refuses a group or device whose key another tenant already
//! uses, and a measure that still matches in several tenants is refused.
//!
//! Every measure looks up its device and its group: those two lookups are remembered
//! for [`LOOKUP_TTL`] ([`Lookups`]), and forgotten whenever this registry writes, or
//! whenever the store says another node sharing it changed the registry
//! ([`Store::registry_generation`]): nodes see each other's provisioning changes at
//! once, and within [`LOOKUP_TTL`] should an announcement be lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::Records;
use ngsi::{Error, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::RegistryWrite;

use crate::model::{Device, ServiceGroup};

/// Registry collection of the service groups (key: API key).
pub const GROUPS: &str = "iot.groups";
/// Registry collection of the devices (key: device id).
pub const DEVICES: &str = "iot.devices";
/// Why a service group is refused when its API key is taken.
const GROUP_TAKEN: &str = "a service group with this apikey already exists";

/// What a lookup across tenants found.
#[derive(Debug)]
pub enum Found<T> {
    One {
        tenant: String,
        record: T,
    },
    None,
    /// Several tenants match: the caller must not guess.
    Ambiguous,
}

pub(crate) use hub::service::store_error;

fn decode<T: DeserializeOwned>(key: &str, value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| {
        tracing::error!(key, error = %e, "unreadable registry record");
        Error::new(ErrorKind::InternalError, "unreadable registry record")
    })
}

fn encode<T: Serialize>(record: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(record)
        .map_err(|e| Error::new(ErrorKind::InternalError, format!("cannot encode: {e}")))
}

/// A page of records and the total count.
pub struct Page<T> {
    pub items: Vec<T>,
    pub count: u64,
}

/// How long a measure's lookup of its device or group is remembered.
pub const LOOKUP_TTL: Duration = Duration::from_secs(5);
/// Lookups remembered at most (beyond, all are forgotten: a flood of unknown device
/// ids cannot grow the memory).
const LOOKUP_MAX: usize = 200_000;

/// Each tenant's device of one id.
type TenantDevices = Arc<Vec<(String, Device)>>;

/// Recent lookups of measures: by device id, every tenant's record of it; by tenant
/// and API key, the group.
#[derive(Default)]
struct Lookups {
    /// Bumped by each write: a lookup that read the store before a write ended is not
    /// remembered after it.
    generation: u64,
    /// The store's registry generation these lookups were taken at.
    store_generation: u64,
    devices: HashMap<String, (Instant, TenantDevices)>,
    groups: HashMap<(String, String), (Instant, Option<ServiceGroup>)>,
}

impl Lookups {
    fn forget(&mut self) {
        self.generation += 1;
        self.devices.clear();
        self.groups.clear();
    }

    fn full(&self) -> bool {
        self.devices.len() + self.groups.len() >= LOOKUP_MAX
    }
}

#[derive(Clone)]
pub struct Registry {
    store: Records,
    lookups: Arc<Mutex<Lookups>>,
}

impl Registry {
    pub fn new(store: Records) -> Self {
        Registry {
            store,
            lookups: Arc::default(),
        }
    }

    /// Forgets every remembered lookup (after a write, whatever its outcome).
    fn forget_lookups(&self) {
        if let Ok(mut l) = self.lookups.lock() {
            l.forget();
        }
    }

    /// The remembered lookups, forgotten first if another node changed the registry
    /// since they were taken.
    fn lookups(&self) -> Option<std::sync::MutexGuard<'_, Lookups>> {
        let now = self.store.registry_generation();
        let mut l = self.lookups.lock().ok()?;
        if l.store_generation != now {
            l.forget();
            l.store_generation = now;
        }
        Some(l)
    }

    fn generation(&self) -> Option<u64> {
        self.lookups().map(|l| l.generation)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> Result<Option<T>, Error> {
        self.store
            .registry_get(collection, tenant, key)
            .await
            .map_err(store_error)?
            .map(|v| decode(key, v))
            .transpose()
    }

    async fn page<T: DeserializeOwned>(
        &self,
        collection: &str,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<T>, Error> {
        let page = self
            .store
            .registry_list(collection, tenant, offset, limit)
            .await
            .map_err(store_error)?;
        let items = page
            .records
            .into_iter()
            .map(|r| decode(&r.key, r.value))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            count: page.count,
        })
    }

    async fn put<T: Serialize>(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, &T)>,
        mode: RegistryWrite,
    ) -> Result<(), Error> {
        let records = records
            .into_iter()
            .map(|(k, r)| encode(r).map(|v| (k, v)))
            .collect::<Result<_, _>>()?;
        let written = self
            .store
            .registry_put(collection, tenant, records, mode)
            .await
            .map_err(store_error);
        self.forget_lookups();
        written
    }

    /// Creates records, all or none: 409 saying `taken` when one's key is taken (or is
    /// given twice).
    async fn create<T: Serialize>(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, &T)>,
        taken: &str,
    ) -> Result<(), Error> {
        self.put(collection, tenant, records, RegistryWrite::Create)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::AlreadyExists => {
                    Error::already_exists(format!("{taken} (or is given twice)"))
                }
                _ => e,
            })
    }

    async fn delete(&self, collection: &str, tenant: &str, key: &str) -> Result<bool, Error> {
        let deleted = self
            .store
            .registry_delete(collection, tenant, key)
            .await
            .map_err(store_error);
        self.forget_lookups();
        deleted
    }

    // Service groups.

    /// Creates service groups, all or none: 409 when one's API key is taken, in this
    /// tenant or another.
    pub async fn create_groups(&self, tenant: &str, groups: &[ServiceGroup]) -> Result<(), Error> {
        for g in groups {
            let elsewhere = self
                .store
                .registry_find(GROUPS, &g.apikey)
                .await
                .map_err(store_error)?;
            if !elsewhere.is_empty() {
                return Err(Error::already_exists(GROUP_TAKEN));
            }
        }
        let records = groups.iter().map(|g| (g.apikey.clone(), g)).collect();
        self.create(GROUPS, tenant, records, GROUP_TAKEN).await
    }

    pub async fn group(&self, tenant: &str, apikey: &str) -> Result<Option<ServiceGroup>, Error> {
        self.get(GROUPS, tenant, apikey).await
    }

    pub async fn groups(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<ServiceGroup>, Error> {
        self.page(GROUPS, tenant, offset, limit).await
    }

    /// The tenant's service group when it has exactly one.
    pub async fn only_group(&self, tenant: &str) -> Result<Option<ServiceGroup>, Error> {
        let page = self.groups(tenant, 0, 2).await?;
        Ok(match (page.count, page.items.into_iter().next()) {
            (1, Some(g)) => Some(g),
            _ => None,
        })
    }

    pub async fn replace_group(&self, tenant: &str, group: &ServiceGroup) -> Result<(), Error> {
        self.put(
            GROUPS,
            tenant,
            vec![(group.apikey.clone(), group)],
            RegistryWrite::Replace,
        )
        .await
    }

    pub async fn delete_group(&self, tenant: &str, apikey: &str) -> Result<bool, Error> {
        self.delete(GROUPS, tenant, apikey).await
    }

    // Devices.

    /// Refuses a device whose API key and id another tenant already uses: a measure
    /// could not tell them apart.
    async fn check_unique(&self, tenant: &str, device: &Device) -> Result<(), Error> {
        let found = self
            .store
            .registry_find(DEVICES, &device.device_id)
            .await
            .map_err(store_error)?;
        for r in found {
            if r.tenant != tenant
                && r.value.get("apikey").and_then(|k| k.as_str()) == Some(&device.apikey)
            {
                return Err(Error::already_exists(format!(
                    "device {:?} with this apikey is provisioned in another service",
                    device.device_id
                )));
            }
        }
        Ok(())
    }

    /// Creates devices, all or none: 409 when one exists.
    pub async fn create_devices(&self, tenant: &str, devices: &[Device]) -> Result<(), Error> {
        for d in devices {
            self.check_unique(tenant, d).await?;
        }
        let records = devices.iter().map(|d| (d.device_id.clone(), d)).collect();
        let taken = "a device with this device_id already exists";
        self.create(DEVICES, tenant, records, taken).await
    }

    pub async fn device(&self, tenant: &str, device_id: &str) -> Result<Option<Device>, Error> {
        self.get(DEVICES, tenant, device_id).await
    }

    pub async fn devices(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Device>, Error> {
        self.page(DEVICES, tenant, offset, limit).await
    }

    pub async fn replace_device(&self, tenant: &str, device: &Device) -> Result<(), Error> {
        self.check_unique(tenant, device).await?;
        self.put(
            DEVICES,
            tenant,
            vec![(device.device_id.clone(), device)],
            RegistryWrite::Replace,
        )
        .await
    }

    pub async fn delete_device(&self, tenant: &str, device_id: &str) -> Result<bool, Error> {
        self.delete(DEVICES, tenant, device_id).await
    }

    /// Deletes the tenant's devices of an API key; how many.
    pub async fn delete_devices_of(&self, tenant: &str, apikey: &str) -> Result<u64, Error> {
        const PAGE: u64 = 500;
        let mut doomed = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.devices(tenant, offset, PAGE).await?;
            let n = page.items.len() as u64;
            doomed.extend(
                page.items
                    .into_iter()
                    .filter(|d| d.apikey == apikey)
                    .map(|d| d.device_id),
            );
            if n < PAGE {
                break;
            }
            offset += n;
        }
        let mut deleted = 0;
        for id in doomed {
            if self.delete_device(tenant, &id).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Provisions a device on its first measure; when another message provisioned it
    /// meanwhile, that one is kept.
    pub async fn autoprovision(&self, tenant: &str, device: Device) -> Result<Device, Error> {
        match self
            .put(
                DEVICES,
                tenant,
                vec![(device.device_id.clone(), &device)],
                RegistryWrite::Create,
            )
            .await
        {
            Ok(()) => Ok(device),
            Err(e) if e.kind == ErrorKind::AlreadyExists => self
                .device(tenant, &device.device_id)
                .await?
                .ok_or_else(|| Error::not_found("the device was deleted meanwhile")),
            Err(e) => Err(e),
        }
    }

    // Lookups of measures, across tenants.

    /// The device a measure names.
    pub async fn find_device(&self, apikey: &str, device_id: &str) -> Result<Found<Device>, Error> {
        let all = self.devices_named(device_id).await?;
        let matching = all
            .iter()
            .filter(|(_, d)| d.apikey == apikey)
            .map(|(tenant, d)| (tenant.clone(), d.clone()))
            .collect();
        Ok(one_of(matching))
    }

    /// Every tenant's device of this id (remembered for a while).
    async fn devices_named(&self, device_id: &str) -> Result<TenantDevices, Error> {
        let now = Instant::now();
        if let Some(l) = self.lookups()
            && let Some((at, found)) = l.devices.get(device_id)
            && now.duration_since(*at) < LOOKUP_TTL
        {
            return Ok(found.clone());
        }
        let generation = self.generation();
        let found = self
            .store
            .registry_find(DEVICES, device_id)
            .await
            .map_err(store_error)?;
        let found = Arc::new(
            found
                .into_iter()
                .map(|r| decode(&r.key, r.value).map(|d| (r.tenant, d)))
                .collect::<Result<Vec<_>, _>>()?,
        );
        if let Some(mut l) = self.lookups()
            && Some(l.generation) == generation
        {
            if l.full() {
                l.forget();
            } else {
                l.devices
                    .insert(device_id.to_string(), (now, found.clone()));
            }
        }
        Ok(found)
    }

    /// The group of a measure's device (remembered for a while; the provisioning API
    /// reads [`Registry::group`], always from the store).
    pub async fn measure_group(
        &self,
        tenant: &str,
        apikey: &str,
    ) -> Result<Option<ServiceGroup>, Error> {
        let now = Instant::now();
        let key = (tenant.to_string(), apikey.to_string());
        if let Some(l) = self.lookups()
            && let Some((at, group)) = l.groups.get(&key)
            && now.duration_since(*at) < LOOKUP_TTL
        {
            return Ok(group.clone());
        }
        let generation = self.generation();
        let group = self.group(tenant, apikey).await?;
        if let Some(mut l) = self.lookups()
            && Some(l.generation) == generation
        {
            if l.full() {
                l.forget();
            } else {
                l.groups.insert(key, (now, group.clone()));
            }
        }
        Ok(group)
    }

    /// The service group of an API key.
    pub async fn find_group(&self, apikey: &str) -> Result<Found<ServiceGroup>, Error> {
        let found = self
            .store
            .registry_find(GROUPS, apikey)
            .await
            .map_err(store_error)?;
        let matching = found
            .into_iter()
            .map(|r| decode(&r.key, r.value).map(|g| (r.tenant, g)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(one_of(matching))
    }
}

fn one_of<T>(mut matching: Vec<(String, T)>) -> Found<T> {
    match (matching.pop(), matching.is_empty()) {
        (Some((tenant, record)), true) => Found::One { tenant, record },
        (None, _) => Found::None,
        (Some(_), false) => Found::Ambiguous,
    }
}
