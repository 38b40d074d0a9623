//! Integration tests of the NGSI-LD HTTP API (ETSI GS CIM 009 v1.8): each test starts
//! the hub on 127.0.0.1:0 over a real SQLite file and talks to it over real HTTP.

#![allow(clippy::unwrap_used)]

mod common;

mod batch;
mod context;
mod discovery;
mod entities;
mod errors;
mod jsonld_contexts;
mod kinds;
mod links;
mod oidc;
mod query;
mod security;
mod subscriptions;
mod temporal;
mod tenancy;
mod updates;
