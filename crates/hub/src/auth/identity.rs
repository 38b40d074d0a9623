//! Users, API keys, web sessions and OIDC tokens, kept as registry records of the
//! store (collections `auth.users`, `auth.keys`, `auth.sessions`, `auth.links`,
//! tenant ""), so that every node of a shared database knows the same ones: a
//! session made on one node is used on another, and failed logins count on all.
//!
//! Keys and sessions are looked up by the SHA-256 digest of their secret; a lookup is
//! remembered for a few seconds (forgotten at once on this node's own changes, and
//! when the store says another node changed the registry), so that an authenticated
//! request costs no database read.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ngsi::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{AuditRecord, RegistryWrite, Store};

use super::{
    ALL_TENANTS, Caller, RequestInfo, Role, Via, expand_types, jwt, password, secrets, totp,
};
use crate::service::store_error;

const USERS: &str = "auth.users";
const KEYS: &str = "auth.keys";
const SESSIONS: &str = "auth.sessions";
const LINKS: &str = "auth.links";
/// How long a lookup of a key or session is remembered.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// A session's last activity is written at most this often.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Records of one listing at most.
const MAX_LISTED: u64 = 10_000;
/// Longest user name, key name, tenant list.
const MAX_NAME: usize = 64;
const MAX_GRANTS: usize = 256;

/// How identities behave.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// TOTP is required for admins' web logins.
    pub mfa_required: bool,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// The same for admins.
    pub admin_session_idle: Duration,
    /// Failed logins in a row that lock an account.
    pub lockout_failures: u32,
    /// How long a locked account stays locked.
    pub lockout_for: Duration,
    /// Identity providers whose bearer tokens are accepted.
    pub oidc: Vec<OidcIssuer>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            mfa_required: false,
            session_idle: Duration::from_secs(30 * 60),
            admin_session_idle: Duration::from_secs(15 * 60),
            lockout_failures: 5,
            lockout_for: Duration::from_secs(15 * 60),
            oidc: Vec::new(),
        }
    }
}

/// An identity provider, and how its tokens' claims become a role and tenants.
#[derive(Debug, Clone)]
pub struct OidcIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Its signing keys: from a file, or fetched from the issuer.
    pub keys: Arc<super::oidc::KeySource>,
    /// The claim holding roles (a string or a list): the first that names a role of
    /// dothi wins; without one the token is refused.
    pub role_claim: String,
    /// The claim holding tenant names (a string or a list).
    pub tenants_claim: String,
}

/// A user as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    username: String,
    password: String,
    role: Role,
    tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    types: Option<Vec<String>>,
    /// The TOTP secret (base32), once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp: Option<String>,
    /// The last TOTP time step accepted (a code is good once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp_step: Option<i64>,
    #[serde(default)]
    failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked_until: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
}

/// A user as shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserView {
    pub username: String,
    pub role: Role,
    pub tenants: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    pub mfa: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
}

impl SessionView {
    /// The token a write with this session's cookie must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The session as listed to admins: without its CSRF token.
    pub fn shown(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("csrf");
        }
        v
    }
}

impl UserRecord {
    fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            role: self.role,
            tenants: self.tenants.clone(),
            types: self.types.clone(),
            mfa: self.totp.is_some(),
            locked_until: self.locked_until.filter(|t| *t > Utc::now()),
            created: self.created,
        }
    }
}

/// An API key as stored (under its secret's digest) and shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
}

/// A web session as stored (under its token's digest); [`SessionView::shown`] is what
/// the API shows of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Kept with the session (a write with its cookie must carry it); never listed.
    csrf: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// What a new user is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub types: Option<Vec<String>>,
}

/// Changes to a user (`PATCH /auth/v1/users/{name}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub password: Option<String>,
    pub role: Option<Role>,
    pub tenants: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    /// True lifts a lockout.
    #[serde(default)]
    pub unlock: bool,
}

/// What a new key is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
}

/// A session just opened: the cookie's token (shown once) and the session.
pub struct OpenedSession {
    pub token: String,
    pub session: SessionView,
}

