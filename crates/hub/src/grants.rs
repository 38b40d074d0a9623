//! Agency grants: a right that an admin gives an actor (`user:…`, `key:…`) over a list
//! of agencies, per tenant. Each right is one registry collection keyed by actor, whose
//! records are `{"agencies": [...]}`; granting no agency deletes the record. Services
//! describe their right once ([`AgencyGrant`]) and keep their own routes and checks
//! of who holds it.

use ngsi::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Records;
use crate::auth::{Caller, Identity};

/// The record kept per actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agencies {
    pub agencies: Vec<String>,
}

/// One right over agencies, as a service defines it.
pub struct AgencyGrant {
    /// The registry collection that holds it.
    pub collection: &'static str,
    /// What the audit log calls a grant (`"{audit_action} ({request action})"`).
    pub audit_action: &'static str,
    /// The refusal a caller who is not an admin gets.
    pub admins_only: &'static str,
    /// The bounds of a grant (actor name, how many agencies), as a 400 error.
    pub check: fn(&str, &[String]) -> Result<(), Error>,
    /// How a store error is told to the client.
    pub store_error: fn(store::StoreError) -> Error,
}

impl AgencyGrant {
    /// The agencies `actor` holds the right for in `tenant` (none recorded: none).
    pub async fn agencies(
        &self,
        records: &Records,
        tenant: &str,
        actor: &str,
    ) -> Result<Vec<String>, Error> {
        let stored = records
            .registry_get(self.collection, tenant, actor)
            .await
            .map_err(self.store_error)?;
        Ok(stored
            .and_then(|v| serde_json::from_value::<Agencies>(v).ok())
            .map(|a| a.agencies)
            .unwrap_or_default())
    }

    /// Records (or, with no agencies, takes back) the right of `actor` in `tenant`:
    /// admins only, bounded by [`AgencyGrant::check`], audited in `audit` when given.
    pub async fn set(
        &self,
        records: &Records,
        audit: Option<&Identity>,
        caller: &Caller,
        tenant: &str,
        actor: &str,
        agencies: Vec<String>,
    ) -> Result<(), Error> {
        if !caller.is_admin() {
            return Err(Error::forbidden(self.admins_only));
        }
        (self.check)(actor, &agencies)?;
        if agencies.is_empty() {
            records
                .registry_delete(self.collection, tenant, actor)
                .await
                .map_err(self.store_error)?;
        } else {
            records
                .registry_put(
                    self.collection,
                    tenant,
                    vec![(actor.to_string(), json!(Agencies { agencies }))],
                    store::RegistryWrite::Upsert,
                )
                .await
                .map_err(self.store_error)?;
        }
        if let Some(identity) = audit {
            let mut record = caller.audit(Some(tenant), vec![actor.to_string()]);
            record.action = format!("{} ({})", self.audit_action, record.action);
            identity.audit(vec![record]).await;
        }
        Ok(())
    }

    /// Up to `limit` grants of `tenant`, by actor (the agencies as stored), and how
    /// many there are.
    pub async fn list(
        &self,
        records: &Records,
        tenant: &str,
        limit: u64,
    ) -> Result<(Vec<(String, Value)>, u64), Error> {
        let page = records
            .registry_list(self.collection, tenant, 0, limit)
            .await
            .map_err(self.store_error)?;
        let grants = page
            .records
            .into_iter()
            .map(|r| (r.key, r.value.get("agencies").cloned().unwrap_or_default()))
            .collect();
        Ok((grants, page.count))
    }
}
