//! Machinery shared by the `q`, `scopeQ` and type-selection parsers: a byte-offset
//! cursor, the and/or/parenthesis skeleton the three languages have in common, and
//! the rules for attribute and type names.

use std::fmt;

use super::error::{MAX_NESTING, ParseError, check_len};

/// A position in the text being parsed; `pos` is always on a char boundary.
pub(crate) struct Cursor<'a> {
    pub text: &'a str,
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    pub fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    pub fn eat_str(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Whitespace is allowed between tokens: it is never meaningful, and tolerating
    /// it is kinder to people typing queries by hand.
    pub fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Advances over the longest run of chars satisfying `pred`, returning it.
    pub fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
        self.since(start)
    }

    /// The text from `start` to the cursor.
    pub fn since(&self, start: usize) -> &'a str {
        self.text.get(start..self.pos).unwrap_or("")
    }

    pub fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.pos, message)
    }

    /// "unexpected `x`" or "unexpected end of input", for error messages.
    pub fn describe_next(&self) -> String {
        match self.peek() {
            Some(c) => format!("unexpected {c:?}"),
            None => "unexpected end of input".to_string(),
        }
    }
}

/// The and/or skeleton of a boolean query, before it is turned into the tree of a
/// particular language. `And` and `Or` always have at least two children and never
/// a child of their own kind (nested groups are flattened as they are built).
pub(crate) enum Tree<T> {
    And(Vec<Tree<T>>),
    Or(Vec<Tree<T>>),
    Leaf(T),
}

impl<T> Tree<T> {
    /// Turns the skeleton into a language's own tree.
    pub fn fold<R>(
        self,
        and: &impl Fn(Vec<R>) -> R,
        or: &impl Fn(Vec<R>) -> R,
        leaf: &impl Fn(T) -> R,
    ) -> R {
        match self {
            Tree::And(items) => and(items.into_iter().map(|t| t.fold(and, or, leaf)).collect()),
            Tree::Or(items) => or(items.into_iter().map(|t| t.fold(and, or, leaf)).collect()),
            Tree::Leaf(t) => leaf(t),
        }
    }
}

/// How a language spells its boolean structure.
pub(crate) struct Grammar<'g> {
    /// What the language calls the whole thing, for error messages ("q", "scopeQ").
    pub what: &'g str,
    /// The chars that mean "or" (`;` always means "and").
    pub or_seps: &'g [char],
}

impl Grammar<'_> {
    fn is_separator(&self, c: char) -> bool {
        c == ';' || c == ')' || self.or_seps.contains(&c)
    }

    fn expected_separator(&self) -> String {
        let mut seps: Vec<String> = vec!["';'".into()];
        seps.extend(self.or_seps.iter().map(|c| format!("{c:?}")));
        seps.join(", ")
    }
}

type LeafParser<'l, T> = dyn FnMut(&mut Cursor) -> Result<T, ParseError> + 'l;

/// Parses `leaf (';' leaf)* ( or leaf (';' leaf)* )*` with parentheses, where `;`
/// binds tighter than "or". The leaf parser is called with the cursor on the first
/// char of a leaf, and must leave it just after it.
pub(crate) fn parse_tree<T>(
    text: &str,
    grammar: &Grammar,
    leaf: &mut LeafParser<'_, T>,
) -> Result<Tree<T>, ParseError> {
    check_len(text)?;
    let mut c = Cursor::new(text);
    c.skip_ws();
    if c.at_end() {
        return Err(c.error(format!("empty {} expression", grammar.what)));
    }
    let mut parser = TreeParser { c, grammar, leaf };
    let tree = parser.or(0)?;
    let mut c = parser.c;
    c.skip_ws();
    match c.peek() {
        None => Ok(tree),
        Some(')') => Err(c.error("unbalanced ')': no '(' to close")),
        Some(_) => Err(c.error(format!(
            "{}; expected {} or the end of the {}",
            c.describe_next(),
            grammar.expected_separator(),
            grammar.what
        ))),
    }
}

/// What one [`parse_tree`] call works with: the text, the language and its leaves.
struct TreeParser<'p, 'l, T> {
    c: Cursor<'p>,
    grammar: &'p Grammar<'p>,
    leaf: &'p mut LeafParser<'l, T>,
}

impl<T> TreeParser<'_, '_, T> {
    /// `and (or and)*`, at `depth` parentheses.
    fn or(&mut self, depth: usize) -> Result<Tree<T>, ParseError> {
        let mut items = Vec::new();
        push_flat(&mut items, self.and(depth)?, false);
        loop {
            self.c.skip_ws();
            match self.c.peek() {
                Some(sep) if self.grammar.or_seps.contains(&sep) => {
                    self.c.bump();
                    push_flat(&mut items, self.and(depth)?, false);
                }
                _ => break,
            }
        }
        Ok(group(items, Tree::Or))
    }

