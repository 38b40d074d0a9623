//! The OpenAPI description (`/openapi.json`) and a browsable API page (`/docs`).
//!
//! The description is written by hand in `crates/hub/openapi.json` (NGSI-LD's
//! payloads are too dynamic for derived schemas to say much); a test checks that every
//! route of the router appears in it.

use axum::Router;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

pub const OPENAPI_TEXT: &str = include_str!("../../openapi.json");

pub fn routes() -> Router<AppState> {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI_TEXT).unwrap_or_default();
    Router::from(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", doc))
}
