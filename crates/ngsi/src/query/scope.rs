//! Scopes (clause 4.18) and the `scopeQ` language (clause 4.19): parser, printer
//! and matching of an entity's scopes against a query.

use std::fmt;

use super::ast::{ScopeExpr, ScopePattern, ScopeSegment};
use super::error::{ParseError, check_len};
use super::syntax::{Cursor, Grammar, parse_tree, write_group};

const GRAMMAR: Grammar<'static> = Grammar {
    what: "scopeQ",
    or_seps: &[',', '|'],
};

/// Parses a `scopeQ` such as `/Madrid/Gardens,/Madrid/+/Roses;/Spain/#`.
///
/// `;` (and) binds tighter than `,` and `|` (or); parentheses group; whitespace between
/// scopes is ignored. Groups of the same kind are flattened, as in `q`.
pub fn parse_scope_q(text: &str) -> Result<ScopeExpr, ParseError> {
    let tree = parse_tree(text, &GRAMMAR, &mut parse_pattern)?;
    Ok(tree.fold(&ScopeExpr::And, &ScopeExpr::Or, &ScopeExpr::Scope))
}

/// Parses one scope, with no surrounding whitespace, e.g. a value of an entity's
/// `scope` property. Wildcards are accepted: callers storing a scope should refuse
/// patterns that have them.
pub fn parse_scope(text: &str) -> Result<ScopePattern, ParseError> {
    check_len(text)?;
    let mut c = Cursor::new(text);
    let pattern = parse_pattern(&mut c)?;
    if !c.at_end() {
        return Err(c.error(format!(
            "{}; expected the end of the scope",
            c.describe_next()
        )));
    }
    Ok(pattern)
}

/// Chars of a scope segment's name: anything but whitespace, the separators of
/// `scopeQ`, and the wildcards (which must stand alone as a segment).
fn is_segment_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !"/;,|()#+".contains(c)
}

fn parse_pattern(c: &mut Cursor) -> Result<ScopePattern, ParseError> {
    if !c.eat('/') {
        return Err(c.error(format!("{}; a scope starts with '/'", c.describe_next())));
    }
    let mut segments = Vec::new();
    loop {
        let at = c.pos;
        let segment = if c.eat('#') {
            ScopeSegment::AnyBelow
        } else if c.eat('+') {
            ScopeSegment::AnyOne
        } else {
            let name = c.take_while(is_segment_char);
            if name.is_empty() {
                return Err(c.error(format!(
                    "{}; expected a scope segment after '/'",
                    c.describe_next()
                )));
            }
            ScopeSegment::Name(name.to_string())
        };
        if c.peek()
            .is_some_and(|ch| is_segment_char(ch) || ch == '#' || ch == '+')
        {
            return Err(c.error("'#' and '+' must be whole segments"));
        }
        let last_only = segment == ScopeSegment::AnyBelow;
        segments.push(segment);
        if !c.eat('/') {
            break;
        }
        if last_only {
            return Err(ParseError::new(at, "'#' must be the last segment"));
        }
    }
    Ok(ScopePattern { segments })
}

impl ScopePattern {
    /// The scope as written, e.g. `/Madrid/+/Roses`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for segment in &self.segments {
            text.push('/');
            match segment {
                ScopeSegment::Name(name) => text.push_str(name),
                ScopeSegment::AnyOne => text.push('+'),
                ScopeSegment::AnyBelow => text.push('#'),
            }
        }
        if text.is_empty() {
            text.push('/');
        }
        text
    }
}

impl fmt::Display for ScopePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Canonical `scopeQ` text: no whitespace, `;` and `,`, parentheses only around an
/// "or" inside an "and". An empty `And`/`Or` prints as nothing, which does not parse.
impl fmt::Display for ScopeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeExpr::And(items) => write_group(f, items, ";", |e| matches!(e, ScopeExpr::Or(_))),
            ScopeExpr::Or(items) => write_group(f, items, ",", |_| false),
            ScopeExpr::Scope(pattern) => pattern.fmt(f),
        }
    }
}