/// A remembered lookup.
struct Cached<T> {
    at: Instant,
    generation: u64,
    value: Option<T>,
}

/// Lookups remembered by key.
type Cache<T> = Mutex<HashMap<String, Cached<T>>>;

/// What `cache` remembers of `key`, when it is recent and the registry has not
/// changed since (`generation`).
fn recall<T: Clone>(cache: &Cache<T>, key: &str, generation: u64) -> Option<Option<T>> {
    cache.lock().ok().and_then(|m| {
        m.get(key)
            .filter(|c| c.at.elapsed() < CACHE_FOR && c.generation == generation)
            .map(|c| c.value.clone())
    })
}

/// Remembers what the lookup of `key` found at `generation`.
fn remember<T>(cache: &Cache<T>, key: &str, generation: u64, value: Option<T>) {
    if let Ok(mut m) = cache.lock() {
        m.insert(
            key.to_string(),
            Cached {
                at: Instant::now(),
                generation,
                value,
            },
        );
    }
}

pub struct Identity {
    store: Arc<dyn Store>,
    config: IdentityConfig,
    keys: Cache<KeyView>,
    sessions: Cache<SessionView>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn internal(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "identity fault");
    Error::new(ErrorKind::InternalError, "internal error")
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_data(format!(
            "a {what} is 1 to {MAX_NAME} letters, digits and _ - . @"
        )))
    }
}

/// A grant's tenant names as stored: `default` names the default tenant (whose name
/// is empty), as in the OIDC tenants claim and the command line.
fn tenant_names(tenants: Vec<String>) -> Vec<String> {
    tenants
        .into_iter()
        .map(|t| if t == "default" { String::new() } else { t })
        .collect()
}

/// Checks a grant's tenants and types.
fn check_grants(tenants: &[String], types: &Option<Vec<String>>) -> Result<(), Error> {
    if tenants.len() > MAX_GRANTS || types.as_ref().is_some_and(|t| t.len() > MAX_GRANTS) {
        return Err(Error::bad_data(format!(
            "at most {MAX_GRANTS} tenants and {MAX_GRANTS} types"
        )));
    }
    for t in tenants {
        if t != ALL_TENANTS {
            crate::http::negotiate::check_tenant_name(t)?;
        }
    }
    if let Some(types) = types {
        if types.is_empty() {
            return Err(Error::bad_data(
                "types, when given, lists at least one entity type",
            ));
        }
        for t in types {
            if t.is_empty() || t.len() > 256 || t.chars().any(char::is_whitespace) {
                return Err(Error::bad_data(format!("{t:?} is not an entity type")));
            }
        }
    }
    Ok(())
}

fn from_json<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(internal)
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(internal)
}

