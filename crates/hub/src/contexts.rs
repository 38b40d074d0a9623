//! Resolving a request's @context: the core context built in, the contexts the hub
//! holds (hosted or implicitly created, [`crate::hosted_contexts`]) read from the
//! store, and remote contexts fetched once (with a timeout and a size limit) and
//! cached in memory and in the store, so that a restart needs no network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ngsi::context::{ContextError, is_core_context_url};
use ngsi::{Context, Error, ErrorKind};
use serde_json::Value;
use store::Store;

use crate::hosted_contexts::{HOSTED_PATH, hosted_id};

/// Built contexts kept in memory; past this the cache starts afresh.
const MAX_BUILT_CONTEXTS: usize = 1_000;
/// Fetched documents kept in memory (kind `Cached`); past this, or past
/// [`MAX_CACHED_BYTES`] in all, the least recently used go.
pub const MAX_CACHED_DOCUMENTS: usize = 1_000;
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;
/// How many remote documents one @context may pull in.
const MAX_FETCHES_PER_CONTEXT: usize = 32;

/// How often a context was used (named by a request, or served), as this node
/// counted since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub hits: u64,
    pub last: Option<DateTime<Utc>>,
}

impl Usage {
    fn hit(&mut self) {
        self.hits += 1;
        self.last = Some(ngsi::entity::now());
    }
}

/// A fetched document of the cache (kind `Cached`).
#[derive(Debug, Clone)]
pub struct CachedDocument {
    pub url: String,
    pub local_id: String,
    pub body: Value,
    pub bytes: usize,
    pub created_at: DateTime<Utc>,
    pub usage: Usage,
    /// The cache's tick when it was last read, for eviction.
    touched: u64,
}

/// The fetched documents, by URL, bounded in number and size.
#[derive(Default)]
struct DocumentCache {
    by_url: HashMap<String, CachedDocument>,
    bytes: usize,
    tick: u64,
}

impl DocumentCache {
    fn get(&mut self, url: &str) -> Option<Value> {
        self.tick += 1;
        let tick = self.tick;
        self.by_url.get_mut(url).map(|d| {
            d.touched = tick;
            d.body.clone()
        })
    }

    /// Keeps a document; one fetched again keeps its id and its count of uses.
    fn insert(&mut self, url: &str, body: Value, bytes: usize) {
        self.tick += 1;
        let (local_id, usage) = match self.remove(url) {
            Some(old) => (old.local_id, old.usage),
            None => (uuid::Uuid::new_v4().to_string(), Usage::default()),
        };
        while !self.by_url.is_empty()
            && (self.by_url.len() >= MAX_CACHED_DOCUMENTS || self.bytes + bytes > MAX_CACHED_BYTES)
        {
            let oldest = self
                .by_url
                .values()
                .min_by_key(|d| d.touched)
                .map(|d| d.url.clone());
            if let Some(oldest) = oldest {
                self.remove(&oldest);
            }
        }
        self.bytes += bytes;
        self.by_url.insert(
            url.to_string(),
            CachedDocument {
                url: url.to_string(),
                local_id,
                body,
                bytes,
                created_at: ngsi::entity::now(),
                usage,
                touched: self.tick,
            },
        );
    }

    fn remove(&mut self, url: &str) -> Option<CachedDocument> {
        let old = self.by_url.remove(url)?;
        self.bytes -= old.bytes;
        Some(old)
    }

    /// The document whose URL or local id is `key`.
    fn find(&self, key: &str) -> Option<&CachedDocument> {
        self.by_url
            .get(key)
            .or_else(|| self.by_url.values().find(|d| d.local_id == key))
    }
}

/// The uses of a context the hub holds, and the URL the hub gave out for it (an
/// implicitly created one), which names it whatever the request's origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldUsage {
    pub url: Option<String>,
    pub usage: Usage,
}

pub struct ContextResolver {
    store: Arc<dyn Store>,
    http: crate::outbound::OutboundClient,
    max_bytes: usize,
    /// The configured public base URL, without a trailing slash.
    public_url: Option<String>,
    built: Mutex<HashMap<String, Arc<Context>>>,
    cache: Mutex<DocumentCache>,
    /// By local id: the uses of the hosted and implicitly created contexts.
    pub(crate) held: Mutex<HashMap<String, HeldUsage>>,
    /// Held while a context is added to the store, so that this node's adds are
    /// counted one after another against the bound.
    pub(crate) adding: tokio::sync::Mutex<()>,
    /// When this node started: the `createdAt` of the core context.
    pub(crate) started: DateTime<Utc>,
}

