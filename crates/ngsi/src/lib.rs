//! The NGSI-LD information model (ETSI GS CIM 009), pure and free of I/O.
//!
//! This crate owns entities and their attributes, @context expansion and compaction,
//! the `q`, `geoQ`, `scopeQ` and type-selection languages, and the ProblemDetails error
//! types. It knows nothing of HTTP or storage; every function here is deterministic and
//! safe to call on any input.

pub mod context;
pub mod entity;
pub mod error;
pub mod filter;
pub mod geometry;
pub mod order;
pub mod query;
pub mod render;
pub mod stored;
pub mod subscription;
pub mod temporal;

pub use context::Context;
pub use entity::{AttrKind, Attribute, Entity};
pub use error::{Error, ErrorKind, ProblemDetails, Result};
pub use geometry::Geometry;
