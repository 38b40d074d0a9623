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

/// Parses `input` with `parse` and compares with the expected tree, or with the
/// expected error offset and a fragment of its message. A parsed tree must also print
/// back into text that parses to the same tree.
#[cfg(test)]
fn check_parse<T>(
    parse: impl Fn(&str) -> Result<T, ParseError>,
    input: &str,
    expected: Result<T, (usize, &str)>,
) where
    T: PartialEq + std::fmt::Debug + std::fmt::Display,
{
    let got = parse(input);
    match (&got, &expected) {
        (Ok(tree), Ok(want)) => {
            assert_eq!(tree, want, "{input}");
            let printed = tree.to_string();
            assert_eq!(
                parse(&printed).as_ref(),
                Ok(tree),
                "{input} printed as {printed}"
            );
        }
        (Err(e), Err((offset, fragment))) => {
            assert!(
                e.message.contains(fragment),
                "{input}: {e} lacks {fragment:?}"
            );
            assert_eq!(e.offset, *offset, "{input}: {e}");
        }
        _ => panic!("{input}: got {got:?}, expected {expected:?}"),
    }
}
