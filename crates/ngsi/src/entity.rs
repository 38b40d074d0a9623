//! Entities and attributes (ETSI GS CIM 009, clause 4.5), in expanded form.
//!
//! Inside dothi every type and attribute name is a full IRI; [`crate::context`] maps
//! them from and to the short names a client uses. This module parses the normalized
//! and concise JSON a client sends into an [`Entity`] and checks it; [`change`] holds
//! the rules of every write operation (create, append, update, merge, replace, delete,
//! upsert, import), as pure functions from the stored entity to what to store.

pub mod change;
mod stored_time;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::{Context, NGSI_LD};
use crate::error::{Error, Result};
use crate::geometry::Geometry;

/// Bounds on what one entity may hold, so that no request costs without limit.
pub const MAX_ATTRIBUTES: usize = 2_000;
pub const MAX_INSTANCES: usize = 256;
pub const MAX_SUB_ATTRIBUTE_DEPTH: usize = 8;
pub const MAX_ID_LEN: usize = 1_024;
pub const MAX_NAME_LEN: usize = 512;
pub const MAX_SCOPES: usize = 100;

/// The value that, in a merge-patch, deletes what it is given for.
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// What the temporal history shows of an attribute instance deleted at `at`: its kind,
/// its datasetId, and NGSI-LD Null as its value, in the form its kind has (clause
/// 4.5.7): a language map `{"@none": null}` for a LanguageProperty, a list of it for
/// the list kinds, the bare null for every other.
pub fn deleted_instance(
    kind: AttrKind,
    dataset_id: Option<String>,
    at: DateTime<Utc>,
) -> Attribute {
    let value = match kind {
        AttrKind::LanguageProperty => serde_json::json!({ "@none": NGSI_LD_NULL }),
        AttrKind::ListProperty | AttrKind::ListRelationship => serde_json::json!([NGSI_LD_NULL]),
        _ => Value::String(NGSI_LD_NULL.into()),
    };
    Attribute {
        kind,
        value,
        dataset_id,
        observed_at: None,
        unit_code: None,
        object_type: None,
        created_at: at,
        modified_at: at,
        sub_attrs: BTreeMap::new(),
    }
}

/// The kinds of attribute NGSI-LD defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttrKind {
    Property,
    Relationship,
    GeoProperty,
    LanguageProperty,
    ListProperty,
    JsonProperty,
    VocabProperty,
    ListRelationship,
}

impl AttrKind {
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Property => "Property",
            AttrKind::Relationship => "Relationship",
            AttrKind::GeoProperty => "GeoProperty",
            AttrKind::LanguageProperty => "LanguageProperty",
            AttrKind::ListProperty => "ListProperty",
            AttrKind::JsonProperty => "JsonProperty",
            AttrKind::VocabProperty => "VocabProperty",
            AttrKind::ListRelationship => "ListRelationship",
        }
    }

    fn from_name(name: &str) -> Option<AttrKind> {
        Some(match name {
            "Property" => AttrKind::Property,
            "Relationship" => AttrKind::Relationship,
            "GeoProperty" => AttrKind::GeoProperty,
            "LanguageProperty" => AttrKind::LanguageProperty,
            "ListProperty" => AttrKind::ListProperty,
            "JsonProperty" => AttrKind::JsonProperty,
            "VocabProperty" => AttrKind::VocabProperty,
            "ListRelationship" => AttrKind::ListRelationship,
            _ => return None,
        })
    }

    /// The names of the members that carry this kind's value, in one table so that
    /// they stay in step: the normalized form's, the previous value's (`showChanges`)
    /// and the simplified temporal form's, which holds [value, time] pairs.
    fn members(self) -> KindMembers {
        let (value, previous, temporal) = match self {
            AttrKind::Property | AttrKind::GeoProperty => ("value", "previousValue", "values"),
            AttrKind::Relationship => ("object", "previousObject", "objects"),
            AttrKind::LanguageProperty => ("languageMap", "previousLanguageMap", "languageMaps"),
            AttrKind::ListProperty => ("valueList", "previousValueList", "valueLists"),
            AttrKind::JsonProperty => ("json", "previousJson", "jsons"),
            AttrKind::VocabProperty => ("vocab", "previousVocab", "vocabs"),
            AttrKind::ListRelationship => ("objectList", "previousObjectList", "objectLists"),
        };
        KindMembers {
            value,
            previous,
            temporal,
        }
    }

    /// The member that holds this kind's value in the normalized form.
    pub fn value_member(self) -> &'static str {
        self.members().value
    }

    /// The member that holds this kind's previous value in a notification
    /// (`showChanges`).
    pub fn previous_member(self) -> &'static str {
        self.members().previous
    }

    /// The member that holds this kind's [value, time] pairs in the simplified
    /// temporal representation.
    pub fn temporal_values_member(self) -> &'static str {
        self.members().temporal
    }
}

