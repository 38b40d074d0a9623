//! Rendering entities for clients: the normalized, concise and simplified (keyValues)
//! representations, GeoJSON, and the projections `attrs`, `pick`, `omit` and `lang`.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::entity::{AttrKind, Attribute, Entity, format_time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Normalized,
    Concise,
    KeyValues,
}

/// How to render: the context to compact with, the format, and the projection.
#[derive(Debug, Clone)]
pub struct RenderOptions<'a> {
    pub ctx: &'a Context,
    pub format: Format,
    pub sys_attrs: bool,
    /// A `lang` preference: tags in order (`*`: any language).
    pub lang: Option<Vec<String>>,
    /// Expanded names of the attributes to keep (`attrs` or `pick`); None keeps all.
    pub keep_attrs: Option<HashSet<String>>,
    /// Expanded names of the attributes to leave out (`omit`).
    pub omit_attrs: HashSet<String>,
    pub keep_id: bool,
    pub keep_type: bool,
    /// The `datasetId` filter: only instances of these datasetIds (`@none` is the
    /// default instance); None keeps every instance.
    pub datasets: Option<HashSet<String>>,
}

impl<'a> RenderOptions<'a> {
    pub fn new(ctx: &'a Context) -> Self {
        RenderOptions {
            ctx,
            format: Format::Normalized,
            sys_attrs: false,
            lang: None,
            keep_attrs: None,
            omit_attrs: HashSet::new(),
            keep_id: true,
            keep_type: true,
            datasets: None,
        }
    }

    pub(crate) fn keeps(&self, name: &str) -> bool {
        self.keep_attrs.as_ref().is_none_or(|k| k.contains(name)) && !self.omit_attrs.contains(name)
    }
}

/// Renders an entity as a JSON object (without @context).
pub fn render_entity(e: &Entity, opts: &RenderOptions) -> Map<String, Value> {
    let mut out = Map::new();
    if opts.keep_id {
        out.insert("id".into(), Value::String(e.id.clone()));
    }
    if opts.keep_type {
        out.insert("type".into(), render_types(&e.types, opts.ctx));
    }
    // Scope is picked and omitted like an attribute (its core name is an IRI).
    if !e.scopes.is_empty() && opts.keeps(&opts.ctx.expand("scope")) {
        out.insert(
            "scope".into(),
            if e.scopes.len() == 1 {
                json!(e.scopes[0])
            } else {
                json!(e.scopes)
            },
        );
    }
    for (name, instances) in &e.attrs {
        if !opts.keeps(name) {
            continue;
        }
        match &opts.datasets {
            None => {
                out.insert(opts.ctx.compact(name), render_instances(instances, opts));
            }
            Some(datasets) => {
                let kept: Vec<Attribute> = instances
                    .iter()
                    .filter(|i| datasets.contains(i.dataset_id.as_deref().unwrap_or("@none")))
                    .cloned()
                    .collect();
                if !kept.is_empty() {
                    out.insert(opts.ctx.compact(name), render_instances(&kept, opts));
                }
            }
        }
    }
    // The entity's own system times are members of the entity in every format,
    // keyValues included (only attributes lose their sub-members there).
    if opts.sys_attrs {
        out.insert("createdAt".into(), json!(format_time(&e.created_at)));
        out.insert("modifiedAt".into(), json!(format_time(&e.modified_at)));
    }
    out
}

/// Compacted entity types: a string for one, an array for several.
pub fn render_types(types: &[String], ctx: &Context) -> Value {
    match types {
        [one] => Value::String(ctx.compact(one)),
        many => Value::Array(many.iter().map(|t| Value::String(ctx.compact(t))).collect()),
    }
}

fn render_instances(instances: &[Attribute], opts: &RenderOptions) -> Value {
    match instances {
        [one] => render_attribute(one, opts),
        many if opts.format == Format::KeyValues => simplified_instances(
            many.iter()
                .map(|a| (a.dataset_id.as_deref(), render_attribute(a, opts))),
        ),
        many => Value::Array(many.iter().map(|a| render_attribute(a, opts)).collect()),
    }
}

/// The simplified (keyValues) form of an attribute with several instances (clause
/// 4.5.4): `{"dataset": {datasetId: value, ...}}`, the default instance under
/// `@none`. Given each instance's datasetId and simplified value.
pub fn simplified_instances<'a>(
    instances: impl IntoIterator<Item = (Option<&'a str>, Value)>,
) -> Value {
    let dataset: Map<String, Value> = instances
        .into_iter()
        .map(|(ds, v)| (ds.unwrap_or("@none").to_string(), v))
        .collect();
    json!({ "dataset": dataset })
}

/// Picks the string of a language map for a `lang` preference.
fn pick_language<'m>(
    map: &'m Map<String, Value>,
    prefs: &[String],
) -> Option<(&'m str, &'m Value)> {
    for p in prefs {
        // `*` is any language the map has (its first, the untagged one last).
        let found = if p == "*" {
            map.iter().find(|(k, _)| *k != "@none")
        } else {
            map.iter().find(|(k, _)| k.eq_ignore_ascii_case(p))
        };
        if let Some((k, v)) = found {
            return Some((k.as_str(), v));
        }
    }
    map.get_key_value("@none")
        .or_else(|| map.iter().next())
        .map(|(k, v)| (k.as_str(), v))
}

/// The value of an attribute as a client sees it: the vocab terms of a VocabProperty
/// compacted, every other value as stored.
pub(crate) fn compact_value(a: &Attribute, ctx: &Context) -> Value {
    match a.kind {
        AttrKind::VocabProperty => match &a.value {
            Value::String(s) => Value::String(ctx.compact(s)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map_or(v.clone(), |s| Value::String(ctx.compact(s)))
                    })
                    .collect(),
            ),
            other => other.clone(),
        },
        _ => a.value.clone(),
    }
}

