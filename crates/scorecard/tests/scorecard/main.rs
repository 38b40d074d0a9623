//! The scorecard over a real hub, on SQLite, or on PostgreSQL with
//! `DOTHI_TEST_STORE=postgres`.

mod checklists;
mod common;
mod computed;
mod entered;
mod services;