impl Identity {
    pub fn new(store: Arc<dyn Store>, config: IdentityConfig) -> Identity {
        Identity {
            store,
            config,
            keys: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Appends audit records (logins, refusals, changes of users and keys).
    pub async fn audit(&self, records: Vec<AuditRecord>) {
        if let Err(e) = self.store.audit_append(records).await {
            tracing::error!(error = %e, "audit records not written");
        }
    }

    fn forget(&self) {
        if let Ok(mut k) = self.keys.lock() {
            k.clear();
        }
        if let Ok(mut s) = self.sessions.lock() {
            s.clear();
        }
    }

    // ---- users

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, Error> {
        let key = username.to_ascii_lowercase();
        match self
            .store
            .registry_get(USERS, "", &key)
            .await
            .map_err(store_error)?
        {
            Some(v) => Ok(Some(from_json(v)?)),
            None => Ok(None),
        }
    }

    async fn put_user(&self, user: &UserRecord, mode: RegistryWrite) -> Result<(), Error> {
        self.store
            .registry_put(
                USERS,
                "",
                vec![(user.username.to_ascii_lowercase(), to_json(user)?)],
                mode,
            )
            .await
            .map_err(store_error)
    }

    /// Whether any admin user or admin key exists.
    pub async fn has_admin(&self) -> Result<bool, Error> {
        let users = self.list_users().await?;
        if users.iter().any(|u| u.role == Role::Admin) {
            return Ok(true);
        }
        Ok(self
            .list_keys()
            .await?
            .iter()
            .any(|k| k.role == Role::Admin))
    }

    pub async fn create_user(&self, mut new: NewUser) -> Result<UserView, Error> {
        new.tenants = tenant_names(new.tenants);
        check_name("user name", &new.username)?;
        check_grants(&new.tenants, &new.types)?;
        password::check_policy(&new.username, &new.password)
            .map_err(|e| Error::bad_data(e.to_string()))?;
        let hash = hash(new.password).await?;
        let user = UserRecord {
            username: new.username.to_ascii_lowercase(),
            password: hash,
            role: new.role,
            tenants: new.tenants,
            types: new.types,
            totp: None,
            totp_step: None,
            failures: 0,
            locked_until: None,
            created: now(),
        };
        self.put_user(&user, RegistryWrite::Create)
            .await
            .map_err(|e| {
                if e.kind == ErrorKind::AlreadyExists {
                    Error::already_exists(format!("user {} exists", user.username))
                } else {
                    e
                }
            })?;
        Ok(user.view())
    }

    pub async fn get_user(&self, username: &str) -> Result<UserView, Error> {
        self.user(username)
            .await?
            .map(|u| u.view())
            .ok_or_else(|| Error::not_found(format!("no user {username}")))
    }

    pub async fn list_users(&self) -> Result<Vec<UserView>, Error> {
        Ok(self
            .records::<UserRecord>(USERS)
            .await?
            .into_iter()
            .map(|(_, u)| u.view())
            .collect())
    }

    pub async fn update_user(&self, username: &str, change: UserChange) -> Result<UserView, Error> {
        let mut user = self
            .user(username)
            .await?
            .ok_or_else(|| Error::not_found(format!("no user {username}")))?;
        if let Some(p) = change.password {
            password::check_policy(&user.username, &p)
                .map_err(|e| Error::bad_data(e.to_string()))?;
            user.password = hash(p).await?;
        }
        if let Some(role) = change.role {
            user.role = role;
        }
        if let Some(t) = change.tenants.map(tenant_names) {
            check_grants(&t, &None)?;
            user.tenants = t;
        }
        if change.types.is_some() {
            check_grants(&[], &change.types)?;
            user.types = change.types;
        }
        if change.unlock {
            user.failures = 0;
            user.locked_until = None;
        }
        self.put_user(&user, RegistryWrite::Replace).await?;
        // Grants and passwords apply from the next request: sessions are re-read.
        self.revoke_user_sessions(&user.username).await?;
        Ok(user.view())
    }

    pub async fn delete_user(&self, username: &str) -> Result<(), Error> {
        let key = username.to_ascii_lowercase();
        if !self
            .store
            .registry_delete(USERS, "", &key)
            .await
            .map_err(store_error)?
        {
            return Err(Error::not_found(format!("no user {username}")));
        }
        self.revoke_user_sessions(&key).await?;
        Ok(())
    }

    /// Enrols a user in TOTP; returns the secret (shown once).
    pub async fn enrol_totp(&self, username: &str) -> Result<String, Error> {
        let mut user = self
            .user(username)
            .await?
            .ok_or_else(|| Error::not_found(format!("no user {username}")))?;
        let secret = totp::new_secret().map_err(internal)?;
        user.totp = Some(secret.clone());
        user.totp_step = None;
        self.put_user(&user, RegistryWrite::Replace).await?;
        Ok(secret)
    }

    // ---- logins

    /// Checks a user's password (and TOTP code); opens a session. Failed attempts
    /// count towards a lockout, across every node.
    pub async fn login(
        &self,
        username: &str,
        password_given: &str,
        totp_code: Option<&str>,
        client: Option<String>,
    ) -> Result<OpenedSession, Error> {
        let refused = || Error::unauthenticated("wrong user name or password");
        if username.len() > MAX_NAME || password_given.len() > 1024 {
            return Err(refused());
        }
        let Some(mut user) = self.user(username).await? else {
            // The same time spent as for a real user: names cannot be probed.
            let p = password_given.to_string();
            let _ = tokio::task::spawn_blocking(move || password::dummy_verify(&p)).await;
            return Err(refused());
        };
        let t = now();
        if let Some(until) = user.locked_until
            && until > t
        {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "the account is locked after too many failed logins until {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ));
        }
        let (p, h) = (password_given.to_string(), user.password.clone());
        let good = tokio::task::spawn_blocking(move || password::verify_password(&p, &h))
            .await
            .map_err(internal)?;
        if !good {
            self.failed_login(&mut user).await?;
            return Err(refused());
        }
        let needs_totp =
            user.totp.is_some() || (self.config.mfa_required && user.role == Role::Admin);
        if needs_totp {
            let Some(secret) = user.totp.clone() else {
                return Err(Error::unauthenticated(
                    "a second factor is required for admins: enrol one with `dothi admin user totp`",
                ));
            };
            let Some(code) = totp_code.filter(|c| !c.is_empty()) else {
                return Err(Error::unauthenticated("a TOTP code is required"));
            };
            match totp::verify(&secret, code, t.timestamp(), 1) {
                Some(step) if user.totp_step.is_none_or(|last| step > last) => {
                    user.totp_step = Some(step);
                }
                _ => {
                    self.failed_login(&mut user).await?;
                    return Err(Error::unauthenticated("wrong TOTP code"));
                }
            }
        }
        if user.failures > 0 || user.locked_until.is_some() || needs_totp {
            user.failures = 0;
            user.locked_until = None;
            self.put_user(&user, RegistryWrite::Replace).await?;
        }
        self.open_session(&user, client).await
    }

    async fn failed_login(&self, user: &mut UserRecord) -> Result<(), Error> {
        // Read again: another node may have counted failures since.
        if let Some(current) = self.user(&user.username).await? {
            *user = current;
        }
        user.failures += 1;
        if user.failures >= self.config.lockout_failures {
            user.failures = 0;
            user.locked_until = Some(
                now() + chrono::TimeDelta::from_std(self.config.lockout_for).unwrap_or_default(),
            );
        }
        self.put_user(user, RegistryWrite::Replace).await
    }

    async fn open_session(
        &self,
        user: &UserRecord,
        client: Option<String>,
    ) -> Result<OpenedSession, Error> {
        let token = secrets::random_token(32).map_err(internal)?;
        let t = now();
        let session = SessionView {
            id: secrets::random_token(12).map_err(internal)?,
            username: user.username.clone(),
            role: user.role,
            created: t,
            last_seen: t,
            csrf: secrets::random_token(24).map_err(internal)?,
            client,
        };
        self.store
            .registry_put(
                SESSIONS,
                "",
                vec![(secrets::digest(&token), to_json(&session)?)],
                RegistryWrite::Create,
            )
            .await
            .map_err(store_error)?;
        Ok(OpenedSession { token, session })
    }

    /// A one-time link that opens a session for `username` (what `dothi demo`
    /// prints), good for `valid_for`.
    pub async fn login_link(&self, username: &str, valid_for: Duration) -> Result<String, Error> {
        let token = secrets::random_token(24).map_err(internal)?;
        let until = now() + chrono::TimeDelta::from_std(valid_for).unwrap_or_default();
        self.store
            .registry_put(
                LINKS,
                "",
                vec![(
                    secrets::digest(&token),
                    serde_json::json!({"username": username.to_ascii_lowercase(), "until": until}),
                )],
                RegistryWrite::Upsert,
            )
            .await
            .map_err(store_error)?;
        Ok(token)
    }

    /// Uses a one-time link: the session it opens.
    pub async fn use_login_link(
        &self,
        token: &str,
        client: Option<String>,
    ) -> Result<OpenedSession, Error> {
        let refused = || Error::unauthenticated("this login link is not valid (used or expired)");
        let key = secrets::digest(token);
        let link = self
            .store
            .registry_get(LINKS, "", &key)
            .await
            .map_err(store_error)?
            .ok_or_else(refused)?;
        // Whoever deletes it first uses it.
        if !self
            .store
            .registry_delete(LINKS, "", &key)
            .await
            .map_err(store_error)?
        {
            return Err(refused());
        }
        let until: Option<DateTime<Utc>> = link
            .get("until")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        if until.is_none_or(|u| u < now()) {
            return Err(refused());
        }
        let username = link.get("username").and_then(Value::as_str).unwrap_or("");
        let user = self.user(username).await?.ok_or_else(refused)?;
        self.open_session(&user, client).await
    }

    // ---- sessions

    /// The caller of a session cookie: None when the session is unknown or idle too
    /// long (it is then removed).
    pub async fn session(
        &self,
        token: &str,
        request: RequestInfo,
    ) -> Result<Option<Caller>, Error> {
        let key = secrets::digest(token);
        let generation = self.store.registry_generation();
        let session = match recall(&self.sessions, &key, generation) {
            Some(s) => s,
            None => {
                let s = self
                    .store
                    .registry_get(SESSIONS, "", &key)
                    .await
                    .map_err(store_error)?
                    .map(from_json::<SessionView>)
                    .transpose()?;
                remember(&self.sessions, &key, generation, s.clone());
                s
            }
        };
        let Some(mut session) = session else {
            return Ok(None);
        };
        let idle = if session.role == Role::Admin {
            self.config.admin_session_idle
        } else {
            self.config.session_idle
        };
        let t = now();
        if t - session.last_seen > chrono::TimeDelta::from_std(idle).unwrap_or_default() {
            let _ = self.store.registry_delete(SESSIONS, "", &key).await;
            self.forget();
            return Ok(None);
        }
        // The user's grants as they are now (a change of grants applies at once).
        let Some(user) = self.user(&session.username).await? else {
            return Ok(None);
        };
        // Written often enough that a session in use never looks idle.
        let touch_every = chrono::TimeDelta::from_std(idle / 4)
            .unwrap_or(TOUCH_EVERY)
            .min(TOUCH_EVERY);
        if t - session.last_seen > touch_every {
            session.last_seen = t;
            let _ = self
                .store
                .registry_put(
                    SESSIONS,
                    "",
                    vec![(key.clone(), to_json(&session)?)],
                    RegistryWrite::Replace,
                )
                .await;
            if let Ok(mut m) = self.sessions.lock() {
                m.remove(&key);
            }
        }
        Ok(Some(Caller {
            actor: format!("user:{}", user.username),
            name: user.username.clone(),
            role: Some(user.role),
            tenants: user.tenants.iter().cloned().collect(),
            types: user.types.as_deref().map(expand_types),
            via: Via::Session {
                id: session.id.clone(),
                csrf: session.csrf.clone(),
            },
            request,
            audited_writes: true,
        }))
    }

    /// Every session, or those of one user.
    pub async fn list_sessions(&self, username: Option<&str>) -> Result<Vec<SessionView>, Error> {
        Ok(self
            .session_records()
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| username.is_none_or(|u| s.username == u.to_ascii_lowercase()))
            .collect())
    }

    async fn session_records(&self) -> Result<Vec<(String, SessionView)>, Error> {
        self.records(SESSIONS).await
    }

    /// Ends a session by its public id; false when there is none.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, Error> {
        self.delete_first(SESSIONS, |s: &SessionView| s.id == id)
            .await
    }

