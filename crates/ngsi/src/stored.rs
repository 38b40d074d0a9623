//! An entity's stored form (the serde form of [`Entity`](crate::Entity)) read without
//! building its model: a reader of a few attributes of many entities (a CSV download)
//! takes each one's kind and value as text borrowed from the document, and never
//! allocates an attribute.
//!
//! The document is read by a scanner of its bytes rather than by serde: what is not
//! read (the other attributes, the times, the sub-attributes) is only stepped over,
//! string by string and bracket by bracket, which is several times quicker than
//! serde's visit of each value. What it steps over it checks only as far as its
//! shape goes (strings closed, brackets paired, no more depth than serde allows):
//! stored documents are written by serde or by PostgreSQL, never by hand.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::AttrKind;

/// What is read of one stored entity: its id, its types as stored (a JSON array of
/// expanded names), and for each name asked the instance a table shows.
#[derive(Debug)]
pub struct Lean<'a> {
    pub id: Cow<'a, str>,
    /// The JSON text of the types.
    pub types: &'a str,
    /// In the order of the names asked; `None` where the entity has no such attribute.
    pub attrs: Vec<Option<LeanAttr<'a>>>,
}

/// One attribute instance: its kind and the JSON text of its stored value, unparsed.
#[derive(Debug, Clone, Copy)]
pub struct LeanAttr<'a> {
    pub kind: AttrKind,
    pub value: &'a str,
}

/// A stored document that does not read as an entity: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.at)
    }
}

impl std::error::Error for Corrupt {}

/// Reads a stored document: `names` are the expanded names of the attributes wanted;
/// of an attribute with several instances, the default one (without a datasetId) is
/// taken, else the first.
pub fn read_lean<'a>(doc: &'a str, names: &[String]) -> Result<Lean<'a>, Corrupt> {
    let mut s = Scan { doc, at: 0 };
    let (mut id, mut types, mut attrs) = (None, None, None);
    s.object(|s, key| {
        match &*key {
            "id" => id = Some(s.string()?),
            "t" => types = Some(s.value()?),
            "a" => attrs = Some(s.attributes(names)?),
            _ => {
                s.value()?;
            }
        }
        Ok(())
    })?;
    s.space();
    if s.at != doc.len() {
        return Err(s.corrupt("text after the document"));
    }
    let missing = |reason| Corrupt { at: 0, reason };
    Ok(Lean {
        id: id.ok_or_else(|| missing("no id"))?,
        types: types.ok_or_else(|| missing("no types"))?,
        attrs: attrs.ok_or_else(|| missing("no attributes"))?,
    })
}

/// The text of a JSON string value (quotes included): borrowed from it unless it
/// holds escapes.
pub fn string_text(json: &str) -> Result<Cow<'_, str>, Corrupt> {
    let mut s = Scan { doc: json, at: 0 };
    let text = s.string()?;
    if s.at != json.len() {
        return Err(s.corrupt("text after the string"));
    }
    Ok(text)
}

/// The first two coordinates (longitude and latitude, their JSON text) of a stored
/// GeoJSON geometry whose type is `Point`; `None` for any other value, or a point of
/// fewer coordinates.
pub fn point_coordinates(json: &str) -> Option<(&str, &str)> {
    let mut s = Scan { doc: json, at: 0 };
    let (mut point, mut coordinates) = (false, None);
    s.object(|s, key| {
        match &*key {
            "type" => point = s.string()? == "Point",
            "coordinates" => {
                let mut first = Vec::with_capacity(2);
                s.array(|s| {
                    let v = s.value()?;
                    if first.len() < 2 {
                        first.push(v);
                    }
                    Ok(())
                })?;
                coordinates = Some(first);
            }
            _ => {
                s.value()?;
            }
        }
        Ok(())
    })
    .ok()?;
    s.space();
    match coordinates.as_deref() {
        Some(&[lon, lat]) if point && s.at == json.len() => Some((lon, lat)),
        _ => None,
    }
}

/// Serde's limit on the nesting of a JSON document, kept by the scanner too.
const MAX_DEPTH: u32 = 128;

