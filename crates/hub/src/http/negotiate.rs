//! What a request says about itself: tenant, @context, body media type, wanted media
//! type; and the response framing that follows (Link header or @context in body).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ngsi::{Context, Error, ErrorKind};
use serde_json::Value;
use std::sync::Arc;

use super::{ApiError, AppState};
use crate::auth::CallerRef;
use crate::service::Scope;

pub const JSON: &str = "application/json";
pub const JSON_LD: &str = "application/ld+json";
pub const GEO_JSON: &str = "application/geo+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";
const MAX_TENANT_LEN: usize = 128;

/// The media type a client wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    JsonLd,
    GeoJson,
}

/// Picks the best supported type of the `Accept` header (406 when none is).
pub fn accept(headers: &HeaderMap, geo_allowed: bool) -> Result<Accept, Error> {
    let Some(raw) = headers.get(header::ACCEPT) else {
        return Ok(Accept::Json);
    };
    let raw = raw
        .to_str()
        .map_err(|_| Error::new(ErrorKind::NotAcceptable, "unreadable Accept header"))?;
    let mut choices: Vec<(f32, usize, &str)> = Vec::new();
    for (i, part) in raw.split(',').enumerate() {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && !media.is_empty() {
            choices.push((q, i, media));
        }
    }
    choices.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    for (_, _, media) in choices {
        match media.to_ascii_lowercase().as_str() {
            JSON | "*/*" | "application/*" => return Ok(Accept::Json),
            JSON_LD => return Ok(Accept::JsonLd),
            GEO_JSON if geo_allowed => return Ok(Accept::GeoJson),
            _ => {}
        }
    }
    Err(Error::new(
        ErrorKind::NotAcceptable,
        if geo_allowed {
            "acceptable types are application/json, application/ld+json and application/geo+json"
        } else {
            "acceptable types are application/json and application/ld+json"
        },
    ))
}

/// The tenant a request names (`NGSILD-Tenant`), the default tenant when none.
pub fn tenant(headers: &HeaderMap) -> Result<String, Error> {
    let Some(v) = headers.get("NGSILD-Tenant") else {
        return Ok(String::new());
    };
    let t = v
        .to_str()
        .map_err(|_| Error::bad_data("unreadable NGSILD-Tenant header"))?
        .trim();
    check_tenant_name(t)?;
    Ok(t.to_string())
}

/// Checks a tenant's name (the default tenant is the empty name).
pub fn check_tenant_name(t: &str) -> Result<(), Error> {
    let valid = t.len() <= MAX_TENANT_LEN
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
    if !valid {
        return Err(Error::bad_data(format!(
            "tenant names are up to {MAX_TENANT_LEN} letters, digits and _ - . : /"
        )));
    }
    Ok(())
}

/// The @context URL of a `Link` header, if one is given.
pub fn link_context(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let mut found = None;
    for value in headers.get_all(header::LINK) {
        let text = value
            .to_str()
            .map_err(|_| Error::bad_data("unreadable Link header"))?;
        for link in text.split(',') {
            let link = link.trim();
            let Some(rest) = link.strip_prefix('<') else {
                return Err(Error::bad_data("a Link header is <url>; rel=\"...\""));
            };
            let Some((url, params)) = rest.split_once('>') else {
                return Err(Error::bad_data("a Link header is <url>; rel=\"...\""));
            };
            let is_context = params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("rel="))
                .any(|rel| rel.trim_matches('"') == CONTEXT_REL);
            if is_context {
                if found.is_some() {
                    return Err(Error::bad_data("only one @context Link header is allowed"));
                }
                found = Some(url.trim().to_string());
            }
        }
    }
    Ok(found)
}

/// The origin a request was sent to (`http://host:port`, from its `Host`), under
/// which the URLs of the hub's @contexts are its own when no public URL is
/// configured.
pub fn request_origin(state: &AppState, headers: &HeaderMap) -> String {
    let scheme = if state.gate.tls { "https" } else { "http" };
    format!("{scheme}://{}", request_host(headers))
}

/// The `Host` a request was sent to, when it is a plain host name or address and
/// port (else `localhost`): what links back to the server may be built with.
pub fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost")
}

/// The origin the URLs of the hub's @contexts start with, for a request: the
/// configured public URL, else the request's own origin.
pub fn own_origin(state: &AppState, headers: &HeaderMap) -> String {
    let request = request_origin(state, headers);
    state.hub.contexts.origin(&request).to_string()
}