/// See [`AttrKind::members`].
struct KindMembers {
    value: &'static str,
    previous: &'static str,
    temporal: &'static str,
}

/// An entity: its id, types, scopes and attributes, names expanded to IRIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    #[serde(rename = "t")]
    pub types: Vec<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(rename = "a")]
    pub attrs: BTreeMap<String, Vec<Attribute>>,
    #[serde(rename = "c", with = "stored_time")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "m", with = "stored_time")]
    pub modified_at: DateTime<Utc>,
}

/// One instance of an attribute (an attribute has several when they differ by datasetId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "k")]
    pub kind: AttrKind,
    /// The value: a JSON value, a relationship's object, a language map, a GeoJSON
    /// geometry, a list, a JSON document, or a vocab IRI (expanded).
    #[serde(rename = "v")]
    pub value: Value,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    #[serde(
        rename = "o",
        default,
        skip_serializing_if = "Option::is_none",
        with = "stored_time::option"
    )]
    pub observed_at: Option<DateTime<Utc>>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    #[serde(rename = "ot", default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    #[serde(rename = "c", with = "stored_time")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "m", with = "stored_time")]
    pub modified_at: DateTime<Utc>,
    #[serde(rename = "sub", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sub_attrs: BTreeMap<String, Vec<Attribute>>,
}

impl Attribute {
    /// Becomes `new`, written at `now`, keeping its own creation time.
    pub fn renew(&mut self, new: Attribute, now: DateTime<Utc>) {
        let created_at = self.created_at;
        *self = new;
        self.created_at = created_at;
        self.modified_at = now;
    }

    /// The geometry of a GeoProperty.
    pub fn geometry(&self) -> Option<Geometry> {
        if self.kind == AttrKind::GeoProperty {
            Geometry::from_geojson(&self.value).ok()
        } else {
            None
        }
    }
}

/// Members of an attribute object that are not sub-attributes.
const RESERVED_ATTR_MEMBERS: &[&str] = &[
    "type",
    "value",
    "object",
    "languageMap",
    "valueList",
    "json",
    "vocab",
    "objectList",
    "datasetId",
    "observedAt",
    "unitCode",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "instanceId",
    "objectType",
    "lang",
    "previousValue",
    "previousObject",
    "@context",
];

/// Members of an entity object that are not attributes.
const RESERVED_ENTITY_MEMBERS: &[&str] = &[
    "id",
    "@id",
    "type",
    "@type",
    "scope",
    "@context",
    "createdAt",
    "modifiedAt",
    "deletedAt",
];

/// The current time, to the millisecond, for system attributes (createdAt, modifiedAt).
pub fn now() -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    let t = Utc::now();
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// Formats a time as NGSI-LD does on the wire: UTC, `Z`, fraction only when non-zero.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an ISO 8601 datetime (with an offset or `Z`) to UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `id` is an absolute URI, as entity ids must be.
pub fn is_uri(id: &str) -> bool {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return false;
    }
    let Some((scheme, rest)) = id.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !id.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
        })
}

/// Whether `name` may name an attribute or an entity type.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>'
                        | '"'
                        | '\''
                        | '='
                        | ';'
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '\\'
                        | '|'
                        | ','
                )
        })
}

/// Expands and checks an entity type name.
pub fn expand_type(name: &str, ctx: &Context) -> Result<String> {
    // JSON-LD keywords and their core aliases name no type.
    if !is_valid_name(name) || name.starts_with('@') || matches!(name, "type" | "id") {
        return Err(Error::bad_data(format!(
            "{name:?} is not a valid entity type name"
        )));
    }
    Ok(ctx.expand(name))
}

