//! The NGSI-LD query languages: syntax trees, parsers and printers.

pub mod ast;
