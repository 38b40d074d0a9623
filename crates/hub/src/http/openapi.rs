//! The OpenAPI description (`/openapi.json`) and a browsable API page (`/docs`).
//!
//! The description is written by hand in `crates/hub/openapi.json` (NGSI-LD's
//! payloads are too dynamic for derived schemas to say much); a test checks that every
//! route of the router appears in it.

use axum::Router;
use serde_json::{Map, Value};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

pub const OPENAPI_TEXT: &str = include_str!("../../openapi.json");

pub fn routes(extra: &[&str]) -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document(extra)))
}

/// The hub's description with the paths and components of `extra` documents added (an
/// extra document that does not parse is left out, and logged).
pub fn document(extra: &[&str]) -> Value {
    let mut doc: Value = serde_json::from_str(OPENAPI_TEXT).unwrap_or_default();
    for text in extra {
        let part: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "an extra OpenAPI document does not parse");
                continue;
            }
        };
        if let (Some(paths), Some(more)) = (doc["paths"].as_object_mut(), part["paths"].as_object())
        {
            paths.extend(more.clone());
        }
        if let Some(groups) = part["components"].as_object() {
            for (group, entries) in groups {
                let slot = &mut doc["components"][group];
                if slot.is_null() {
                    *slot = Value::Object(Map::new());
                }
                if let (Some(slot), Some(entries)) = (slot.as_object_mut(), entries.as_object()) {
                    slot.extend(entries.clone());
                }
            }
        }
    }
    doc
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

    #[test]
    fn extra_documents_add_their_paths_and_components() {
        let extra = r#"{"paths": {"/extra": {"get": {}}},
            "components": {"parameters": {"ExtraP": {"name": "p", "in": "query"}}}}"#;
        let doc = super::document(&[extra, "not json"]);
        assert!(doc["paths"]["/extra"]["get"].is_object());
        assert!(doc["paths"]["/ngsi-ld/v1/entities"].is_object());
        assert_eq!(doc["components"]["parameters"]["ExtraP"]["name"], "p");
    }
}
