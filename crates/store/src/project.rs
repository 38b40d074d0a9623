//! Reading a stored entity document with only some of its attributes: the others are
//! scanned past without being built, so a reader of a few attributes of many entities
//! (a download) does not pay for the whole model of each one.

use std::collections::BTreeMap;
use std::fmt;

use ngsi::stored::Text;
use ngsi::{Attribute, Entity};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::{Documents, StoreError, StoreResult};

/// Parses a stored document: the whole entity, or only the attributes `only` names
/// (expanded names) beside its id, types, scopes and times.
pub(crate) fn parse(id_hint: &str, doc: &str, only: Option<&[String]>) -> StoreResult<Entity> {
    let parsed = match only {
        None => serde_json::from_str(doc),
        Some(names) => {
            let mut de = serde_json::Deserializer::from_str(doc);
            EntitySeed(names)
                .deserialize(&mut de)
                .and_then(|e| de.end().map(|()| e))
        }
    };
    parsed.map_err(|e| StoreError::Other(format!("corrupt entity {id_hint}: {e}")))
}

/// Adds a stored document to `docs` with only the attributes `only` names (all when
/// `None`): the kept parts are copied as they are, the others scanned past, nothing is
/// built.
pub(crate) fn copy(
    id_hint: &str,
    doc: &str,
    only: Option<&[String]>,
    docs: &mut Documents,
) -> StoreResult<()> {
    let Some(names) = only else {
        docs.push(doc);
        return Ok(());
    };
    docs.push_with(|out| {
        let mut de = serde_json::Deserializer::from_str(doc);
        DocSeed {
            names,
            level: Level::Entity,
            out,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
    })
    .map_err(|e| StoreError::Other(format!("corrupt entity {id_hint}: {e}")))
}

/// Leaves an entity (read whole, for the model to test) with the attributes `only`
/// names, as [`parse`] would have read it.
pub(crate) fn keep(entity: &mut Entity, only: Option<&[String]>) {
    if let Some(names) = only {
        entity.attrs.retain(|name, _| names.contains(name));
    }
}

/// The fields of a stored entity (as `ngsi::Entity` names them when serialized).
#[derive(serde::Deserialize)]
enum Field {
    #[serde(rename = "id")]
    Id,
    #[serde(rename = "t")]
    Types,
    #[serde(rename = "s")]
    Scopes,
    #[serde(rename = "a")]
    Attrs,
    #[serde(rename = "c")]
    Created,
    #[serde(rename = "m")]
    Modified,
    #[serde(other)]
    Other,
}

struct EntitySeed<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for EntitySeed<'_> {
    type Value = Entity;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entity, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntitySeed<'_> {
    type Value = Entity;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stored entity")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entity, A::Error> {
        let (mut id, mut types, mut scopes, mut attrs, mut created, mut modified) =
            (None, None, Vec::new(), None, None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id => id = Some(map.next_value()?),
                Field::Types => types = Some(map.next_value()?),
                Field::Scopes => scopes = map.next_value()?,
                Field::Attrs => attrs = Some(map.next_value_seed(AttrsSeed(self.0))?),
                Field::Created => created = Some(map.next_value()?),
                Field::Modified => modified = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Entity {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            types: types.ok_or_else(|| de::Error::missing_field("t"))?,
            scopes,
            attrs: attrs.ok_or_else(|| de::Error::missing_field("a"))?,
            created_at: created.ok_or_else(|| de::Error::missing_field("c"))?,
            modified_at: modified.ok_or_else(|| de::Error::missing_field("m"))?,
        })
    }
}

/// The attributes map, keeping only the names given.
struct AttrsSeed<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for AttrsSeed<'_> {
    type Value = BTreeMap<String, Vec<Attribute>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttrsSeed<'_> {
    type Value = BTreeMap<String, Vec<Attribute>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(kept) = map.next_key_seed(NameSeed(self.0))? {
            match kept {
                Some(name) => {
                    out.insert(name, map.next_value()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// An attribute's name: the index of the kept name it is, or `None` when it is not
/// kept (no allocation for the names skipped).
struct NameSeed<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|n| *n == name).cloned())
    }
}

