//! The `q` language (clause 4.9): parser, canonical printer and name rewriting.
//!
//! Names are kept as written. A name holding `:` is a URI or compact IRI: it runs up
//! to the operator or `[`, and its dots are part of it (no sub-attribute split), since
//! `https://schema.org/name` must not become `https://schema` + `org/name`.
//! As a consequence, a path whose attribute is a URI and which also has
//! sub-attributes (as [`QExpr::map_attrs`] may produce) prints as text that parses
//! back differently; such trees are for evaluation, not for printing.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};

use super::ast::{AttrPath, CompareOp, QExpr, QTerm, QValue};
use super::error::ParseError;
use super::syntax::{
    Cursor, Grammar, check_name, digits, is_iri_char, is_number_shape, parse_tree, write_group,
};

const GRAMMAR: Grammar<'static> = Grammar {
    what: "q",
    or_seps: &['|'],
};

/// Parses a `q` expression such as `temperature>20;(status=="ok"|!alarm)`.
///
/// `;` (and) binds tighter than `|` (or); parentheses group. Whitespace between
/// tokens is ignored. Groups of the same kind are flattened (`(a;b);c` is `a;b;c`),
/// so the tree is canonical and prints back as it parses.
pub fn parse_q(text: &str) -> Result<QExpr, ParseError> {
    let tree = parse_tree(text, &GRAMMAR, &mut parse_term)?;
    Ok(tree.fold(&QExpr::And, &QExpr::Or, &QExpr::Term))
}

impl QExpr {
    /// The same expression with every attribute and sub-attribute name replaced by
    /// `f(name)`, e.g. to expand terms against an @context. Members of compound
    /// values (`[city]`) are JSON keys, not NGSI-LD names, and are left alone.
    pub fn map_attrs(&self, f: &impl Fn(&str) -> String) -> QExpr {
        match self {
            QExpr::And(items) => QExpr::And(items.iter().map(|e| e.map_attrs(f)).collect()),
            QExpr::Or(items) => QExpr::Or(items.iter().map(|e| e.map_attrs(f)).collect()),
            QExpr::Term(term) => QExpr::Term(term.map_attrs(f)),
        }
    }

    /// The attributes the expression reads (each term's attribute, once each): what an
    /// entity must hold for the expression to be tested on it.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            QExpr::And(items) | QExpr::Or(items) => {
                items.iter().for_each(|e| e.collect_attributes(out));
            }
            QExpr::Term(term) => {
                let attr = term.path().attr.as_str();
                if !out.contains(&attr) {
                    out.push(attr);
                }
            }
        }
    }
}

impl QTerm {
    /// The attribute path the condition is about.
    pub fn path(&self) -> &AttrPath {
        match self {
            QTerm::Exists(path) | QTerm::NotExists(path) => path,
            QTerm::Compare { path, .. } => path,
        }
    }

    /// See [`QExpr::map_attrs`].
    pub fn map_attrs(&self, f: &impl Fn(&str) -> String) -> QTerm {
        match self {
            QTerm::Exists(path) => QTerm::Exists(path.map_attrs(f)),
            QTerm::NotExists(path) => QTerm::NotExists(path.map_attrs(f)),
            QTerm::Compare { path, op, value } => QTerm::Compare {
                path: path.map_attrs(f),
                op: *op,
                value: value.clone(),
            },
        }
    }
}

impl AttrPath {
    /// A path to a whole attribute, without sub-attributes or compound members.
    pub fn new(attr: impl Into<String>) -> AttrPath {
        AttrPath {
            attr: attr.into(),
            sub_attrs: Vec::new(),
            compound: Vec::new(),
        }
    }

    /// See [`QExpr::map_attrs`].
    pub fn map_attrs(&self, f: &impl Fn(&str) -> String) -> AttrPath {
        AttrPath {
            attr: f(&self.attr),
            sub_attrs: self.sub_attrs.iter().map(|s| f(s)).collect(),
            compound: self.compound.clone(),
        }
    }
}

