//! Streaming JSON: the elements of a large array one by one (a top-level array, or
//! the array of one member of a top-level object, as GeoJSON's `features`), and JSON
//! Lines. Only one element is held at a time, and at most [`MAX_RECORD_BYTES`] of it.

use std::io::{self, BufRead};

use serde_json::Value;

use super::{Fatal, MAX_RECORD_BYTES, Position, Record, Records};

/// A buffered input read byte by byte, counting lines.
struct Bytes<R> {
    input: R,
    /// The line of the next byte (from 1).
    line: u64,
}

impl<R: BufRead> Bytes<R> {
    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn next(&mut self) -> io::Result<Option<u8>> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.input.consume(1);
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(b)
    }

    /// Skips white space; the next byte, not consumed.
    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.next()?;
                }
                // A byte-order mark at the start is white space too.
                Some(0xEF) if self.line == 1 => {
                    let buf = self.input.fill_buf()?;
                    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                        self.input.consume(3);
                    } else {
                        return Ok(Some(0xEF));
                    }
                }
                other => return Ok(other),
            }
        }
    }
}

/// One element of the array: its number (from 1), the line where it starts, and its
/// bytes (or why they were not kept).
pub struct Element {
    pub index: u64,
    pub line: u64,
    pub bytes: Result<Vec<u8>, String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    First,
    Next,
    Done,
}

/// The elements of a JSON array, read incrementally.
pub struct ArrayElements<R> {
    bytes: Bytes<R>,
    /// None: the document is the array; Some(name): the array is this member of the
    /// top-level object.
    member: Option<&'static str>,
    state: State,
    index: u64,
}

impl<R: BufRead> ArrayElements<R> {
    pub fn new(input: R, member: Option<&'static str>) -> Self {
        ArrayElements {
            bytes: Bytes { input, line: 1 },
            member,
            state: State::Start,
            index: 0,
        }
    }

    fn fatal(&self, message: impl Into<String>) -> Fatal {
        Fatal {
            at: Position::Line(self.bytes.line),
            message: message.into(),
        }
    }

    fn io(&self, e: io::Error) -> Fatal {
        self.fatal(format!("cannot read the input: {e}"))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), Fatal> {
        match self.bytes.skip_ws().map_err(|e| self.io(e))? {
            Some(b) if b == want => {
                self.bytes.next().map_err(|e| self.io(e))?;
                Ok(())
            }
            Some(b) => Err(self.fatal(format!(
                "malformed JSON: expected {what}, found {:?}",
                char::from(b)
            ))),
            None => Err(self.fatal(format!(
                "malformed JSON: the input ends where {what} was expected"
            ))),
        }
    }