/// Expands and checks an attribute name.
pub fn expand_attr(name: &str, ctx: &Context) -> Result<String> {
    if !is_valid_name(name) || RESERVED_ENTITY_MEMBERS.contains(&name) {
        return Err(Error::bad_data(format!(
            "{name:?} is not a valid attribute name"
        )));
    }
    Ok(ctx.expand(name))
}

/// Reads what a client sends: an entity, or a set of attributes, in the normalized or
/// concise form, with names compacted under `ctx`.
pub struct Reader<'a> {
    pub ctx: &'a Context,
    pub now: DateTime<Utc>,
}

impl Reader<'_> {
    /// Parses an entity. `id` and `type` are required unless the caller supplies them.
    pub fn entity(&self, body: &Value, path_id: Option<&str>) -> Result<Entity> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::invalid("an entity must be a JSON object"))?;
        let id = match (obj.get("id").or_else(|| obj.get("@id")), path_id) {
            (Some(Value::String(id)), Some(p)) if id != p => {
                return Err(Error::bad_data(
                    "the id in the body differs from the id in the path",
                ));
            }
            (Some(Value::String(id)), _) => id.clone(),
            (Some(_), _) => return Err(Error::bad_data("the entity id must be a string")),
            (None, Some(p)) => p.to_string(),
            (None, None) => return Err(Error::bad_data("the entity has no id")),
        };
        if !is_uri(&id) {
            return Err(Error::bad_data(format!(
                "the entity id {id:?} is not a URI"
            )));
        }
        let types = self.types(obj.get("type").or_else(|| obj.get("@type")))?;
        let scopes = self.scopes(obj.get("scope"))?;
        let attrs = self.attributes(obj)?;
        Ok(Entity {
            id,
            types,
            scopes,
            attrs,
            created_at: self.now,
            modified_at: self.now,
        })
    }

    /// The expanded types of an entity body (required, one or more).
    pub fn types(&self, value: Option<&Value>) -> Result<Vec<String>> {
        let names: Vec<&str> = match value {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 100 => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| Error::bad_data("entity types must be strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::bad_data(
                    "the entity type must be a string or a list of 1 to 100 strings",
                ));
            }
            None => return Err(Error::bad_data("the entity has no type")),
        };
        let mut types = Vec::with_capacity(names.len());
        for name in names {
            let t = expand_type(name, self.ctx)?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(types)
    }

    /// The scopes of an entity body: a string or a list, each like `/Province/District`.
    pub fn scopes(&self, value: Option<&Value>) -> Result<Vec<String>> {
        let scopes: Vec<String> = match value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.len() <= MAX_SCOPES => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::bad_data("scopes must be strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::bad_data(
                    "scope must be a string or a list of strings",
                ));
            }
        };
        for s in &scopes {
            let valid = s.starts_with('/')
                && s.len() <= MAX_NAME_LEN
                && s[1..].split('/').all(|seg| {
                    !seg.is_empty()
                        && !seg.contains(['#', '+'])
                        && !seg.chars().any(char::is_whitespace)
                });
            if !valid && s != "/" {
                return Err(Error::bad_data(format!(
                    "{s:?} is not a valid scope (like /Province/District)"
                )));
            }
        }
        Ok(scopes)
    }

    /// Parses every attribute member of an object (entity or attribute fragment body).
    pub fn attributes(&self, obj: &Map<String, Value>) -> Result<BTreeMap<String, Vec<Attribute>>> {
        let mut attrs = BTreeMap::new();
        let count = obj
            .keys()
            .filter(|k| !RESERVED_ENTITY_MEMBERS.contains(&k.as_str()))
            .count();
        if count > MAX_ATTRIBUTES {
            return Err(Error::bad_data(format!(
                "{count} attributes: at most {MAX_ATTRIBUTES} are allowed"
            )));
        }
        for (name, value) in obj {
            if RESERVED_ENTITY_MEMBERS.contains(&name.as_str()) {
                continue;
            }
            let iri = expand_attr(name, self.ctx)?;
            let instances = self.attribute(name, &iri, value, 0)?;
            attrs.insert(iri, instances);
        }
        Ok(attrs)
    }

    /// Parses one attribute's JSON (an object, an array of instances, or a concise value).
    pub fn attribute(
        &self,
        name: &str,
        iri: &str,
        value: &Value,
        depth: usize,
    ) -> Result<Vec<Attribute>> {
        if depth > MAX_SUB_ATTRIBUTE_DEPTH {
            return Err(Error::bad_data(format!(
                "sub-attributes nested deeper than {MAX_SUB_ATTRIBUTE_DEPTH}"
            )));
        }
        let instances: Vec<Attribute> = match value {
            Value::Array(items) if items.iter().all(is_attribute_object) && !items.is_empty() => {
                if items.len() > MAX_INSTANCES {
                    return Err(Error::bad_data(format!(
                        "{name}: more than {MAX_INSTANCES} instances"
                    )));
                }
                items
                    .iter()
                    .map(|item| self.instance(name, iri, item, depth))
                    .collect::<Result<_>>()?
            }
            other => vec![self.instance(name, iri, other, depth)?],
        };
        let mut seen = std::collections::HashSet::new();
        for inst in &instances {
            if !seen.insert(inst.dataset_id.as_deref()) {
                return Err(Error::bad_data(format!(
                    "{name}: two instances with the same datasetId"
                )));
            }
        }
        Ok(instances)
    }

    fn instance(&self, name: &str, iri: &str, value: &Value, depth: usize) -> Result<Attribute> {
        let bad = |msg: String| Error::bad_data(format!("attribute {name}: {msg}"));
        let geo_by_name = iri == format!("{NGSI_LD}location")
            || iri == format!("{NGSI_LD}observationSpace")
            || iri == format!("{NGSI_LD}operationSpace");
        let mut attr = Attribute {
            kind: AttrKind::Property,
            value: Value::Null,
            dataset_id: None,
            observed_at: None,
            unit_code: None,
            object_type: None,
            created_at: self.now,
            modified_at: self.now,
            sub_attrs: BTreeMap::new(),
        };
        let obj = match value {
            Value::Null => {
                return Err(bad(
                    "null is not a value (use urn:ngsi-ld:null to delete)".into()
                ));
            }
            Value::Object(obj) if is_attribute_object(value) => obj,
            // A GeoJSON geometry given directly (concise form).
            Value::Object(_) if geo_by_name || is_geometry_object(value) => {
                let g = Geometry::from_geojson(value).map_err(|e| bad(e.0))?;
                attr.kind = AttrKind::GeoProperty;
                attr.value = g.to_geojson();
                return Ok(attr);
            }
            // Any other bare value is a Property's value (concise form).
            other => {
                attr.value = other.clone();
                return Ok(attr);
            }
        };
        let kind = match obj.get("type") {
            Some(Value::String(t)) => AttrKind::from_name(t)
                .ok_or_else(|| bad(format!("unknown attribute type {t:?}")))?,
            Some(_) => return Err(bad("the attribute type must be a string".into())),
            None => infer_kind(obj).ok_or_else(|| {
                bad("no value, object, languageMap, valueList, json, vocab or objectList".into())
            })?,
        };
        attr.kind = kind;
        let member = kind.value_member();
        let raw = obj
            .get(member)
            .ok_or_else(|| bad(format!("a {} needs \"{member}\"", kind.name())))?;
        attr.value = match kind {
            AttrKind::Property => {
                if raw.is_null() {
                    return Err(bad("null is not a value".into()));
                }
                raw.clone()
            }
            AttrKind::GeoProperty => Geometry::from_geojson(raw)
                .map_err(|e| bad(e.0))?
                .to_geojson(),
            AttrKind::Relationship => match raw {
                Value::String(s) if is_uri(s) => raw.clone(),
                Value::Array(items)
                    if !items.is_empty()
                        && items.iter().all(|v| v.as_str().is_some_and(is_uri)) =>
                {
                    raw.clone()
                }
                _ => return Err(bad("the object of a Relationship must be a URI".into())),
            },
            AttrKind::ListRelationship => match raw {
                Value::Array(items)
                    if items.iter().all(|v| {
                        v.as_str().is_some_and(is_uri)
                            || v.get("object").and_then(Value::as_str).is_some_and(is_uri)
                    }) =>
                {
                    raw.clone()
                }
                _ => {
                    return Err(bad(
                        "the objectList of a ListRelationship must be a list of URIs".into(),
                    ));
                }
            },
            AttrKind::LanguageProperty => match raw {
                Value::Object(map)
                    if map.values().all(|v| {
                        v.is_string()
                            || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                    }) =>
                {
                    raw.clone()
                }
                _ => return Err(bad("a languageMap maps language tags to strings".into())),
            },
            AttrKind::ListProperty => match raw {
                Value::Array(_) => raw.clone(),
                _ => return Err(bad("a valueList must be a JSON array".into())),
            },
            AttrKind::JsonProperty => raw.clone(),
            AttrKind::VocabProperty => match raw {
                Value::String(s) if is_valid_name(s) => Value::String(self.ctx.expand(s)),
                Value::Array(items)
                    if items.iter().all(|v| v.as_str().is_some_and(is_valid_name)) =>
                {
                    Value::Array(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|s| Value::String(self.ctx.expand(s)))
                            .collect(),
                    )
                }
                _ => return Err(bad("a vocab must be a term or a list of terms".into())),
            },
        };
        if let Some(ds) = obj.get("datasetId") {
            match ds.as_str() {
                Some(s) if is_uri(s) => attr.dataset_id = Some(s.to_string()),
                _ => return Err(bad("datasetId must be a URI".into())),
            }
        }
        if let Some(t) = obj.get("observedAt") {
            attr.observed_at = Some(
                t.as_str()
                    .and_then(parse_time)
                    .ok_or_else(|| bad("observedAt must be an ISO 8601 datetime".into()))?,
            );
        }
        if let Some(u) = obj.get("unitCode") {
            match u.as_str() {
                Some(s) if !s.is_empty() && s.len() <= 64 => attr.unit_code = Some(s.to_string()),
                _ => {
                    return Err(bad(
                        "unitCode must be a short string (UN/CEFACT code)".into()
                    ));
                }
            }
        }
        if let Some(t) = obj.get("objectType") {
            match t.as_str() {
                Some(s) if is_valid_name(s) => attr.object_type = Some(self.ctx.expand(s)),
                _ => return Err(bad("objectType must be a type name".into())),
            }
        }
        for (sub_name, sub_value) in obj {
            if RESERVED_ATTR_MEMBERS.contains(&sub_name.as_str()) {
                continue;
            }
            let sub_iri = expand_attr(sub_name, self.ctx)?;
            let sub = self.attribute(sub_name, &sub_iri, sub_value, depth + 1)?;
            attr.sub_attrs.insert(sub_iri, sub);
        }
        Ok(attr)
    }
}