    /// Ends the session of a cookie token (logout).
    pub async fn end_session(&self, token: &str) -> Result<(), Error> {
        self.store
            .registry_delete(SESSIONS, "", &secrets::digest(token))
            .await
            .map_err(store_error)?;
        self.forget();
        Ok(())
    }

    /// Ends every session of a user (logout everywhere, or a change of grants).
    pub async fn revoke_user_sessions(&self, username: &str) -> Result<usize, Error> {
        let name = username.to_ascii_lowercase();
        let mut n = 0;
        for (key, s) in self.session_records().await? {
            if s.username == name {
                self.store
                    .registry_delete(SESSIONS, "", &key)
                    .await
                    .map_err(store_error)?;
                n += 1;
            }
        }
        self.forget();
        Ok(n)
    }

    // ---- API keys

    /// Creates a key; returns it as shown and its secret (shown once, stored only as
    /// a digest).
    pub async fn create_key(
        &self,
        new: NewKey,
        created_by: &str,
    ) -> Result<(KeyView, String), Error> {
        let secret = secrets::new_api_key().map_err(internal)?;
        let view = self
            .store_key(&secret, new, created_by, RegistryWrite::Create)
            .await?;
        Ok((view, secret))
    }

    /// Makes `secret` a key with these grants, whether or not it was one
    /// (`--admin-key`, at every start).
    pub async fn ensure_key(
        &self,
        secret: &str,
        new: NewKey,
        created_by: &str,
    ) -> Result<KeyView, Error> {
        if secret.chars().count() < 32 {
            return Err(Error::bad_data("a key is at least 32 characters"));
        }
        if let Some(existing) = self.key_record(&secrets::digest(secret)).await?
            && existing.role == new.role
            && existing.tenants == new.tenants
            && existing.name == new.name
        {
            return Ok(existing);
        }
        self.store_key(secret, new, created_by, RegistryWrite::Upsert)
            .await
    }

