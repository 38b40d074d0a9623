//! An entity's stored form (the serde form of [`Entity`](crate::Entity)) read without
//! building its model: a reader of a few attributes of many entities (a CSV download)
//! takes each one's kind and value as text borrowed from the document, and never
//! allocates an attribute.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::AttrKind;

/// What is read of one stored entity: its id, its types as stored (a JSON array of
/// expanded names), and for each name asked the instance a table shows.
#[derive(Debug)]
pub struct Lean<'a> {
    pub id: Cow<'a, str>,
    pub types: &'a RawValue,
    /// In the order of the names asked; `None` where the entity has no such attribute.
    pub attrs: Vec<Option<LeanAttr<'a>>>,
}

/// One attribute instance: its kind and its stored value, unparsed.
#[derive(Debug, Clone, Copy)]
pub struct LeanAttr<'a> {
    pub kind: AttrKind,
    pub value: &'a RawValue,
}

/// Reads a stored document: `names` are the expanded names of the attributes wanted;
/// of an attribute with several instances, the default one (without a datasetId) is
/// taken, else the first.
pub fn read_lean<'a>(doc: &'a str, names: &[String]) -> serde_json::Result<Lean<'a>> {
    let mut de = serde_json::Deserializer::from_str(doc);
    let lean = LeanSeed(names).deserialize(&mut de)?;
    de.end()?;
    Ok(lean)
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

struct LeanSeed<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for LeanSeed<'_> {
    type Value = Lean<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Lean<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LeanSeed<'_> {
    type Value = Lean<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stored entity")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lean<'de>, A::Error> {
        let (mut id, mut types, mut attrs) = (None, None, None);
        while let Some(Text(key)) = map.next_key::<Text>()? {
            match &*key {
                "id" => id = Some(map.next_value::<Text>()?.0),
                "t" => types = Some(map.next_value::<&RawValue>()?),
                "a" => attrs = Some(map.next_value_seed(AttrsSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lean {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            types: types.ok_or_else(|| de::Error::missing_field("t"))?,
            attrs: attrs.ok_or_else(|| de::Error::missing_field("a"))?,
        })
    }
}

/// The attributes map: the instances of the names asked, in their order.
struct AttrsSeed<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for AttrsSeed<'_> {
    type Value = Vec<Option<LeanAttr<'de>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttrsSeed<'_> {
    type Value = Vec<Option<LeanAttr<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![None; self.0.len()];
        while let Some(Text(name)) = map.next_key::<Text>()? {
            match self.0.iter().position(|n| *n == name) {
                Some(i) => out[i] = map.next_value_seed(Shown)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A stored instance, as much of it as is read.
#[derive(Deserialize)]
struct Instance<'a> {
    #[serde(rename = "k")]
    kind: AttrKind,
    #[serde(rename = "v", borrow)]
    value: &'a RawValue,
    #[serde(rename = "d", default)]
    dataset_id: Option<IgnoredAny>,
}

/// Of an attribute's instances, the one shown: the default, else the first.
struct Shown;

impl<'de> DeserializeSeed<'de> for Shown {
    type Value = Option<LeanAttr<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Shown {
    type Value = Option<LeanAttr<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of attribute instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (mut first, mut default) = (None, None);
        while let Some(i) = seq.next_element::<Instance>()? {
            let attr = LeanAttr {
                kind: i.kind,
                value: i.value,
            };
            if default.is_none() && i.dataset_id.is_none() {
                default = Some(attr);
            }
            first.get_or_insert(attr);
        }
        Ok(default.or(first))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        assert_eq!(lean.types.get(), r#"["https://example.org/S"]"#);
        let shown: Vec<_> = lean
            .attrs
            .iter()
            .map(|a| a.map(|a| (a.kind, a.value.get().to_string())))
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
        for bad in [&DOC[..DOC.len() - 1], r#"{"id": "x"}"#, "[]", "{} {}"] {
            assert!(read_lean(bad, &[]).is_err(), "{bad}");
        }
    }
}
