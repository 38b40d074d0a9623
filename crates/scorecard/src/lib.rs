//! The plan's scorecard: Quảng Trị's digital-transformation plan as data (goals, the
//! eight task groups, KPIs as Smart Data Models `KeyPerformanceIndicator` entities),
//! KPIs computed from the hub's live data with the queries that produced them, values
//! entered by agencies and approved by a second person, the e-government indicators of
//! Decision 766/QĐ-TTg computed from dossiers, and the smart-city maturity
//! self-assessment (Circular 03/2026/TT-BXD). See `docs/scorecard.md`.
//!
//! KPIs are also read from the other services' entities (citizen reports, the open data
//! catalogue, the stations' history, the sensors), and entered values may carry an
//! uploaded PDF or image as evidence.
//!
//! **Invariants:** everything is read and written through `hub::Hub` (the registry
//! only for the checklist an admin loads, the evidence files and who acts for which
//! owner agency); the other services
//! are read as entities, never through their code; a computed value always carries its formula
//! and the NGSI-LD queries it ran with their counts; a person's write is made in that
//! person's scope, so the hub's audit log names them; the public summary carries no
//! personal data.

pub mod demo;
pub mod egov;
mod engine;
pub mod evidence;
mod export;
mod http;
pub mod maturity;
pub mod owners;
pub mod plan;
pub mod services;
pub mod sources;

pub use engine::{
    AT_RISK_TOLERANCE, COMPONENT, Confirmation, Recomputed, Scorecard, Standing, Submission,
    TaskUpdate, keyvalues, standing,
};
pub use http::{ROUTE_RULES, component, routes};
pub use sources::{Api, Input, KpiSource, Measurement};

/// The description of the `/scorecard/v1/` routes, merged into the hub's `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The description and the declared routes name the same operations.
    #[test]
    fn the_openapi_description_is_of_the_declared_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("openapi.json");
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(m, _)| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let declared: BTreeSet<(String, String)> = super::ROUTE_RULES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(described, declared);
    }
}
