//! The NGSI-LD HTTP API (base path `/ngsi-ld/v1`) over the [`Hub`], plus `/health`,
//! `/metrics`, `/openapi.json` and `/docs`. Handlers stay thin: parse, call, render.

pub mod auth_api;
mod batch;
mod discovery;
mod entities;
pub mod gate;
pub(crate) mod join;
mod jsonld_contexts;
pub mod negotiate;
mod openapi;
pub mod params;
mod projection;
mod subscriptions;
mod temporal;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ngsi::{Error, ErrorKind};
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::service::Hub;
pub use gate::{Permission, RouteRule, rule};

/// Limits and switches of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// OpenAPI documents of the routes other components serve beside the hub's (the
    /// IOC web app's); their paths and components are added to `/openapi.json`.
    pub openapi_extra: Vec<&'static str>,
    /// Most instances of one attribute in one temporal answer (clause 6.3.10 leaves
    /// the page to the server); more make a 206 partial answer.
    pub temporal_page_instances: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 8 * 1024 * 1024,
            openapi_extra: Vec::new(),
            temporal_page_instances: crate::temporal::MAX_INSTANCES,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    /// Users, keys, sessions and tokens.
    pub identity: Arc<crate::auth::Identity>,
    /// How the front door behaves.
    pub gate: Arc<gate::GateConfig>,
    /// Native TLS, when configured.
    pub tls: Option<crate::TlsFiles>,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<Metrics>,
    pub retention: Arc<crate::retention::RetentionPolicy>,
    pub audit: Arc<crate::audit::AuditPolicy>,
    /// Whether this node runs the background duties now (shown by /health).
    pub duties: Arc<std::sync::atomic::AtomicBool>,
}

/// An API error: an NGSI-LD error rendered as ProblemDetails.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.0.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A path parameter, whose rejection is a ProblemDetails like every other error.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError(Error::bad_data(format!("invalid path: {e}"))))
    }
}

/// `POST /ngsi-ld/v1/entities/` is `POST /ngsi-ld/v1/entities`: NGSI-LD clients (the
/// ETSI conformance suite among them) address collections with a trailing slash, and
/// other brokers accept both. Wraps the router, so that paths are trimmed before
/// routing; only the NGSI-LD API's.
#[derive(Clone)]
pub struct TrimSlash<S>(pub S);

impl<S, B> tower::Service<axum::http::Request<B>> for TrimSlash<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        self.0.call(trim_trailing_slash(request))
    }
}

fn trim_trailing_slash<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = request.uri().path();
    if path.len() > "/ngsi-ld/v1/".len() && path.starts_with("/ngsi-ld/v1/") && path.ends_with('/')
    {
        let trimmed = path.trim_end_matches('/').to_string();
        let rewritten = match request.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed,
        };
        if let Ok(uri) = rewritten.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The routes of another component served beside the hub's (the IoT agent, the web
/// app, the city services), with the permission of each.
pub struct Component {
    pub router: Router,
    pub rules: Vec<RouteRule>,
}