impl ContextResolver {
    /// A resolver whose fetches obey `outbound` (refused addresses are never reached);
    /// `public_url`, when given, is the origin of the URLs of the contexts it holds.
    pub fn new(
        store: Arc<dyn Store>,
        timeout: Duration,
        max_bytes: usize,
        public_url: Option<&str>,
        outbound: &Arc<crate::outbound::OutboundPolicy>,
    ) -> Result<Self, crate::outbound::OutboundError> {
        let http = crate::outbound::OutboundClient::new(outbound, |b| {
            b.timeout(timeout).connect_timeout(timeout)
        })?;
        Ok(ContextResolver {
            store,
            http,
            max_bytes,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            built: Mutex::default(),
            cache: Mutex::default(),
            held: Mutex::default(),
            adding: tokio::sync::Mutex::default(),
            started: ngsi::entity::now(),
        })
    }

    /// The origin the URLs of held contexts start with: the configured public URL,
    /// else `request_origin` (`http://host:port`, as the caller reached the hub).
    pub fn origin<'a>(&'a self, request_origin: &'a str) -> &'a str {
        self.public_url.as_deref().unwrap_or(request_origin)
    }

    /// The active context for an @context value (URL, object or array), outside any
    /// request: only the configured public URL is the hub's own.
    pub async fn resolve(&self, value: &Value) -> Result<Arc<Context>, Error> {
        self.resolve_at(value, None).await
    }

    /// The active context for an @context value of a request sent to
    /// `request_origin`. A URL of a held context is read from the store when it is
    /// under the hub's own origin ([`Self::origin`]); any other is fetched.
    pub async fn resolve_at(
        &self,
        value: &Value,
        request_origin: Option<&str>,
    ) -> Result<Arc<Context>, Error> {
        if matches!(value, Value::String(url) if is_core_context_url(url)) || value.is_null() {
            return Ok(Context::core());
        }
        let origin = self.public_url.as_deref().or(request_origin);
        let key = format!("{}\n{value}", origin.unwrap_or_default());
        let known = self.built.lock().ok().and_then(|m| m.get(&key).cloned());
        let ctx = match known {
            Some(ctx) => ctx,
            None => self.build(value, origin, key).await?,
        };
        self.count_uses(value, origin);
        Ok(ctx)
    }

    async fn build(
        &self,
        value: &Value,
        origin: Option<&str>,
        key: String,
    ) -> Result<Arc<Context>, Error> {
        let mut documents: HashMap<String, Value> = HashMap::new();
        for _ in 0..=MAX_FETCHES_PER_CONTEXT {
            match Context::build(value, &|url| documents.get(url).cloned()) {
                Ok(ctx) => {
                    let ctx = Arc::new(ctx);
                    if let Ok(mut m) = self.built.lock() {
                        if m.len() >= MAX_BUILT_CONTEXTS {
                            m.clear();
                        }
                        m.insert(key, ctx.clone());
                    }
                    return Ok(ctx);
                }
                Err(ContextError::NeedsRemote(url)) => {
                    let doc = self.document(&url, origin).await?;
                    documents.insert(url, doc);
                }
                Err(invalid) => return Err(invalid.into()),
            }
        }
        Err(Error::bad_data(
            "the @context refers to too many remote documents",
        ))
    }

