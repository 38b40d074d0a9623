//! JSON-LD @context handling, as far as NGSI-LD needs it: expanding the short names of
//! entity types and attributes to IRIs on the way in, compacting them on the way out.
//!
//! The core context is built in; its terms are protected (a user context cannot
//! redefine them) and every published core-context URL means it. User contexts are
//! term maps (`"name": "https://schema.org/name"`, prefixes, `@vocab`); this module
//! never fetches anything: callers hand it the remote documents it asks for.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// The URL the core context is published at (v1.9).
pub const CORE_CONTEXT_URL: &str =
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";
/// Where terms that no context defines are expanded to.
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";
/// The `ngsi-ld:` namespace.
pub const NGSI_LD: &str = "https://uri.etsi.org/ngsi-ld/";

/// The core context document (v1.9), as published.
pub const CORE_CONTEXT_TEXT: &str = include_str!("../context/ngsi-ld-core-context-v1.9.jsonld");

/// Bounds that keep a hostile @context from costing much.
const MAX_TERMS: usize = 20_000;
const MAX_REMOTE_DOCUMENTS: usize = 32;

/// Whether `url` names a version of the core context (always the built-in one).
pub fn is_core_context_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context")
        .or_else(|| url.strip_prefix("http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"));
    match rest {
        Some(".jsonld") => true,
        Some(rest) => rest
            .strip_prefix("-v1.")
            .and_then(|r| r.strip_suffix(".jsonld"))
            .is_some_and(|minor| !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit())),
        None => false,
    }
}

/// Why a context could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextError {
    /// This remote document is needed: fetch it and build again.
    NeedsRemote(String),
    /// The context is malformed.
    Invalid(String),
}

impl From<ContextError> for Error {
    fn from(e: ContextError) -> Self {
        match e {
            ContextError::NeedsRemote(url) => Error::new(
                ErrorKind::LdContextNotAvailable,
                format!("the @context {url} could not be retrieved"),
            ),
            ContextError::Invalid(msg) => Error::bad_data(format!("invalid @context: {msg}")),
        }
    }
}

/// An active context: the core context plus the user's terms.
#[derive(Debug, Default)]
pub struct Context {
    /// term → raw definition (an IRI, a compact IRI or another term).
    user_terms: HashMap<String, String>,
    /// The user's `@vocab`, if any.
    vocab: Option<String>,
    /// IRI → preferred term, for compaction (user terms, then core terms).
    reverse: HashMap<String, String>,
    /// Prefix → namespace IRI, for compacting to `prefix:suffix`.
    prefixes: Vec<(String, String)>,
    /// The @context value to put in responses (URL strings or inline objects).
    pub source: Vec<Value>,
}

#[derive(Debug)]
struct Core {
    terms: HashMap<String, String>,
    reverse: HashMap<String, String>,
    /// Prefix → namespace IRI (`ngsi-ld` → `https://uri.etsi.org/ngsi-ld/`).
    prefixes: Vec<(String, String)>,
}

