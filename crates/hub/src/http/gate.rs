//! The front door every request passes: who is asking (an API key or OIDC token in
//! `Authorization: Bearer`, a session cookie, or nobody), whether the route lets
//! them in, and what every answer carries (request id, security headers).
//!
//! Every route of every service declares the permission it needs in a table of
//! [`RouteRule`]s beside its router; [`Gate`] holds the union of those tables. A
//! request whose route is not declared is refused (deny by default). Route
//! permissions say which *roles* may call a route; the tenant and type grants are
//! checked by the [`crate::Hub`] on every operation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ngsi::Error;

use super::ApiError;
use crate::auth::{Caller, CallerRef, Identity, RequestInfo, Role, Via, secrets};

/// The session cookie.
pub const SESSION_COOKIE: &str = "dothi_session";
/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header marking every answer of a server running with `--insecure`.
pub const INSECURE_HEADER: &str = "x-dothi-insecure";
const REQUEST_ID: &str = "x-request-id";

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Anyone, without credentials.
    Public,
    /// Any authenticated caller.
    Signed,
    /// Reading entities, history, subscriptions, discovery: viewer, operator, admin.
    Read,
    /// Writing entities and history: operator, device, admin.
    Write,
    /// Managing subscriptions and devices: operator, admin.
    Operate,
    /// Users, keys, sessions, the audit log: admin.
    Admin,
    /// `/metrics`: admin, or anyone with `--metrics-public`.
    Metrics,
}

impl Permission {
    /// The roles that hold it (anonymous callers hold only `Public`).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Permission::Public | Permission::Signed => true,
            Permission::Read => role.allows(crate::auth::Access::Read),
            Permission::Write => role.allows(crate::auth::Access::Write),
            Permission::Operate => matches!(role, Role::Admin | Role::Operator),
            Permission::Admin | Permission::Metrics => role == Role::Admin,
        }
    }
}

/// One declared route: method, path as the router writes it, permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    pub method: &'static str,
    pub path: &'static str,
    pub permission: Permission,
}

/// Declares a route (for the tables beside each router).
pub const fn rule(method: &'static str, path: &'static str, permission: Permission) -> RouteRule {
    RouteRule {
        method,
        path,
        permission,
    }
}

/// How the door behaves.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    /// No authentication: every request acts as admin (development, conformance).
    pub insecure: bool,
    /// `/metrics` without credentials (for a private Prometheus network).
    pub metrics_public: bool,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Served over TLS: cookies are `Secure` and HSTS is sent.
    pub tls: bool,
}

/// The front door: the route table, the identities, the settings.
pub struct Gate {
    rules: HashMap<(Method, &'static str), Permission>,
    /// The declared methods of each path: another method is answered 405 by the door
    /// itself, so that a handler nobody declared never runs.
    paths: HashMap<&'static str, Vec<Method>>,
    all: Vec<RouteRule>,
    pub identity: Arc<Identity>,
    pub config: GateConfig,
}

impl Gate {
    pub fn new(identity: Arc<Identity>, config: GateConfig, all: Vec<RouteRule>) -> Gate {
        let mut rules = HashMap::new();
        let mut paths: HashMap<&'static str, Vec<Method>> = HashMap::new();
        for r in &all {
            if let Ok(m) = Method::from_bytes(r.method.as_bytes()) {
                rules.insert((m.clone(), r.path), r.permission);
                paths.entry(r.path).or_default().push(m);
            }
        }
        Gate {
            rules,
            paths,
            all,
            identity,
            config,
        }
    }

    /// Every declared route (for the authorization matrix test and the docs).
    pub fn rules(&self) -> &[RouteRule] {
        &self.all
    }

    fn permission(&self, method: &Method, path: &str) -> Option<Permission> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.rules.get(&(method.clone(), path)).copied()
    }

    /// What a request of `method` on the matched route `route` needs.
    fn need(&self, method: &Method, route: Option<&str>) -> Need {
        let Some(path) = route else {
            // No route: the router answers 404.
            return Need::Declared(Permission::Public);
        };
        if let Some(p) = self.permission(method, path) {
            return Need::Declared(p);
        }
        match self.paths.get(path) {
            Some(methods) => {
                let mut allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
                if methods.contains(&Method::GET) {
                    allow.push("HEAD");
                }
                allow.sort_unstable();
                allow.dedup();
                Need::OtherMethod(allow.join(", "))
            }
            None => Need::Undeclared,
        }
    }
}

/// What a request needs to pass the door.
enum Need {
    /// The route's declared permission.
    Declared(Permission),
    /// The path is declared, but not with this method: 405, naming those that are.
    OtherMethod(String),
    /// Nobody declared the route: refused.
    Undeclared,
}

/// The caller of a request, as the gate found it (anonymous when the request did not
/// pass a gate).
pub struct CallerOf(pub CallerRef);

impl<S: Send + Sync> FromRequestParts<S> for CallerOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CallerOf(caller_of(&parts.extensions)))
    }
}

/// The caller kept in a request's extensions, or an anonymous one.
pub fn caller_of(extensions: &axum::http::Extensions) -> CallerRef {
    extensions
        .get::<CallerRef>()
        .cloned()
        .unwrap_or_else(|| Arc::new(Caller::anonymous(RequestInfo::default())))
}