impl CompareOp {
    /// The operator as written in `q`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Matches => "~=",
            CompareOp::NotMatches => "!~=",
        }
    }

    /// `==` and `!=`, the only operators that take ranges and lists.
    fn takes_sets(self) -> bool {
        matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

/// Longest operators first, so that `<=` is not read as `<` followed by `=`.
const OPERATORS: [(&str, CompareOp); 8] = [
    ("==", CompareOp::Eq),
    ("!=", CompareOp::Ne),
    ("!~=", CompareOp::NotMatches),
    ("~=", CompareOp::Matches),
    ("<=", CompareOp::Le),
    (">=", CompareOp::Ge),
    ("<", CompareOp::Lt),
    (">", CompareOp::Gt),
];

fn parse_term(c: &mut Cursor) -> Result<QTerm, ParseError> {
    if c.eat('!') {
        c.skip_ws();
        let path = parse_path(c)?;
        c.skip_ws();
        if c.peek().is_some_and(|ch| "=!<>~".contains(ch)) {
            return Err(c.error("a non-existence test '!attr' takes no comparison"));
        }
        return Ok(QTerm::NotExists(path));
    }
    let path = parse_path(c)?;
    c.skip_ws();
    let Some(op) = parse_op(c)? else {
        return Ok(QTerm::Exists(path));
    };
    c.skip_ws();
    let value = parse_value(c, op)?;
    Ok(QTerm::Compare { path, op, value })
}

fn parse_op(c: &mut Cursor) -> Result<Option<CompareOp>, ParseError> {
    for (text, op) in OPERATORS {
        if c.eat_str(text) {
            return Ok(Some(op));
        }
    }
    match c.peek() {
        Some('=') => Err(c.error("'=' is not an operator; use '=='")),
        Some('!' | '~') => Err(c.error(format!("{}; expected an operator", c.describe_next()))),
        _ => Ok(None),
    }
}

/// `attr(.sub)*([member(.member)*])?`, or `uri([member(.member)*])?`.
fn parse_path(c: &mut Cursor) -> Result<AttrPath, ParseError> {
    let start = c.pos;
    let raw = c.take_while(is_iri_char);
    let mut path = if raw.contains(':') {
        check_name(raw, start, "an attribute name")?;
        AttrPath::new(raw)
    } else {
        let mut names = Vec::new();
        let mut offset = start;
        for part in raw.split('.') {
            let what = if names.is_empty() {
                "an attribute name"
            } else {
                "a sub-attribute name"
            };
            check_name(part, offset, what)?;
            names.push(part.to_string());
            offset += part.len() + 1;
        }
        let mut names = names.into_iter();
        AttrPath {
            attr: names.next().unwrap_or_default(),
            sub_attrs: names.collect(),
            compound: Vec::new(),
        }
    };
    if c.eat('[') {
        loop {
            let at = c.pos;
            let member = c.take_while(|ch| is_iri_char(ch) && ch != '.');
            if member.is_empty() {
                return Err(ParseError::new(at, "expected a member name inside '[...]'"));
            }
            path.compound.push(member.to_string());
            if c.eat(']') {
                break;
            }
            if !c.eat('.') {
                return Err(c.error(format!("{}; expected '.' or ']'", c.describe_next())));
            }
        }
    }
    Ok(path)
}

fn parse_value(c: &mut Cursor, op: CompareOp) -> Result<QValue, ParseError> {
    if matches!(op, CompareOp::Matches | CompareOp::NotMatches) {
        let at = c.pos;
        if c.peek() != Some('"') {
            return Err(c.error(format!(
                "'{}' needs a quoted regular expression",
                op.as_str()
            )));
        }
        let pattern = parse_string(c)?;
        if let Err(e) = regex::Regex::new(&pattern) {
            return Err(ParseError::new(
                at,
                format!("invalid regular expression: {e}"),
            ));
        }
        return Ok(QValue::Text(pattern));
    }
    let first_at = c.pos;
    let first = parse_scalar(c)?;
    c.skip_ws();
    if c.rest().starts_with("..") {
        if !op.takes_sets() {
            return Err(c.error(format!(
                "a range is allowed only after '==' or '!=', not '{}'",
                op.as_str()
            )));
        }
        c.pos += 2;
        c.skip_ws();
        let second_at = c.pos;
        let second = parse_scalar(c)?;
        check_range_end(&first, first_at)?;
        check_range_end(&second, second_at)?;
        if std::mem::discriminant(&first) != std::mem::discriminant(&second) {
            return Err(ParseError::new(
                second_at,
                "both ends of a range must be of the same kind",
            ));
        }
        c.skip_ws();
        if c.peek() == Some(',') {
            return Err(c.error("a list cannot contain a range"));
        }
        return Ok(QValue::Range(Box::new(first), Box::new(second)));
    }
    if c.peek() == Some(',') {
        if !op.takes_sets() {
            return Err(c.error(format!(
                "a list is allowed only after '==' or '!=', not '{}'",
                op.as_str()
            )));
        }
        let mut items = vec![first];
        while c.eat(',') {
            c.skip_ws();
            items.push(parse_scalar(c)?);
            c.skip_ws();
        }
        if c.rest().starts_with("..") {
            return Err(c.error("a list cannot contain a range"));
        }
        return Ok(QValue::List(items));
    }
    if !op.takes_sets() && !is_comparable(&first) {
        return Err(ParseError::new(
            first_at,
            format!(
                "'{}' compares numbers, strings, dates and times only",
                op.as_str()
            ),
        ));
    }
    Ok(first)
}

/// Values with an order: the only ones allowed with `<`, `>`, ... and in ranges.
fn is_comparable(value: &QValue) -> bool {
    matches!(
        value,
        QValue::Number(_)
            | QValue::Text(_)
            | QValue::DateTime(_)
            | QValue::Date(_)
            | QValue::Time(_)
    )
}

fn check_range_end(value: &QValue, at: usize) -> Result<(), ParseError> {
    if is_comparable(value) {
        Ok(())
    } else {
        Err(ParseError::new(
            at,
            "a range holds numbers, strings, dates or times only",
        ))
    }
}

/// One value that is not a range or a list.
fn parse_scalar(c: &mut Cursor) -> Result<QValue, ParseError> {
    let at = c.pos;
    if c.peek() == Some('"') {
        return parse_string(c).map(QValue::Text);
    }
    let token = take_token(c);
    if token.is_empty() {
        return Err(ParseError::new(
            at,
            format!("{}; expected a value", c.describe_next()),
        ));
    }
    classify(token, at)
}

/// An unquoted value runs up to a separator, a quote, whitespace or `..`.
fn take_token<'a>(c: &mut Cursor<'a>) -> &'a str {
    let start = c.pos;
    while let Some(ch) = c.peek() {
        if ch.is_whitespace()
            || ch.is_control()
            || ";|(),\"".contains(ch)
            || c.rest().starts_with("..")
        {
            break;
        }
        c.bump();
    }
    c.since(start)
}

