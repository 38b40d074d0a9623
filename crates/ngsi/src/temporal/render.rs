//! The temporal representations of an entity: normalized (clause 4.5.7), simplified
//! (`temporalValues`, clause 4.5.9) and aggregated (`aggregatedValues`, clause 4.5.19),
//! with names compacted under the request's @context as [`crate::render`] does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::params::{AggrMethod, TemporalFormat};
use crate::context::Context;
use crate::entity::{AttrKind, Attribute, format_time};
use crate::render::{RenderOptions, compact_value, render_attribute, render_types};

/// One recorded instance of an attribute: the attribute as it was, and the id the
/// temporal API gives it (`instanceId`, by which a client may change or delete it).
/// The record of a deletion has `deleted_at`, and its attribute holds NGSI-LD Null
/// ([`crate::entity::deleted_instance`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_id: String,
    pub attribute: Attribute,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The history of one entity: its id, types and, per expanded attribute name, instances
/// in time order (oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalEntity {
    pub id: String,
    pub types: Vec<String>,
    pub attrs: BTreeMap<String, Vec<Instance>>,
    /// Attributes shown without instances, with their kind: a partial answer (clause
    /// 6.3.10) shows so an attribute whose instances all lie past its time range.
    pub emptied: BTreeMap<String, AttrKind>,
}

/// Renders the history of an entity, without @context.
///
/// `Normalized`: each attribute is an array of its instances, every one the
/// normalized attribute plus `instanceId` (system times only with `sys_attrs`). The
/// array stays an array for a single instance, so that a client reads every attribute
/// the same way.
///
/// The record of a deletion is its attribute, NGSI-LD Null, with `instanceId` and
/// `deletedAt` (clause 4.5.7).
///
/// `TemporalValues`: each attribute is `{"type", "values": [[value, time], ...]}`
/// (`objects` for a Relationship, `languageMaps`, `valueLists`, `jsons`, `vocabs`,
/// `objectLists` for the other kinds: the core context's terms). The time is
/// `observedAt`, or `modifiedAt` (when that instance was recorded) for an instance
/// never observed, or `deletedAt` for the record of a deletion. A language map, a JSON value and a vocab are wrapped as
/// `{"languageMap": ...}`, `{"json": ...}` and `{"vocab": ...}`, because only those
/// terms give them their JSON-LD meaning (a language container, a JSON literal, a
/// vocabulary IRI). Instances of different datasetIds (or kinds) become separate
/// objects, each with its `datasetId`, in an array. Sub-attributes, `unitCode` and
/// system times are not part of this representation.
///
/// `AggregatedValues` is [`render_aggregated`]'s; given here, it renders as
/// `Normalized`.
pub fn render_temporal(
    e: &TemporalEntity,
    format: TemporalFormat,
    ctx: &Context,
    sys_attrs: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(e.id.clone()));
    out.insert("type".into(), render_types(&e.types, ctx));
    let mut opts = RenderOptions::new(ctx);
    opts.sys_attrs = sys_attrs;
    for (name, instances) in &e.attrs {
        if instances.is_empty() {
            continue;
        }
        let rendered = match format {
            TemporalFormat::TemporalValues => simplified(instances, ctx),
            TemporalFormat::Normalized | TemporalFormat::AggregatedValues => {
                Value::Array(instances.iter().map(|i| normalized(i, &opts)).collect())
            }
        };
        out.insert(ctx.compact(name), rendered);
    }
    for (name, kind) in &e.emptied {
        let rendered = match format {
            TemporalFormat::TemporalValues => {
                json!({"type": kind.name(), kind.temporal_values_member(): []})
            }
            TemporalFormat::Normalized | TemporalFormat::AggregatedValues => json!([]),
        };
        out.insert(ctx.compact(name), rendered);
    }
    out
}

fn normalized(instance: &Instance, opts: &RenderOptions) -> Value {
    let mut rendered = render_attribute(&instance.attribute, opts);
    if let Value::Object(map) = &mut rendered {
        map.insert(
            "instanceId".into(),
            Value::String(instance.instance_id.clone()),
        );
        if let Some(t) = instance.deleted_at {
            map.insert("deletedAt".into(), json!(format_time(&t)));
        }
    }
    rendered
}

