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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::OPENAPI_TEXT;

    /// Every `.route("...")` written in the HTTP modules is described in openapi.json.
    #[test]
    fn every_route_is_described() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_TEXT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let sources = [
            ("/ngsi-ld/v1", include_str!("entities.rs")),
            ("/ngsi-ld/v1", include_str!("batch.rs")),
            ("/ngsi-ld/v1", include_str!("discovery.rs")),
            ("/ngsi-ld/v1", include_str!("temporal.rs")),
            ("/ngsi-ld/v1", include_str!("subscriptions.rs")),
            ("", include_str!("mod.rs")),
        ];
        let mut seen = 0;
        for (prefix, source) in sources {
            for piece in source.split(".route(").skip(1) {
                let Some(quoted) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                let route = quoted.split('"').next().unwrap();
                let full = format!("{prefix}{route}");
                assert!(paths.contains_key(&full), "{full} is not in openapi.json");
                seen += 1;
            }
        }
        assert!(seen >= 20, "found only {seen} routes");
    }
}
