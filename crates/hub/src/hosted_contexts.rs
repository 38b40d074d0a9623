//! The @contexts the hub holds (clause 5.13): those users store in it ("hosted"),
//! and those it creates for a subscription whose @context is not one URL
//! ("implicitly created"), kept in the store's registry so that they outlive a
//! restart and are shared by the nodes of one database; beside them, the remote
//! documents it fetched ("cached", [`crate::contexts`]) and the core context. All are
//! listed, served and deleted through `/ngsi-ld/v1/jsonldContexts`. A request whose
//! `Link` header or @context names a held context's URL is resolved from the
//! registry, with no network fetch.
//!
//! Hosted and cached contexts belong to no tenant: every tenant may use them, so
//! adding or deleting one needs the write right on every tenant. An implicitly created
//! context belongs to its subscription's tenant: it is listed, served and deleted only
//! for callers of that tenant, and each tenant has its own bound, so that one tenant's
//! subscriptions cannot use up another's room or the hosted contexts'.

use chrono::{DateTime, SecondsFormat, Utc};
use ngsi::context::{CORE_CONTEXT_TEXT, CORE_CONTEXT_URL, ContextError, is_core_context_url};
use ngsi::{Context, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::RegistryWrite;

use crate::auth::{ALL_TENANTS, Access, Caller};
use crate::contexts::{CachedDocument, ContextResolver, Usage};
use crate::service::store_error;

/// The registry collection of hosted contexts (under the tenant "": they are global).
/// Implicitly created contexts written before they had their own collections are
/// here too, and are still found.
const COLLECTION: &str = "jsonldContexts";
/// The registry collection of implicitly created contexts, under their tenant.
const IMPLICIT: &str = "jsonldContexts.implicit";
/// Which tenant an implicitly created context belongs to, by local id (under the
/// tenant ""): a context's URL names no tenant.
const IMPLICIT_TENANT: &str = "jsonldContexts.implicitTenant";
/// How many hosted contexts the registry holds at most.
pub const MAX_STORED_CONTEXTS: u64 = 1_000;
/// How many implicitly created contexts one tenant holds at most.
pub const MAX_IMPLICIT_CONTEXTS_PER_TENANT: u64 = 1_000;
/// The path under which the hub serves the contexts it holds.
pub const HOSTED_PATH: &str = "/ngsi-ld/v1/jsonldContexts/";
/// The local id of the core context.
pub const CORE_ID: &str = "core";

/// The kinds of clause 5.13.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ContextKind {
    #[default]
    Hosted,
    Cached,
    ImplicitlyCreated,
}

