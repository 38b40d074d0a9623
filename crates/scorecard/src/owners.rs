//! Who acts for which owner agency. A task group is edited, and an entered KPI value is
//! submitted, by the agency that owns it: an admin records which agencies an operator
//! acts for (`PUT /scorecard/v1/members/{actor}`), per tenant. Admins act for every
//! agency. Each grant is audited by the caller.

use hub::grants::AgencyGrant;
use hub::{Hub, Scope};
use ngsi::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Memberships: a registry collection keyed by actor (`user:…`, `key:…`).
pub(crate) const MEMBERS: AgencyGrant = AgencyGrant {
    collection: "scorecard-members",
    audit_action: "grant owner-agency membership",
    admins_only: "memberships are granted by admins",
    check,
    store_error,
};
const MAX_AGENCIES: usize = 100;
const MAX_NAME: usize = 200;
const MAX_LISTED: u64 = 1_000;

/// The agencies an actor acts for in one tenant (the body of a grant).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub agencies: Vec<String>,
}

fn store_error(e: store::StoreError) -> Error {
    Error::new(ErrorKind::InternalError, e.to_string())
}

fn check(actor: &str, agencies: &[String]) -> Result<(), Error> {
    if actor.is_empty() || actor.len() > MAX_NAME || !actor.contains(':') {
        return Err(Error::bad_data(
            "the actor is named as the audit log names it: user:NAME or key:ID",
        ));
    }
    if agencies.len() > MAX_AGENCIES
        || agencies
            .iter()
            .any(|a| a.trim().is_empty() || a.len() > MAX_NAME)
    {
        return Err(Error::bad_data(format!(
            "at most {MAX_AGENCIES} agencies, each named in 1 to {MAX_NAME} bytes"
        )));
    }
    Ok(())
}

/// The agencies the scope's caller acts for in the scope's tenant (none recorded: none).
async fn membership(hub: &Hub, scope: &Scope) -> Result<Vec<String>, Error> {
    MEMBERS
        .agencies(&hub.records(), &scope.tenant, &scope.caller.actor)
        .await
}

/// Whether the scope's caller acts for `agency` in the scope's tenant.
pub async fn acts_for(hub: &Hub, scope: &Scope, agency: &str) -> Result<bool, Error> {
    if scope.caller.is_admin() {
        return Ok(true);
    }
    Ok(membership(hub, scope).await?.iter().any(|a| a == agency))
}

/// What the caller acts for, for the page to offer only what it may do: `all` for an
/// admin, else the agencies recorded.
pub async fn mine(hub: &Hub, scope: &Scope) -> Result<Value, Error> {
    let all = scope.caller.is_admin();
    let agencies = if all {
        Vec::new()
    } else {
        membership(hub, scope).await?
    };
    Ok(json!({"actor": scope.caller.actor, "all": all, "agencies": agencies}))
}

/// Refuses (403) a caller who does not act for `agency`; `what` names the action.
pub async fn require(hub: &Hub, scope: &Scope, agency: &str, what: &str) -> Result<(), Error> {
    if acts_for(hub, scope, agency).await? {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "{what} is for the owner agency ({agency}); an admin grants who acts for it"
        )))
    }
}

/// Every membership of the scope's tenant, by actor.
pub async fn list(hub: &Hub, scope: &Scope) -> Result<Value, Error> {
    let (grants, total) = MEMBERS
        .list(&hub.records(), &scope.tenant, MAX_LISTED)
        .await?;
    let members: Vec<Value> = grants
        .into_iter()
        .map(|(actor, agencies)| json!({"actor": actor, "agencies": agencies}))
        .collect();
    Ok(json!({"members": members, "total": total}))
}