fn is_attribute_object(value: &Value) -> bool {
    let Some(obj) = value.as_object() else {
        return false;
    };
    // An object with a value member is an attribute, even when its type is unknown
    // (so that a typo gives an error rather than a silently different value).
    infer_kind(obj).is_some()
        || obj
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| AttrKind::from_name(t).is_some())
}

fn is_geometry_object(value: &Value) -> bool {
    value.get("coordinates").is_some()
        && value.get("type").and_then(Value::as_str).is_some_and(|t| {
            matches!(
                t,
                "Point"
                    | "MultiPoint"
                    | "LineString"
                    | "MultiLineString"
                    | "Polygon"
                    | "MultiPolygon"
            )
        })
}

/// The concise form leaves out `type`: the member present tells the kind.
fn infer_kind(obj: &Map<String, Value>) -> Option<AttrKind> {
    if obj.contains_key("object") {
        Some(AttrKind::Relationship)
    } else if obj.contains_key("objectList") {
        Some(AttrKind::ListRelationship)
    } else if obj.contains_key("languageMap") {
        Some(AttrKind::LanguageProperty)
    } else if obj.contains_key("valueList") {
        Some(AttrKind::ListProperty)
    } else if obj.contains_key("json") {
        Some(AttrKind::JsonProperty)
    } else if obj.contains_key("vocab") {
        Some(AttrKind::VocabProperty)
    } else {
        obj.get("value").map(|v| {
            if is_geometry_object(v) {
                AttrKind::GeoProperty
            } else {
                AttrKind::Property
            }
        })
    }
}

