//! The front-end built from `web/` by `build.rs`, embedded in the binary and served
//! with its content type and ETag. There are four pages: the public page
//! (`/index.html`, served at `/`), the operations centre (`/ioc/index.html`, served
//! at `/ioc/` and `/ioc`), the open data portal (`/data/index.html`, at `/data/`) and
//! the citizen's report page (`/report/index.html`, at `/report/` and
//! `/report/track`). Pages are revalidated on every load and carry the app's
//! Content-Security-Policy; the report page's service worker (`/report/sw.js`) is
//! revalidated too; the other files have content hashes in their names and are cached for a year.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::WebState;

/// One built file.
pub struct Asset {
    /// URL path, from the root (`/index.html`, `/assets/main-HASH.js`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The routes of the pages, and the page each serves.
pub const PAGES: [(&str, &str); 8] = [
    ("/", "/index.html"),
    ("/ioc", "/ioc/index.html"),
    ("/ioc/", "/ioc/index.html"),
    ("/data", "/data/index.html"),
    ("/data/", "/data/index.html"),
    // The report form and the tracking page are one page (the token stays in the
    // fragment, never sent to the server in a URL).
    ("/report", "/report/index.html"),
    ("/report/", "/report/index.html"),
    ("/report/track", "/report/index.html"),
];

/// Every path the front-end is served at: the pages' routes, then each file's own.
pub fn served_paths() -> impl Iterator<Item = &'static str> {
    PAGES
        .iter()
        .map(|(route, _)| *route)
        .chain(ASSETS.iter().map(|a| a.path))
}

/// The asset at a URL path: a page at its routes ([`PAGES`]), any other file at its
/// own path.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = PAGES
        .iter()
        .find(|(route, _)| *route == path)
        .map_or(path, |(_, page)| page);
    ASSETS.iter().find(|a| a.path == path)
}

/// Whether an asset is one of the pages.
pub fn is_page(asset: &Asset) -> bool {
    asset.path.ends_with(".html")
}

/// The Content-Security-Policy of the pages: everything from this server only —
/// scripts, styles (no inline ones), data it connects to — images also as `data:`
/// URLs and from the base map's tile server when one is set, and never in a frame.
pub fn content_security_policy(basemap_origin: Option<&str>) -> String {
    let mut img = String::from("'self' data:");
    if let Some(origin) = basemap_origin {
        img.push(' ');
        img.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src {img}; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Serves the asset at the request's path (404 as ProblemDetails when there is none).
pub async fn serve(State(state): State<WebState>, request: Request) -> Response {
    let Some(asset) = find(request.uri().path()) else {
        return hub::http::ApiError(ngsi::Error::not_found("no such resource")).into_response();
    };
    let page = is_page(asset);
    // A service worker keeps its name, so it is revalidated like a page.
    let cache = if page || asset.path.ends_with("/sw.js") {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if page {
        headers.insert(header::CONTENT_SECURITY_POLICY, state.page_csp.clone());
    }
    response
}