fn simplified(instances: &[Instance], ctx: &Context) -> Value {
    // (datasetId, kind) → pairs, in order of first appearance.
    let mut groups: Vec<(Option<&str>, AttrKind, Vec<Value>)> = Vec::new();
    for Instance {
        attribute: a,
        deleted_at,
        ..
    } in instances
    {
        let dataset = a.dataset_id.as_deref();
        let time = deleted_at.unwrap_or_else(|| time_of(a));
        let pair = json!([simplified_value(a, ctx), format_time(&time)]);
        match groups
            .iter_mut()
            .find(|(d, k, _)| *d == dataset && *k == a.kind)
        {
            Some((_, _, pairs)) => pairs.push(pair),
            None => groups.push((dataset, a.kind, vec![pair])),
        }
    }
    let mut objects: Vec<Value> = groups
        .into_iter()
        .map(|(dataset, kind, pairs)| {
            let mut obj = Map::new();
            obj.insert("type".into(), json!(kind.name()));
            if let Some(ds) = dataset {
                obj.insert("datasetId".into(), json!(ds));
            }
            obj.insert(kind.temporal_values_member().into(), Value::Array(pairs));
            Value::Object(obj)
        })
        .collect();
    match objects.len() {
        1 => objects.remove(0),
        _ => Value::Array(objects),
    }
}

fn simplified_value(a: &Attribute, ctx: &Context) -> Value {
    let value = compact_value(a, ctx);
    match a.kind {
        AttrKind::LanguageProperty | AttrKind::JsonProperty | AttrKind::VocabProperty => {
            json!({ a.kind.value_member(): value })
        }
        _ => value,
    }
}

fn time_of(a: &Attribute) -> DateTime<Utc> {
    a.observed_at.unwrap_or(a.modified_at)
}

/// One aggregation period `[start, end)` and the result of each method over it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub values: Vec<(AggrMethod, Value)>,
}

/// One attribute's aggregation: its kind, datasetId, and the buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedAttr {
    pub kind: AttrKind,
    pub dataset_id: Option<String>,
    pub buckets: Vec<Bucket>,
}

/// Renders the aggregated history of an entity, without @context: per attribute
/// `{"type", "datasetId"?, "<method>": [[value, start, end], ...], ...}`, one member
/// per method in the order the buckets name them (the order of `aggrMethods`), the
/// periods in bucket order. An attribute aggregated over several datasetIds is an
/// array of such objects.
pub fn render_aggregated(
    id: &str,
    types: &[String],
    attrs: &BTreeMap<String, Vec<AggregatedAttr>>,
    ctx: &Context,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert("type".into(), render_types(types, ctx));
    for (name, aggregations) in attrs {
        let mut objects: Vec<Value> = aggregations.iter().map(aggregated).collect();
        let rendered = match objects.len() {
            0 => continue,
            1 => objects.remove(0),
            _ => Value::Array(objects),
        };
        out.insert(ctx.compact(name), rendered);
    }
    out
}

