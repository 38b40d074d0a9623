//! The open data portal of dothi (`docs/opendata.md`): the hub's public data published
//! as datasets that are always current. A dataset is a *published view* of the hub (a
//! tenant, entity types, an optional `q`, and the attributes it makes public) with its
//! metadata, kept as an NGSI-LD entity of type `Dataset`; organisations (the
//! province's departments) are entities of type `Organization`.
//!
//! It serves the CKAN Action API (`/api/3/action/…`, `/api/action/…`), the DCAT-AP 3
//! catalogue (`/catalog.ttl`, `.jsonld`, `.rdf`, and `/dataset/{name}.ttl`) and each
//! dataset's downloads (CSV, GeoJSON, NGSI-LD JSON, history by period), streamed a page
//! at a time whatever their size.
//!
//! **Invariants:** it reads and writes through [`hub::Hub`] only, never the store. A
//! download shows the view's public attributes and nothing else; a view naming
//! personal data (a reporter, a contact, a person's identity) or filtering on an
//! attribute it does not publish is refused when the dataset is published.

mod ckan;
pub mod dcat;
mod demo;
pub mod download;
mod http;
pub mod model;
mod portal;

pub use demo::{DemoReport, load_demo};
pub use http::{OpendataConfig, ROUTE_RULES, component, routes};
pub use model::{Contact, Dataset, Invalid, Organization, Text, View};
pub use portal::{CATALOGUE_TENANT, Fault, Portal};