/// Copies a JSON object of a stored document into `out`: the entity, whose attributes
/// map is copied with the attributes `names` names alone, or that map.
struct DocSeed<'n, 'o> {
    names: &'n [String],
    level: Level,
    out: &'o mut String,
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Entity,
    Attrs,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// Writes a JSON string (a name: one without quotes, backslashes or control
/// characters, the usual case, as it is).
fn push_json_str<E: de::Error>(out: &mut String, s: &str) -> Result<(), E> {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).map_err(E::custom)?);
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
    Ok(())
}

impl<'de> Visitor<'de> for DocSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self.level {
            Level::Entity => "a stored entity",
            Level::Attrs => "a map of attributes",
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        out.push('{');
        let mut first = true;
        // The members an entity cannot lack.
        let mut required = [("id", false), ("t", false), ("a", false)];
        while let Some(Text(key)) = map.next_key::<Text>()? {
            if self.level == Level::Attrs && !self.names.iter().any(|n| *n == key) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if let Some(seen) = required.iter_mut().find(|(name, _)| *name == key) {
                seen.1 = true;
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_json_str(out, &key)?;
            out.push(':');
            if self.level == Level::Entity && key == "a" {
                map.next_value_seed(DocSeed {
                    names: self.names,
                    level: Level::Attrs,
                    out: &mut *out,
                })?;
            } else {
                out.push_str(map.next_value::<&RawValue>()?.get());
            }
        }
        out.push('}');
        match required.iter().find(|(_, seen)| !seen) {
            Some((name, _)) if self.level == Level::Entity => Err(de::Error::missing_field(name)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn stored() -> (Entity, String) {
        let doc = serde_json::json!({
            "id": "urn:ngsi-ld:S:1",
            "t": ["https://example.org/S"],
            "s": ["/a/b"],
            "a": {
                "https://example.org/p": [{"k": "Property", "v": 1.5, "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"}],
                "https://example.org/q": [{"k": "Property", "v": {"deep": [1, {"x": "y"}]}, "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"},
                                          {"k": "Property", "v": 2, "d": "urn:d", "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"}],
                "https://example.org/r": [{"k": "Relationship", "v": "urn:x", "c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z"}]
            },
            "c": "2026-01-01T00:00:00Z",
            "m": "2026-01-03T00:00:00Z"
        })
        .to_string();
        (serde_json::from_str(&doc).unwrap(), doc)
    }

    /// A projection is the whole entity with the other attributes taken away.
    #[test]
    fn a_projection_is_the_entity_less_the_other_attributes() {
        let (whole, doc) = stored();
        for names in [
            vec![],
            vec!["https://example.org/q".to_string()],
            vec![
                "https://example.org/r".to_string(),
                "https://example.org/p".to_string(),
                "https://example.org/absent".to_string(),
            ],
        ] {
            let mut expected = whole.clone();
            keep(&mut expected, Some(&names));
            assert_eq!(parse("x", &doc, Some(&names)).unwrap(), expected);
            assert_eq!(expected.attrs.len(), names.len().min(2));
            // Copied as a document, it reads as the same entity.
            let mut docs = Documents::default();
            copy("x", &doc, Some(&names), &mut docs).unwrap();
            let copied: Vec<&str> = docs.iter().collect();
            assert_eq!(copied.len(), 1);
            assert_eq!(parse("x", copied[0], None).unwrap(), expected);
        }
        assert_eq!(parse("x", &doc, None).unwrap(), whole);
    }

    #[test]
    fn a_corrupt_document_is_an_error_naming_the_entity() {
        let (_, doc) = stored();
        let names = vec!["https://example.org/p".to_string()];
        for bad in [&doc[..doc.len() - 1], "{\"id\": \"x\"}", "[]"] {
            let err = parse("urn:bad", bad, Some(&names)).unwrap_err();
            assert!(err.to_string().contains("urn:bad"), "{err}");
            let mut docs = Documents::default();
            docs.push("{}");
            let err = copy("urn:bad", bad, Some(&names), &mut docs).unwrap_err();
            assert!(err.to_string().contains("urn:bad"), "{err}");
            // A failed copy leaves nothing behind.
            assert_eq!(docs.iter().collect::<Vec<_>>(), vec!["{}"]);
        }
    }
}