/// The scope of a request without a JSON-LD body: tenant, and context from `Link`.
pub async fn scope_from_headers(
    state: &AppState,
    headers: &HeaderMap,
    caller: &CallerRef,
) -> Result<Scope, Error> {
    let tenant = tenant(headers)?;
    // The tenant grant is checked before any remote @context is fetched for the
    // caller.
    if !caller.is_anonymous() && !caller.has_tenant(&tenant) {
        return Err(Error::forbidden(format!(
            "no grant on tenant {}",
            if tenant.is_empty() {
                "(default)"
            } else {
                &tenant
            }
        )));
    }
    let ctx = match link_context(headers)? {
        Some(url) => {
            let origin = request_origin(state, headers);
            state.hub.contexts.resolve_link(&url, Some(&origin)).await?
        }
        None => Context::core(),
    };
    Ok(Scope::new(tenant, ctx, caller.clone()))
}

/// A JSON request body, read within the size limit, with its media type checked.
pub struct JsonBody {
    pub value: Value,
    pub ld: bool,
    pub headers: HeaderMap,
    /// Who sent it ([`super::gate`]).
    pub caller: CallerRef,
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let caller = super::gate::caller_of(req.extensions());
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let ld = match media.as_deref() {
            Some(JSON) | Some(MERGE_PATCH) => false,
            Some(JSON_LD) => true,
            _ => {
                return Err(Error::new(
                    ErrorKind::UnsupportedMediaType,
                    "send application/json or application/ld+json",
                )
                .into());
            }
        };
        let limit = state.config.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::PayloadTooLarge,
                    format!("the body is larger than {limit} bytes"),
                )
            })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("the body is not valid JSON: {e}")))?;
        Ok(JsonBody {
            value,
            ld,
            headers,
            caller,
        })
    }
}

impl JsonBody {
    /// Tenant and @context: from the body for JSON-LD (which must carry one, and no
    /// Link header), else from the `Link` header.
    pub async fn scope(&self, state: &AppState) -> Result<Scope, Error> {
        if !self.value.is_object() {
            return Err(Error::invalid("the body must be a JSON object"));
        }
        self.scope_of(state, &self.value).await
    }

    /// A JSON-LD body carries its own @context: a Link header beside it is refused
    /// (clause 6.3.5), for the whole request.
    pub fn check_framing(&self) -> Result<(), Error> {
        if self.ld && link_context(&self.headers)?.is_some() {
            return Err(Error::bad_data(
                "with application/ld+json the @context goes in the body, not in a Link header",
            ));
        }
        Ok(())
    }

    /// The same, for one item of an array body (batch operations).
    pub async fn scope_of(&self, state: &AppState, item: &Value) -> Result<Scope, Error> {
        let tenant = tenant(&self.headers)?;
        if self.ld {
            self.check_framing()?;
            let ctx_value = item
                .get("@context")
                .ok_or_else(|| Error::bad_data("an application/ld+json body needs an @context"))?;
            if !self.caller.is_anonymous() && !self.caller.has_tenant(&tenant) {
                return Err(Error::forbidden("no grant on this tenant"));
            }
            let origin = request_origin(state, &self.headers);
            let ctx = state
                .hub
                .contexts
                .resolve_at(ctx_value, Some(&origin))
                .await?;
            Ok(Scope::new(tenant, ctx, self.caller.clone()))
        } else {
            if item.get("@context").is_some() {
                return Err(Error::bad_data(
                    "an @context in the body needs Content-Type application/ld+json",
                ));
            }
            scope_from_headers(state, &self.headers, &self.caller).await
        }
    }
}

/// A JSON response framed for the request's media type and context.
pub fn respond(
    status: StatusCode,
    accept: Accept,
    ctx: &Arc<Context>,
    mut body: Value,
) -> Response {
    let media = match accept {
        Accept::Json => JSON,
        Accept::JsonLd => JSON_LD,
        Accept::GeoJson => GEO_JSON,
    };
    // GeoJSON carries its @context as a member of the Feature or FeatureCollection
    // (clause 6.3.15), beside the Link header.
    if accept == Accept::GeoJson
        && let Value::Object(map) = &mut body
    {
        map.insert("@context".into(), ctx.response_value());
    }
    if accept == Accept::JsonLd {
        let ctx_value = ctx.response_value();
        match &mut body {
            Value::Object(map) => {
                map.insert("@context".into(), ctx_value);
            }
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(map) = item {
                        map.insert("@context".into(), ctx_value.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if accept != Accept::JsonLd
        && let Ok(link) = HeaderValue::from_str(&format!(
            "<{}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\"",
            ctx.link_url()
        ))
    {
        headers.insert(header::LINK, link);
    }
    response
}