/// `"..."`: `\"` and `\\` are escapes; any other backslash is kept as it is, so that
/// regular expressions such as `"\d+"` can be written without doubling.
fn parse_string(c: &mut Cursor) -> Result<String, ParseError> {
    let open = c.pos;
    c.bump();
    let mut out = String::new();
    loop {
        match c.bump() {
            None => return Err(ParseError::new(open, "unterminated string")),
            Some('"') => return Ok(out),
            Some('\\') => match c.peek() {
                Some(ch @ ('"' | '\\')) => {
                    c.bump();
                    out.push(ch);
                }
                _ => out.push('\\'),
            },
            Some(ch) => out.push(ch),
        }
    }
}

/// Decides what an unquoted value is from its shape.
fn classify(token: &str, at: usize) -> Result<QValue, ParseError> {
    match token {
        "true" => return Ok(QValue::Bool(true)),
        "false" => return Ok(QValue::Bool(false)),
        "null" => return Ok(QValue::Null),
        _ => {}
    }
    let bytes = token.as_bytes();
    let starts_numeric = bytes
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'-');
    if starts_numeric {
        if is_date_shape(token) {
            return NaiveDate::parse_from_str(token, "%Y-%m-%d")
                .map(QValue::Date)
                .map_err(|e| ParseError::new(at, format!("invalid date {token:?}: {e}")));
        }
        if token.get(..10).is_some_and(is_date_shape) && matches!(bytes.get(10), Some(b'T' | b't'))
        {
            return parse_datetime(token)
                .map(QValue::DateTime)
                .ok_or_else(|| ParseError::new(at, format!("invalid date-time {token:?}")));
        }
        if is_time_shape(token) {
            return parse_time(token)
                .map(QValue::Time)
                .ok_or_else(|| ParseError::new(at, format!("invalid time {token:?}")));
        }
        if is_number_shape(token) {
            return match token.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(QValue::Number(n)),
                _ => Err(ParseError::new(
                    at,
                    format!("number {token} is out of range"),
                )),
            };
        }
        return Err(ParseError::new(at, format!("invalid value {token:?}")));
    }
    if is_uri_shape(token) {
        return Ok(QValue::Uri(token.to_string()));
    }
    Err(ParseError::new(
        at,
        format!("invalid value {token:?}: strings must be quoted, URIs need a scheme"),
    ))
}

/// `YYYY-MM-DD`.
fn is_date_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && digits(&b[..4])
        && b[4] == b'-'
        && digits(&b[5..7])
        && b[7] == b'-'
        && digits(&b[8..])
}

