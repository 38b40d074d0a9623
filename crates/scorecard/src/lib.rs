//! The plan's scorecard: Quảng Trị's digital-transformation plan as data (goals, the
//! eight task groups, KPIs as Smart Data Models `KeyPerformanceIndicator` entities),
//! KPIs computed from the hub's live data with the queries that produced them, values
//! entered by agencies and approved by a second person, the e-government indicators of
//! Decision 766/QĐ-TTg computed from dossiers, and the smart-city maturity
//! self-assessment (Circular 03/2026/TT-BXD). See `docs/scorecard.md`.
//!
//! **Invariants:** everything is read and written through `hub::Hub` (the registry
//! only for the checklist an admin loads); a computed value always carries its formula
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
pub mod plan;
pub mod services;
pub mod sources;

pub use engine::{
    AT_RISK_TOLERANCE, COMPONENT, Recomputed, Scorecard, Standing, Submission, TaskUpdate,
    keyvalues, standing,
};
pub use http::{ROUTE_RULES, component, routes};
pub use sources::{Api, Input, KpiSource, Measurement};
