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

/// Parentheses nested one deeper than [`MAX_NESTING`] around `leaf` are refused where
/// the excess starts, and a text of nothing but `(` where it passes the length limit.
#[cfg(test)]
fn check_nesting_limit<T>(parse: impl Fn(&str) -> Result<T, ParseError>, leaf: &str)
where
    T: PartialEq + std::fmt::Debug + std::fmt::Display,
{
    let over = MAX_NESTING + 1;
    let deep = format!("{}{leaf}{}", "(".repeat(over), ")".repeat(over));
    check_parse(&parse, &deep, Err((MAX_NESTING, "nested deeper")));
    let open = "(".repeat(100_000);
    assert_eq!(parse(&open).err().map(|e| e.offset), Some(MAX_QUERY_LEN));
}

/// Random and/or trees of the three languages, for their property tests.
#[cfg(test)]
mod trees {
    use proptest::prelude::*;

    use super::ast::{QExpr, ScopeExpr, TypeExpr};

    /// An expression made of conjunctions and disjunctions of leaves.
    pub(crate) trait AndOr: Sized + Clone + std::fmt::Debug + 'static {
        fn and_or(and: bool, items: Vec<Self>) -> Self;
        /// The children of an and (`and`) or of an or (`!and`); anything else back.
        fn children(self, and: bool) -> Result<Vec<Self>, Self>;
    }

    macro_rules! and_or {
        ($($t:ident),*) => {$(
            impl AndOr for $t {
                fn and_or(and: bool, items: Vec<Self>) -> Self {
                    if and { $t::And(items) } else { $t::Or(items) }
                }
                fn children(self, and: bool) -> Result<Vec<Self>, Self> {
                    match self {
                        $t::And(inner) if and => Ok(inner),
                        $t::Or(inner) if !and => Ok(inner),
                        other => Err(other),
                    }
                }
            }
        )*};
    }
    and_or!(QExpr, ScopeExpr, TypeExpr);

    /// Builds an and/or as the parsers do: children of the same kind merged.
    fn flat<E: AndOr>(and: bool, items: Vec<E>) -> E {
        let mut out = Vec::new();
        for item in items {
            match item.children(and) {
                Ok(inner) => out.extend(inner),
                Err(other) => out.push(other),
            }
        }
        E::and_or(and, out)
    }

    /// Printing `e` gives text that parses back to `e` (and so prints the same again).
    pub(crate) fn prints_back<E>(
        parse: impl Fn(&str) -> Result<E, crate::query::ParseError>,
        e: &E,
    ) -> Result<(), TestCaseError>
    where
        E: PartialEq + std::fmt::Debug + std::fmt::Display,
    {
        let printed = e.to_string();
        let parsed = parse(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(e), "printed: {}", printed);
        Ok(())
    }

    /// Parses `s`; a tree it gives must print back into text that parses to the same
    /// tree. The tree, for further checks.
    pub(crate) fn parsed_prints_back<E>(
        parse: impl Fn(&str) -> Result<E, crate::query::ParseError>,
        s: &str,
    ) -> Result<Option<E>, TestCaseError>
    where
        E: PartialEq + std::fmt::Debug + std::fmt::Display,
    {
        match parse(s) {
            Ok(e) => {
                prints_back(&parse, &e)?;
                Ok(Some(e))
            }
            Err(_) => Ok(None),
        }
    }

    /// Ands and ors of `leaf`, up to four levels deep.
    pub(crate) fn tree<E: AndOr>(
        leaf: impl Strategy<Value = E> + 'static,
    ) -> impl Strategy<Value = E> {
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(|v| flat(true, v)),
                prop::collection::vec(inner, 2..4).prop_map(|v| flat(false, v)),
            ]
        })
    }
}