    /// Counts a use of each context `value` names by URL.
    fn count_uses(&self, value: &Value, origin: Option<&str>) {
        let urls: Vec<&str> = match value {
            Value::String(url) => vec![url.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for url in urls {
            if let Some(id) = hosted_id(url)
                && let Ok(mut held) = self.held.lock()
                && let Some(entry) = held.get_mut(id)
                && (own_id(url, origin) == Some(id) || entry.url.as_deref() == Some(url))
            {
                entry.usage.hit();
            } else if let Ok(mut cache) = self.cache.lock()
                && let Some(doc) = cache.by_url.get_mut(url)
            {
                doc.usage.hit();
            }
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The size bound of a context document, fetched or hosted.
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Drops the contexts built so far (a context they may use was deleted or
    /// fetched again).
    pub(crate) fn forget_built(&self) {
        if let Ok(mut m) = self.built.lock() {
            m.clear();
        }
    }

    /// The context a `Link` header of a request sent to `request_origin` names.
    pub async fn resolve_link(
        &self,
        url: &str,
        request_origin: Option<&str>,
    ) -> Result<Arc<Context>, Error> {
        self.resolve_at(&Value::String(url.to_string()), request_origin)
            .await
    }

    /// The cached document whose URL or local id is `key`.
    pub(crate) fn cached(&self, key: &str) -> Option<CachedDocument> {
        self.cache.lock().ok()?.find(key).cloned()
    }

    /// The cached documents, oldest first.
    pub(crate) fn cached_all(&self) -> Vec<CachedDocument> {
        let mut all: Vec<CachedDocument> = self
            .cache
            .lock()
            .map(|c| c.by_url.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.url.cmp(&b.url)));
        all
    }

    /// Counts a use of the cached document at `url` (it was served).
    pub(crate) fn hit_cached(&self, url: &str) {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(doc) = cache.by_url.get_mut(url)
        {
            doc.usage.hit();
        }
    }

    /// Counts a use of the held context `id` (it was served).
    pub(crate) fn hit_held(&self, id: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.entry(id.to_string()).or_default().usage.hit();
        }
    }

    /// The uses of the held context `id`.
    pub(crate) fn held_usage(&self, id: &str) -> Usage {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.get(id).map(|e| e.usage))
            .unwrap_or_default()
    }

    /// Drops the cached document at `url`, from memory and from the store. Whether
    /// either held it.
    pub(crate) async fn forget_cached(&self, url: &str) -> Result<bool, Error> {
        let in_memory = self
            .cache
            .lock()
            .map(|mut c| c.remove(url).is_some())
            .unwrap_or(false);
        let stored = self
            .store
            .cached_context(url)
            .await
            .map_err(crate::service::store_error)?
            .is_some();
        if stored {
            self.store
                .forget_context(url)
                .await
                .map_err(crate::service::store_error)?;
        }
        self.forget_built();
        Ok(in_memory || stored)
    }

    /// Fetches the document at `url` again and keeps it in place of the cached one;
    /// when that fails the cached one stays.
    pub(crate) async fn reload_cached(&self, url: &str) -> Result<(), Error> {
        let (doc, text) = self.fetch(url).await?;
        self.keep(url, doc, &text, true).await;
        self.forget_built();
        Ok(())
    }

    /// Keeps a fetched document in memory and, when `store` is set, in the store.
    async fn keep(&self, url: &str, doc: Value, text: &str, store: bool) {
        if store && let Err(e) = self.store.cache_context(url, text).await {
            tracing::warn!(url, error = %e, "could not cache a remote @context");
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url, doc, text.len());
        }
    }

    async fn document(&self, url: &str, origin: Option<&str>) -> Result<Value, Error> {
        // A context this hub holds is read from the store when the URL is under the
        // hub's own origin, or is the one the hub gave out for it; another server's
        // URL of the same form is fetched as any other.
        if let Some(id) = hosted_id(url)
            && let Some(held) = self.hosted(id).await?
            && (own_id(url, origin) == Some(id) || held.url.as_deref() == Some(url))
        {
            if let Ok(mut h) = self.held.lock() {
                h.entry(id.to_string()).or_default().url = held.url.clone();
            }
            return Ok(held.body);
        }
        if let Some(id) = own_id(url, origin)
            && let Some(doc) = self.cached(id)
        {
            return Ok(doc.body);
        }
        if let Some(doc) = self.cache.lock().ok().and_then(|mut c| c.get(url)) {
            return Ok(doc);
        }
        if let Ok(Some(body)) = self.store.cached_context(url).await
            && let Ok(doc) = serde_json::from_str::<Value>(&body)
        {
            self.keep(url, doc.clone(), &body, false).await;
            return Ok(doc);
        }
        let (doc, text) = self.fetch(url).await?;
        self.keep(url, doc.clone(), &text, true).await;
        Ok(doc)
    }

    /// Fetches a remote @context document: the document and its text.
    async fn fetch(&self, url: &str) -> Result<(Value, String), Error> {
        let unavailable = |why: String| {
            Error::new(
                ErrorKind::LdContextNotAvailable,
                format!("the @context {url} could not be retrieved: {why}"),
            )
        };
        let mut response = self
            .http
            .get(url)
            .map_err(|e| unavailable(e.to_string()))?
            .header("Accept", "application/ld+json, application/json")
            .send()
            .await
            .map_err(|e| unavailable(crate::outbound::describe(&e)))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > self.max_bytes {
                return Err(unavailable(format!("larger than {} bytes", self.max_bytes)));
            }
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not JSON: {e}")))?;
        if doc.get("@context").is_none() {
            return Err(unavailable("the document holds no \"@context\"".into()));
        }
        let text = serde_json::to_string(&doc).unwrap_or_default();
        Ok((doc, text))
    }
}

/// The local id `url` names when it is the address of a held context under
/// `origin` (`http://host:port`, or a public base URL that may have a path).
pub(crate) fn own_id<'u>(url: &'u str, origin: Option<&str>) -> Option<&'u str> {
    let origin = origin?.trim_end_matches('/');
    let head = url.get(..origin.len())?;
    if !head.eq_ignore_ascii_case(origin) {
        return None;
    }
    let id = url[origin.len()..].strip_prefix(HOSTED_PATH)?;
    crate::hosted_contexts::is_local_id(id).then_some(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_urls_are_those_under_the_origin() {
        let id = "0b6c3e4e-5a8f-4f0e-9d1c-1234567890ab";
        let url = format!("http://10.0.0.2:8080/ngsi-ld/v1/jsonldContexts/{id}");
        assert_eq!(own_id(&url, Some("http://10.0.0.2:8080")), Some(id));
        assert_eq!(own_id(&url, Some("HTTP://10.0.0.2:8080/")), Some(id));
        assert_eq!(own_id(&url, Some("http://10.0.0.3:8080")), None);
        assert_eq!(own_id(&url, Some("https://10.0.0.2:8080")), None);
        assert_eq!(own_id(&url, None), None);
        let behind = format!("https://city.example/hub/ngsi-ld/v1/jsonldContexts/{id}");
        assert_eq!(own_id(&behind, Some("https://city.example/hub")), Some(id));
        assert_eq!(own_id(&behind, Some("https://city.example")), None);
    }

    #[test]
    fn the_document_cache_evicts_the_least_recently_used() {
        let mut cache = DocumentCache::default();
        for i in 0..MAX_CACHED_DOCUMENTS {
            cache.insert(&format!("http://c/{i}"), json!({"@context": {}}), 10);
        }
        // Read the first: the second is now the least recently used.
        assert!(cache.get("http://c/0").is_some());
        cache.insert("http://c/new", json!({"@context": {}}), 10);
        assert_eq!(cache.by_url.len(), MAX_CACHED_DOCUMENTS);
        assert!(cache.by_url.contains_key("http://c/0"));
        assert!(!cache.by_url.contains_key("http://c/1"));
        assert_eq!(cache.bytes, 10 * MAX_CACHED_DOCUMENTS);

        // Past the size bound, as many go as make room.
        cache.insert(
            "http://c/big",
            json!({"@context": {}}),
            MAX_CACHED_BYTES - 25,
        );
        assert!(cache.bytes <= MAX_CACHED_BYTES, "{}", cache.bytes);
        assert!(cache.by_url.contains_key("http://c/big"));
        assert!(cache.by_url.len() <= 3, "{}", cache.by_url.len());
    }

    #[test]
    fn a_document_fetched_again_keeps_its_id_and_uses() {
        let mut cache = DocumentCache::default();
        cache.insert("http://c/a", json!({"@context": {"a": "urn:a"}}), 20);
        let id = cache.find("http://c/a").unwrap().local_id.clone();
        cache.by_url.get_mut("http://c/a").unwrap().usage.hit();
        cache.insert("http://c/a", json!({"@context": {"a": "urn:b"}}), 30);
        let doc = cache.find(&id).unwrap();
        assert_eq!(doc.url, "http://c/a");
        assert_eq!(doc.usage.hits, 1);
        assert_eq!(doc.body["@context"]["a"], "urn:b");
        assert_eq!(cache.bytes, 30);
    }
}
