//! The entity type selection language (clause 4.17): `A`, `A,B`, `A|B`, `A;B`,
//! `(A;B)|C`. Parser, printer, name rewriting and matching.

use std::fmt;

use super::ast::TypeExpr;
use super::error::ParseError;
use super::syntax::{Cursor, Grammar, check_name, is_iri_char, parse_tree, write_group};

const GRAMMAR: Grammar<'static> = Grammar {
    what: "type selection",
    or_seps: &[',', '|'],
};

/// Parses an entity type selection. `;` (the entity has both types) binds tighter
/// than `,` and `|` (either); parentheses group; whitespace between names is ignored.
/// A name is a term (letters, digits, `_`, `-`) or a URI / compact IRI (it has `:`).
pub fn parse_type_expr(text: &str) -> Result<TypeExpr, ParseError> {
    let tree = parse_tree(text, &GRAMMAR, &mut parse_type_name)?;
    Ok(tree.fold(&TypeExpr::And, &TypeExpr::Or, &TypeExpr::Type))
}

fn parse_type_name(c: &mut Cursor) -> Result<String, ParseError> {
    let at = c.pos;
    let name = c.take_while(is_iri_char);
    check_name(name, at, "a type name")?;
    Ok(name.to_string())
}

impl TypeExpr {
    /// Every type named, in order of first appearance, each once.
    pub fn names(&self) -> Vec<&str> {
        fn collect<'a>(e: &'a TypeExpr, out: &mut Vec<&'a str>) {
            match e {
                TypeExpr::And(items) | TypeExpr::Or(items) => {
                    items.iter().for_each(|i| collect(i, out))
                }
                TypeExpr::Type(name) => {
                    if !out.contains(&name.as_str()) {
                        out.push(name);
                    }
                }
            }
        }
        let mut out = Vec::new();
        collect(self, &mut out);
        out
    }

    /// The same selection with every name replaced by `f(name)`, e.g. to expand
    /// terms against an @context.
    pub fn map_names(&self, f: &impl Fn(&str) -> String) -> TypeExpr {
        match self {
            TypeExpr::And(items) => TypeExpr::And(items.iter().map(|e| e.map_names(f)).collect()),
            TypeExpr::Or(items) => TypeExpr::Or(items.iter().map(|e| e.map_names(f)).collect()),
            TypeExpr::Type(name) => TypeExpr::Type(f(name)),
        }
    }

    /// Whether an entity with these types is selected. Names are compared as they
    /// are, so both sides should be expanded (or both compacted) the same way.
    pub fn matches(&self, entity_types: &[&str]) -> bool {
        match self {
            TypeExpr::And(items) => items.iter().all(|e| e.matches(entity_types)),
            TypeExpr::Or(items) => items.iter().any(|e| e.matches(entity_types)),
            TypeExpr::Type(name) => entity_types.contains(&name.as_str()),
        }
    }
}