/// One attribute instance in the chosen format (the temporal representation reuses it).
pub(crate) fn render_attribute(a: &Attribute, opts: &RenderOptions) -> Value {
    let ctx = opts.ctx;
    let mut kind = a.kind;
    let mut value = compact_value(a, ctx);
    let mut lang_tag = None;
    if let (AttrKind::LanguageProperty, Some(prefs), Value::Object(map)) =
        (a.kind, &opts.lang, &a.value)
        && let Some((tag, text)) = pick_language(map, prefs)
    {
        kind = AttrKind::Property;
        lang_tag = Some(tag.to_string());
        value = text.clone();
    }
    if opts.format == Format::KeyValues {
        return value;
    }
    let mut out = Map::new();
    if opts.format == Format::Normalized {
        out.insert("type".into(), json!(kind.name()));
    }
    let bare = a.dataset_id.is_none()
        && a.observed_at.is_none()
        && a.unit_code.is_none()
        && a.sub_attrs.is_empty()
        && !opts.sys_attrs
        && lang_tag.is_none();
    // Concise: a plain Property with nothing else is just its value.
    if opts.format == Format::Concise
        && bare
        && kind == AttrKind::Property
        && !value.is_object()
        && !value.is_array()
    {
        return value;
    }
    out.insert(kind.value_member().into(), value);
    if let Some(tag) = lang_tag {
        out.insert("lang".into(), json!(tag));
    }
    if let Some(t) = &a.object_type {
        out.insert("objectType".into(), json!(ctx.compact(t)));
    }
    if let Some(ds) = &a.dataset_id {
        out.insert("datasetId".into(), json!(ds));
    }
    if let Some(t) = &a.observed_at {
        out.insert("observedAt".into(), json!(format_time(t)));
    }
    if let Some(u) = &a.unit_code {
        out.insert("unitCode".into(), json!(u));
    }
    for (name, sub) in &a.sub_attrs {
        out.insert(ctx.compact(name), render_instances(sub, opts));
    }
    if opts.sys_attrs {
        out.insert("createdAt".into(), json!(format_time(&a.created_at)));
        out.insert("modifiedAt".into(), json!(format_time(&a.modified_at)));
    }
    Value::Object(out)
}

/// Renders an entity as a GeoJSON Feature; `geometry_attr` is the expanded name of the
/// GeoProperty that becomes the geometry (default `location`).
pub fn render_feature(e: &Entity, opts: &RenderOptions, geometry_attr: &str) -> Value {
    let geometry = e
        .attrs
        .get(geometry_attr)
        .and_then(|v| v.first())
        .filter(|a| a.kind == AttrKind::GeoProperty)
        .map_or(Value::Null, |a| a.value.clone());
    let mut properties = render_entity(e, opts);
    properties.remove("id");
    json!({ "id": e.id, "type": "Feature", "geometry": geometry, "properties": properties })
}

/// Attribute names and kinds of an entity, for the discovery endpoints.
pub fn attribute_kinds(e: &Entity) -> BTreeMap<&str, HashSet<AttrKind>> {
    let mut out: BTreeMap<&str, HashSet<AttrKind>> = BTreeMap::new();
    for (name, instances) in &e.attrs {
        out.entry(name.as_str())
            .or_default()
            .extend(instances.iter().map(|a| a.kind));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entity::Reader;
    use chrono::Utc;

    #[test]
    fn renders_each_format() {
        let ctx = Context::core();
        let e = Reader { ctx: &ctx, now: Utc::now() }
            .entity(
                &json!({"id": "urn:x:1", "type": "T", "a": 1, "b": {"type": "Property", "value": 2, "unitCode": "MTR"},
                        "r": {"type": "Relationship", "object": "urn:y:1"},
                        "n": {"type": "LanguageProperty", "languageMap": {"vi": "Sông", "en": "River"}}}),
                None,
            )
            .unwrap();
        let mut opts = RenderOptions::new(&ctx);
        let normalized = Value::Object(render_entity(&e, &opts));
        assert_eq!(normalized["a"], json!({"type": "Property", "value": 1}));
        assert_eq!(
            normalized["r"],
            json!({"type": "Relationship", "object": "urn:y:1"})
        );
        opts.format = Format::Concise;
        let concise = Value::Object(render_entity(&e, &opts));
        assert_eq!(concise["a"], json!(1));
        assert_eq!(concise["b"], json!({"value": 2, "unitCode": "MTR"}));
        assert_eq!(concise["r"], json!({"object": "urn:y:1"}));
        opts.format = Format::KeyValues;
        opts.lang = Some(vec!["en".into()]);
        let simplified = Value::Object(render_entity(&e, &opts));
        assert_eq!(simplified["n"], json!("River"));
        assert_eq!(simplified["r"], json!("urn:y:1"));
        assert!(simplified.get("createdAt").is_none());
        // With sysAttrs the entity's own times are there; its attributes stay values.
        opts.sys_attrs = true;
        let with_times = Value::Object(render_entity(&e, &opts));
        assert!(with_times["createdAt"].is_string() && with_times["modifiedAt"].is_string());
        assert_eq!(with_times["a"], json!(1));
        opts.sys_attrs = false;
        // Concise output parses back to the same entity.
        opts.format = Format::Concise;
        opts.lang = None;
        let again = Reader {
            ctx: &ctx,
            now: e.created_at,
        }
        .entity(&Value::Object(render_entity(&e, &opts)), None)
        .unwrap();
        assert_eq!(again.attrs, e.attrs);
    }
}
