//! Resolving a request's @context: the core context built in, user contexts fetched
//! once (with a timeout and a size limit) and cached in memory and in the store, so
//! that a restart needs no network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ngsi::context::{ContextError, is_core_context_url};
use ngsi::{Context, Error, ErrorKind};
use serde_json::Value;
use store::Store;

/// Built contexts kept in memory; past this the cache starts afresh.
const MAX_CACHED_CONTEXTS: usize = 1_000;
/// How many remote documents one @context may pull in.
const MAX_FETCHES_PER_CONTEXT: usize = 32;

pub struct ContextResolver {
    store: Arc<dyn Store>,
    http: crate::outbound::OutboundClient,
    max_bytes: usize,
    built: Mutex<HashMap<String, Arc<Context>>>,
    documents: Mutex<HashMap<String, Value>>,
}

impl ContextResolver {
    /// A resolver whose fetches obey `outbound` (refused addresses are never reached).
    pub fn new(
        store: Arc<dyn Store>,
        timeout: Duration,
        max_bytes: usize,
        outbound: &Arc<crate::outbound::OutboundPolicy>,
    ) -> Result<Self, crate::outbound::OutboundError> {
        let http = crate::outbound::OutboundClient::new(outbound, |b| {
            b.timeout(timeout).connect_timeout(timeout)
        })?;
        Ok(ContextResolver {
            store,
            http,
            max_bytes,
            built: Mutex::default(),
            documents: Mutex::default(),
        })
    }

    /// The active context for an @context value (URL, object or array).
    pub async fn resolve(&self, value: &Value) -> Result<Arc<Context>, Error> {
        if matches!(value, Value::String(url) if is_core_context_url(url)) || value.is_null() {
            return Ok(Context::core());
        }
        let key = value.to_string();
        if let Some(ctx) = self.built.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(ctx);
        }
        for _ in 0..=MAX_FETCHES_PER_CONTEXT {
            let docs = self.documents.lock().map(|d| d.clone()).unwrap_or_default();
            match Context::build(value, &|url| docs.get(url).cloned()) {
                Ok(ctx) => {
                    let ctx = Arc::new(ctx);
                    if let Ok(mut m) = self.built.lock() {
                        if m.len() >= MAX_CACHED_CONTEXTS {
                            m.clear();
                        }
                        m.insert(key, ctx.clone());
                    }
                    return Ok(ctx);
                }
                Err(ContextError::NeedsRemote(url)) => {
                    let doc = self.document(&url).await?;
                    if let Ok(mut d) = self.documents.lock() {
                        d.insert(url, doc);
                    }
                }
                Err(invalid) => return Err(invalid.into()),
            }
        }
        Err(Error::bad_data(
            "the @context refers to too many remote documents",
        ))
    }

    /// The context a `Link` header names.
    pub async fn resolve_link(&self, url: &str) -> Result<Arc<Context>, Error> {
        self.resolve(&Value::String(url.to_string())).await
    }

    async fn document(&self, url: &str) -> Result<Value, Error> {
        if let Ok(Some(body)) = self.store.cached_context(url).await
            && let Ok(doc) = serde_json::from_str::<Value>(&body)
        {
            return Ok(doc);
        }
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
        if let Err(e) = self.store.cache_context(url, &text).await {
            tracing::warn!(url, error = %e, "could not cache a remote @context");
        }
        Ok(doc)
    }
}
