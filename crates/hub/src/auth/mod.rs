//! Who asks, and what they may do: roles, tenant and type grants, the caller of a
//! request, and the identities behind it (users, API keys, web sessions, OIDC
//! tokens) kept in the store so that every node sees the same ones.
//!
//! Route-level permissions are declared beside each route ([`crate::http::gate`]);
//! grants on tenants and entity types are checked here, by the [`crate::Hub`], on
//! every operation, whatever door the request came in by.
//!
//! **Invariant:** no secret is kept or logged in clear: API keys and session tokens
//! are stored as SHA-256 digests, passwords as argon2id hashes.

pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod secrets;
pub mod totp;

use std::collections::BTreeSet;
use std::sync::Arc;

use ngsi::{Context, Error};
use serde::{Deserialize, Serialize};

pub use identity::{Identity, IdentityConfig};

/// A role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in every tenant, and the management of users, keys and the audit.
    Admin,
    /// Reads and writes entities, subscriptions and devices in granted tenants.
    Operator,
    /// Reads in granted tenants.
    Viewer,
    /// Writes the measures of its own entities (granted tenants and types).
    Device,
    /// A resident: their own reports.
    Citizen,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Device => "device",
            Role::Citizen => "citizen",
        }
    }

    pub fn parse(s: &str) -> Result<Role, Error> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            "device" => Ok(Role::Device),
            "citizen" => Ok(Role::Citizen),
            _ => Err(Error::bad_data(format!(
                "unknown role {s:?}: admin, operator, viewer, device or citizen"
            ))),
        }
    }

    /// Whether the role may read (`Access::Read`) or write (`Access::Write`) entities
    /// and subscriptions of a tenant it is granted.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Read => matches!(self, Role::Admin | Role::Operator | Role::Viewer),
            Access::Write => matches!(self, Role::Admin | Role::Operator | Role::Device),
        }
    }
}

/// What an operation does to a tenant's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The tenant name that grants every tenant.
pub const ALL_TENANTS: &str = "*";

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// No credentials.
    Anonymous,
    /// A web session cookie; writes must carry its CSRF token.
    Session { id: String, csrf: String },
    /// An API key (`Authorization: Bearer`).
    Key { id: String },
    /// An OIDC bearer token.
    Token,
    /// `--insecure`: no authentication, every request acts as admin.
    Insecure,
    /// A component of this process acting on its own (the demo loader, the IoT agent
    /// after checking a device's key, a command-line import).
    System,
}

/// Who asks: identity, role and grants, and the request it came with.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The actor as the audit log names it (`user:…`, `key:…`, `oidc:…`,
    /// `system:…`, `anonymous`, `insecure`).
    pub actor: String,
    /// A name to show (the username, the key's name).
    pub name: String,
    /// None for an anonymous caller.
    pub role: Option<Role>,
    /// Granted tenants by name (the default tenant is ""), or [`ALL_TENANTS`].
    pub tenants: BTreeSet<String>,
    /// Entity types (expanded IRIs) the caller is limited to; None: every type.
    pub types: Option<BTreeSet<String>>,
    pub via: Via,
    /// The request, for the audit log.
    pub request: RequestInfo,
    /// Whether the entity writes of this caller are audited (all but device
    /// telemetry, which the history records).
    pub audited_writes: bool,
}

/// What the audit log records of a request.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub id: Option<String>,
    pub client: Option<String>,
    /// `METHOD /route/{template}`, or the name of an in-process action.
    pub action: String,
}

impl Caller {
    /// A caller with no credentials.
    pub fn anonymous(request: RequestInfo) -> Caller {
        Caller {
            actor: "anonymous".into(),
            name: "anonymous".into(),
            role: None,
            tenants: BTreeSet::new(),
            types: None,
            via: Via::Anonymous,
            request,
            audited_writes: true,
        }
    }

    /// A component of this process, with every right (`component` names it in the
    /// audit log: `demo`, `import`, `iot`…).
    pub fn system(component: &str) -> Caller {
        Caller {
            actor: format!("system:{component}"),
            name: component.into(),
            role: Some(Role::Admin),
            tenants: BTreeSet::from([ALL_TENANTS.to_string()]),
            types: None,
            via: Via::System,
            request: RequestInfo {
                action: component.into(),
                ..RequestInfo::default()
            },
            audited_writes: true,
        }
    }

    /// The IoT agent writing device measures whose group key it has checked: the
    /// history keeps every measure, so the audit log does not repeat them.
    pub fn telemetry(component: &str) -> Caller {
        Caller {
            audited_writes: false,
            ..Caller::system(component)
        }
    }