/// What an attribute operation did, attribute by attribute (the spec's UpdateResult).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UpdateResult {
    /// Expanded names of the attributes written.
    pub updated: Vec<String>,
    /// Expanded names of those left alone, with the reason.
    pub not_updated: Vec<(String, String)>,
}

fn same_dataset(a: &Attribute, b: &Attribute) -> bool {
    a.dataset_id == b.dataset_id
}

impl Entity {
    /// Adds attributes (POST /attrs). With `overwrite` false, existing instances stay.
    pub fn append(
        &mut self,
        attrs: BTreeMap<String, Vec<Attribute>>,
        overwrite: bool,
        now: DateTime<Utc>,
    ) -> UpdateResult {
        let mut result = UpdateResult::default();
        for (name, instances) in attrs {
            let existing = self.attrs.entry(name.clone()).or_default();
            let mut wrote = false;
            let mut kept = false;
            for inst in instances {
                match existing.iter_mut().find(|e| same_dataset(e, &inst)) {
                    Some(_) if !overwrite => kept = true,
                    Some(old) => {
                        old.renew(inst, now);
                        wrote = true;
                    }
                    None => {
                        existing.push(inst);
                        wrote = true;
                    }
                }
            }
            if wrote {
                result.updated.push(name.clone());
            } else if kept {
                result.not_updated.push((
                    name.clone(),
                    "attribute exists and noOverwrite was given".into(),
                ));
            }
        }
        self.attrs.retain(|_, v| !v.is_empty());
        if !result.updated.is_empty() {
            self.modified_at = now;
        }
        result
    }

