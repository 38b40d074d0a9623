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
    /// No credentials at the door: the service checks a key sent inside the request
    /// and limits its traffic itself. Device measures (the IoT agent checks the service
    /// group's key, the FIWARE convention; one gateway sends for many devices) and
    /// Open311 submissions (`api_key` in the form; citizens' reports are limited per
    /// address and contact by the reports service, staff keys not at all).
    KeyInRequest,
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
            Permission::Public | Permission::KeyInRequest | Permission::Signed => true,
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

/// Requests allowed per window before 429 (0: no limit). Counted by each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Logins (and login links) per client address per minute.
    pub logins_per_minute: u32,
    /// Requests without credentials per client address per minute.
    pub anonymous_per_minute: u32,
    /// Writes per credential per second; admins are never limited.
    pub writes_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            logins_per_minute: 20,
            anonymous_per_minute: 1_200,
            writes_per_second: 1_000,
        }
    }
}

/// How the door behaves.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    pub limits: RateLimits,
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
    windows: Windows,
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
            windows: Windows::default(),
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

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    Login,
    Anonymous,
    Writes,
}

/// Fixed windows of request counts by (what, who).
#[derive(Default)]
struct Windows {
    counts: std::sync::Mutex<HashMap<(Counted, String), (std::time::Instant, u32)>>,
}

/// Entries kept at most (older windows are dropped beyond).
const MAX_WINDOWS: usize = 100_000;

impl Windows {
    /// Counts one request; the seconds to wait when over the limit.
    fn hit(
        &self,
        what: Counted,
        who: &str,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        let Ok(mut counts) = self.counts.lock() else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        if counts.len() >= MAX_WINDOWS {
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry((what, who.to_string())).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let left = window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        Ok(())
    }
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

impl Head {
    /// The caller's scope in the tenant the request names, once the caller holds
    /// `access` there (the shape of the components' handlers).
    pub fn scope(&self, access: crate::auth::Access) -> Result<crate::Scope, ApiError> {
        let tenant = super::negotiate::tenant(&self.headers)?;
        self.caller.check(&tenant, access)?;
        Ok(crate::Scope::new(
            tenant,
            ngsi::Context::core(),
            self.caller.clone(),
        ))
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
    let is_login = method == Method::POST && route.as_deref() == Some("/auth/v1/login")
        || route.as_deref() == Some("/auth/v1/login-link");
    if is_login
        && let Err(wait) = gate.windows.hit(
            Counted::Login,
            client.as_deref().unwrap_or(""),
            gate.config.limits.logins_per_minute,
            std::time::Duration::from_secs(60),
        )
    {
        let mut r = too_many(wait, "too many logins from this address");
        decorate(&gate, &mut r, &id);
        return r;
    }
    let mut response = match authenticate(&gate, request.headers(), info.clone()).await {
        Err(e) => unauthenticated(&e.detail),
        Ok(caller) => {
            let caller: CallerRef = Arc::new(caller);
            known = Some(caller.clone());
            let declared = match &need {
                Need::Declared(p) => Some(*p),
                _ => None,
            };
            let refused = refusal(&gate, need, &caller, &method, request.headers())
                .or_else(|| limit(&gate, &caller, &method, declared));
            match refused {
                Some(r) => r,
                None => {
                    request.extensions_mut().insert(caller);
                    next.run(request).await
                }
            }
        }
    };
    // Every refusal, whether by this door or by the hub's grants, is audited; but a
    // login's outcome is recorded by the login itself, and asking "who am I" without
    // a session (every first visit of the web app) refuses nothing.
    let self_audited =
        is_login || (method == Method::GET && route.as_deref() == Some("/auth/v1/me"));
    if !self_audited
        && matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    {
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
        let credential = match text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
        {
            Some(c) => c,
            // A bare key, as CKAN clients (ckanapi) send it.
            None if !text.is_empty() && !text.contains(' ') => text,
            None => {
                return Err(Error::unauthenticated(
                    "send credentials as Authorization: Bearer <key or token>",
                ));
            }
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
    if matches!(permission, Permission::Public | Permission::KeyInRequest)
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

fn too_many(wait: u64, detail: &str) -> Response {
    let mut r = ApiError(Error::new(ngsi::ErrorKind::TooManyRequests, detail)).into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The rate limits of anonymous requests (by address) and of writes (by credential;
/// admins and `--insecure` are not limited).
fn limit(
    gate: &Gate,
    caller: &Caller,
    method: &Method,
    permission: Option<Permission>,
) -> Option<Response> {
    let limits = gate.config.limits;
    if permission == Some(Permission::KeyInRequest) {
        return None;
    }
    if caller.is_anonymous() {
        let who = caller.request.client.as_deref().unwrap_or("");
        return gate
            .windows
            .hit(
                Counted::Anonymous,
                who,
                limits.anonymous_per_minute,
                std::time::Duration::from_secs(60),
            )
            .err()
            .map(|wait| too_many(wait, "too many requests from this address"));
    }
    if caller.is_admin() || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    gate.windows
        .hit(
            Counted::Writes,
            &caller.actor,
            limits.writes_per_second,
            std::time::Duration::from_secs(1),
        )
        .err()
        .map(|wait| too_many(wait, "too many writes with this credential"))
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