    /// Every request under `--insecure`.
    pub fn insecure(request: RequestInfo) -> Caller {
        Caller {
            actor: "insecure".into(),
            name: "insecure".into(),
            role: Some(Role::Admin),
            tenants: BTreeSet::from([ALL_TENANTS.to_string()]),
            types: None,
            via: Via::Insecure,
            request,
            audited_writes: true,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    pub fn is_anonymous(&self) -> bool {
        self.role.is_none()
    }

    /// Whether the caller is granted the tenant (admins are granted every one).
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.is_admin() || self.tenants.contains(ALL_TENANTS) || self.tenants.contains(tenant)
    }

    /// Checks that the caller may read or write the tenant's data: 401 when
    /// anonymous, 403 when the role or the grants do not allow it.
    pub fn check(&self, tenant: &str, access: Access) -> Result<(), Error> {
        let Some(role) = self.role else {
            return Err(Error::unauthenticated("credentials are required"));
        };
        if !role.allows(access) {
            return Err(Error::forbidden(format!(
                "the role {} may not {} entities",
                role.as_str(),
                match access {
                    Access::Read => "read",
                    Access::Write => "write",
                }
            )));
        }
        if !self.has_tenant(tenant) {
            return Err(Error::forbidden(format!(
                "no grant on tenant {}",
                if tenant.is_empty() {
                    "(default)"
                } else {
                    tenant
                }
            )));
        }
        Ok(())
    }

    /// Whether an entity of these types is within the caller's type grant.
    pub fn allows_types(&self, types: &[String]) -> bool {
        match &self.types {
            None => true,
            // Every type of the entity must be granted: an entity of a granted and an
            // ungranted type is out of reach.
            Some(granted) => !types.is_empty() && types.iter().all(|t| granted.contains(t)),
        }
    }

    /// The audit record of an action of this caller on a tenant.
    pub fn audit(&self, tenant: Option<&str>, targets: Vec<String>) -> store::AuditRecord {
        store::AuditRecord {
            time: chrono::Utc::now(),
            actor: self.actor.clone(),
            role: self.role.map(|r| r.as_str().to_string()),
            tenant: tenant.map(str::to_string),
            action: self.request.action.clone(),
            targets,
            failed: Vec::new(),
            request_id: self.request.id.clone(),
            client: self.request.client.clone(),
            outcome: "ok".into(),
            detail: None,
        }
    }
}

/// Expands a grant's type names (short names or IRIs) with the core @context.
pub fn expand_types(types: &[String]) -> BTreeSet<String> {
    let ctx = Context::core();
    types.iter().map(|t| ctx.expand(t)).collect()
}

/// A shared caller, as [`crate::Scope`] holds it.
pub type CallerRef = Arc<Caller>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    fn caller(role: Role, tenants: &[&str]) -> Caller {
        Caller {
            role: Some(role),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            ..Caller::anonymous(RequestInfo::default())
        }
    }

    #[test]
    fn roles_and_grants_decide_access() {
        let viewer = caller(Role::Viewer, &["a"]);
        assert!(viewer.check("a", Access::Read).is_ok());
        assert_eq!(
            viewer.check("a", Access::Write).unwrap_err().kind,
            ngsi::ErrorKind::Forbidden
        );
        assert_eq!(
            viewer.check("b", Access::Read).unwrap_err().kind,
            ngsi::ErrorKind::Forbidden
        );
        let operator = caller(Role::Operator, &["a", ""]);
        assert!(operator.check("", Access::Write).is_ok());
        assert!(operator.check("b", Access::Write).is_err());
        let every = caller(Role::Operator, &[ALL_TENANTS]);
        assert!(every.check("anything", Access::Write).is_ok());
        let admin = caller(Role::Admin, &[]);
        assert!(admin.check("b", Access::Write).is_ok());
        let device = caller(Role::Device, &["a"]);
        assert!(device.check("a", Access::Read).is_err());
        assert!(device.check("a", Access::Write).is_ok());
        let anonymous = Caller::anonymous(RequestInfo::default());
        assert_eq!(
            anonymous.check("", Access::Read).unwrap_err().kind,
            ngsi::ErrorKind::Unauthenticated
        );
    }

    #[test]
    fn a_type_grant_needs_every_type_of_the_entity() {
        let mut c = caller(Role::Operator, &["a"]);
        c.types = Some(BTreeSet::from(["urn:T1".to_string()]));
        assert!(c.allows_types(&["urn:T1".into()]));
        assert!(!c.allows_types(&["urn:T1".into(), "urn:T2".into()]));
        assert!(!c.allows_types(&[]));
    }
}