/// Whether the entity scope `scope` (e.g. `/Madrid/Gardens/Roses`) falls under
/// `pattern`. `+` stands for exactly one (non-empty) level; `#` for the levels from
/// there down, including none, so `/Madrid/#` matches `/Madrid` itself. A scope not
/// starting with `/` matches nothing.
pub fn scope_matches(pattern: &ScopePattern, scope: &str) -> bool {
    let Some(rest) = scope.strip_prefix('/') else {
        return false;
    };
    let mut levels = rest.split('/').filter(|_| !rest.is_empty());
    for segment in &pattern.segments {
        match segment {
            ScopeSegment::AnyBelow => return true,
            ScopeSegment::AnyOne => {
                if levels.next().is_none_or(str::is_empty) {
                    return false;
                }
            }
            ScopeSegment::Name(name) => {
                if levels.next() != Some(name.as_str()) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// Whether an entity with the given scopes satisfies `expr`: a pattern is satisfied
/// when any of the scopes matches it, and the and/or structure combines those.
/// An entity without scopes satisfies no pattern.
pub fn scope_expr_matches(expr: &ScopeExpr, scopes: &[&str]) -> bool {
    match expr {
        ScopeExpr::And(items) => items.iter().all(|e| scope_expr_matches(e, scopes)),
        ScopeExpr::Or(items) => items.iter().any(|e| scope_expr_matches(e, scopes)),
        ScopeExpr::Scope(pattern) => scopes.iter().any(|s| scope_matches(pattern, s)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ScopeExpr::{And, Or};
    use ScopeSegment::{AnyBelow, AnyOne};
    use proptest::prelude::*;

    fn name(s: &str) -> ScopeSegment {
        ScopeSegment::Name(s.into())
    }

    fn scope(segments: Vec<ScopeSegment>) -> ScopeExpr {
        ScopeExpr::Scope(ScopePattern { segments })
    }

    /// [`crate::query::check_parse`] for the scope query parser.
    fn check(input: &str, expected: Result<ScopeExpr, (usize, &str)>) {
        crate::query::check_parse(parse_scope_q, input, expected);
    }

    #[test]
    fn parses_scope_queries() {
        check(
            "/Madrid/Gardens",
            Ok(scope(vec![name("Madrid"), name("Gardens")])),
        );
        check(
            "/Madrid/+/Roses",
            Ok(scope(vec![name("Madrid"), AnyOne, name("Roses")])),
        );
        check("/Madrid/#", Ok(scope(vec![name("Madrid"), AnyBelow])));
        check("/#", Ok(scope(vec![AnyBelow])));
        check("/+", Ok(scope(vec![AnyOne])));
        check(
            "/Huế/Đại_Nội-1.2",
            Ok(scope(vec![name("Huế"), name("Đại_Nội-1.2")])),
        );
        check(
            "/a,/b",
            Ok(Or(vec![scope(vec![name("a")]), scope(vec![name("b")])])),
        );
        check(
            "/a|/b",
            Ok(Or(vec![scope(vec![name("a")]), scope(vec![name("b")])])),
        );
        check(
            "/a;/b",
            Ok(And(vec![scope(vec![name("a")]), scope(vec![name("b")])])),
        );
        check(
            "/a;/b,/c",
            Ok(Or(vec![
                And(vec![scope(vec![name("a")]), scope(vec![name("b")])]),
                scope(vec![name("c")]),
            ])),
        );
        check(
            " /a ; ( /b | /c ) ",
            Ok(And(vec![
                scope(vec![name("a")]),
                Or(vec![scope(vec![name("b")]), scope(vec![name("c")])]),
            ])),
        );
        check("((/a))", Ok(scope(vec![name("a")])));
    }

    #[test]
    fn refuses_bad_scope_queries() {
        check("", Err((0, "empty scopeQ")));
        check("Madrid", Err((0, "starts with '/'")));
        check("/", Err((1, "expected a scope segment")));
        check("/a/", Err((3, "expected a scope segment")));
        check("/a//b", Err((3, "expected a scope segment")));
        check("/a b", Err((3, "unexpected 'b'")));
        check("/#/a", Err((1, "last segment")));
        check("/a#", Err((2, "whole segments")));
        check("/+a", Err((2, "whole segments")));
        check("/a/b+", Err((4, "whole segments")));
        check("/a;", Err((3, "expected a term")));
        check("(/a", Err((0, "never closed")));
        check("/a)", Err((2, "unbalanced ')'")));
        check("/a,,/b", Err((3, "expected a term")));
        crate::query::check_nesting_limit(parse_scope_q, "/a");
    }

    #[test]
    fn parses_single_scopes() {
        assert_eq!(
            parse_scope("/a/+").unwrap().segments,
            vec![name("a"), AnyOne]
        );
        assert_eq!(parse_scope("/a;/b").unwrap_err().offset, 2);
        assert_eq!(parse_scope(" /a").unwrap_err().offset, 0);
    }

    #[test]
    fn matches_scopes() {
        let cases = [
            ("/Madrid/Gardens", "/Madrid/Gardens", true),
            ("/Madrid/Gardens", "/Madrid/Gardens/Roses", false),
            ("/Madrid/Gardens", "/Madrid", false),
            ("/Madrid/+/Roses", "/Madrid/Gardens/Roses", true),
            ("/Madrid/+/Roses", "/Madrid/Roses", false),
            ("/Madrid/+/Roses", "/Madrid/Gardens/Tulips", false),
            ("/Madrid/+", "/Madrid/Gardens", true),
            ("/Madrid/+", "/Madrid", false),
            ("/Madrid/+", "/Madrid/", false),
            ("/Madrid/#", "/Madrid", true),
            ("/Madrid/#", "/Madrid/Gardens", true),
            ("/Madrid/#", "/Madrid/Gardens/Roses", true),
            ("/Madrid/#", "/Madridx", false),
            ("/Madrid/#", "/Spain/Madrid", false),
            ("/#", "/Anything/at/all", true),
            ("/#", "/", true),
            ("/a", "a", false),
            ("/a", "", false),
            ("/+/#", "/x/y/z", true),
            ("/+/#", "/", false),
        ];
        for (pattern, entity_scope, want) in cases {
            let p = parse_scope(pattern).unwrap();
            assert_eq!(
                scope_matches(&p, entity_scope),
                want,
                "{pattern} vs {entity_scope}"
            );
        }
    }

    #[test]
    fn matches_scope_expressions() {
        let cases: [(&str, &[&str], bool); 8] = [
            ("/a,/b", &["/b"], true),
            ("/a,/b", &["/c"], false),
            ("/a;/b", &["/a", "/b"], true),
            ("/a;/b", &["/a"], false),
            ("/a;(/b|/c/#)", &["/c/d", "/a"], true),
            ("/a;(/b|/c/#)", &["/c/d"], false),
            ("/#", &[], false),
            ("/a/+;/a/#", &["/a/x"], true),
        ];
        for (expr, scopes, want) in cases {
            let e = parse_scope_q(expr).unwrap();
            assert_eq!(scope_expr_matches(&e, scopes), want, "{expr} vs {scopes:?}");
        }
    }

    #[test]
    fn prints_canonically() {
        assert_eq!(
            parse_scope_q(" ( /a | /b ) ; /c/+/# ").unwrap().to_string(),
            "(/a,/b);/c/+/#"
        );
        assert_eq!(ScopePattern { segments: vec![] }.to_text(), "/");
    }

    fn pattern() -> impl Strategy<Value = ScopePattern> {
        let segment = prop_oneof![
            4 => "[a-zA-Z0-9_.Đạế-]{1,6}".prop_map(ScopeSegment::Name),
            1 => Just(AnyOne),
        ];
        (prop::collection::vec(segment, 1..4), any::<bool>()).prop_map(|(mut segments, below)| {
            if below {
                segments.push(AnyBelow);
            }
            ScopePattern { segments }
        })
    }

    fn scope_expr() -> impl Strategy<Value = ScopeExpr> {
        crate::query::trees::tree(pattern().prop_map(ScopeExpr::Scope))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in any::<String>()) {
            crate::query::trees::parsed_prints_back(parse_scope_q, &s)?;
            let _ = parse_scope(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[/a-c#+;,|() ]{0,40}") {
            if let Some(e) = crate::query::trees::parsed_prints_back(parse_scope_q, &s)? {
                let _ = scope_expr_matches(&e, &["/a/b", "/c"]);
            }
        }

        #[test]
        fn never_panics_on_deep_nesting(open in 0usize..300, close in 0usize..300) {
            let _ = parse_scope_q(&format!("{}/a{}", "(".repeat(open), ")".repeat(close)));
        }

        #[test]
        fn print_then_parse_round_trips(e in scope_expr()) {
            crate::query::trees::prints_back(parse_scope_q, &e)?;
        }

        #[test]
        fn a_pattern_matches_its_own_concrete_scopes(p in pattern()) {
            // Replace wildcards by a concrete level: the result must match.
            let concrete: String = p.segments.iter().map(|s| match s {
                ScopeSegment::Name(n) => format!("/{n}"),
                AnyOne => "/x".to_string(),
                AnyBelow => "/y/z".to_string(),
            }).collect();
            prop_assert!(scope_matches(&p, &concrete), "{} vs {}", p, concrete);
        }
    }
}