impl ContextKind {
    pub fn parse(text: &str) -> Result<ContextKind, Error> {
        match text {
            "Hosted" => Ok(ContextKind::Hosted),
            "Cached" => Ok(ContextKind::Cached),
            "ImplicitlyCreated" => Ok(ContextKind::ImplicitlyCreated),
            other => Err(Error::bad_data(format!(
                "kind {other:?} is none of Hosted, Cached, ImplicitlyCreated"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ContextKind::Hosted => "Hosted",
            ContextKind::Cached => "Cached",
            ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
        }
    }
}

/// What the registry keeps of a held context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredContext {
    /// The identifier in the hub (the last segment of its URL).
    pub local_id: String,
    pub created_at: DateTime<Utc>,
    /// The document: `{"@context": …}` (a hosted one as it was sent).
    pub body: Value,
    /// `Hosted` (records written before kinds were kept) or `ImplicitlyCreated`.
    #[serde(default)]
    pub kind: ContextKind,
    /// The URL the hub gave out for it (an implicitly created one: a subscription
    /// names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The subscription it was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The tenant of that subscription (an implicitly created context kept in its
    /// own collection; None for a hosted one and an older implicit one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl StoredContext {
    /// Whether `caller` may see it: a context of a tenant needs the read right on
    /// that tenant; the others, any read right (checked before).
    fn visible_to(&self, caller: &Caller) -> bool {
        self.tenant
            .as_deref()
            .is_none_or(|t| caller.check(t, Access::Read).is_ok())
    }
}

/// A context the hub can list and serve.
#[derive(Debug, Clone)]
pub enum HeldContext {
    /// The core context, built in: since this node started.
    Core(DateTime<Utc>),
    Stored(StoredContext, Usage),
    Cached(CachedDocument),
}

impl HeldContext {
    pub fn kind(&self) -> ContextKind {
        match self {
            HeldContext::Core(_) | HeldContext::Cached(_) => ContextKind::Cached,
            HeldContext::Stored(c, _) => c.kind,
        }
    }

    /// Its URL, `origin` being the hub's (`http://host:port`).
    pub fn url(&self, origin: &str) -> String {
        match self {
            HeldContext::Core(_) => CORE_CONTEXT_URL.to_string(),
            HeldContext::Stored(c, _) => c
                .url
                .clone()
                .unwrap_or_else(|| format!("{origin}{HOSTED_PATH}{}", c.local_id)),
            HeldContext::Cached(d) => d.url.clone(),
        }
    }

    /// The details of clause 5.13.3 (`details=true`). The optional `extraInfo` is
    /// left out.
    pub fn details(&self, origin: &str) -> Value {
        let (local_id, created_at, usage) = match self {
            HeldContext::Core(started) => (CORE_ID, *started, Usage::default()),
            HeldContext::Stored(c, usage) => (c.local_id.as_str(), c.created_at, *usage),
            HeldContext::Cached(d) => (d.local_id.as_str(), d.created_at, d.usage),
        };
        let mut out = Map::new();
        out.insert("URL".into(), json!(self.url(origin)));
        out.insert("localId".into(), json!(local_id));
        out.insert("kind".into(), json!(self.kind().name()));
        out.insert("createdAt".into(), json!(format_time(created_at)));
        if let Some(at) = usage.last {
            out.insert("lastUsage".into(), json!(format_time(at)));
        }
        out.insert("numberOfHits".into(), json!(usage.hits));
        Value::Object(out)
    }

    /// The document served for it.
    pub fn body(self) -> Value {
        match self {
            HeldContext::Core(_) => serde_json::from_str(CORE_CONTEXT_TEXT).unwrap_or(Value::Null),
            HeldContext::Stored(c, _) => c.body,
            HeldContext::Cached(d) => d.body,
        }
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether `id` has the form of a held context's local id.
pub(crate) fn is_local_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The local id a held context's URL ends with, when `url` has the form of one
/// (on whatever host, under whatever base path: whether it is the hub's is for the
/// caller to check).
pub fn hosted_id(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let path = &rest[rest.find('/')?..];
    let id = &path[path.find(HOSTED_PATH)? + HOSTED_PATH.len()..];
    is_local_id(id).then_some(id)
}

/// Whether a subscription created with the @context `source` gets an implicitly
/// created context: when it is more than one URL (the core context aside) or has
/// an inline object, which a notification's `Link` header cannot carry.
pub fn wants_implicit(source: &[Value]) -> bool {
    let mut rest = source
        .iter()
        .filter(|v| !matches!(v, Value::String(url) if is_core_context_url(url)));
    !matches!(
        (rest.next(), rest.next()),
        (None, _) | (Some(Value::String(_)), None)
    )
}

/// Writes on hosted contexts reach every tenant: the caller needs the write right
/// on all of them.
fn check_write(caller: &Caller) -> Result<(), Error> {
    caller.check(ALL_TENANTS, Access::Write)?;
    if caller.types.is_some() {
        return Err(Error::forbidden(
            "a grant limited to entity types does not cover @context management",
        ));
    }
    Ok(())
}

fn check_read(caller: &Caller) -> Result<(), Error> {
    match caller.role {
        None => Err(Error::unauthenticated("credentials are required")),
        Some(role) if role.allows(Access::Read) => Ok(()),
        Some(role) => Err(Error::forbidden(format!(
            "the role {} may not read @contexts",
            role.as_str()
        ))),
    }
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no @context {id} is held by the hub"))
}

/// Checks the body of an add (clause 5.13.2): a JSON object whose "@context" is a
/// URL, an object or an array of those, which builds as a context (remote documents
/// it names are fetched only when it is used).
fn check_body(body: &Value, max_bytes: usize) -> Result<(), Error> {
    let Some(ctx) = body.as_object().and_then(|o| o.get("@context")) else {
        return Err(Error::invalid(
            "the body must be a JSON object with an \"@context\" member",
        ));
    };
    let size = serde_json::to_string(body).map(|s| s.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(Error::new(
            ErrorKind::PayloadTooLarge,
            format!("the @context is larger than {max_bytes} bytes"),
        ));
    }
    let shape_ok = |v: &Value| v.is_string() || v.is_object();
    let ok = match ctx {
        Value::Array(items) => !items.is_empty() && items.iter().all(shape_ok),
        other => shape_ok(other),
    };
    if !ok {
        return Err(Error::bad_data(
            "\"@context\" must be a URL, an object, or a non-empty array of those",
        ));
    }
    match Context::build(ctx, &|_| None) {
        Ok(_) | Err(ContextError::NeedsRemote(_)) => Ok(()),
        Err(invalid) => Err(Error::bad_data(Error::from(invalid).detail)),
    }
}

impl ContextResolver {
    /// Adds a hosted context (POST /jsonldContexts): returns its local id.
    pub async fn add_hosted(&self, caller: &Caller, body: &Value) -> Result<String, Error> {
        check_write(caller)?;
        check_body(body, self.max_bytes())?;
        let record = StoredContext {
            local_id: uuid::Uuid::new_v4().to_string(),
            created_at: ngsi::entity::now(),
            body: body.clone(),
            kind: ContextKind::Hosted,
            url: None,
            subscription: None,
            tenant: None,
        };
        if !self.put_stored(&record).await? {
            return Err(Error::new(
                ErrorKind::OperationNotSupported,
                format!("the hub holds {MAX_STORED_CONTEXTS} @contexts already; delete one first"),
            ));
        }
        Ok(record.local_id)
    }

    /// Creates the context of subscription `subscription` of `tenant`, whose
    /// @context is `context` (clause 5.13.1, "implicitly created"): returns its URL,
    /// under `origin`, which notifications name. None when the tenant holds
    /// [`MAX_IMPLICIT_CONTEXTS_PER_TENANT`] already: the subscription then keeps its
    /// @context inline.
    pub async fn add_implicit(
        &self,
        context: &Value,
        origin: &str,
        tenant: &str,
        subscription: &str,
    ) -> Result<Option<String>, Error> {
        let local_id = uuid::Uuid::new_v4().to_string();
        let url = format!("{origin}{HOSTED_PATH}{local_id}");
        let body = json!({"@context": context});
        let record = StoredContext {
            local_id,
            created_at: ngsi::entity::now(),
            body: body.clone(),
            kind: ContextKind::ImplicitlyCreated,
            url: Some(url.clone()),
            subscription: Some(subscription.to_string()),
            tenant: Some(tenant.to_string()),
        };
        if !self.put_stored(&record).await? {
            tracing::warn!(
                tenant,
                subscription,
                "the tenant holds as many implicit @contexts as allowed: the subscription keeps its @context inline"
            );
            return Ok(None);
        }
        // The store compacts notifications with the documents of its cache, by URL.
        self.store()
            .cache_context(&url, &body.to_string())
            .await
            .map_err(store_error)?;
        if let Ok(mut held) = self.held.lock() {
            held.entry(record.local_id).or_default().url = Some(url.clone());
        }
        Ok(Some(url))
    }

    /// Drops the implicitly created context at `url` when it was made for
    /// `subscription` of `tenant` (which is deleted, or was never stored).
    pub async fn drop_implicit(
        &self,
        url: &str,
        tenant: &str,
        subscription: &str,
    ) -> Result<(), Error> {
        let Some(id) = hosted_id(url) else {
            return Ok(());
        };
        match self.hosted(id).await? {
            Some(c)
                if c.kind == ContextKind::ImplicitlyCreated
                    && c.subscription.as_deref() == Some(subscription)
                    && c.tenant.as_deref().is_none_or(|t| t == tenant) =>
            {
                self.remove_stored(&c).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Writes a record unless its collection holds its bound already
    /// ([`MAX_STORED_CONTEXTS`] hosted, [`MAX_IMPLICIT_CONTEXTS_PER_TENANT`] of its
    /// tenant): whether it was written.
    async fn put_stored(&self, record: &StoredContext) -> Result<bool, Error> {
        let (collection, tenant, max) = match &record.tenant {
            Some(t) => (IMPLICIT, t.as_str(), MAX_IMPLICIT_CONTEXTS_PER_TENANT),
            None => (COLLECTION, "", MAX_STORED_CONTEXTS),
        };
        // Nodes sharing a database count apart: together they may pass the bound by
        // a few adds made at the same moment.
        let _one_at_a_time = self.adding.lock().await;
        let held = self
            .store()
            .registry_list(collection, tenant, 0, 1)
            .await
            .map_err(store_error)?
            .count;
        if held >= max {
            return Ok(false);
        }
        let value = serde_json::to_value(record)
            .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
        if record.tenant.is_some() {
            // The tenant first: a record whose tenant is not known cannot be found.
            self.store()
                .registry_put(
                    IMPLICIT_TENANT,
                    "",
                    vec![(record.local_id.clone(), json!({"tenant": tenant}))],
                    RegistryWrite::Create,
                )
                .await
                .map_err(store_error)?;
        }
        self.store()
            .registry_put(
                collection,
                tenant,
                vec![(record.local_id.clone(), value)],
                RegistryWrite::Create,
            )
            .await
            .map_err(store_error)?;
        Ok(true)
    }

    /// Deletes a record and what hangs on it: whether there was one.
    async fn remove_stored(&self, record: &StoredContext) -> Result<bool, Error> {
        let removed = match &record.tenant {
            Some(tenant) => {
                let removed = self
                    .store()
                    .registry_delete(IMPLICIT, tenant, &record.local_id)
                    .await
                    .map_err(store_error)?;
                self.store()
                    .registry_delete(IMPLICIT_TENANT, "", &record.local_id)
                    .await
                    .map_err(store_error)?;
                removed
            }
            None => self
                .store()
                .registry_delete(COLLECTION, "", &record.local_id)
                .await
                .map_err(store_error)?,
        };
        if let Some(url) = &record.url {
            self.store()
                .forget_context(url)
                .await
                .map_err(store_error)?;
        }
        if let Ok(mut held) = self.held.lock() {
            held.remove(&record.local_id);
        }
        self.forget_built();
        Ok(removed)
    }

    /// The context `key` names (GET /jsonldContexts/{id}): a local id, the URL of a
    /// cached document, or the core context's URL. Serving it counts as a use,
    /// after the answer's figures are taken.
    pub async fn find(&self, caller: &Caller, key: &str) -> Result<HeldContext, Error> {
        check_read(caller)?;
        let found = self
            .held_context(key)
            .await?
            .filter(|held| !matches!(held, HeldContext::Stored(c, _) if !c.visible_to(caller)))
            .ok_or_else(|| not_found(key))?;
        match &found {
            HeldContext::Core(_) => {}
            HeldContext::Stored(c, _) => self.hit_held(&c.local_id),
            HeldContext::Cached(d) => self.hit_cached(&d.url),
        }
        Ok(found)
    }

    async fn held_context(&self, key: &str) -> Result<Option<HeldContext>, Error> {
        if key == CORE_ID || is_core_context_url(key) {
            return Ok(Some(HeldContext::Core(self.started)));
        }
        let id = hosted_id(key).unwrap_or(key);
        if is_local_id(id)
            && let Some(c) = self.hosted(id).await?
        {
            let usage = self.held_usage(id);
            return Ok(Some(HeldContext::Stored(c, usage)));
        }
        Ok(self.cached(key).map(HeldContext::Cached))
    }

    /// The contexts of `kind` (all when None), for GET /jsonldContexts of `tenant`:
    /// the stored ones in the order they were added (the implicitly created ones of
    /// `tenant` alone, when the caller may read it), then the cached ones.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: &str,
        kind: Option<ContextKind>,
    ) -> Result<Vec<HeldContext>, Error> {
        check_read(caller)?;
        let mut records = self
            .store()
            .registry_list(COLLECTION, "", 0, MAX_STORED_CONTEXTS)
            .await
            .map_err(store_error)?
            .records;
        if kind.is_none_or(|k| k == ContextKind::ImplicitlyCreated)
            && caller.check(tenant, Access::Read).is_ok()
        {
            records.extend(
                self.store()
                    .registry_list(IMPLICIT, tenant, 0, MAX_IMPLICIT_CONTEXTS_PER_TENANT)
                    .await
                    .map_err(store_error)?
                    .records,
            );
        }
        let mut stored: Vec<StoredContext> = records
            .into_iter()
            .filter_map(|r| serde_json::from_value(r.value).ok())
            .filter(|c: &StoredContext| kind.is_none_or(|k| k == c.kind) && c.visible_to(caller))
            .collect();
        stored.sort_by_key(|c| c.created_at);
        let mut all: Vec<HeldContext> = stored
            .into_iter()
            .map(|c| {
                let usage = self.held_usage(&c.local_id);
                HeldContext::Stored(c, usage)
            })
            .collect();
        if kind.is_none_or(|k| k == ContextKind::Cached) {
            all.extend(self.cached_all().into_iter().map(HeldContext::Cached));
        }
        Ok(all)
    }

    /// Deletes a context (DELETE /jsonldContexts/{id}); with `reload`, fetches a
    /// cached one again instead (hosted and implicitly created ones are not
    /// fetched; the core context is built in, so reloading it changes nothing).
    pub async fn delete(&self, caller: &Caller, key: &str, reload: bool) -> Result<(), Error> {
        let held = self.held_context(key).await?;
        match &held {
            // A tenant's own context: the write right on that tenant suffices, and
            // callers of other tenants are told of nothing.
            Some(HeldContext::Stored(c, _)) if c.tenant.is_some() => {
                check_read(caller)?;
                if !c.visible_to(caller) {
                    return Err(not_found(key));
                }
                caller.check(c.tenant.as_deref().unwrap_or_default(), Access::Write)?;
                if caller.types.is_some() {
                    return Err(Error::forbidden(
                        "a grant limited to entity types does not cover @context management",
                    ));
                }
            }
            _ => check_write(caller)?,
        }
        match held {
            Some(HeldContext::Core(_)) if reload => Ok(()),
            Some(HeldContext::Core(_)) => {
                Err(Error::bad_data("the core @context cannot be deleted"))
            }
            Some(HeldContext::Stored(c, _)) if reload => Err(Error::bad_data(format!(
                "reload applies to cached @contexts only; this one is {}",
                c.kind.name()
            ))),
            Some(HeldContext::Stored(c, _)) => {
                if self.remove_stored(&c).await? {
                    Ok(())
                } else {
                    Err(not_found(key))
                }
            }
            Some(HeldContext::Cached(d)) if reload => self.reload_cached(&d.url).await,
            Some(HeldContext::Cached(d)) => self.forget_cached(&d.url).await.map(|_| ()),
            // Nothing to fetch again: a reload asks for a cached context.
            None if reload => Err(Error::bad_data(format!(
                "reload applies to cached @contexts; none is held under {key}"
            ))),
            // A document this node has not read since it started may still be in the
            // store's cache, by its URL.
            None if self.forget_cached(key).await? => Ok(()),
            None => Err(not_found(key)),
        }
    }

    /// The stored context `id`, if any (no access check: resolving a request's
    /// @context).
    pub(crate) async fn hosted(&self, id: &str) -> Result<Option<StoredContext>, Error> {
        let store = self.store();
        let mut value = store
            .registry_get(COLLECTION, "", id)
            .await
            .map_err(store_error)?;
        if value.is_none()
            && let Some(owner) = store
                .registry_get(IMPLICIT_TENANT, "", id)
                .await
                .map_err(store_error)?
            && let Some(tenant) = owner.get("tenant").and_then(Value::as_str)
        {
            value = store
                .registry_get(IMPLICIT, tenant, id)
                .await
                .map_err(store_error)?;
        }
        let Some(value) = value else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::InternalError, format!("a stored @context: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosted_ids_are_recognised_on_any_host() {
        let id = "0b6c3e4e-5a8f-4f0e-9d1c-1234567890ab";
        assert_eq!(
            hosted_id(&format!(
                "http://10.0.0.2:8080/ngsi-ld/v1/jsonldContexts/{id}"
            )),
            Some(id)
        );
        assert_eq!(
            hosted_id(&format!(
                "https://hub.example/ngsi-ld/v1/jsonldContexts/{id}"
            )),
            Some(id)
        );
        assert_eq!(
            hosted_id(&format!(
                "https://city.example/hub/ngsi-ld/v1/jsonldContexts/{id}"
            )),
            Some(id)
        );
        assert_eq!(hosted_id("http://h/ngsi-ld/v1/jsonldContexts/"), None);
        assert_eq!(hosted_id("http://h/ngsi-ld/v1/jsonldContexts/a/b"), None);
        assert_eq!(hosted_id("http://h/other/x"), None);
        assert_eq!(hosted_id("urn:x"), None);
    }

    #[test]
    fn bodies_are_checked() {
        let max = 1024;
        let ok = json!({"@context": {"A1": "urn:a:A1"}});
        assert!(check_body(&ok, max).is_ok());
        let remote = json!({"@context": ["http://example.org/c.jsonld", {"a": "urn:a"}]});
        assert!(check_body(&remote, max).is_ok());
        let kind = |v: Value| check_body(&v, max).unwrap_err().kind;
        assert_eq!(kind(json!({"A1": "urn:a"})), ErrorKind::InvalidRequest);
        assert_eq!(kind(json!([1])), ErrorKind::InvalidRequest);
        assert_eq!(kind(json!({"@context": 3})), ErrorKind::BadRequestData);
        assert_eq!(kind(json!({"@context": []})), ErrorKind::BadRequestData);
        let big = json!({"@context": {"a": "x".repeat(max)}});
        assert_eq!(kind(big), ErrorKind::PayloadTooLarge);
    }

    #[test]
    fn implicit_contexts_are_for_more_than_one_url() {
        let url = |u: &str| Value::String(u.to_string());
        assert!(!wants_implicit(&[]));
        assert!(!wants_implicit(&[url("http://a/c.jsonld")]));
        assert!(!wants_implicit(&[
            url("http://a/c.jsonld"),
            url(CORE_CONTEXT_URL)
        ]));
        assert!(!wants_implicit(&[url(CORE_CONTEXT_URL)]));
        assert!(wants_implicit(&[
            url("http://a/c.jsonld"),
            url("http://b/c.jsonld")
        ]));
        assert!(wants_implicit(&[json!({"a": "urn:a"})]));
        assert!(wants_implicit(&[
            url("http://a/c.jsonld"),
            json!({"a": "urn:a"})
        ]));
    }

    #[test]
    fn records_without_a_kind_are_hosted() {
        let old = json!({"local_id": "ab-12", "created_at": "2026-12-01T00:00:00Z",
                         "body": {"@context": {"a": "urn:a"}}});
        let c: StoredContext = serde_json::from_value(old).unwrap();
        assert_eq!(c.kind, ContextKind::Hosted);
        assert_eq!(c.url, None);
    }

    #[test]
    fn details_name_the_kind_and_the_uses() {
        let c = StoredContext {
            local_id: "ab-12".into(),
            created_at: "2026-12-01T00:00:00Z".parse().unwrap(),
            body: json!({"@context": {}}),
            kind: ContextKind::Hosted,
            url: None,
            subscription: None,
            tenant: None,
        };
        let d = HeldContext::Stored(c, Usage::default()).details("http://h:1");
        assert_eq!(
            d,
            json!({"URL": "http://h:1/ngsi-ld/v1/jsonldContexts/ab-12", "localId": "ab-12",
                   "kind": "Hosted", "createdAt": "2026-12-01T00:00:00.000Z", "numberOfHits": 0})
        );
        let started = ngsi::entity::now();
        let core = HeldContext::Core(started).details("http://h:1");
        assert_eq!(core["URL"], CORE_CONTEXT_URL);
        assert_eq!(core["kind"], "Cached");
        assert!(core["createdAt"].is_string());
        assert_eq!(HeldContext::Core(started).body()["@context"]["id"], "@id");
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(ContextKind::parse("Hosted").unwrap(), ContextKind::Hosted);
        assert!(ContextKind::parse("hosted").is_err());
    }
}