    /// `factor (';' factor)*`.
    fn and(&mut self, depth: usize) -> Result<Tree<T>, ParseError> {
        let mut items = Vec::new();
        push_flat(&mut items, self.factor(depth)?, true);
        loop {
            self.c.skip_ws();
            if !self.c.eat(';') {
                break;
            }
            push_flat(&mut items, self.factor(depth)?, true);
        }
        Ok(group(items, Tree::And))
    }

    /// A parenthesised group or a leaf.
    fn factor(&mut self, depth: usize) -> Result<Tree<T>, ParseError> {
        self.c.skip_ws();
        match self.c.peek() {
            Some('(') => {
                let open = self.c.pos;
                if depth >= MAX_NESTING {
                    return Err(self
                        .c
                        .error(format!("parentheses nested deeper than {MAX_NESTING}")));
                }
                self.c.bump();
                let inner = self.or(depth + 1)?;
                self.c.skip_ws();
                if self.c.eat(')') {
                    Ok(inner)
                } else if self.c.at_end() {
                    Err(ParseError::new(open, "unbalanced '(': never closed"))
                } else {
                    Err(self.c.error(format!(
                        "{}; expected {} or ')'",
                        self.c.describe_next(),
                        self.grammar.expected_separator()
                    )))
                }
            }
            None => Err(self.c.error(format!(
                "unexpected end of the {}; expected a term",
                self.grammar.what
            ))),
            Some(ch) if self.grammar.is_separator(ch) => Err(self
                .c
                .error(format!("{}; expected a term", self.c.describe_next()))),
            Some(_) => (self.leaf)(&mut self.c).map(Tree::Leaf),
        }
    }
}

/// Adds `item` to the children of an and (`into_and`) or an or, merging a child of
/// the same kind into its parent: `(a;b);c` is `a;b;c`.
fn push_flat<T>(items: &mut Vec<Tree<T>>, item: Tree<T>, into_and: bool) {
    match item {
        Tree::And(inner) if into_and => items.extend(inner),
        Tree::Or(inner) if !into_and => items.extend(inner),
        other => items.push(other),
    }
}

fn group<T>(mut items: Vec<Tree<T>>, make: fn(Vec<Tree<T>>) -> Tree<T>) -> Tree<T> {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    make(items)
}

/// Writes the children of an and/or joined by `sep`, parenthesising those for which
/// `parens` says so (an "or" inside an "and", as `;` binds tighter).
pub(crate) fn write_group<N: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: &[N],
    sep: &str,
    parens: impl Fn(&N) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if parens(item) {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

/// Chars that may appear in a name written as a URI or compact IRI. The reserved
/// chars of the query languages are left out, so that a name ends where the
/// operator, bracket or separator after it begins.
pub(crate) fn is_iri_char(c: char) -> bool {
    !c.is_control() && !c.is_whitespace() && !"\"<>\\^`{}|()[];,=!~".contains(c)
}

/// Chars of a plain (not yet expanded) term such as `temperature` or `Road_Segment`.
pub(crate) fn is_term_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Checks that `name`, found at byte `offset`, is a term (no `.`), or a URI or compact
/// IRI (it contains `:`, in which case any IRI char is allowed).
pub(crate) fn check_name(name: &str, offset: usize, what: &str) -> Result<(), ParseError> {
    if name.is_empty() {
        return Err(ParseError::new(offset, format!("expected {what}")));
    }
    if name.contains(':') {
        if name.starts_with(':') {
            return Err(ParseError::new(
                offset,
                format!("{what} cannot start with ':'"),
            ));
        }
        if let Some((i, c)) = name.char_indices().find(|&(_, c)| !is_iri_char(c)) {
            return Err(ParseError::new(
                offset + i,
                format!("invalid char {c:?} in {what}"),
            ));
        }
        return Ok(());
    }
    if let Some((i, c)) = name.char_indices().find(|&(_, c)| !is_term_char(c)) {
        return Err(ParseError::new(
            offset + i,
            format!(
                "invalid char {c:?} in {what} (a term has letters, digits, '_' and '-'; a URI has ':')"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

/// `-?digits(.digits)?([eE][+-]?digits)?`: checked before `str::parse`, which would
/// also take `inf`, `NaN`, `.5` or `1.`.
pub(crate) fn is_number_shape(s: &str) -> bool {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return false;
    }
    let mut rest = &b[int_len..];
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &tail[n..];
    }
    if let [b'e' | b'E', tail @ ..] = rest {
        let tail = match tail {
            [b'+' | b'-', t @ ..] => t,
            t => t,
        };
        return !tail.is_empty() && digits(tail);
    }
    rest.is_empty()
}