/// `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`.
fn is_time_shape(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !digits(&b[..2]) || b[2] != b':' || !digits(&b[3..5]) {
        return false;
    }
    match &b[5..] {
        [] => true,
        [b':', h, l, fraction @ ..] => {
            h.is_ascii_digit()
                && l.is_ascii_digit()
                && match fraction {
                    [] => true,
                    [b'.', f @ ..] => !f.is_empty() && digits(f),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// `scheme:rest`, the scheme starting with a letter (RFC 3986), the rest non-empty.
fn is_uri_shape(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        && !rest.is_empty()
}

/// RFC 3339 with any offset; without an offset, the time is taken as UTC.
fn parse_datetime(token: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(token) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(token, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(token, fmt).ok())
        .map(|naive| naive.and_utc())
}

fn parse_time(token: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|fmt| NaiveTime::parse_from_str(token, fmt).ok())
}

/// Canonical `q` text: no whitespace, `;` and `|`, parentheses only around an "or"
/// inside an "and". An empty `And`/`Or` prints as nothing, which is not valid `q`.
impl fmt::Display for QExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QExpr::And(items) => write_group(f, items, ";", |e| matches!(e, QExpr::Or(_))),
            QExpr::Or(items) => write_group(f, items, "|", |_| false),
            QExpr::Term(term) => term.fmt(f),
        }
    }
}

