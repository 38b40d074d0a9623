//! Where an identity provider's signing keys come from: a JWKS file given at start
//! (for sites whose provider the server cannot reach), or the provider itself,
//! through its discovery document (`/.well-known/openid-configuration`, then its
//! `jwks_uri`), fetched when first needed, kept for an hour, and fetched again early
//! when a token names a key the set does not have (the provider rotated its keys).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::jwt::Jwks;

/// How long fetched keys are used before they are fetched again.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// The shortest time between two fetches (a stream of tokens with unknown keys does
/// not become a stream of requests to the provider).
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Largest discovery document or key set accepted.
const MAX_BYTES: usize = 256 * 1024;

pub struct KeySource {
    /// The issuer whose discovery document names the key set; None for a fixed set.
    issuer: Option<String>,
    refetch_after: Duration,
    current: tokio::sync::Mutex<Option<(Arc<Jwks>, Instant)>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.issuer {
            Some(i) => write!(f, "keys of {i}, fetched"),
            None => write!(f, "keys from a file"),
        }
    }
}

impl KeySource {
    /// A key set given at start, used as it is.
    pub fn fixed(jwks: Jwks) -> KeySource {
        KeySource {
            issuer: None,
            refetch_after: REFETCH_AFTER,
            current: tokio::sync::Mutex::new(Some((Arc::new(jwks), Instant::now()))),
            http: reqwest::Client::new(),
        }
    }

    /// The keys the issuer publishes, found through its discovery document. The
    /// issuer is the operator's configuration, not a caller's: it may be on the
    /// province's internal network.
    pub fn discovered(issuer: &str) -> KeySource {
        KeySource {
            issuer: Some(issuer.trim_end_matches('/').to_string()),
            refetch_after: REFETCH_AFTER,
            current: tokio::sync::Mutex::new(None),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The same, fetching again at most every `every` when a token names an unknown
    /// key (a minute by default).
    pub fn refetching_after(mut self, every: Duration) -> KeySource {
        self.refetch_after = every;
        self
    }

    /// The keys to verify with; `stale` asks for a fresh set when the one held was
    /// fetched long enough ago (a token named a key it lacks).
    pub async fn keys(&self, stale: bool) -> Result<Arc<Jwks>, String> {
        let mut current = self.current.lock().await;
        let Some(issuer) = &self.issuer else {
            return current
                .as_ref()
                .map(|(k, _)| k.clone())
                .ok_or_else(|| "no keys".to_string());
        };
        let due = match current.as_ref() {
            None => true,
            Some((_, at)) => {
                at.elapsed() >= KEEP_FOR || (stale && at.elapsed() >= self.refetch_after)
            }
        };
        if due {
            match self.fetch(issuer).await {
                Ok(keys) => *current = Some((Arc::new(keys), Instant::now())),
                Err(e) => {
                    tracing::warn!(issuer = %issuer, error = %e, "the identity provider's keys were not fetched");
                    if current.is_none() {
                        return Err(format!("the identity provider's keys are unavailable: {e}"));
                    }
                }
            }
        }
        current
            .as_ref()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| "no keys".to_string())
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let r = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_BYTES {
            return Err(format!("{url}: larger than {MAX_BYTES} bytes"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON ({e})"))
    }

    async fn fetch(&self, issuer: &str) -> Result<Jwks, String> {
        let discovery = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        let Some(jwks_uri) = discovery.get("jwks_uri").and_then(Value::as_str) else {
            return Err("the discovery document names no jwks_uri".into());
        };
        let set = self.get_json(jwks_uri).await?;
        Jwks::from_json(&set.to_string()).map_err(|e| format!("{jwks_uri}: {e}"))
    }
}