fn core() -> &'static Core {
    static CORE: OnceLock<Core> = OnceLock::new();
    CORE.get_or_init(|| {
        let mut terms = HashMap::new();
        let doc: Value = serde_json::from_str(CORE_CONTEXT_TEXT).unwrap_or(Value::Null);
        if let Some(map) = doc.get("@context").and_then(Value::as_object) {
            for (term, def) in map {
                if term.starts_with('@') {
                    continue;
                }
                let iri = match def {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("@id").and_then(Value::as_str),
                    _ => None,
                };
                if let Some(iri) = iri {
                    terms.insert(term.clone(), iri.to_string());
                }
            }
        }
        // Resolve compact IRIs such as "ngsi-ld:location" against the core prefixes.
        let prefixes: HashMap<String, String> = terms
            .iter()
            .filter(|(_, v)| v.ends_with('/') || v.ends_with('#'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let resolved: HashMap<String, String> = terms
            .iter()
            .map(|(k, v)| (k.clone(), resolve_prefix(v, &prefixes)))
            .collect();
        let mut reverse = HashMap::new();
        for (term, iri) in &resolved {
            if prefixes.contains_key(term) {
                continue;
            }
            reverse
                .entry(iri.clone())
                .and_modify(|t: &mut String| {
                    if term.len() < t.len() || (term.len() == t.len() && term < t) {
                        *t = term.clone();
                    }
                })
                .or_insert_with(|| term.clone());
        }
        let mut prefixes: Vec<(String, String)> = prefixes.into_iter().collect();
        prefixes.sort();
        Core {
            terms: resolved,
            reverse,
            prefixes,
        }
    })
}

fn resolve_prefix(value: &str, prefixes: &HashMap<String, String>) -> String {
    if let Some((prefix, suffix)) = value.split_once(':')
        && !suffix.starts_with("//")
        && let Some(ns) = prefixes.get(prefix)
    {
        return format!("{ns}{suffix}");
    }
    value.to_string()
}

impl Context {
    /// The core context alone.
    pub fn core() -> Arc<Context> {
        static CORE_ONLY: OnceLock<Arc<Context>> = OnceLock::new();
        CORE_ONLY
            .get_or_init(|| {
                Arc::new(Context {
                    source: vec![Value::String(CORE_CONTEXT_URL.into())],
                    ..Default::default()
                })
            })
            .clone()
    }

    /// Builds the active context from an `@context` value (a URL, an object, or an
    /// array of them). `remote` gives the documents of remote URLs already fetched;
    /// when one is missing the error names it.
    pub fn build(
        value: &Value,
        remote: &dyn Fn(&str) -> Option<Value>,
    ) -> Result<Context, ContextError> {
        let mut ctx = Context {
            source: Vec::new(),
            ..Default::default()
        };
        let mut fetched = 0usize;
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in &items {
            ctx.source.push((*item).clone());
        }
        for item in items {
            ctx.absorb(item, remote, &mut fetched, 0)?;
        }
        ctx.finish();
        Ok(ctx)
    }

    fn absorb(
        &mut self,
        value: &Value,
        remote: &dyn Fn(&str) -> Option<Value>,
        fetched: &mut usize,
        depth: usize,
    ) -> Result<(), ContextError> {
        if depth > 8 {
            return Err(ContextError::Invalid(
                "@context nesting deeper than 8".into(),
            ));
        }
        match value {
            Value::Null => Ok(()),
            Value::String(url) => {
                if is_core_context_url(url) {
                    return Ok(());
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ContextError::Invalid(format!(
                        "{url:?} is not an http(s) URL"
                    )));
                }
                *fetched += 1;
                if *fetched > MAX_REMOTE_DOCUMENTS {
                    return Err(ContextError::Invalid(
                        "too many remote @context documents".into(),
                    ));
                }
                let doc = remote(url).ok_or_else(|| ContextError::NeedsRemote(url.clone()))?;
                match doc.get("@context") {
                    Some(inner) => self.absorb(inner, remote, fetched, depth + 1),
                    None => Err(ContextError::Invalid(format!(
                        "{url} holds no \"@context\""
                    ))),
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.absorb(item, remote, fetched, depth + 1)?;
                }
                Ok(())
            }
            Value::Object(map) => {
                for (term, def) in map {
                    match term.as_str() {
                        "@vocab" => self.vocab = def.as_str().map(str::to_string),
                        t if t.starts_with('@') => {}
                        _ => {
                            let iri = match def {
                                Value::String(s) => Some(s.clone()),
                                Value::Object(o) => {
                                    o.get("@id").and_then(Value::as_str).map(str::to_string)
                                }
                                Value::Null => None,
                                _ => {
                                    return Err(ContextError::Invalid(format!(
                                        "the definition of {term:?} must be a string or an object"
                                    )));
                                }
                            };
                            // Core terms are protected: a user context cannot redefine them.
                            if let Some(iri) = iri
                                && !core().terms.contains_key(term)
                            {
                                self.user_terms.insert(term.clone(), iri);
                            }
                        }
                    }
                    if self.user_terms.len() > MAX_TERMS {
                        return Err(ContextError::Invalid(format!(
                            "more than {MAX_TERMS} terms"
                        )));
                    }
                }
                Ok(())
            }
            _ => Err(ContextError::Invalid(
                "an @context is a URL, an object or an array".into(),
            )),
        }
    }

    fn finish(&mut self) {
        let mut resolved = Vec::with_capacity(self.user_terms.len());
        for term in self.user_terms.keys() {
            resolved.push((term.clone(), self.expand(term)));
        }
        for (term, iri) in resolved {
            if iri.ends_with('/') || iri.ends_with('#') {
                self.prefixes.push((term.clone(), iri.clone()));
            }
            self.reverse
                .entry(iri)
                .and_modify(|t| {
                    if term.len() < t.len() || (term.len() == t.len() && term < *t) {
                        *t = term.clone();
                    }
                })
                .or_insert(term);
        }
        // Longest namespace first, so the most specific prefix wins.
        self.prefixes
            .sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    }

    /// Expands a term (an entity type or attribute name) to its IRI.
    pub fn expand(&self, term: &str) -> String {
        self.expand_depth(term, 0)
    }

    fn expand_depth(&self, term: &str, depth: usize) -> String {
        if let Some(iri) = core().terms.get(term) {
            return iri.clone();
        }
        if depth < 8
            && let Some(def) = self.user_terms.get(term)
        {
            if def == term {
                return def.clone();
            }
            return self.expand_depth(def, depth + 1);
        }
        if let Some((prefix, suffix)) = term.split_once(':') {
            if suffix.starts_with("//") {
                return term.to_string();
            }
            if depth < 8
                && (self.user_terms.contains_key(prefix) || core().terms.contains_key(prefix))
            {
                let ns = self.expand_depth(prefix, depth + 1);
                return format!("{ns}{suffix}");
            }
            // An absolute IRI of another scheme (urn:, http:...).
            return term.to_string();
        }
        let vocab = self.vocab.as_deref().unwrap_or(DEFAULT_VOCAB);
        format!("{vocab}{term}")
    }

    /// Compacts an IRI to the shortest name this context gives it.
    pub fn compact(&self, iri: &str) -> String {
        if let Some(term) = self.reverse.get(iri) {
            return term.clone();
        }
        if let Some(term) = core().reverse.get(iri) {
            return term.clone();
        }
        let vocab = self.vocab.as_deref().unwrap_or(DEFAULT_VOCAB);
        // A suffix of @vocab that is itself a term would expand to that term's IRI,
        // not back to this one (JSON-LD 1.1 IRI compaction): a compact IRI is used.
        if let Some(term) = iri.strip_prefix(vocab)
            && !term.is_empty()
            && !term.contains(['/', '#', ':'])
            && !self.is_term(term)
        {
            return term.to_string();
        }
        // The shortest compact IRI of the user's prefixes and the core's (`ngsi-ld:`),
        // the least in text order among equals.
        let mut best: Option<String> = None;
        for (prefix, ns) in self.prefixes.iter().chain(&core().prefixes) {
            if let Some(suffix) = iri.strip_prefix(ns.as_str())
                && !suffix.is_empty()
            {
                let candidate = format!("{prefix}:{suffix}");
                if best
                    .as_ref()
                    .is_none_or(|b| (candidate.len(), &candidate) < (b.len(), b))
                {
                    best = Some(candidate);
                }
            }
        }
        best.unwrap_or_else(|| iri.to_string())
    }

    /// Whether `name` is a term of this context or of the core context.
    fn is_term(&self, name: &str) -> bool {
        self.user_terms.contains_key(name) || core().terms.contains_key(name)
    }

    /// The @context to put in a JSON-LD response body: the request's, as it was given
    /// (a client compacts the answer with the context it sent; the core context
    /// applies whether it is named or not), or the core context when none was.
    pub fn response_value(&self) -> Value {
        match self.source.as_slice() {
            [] => Value::String(CORE_CONTEXT_URL.into()),
            [one] => one.clone(),
            many => Value::Array(many.to_vec()),
        }
    }

    /// The URL to put in a `Link` header, when the context is one URL.
    pub fn link_url(&self) -> &str {
        match self.source.as_slice() {
            [Value::String(url)] => url,
            _ => CORE_CONTEXT_URL,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_remote(_: &str) -> Option<Value> {
        None
    }

    #[test]
    fn core_urls_are_recognised() {
        for v in 3..=9 {
            assert!(is_core_context_url(&format!(
                "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{v}.jsonld"
            )));
        }
        assert!(is_core_context_url(
            "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
        ));
        assert!(!is_core_context_url(
            "https://example.org/ngsi-ld-core-context-v1.9.jsonld"
        ));
        assert!(!is_core_context_url(
            "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.x.jsonld"
        ));
    }

    #[test]
    fn expands_and_compacts() {
        let ctx = Context::build(
            &json!({"schema": "https://schema.org/", "name": "schema:name", "Gauge": "https://example.org/Gauge", "location": "https://evil/loc"}),
            &no_remote,
        )
        .unwrap();
        assert_eq!(ctx.expand("name"), "https://schema.org/name");
        assert_eq!(ctx.expand("schema:address"), "https://schema.org/address");
        assert_eq!(ctx.expand("Gauge"), "https://example.org/Gauge");
        assert_eq!(ctx.expand("level"), format!("{DEFAULT_VOCAB}level"));
        assert_eq!(ctx.expand("urn:x:y"), "urn:x:y");
        // Core terms are protected.
        assert_eq!(
            ctx.expand("location"),
            "https://uri.etsi.org/ngsi-ld/location"
        );
        assert_eq!(
            ctx.compact("https://uri.etsi.org/ngsi-ld/location"),
            "location"
        );
        assert_eq!(ctx.compact("https://schema.org/name"), "name");
        assert_eq!(ctx.compact("https://schema.org/address"), "schema:address");
        assert_eq!(ctx.compact(&format!("{DEFAULT_VOCAB}level")), "level");
        assert_eq!(ctx.compact("https://other.org/x"), "https://other.org/x");
    }

    #[test]
    fn a_vocab_suffix_that_is_a_term_compacts_to_a_compact_iri() {
        // `name` means schema:name here, so the default-context `name` cannot be
        // written `name`: it becomes `ngsi-ld:default-context/name`, which expands back.
        let ctx = Context::build(
            &json!({"schema": "https://schema.org/", "name": "schema:name"}),
            &no_remote,
        )
        .unwrap();
        let iri = format!("{DEFAULT_VOCAB}name");
        assert_eq!(ctx.compact(&iri), "ngsi-ld:default-context/name");
        assert_eq!(ctx.expand(&ctx.compact(&iri)), iri);
        // Other default-context names stay short, under the core context too.
        assert_eq!(ctx.compact(&format!("{DEFAULT_VOCAB}level")), "level");
        assert_eq!(Context::core().compact(&iri), "name");
        // The shortest compact IRI wins among prefixes.
        let ctx = Context::build(
            &json!({"dc": "https://uri.etsi.org/ngsi-ld/default-context/x/"}),
            &no_remote,
        )
        .unwrap();
        assert_eq!(
            ctx.compact("https://uri.etsi.org/ngsi-ld/default-context/x/y"),
            "dc:y"
        );
        assert_eq!(
            ctx.compact("https://uri.etsi.org/ngsi-ld/other/y"),
            "ngsi-ld:other/y"
        );
    }

    #[test]
    fn asks_for_remote_documents() {
        let v = json!(["https://example.org/ctx.jsonld", CORE_CONTEXT_URL]);
        assert_eq!(
            Context::build(&v, &no_remote).unwrap_err(),
            ContextError::NeedsRemote("https://example.org/ctx.jsonld".into())
        );
        let ctx = Context::build(&v, &|_| {
            Some(json!({"@context": {"temp": "https://example.org/temp"}}))
        })
        .unwrap();
        assert_eq!(ctx.expand("temp"), "https://example.org/temp");
        assert_eq!(ctx.link_url(), CORE_CONTEXT_URL);
    }

    #[test]
    fn rejects_malformed_contexts() {
        assert!(Context::build(&json!(42), &no_remote).is_err());
        assert!(Context::build(&json!({"a": 1}), &no_remote).is_err());
        assert!(Context::build(&json!("ftp://x"), &no_remote).is_err());
    }
}