    /// Reads a string whose opening quote is consumed; keeps at most `keep` bytes.
    fn string(&mut self, out: &mut Vec<u8>, keep: usize) -> Result<(), Fatal> {
        let start = self.bytes.line;
        let mut escaped = false;
        loop {
            let b = self
                .bytes
                .next()
                .map_err(|e| self.io(e))?
                .ok_or_else(|| Fatal {
                    at: Position::Line(start),
                    message: "malformed JSON: a string is not closed".into(),
                })?;
            if out.len() < keep {
                out.push(b);
            }
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => return Ok(()),
                _ => {}
            }
        }
    }

    /// Reads one value (the next non-blank byte starts it); keeps at most `keep`
    /// bytes of it in `out` and says whether it was kept whole.
    fn value(&mut self, out: &mut Vec<u8>, keep: usize) -> Result<bool, Fatal> {
        let start = self.bytes.line;
        let first = self.bytes.skip_ws().map_err(|e| self.io(e))?;
        let unclosed = || Fatal {
            at: Position::Line(start),
            message: "malformed JSON: the input ends inside a value".into(),
        };
        let mut overflow = false;
        let push = |out: &mut Vec<u8>, b: u8| {
            if out.len() < keep {
                out.push(b);
                true
            } else {
                false
            }
        };
        match first {
            None => return Err(unclosed()),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    let b = self
                        .bytes
                        .next()
                        .map_err(|e| self.io(e))?
                        .ok_or_else(unclosed)?;
                    overflow |= !push(out, b);
                    match b {
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b'"' => {
                            self.string(out, keep)?;
                            overflow |= out.len() >= keep;
                        }
                        _ => {}
                    }
                }
            }
            Some(b'"') => {
                self.bytes.next().map_err(|e| self.io(e))?;
                overflow |= !push(out, b'"');
                self.string(out, keep)?;
                overflow |= out.len() >= keep;
            }
            Some(_) => {
                // A number, true, false or null: up to the next delimiter.
                while let Some(b) = self.bytes.peek().map_err(|e| self.io(e))? {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.bytes.next().map_err(|e| self.io(e))?;
                    overflow |= !push(out, b);
                }
            }
        }
        Ok(!overflow)
    }

    /// Finds the array: the document itself, or the member that holds it.
    fn open(&mut self) -> Result<(), Fatal> {
        let Some(member) = self.member else {
            return self.expect(b'[', "'[' (a JSON array)");
        };
        self.expect(b'{', "'{' (a JSON object)")?;
        loop {
            if self.bytes.skip_ws().map_err(|e| self.io(e))? == Some(b'}') {
                return Err(self.fatal(format!("the object has no {member:?} member")));
            }
            self.expect(b'"', "a member name")?;
            let mut name = Vec::new();
            self.string(&mut name, 256)?;
            self.expect(b':', "':'")?;
            if name.strip_suffix(b"\"") == Some(member.as_bytes()) {
                return self.expect(b'[', &format!("an array as {member:?}"));
            }
            self.value(&mut Vec::new(), 0)?;
            match self.bytes.skip_ws().map_err(|e| self.io(e))? {
                Some(b',') => {
                    self.bytes.next().map_err(|e| self.io(e))?;
                }
                Some(b'}') => {
                    return Err(self.fatal(format!("the object has no {member:?} member")));
                }
                _ => return Err(self.fatal("malformed JSON: expected ',' or '}'")),
            }
        }
    }

    fn step(&mut self) -> Result<Option<Element>, Fatal> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    self.open()?;
                    self.state = State::First;
                }
                State::First | State::Next => {
                    let next = self.bytes.skip_ws().map_err(|e| self.io(e))?;
                    if next == Some(b']') && self.state == State::First {
                        self.bytes.next().map_err(|e| self.io(e))?;
                        return self.close();
                    }
                    if self.state == State::Next {
                        match next {
                            Some(b',') => {
                                self.bytes.next().map_err(|e| self.io(e))?;
                            }
                            Some(b']') => {
                                self.bytes.next().map_err(|e| self.io(e))?;
                                return self.close();
                            }
                            Some(_) => {
                                return Err(self.fatal(
                                    "malformed JSON: expected ',' or ']' after an element",
                                ));
                            }
                            None => {
                                return Err(self.fatal("the input ends inside the array"));
                            }
                        }
                    }
                    self.state = State::Next;
                    self.bytes.skip_ws().map_err(|e| self.io(e))?;
                    let line = self.bytes.line;
                    self.index += 1;
                    let mut out = Vec::new();
                    let whole = self.value(&mut out, MAX_RECORD_BYTES)?;
                    let bytes = if whole {
                        Ok(out)
                    } else {
                        Err(format!("larger than {MAX_RECORD_BYTES} bytes"))
                    };
                    return Ok(Some(Element {
                        index: self.index,
                        line,
                        bytes,
                    }));
                }
            }
        }
    }

    /// After the array: a top-level array must end the document.
    fn close(&mut self) -> Result<Option<Element>, Fatal> {
        self.state = State::Done;
        if self.member.is_none() && self.bytes.skip_ws().map_err(|e| self.io(e))?.is_some() {
            return Err(self.fatal("malformed JSON: data after the array"));
        }
        Ok(None)
    }
}

impl<R: BufRead> Iterator for ArrayElements<R> {
    type Item = Result<Element, Fatal>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

/// Parses the bytes of one record as JSON.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))
}

/// The entities of a JSON array.
pub fn array_records(input: impl BufRead + Send + 'static) -> Records {
    Box::new(ArrayElements::new(input, None).map(|e| {
        e.map(|e| Record {
            at: Position::Line(e.line),
            entity: e.bytes.and_then(|b| parse(&b)),
        })
    }))
}

/// The lines of a JSON Lines input, each at most [`MAX_RECORD_BYTES`]; blank lines are
/// skipped.
pub struct Lines<R> {
    input: R,
    line: u64,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines {
            input,
            line: 0,
            done: false,
        }
    }

    /// The rest of an overlong line, dropped; whether a newline ended it.
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                self.input.consume(i + 1);
                return Ok(());
            }
            let n = buf.len();
            self.input.consume(n);
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    /// The line number and the line (or why it was not kept).
    type Item = Result<(u64, Result<Vec<u8>, String>), Fatal>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line += 1;
            let mut buf = Vec::new();
            let limit = MAX_RECORD_BYTES as u64 + 1;
            let read = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut buf);
            let fatal = |e: io::Error, line| Fatal {
                at: Position::Line(line),
                message: format!("cannot read the input: {e}"),
            };
            match read {
                Err(e) => {
                    self.done = true;
                    return Some(Err(fatal(e, self.line)));
                }
                Ok(0) => self.done = true,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    } else if buf.len() > MAX_RECORD_BYTES {
                        if let Err(e) = self.skip_line() {
                            self.done = true;
                            return Some(Err(fatal(e, self.line)));
                        }
                        return Some(Ok((
                            self.line,
                            Err(format!("line longer than {MAX_RECORD_BYTES} bytes")),
                        )));
                    }
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok((self.line, Ok(buf))));
                }
            }
        }
        None
    }
}