impl fmt::Display for QTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QTerm::Exists(path) => path.fmt(f),
            QTerm::NotExists(path) => write!(f, "!{path}"),
            QTerm::Compare { path, op, value } => write!(f, "{path}{op}{value}"),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.attr)?;
        for sub in &self.sub_attrs {
            write!(f, ".{sub}")?;
        }
        if !self.compound.is_empty() {
            write!(f, "[{}]", self.compound.join("."))?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Numbers print with Rust's shortest round-tripping form (never an exponent, so
/// that they parse back exactly); date-times in UTC with `Z` and 0, 3, 6 or 9
/// fractional digits. Non-finite numbers and years outside 0000..=9999 have no `q`
/// spelling and print as text that does not parse back.
impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QValue::Number(n) => write!(f, "{n}"),
            QValue::Text(s) => {
                f.write_str("\"")?;
                for ch in s.chars() {
                    if ch == '"' || ch == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{ch}")?;
                }
                f.write_str("\"")
            }
            QValue::Bool(b) => write!(f, "{b}"),
            QValue::Null => f.write_str("null"),
            QValue::DateTime(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            QValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            QValue::Time(t) => write!(f, "{}", t.format("%H:%M:%S%.f")),
            QValue::Uri(u) => f.write_str(u),
            QValue::Range(a, b) => write!(f, "{a}..{b}"),
            QValue::List(items) => write_group(f, items, ",", |_| false),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::query::error::MAX_QUERY_LEN;
    use proptest::prelude::*;

    fn path(attr: &str, subs: &[&str], compound: &[&str]) -> AttrPath {
        AttrPath {
            attr: attr.into(),
            sub_attrs: subs.iter().map(|s| s.to_string()).collect(),
            compound: compound.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn exists(attr: &str) -> QExpr {
        QExpr::Term(QTerm::Exists(AttrPath::new(attr)))
    }

    fn cmp(attr: &str, op: CompareOp, value: QValue) -> QExpr {
        QExpr::Term(QTerm::Compare {
            path: AttrPath::new(attr),
            op,
            value,
        })
    }

    fn cmp_path(path: AttrPath, op: CompareOp, value: QValue) -> QExpr {
        QExpr::Term(QTerm::Compare { path, op, value })
    }

    fn num(n: f64) -> QValue {
        QValue::Number(n)
    }

    fn text(s: &str) -> QValue {
        QValue::Text(s.into())
    }

    fn dt(s: &str) -> QValue {
        QValue::DateTime(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    fn date(s: &str) -> QValue {
        QValue::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn time(s: &str) -> QValue {
        QValue::Time(NaiveTime::parse_from_str(s, "%H:%M:%S%.f").unwrap())
    }

    fn range(a: QValue, b: QValue) -> QValue {
        QValue::Range(Box::new(a), Box::new(b))
    }

    /// [`crate::query::check_parse`] for the q parser.
    fn check(input: &str, expected: Result<QExpr, (usize, &str)>) {
        crate::query::check_parse(parse_q, input, expected);
    }

    use CompareOp::*;
    use QExpr::{And, Or};

    #[test]
    fn names_the_attributes_it_reads_once_each() {
        let q = parse_q("a>1;(b.c==2|!d|a[x]==\"y\");e.observedAt<2020-01-01T00:00:00Z").unwrap();
        assert_eq!(q.attributes(), ["a", "b", "d", "e"]);
    }

    #[test]
    fn parses_terms_and_paths() {
        check("temperature", Ok(exists("temperature")));
        check(
            "!temperature",
            Ok(QExpr::Term(QTerm::NotExists(AttrPath::new("temperature")))),
        );
        check(
            "temperature.observedBy",
            Ok(QExpr::Term(QTerm::Exists(path(
                "temperature",
                &["observedBy"],
                &[],
            )))),
        );
        check(
            "address[city]==\"Huế\"",
            Ok(cmp_path(path("address", &[], &["city"]), Eq, text("Huế"))),
        );
        check(
            "a.b[c.d]>1",
            Ok(cmp_path(path("a", &["b"], &["c", "d"]), Gt, num(1.0))),
        );
        check(
            "a.b.c<1",
            Ok(cmp_path(path("a", &["b", "c"], &[]), Lt, num(1.0))),
        );
        check("road_segment-2>=1", Ok(cmp("road_segment-2", Ge, num(1.0))));
        check("nhiệt_độ<=30", Ok(cmp("nhiệt_độ", Le, num(30.0))));
        check(
            "https://schema.org/name==\"x\"",
            Ok(cmp("https://schema.org/name", Eq, text("x"))),
        );
        check(
            "ngsi-ld:foo.bar!=1",
            Ok(cmp("ngsi-ld:foo.bar", Ne, num(1.0))),
        );
        check(
            "http://example.org/ns#addr[street.no]==3",
            Ok(cmp_path(
                path("http://example.org/ns#addr", &[], &["street", "no"]),
                Eq,
                num(3.0),
            )),
        );
        check(
            "!https://schema.org/name",
            Ok(QExpr::Term(QTerm::NotExists(AttrPath::new(
                "https://schema.org/name",
            )))),
        );
        check("  a  ==  1  ", Ok(cmp("a", Eq, num(1.0))));
        check(
            "name~=\"^Park.*\"",
            Ok(cmp("name", Matches, text("^Park.*"))),
        );
        check("name!~=\"\\d+\"", Ok(cmp("name", NotMatches, text("\\d+"))));
    }

    #[test]
    fn parses_values() {
        check("a==1", Ok(cmp("a", Eq, num(1.0))));
        check("a==-2.5", Ok(cmp("a", Eq, num(-2.5))));
        check("a==1e3", Ok(cmp("a", Eq, num(1000.0))));
        check("a==1.5E-2", Ok(cmp("a", Eq, num(0.015))));
        check("a==007", Ok(cmp("a", Eq, num(7.0))));
        check(
            "a==\"say \\\"hi\\\" \\\\ ok\"",
            Ok(cmp("a", Eq, text("say \"hi\" \\ ok"))),
        );
        check("a==\"x;y|z)\"", Ok(cmp("a", Eq, text("x;y|z)"))));
        check("a==\"\"", Ok(cmp("a", Eq, text(""))));
        check("a==true", Ok(cmp("a", Eq, QValue::Bool(true))));
        check("a!=false", Ok(cmp("a", Ne, QValue::Bool(false))));
        check("a==null", Ok(cmp("a", Eq, QValue::Null)));
        // Date-times as written, and the instant each stands for.
        for (written, instant) in [
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
            ("2024-05-01T17:00:00+07:00", "2024-05-01T10:00:00Z"),
            ("2024-05-01T17:00:00+0700", "2024-05-01T10:00:00Z"),
            ("2024-05-01T10:00:00.250Z", "2024-05-01T10:00:00.25Z"),
            ("2024-05-01T10:00:00", "2024-05-01T10:00:00Z"),
            ("2024-05-01T10:00", "2024-05-01T10:00:00Z"),
        ] {
            check(&format!("a>{written}"), Ok(cmp("a", Gt, dt(instant))));
        }
        check("a<2024-05-01", Ok(cmp("a", Lt, date("2024-05-01"))));
        check("a<10:00:00", Ok(cmp("a", Lt, time("10:00:00"))));
        check("a<10:00:00.5", Ok(cmp("a", Lt, time("10:00:00.5"))));
        check("a<10:30", Ok(cmp("a", Lt, time("10:30:00"))));
        check(
            "a==urn:ngsi-ld:Building:1",
            Ok(cmp("a", Eq, QValue::Uri("urn:ngsi-ld:Building:1".into()))),
        );
        check(
            "a==https://x.org/a?b=c",
            Ok(cmp("a", Eq, QValue::Uri("https://x.org/a?b=c".into()))),
        );
        check("a==1..5", Ok(cmp("a", Eq, range(num(1.0), num(5.0)))));
        check("a!=1.5..2.5", Ok(cmp("a", Ne, range(num(1.5), num(2.5)))));
        check(
            "a==\"a\"..\"m\"",
            Ok(cmp("a", Eq, range(text("a"), text("m")))),
        );
        check(
            "a==2024-01-01..2024-02-01",
            Ok(cmp("a", Eq, range(date("2024-01-01"), date("2024-02-01")))),
        );
        check(
            "a==2024-01-01T00:00:00Z..2024-02-01T00:00:00Z",
            Ok(cmp(
                "a",
                Eq,
                range(dt("2024-01-01T00:00:00Z"), dt("2024-02-01T00:00:00Z")),
            )),
        );
        check("a==-5..-1", Ok(cmp("a", Eq, range(num(-5.0), num(-1.0)))));
        check(
            "a==1,2,3",
            Ok(cmp(
                "a",
                Eq,
                QValue::List(vec![num(1.0), num(2.0), num(3.0)]),
            )),
        );
        check(
            "a!=\"x\", urn:a:b ,true",
            Ok(cmp(
                "a",
                Ne,
                QValue::List(vec![
                    text("x"),
                    QValue::Uri("urn:a:b".into()),
                    QValue::Bool(true),
                ]),
            )),
        );
    }

    #[test]
    fn parses_boolean_structure() {
        check("a;b", Ok(And(vec![exists("a"), exists("b")])));
        check("a|b", Ok(Or(vec![exists("a"), exists("b")])));
        check(
            "a;b|c",
            Ok(Or(vec![And(vec![exists("a"), exists("b")]), exists("c")])),
        );
        check(
            "a|b;c",
            Ok(Or(vec![exists("a"), And(vec![exists("b"), exists("c")])])),
        );
        check(
            "a;(b|c)",
            Ok(And(vec![exists("a"), Or(vec![exists("b"), exists("c")])])),
        );
        check(
            "(a;b);c",
            Ok(And(vec![exists("a"), exists("b"), exists("c")])),
        );
        check("((a))", Ok(exists("a")));
        check(
            "( a | b ) | c",
            Ok(Or(vec![exists("a"), exists("b"), exists("c")])),
        );
        check(
            "temperature>20;(status==\"ok\"|!alarm)",
            Ok(And(vec![
                cmp("temperature", Gt, num(20.0)),
                Or(vec![
                    cmp("status", Eq, text("ok")),
                    QExpr::Term(QTerm::NotExists(AttrPath::new("alarm"))),
                ]),
            ])),
        );
        let deep = format!("{}a{}", "(".repeat(64), ")".repeat(64));
        check(&deep, Ok(exists("a")));
    }

    #[test]
    fn refuses_bad_input() {
        check("", Err((0, "empty")));
        check("   ", Err((3, "empty")));
        check("(a", Err((0, "never closed")));
        check("(a;b", Err((0, "never closed")));
        check("a)", Err((1, "unbalanced ')'")));
        check("()", Err((1, "expected a term")));
        check("a;", Err((2, "expected a term")));
        check(";a", Err((0, "expected a term")));
        check("a||b", Err((2, "expected a term")));
        check("a==", Err((3, "expected a value")));
        check("a==;b", Err((3, "expected a value")));
        check("a==1 2", Err((5, "unexpected '2'")));
        check("a==1)", Err((4, "unbalanced ')'")));
        check("(a==1 2)", Err((6, "expected ';', '|' or ')'")));
        check("a=1", Err((1, "use '=='")));
        check("a~1", Err((1, "expected an operator")));
        check("!a==1", Err((2, "takes no comparison")));
        check("a>1..5", Err((3, "range is allowed only after")));
        check("a<=1,2", Err((4, "list is allowed only after")));
        check("a~=\"x\",\"y\"", Err((6, "unexpected ','")));
        check("a==1..5,6", Err((7, "list cannot contain a range")));
        check("a==1,2..5", Err((6, "list cannot contain a range")));
        check("a==1..\"z\"", Err((6, "same kind")));
        check("a==true..false", Err((3, "range holds")));
        check("a>true", Err((2, "compares numbers")));
        check("a<urn:x:y", Err((2, "compares numbers")));
        check("a==hello", Err((3, "strings must be quoted")));
        check("a==\"open", Err((3, "unterminated string")));
        check("a~=foo", Err((3, "quoted regular expression")));
        check("a~=\"(unclosed\"", Err((3, "invalid regular expression")));
        check("a==1e999", Err((3, "out of range")));
        check("a==1.", Err((3, "invalid value")));
        check("a==.5", Err((3, "strings must be quoted")));
        check("a==NaN", Err((3, "strings must be quoted")));
        check("a==2024-13-01", Err((3, "invalid date")));
        check("a==2024-05-01T25:00:00Z", Err((3, "invalid date-time")));
        check("a==25:00:00", Err((3, "invalid time")));
        check("a==urn:", Err((3, "strings must be quoted")));
        check("a.==1", Err((2, "expected a sub-attribute name")));
        check(".a", Err((0, "expected an attribute name")));
        check("a..b", Err((2, "expected a sub-attribute name")));
        check("te$mp>1", Err((2, "invalid char '$'")));
        check(":x==1", Err((0, "cannot start with ':'")));
        check("a[]==1", Err((2, "member name")));
        check("a[b==1", Err((3, "expected '.' or ']'")));
        check("a[b.]==1", Err((4, "member name")));
        check("a[b]c==1", Err((4, "unexpected 'c'")));
        check("==1", Err((0, "expected an attribute name")));
        crate::query::check_nesting_limit(parse_q, "a");
    }

    #[test]
    fn refuses_huge_and_hostile_input() {
        let open = "(".repeat(60_000);
        assert_eq!(parse_q(&open).unwrap_err().offset, 64);
        let long = format!("a=={}", "1".repeat(MAX_QUERY_LEN));
        assert!(parse_q(&long).unwrap_err().message.contains("longer than"));
        let many = vec!["a==1"; 10_000].join(";");
        assert!(matches!(parse_q(&many), Ok(QExpr::And(v)) if v.len() == 10_000));
    }

    #[test]
    fn refuses_oversized_regex() {
        let e = parse_q("a~=\"((a{100}){100}){100}\"").unwrap_err();
        assert!(e.message.contains("invalid regular expression"), "{e}");
        let long = format!("a~=\"{}\"", "ab|".repeat(20_000));
        assert!(parse_q(&long).is_ok());
    }

    #[test]
    fn prints_canonically() {
        let e = parse_q(" ( a==1 | b ) ; !c ; d[x.y] ~= \"a\\\"b\" ").unwrap();
        assert_eq!(e.to_string(), "(a==1|b);!c;d[x.y]~=\"a\\\"b\"");
        let e = parse_q("a>2024-05-01T17:00:00.123+07:00|b<10:00|c==2024-05-01").unwrap();
        assert_eq!(
            e.to_string(),
            "a>2024-05-01T10:00:00.123Z|b<10:00:00|c==2024-05-01"
        );
        assert_eq!(
            parse_q("a==1e21").unwrap().to_string(),
            "a==1000000000000000000000"
        );
        assert_eq!(parse_q("a==1.50..2,").map_err(|e| e.offset), Err(10));
        assert_eq!(parse_q("a==1.50..2").unwrap().to_string(), "a==1.5..2");
        assert_eq!(parse_q("a==1, 2").unwrap().to_string(), "a==1,2");
    }

    #[test]
    fn maps_attribute_names() {
        let e = parse_q("temperature.observedBy[x.y]>1;!name").unwrap();
        let expanded = e.map_attrs(&|n| format!("https://ex.org/{n}"));
        let want = And(vec![
            cmp_path(
                path(
                    "https://ex.org/temperature",
                    &["https://ex.org/observedBy"],
                    &["x", "y"],
                ),
                Gt,
                num(1.0),
            ),
            QExpr::Term(QTerm::NotExists(AttrPath::new("https://ex.org/name"))),
        ]);
        assert_eq!(expanded, want);
    }

    #[test]
    fn errors_display_their_offset() {
        let e = parse_q("a==").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected end of input; expected a value at offset 3"
        );
        let _: &dyn std::error::Error = &e;
    }

    // ---- property tests ----

    fn term_name() -> impl Strategy<Value = String> {
        "[a-zA-Z_độệ][a-zA-Z0-9_đệ-]{0,8}"
    }

    fn iri_name() -> BoxedStrategy<String> {
        prop_oneof![
            "https://schema\\.org/[a-z]{1,8}",
            "ngsi-ld:[a-zA-Z]{1,8}",
            "urn:[a-z]{1,4}:[A-Za-z0-9.#/@-]{1,8}",
        ]
        .boxed()
    }

    fn attr_path() -> impl Strategy<Value = AttrPath> {
        let compound = prop::collection::vec("[A-Za-z0-9_@:-]{1,6}", 0..3);
        prop_oneof![
            (
                term_name(),
                prop::collection::vec(term_name(), 0..3),
                compound.clone()
            )
                .prop_map(|(attr, sub_attrs, compound)| AttrPath {
                    attr,
                    sub_attrs,
                    compound
                }),
            (iri_name(), compound).prop_map(|(attr, compound)| AttrPath {
                attr,
                sub_attrs: vec![],
                compound
            }),
        ]
    }

    fn number() -> impl Strategy<Value = QValue> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |n| n.is_finite()),
            (-1000i32..1000).prop_map(f64::from),
        ]
        .prop_map(QValue::Number)
    }

    fn datetime() -> impl Strategy<Value = QValue> {
        // Years 0001 to 9999, the range ISO 8601 writes with four digits.
        (
            -62_135_596_800i64..253_402_300_799,
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
        )
            .prop_map(|(s, n)| QValue::DateTime(DateTime::from_timestamp(s, n).unwrap()))
    }

    fn date_value() -> impl Strategy<Value = QValue> {
        (1i32..3_652_059)
            .prop_map(|d| QValue::Date(NaiveDate::from_num_days_from_ce_opt(d).unwrap()))
    }

    fn time_value() -> impl Strategy<Value = QValue> {
        (0u32..86_400, prop_oneof![Just(0u32), 0u32..1_000_000_000]).prop_map(|(s, n)| {
            QValue::Time(NaiveTime::from_num_seconds_from_midnight_opt(s, n).unwrap())
        })
    }

    fn comparable() -> BoxedStrategy<QValue> {
        prop_oneof![
            number(),
            any::<String>().prop_map(QValue::Text),
            datetime(),
            date_value(),
            time_value()
        ]
        .boxed()
    }

    fn scalar() -> BoxedStrategy<QValue> {
        prop_oneof![
            4 => comparable(),
            1 => any::<bool>().prop_map(QValue::Bool),
            1 => Just(QValue::Null),
            1 => "[a-z][a-z0-9+-]{0,5}:[A-Za-z0-9:_~/#?=-]{1,20}".prop_map(QValue::Uri),
        ]
        .boxed()
    }

    fn same_kind_range() -> impl Strategy<Value = QValue> {
        prop_oneof![
            (number(), number()),
            (
                any::<String>().prop_map(QValue::Text),
                any::<String>().prop_map(QValue::Text)
            ),
            (datetime(), datetime()),
            (date_value(), date_value()),
            (time_value(), time_value()),
        ]
        .prop_map(|(a, b)| range(a, b))
    }

    fn term() -> impl Strategy<Value = QTerm> {
        let set_op = prop_oneof![Just(Eq), Just(Ne)];
        let order_op = prop_oneof![Just(Lt), Just(Le), Just(Gt), Just(Ge)];
        let match_op = prop_oneof![Just(Matches), Just(NotMatches)];
        let set_value = prop_oneof![
            3 => scalar(),
            1 => same_kind_range(),
            1 => prop::collection::vec(scalar(), 2..4).prop_map(QValue::List),
        ];
        let regex =
            "\\^?[a-zA-Z0-9 \"\\\\]{0,6}(\\.\\*)?\\$?".prop_map(|s| s.replace('\\', "\\\\"));
        prop_oneof![
            attr_path().prop_map(QTerm::Exists),
            attr_path().prop_map(QTerm::NotExists),
            (attr_path(), set_op, set_value).prop_map(|(path, op, value)| QTerm::Compare {
                path,
                op,
                value
            }),
            (attr_path(), order_op, comparable()).prop_map(|(path, op, value)| QTerm::Compare {
                path,
                op,
                value
            }),
            (attr_path(), match_op, regex).prop_map(|(path, op, r)| QTerm::Compare {
                path,
                op,
                value: QValue::Text(r)
            }),
        ]
    }

    fn qexpr() -> impl Strategy<Value = QExpr> {
        crate::query::trees::tree(term().prop_map(QExpr::Term))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in any::<String>()) {
            crate::query::trees::parsed_prints_back(parse_q, &s)?;
        }

        #[test]
        fn never_panics_on_near_misses(s in "[a-z0-9() !;|,.=<>~\"\\[\\]:/#+\\-TZ\\\\]{0,40}") {
            crate::query::trees::parsed_prints_back(parse_q, &s)?;
        }

        #[test]
        fn never_panics_on_deep_nesting(open in 0usize..300, close in 0usize..300, mid in "[a;|()!=1]{0,5}") {
            let s = format!("{}{}{}", "(".repeat(open), mid, ")".repeat(close));
            let _ = parse_q(&s);
        }

        #[test]
        fn print_then_parse_round_trips(e in qexpr()) {
            crate::query::trees::prints_back(parse_q, &e)?;
        }
    }
}
