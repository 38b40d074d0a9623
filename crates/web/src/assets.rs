//! The front-end built from `web/` by `build.rs`, embedded in the binary and served
//! with its content type and ETag: `index.html` is revalidated on every load, the other
//! files have content hashes in their names and are cached for a year.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One built file.
pub struct Asset {
    /// URL path, from the root (`/index.html`, `/assets/main-HASH.js`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset at a URL path; `/` is `index.html`.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Serves the asset at the request's path (404 as ProblemDetails when there is none).
pub async fn serve(request: Request) -> Response {
    let Some(asset) = find(request.uri().path()) else {
        return hub::http::ApiError(ngsi::Error::not_found("no such resource")).into_response();
    };
    let cache = if asset.path == "/index.html" {
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
    response
}
