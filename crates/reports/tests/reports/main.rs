//! The reports service over a real hub: Open311 conversations (XML and JSON, with
//! FixMyStreet's parameters), the workflow with a controlled clock, personal data, the
//! demo. On SQLite, or on PostgreSQL with `DOTHI_TEST_STORE=postgres`.

mod common;
mod demo;
mod open311;
mod photos;
mod privacy;
mod workflow;