    /// Updates existing attributes only (PATCH /attrs); the others are reported.
    pub fn update(
        &mut self,
        attrs: BTreeMap<String, Vec<Attribute>>,
        now: DateTime<Utc>,
    ) -> UpdateResult {
        let mut result = UpdateResult::default();
        for (name, instances) in attrs {
            let Some(existing) = self.attrs.get_mut(&name) else {
                result
                    .not_updated
                    .push((name, "attribute does not exist".into()));
                continue;
            };
            let mut wrote = false;
            for inst in instances {
                if let Some(old) = existing.iter_mut().find(|e| same_dataset(e, &inst)) {
                    old.renew(inst, now);
                    wrote = true;
                }
            }
            if wrote {
                result.updated.push(name);
            } else {
                result
                    .not_updated
                    .push((name, "no instance with this datasetId".into()));
            }
        }
        if !result.updated.is_empty() {
            self.modified_at = now;
        }
        result
    }

    /// Deletes an attribute: the default instance, the one of `dataset_id`, or all.
    pub fn delete_attr(
        &mut self,
        name: &str,
        dataset_id: Option<&str>,
        delete_all: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(instances) = self.attrs.get_mut(name) else {
            return Err(Error::not_found(format!(
                "the entity has no attribute {name}"
            )));
        };
        if delete_all {
            self.attrs.remove(name);
        } else {
            let before = instances.len();
            instances.retain(|i| i.dataset_id.as_deref() != dataset_id);
            if instances.len() == before {
                return Err(Error::not_found(format!(
                    "attribute {name} has no instance with this datasetId"
                )));
            }
            if instances.is_empty() {
                self.attrs.remove(name);
            }
        }
        self.modified_at = now;
        Ok(())
    }

    /// Replaces the attributes, scopes and types of the entity (PUT /entities/{id}).
    pub fn replace_with(&mut self, mut new: Entity, now: DateTime<Utc>) {
        new.created_at = self.created_at;
        new.modified_at = now;
        for (name, instances) in new.attrs.iter_mut() {
            for inst in instances {
                if let Some(old) = self
                    .attrs
                    .get(name)
                    .and_then(|v| v.iter().find(|o| same_dataset(o, inst)))
                {
                    inst.created_at = old.created_at;
                }
            }
        }
        *self = new;
    }

