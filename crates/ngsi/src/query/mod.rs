//! The NGSI-LD query languages: syntax trees, parsers and printers.
//!
//! Every parser is pure and total: any input, however long or hostile, gives a tree or
//! a [`ParseError`] with a byte offset, never a panic.

pub mod ast;
mod error;
mod geoq;
mod q;
mod scope;
mod syntax;
mod types;

pub use error::{MAX_NESTING, MAX_QUERY_LEN, ParseError};
pub use geoq::{DEFAULT_GEOPROPERTY, parse_geoq};
pub use q::parse_q;
pub use scope::{parse_scope, parse_scope_q, scope_expr_matches, scope_matches};
pub use types::parse_type_expr;