    async fn store_key(
        &self,
        secret: &str,
        new: NewKey,
        created_by: &str,
        mode: RegistryWrite,
    ) -> Result<KeyView, Error> {
        let mut new = new;
        new.tenants = tenant_names(new.tenants);
        check_name("key name", &new.name)?;
        check_grants(&new.tenants, &new.types)?;
        if new.expires.is_some_and(|e| e <= now()) {
            return Err(Error::bad_data("expires must be in the future"));
        }
        let view = KeyView {
            id: secrets::random_token(9).map_err(internal)?,
            name: new.name,
            role: new.role,
            tenants: new.tenants,
            types: new.types,
            expires: new.expires,
            created: now(),
            created_by: created_by.to_string(),
            last_used: None,
        };
        self.store
            .registry_put(
                KEYS,
                "",
                vec![(secrets::digest(secret), to_json(&view)?)],
                mode,
            )
            .await
            .map_err(store_error)?;
        self.forget();
        Ok(view)
    }

    async fn key_record(&self, digest: &str) -> Result<Option<KeyView>, Error> {
        self.store
            .registry_get(KEYS, "", digest)
            .await
            .map_err(store_error)?
            .map(from_json)
            .transpose()
    }

    async fn key_records(&self) -> Result<Vec<(String, KeyView)>, Error> {
        self.records(KEYS).await
    }

