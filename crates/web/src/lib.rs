//! The operations-centre (IOC) web app of dothi: the provincial map, sector layers,
//! dashboards and explorer that `dothi serve` and `dothi demo` serve at `/`.
//!
//! The front-end lives in `web/` at the repository root; `build.rs` builds it with npm
//! and esbuild and the result is embedded in the binary ([`assets`]), so nothing is
//! downloaded when the app runs. Beside the hub's public NGSI-LD API, which the app
//! calls for entities and their history, this crate serves a few read endpoints of its
//! own under `/ioc/api` ([`api`]) and the live stream of changes ([`stream`]), fed by
//! the hub's change feed ([`hub::changes`]), never by polling the store.
//!
//! It reads through the in-process [`hub::Hub`] only: it never writes, never touches
//! the store, and sees one tenant per request (`NGSILD-Tenant`).

pub mod api;
pub mod assets;
pub mod stream;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use tower_http::compression::CompressionLayer;

pub use api::WebState;

/// The description of the web routes, merged into the hub's `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// How the app is set up.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// A tile URL template (`https://…/{z}/{x}/{y}.png`) for a base map under the
    /// communes; none by default (the app needs no tile server).
    pub basemap_url: Option<String>,
}

impl WebConfig {
    /// Checks the settings: the base map must be an http(s) template with {z}, {x}, {y}.
    pub fn validate(self) -> Result<Self, String> {
        if let Some(url) = &self.basemap_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p))
                && url.len() <= 1024;
            if !ok {
                return Err(format!(
                    "the base-map URL must be an http(s) tile template with {{z}}, {{x}} and {{y}}, not {url:?}"
                ));
            }
        }
        Ok(self)
    }
}

/// What each route of the app needs: its pages and assets are public (the page asks
/// for a login when the API says 401); its API reads a tenant.
pub fn route_rules() -> Vec<hub::RouteRule> {
    use hub::{Permission, rule};
    let mut rules = vec![
        rule("GET", "/", Permission::Public),
        rule("GET", "/ioc/api/config", Permission::Public),
        rule("GET", "/ioc/api/communes", Permission::Read),
        rule("GET", "/ioc/api/markers", Permission::Read),
        rule("GET", "/ioc/api/summary", Permission::Read),
        rule("GET", "/ioc/api/entities", Permission::Read),
        rule("GET", "/ioc/api/export", Permission::Read),
        rule("GET", "/ioc/api/stream", Permission::Read),
    ];
    rules.extend(
        assets::ASSETS
            .iter()
            .map(|a| rule("GET", a.path, Permission::Public)),
    );
    rules
}

/// The app's routes and their permissions, to serve beside the hub's.
pub fn component(hub: Arc<hub::Hub>, config: WebConfig) -> hub::Component {
    hub::Component {
        router: routes(hub, config),
        rules: route_rules(),
    }
}

/// The app's routes: `/` and its assets, and `/ioc/api/...`; to serve beside the hub's
/// (`hub::serve_with`).
pub fn routes(hub: Arc<hub::Hub>, config: WebConfig) -> Router {
    let state = WebState {
        snapshots: Arc::new(tokio::sync::Mutex::new(api::Snapshots::new(&hub))),
        hub,
        config: Arc::new(config),
        communes: Arc::new(Mutex::new(HashMap::new())),
        streams: Arc::new(tokio::sync::Semaphore::new(stream::MAX_STREAMS)),
    };
    // The default tenant's communes (their boundaries are the largest read the app
    // makes) and items are read now, so that the first visitor does not wait for them.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let state = state.clone();
        runtime.spawn(async move {
            let warm = hub::auth::Caller::system("web");
            if let Ok(scope) = api::scope(&axum::http::HeaderMap::new(), &warm) {
                let _ = api::communes(&state, &scope).await;
                let _ = api::snapshot(&state, &scope).await;
            }
        });
    }
    let mut router = Router::new()
        .route("/ioc/api/config", get(api::config))
        .route("/ioc/api/communes", get(api::communes_geojson))
        .route("/ioc/api/markers", get(api::markers))
        .route("/ioc/api/summary", get(api::summary))
        .route("/ioc/api/entities", get(api::entities))
        .route("/ioc/api/export", get(api::export))
        .route("/ioc/api/stream", get(stream::stream));
    for asset in assets::ASSETS {
        router = router.route(asset.path, get(assets::serve));
    }
    router
        .route("/", get(assets::serve))
        .with_state(state)
        // gzip for what is worth it; never for images or the event stream, which
        // compression would hold back (tower-http's default predicate).
        .layer(CompressionLayer::new())
}