/// A position in a document, moved forward by what it reads.
struct Scan<'a> {
    doc: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn corrupt(&self, reason: &'static str) -> Corrupt {
        Corrupt {
            at: self.at,
            reason,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.doc.as_bytes()
    }

    /// Steps over JSON's whitespace.
    fn space(&mut self) {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.bytes().get(self.at).copied()
    }

    /// Takes `byte`, after whitespace.
    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), Corrupt> {
        if self.peek() != Some(byte) {
            return Err(self.corrupt(reason));
        }
        self.at += 1;
        Ok(())
    }

    /// Steps from an opening quote to after its closing one; whether the string held
    /// an escape.
    fn skip_string(&mut self) -> Result<bool, Corrupt> {
        let bytes = self.bytes();
        let mut i = self.at + 1;
        let mut escaped = false;
        loop {
            i = next_special(bytes, i);
            match bytes.get(i) {
                Some(b'"') => break,
                // An escape's next byte is never the closing quote (`\uXXXX` holds
                // hex digits alone).
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(_) => {
                    self.at = i;
                    return Err(self.corrupt("a control character in a string"));
                }
                None => {
                    self.at = bytes.len();
                    return Err(self.corrupt("an unclosed string"));
                }
            }
        }
        self.at = i + 1;
        Ok(escaped)
    }

    /// A string value, after whitespace.
    fn string(&mut self) -> Result<Cow<'a, str>, Corrupt> {
        if self.peek() != Some(b'"') {
            return Err(self.corrupt("a string expected"));
        }
        let start = self.at;
        let escaped = self.skip_string()?;
        let text = &self.doc[start..self.at];
        if !escaped {
            return Ok(Cow::Borrowed(&text[1..text.len() - 1]));
        }
        // Escapes are rare in names and ids: serde decodes them.
        serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|_| Corrupt {
                at: start,
                reason: "a bad escape in a string",
            })
    }

    /// Steps over a value, after whitespace, and gives its text.
    fn value(&mut self) -> Result<&'a str, Corrupt> {
        let start = match self.peek() {
            Some(_) => self.at,
            None => return Err(self.corrupt("a value expected")),
        };
        let bytes = self.bytes();
        match bytes[start] {
            b'"' => {
                self.skip_string()?;
            }
            b'{' | b'[' => self.skip_nested()?,
            b'-' | b'0'..=b'9' => {
                self.at += 1;
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = bytes.get(self.at)
                {
                    self.at += 1;
                }
                if !bytes[self.at - 1].is_ascii_digit() {
                    return Err(self.corrupt("a bad number"));
                }
            }
            _ => {
                let rest = &bytes[start..];
                let word = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|w| rest.starts_with(w))
                    .ok_or_else(|| self.corrupt("a value expected"))?;
                self.at += word.len();
            }
        }
        Ok(&self.doc[start..self.at])
    }

    /// Steps over an object or array, pairing its brackets: a bit a level says which
    /// bracket is open (1 for an object).
    fn skip_nested(&mut self) -> Result<(), Corrupt> {
        let bytes = self.bytes();
        let mut open: u128 = 0;
        let mut depth = 0u32;
        loop {
            match bytes.get(self.at) {
                Some(b'"') => {
                    self.skip_string()?;
                    continue;
                }
                Some(&b @ (b'{' | b'[')) => {
                    if depth == MAX_DEPTH {
                        return Err(self.corrupt("nested too deep"));
                    }
                    open = (open << 1) | u128::from(b == b'{');
                    depth += 1;
                }
                Some(&b @ (b'}' | b']')) => {
                    if depth == 0 || (open & 1 == 1) != (b == b'}') {
                        return Err(self.corrupt("an unpaired bracket"));
                    }
                    open >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(self.corrupt("an unclosed object or array")),
            }
            self.at += 1;
        }
    }

    /// Reads an object, after whitespace: `member` reads the value of each key.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), Corrupt>,
    ) -> Result<(), Corrupt> {
        self.items((b'{', b'}'), |s| {
            let key = s.string()?;
            s.expect(b':', "a colon expected")?;
            member(s, key)
        })
    }

    /// Reads an array, after whitespace: `element` reads each element.
    fn array(
        &mut self,
        element: impl FnMut(&mut Self) -> Result<(), Corrupt>,
    ) -> Result<(), Corrupt> {
        self.items((b'[', b']'), element)
    }

    /// Reads the items between a pair of brackets, separated by commas.
    fn items(
        &mut self,
        (open, close): (u8, u8),
        mut item: impl FnMut(&mut Self) -> Result<(), Corrupt>,
    ) -> Result<(), Corrupt> {
        self.expect(open, "an object or array expected")?;
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.corrupt("a comma or the end expected")),
            }
        }
    }

    /// The attributes map: the instance shown of each name asked, in their order.
    fn attributes(&mut self, names: &[String]) -> Result<Vec<Option<LeanAttr<'a>>>, Corrupt> {
        let mut out = vec![None; names.len()];
        self.object(|s, name| {
            match names.iter().position(|n| *n == name) {
                Some(i) => out[i] = s.shown()?,
                None => {
                    s.value()?;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Of an attribute's instances, the one shown: the default, else the first.
    fn shown(&mut self) -> Result<Option<LeanAttr<'a>>, Corrupt> {
        let (mut first, mut default) = (None, None);
        self.array(|s| {
            let (mut kind, mut value, mut dataset) = (None, None, false);
            s.object(|s, key| {
                match &*key {
                    "k" => {
                        let at = s.at;
                        kind = Some(attr_kind(&s.string()?).ok_or(Corrupt {
                            at,
                            reason: "an unknown attribute kind",
                        })?);
                    }
                    "v" => value = Some(s.value()?),
                    // A datasetId of null is none, as serde reads it.
                    "d" => dataset = s.value()? != "null",
                    _ => {
                        s.value()?;
                    }
                }
                Ok(())
            })?;
            let attr = match (kind, value) {
                (Some(kind), Some(value)) => LeanAttr { kind, value },
                _ => return Err(s.corrupt("an attribute instance without kind or value")),
            };
            if default.is_none() && !dataset {
                default = Some(attr);
            }
            first.get_or_insert(attr);
            Ok(())
        })?;
        Ok(default.or(first))
    }
}

/// The first byte from `from` on that a string cannot hold as it is: a quote, a
/// backslash or a control character (`bytes.len()` when there is none). Eight bytes
/// are tested at a time: in a word, a byte below `n` is found by the borrow of
/// subtracting `n` from each byte, which is exact for the lowest one found.
fn next_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        let w = u64::from_le_bytes(eight);
        let found = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// An attribute kind by its stored name.
fn attr_kind(name: &str) -> Option<AttrKind> {
    AttrKind::deserialize(de::value::BorrowedStrDeserializer::<de::value::Error>::new(
        name,
    ))
    .ok()
}

/// A string, borrowed from the document unless it holds escapes.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    const DOC: &str = r#"{"id": "urn:ngsi-ld:S:\"1\"", "t": ["https://example.org/S"], "s": ["/a"],
        "a": {"https://example.org/p": [{"k": "Property", "v": 1.5, "d": "urn:d", "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"},
                                        {"k": "Property", "v": {"deep": [1, {"x": "y"}]}, "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"}],
              "https://example.org/q": [{"k": "VocabProperty", "v": "https://example.org/v", "d": "urn:a", "sub": {"x": [{"k": "Property", "v": 1}]}, "c": "x", "m": "y"},
                                        {"k": "Relationship", "v": "urn:x", "d": "urn:b", "c": "x", "m": "y"}],
              "https://example.org/secret": [{"k": "Property", "v": "hidden", "c": "x", "m": "y"}]},
        "c": "2026-01-01T00:00:00Z", "m": "2026-01-03T00:00:00Z"}"#;

    #[test]
    fn reads_the_default_instance_else_the_first_of_the_names_asked() {
        let names = [
            "https://example.org/q".to_string(),
            "https://example.org/absent".to_string(),
            "https://example.org/p".to_string(),
        ];
        let lean = read_lean(DOC, &names).unwrap();
        assert_eq!(lean.id, "urn:ngsi-ld:S:\"1\"");
        assert_eq!(lean.types, r#"["https://example.org/S"]"#);
        let shown: Vec<_> = lean
            .attrs
            .iter()
            .map(|a| a.map(|a| (a.kind, a.value.to_string())))
            .collect();
        assert_eq!(
            shown,
            vec![
                Some((AttrKind::VocabProperty, "\"https://example.org/v\"".into())),
                None,
                Some((AttrKind::Property, r#"{"deep": [1, {"x": "y"}]}"#.into())),
            ]
        );
        // What is not asked is not read.
        let none = read_lean(DOC, &[]).unwrap();
        assert!(none.attrs.is_empty());
    }

    #[test]
    fn a_document_that_is_not_an_entity_is_an_error() {
        let p = r#"{"id": "x", "t": [], "a": {"p": [{"k": "Property", "v": 1}]}}"#;
        assert!(read_lean(p, &["p".into()]).is_ok());
        for bad in [
            &DOC[..DOC.len() - 1],
            r#"{"id": "x"}"#,
            "[]",
            "{} {}",
            "",
            r#"{"id": 1, "t": [], "a": {}}"#,
            r#"{"id": "x", "t": [}, "a": {}}"#,
            r#"{"id": "x", "t": [], "a": {"p": [{"k": "Property"}]}}"#,
            r#"{"id": "x", "t": [], "a": {"p": [{"k": "Guess", "v": 1}]}}"#,
            r#"{"id": "x", "t": [], "a": {"p": [{"k": "Property", "v": -}]}}"#,
            r#"{"id": "x", "t": [], "a": {"p": [{"k": "Property", "v": nul}]}}"#,
            r#"{"id": "x", "t": [], "a": {"p": [{"k": "Property", "v": "a"}] "q": []}}"#,
            r#"{"id": "x\u", "t": [], "a": {}}"#,
            "{\"id\": \"x\ny\", \"t\": [], \"a\": {}}",
        ] {
            assert!(read_lean(bad, &["p".into()]).is_err(), "{bad}");
        }
        // Nesting beyond serde's own limit is refused by both.
        let deep = format!(
            r#"{{"id": "x", "t": [], "a": {{}}, "z": {}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(read_lean(&deep, &[]).is_err());
    }

    #[test]
    fn a_string_value_reads_as_its_text() {
        assert_eq!(string_text(r#""plain""#).unwrap(), "plain");
        assert!(matches!(
            string_text(r#""plain""#).unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            string_text(r#""a\"b\\c\u00e9\n""#).unwrap(),
            "a\"b\\c\u{e9}\n"
        );
        for bad in [r#""open"#, r#""a" "b""#, "1", r#""\x""#] {
            assert!(string_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_point_reads_as_its_first_two_coordinates() {
        for (json, point) in [
            (
                r#"{"type": "Point", "coordinates": [106.7, -16.75, 3]}"#,
                Some(("106.7", "-16.75")),
            ),
            (
                r#"{"coordinates": ["a", {"b": 1}], "type": "Poi\u006et"}"#,
                Some((r#""a""#, r#"{"b": 1}"#)),
            ),
            (r#"{"type": "Point", "coordinates": [1]}"#, None),
            (
                r#"{"type": "Polygon", "coordinates": [[1, 2], [3, 4]]}"#,
                None,
            ),
            (r#"{"type": 1, "coordinates": [1, 2]}"#, None),
            (r#"{"type": "Point", "coordinates": {"x": 1}}"#, None),
            (r#"{"type": "Point"}"#, None),
            (r#"{"type": "Point", "coordinates": [1, 2]"#, None),
            ("[1, 2]", None),
        ] {
            assert_eq!(point_coordinates(json), point, "{json}");
        }
    }

    #[test]
    fn the_first_special_byte_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', b'\n', 0, 0x1f] {
                    // Bytes beside the specials (and above 0x7f) that are not special.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0x21, 0x5d, 0xc3, 0x7f][i % 5])
                        .collect();
                    if at < len {
                        bytes[at] = special;
                        // A second one after it does not hide the first.
                        if at + 1 < len {
                            bytes[at + 1] = b'"';
                        }
                    }
                    assert_eq!(next_special(&bytes, 0), at, "{bytes:?}");
                }
            }
        }
    }

    const KINDS: [&str; 8] = [
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "ListProperty",
        "JsonProperty",
        "VocabProperty",
        "ListRelationship",
    ];

    /// Names of attributes, some asked, some with characters JSON escapes.
    const NAMES: [&str; 6] = [
        "https://ex.org/p",
        "https://ex.org/q",
        "https://ex.org/\"quoted\"",
        "https://ex.org/tab\tand\\",
        "https://ex.org/other",
        "https://ex.org/đi",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z/:.]{0,12}",
            "[\"\\\\/\\{\\}\\[\\],: a\u{0}-\u{1f}é😀\u{2028}]{0,12}",
            any::<String>(),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn instance() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(&KINDS[..]),
            json_value(),
            prop::option::of(prop_oneof![Just(Value::Null), text().prop_map(Value::from)]),
            prop::option::of(json_value()),
        )
            .prop_map(|(k, v, d, sub)| {
                let mut i = Map::new();
                // Members in a varying order, the kind and value not always first.
                if let Some(sub) = sub {
                    i.insert(
                        "sub".into(),
                        json!({"https://ex.org/p": [{"k": "Property", "v": sub}]}),
                    );
                }
                i.insert("k".into(), k.into());
                if let Some(d) = d {
                    i.insert("d".into(), d);
                }
                i.insert("v".into(), v);
                i.insert("c".into(), "2026-01-01T00:00:00Z".into());
                Value::Object(i)
            })
    }

    fn document() -> impl Strategy<Value = Value> {
        (
            text(),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(
                (
                    prop::sample::select(&NAMES[..]),
                    prop::collection::vec(instance(), 0..4),
                ),
                0..6,
            ),
            prop::option::of(json_value()),
            any::<bool>(),
        )
            .prop_map(|(id, types, attrs, extra, attrs_first)| {
                let attrs: Map<String, Value> = attrs
                    .into_iter()
                    .map(|(n, is)| (n.to_string(), Value::Array(is)))
                    .collect();
                let mut doc = Map::new();
                if attrs_first {
                    doc.insert("a".into(), Value::Object(attrs.clone()));
                }
                if let Some(extra) = extra {
                    doc.insert("x".into(), extra);
                }
                doc.insert("id".into(), id.into());
                doc.insert("t".into(), types.into());
                doc.insert("a".into(), Value::Object(attrs));
                doc.insert("m".into(), "2026-01-02T00:00:00Z".into());
                Value::Object(doc)
            })
    }

    /// What serde reads of a document: the default instance, else the first.
    fn expected(doc: &Value, name: &str) -> Option<(AttrKind, Value)> {
        let instances = doc["a"].get(name)?.as_array()?;
        let shown = instances
            .iter()
            .find(|i| i.get("d").is_none_or(Value::is_null))
            .or(instances.first())?;
        Some((
            serde_json::from_value(shown["k"].clone()).unwrap(),
            shown["v"].clone(),
        ))
    }

    proptest! {
        #[test]
        fn reads_what_serde_reads(doc in document(), pretty in any::<bool>(), asked in prop::sample::subsequence(&NAMES[..], 0..=NAMES.len())) {
            let text = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                serde_json::to_string(&doc).unwrap()
            };
            // Compared with serde's read of the text (serde's parse of a float is not
            // always the float written).
            let doc: Value = serde_json::from_str(&text).unwrap();
            let names: Vec<String> = asked.iter().map(|n| n.to_string()).collect();
            let lean = read_lean(&text, &names).unwrap();
            prop_assert_eq!(&*lean.id, doc["id"].as_str().unwrap());
            prop_assert_eq!(serde_json::from_str::<Value>(lean.types).unwrap(), doc["t"].clone());
            for (name, attr) in names.iter().zip(&lean.attrs) {
                let read = attr.map(|a| (a.kind, serde_json::from_str::<Value>(a.value).unwrap()));
                prop_assert_eq!(read, expected(&doc, name));
            }
        }

        #[test]
        fn a_cut_document_is_an_error(doc in document(), cut in any::<prop::sample::Index>()) {
            let text = serde_json::to_string(&doc).unwrap();
            let mut end = cut.index(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            prop_assert!(read_lean(&text[..end], &[NAMES[0].to_string()]).is_err());
        }

        #[test]
        fn never_panics_on_a_changed_document(doc in document(), at in any::<prop::sample::Index>(), with in "[\"\\\\{}\\[\\],: a0-]") {
            let mut text = serde_json::to_string(&doc).unwrap();
            let mut at = at.index(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, &with);
            let _ = read_lean(&text, &[NAMES[0].to_string(), NAMES[2].to_string()]);
        }
    }
}