/// Canonical text: no whitespace, `;` and `,` (the "or" every NGSI-LD version
/// understands), parentheses only around an "or" inside an "and". An empty
/// `And`/`Or` prints as nothing, which does not parse.
impl fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeExpr::And(items) => write_group(f, items, ";", |e| matches!(e, TypeExpr::Or(_))),
            TypeExpr::Or(items) => write_group(f, items, ",", |_| false),
            TypeExpr::Type(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use TypeExpr::{And, Or};
    use proptest::prelude::*;

    fn t(name: &str) -> TypeExpr {
        TypeExpr::Type(name.into())
    }

    /// [`crate::query::check_parse`] for the type selection parser.
    fn check(input: &str, expected: Result<TypeExpr, (usize, &str)>) {
        crate::query::check_parse(parse_type_expr, input, expected);
    }

    #[test]
    fn parses_type_selections() {
        check("Building", Ok(t("Building")));
        check("Road_Segment-2", Ok(t("Road_Segment-2")));
        check(
            "https://uri.fiware.org/ns/dataModels#Building",
            Ok(t("https://uri.fiware.org/ns/dataModels#Building")),
        );
        check("fiware:Building", Ok(t("fiware:Building")));
        check("A,B", Ok(Or(vec![t("A"), t("B")])));
        check("A|B", Ok(Or(vec![t("A"), t("B")])));
        check("A,B|C", Ok(Or(vec![t("A"), t("B"), t("C")])));
        check("A;B", Ok(And(vec![t("A"), t("B")])));
        check("(A;B)|C", Ok(Or(vec![And(vec![t("A"), t("B")]), t("C")])));
        check("A;B|C", Ok(Or(vec![And(vec![t("A"), t("B")]), t("C")])));
        check("A;(B|C)", Ok(And(vec![t("A"), Or(vec![t("B"), t("C")])])));
        check(
            " A ; ( B , ex:C ) ",
            Ok(And(vec![t("A"), Or(vec![t("B"), t("ex:C")])])),
        );
        check("((A))", Ok(t("A")));
    }

    #[test]
    fn refuses_bad_type_selections() {
        check("", Err((0, "empty type selection")));
        check("A,", Err((2, "expected a term")));
        check(",A", Err((0, "expected a term")));
        check("A B", Err((2, "unexpected 'B'")));
        check("A.B", Err((1, "invalid char '.'")));
        check("A/B", Err((1, "invalid char '/'")));
        check(":A", Err((0, "cannot start with ':'")));
        check("(A", Err((0, "never closed")));
        check("A)", Err((1, "unbalanced ')'")));
        check("A=B", Err((1, "unexpected '='")));
        check("\"A\"", Err((0, "expected a type name")));
        crate::query::check_nesting_limit(parse_type_expr, "A");
    }

    #[test]
    fn names_maps_and_matches() {
        let e = parse_type_expr("(A;B)|C,A").unwrap();
        assert_eq!(e.names(), vec!["A", "B", "C"]);
        let expanded = e.map_names(&|n| format!("https://ex.org/{n}"));
        assert_eq!(
            expanded.to_string(),
            "https://ex.org/A;https://ex.org/B,https://ex.org/C,https://ex.org/A"
        );
        assert!(e.matches(&["A", "B"]));
        assert!(e.matches(&["C"]));
        assert!(!e.matches(&["B"]));
        assert!(!e.matches(&[]));
        assert!(parse_type_expr("A").unwrap().matches(&["X", "A"]));
        assert!(!parse_type_expr("A;B").unwrap().matches(&["A"]));
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_Đạ][a-zA-Z0-9_ế-]{0,8}",
            "https://ex\\.org/[a-zA-Z]{1,8}",
            "[a-z]{1,5}:[A-Za-z0-9#/.]{1,8}",
        ]
    }

    fn type_expr() -> impl Strategy<Value = TypeExpr> {
        crate::query::trees::tree(name().prop_map(TypeExpr::Type))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in any::<String>()) {
            crate::query::trees::parsed_prints_back(parse_type_expr, &s)?;
        }

        #[test]
        fn never_panics_on_near_misses(s in "[A-C:/.;,|() ]{0,40}") {
            if let Some(e) = crate::query::trees::parsed_prints_back(parse_type_expr, &s)? {
                let _ = e.matches(&["A", "C"]);
            }
        }

        #[test]
        fn never_panics_on_deep_nesting(open in 0usize..300, close in 0usize..300) {
            let _ = parse_type_expr(&format!("{}A{}", "(".repeat(open), ")".repeat(close)));
        }

        #[test]
        fn print_then_parse_round_trips(e in type_expr()) {
            crate::query::trees::prints_back(parse_type_expr, &e)?;
        }

        #[test]
        fn a_selection_matches_all_its_names(e in type_expr()) {
            let names = e.names();
            prop_assert!(e.matches(&names));
        }
    }
}