    /// The records of the registry `kind` (users, sessions, keys), each with its key.
    async fn records<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, T)>, Error> {
        let page = self
            .store
            .registry_list(kind, "", 0, MAX_LISTED)
            .await
            .map_err(store_error)?;
        page.records
            .into_iter()
            .map(|r| from_json::<T>(r.value).map(|value| (r.key, value)))
            .collect()
    }

    /// Deletes the first record of the registry `kind` that `is_it` picks; false when
    /// none does.
    async fn delete_first<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        is_it: impl Fn(&T) -> bool,
    ) -> Result<bool, Error> {
        for (key, value) in self.records::<T>(kind).await? {
            if is_it(&value) {
                self.store
                    .registry_delete(kind, "", &key)
                    .await
                    .map_err(store_error)?;
                self.forget();
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyView>, Error> {
        Ok(self
            .key_records()
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect())
    }

    /// Revokes a key by its id; false when there is none.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, Error> {
        self.delete_first(KEYS, |k: &KeyView| k.id == id).await
    }

    /// The caller of an `Authorization: Bearer` credential: an API key, or a token
    /// of a configured identity provider.
    pub async fn bearer(&self, credential: &str, request: RequestInfo) -> Result<Caller, Error> {
        let refused = || Error::unauthenticated("the credentials are not valid");
        if credential.len() > 16 * 1024 {
            return Err(refused());
        }
        if credential.matches('.').count() == 2 && !self.config.oidc.is_empty() {
            return self.token(credential, request).await;
        }
        let digest = secrets::digest(credential);
        let generation = self.store.registry_generation();
        let key = match recall(&self.keys, &digest, generation) {
            Some(k) => k,
            None => {
                let k = self.key_record(&digest).await?;
                if let Some(k) = &k
                    && k.last_used.is_none_or(|t| now() - t > TOUCH_EVERY)
                {
                    self.touch_key(&digest, k.clone());
                }
                if let Ok(mut m) = self.keys.lock()
                    && m.len() > 10_000
                {
                    m.clear();
                }
                remember(&self.keys, &digest, generation, k.clone());
                k
            }
        };
        let key = key.ok_or_else(refused)?;
        if key.expires.is_some_and(|e| e <= now()) {
            return Err(Error::unauthenticated("the key has expired"));
        }
        Ok(Caller {
            actor: format!("key:{}", key.id),
            name: key.name.clone(),
            role: Some(key.role),
            tenants: key.tenants.iter().cloned().collect(),
            types: key.types.as_deref().map(expand_types),
            via: Via::Key { id: key.id },
            request,
            audited_writes: true,
        })
    }

    /// Records a key's last use, in the background (no request waits for it).
    fn touch_key(&self, digest: &str, mut key: KeyView) {
        let store = self.store.clone();
        let digest = digest.to_string();
        key.last_used = Some(now());
        tokio::spawn(async move {
            if let Ok(v) = serde_json::to_value(&key) {
                let _ = store
                    .registry_put(KEYS, "", vec![(digest, v)], RegistryWrite::Replace)
                    .await;
            }
        });
    }

    async fn token(&self, token: &str, request: RequestInfo) -> Result<Caller, Error> {
        let refused = |why: &str| Error::unauthenticated(format!("the token is not valid: {why}"));
        let t = now().timestamp();
        let mut last = None;
        for issuer in &self.config.oidc {
            let v = jwt::Validation {
                issuer: issuer.issuer.clone(),
                audiences: issuer.audiences.clone(),
                leeway_secs: 30,
            };
            let keys = issuer.keys.keys(false).await.map_err(|e| refused(&e))?;
            let mut verified = jwt::verify(token, &keys, &v, t);
            // A key the set lacks may be a new one: fetch the set again once.
            if matches!(verified, Err(jwt::JwtError::UnknownKey)) {
                let keys = issuer.keys.keys(true).await.map_err(|e| refused(&e))?;
                verified = jwt::verify(token, &keys, &v, t);
            }
            match verified {
                Ok(claims) => {
                    let strings = |name: &str| -> Vec<String> {
                        match claims.raw.get(name) {
                            Some(Value::String(s)) => vec![s.clone()],
                            Some(Value::Array(a)) => a
                                .iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect(),
                            _ => Vec::new(),
                        }
                    };
                    let role = strings(&issuer.role_claim)
                        .iter()
                        .find_map(|r| Role::parse(r).ok())
                        .ok_or_else(|| refused("it names no role of dothi"))?;
                    let tenants: BTreeSet<String> = strings(&issuer.tenants_claim)
                        .into_iter()
                        .map(|t| if t == "default" { String::new() } else { t })
                        .collect();
                    return Ok(Caller {
                        actor: format!("oidc:{}#{}", issuer.issuer, claims.sub),
                        name: claims.sub.clone(),
                        role: Some(role),
                        tenants,
                        types: None,
                        via: Via::Token,
                        request,
                        audited_writes: true,
                    });
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(refused(
            last.as_deref()
                .unwrap_or("no identity provider is configured"),
        ))
    }
}

async fn hash(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(internal)?
        .map_err(internal)
}
