//! `orderBy` (NGSI-LD v1.9.1): the order a query answers its entities in.
//!
//! An `orderBy` is a list of keys, each an entity member (`id`, `type`, `createdAt`,
//! `modifiedAt`) or an attribute path as `q` writes it (`name`, `name.subProperty`,
//! `name.observedAt`, `address[city]`), optionally followed by `;asc` (the default) or
//! `;desc`. Entities compare key by key; those of equal keys by id, so that pages of
//! the same query never overlap.

use std::cmp::Ordering;

use serde_json::Value;

use crate::entity::{Entity, format_time, parse_time};
use crate::error::{Error, Result};
use crate::filter::targets;
use crate::query::ast::{AttrPath, QExpr, QTerm};
use crate::query::parse_q;

/// Most keys in one `orderBy`.
pub const MAX_KEYS: usize = 8;

/// What a key reads of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Id,
    Type,
    CreatedAt,
    ModifiedAt,
    /// The values an attribute path points at (names expanded once mapped).
    Path(AttrPath),
}

/// A parsed `orderBy`: keys with their direction (true for descending).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub keys: Vec<(SortKey, bool)>,
}

impl OrderBy {
    /// Reads an `orderBy` parameter; attribute names are as written (see
    /// [`OrderBy::map_attrs`]).
    pub fn parse(text: &str) -> Result<OrderBy> {
        let mut keys = Vec::new();
        for item in text.split(',') {
            let (path, direction) = match item.split_once(';') {
                Some((path, d)) => (path.trim(), d.trim()),
                None => (item.trim(), "asc"),
            };
            let descending = match direction {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(Error::bad_data(format!(
                        "orderBy: {other:?} is not asc or desc"
                    )));
                }
            };
            let key = match path {
                "id" => SortKey::Id,
                "type" => SortKey::Type,
                "createdAt" => SortKey::CreatedAt,
                "modifiedAt" => SortKey::ModifiedAt,
                "" => return Err(Error::bad_data("orderBy: an empty key")),
                path => SortKey::Path(attr_path(path)?),
            };
            keys.push((key, descending));
        }
        if keys.len() > MAX_KEYS {
            return Err(Error::bad_data(format!("orderBy: at most {MAX_KEYS} keys")));
        }
        Ok(OrderBy { keys })
    }

    /// The same order with every attribute and sub-attribute name mapped by `f`.
    pub fn map_attrs(&self, f: &impl Fn(&str) -> String) -> OrderBy {
        OrderBy {
            keys: self
                .keys
                .iter()
                .map(|(k, d)| {
                    let k = match k {
                        SortKey::Path(p) => SortKey::Path(p.map_attrs(f)),
                        other => other.clone(),
                    };
                    (k, *d)
                })
                .collect(),
        }
    }

    /// The attributes the order reads (the attribute of each path key).
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|(k, _)| match k {
            SortKey::Path(p) => Some(p.attr.as_str()),
            _ => None,
        })
    }

    /// How `a` compares with `b` in this order.
    pub fn compare(&self, a: &Entity, b: &Entity) -> Ordering {
        for (key, descending) in &self.keys {
            let (x, y) = (
                sort_value(a, key, *descending),
                sort_value(b, key, *descending),
            );
            let o = match (x, y) {
                (Some(x), Some(y)) if *descending => compare_values(&y, &x),
                (Some(x), Some(y)) => compare_values(&x, &y),
                // An entity without the key comes after those with it, either way.
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    }
}

/// An attribute path of the `q` grammar, alone.
fn attr_path(text: &str) -> Result<AttrPath> {
    let invalid = || Error::bad_data(format!("orderBy: {text:?} is not an attribute path"));
    match parse_q(text).map_err(|_| invalid())? {
        QExpr::Term(QTerm::Exists(path)) => Ok(path),
        _ => Err(invalid()),
    }
}

/// The value an entity sorts by on `key`: of several (instances, list elements), the
/// least when ascending and the greatest when descending.
fn sort_value(e: &Entity, key: &SortKey, descending: bool) -> Option<Value> {
    let values = match key {
        SortKey::Id => return Some(Value::String(e.id.clone())),
        SortKey::Type => e.types.iter().cloned().map(Value::String).collect(),
        SortKey::CreatedAt => return Some(Value::String(format_time(&e.created_at))),
        SortKey::ModifiedAt => return Some(Value::String(format_time(&e.modified_at))),
        SortKey::Path(path) => targets(e, path),
    };
    let pick = if descending {
        Iterator::max_by
    } else {
        Iterator::min_by
    };
    pick(values.into_iter(), compare_values)
}

/// A total order of JSON values: numbers, then strings (in code point order, two
/// date-times in time order), then booleans, then anything else by its JSON text.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        // Times compare as times: "…:00Z" and "…:00.5Z" differ in their text order.
        (Value::String(x), Value::String(y)) => match (as_time(x), as_time(y)) {
            (Some(tx), Some(ty)) => tx.cmp(&ty).then_with(|| x.cmp(y)),
            _ => x.cmp(y),
        },
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// A text that is an ISO 8601 date-time (cheaply ruled out for most other texts).
fn as_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if text.len() < 20 || !text.as_bytes()[0].is_ascii_digit() || text.as_bytes()[10] != b'T' {
        return None;
    }
    parse_time(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Context;
    use crate::entity::Reader;
    use serde_json::json;

    fn entity(id: &str, body: Value, created: &str) -> Entity {
        let mut v = body;
        v["id"] = json!(id);
        v["type"] = json!("Building");
        let now = crate::entity::parse_time(created).unwrap();
        Reader {
            ctx: &Context::core(),
            now,
        }
        .entity(&v, None)
        .unwrap()
    }

    fn order(text: &str, entities: &[Entity]) -> Vec<String> {
        let ctx = Context::core();
        let o = OrderBy::parse(text).unwrap().map_attrs(&|n| ctx.expand(n));
        let mut sorted = entities.to_vec();
        sorted.sort_by(|a, b| o.compare(a, b));
        sorted.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn orders_by_members_attributes_and_sub_attributes() {
        let name = |v: &str, sub: i64| json!({"name": {"type": "Property", "value": v, "sub": {"type": "Property", "value": sub}}});
        let es = [
            entity("urn:b:2", name("B", 3), "2024-01-01T00:00:00Z"),
            entity("urn:b:1", name("A", 2), "2024-01-02T00:00:00Z"),
            entity("urn:b:3", name("C", 1), "2024-01-03T00:00:00Z"),
            entity("urn:b:0", json!({"other": 1}), "2024-01-04T00:00:00Z"),
        ];
        let cases = [
            ("name", [1, 2, 3, 0]),
            // Without the key, last in descending order too.
            ("name;desc", [3, 2, 1, 0]),
            ("id", [0, 1, 2, 3]),
            ("createdAt;desc", [0, 3, 1, 2]),
            ("name.createdAt", [2, 1, 3, 0]),
            ("name.sub", [3, 1, 2, 0]),
            // Equal keys fall to the next, then to the id.
            ("type,name.sub;desc", [2, 1, 3, 0]),
            ("type", [0, 1, 2, 3]),
        ];
        for (text, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|n| format!("urn:b:{n}")).collect();
            assert_eq!(order(text, &es), expected, "orderBy={text}");
        }
    }

    #[test]
    fn values_of_different_kinds_have_one_order() {
        let times = [
            json!("2024-01-01T00:00:00.5Z"),
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T01:00:00+02:00"),
        ];
        let mut sorted = times.to_vec();
        sorted.sort_by(compare_values);
        assert_eq!(
            sorted,
            [times[2].clone(), times[1].clone(), times[0].clone()]
        );
        let mut vs = vec![
            json!(true),
            json!("b"),
            json!(10),
            json!({"a": 1}),
            json!(2.5),
            json!("a"),
        ];
        vs.sort_by(compare_values);
        assert_eq!(
            vs,
            vec![
                json!(2.5),
                json!(10),
                json!("a"),
                json!("b"),
                json!(true),
                json!({"a": 1})
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_an_order() {
        for bad in [
            "",
            "name;up",
            "name,,id",
            "a==1",
            "a|b",
            "1;desc;x",
            "a,b,c,d,e,f,g,h,i",
        ] {
            assert!(OrderBy::parse(bad).is_err(), "{bad:?}");
        }
        let o = OrderBy::parse(" name ; desc ,id").unwrap();
        assert_eq!(o.keys.len(), 2);
        assert!(o.keys[0].1);
    }
}