/// The hub's own routes and what each needs.
#[rustfmt::skip]
pub const ROUTES: &[RouteRule] = &[
    rule("GET", "/health", Permission::Public),
    rule("GET", "/metrics", Permission::Metrics),
    rule("GET", "/openapi.json", Permission::Public),
    rule("GET", "/docs", Permission::Public),
    rule("GET", "/docs/", Permission::Public),
    rule("GET", "/docs/{*rest}", Permission::Public),
    rule("GET", "/ngsi-ld/v1/entities", Permission::Read),
    rule("POST", "/ngsi-ld/v1/entities", Permission::Write),
    // Answered 400 (the id is missing), after the caller is known to be a writer.
    rule("PUT", "/ngsi-ld/v1/entities", Permission::Write),
    rule("PATCH", "/ngsi-ld/v1/entities", Permission::Write),
    rule("GET", "/ngsi-ld/v1/entities/{id}", Permission::Read),
    rule("PUT", "/ngsi-ld/v1/entities/{id}", Permission::Write),
    rule("PATCH", "/ngsi-ld/v1/entities/{id}", Permission::Write),
    rule("DELETE", "/ngsi-ld/v1/entities/{id}", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entities/{id}/attrs", Permission::Write),
    rule("PATCH", "/ngsi-ld/v1/entities/{id}/attrs", Permission::Write),
    rule("PATCH", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", Permission::Write),
    rule("PUT", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", Permission::Write),
    rule("DELETE", "/ngsi-ld/v1/entities/{id}/attrs/{attr}", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/create", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/upsert", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/update", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/merge", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/delete", Permission::Write),
    rule("POST", "/ngsi-ld/v1/entityOperations/query", Permission::Read),
    rule("GET", "/ngsi-ld/v1/types", Permission::Read),
    rule("GET", "/ngsi-ld/v1/types/{type}", Permission::Read),
    rule("GET", "/ngsi-ld/v1/attributes", Permission::Read),
    rule("GET", "/ngsi-ld/v1/attributes/{attr}", Permission::Read),
    rule("GET", "/ngsi-ld/v1/temporal/entities", Permission::Read),
    rule("POST", "/ngsi-ld/v1/temporal/entities", Permission::Write),
    rule("GET", "/ngsi-ld/v1/temporal/entities/{id}", Permission::Read),
    rule("DELETE", "/ngsi-ld/v1/temporal/entities/{id}", Permission::Write),
    rule("POST", "/ngsi-ld/v1/temporal/entities/{id}/attrs", Permission::Write),
    rule("DELETE", "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}", Permission::Write),
    rule("PATCH", "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}", Permission::Write),
    rule("DELETE", "/ngsi-ld/v1/temporal/entities/{id}/attrs/{attr}/{instance}", Permission::Write),
    rule("POST", "/ngsi-ld/v1/temporalOperations/query", Permission::Read),
    rule("POST", "/ngsi-ld/v1/temporal/entityOperations/query", Permission::Read),
    rule("GET", "/ngsi-ld/v1/jsonldContexts", Permission::Read),
    rule("POST", "/ngsi-ld/v1/jsonldContexts", Permission::Write),
    rule("GET", "/ngsi-ld/v1/jsonldContexts/{id}", Permission::Read),
    rule("DELETE", "/ngsi-ld/v1/jsonldContexts/{id}", Permission::Write),
    rule("GET", "/ngsi-ld/v1/subscriptions", Permission::Read),
    rule("POST", "/ngsi-ld/v1/subscriptions", Permission::Operate),
    rule("GET", "/ngsi-ld/v1/subscriptions/{id}", Permission::Read),
    rule("PATCH", "/ngsi-ld/v1/subscriptions/{id}", Permission::Operate),
    rule("DELETE", "/ngsi-ld/v1/subscriptions/{id}", Permission::Operate),
];

/// The whole application router: the hub's routes and the components', behind one
/// front door ([`gate`]) and one metrics layer.
pub fn router(state: AppState, components: Vec<Component>) -> Router {
    let api = Router::new()
        .merge(entities::routes())
        .merge(batch::routes())
        .merge(discovery::routes())
        .merge(temporal::routes())
        .merge(subscriptions::routes())
        .merge(jsonld_contexts::routes());
    let mut rules: Vec<RouteRule> = ROUTES.iter().chain(auth_api::ROUTES).copied().collect();
    let mut others = Router::new();
    for c in components {
        rules.extend(c.rules);
        others = others.merge(c.router);
    }
    let front_door = Arc::new(gate::Gate::new(
        state.identity.clone(),
        (*state.gate).clone(),
        rules,
    ));
    Router::new()
        .nest("/ngsi-ld/v1", api)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(auth_api::routes())
        .merge(openapi::routes(&state.config.openapi_extra))
        .with_state(state.clone())
        .merge(others)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(front_door, gate::gate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError(Error::new(ErrorKind::InternalError, "internal error")).into_response()
        }))
        .layer(tower::util::option_layer(cors(&state.gate.cors_origins)))
}

/// Browsers on these origins may call the API (none by default: the web app is
/// served from this origin and needs no CORS).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::LINK,
            HeaderName::from_static("ngsild-tenant"),
            HeaderName::from_static("fiware-service"),
            HeaderName::from_static("x-csrf-token"),
        ])
        .expose_headers([
            header::LOCATION,
            header::LINK,
            HeaderName::from_static("ngsild-results-count"),
            HeaderName::from_static("x-request-id"),
        ]);
    Some(layer)
}

async fn health(State(state): State<AppState>) -> Response {
    let duties = state.duties.load(std::sync::atomic::Ordering::Relaxed);
    // A query that reaches the database (the default tenant's check does not).
    match state.hub.reachable().await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "duties": duties})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "unavailable", "duties": duties, "detail": e.to_string()
            })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError(Error::not_found("no such resource"))
}

/// The answer to a method a path is not served with: 405 as a ProblemDetails (a
/// router's `method_not_allowed_fallback`, for the hub and the services beside it).
pub async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(
        ErrorKind::MethodNotAllowed,
        "this method is not supported on this resource",
    ))
}

/// A request body read whole, within `MAX` bytes: a larger or unreadable one is
/// refused with 413 as a ProblemDetails (the services' extractor for raw bodies).
pub struct BoundedBody<const MAX: usize>(pub axum::body::Bytes);

impl<S: Send + Sync, const MAX: usize> axum::extract::FromRequest<S> for BoundedBody<MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        axum::body::to_bytes(req.into_body(), MAX)
            .await
            .map(BoundedBody)
            .map_err(|_| {
                ApiError(Error::new(
                    ErrorKind::PayloadTooLarge,
                    format!("the body is larger than {MAX} bytes or unreadable"),
                ))
            })
    }
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        method.as_str(),
        &route,
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}
