//! The open data portal against a real hub, on SQLite (and on PostgreSQL with
//! `DOTHI_TEST_STORE=postgres`): downloads, the CKAN Action API with the CKAN
//! project's own client (ckanapi), and the DCAT-AP catalogue validated with pySHACL.

#![allow(clippy::unwrap_used)]

mod catalog;
mod ckan;
mod common;
mod downloads;