fn aggregated(attr: &AggregatedAttr) -> Value {
    let mut per_method: Vec<(AggrMethod, Vec<Value>)> = Vec::new();
    for bucket in &attr.buckets {
        let (start, end) = (format_time(&bucket.start), format_time(&bucket.end));
        for (method, value) in &bucket.values {
            let triple = json!([value, start, end]);
            match per_method.iter_mut().find(|(m, _)| m == method) {
                Some((_, triples)) => triples.push(triple),
                None => per_method.push((*method, vec![triple])),
            }
        }
    }
    let mut obj = Map::new();
    obj.insert("type".into(), json!(attr.kind.name()));
    if let Some(ds) = &attr.dataset_id {
        obj.insert("datasetId".into(), json!(ds));
    }
    for (method, triples) in per_method {
        obj.insert(method.name().into(), Value::Array(triples));
    }
    Value::Object(obj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::{DEFAULT_VOCAB, NGSI_LD};
    use crate::entity::parse_time;

    fn t(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn attr(kind: AttrKind, value: Value, observed: Option<&str>) -> Attribute {
        Attribute {
            kind,
            value,
            dataset_id: None,
            observed_at: observed.map(t),
            unit_code: None,
            object_type: None,
            created_at: t("2024-01-01T00:00:00Z"),
            modified_at: t("2024-01-01T06:00:00Z"),
            sub_attrs: BTreeMap::new(),
        }
    }

    fn instance(id: &str, attribute: Attribute) -> Instance {
        Instance {
            instance_id: format!("urn:ngsi-ld:instance:{id}"),
            attribute,
            deleted_at: None,
        }
    }

    fn entity(attrs: Vec<(&str, Vec<Instance>)>) -> TemporalEntity {
        TemporalEntity {
            emptied: BTreeMap::new(),
            id: "urn:ngsi-ld:WaterObserved:thach-han".into(),
            types: vec![format!("{DEFAULT_VOCAB}WaterObserved")],
            attrs: attrs
                .into_iter()
                .map(|(name, instances)| (name.to_string(), instances))
                .collect(),
        }
    }

    fn level(value: f64, observed: &str) -> Attribute {
        let mut a = attr(AttrKind::Property, json!(value), Some(observed));
        a.unit_code = Some("MTR".into());
        a.sub_attrs.insert(
            format!("{DEFAULT_VOCAB}quality"),
            vec![attr(AttrKind::Property, json!("good"), None)],
        );
        a
    }

    #[test]
    fn renders_the_normalized_temporal_representation() {
        let ctx = Context::core();
        let e = entity(vec![
            (
                &format!("{DEFAULT_VOCAB}level"),
                vec![
                    instance("1", level(3.2, "2024-01-01T01:00:00Z")),
                    instance("2", level(3.5, "2024-01-01T02:00:00Z")),
                ],
            ),
            (
                &format!("{DEFAULT_VOCAB}refRiver"),
                vec![instance(
                    "3",
                    attr(AttrKind::Relationship, json!("urn:ngsi-ld:River:1"), None),
                )],
            ),
            (&format!("{DEFAULT_VOCAB}empty"), vec![]),
        ]);
        let out = Value::Object(render_temporal(&e, TemporalFormat::Normalized, &ctx, false));
        assert_eq!(
            out,
            json!({
                "id": "urn:ngsi-ld:WaterObserved:thach-han",
                "type": "WaterObserved",
                "level": [
                    {"type": "Property", "value": 3.2, "observedAt": "2024-01-01T01:00:00Z", "unitCode": "MTR",
                     "quality": {"type": "Property", "value": "good"},
                     "instanceId": "urn:ngsi-ld:instance:1"},
                    {"type": "Property", "value": 3.5, "observedAt": "2024-01-01T02:00:00Z", "unitCode": "MTR",
                     "quality": {"type": "Property", "value": "good"},
                     "instanceId": "urn:ngsi-ld:instance:2"}
                ],
                // A single instance is still an array.
                "refRiver": [
                    {"type": "Relationship", "object": "urn:ngsi-ld:River:1",
                     "instanceId": "urn:ngsi-ld:instance:3"}
                ]
            })
        );
        let with_sys = render_temporal(&e, TemporalFormat::Normalized, &ctx, true);
        assert_eq!(
            with_sys["refRiver"][0]["createdAt"],
            json!("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            with_sys["refRiver"][0]["modifiedAt"],
            json!("2024-01-01T06:00:00Z")
        );
        assert_eq!(
            with_sys["level"][0]["quality"]["createdAt"],
            json!("2024-01-01T00:00:00Z")
        );
        // AggregatedValues is not rendered here: it falls back to the normalized form.
        assert_eq!(
            render_temporal(&e, TemporalFormat::AggregatedValues, &ctx, false),
            render_temporal(&e, TemporalFormat::Normalized, &ctx, false)
        );
    }

    #[test]
    fn renders_attributes_emptied_by_a_page_as_empty() {
        let ctx = Context::core();
        let mut e = entity(vec![]);
        e.emptied
            .insert(format!("{DEFAULT_VOCAB}river"), AttrKind::Relationship);
        let normalized = render_temporal(&e, TemporalFormat::Normalized, &ctx, false);
        assert_eq!(normalized["river"], json!([]));
        let values = render_temporal(&e, TemporalFormat::TemporalValues, &ctx, false);
        assert_eq!(
            values["river"],
            json!({"type": "Relationship", "objects": []})
        );
    }

    #[test]
    fn renders_deletions_with_their_time() {
        let ctx = Context::core();
        let at = t("2024-03-01T08:30:00Z");
        let name = format!("{DEFAULT_VOCAB}name");
        let deleted = |kind| Instance {
            instance_id: "urn:ngsi-ld:Instance:deleted:7".into(),
            attribute: crate::entity::deleted_instance(kind, None, at),
            deleted_at: Some(at),
        };
        let e = entity(vec![(&name, vec![deleted(AttrKind::LanguageProperty)])]);
        let normalized = render_temporal(&e, TemporalFormat::Normalized, &ctx, false);
        assert_eq!(
            normalized["name"],
            json!([{"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"},
                    "instanceId": "urn:ngsi-ld:Instance:deleted:7",
                    "deletedAt": "2024-03-01T08:30:00Z"}])
        );
        let values = render_temporal(&e, TemporalFormat::TemporalValues, &ctx, false);
        assert_eq!(
            values["name"],
            json!({"type": "LanguageProperty", "languageMaps": [
                [{"languageMap": {"@none": "urn:ngsi-ld:null"}}, "2024-03-01T08:30:00Z"]]})
        );
        let e = entity(vec![(&name, vec![deleted(AttrKind::Relationship)])]);
        let values = render_temporal(&e, TemporalFormat::TemporalValues, &ctx, false);
        assert_eq!(
            values["name"],
            json!({"type": "Relationship", "objects": [["urn:ngsi-ld:null", "2024-03-01T08:30:00Z"]]})
        );
    }

    #[test]
    fn renders_every_kind_as_temporal_values() {
        let ctx = Context::core();
        let at = "2024-01-01T01:00:00Z";
        let point = json!({"type": "Point", "coordinates": [107.19, 16.75]});
        let cases = [
            (AttrKind::Property, json!(3.2), "values", json!(3.2)),
            (AttrKind::GeoProperty, point.clone(), "values", point),
            (
                AttrKind::Relationship,
                json!("urn:ngsi-ld:River:1"),
                "objects",
                json!("urn:ngsi-ld:River:1"),
            ),
            (
                AttrKind::LanguageProperty,
                json!({"vi": "Sông Thạch Hãn", "en": "Thach Han River"}),
                "languageMaps",
                json!({"languageMap": {"vi": "Sông Thạch Hãn", "en": "Thach Han River"}}),
            ),
            (
                AttrKind::ListProperty,
                json!([1, 2, 3]),
                "valueLists",
                json!([1, 2, 3]),
            ),
            (
                AttrKind::JsonProperty,
                json!({"any": ["thing"]}),
                "jsons",
                json!({"json": {"any": ["thing"]}}),
            ),
            (
                AttrKind::VocabProperty,
                json!(format!("{DEFAULT_VOCAB}river")),
                "vocabs",
                json!({"vocab": "river"}),
            ),
            (
                AttrKind::ListRelationship,
                json!(["urn:a:1", "urn:a:2"]),
                "objectLists",
                json!(["urn:a:1", "urn:a:2"]),
            ),
        ];
        for (kind, stored, member, shown) in cases {
            let e = entity(vec![(
                &format!("{DEFAULT_VOCAB}a"),
                vec![instance("1", attr(kind, stored, Some(at)))],
            )]);
            let out = render_temporal(&e, TemporalFormat::TemporalValues, &ctx, true);
            assert_eq!(
                out["a"],
                json!({"type": kind.name(), member: [[shown, at]]}),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn separates_datasets_in_temporal_values() {
        let ctx = Context::core();
        let with_dataset = |v: i64, ds: Option<&str>, observed: Option<&str>| {
            let mut a = attr(AttrKind::Property, json!(v), observed);
            a.dataset_id = ds.map(str::to_string);
            a
        };
        let e = entity(vec![
            (
                &format!("{DEFAULT_VOCAB}speed"),
                vec![
                    instance(
                        "1",
                        with_dataset(60, Some("urn:ds:gps"), Some("2024-01-01T01:00:00Z")),
                    ),
                    instance("2", with_dataset(80, None, Some("2024-01-01T01:05:00Z"))),
                    instance(
                        "3",
                        with_dataset(62, Some("urn:ds:gps"), Some("2024-01-01T01:10:00Z")),
                    ),
                    // Never observed: the time it was recorded stands in.
                    instance("4", with_dataset(90, None, None)),
                ],
            ),
            (
                &format!("{DEFAULT_VOCAB}fuel"),
                vec![instance(
                    "5",
                    with_dataset(53, Some("urn:ds:can"), Some("2024-01-01T01:00:00Z")),
                )],
            ),
        ]);
        let out = Value::Object(render_temporal(
            &e,
            TemporalFormat::TemporalValues,
            &ctx,
            false,
        ));
        assert_eq!(
            out["speed"],
            json!([
                {"type": "Property", "datasetId": "urn:ds:gps",
                 "values": [[60, "2024-01-01T01:00:00Z"], [62, "2024-01-01T01:10:00Z"]]},
                {"type": "Property",
                 "values": [[80, "2024-01-01T01:05:00Z"], [90, "2024-01-01T06:00:00Z"]]}
            ])
        );
        // One dataset: an object, not an array.
        assert_eq!(
            out["fuel"],
            json!({"type": "Property", "datasetId": "urn:ds:can",
                   "values": [[53, "2024-01-01T01:00:00Z"]]})
        );
        // In the normalized form every instance carries its own datasetId.
        let normalized = render_temporal(&e, TemporalFormat::Normalized, &ctx, false);
        assert_eq!(normalized["speed"].as_array().unwrap().len(), 4);
        assert_eq!(normalized["speed"][0]["datasetId"], json!("urn:ds:gps"));
        assert!(normalized["speed"][1].get("datasetId").is_none());
    }

    #[test]
    fn compacts_names_with_the_context() {
        let core = Context::core();
        let user = Context::build(
            &json!({
                "schema": "https://schema.org/",
                "name": "schema:name",
                "River": "https://example.org/River",
                "category": "https://example.org/category",
                "torrent": "https://example.org/vocab/torrent"
            }),
            &|_| None,
        )
        .unwrap();
        let e = TemporalEntity {
            emptied: BTreeMap::new(),
            id: "urn:ngsi-ld:River:1".into(),
            types: vec![
                "https://example.org/River".into(),
                format!("{DEFAULT_VOCAB}Water"),
            ],
            attrs: BTreeMap::from([
                (
                    "https://schema.org/name".to_string(),
                    vec![instance(
                        "1",
                        attr(AttrKind::Property, json!("Thạch Hãn"), None),
                    )],
                ),
                (
                    "https://schema.org/alternateName".to_string(),
                    vec![instance(
                        "2",
                        attr(AttrKind::Property, json!("Quảng Trị"), None),
                    )],
                ),
                (
                    format!("{NGSI_LD}location"),
                    vec![instance(
                        "3",
                        attr(
                            AttrKind::GeoProperty,
                            json!({"type": "Point", "coordinates": [107.1, 16.7]}),
                            None,
                        ),
                    )],
                ),
                (
                    "https://example.org/category".to_string(),
                    vec![instance(
                        "4",
                        attr(
                            AttrKind::VocabProperty,
                            json!("https://example.org/vocab/torrent"),
                            None,
                        ),
                    )],
                ),
            ]),
        };
        let with_user = render_temporal(&e, TemporalFormat::TemporalValues, &user, false);
        let keys: Vec<&str> = with_user.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "category",
                "schema:alternateName",
                "name",
                "location"
            ]
        );
        assert_eq!(with_user["type"], json!(["River", "Water"]));
        assert_eq!(
            with_user["category"]["vocabs"][0][0],
            json!({"vocab": "torrent"})
        );
        // Under the core context alone, names it does not know stay IRIs.
        let with_core = render_temporal(&e, TemporalFormat::Normalized, &core, false);
        let keys: Vec<&str> = with_core.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "https://example.org/category",
                "https://schema.org/alternateName",
                "https://schema.org/name",
                "location"
            ]
        );
        assert_eq!(
            with_core["type"],
            json!(["https://example.org/River", "Water"])
        );
        assert_eq!(
            with_core["https://example.org/category"][0]["vocab"],
            json!("https://example.org/vocab/torrent")
        );
    }

    #[test]
    fn renders_the_aggregated_representation() {
        let ctx =
            Context::build(&json!({"speed": "https://example.org/speed"}), &|_| None).unwrap();
        let bucket = |start: &str, end: &str, avg: Value, max: Value| Bucket {
            start: t(start),
            end: t(end),
            values: vec![(AggrMethod::Avg, avg), (AggrMethod::Max, max)],
        };
        let attrs = BTreeMap::from([
            (
                "https://example.org/speed".to_string(),
                vec![
                    AggregatedAttr {
                        kind: AttrKind::Property,
                        dataset_id: None,
                        buckets: vec![
                            bucket(
                                "2024-01-01T00:00:00Z",
                                "2024-01-01T01:00:00Z",
                                json!(61.5),
                                json!(70),
                            ),
                            bucket(
                                "2024-01-01T01:00:00Z",
                                "2024-01-01T01:30:00Z",
                                Value::Null,
                                Value::Null,
                            ),
                        ],
                    },
                    AggregatedAttr {
                        kind: AttrKind::Property,
                        dataset_id: Some("urn:ds:gps".into()),
                        buckets: vec![bucket(
                            "2024-01-01T00:00:00Z",
                            "2024-01-01T01:30:00Z",
                            json!(58.0),
                            json!(64),
                        )],
                    },
                ],
            ),
            (
                format!("{DEFAULT_VOCAB}occupied"),
                vec![AggregatedAttr {
                    kind: AttrKind::Relationship,
                    dataset_id: None,
                    buckets: vec![Bucket {
                        start: t("2024-01-01T00:00:00Z"),
                        end: t("2024-01-01T01:30:00Z"),
                        values: vec![
                            (AggrMethod::DistinctCount, json!(2)),
                            (AggrMethod::TotalCount, json!(5)),
                        ],
                    }],
                }],
            ),
            (format!("{DEFAULT_VOCAB}nothing"), vec![]),
        ]);
        let out = Value::Object(render_aggregated(
            "urn:ngsi-ld:Vehicle:1",
            &[format!("{DEFAULT_VOCAB}Vehicle")],
            &attrs,
            &ctx,
        ));
        assert_eq!(
            out,
            json!({
                "id": "urn:ngsi-ld:Vehicle:1",
                "type": "Vehicle",
                "speed": [
                    {"type": "Property",
                     "avg": [[61.5, "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"],
                             [null, "2024-01-01T01:00:00Z", "2024-01-01T01:30:00Z"]],
                     "max": [[70, "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"],
                             [null, "2024-01-01T01:00:00Z", "2024-01-01T01:30:00Z"]]},
                    {"type": "Property", "datasetId": "urn:ds:gps",
                     "avg": [[58.0, "2024-01-01T00:00:00Z", "2024-01-01T01:30:00Z"]],
                     "max": [[64, "2024-01-01T00:00:00Z", "2024-01-01T01:30:00Z"]]}
                ],
                "occupied": {"type": "Relationship",
                             "distinctCount": [[2, "2024-01-01T00:00:00Z", "2024-01-01T01:30:00Z"]],
                             "totalCount": [[5, "2024-01-01T00:00:00Z", "2024-01-01T01:30:00Z"]]}
            })
        );
        let keys: Vec<&str> = out["occupied"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["type", "distinctCount", "totalCount"]);
    }
}