/// The entities of a JSON Lines input.
pub fn line_records(input: impl BufRead + Send + 'static) -> Records {
    Box::new(Lines::new(input).map(|l| {
        l.map(|(line, bytes)| Record {
            at: Position::Line(line),
            entity: bytes.and_then(|b| parse(&b)),
        })
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The elements (as text, or the reason) and the final fault of an input.
    fn check(input: &str, member: Option<&'static str>) -> (Vec<(u64, String)>, Option<String>) {
        let mut out = Vec::new();
        for e in ArrayElements::new(input.as_bytes(), member) {
            match e {
                Ok(e) => out.push((
                    e.line,
                    e.bytes
                        .map(|b| String::from_utf8(b).unwrap())
                        .unwrap_or_else(|r| format!("!{r}")),
                )),
                Err(f) => return (out, Some(f.to_string())),
            }
        }
        (out, None)
    }

    #[test]
    fn splits_an_array_into_its_elements() {
        let (els, fault) = check("[{\"a\": \"]}\\\"\"},\n 1, \"x\", [2,[3]] ,null]", None);
        assert_eq!(fault, None);
        let texts: Vec<&str> = els.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["{\"a\": \"]}\\\"\"}", "1", "\"x\"", "[2,[3]]", "null"]
        );
        assert_eq!(els[1].0, 2);
        assert_eq!(check("  [ ] ", None), (vec![], None));
    }

    #[test]
    fn finds_the_array_of_a_member() {
        let doc = r#"{"type": "FeatureCollection", "bbox": [1, {"x": "}"}],
            "features": [{"id": 1}, {"id": 2}], "after": true}"#;
        let (els, fault) = check(doc, Some("features"));
        assert_eq!(fault, None);
        assert_eq!(els.len(), 2);
        assert_eq!(els[1], (2, "{\"id\": 2}".to_string()));
        let (_, fault) = check(r#"{"type": "Feature"}"#, Some("features"));
        assert_eq!(
            fault.as_deref(),
            Some("line 1: the object has no \"features\" member")
        );
    }

    #[test]
    fn reports_broken_structure_with_its_line() {
        let (els, fault) = check("[{\"a\": 1},\n{\"b\": 2} {\"c\": 3}]", None);
        assert_eq!(els.len(), 2);
        assert_eq!(
            fault.as_deref(),
            Some("line 2: malformed JSON: expected ',' or ']' after an element")
        );
        let (_, fault) = check("[{\"a\": \n1", None);
        assert_eq!(
            fault.as_deref(),
            Some("line 1: malformed JSON: the input ends inside a value")
        );
        let (_, fault) = check("{\"a\": 1}", None);
        assert!(fault.unwrap().contains("expected '['"));
        let (_, fault) = check("[1] [2]", None);
        assert_eq!(
            fault.as_deref(),
            Some("line 1: malformed JSON: data after the array")
        );
    }

    #[test]
    fn an_element_over_the_limit_is_refused_and_reading_goes_on() {
        let big = "x".repeat(MAX_RECORD_BYTES + 10);
        let doc = format!("[{{\"a\": \"{big}\"}}, {{\"b\": 1}}]");
        let (els, fault) = check(&doc, None);
        assert_eq!(fault, None);
        assert_eq!(els.len(), 2);
        assert!(els[0].1.starts_with("!larger than"), "{}", els[0].1);
        assert_eq!(els[1].1, "{\"b\": 1}");
    }

    #[test]
    fn json_lines_skip_blank_lines_and_refuse_long_ones() {
        let big = "y".repeat(MAX_RECORD_BYTES + 1);
        let input = format!("{{\"a\":1}}\r\n\n  \n{big}\n{{\"b\":2}}");
        let lines: Vec<_> = Lines::new(input.as_bytes()).map(|l| l.unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], (1, Ok(b"{\"a\":1}".to_vec())));
        assert_eq!(lines[1].0, 4);
        assert!(lines[1].1.is_err());
        assert_eq!(lines[2], (5, Ok(b"{\"b\":2}".to_vec())));
    }
}
