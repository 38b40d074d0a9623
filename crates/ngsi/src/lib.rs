//! The NGSI-LD information model (ETSI GS CIM 009), pure and free of I/O.
//!
//! This crate owns entities and their attributes, @context expansion and compaction,
//! the `q`, `geoQ`, `scopeQ` and type-selection languages, and the ProblemDetails error
//! types. It knows nothing of HTTP or storage; every function here is deterministic and
//! safe to call on any input.

pub mod geometry;
pub mod query;