    /// Whether the entity has `t` among its types.
    pub fn has_type(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }
}

/// Whether an attribute patch is NGSI-LD Null (clause 4.5.x): `urn:ngsi-ld:null` as
/// the whole patch, its value, object or `@none` language entry. Such a patch deletes
/// the instance of its datasetId; the answer is that datasetId (`None`: the default
/// instance).
pub fn null_deletion(patch: &Value) -> Option<Option<String>> {
    let is_null = |v: Option<&Value>| v.and_then(Value::as_str) == Some(NGSI_LD_NULL);
    let deletes = match patch {
        Value::String(s) => s == NGSI_LD_NULL,
        Value::Object(m) => {
            is_null(m.get("value"))
                || is_null(m.get("object"))
                || is_null(m.get("vocab"))
                || is_null(m.get("languageMap").and_then(|l| l.get("@none")))
        }
        _ => false,
    };
    deletes.then(|| {
        patch
            .get("datasetId")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

impl Entity {
    /// Removes the instance of `dataset_id` of an attribute, and the attribute with
    /// its last instance. Whether there was such an instance.
    pub fn remove_instance(&mut self, name: &str, dataset_id: Option<&str>) -> bool {
        let Some(instances) = self.attrs.get_mut(name) else {
            return false;
        };
        let before = instances.len();
        instances.retain(|i| i.dataset_id.as_deref() != dataset_id);
        let removed = instances.len() < before;
        if instances.is_empty() {
            self.attrs.remove(name);
        }
        removed
    }

    /// Adds the types it does not have yet (types are only ever added by updates).
    pub fn add_types(&mut self, types: Vec<String>) -> bool {
        let mut added = false;
        for t in types {
            if !self.has_type(&t) {
                self.types.push(t);
                added = true;
            }
        }
        added
    }
}

/// Overlays a JSON patch of an attribute onto its current JSON (both in normalized,
/// compacted form), as merge-patch and partial attribute update want: members of the
/// patch replace those of the current; a sub-attribute present in both is merged;
/// `urn:ngsi-ld:null` removes a member.
pub fn overlay_attribute(current: &Value, patch: &Value) -> Value {
    let mut out = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let patch_obj = match patch {
        Value::Object(map) if is_attribute_object(patch) || !map.contains_key("coordinates") => {
            map.clone()
        }
        other => {
            // A concise bare value: it replaces the value member.
            let member = out
                .get("type")
                .and_then(Value::as_str)
                .and_then(AttrKind::from_name)
                .map_or("value", AttrKind::value_member);
            let mut m = Map::new();
            m.insert(member.to_string(), other.clone());
            m
        }
    };
    for (key, value) in patch_obj {
        if value.as_str() == Some(NGSI_LD_NULL) && key != "value" && key != "object" {
            out.remove(&key);
            continue;
        }
        let merged = match (out.get(&key), &value) {
            (Some(old @ Value::Object(_)), Value::Object(_))
                if !RESERVED_ATTR_MEMBERS.contains(&key.as_str()) =>
            {
                overlay_attribute(old, &value)
            }
            _ => value,
        };
        out.insert(key, merged);
    }
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reader(ctx: &Context) -> Reader<'_> {
        Reader {
            ctx,
            now: Utc::now(),
        }
    }

    #[test]
    fn parses_every_attribute_kind() {
        let ctx = Context::core();
        let e = reader(&ctx)
            .entity(
                &json!({
                    "id": "urn:ngsi-ld:WaterObserved:thach-han",
                    "type": "WaterObserved",
                    "level": {"type": "Property", "value": 3.2, "unitCode": "MTR", "observedAt": "2020-10-18T07:00:00+07:00",
                              "quality": {"type": "Property", "value": "good"}},
                    "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"},
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.19, 16.75]}},
                    "name": {"type": "LanguageProperty", "languageMap": {"vi": "Thạch Hãn", "en": "Thach Han"}},
                    "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
                    "config": {"type": "JsonProperty", "json": {"any": ["thing"]}},
                    "category": {"type": "VocabProperty", "vocab": "river"},
                    "sensors": {"type": "ListRelationship", "objectList": ["urn:a:1", "urn:a:2"]},
                    "status": "ok",
                    "depth": {"value": 2},
                    "observationSpace": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
                }),
                None,
            )
            .unwrap();
        let kind = |n: &str| e.attrs[&ctx.expand(n)][0].kind;
        assert_eq!(kind("level"), AttrKind::Property);
        assert_eq!(kind("refRiver"), AttrKind::Relationship);
        assert_eq!(kind("location"), AttrKind::GeoProperty);
        assert_eq!(kind("name"), AttrKind::LanguageProperty);
        assert_eq!(kind("readings"), AttrKind::ListProperty);
        assert_eq!(kind("config"), AttrKind::JsonProperty);
        assert_eq!(kind("category"), AttrKind::VocabProperty);
        assert_eq!(kind("sensors"), AttrKind::ListRelationship);
        assert_eq!(kind("status"), AttrKind::Property);
        assert_eq!(kind("depth"), AttrKind::Property);
        assert_eq!(kind("observationSpace"), AttrKind::GeoProperty);
        let level = &e.attrs[&ctx.expand("level")][0];
        assert_eq!(
            format_time(&level.observed_at.unwrap()),
            "2020-10-18T00:00:00Z"
        );
        assert!(level.sub_attrs.contains_key(&ctx.expand("quality")));
    }

    #[test]
    fn refuses_bad_entities() {
        let ctx = Context::core();
        let r = reader(&ctx);
        for bad in [
            json!({"id": "not a uri", "type": "T"}),
            json!({"id": "urn:x:1"}),
            json!({"id": "urn:x:1", "type": "T", "a": null}),
            json!({"id": "urn:x:1", "type": "T", "a": {"type": "Relationship", "object": "nope"}}),
            json!({"id": "urn:x:1", "type": "T", "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [200, 0]}}}),
            json!({"id": "urn:x:1", "type": "T", "a": {"type": "Bogus", "value": 1}}),
            json!({"id": "urn:x:1", "type": "T", "a;b": 1}),
            json!({"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": 1, "observedAt": "yesterday"}}),
            json!({"id": "urn:x:1", "type": ["T", 3]}),
            json!([1, 2]),
        ] {
            assert!(r.entity(&bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn append_respects_no_overwrite_and_datasets() {
        let ctx = Context::core();
        let r = reader(&ctx);
        let mut e = r
            .entity(&json!({"id": "urn:x:1", "type": "T", "a": 1}), None)
            .unwrap();
        let more = r
            .attributes(
                json!({"a": 2, "b": [{"value": 1}, {"value": 2, "datasetId": "urn:ds:2"}]})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let res = e.append(more.clone(), false, Utc::now());
        assert_eq!(res.updated, vec![ctx.expand("b")]);
        assert_eq!(res.not_updated.len(), 1);
        assert_eq!(e.attrs[&ctx.expand("a")][0].value, json!(1));
        assert_eq!(e.attrs[&ctx.expand("b")].len(), 2);
        e.append(more, true, Utc::now());
        assert_eq!(e.attrs[&ctx.expand("a")][0].value, json!(2));
        e.delete_attr(&ctx.expand("b"), Some("urn:ds:2"), false, Utc::now())
            .unwrap();
        assert_eq!(e.attrs[&ctx.expand("b")].len(), 1);
        assert!(
            e.delete_attr(&ctx.expand("b"), Some("urn:ds:2"), false, Utc::now())
                .is_err()
        );
    }

    #[test]
    fn overlay_merges_sub_attributes() {
        let cur = json!({"type": "Property", "value": 1, "q": {"type": "Property", "value": "a", "x": {"value": 1}}, "r": {"value": 2}});
        let patch = json!({"value": 5, "q": {"value": "b"}, "r": "urn:ngsi-ld:null"});
        let out = overlay_attribute(&cur, &patch);
        assert_eq!(
            out,
            json!({"type": "Property", "value": 5, "q": {"type": "Property", "value": "b", "x": {"value": 1}}})
        );
        assert_eq!(overlay_attribute(&cur, &json!(7))["value"], json!(7));
    }
}