/// A request's headers and caller, for handlers that build their scope from headers.
pub struct Head {
    pub headers: HeaderMap,
    pub caller: CallerRef,
}

impl<S: Send + Sync> FromRequestParts<S> for Head {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Head {
            headers: parts.headers.clone(),
            caller: caller_of(&parts.extensions),
        })
    }
}

/// The value of a cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

fn unauthenticated(detail: &str) -> Response {
    let mut r = ApiError(Error::unauthenticated(detail)).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dothi\""),
    );
    r
}

/// The middleware of the front door (see the module's description).
pub async fn gate(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = request.method().clone();
    let info = RequestInfo {
        id: Some(id.clone()),
        client: client.clone(),
        action: format!("{} {}", method, route.as_deref().unwrap_or("(unmatched)")),
    };
    // What the route asks for. An unmatched path goes on to its 404; a declared path
    // asked with another method is answered 405 here (its handler, if it has one, is
    // not declared and never runs); a route nobody declared is refused.
    let need = gate.need(&method, route.as_deref());
    let mut known: Option<CallerRef> = None;
    let mut response = match authenticate(&gate, request.headers(), info.clone()).await {
        Err(e) => unauthenticated(&e.detail),
        Ok(caller) => {
            let caller: CallerRef = Arc::new(caller);
            known = Some(caller.clone());
            match refusal(&gate, need, &caller, &method, request.headers()) {
                Some(r) => r,
                None => {
                    request.extensions_mut().insert(caller);
                    next.run(request).await
                }
            }
        }
    };
    // Every refusal, whether by this door or by the hub's grants, is audited.
    if matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        let caller = known.unwrap_or_else(|| Arc::new(Caller::anonymous(info)));
        refused(&gate, &caller, response.status());
    }
    decorate(&gate, &mut response, &id);
    response
}

async fn authenticate(
    gate: &Gate,
    headers: &HeaderMap,
    info: RequestInfo,
) -> Result<Caller, Error> {
    if gate.config.insecure {
        return Ok(Caller::insecure(info));
    }
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let text = auth
            .to_str()
            .map_err(|_| Error::unauthenticated("unreadable Authorization header"))?;
        let Some(credential) = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
        else {
            return Err(Error::unauthenticated(
                "send credentials as Authorization: Bearer <key or token>",
            ));
        };
        return gate.identity.bearer(credential.trim(), info).await;
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE)
        && let Some(caller) = gate.identity.session(&token, info.clone()).await?
    {
        return Ok(caller);
    }
    Ok(Caller::anonymous(info))
}

/// Why the door refuses the request, if it does.
fn refusal(
    gate: &Gate,
    need: Need,
    caller: &Caller,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response> {
    let permission = match need {
        Need::Declared(p) => p,
        Need::Undeclared => {
            return Some(
                ApiError(Error::forbidden(
                    "this route declares no permission and is refused",
                ))
                .into_response(),
            );
        }
        Need::OtherMethod(allow) => {
            let mut r = ApiError(Error::new(
                ngsi::ErrorKind::MethodNotAllowed,
                "this method is not supported on this resource",
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return Some(r);
        }
    };
    if permission == Permission::Public
        || (permission == Permission::Metrics && gate.config.metrics_public)
    {
        return None;
    }
    let Some(role) = caller.role else {
        return Some(unauthenticated("credentials are required"));
    };
    if !permission.allows(role) {
        return Some(
            ApiError(Error::forbidden(format!(
                "the role {} may not use this route",
                role.as_str()
            )))
            .into_response(),
        );
    }
    // A browser sends the cookie with any request to this site: a write made with it
    // must prove it comes from our own page.
    if let Via::Session { csrf, .. } = &caller.via
        && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secrets::constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
            return Some(
                ApiError(Error::forbidden(
                    "a write with a session cookie needs its X-CSRF-Token header",
                ))
                .into_response(),
            );
        }
    }
    None
}

/// Writes a refusal to the audit log without holding the answer back.
fn refused(gate: &Arc<Gate>, caller: &Caller, status: StatusCode) {
    let mut record = caller.audit(None, Vec::new());
    record.outcome = if status == StatusCode::UNAUTHORIZED {
        "denied"
    } else {
        "refused"
    }
    .into();
    let gate = gate.clone();
    tokio::spawn(async move { gate.identity.audit(vec![record]).await });
}

fn decorate(gate: &Gate, response: &mut Response, id: &str) {
    let unauthorized = response.status() == StatusCode::UNAUTHORIZED;
    let h = response.headers_mut();
    if unauthorized && !h.contains_key(header::WWW_AUTHENTICATE) {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"dothi\""),
        );
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(HeaderName::from_static(REQUEST_ID), v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if gate.config.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if gate.config.insecure {
        h.insert(
            HeaderName::from_static(INSECURE_HEADER),
            HeaderValue::from_static("authentication is off"),
        );
    }
}

/// The `Set-Cookie` value of a session (empty token and max-age 0: the cookie
/// removed).
pub fn session_cookie(token: &str, tls: bool) -> String {
    let max_age = if token.is_empty() { "; Max-Age=0" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}{max_age}",
        if tls { "; Secure" } else { "" }
    )
}
