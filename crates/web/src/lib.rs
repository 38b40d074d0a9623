//! The web app of dothi: the public page at `/` (the province's map with its open
//! sensor layers, for anyone), the citizen's report page at `/report/` (and its
//! tracking page, `/report/track`), and the operations centre (IOC) at `/ioc/` (the map,
//! sector layers, dashboards, explorer and admin pages, behind a login), both served
//! by `dothi serve` and `dothi demo`.
//!
//! The front-end lives in `web/` at the repository root; `build.rs` builds it with npm
//! and esbuild and the result is embedded in the binary ([`assets`]), so nothing is
//! downloaded when the app runs. Beside the hub's NGSI-LD API, which the IOC calls for
//! entities and their history, this crate serves a few read endpoints of its own: the
//! IOC's under `/ioc/api` ([`api`]) with the live stream of changes ([`stream`]), fed
//! by the hub's change feed ([`hub::changes`]), never by polling the store; and the
//! public page's under `/public/api` ([`public`]), anonymous, limited to the default
//! tenant's open layers.
//!
//! It reads through the in-process [`hub::Hub`] only: it never writes, never touches
//! the store, and sees one tenant per request (`NGSILD-Tenant`; the public endpoints
//! always the default tenant).

pub mod api;
pub mod assets;
pub mod public;
pub mod stream;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderValue;
use axum::routing::get;
use tower_http::compression::CompressionLayer;

pub use api::WebState;
pub use assets::FRONT_END_BUILT;

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
    /// Checks the settings: the base map must be an http(s) template with {z}, {x}, {y}
    /// on a plain host (or `{s}.` subdomains of one), which the pages' policy allows
    /// images from.
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
            if self.basemap_origin().is_none() {
                return Err(format!(
                    "the base-map URL's host must be a host name (optionally starting with {{s}}. for tile subdomains), not {url:?}"
                ));
            }
        }
        Ok(self)
    }

    /// Where the base map's tiles come from, as a Content-Security-Policy source
    /// (`https://tiles.example.vn`, `https://*.tile.example.org` for `{s}.` subdomains).
    pub fn basemap_origin(&self) -> Option<String> {
        let url = self.basemap_url.as_deref()?;
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next()?;
        let host = match authority.strip_prefix("{s}.") {
            Some(h) => format!("*.{h}"),
            None => authority.to_string(),
        };
        let plain = authority.trim_start_matches("{s}.");
        let ok = !plain.is_empty()
            && plain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        ok.then(|| format!("{scheme}://{host}"))
    }
}

/// What each route of the app needs: its pages and assets are public (the IOC asks
/// for a login when the API says 401), and so is the public page's data; the IOC's
/// API reads a tenant.
pub fn route_rules() -> Vec<hub::RouteRule> {
    use hub::{Permission, rule};
    let mut rules = vec![
        rule("GET", "/public/api/config", Permission::Public),
        rule("GET", "/public/api/communes", Permission::Public),
        rule("GET", "/public/api/markers", Permission::Public),
        rule("GET", "/ioc/api/config", Permission::Public),
        rule("GET", "/ioc/api/communes", Permission::Read),
        rule("GET", "/ioc/api/markers", Permission::Read),
        rule("GET", "/ioc/api/summary", Permission::Read),
        rule("GET", "/ioc/api/entities", Permission::Read),
        rule("GET", "/ioc/api/export", Permission::Read),
        rule("GET", "/ioc/api/stream", Permission::Read),
    ];
    rules.extend(assets::served_paths().map(|path| rule("GET", path, Permission::Public)));
    rules
}

/// The app's routes and their permissions, to serve beside the hub's.
pub fn component(hub: Arc<hub::Hub>, config: WebConfig) -> hub::Component {
    hub::Component {
        router: routes(hub, config),
        rules: route_rules(),
    }
}

/// The app's routes: the pages (`/`, `/ioc/`) and their assets, `/public/api/...` and
/// `/ioc/api/...`; to serve beside the hub's (`hub::serve_with`).
pub fn routes(hub: Arc<hub::Hub>, config: WebConfig) -> Router {
    let csp = assets::content_security_policy(config.basemap_origin().as_deref());
    let state = WebState {
        page_csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
        }),
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
        .route("/public/api/config", get(public::config))
        .route("/public/api/communes", get(public::communes_geojson))
        .route("/public/api/markers", get(public::markers))
        .route("/ioc/api/config", get(api::config))
        .route("/ioc/api/communes", get(api::communes_geojson))
        .route("/ioc/api/markers", get(api::markers))
        .route("/ioc/api/summary", get(api::summary))
        .route("/ioc/api/entities", get(api::entities))
        .route("/ioc/api/export", get(api::export))
        .route("/ioc/api/stream", get(stream::stream));
    for path in assets::served_paths() {
        router = router.route(path, get(assets::serve));
    }
    router
        .with_state(state)
        // gzip for what is worth it; never for images or the event stream, which
        // compression would hold back (tower-http's default predicate).
        .layer(CompressionLayer::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basemap(url: &str) -> WebConfig {
        WebConfig {
            basemap_url: Some(url.to_string()),
        }
    }

    #[test]
    fn the_base_map_host_is_what_the_pages_may_load_images_from() {
        assert_eq!(
            basemap("https://tiles.example.vn/osm/{z}/{x}/{y}.png").basemap_origin(),
            Some("https://tiles.example.vn".to_string())
        );
        assert_eq!(
            basemap("http://{s}.tile.example.org:8080/{z}/{x}/{y}.png").basemap_origin(),
            Some("http://*.tile.example.org:8080".to_string())
        );
        assert!(
            assets::content_security_policy(Some("https://tiles.example.vn"))
                .contains("img-src 'self' data: https://tiles.example.vn;")
        );
        for bad in [
            "https://{z}.example.org/{x}/{y}.png",
            "https://a b/{z}/{x}/{y}.png",
            "https://x;script-src *;/{z}/{x}/{y}.png",
            "https://user@host/{z}/{x}/{y}.png",
        ] {
            assert!(basemap(bad).validate().is_err(), "{bad}");
        }
        assert!(
            basemap("https://tiles.example.vn/{z}/{x}/{y}.png")
                .validate()
                .is_ok()
        );
        assert!(WebConfig::default().validate().is_ok());
    }
}
