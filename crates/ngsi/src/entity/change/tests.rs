use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::entity::AttrKind;
use crate::error::ErrorKind;
use crate::render::render_entity;

/// When the entities of these tests were stored, and when they change (seconds).
const STORED: i64 = 1_000;
const NOW: i64 = 2_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn ctx() -> Arc<Context> {
    Context::core()
}

fn iri(name: &str) -> String {
    ctx().expand(name)
}

/// An entity read at time `t` (seconds).
fn read(body: Value, t: i64) -> Entity {
    Reader {
        ctx: &ctx(),
        now: at(t),
    }
    .entity(&body, None)
    .unwrap()
}

fn object(body: Value) -> Map<String, Value> {
    body.as_object().unwrap().clone()
}

fn stored(outcome: Result<Outcome>) -> Entity {
    match outcome.unwrap().write {
        Write::Put(e) => e,
        other => panic!("expected an entity to store, got {other:?}"),
    }
}

fn light(power: i64) -> Value {
    json!({"id": "urn:x:1", "type": ["Streetlight", "Device"],
        "power": {"type": "Property", "value": power, "unitCode": "WTT",
                  "status": {"type": "Property", "value": "ok"}},
        "street": "Lê Duẩn"})
}

#[test]
fn an_import_creates_what_is_missing() {
    let outcome = import(None, read(light(1), 10), at(NOW)).unwrap();
    assert!(outcome.created);
    assert!(matches!(outcome.write, Write::Put(e) if e.id == "urn:x:1"));
}

#[test]
fn the_same_content_imported_later_is_unchanged() {
    let mut again = light(1);
    again["type"] = json!(["Device", "Streetlight"]);
    let outcome = import(Some(read(light(1), 10)), read(again, 99), at(99)).unwrap();
    assert!(!outcome.created);
    assert_eq!(outcome.write, Write::Unchanged);
}

#[test]
fn an_import_keeps_the_instances_it_does_not_change() {
    let before = read(light(1), 10);
    let mut new = light(2);
    new.as_object_mut().unwrap().remove("street");
    new["colour"] = json!("vàng");
    let e = stored(import(Some(before.clone()), read(new, 99), at(99)));
    let power = &e.attrs[&iri("power")][0];
    assert_eq!(power.value, json!(2));
    assert_eq!(power.created_at.timestamp(), 10);
    assert_eq!(power.modified_at.timestamp(), 99);
    assert!(!e.attrs.values().any(|v| v[0].value == "Lê Duẩn"));
    assert_eq!(e.attrs.len(), 2);
    assert_eq!(e.created_at, before.created_at);

    // Only the changed attribute differs from what was stored.
    let mut one = light(5);
    one["street"] = json!("Lê Duẩn");
    let e = stored(import(Some(before.clone()), read(one, 99), at(99)));
    assert_eq!(e.attrs[&iri("street")], before.attrs[&iri("street")]);
}

#[test]
fn writes_to_a_missing_entity_are_not_found_and_creation_over_one_conflicts() {
    let body = object(json!({"power": 3}));
    let c = ctx();
    let now = at(NOW);
    for outcome in [
        delete(None, "urn:x:1"),
        replace(None, read(light(1), STORED), now),
        append(None, "urn:x:1", &body, &c, true, now),
        update(None, "urn:x:1", &body, &c, now),
        merge(None, "urn:x:1", &body, &c, now),
        patch_attr(None, "urn:x:1", &iri("power"), &json!(3), &c, now),
        replace_attr(None, "urn:x:1", &iri("power"), &json!(3), &c, now),
        delete_scope(None, "urn:x:1", now),
        delete_attr(None, "urn:x:1", &iri("power"), None, false, now),
        append_entity(None, read(light(1), STORED), true, now),
        add_latest(None, "urn:x:1", vec![iri("T")], vec![], true, now),
    ] {
        assert_eq!(outcome.unwrap_err().kind, ErrorKind::ResourceNotFound);
    }
    let again = create(Some(read(light(1), STORED)), read(light(2), NOW));
    assert_eq!(again.unwrap_err().kind, ErrorKind::AlreadyExists);
}

#[test]
fn an_update_that_updates_nothing_writes_nothing() {
    let before = read(light(1), STORED);
    let body = object(json!({"colour": "đỏ", "scope": "/Hue"}));
    let outcome = update(Some(before), "urn:x:1", &body, &ctx(), at(NOW)).unwrap();
    assert_eq!(outcome.write, Write::Unchanged);
    assert_eq!(outcome.result.not_updated.len(), 2);
}

#[test]
fn an_update_deletes_what_ngsi_ld_null_names() {
    let before = read(light(1), STORED);
    let body = object(json!({"street": "urn:ngsi-ld:null", "colour": "urn:ngsi-ld:null"}));
    let outcome = update(Some(before), "urn:x:1", &body, &ctx(), at(NOW)).unwrap();
    assert_eq!(outcome.result.updated, vec![iri("street")]);
    assert_eq!(outcome.result.not_updated[0].0, iri("colour"));
    let Write::Put(e) = outcome.write else {
        panic!("a deletion writes the entity")
    };
    assert!(!e.attrs.contains_key(&iri("street")));
    assert_eq!(e.modified_at, at(NOW));
}

#[test]
fn a_patch_overlays_the_fragment_and_keeps_the_creation_time() {
    let before = read(light(1), STORED);
    let fragment = json!({"value": 7, "status": {"value": "dim"}});
    let e = stored(patch_attr(
        Some(before),
        "urn:x:1",
        &iri("power"),
        &fragment,
        &ctx(),
        at(NOW),
    ));
    let power = &e.attrs[&iri("power")][0];
    assert_eq!(power.value, json!(7));
    assert_eq!(power.unit_code.as_deref(), Some("WTT"));
    assert_eq!(power.sub_attrs[&iri("status")][0].value, json!("dim"));
    assert_eq!((power.created_at, power.modified_at), (at(STORED), at(NOW)));
}

#[test]
fn an_append_may_repeat_the_type_but_not_change_it() {
    let before = read(light(1), STORED);
    let same = object(json!({"type": "Device", "colour": "đỏ"}));
    assert!(
        append(
            Some(before.clone()),
            "urn:x:1",
            &same,
            &ctx(),
            true,
            at(NOW)
        )
        .is_ok()
    );
    let other = object(json!({"type": "Bench", "colour": "đỏ"}));
    let refused = append(Some(before), "urn:x:1", &other, &ctx(), true, at(NOW));
    assert_eq!(refused.unwrap_err().kind, ErrorKind::BadRequestData);
}

#[test]
fn merge_clears_scopes_with_null_and_adds_types() {
    let mut body = light(1);
    body["scope"] = json!(["/Hue", "/Hue/PhuHoi"]);
    let before = read(body, STORED);
    let patch = object(json!({"scope": "urn:ngsi-ld:null", "type": "Bench"}));
    let e = stored(merge(Some(before), "urn:x:1", &patch, &ctx(), at(NOW)));
    assert!(e.scopes.is_empty());
    assert_eq!(e.types.len(), 3);
}

#[test]
fn recorded_measures_create_the_entity_and_skip_unchanged_statics() {
    let measures = |v: i64| read(json!({"id": "urn:x:1", "type": "T", "power": v}), NOW).attrs;
    let statics = read(
        json!({"id": "urn:x:1", "type": "T", "street": "Lê Duẩn"}),
        NOW,
    )
    .attrs;
    let first = record_measures(
        None,
        "urn:x:1",
        vec![iri("Streetlight")],
        measures(1),
        statics.clone(),
        at(STORED),
    )
    .unwrap();
    assert!(first.created);
    let Write::Put(e) = first.write else {
        panic!("a new entity is stored")
    };
    let again = record_measures(Some(e), "urn:x:1", vec![], measures(2), statics, at(NOW));
    let again = again.unwrap();
    assert!(!again.created);
    assert_eq!(again.result.updated, vec![iri("power")]);
    assert!(
        record_measures(
            None,
            "urn:x:2",
            vec![],
            measures(1),
            BTreeMap::new(),
            at(NOW)
        )
        .is_err()
    );
}

#[test]
fn provided_history_keeps_a_current_instance_observed_later() {
    let observed = |v: i64, t: &str| {
        read(
            json!({"id": "urn:x:1", "type": "T",
                   "level": {"value": v, "observedAt": t}}),
            NOW,
        )
        .attrs
        .remove(&iri("level"))
        .unwrap()
        .remove(0)
    };
    let before = stored(add_latest(
        None,
        "urn:x:1",
        vec![iri("T")],
        vec![(iri("level"), observed(2, "2026-01-02T00:00:00Z"))],
        false,
        at(STORED),
    ));
    let older = vec![(iri("level"), observed(1, "2026-01-01T00:00:00Z"))];
    let e = stored(add_latest(
        Some(before),
        "urn:x:1",
        vec![],
        older,
        true,
        at(NOW),
    ));
    assert_eq!(e.attrs[&iri("level")][0].value, json!(2));
}

// Property tests: entities of a few Property attributes, some with several
// datasetIds, unit codes and a sub-attribute, stored at `STORED`.

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::from),
        "[a-z]{1,6}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn property(value: Value, dataset_id: Option<String>) -> Attribute {
    Attribute {
        kind: AttrKind::Property,
        value,
        dataset_id,
        observed_at: None,
        unit_code: None,
        object_type: None,
        created_at: at(STORED),
        modified_at: at(STORED),
        sub_attrs: BTreeMap::new(),
    }
}

fn instance(dataset_id: Option<&'static str>) -> impl Strategy<Value = Attribute> {
    (
        value(),
        proptest::option::of("[A-Z]{3}"),
        proptest::option::of("[a-z]{1,6}"),
    )
        .prop_map(move |(value, unit_code, quality)| {
            let mut a = property(value, dataset_id.map(str::to_string));
            a.unit_code = unit_code;
            if let Some(q) = quality {
                a.sub_attrs
                    .insert(iri("quality"), vec![property(Value::from(q), None)]);
            }
            a
        })
}

/// The instances of one attribute, of distinct datasetIds.
fn instances() -> impl Strategy<Value = Vec<Attribute>> {
    proptest::sample::subsequence(vec![None, Some("urn:ds:1"), Some("urn:ds:2")], 1..=3)
        .prop_flat_map(|datasets| datasets.into_iter().map(instance).collect::<Vec<_>>())
}

fn attributes(
    names: std::ops::Range<u8>,
) -> impl Strategy<Value = BTreeMap<String, Vec<Attribute>>> {
    proptest::collection::btree_map(names, instances(), 0..6).prop_map(|attrs| {
        attrs
            .into_iter()
            .map(|(n, v)| (iri(&format!("a{n}")), v))
            .collect()
    })
}

fn entity() -> impl Strategy<Value = Entity> {
    (
        attributes(0..12),
        proptest::sample::subsequence(vec!["/Hue", "/Hue/PhuHoi", "/QuangTri"], 0..=3),
        proptest::sample::subsequence(vec!["Streetlight", "Device"], 1..=2),
    )
        .prop_map(|(attrs, scopes, types)| Entity {
            id: "urn:x:1".into(),
            types: types.into_iter().map(iri).collect(),
            scopes: scopes.into_iter().map(str::to_string).collect(),
            attrs,
            created_at: at(STORED),
            modified_at: at(STORED),
        })
}

/// Attributes with every timestamp set aside, sub-attributes included.
fn timeless(attrs: &BTreeMap<String, Vec<Attribute>>) -> BTreeMap<String, Vec<Attribute>> {
    attrs
        .iter()
        .map(|(name, instances)| {
            let instances = instances
                .iter()
                .map(|a| Attribute {
                    created_at: DateTime::UNIX_EPOCH,
                    modified_at: DateTime::UNIX_EPOCH,
                    sub_attrs: timeless(&a.sub_attrs),
                    ..a.clone()
                })
                .collect();
            (name.clone(), instances)
        })
        .collect()
}

/// An entity of `n` one-instance attributes.
fn wide(n: usize) -> Entity {
    let mut e = read(json!({"id": "urn:x:1", "type": "T"}), STORED);
    let one = vec![property(json!(1), None)];
    e.attrs = (0..n)
        .map(|i| (iri(&format!("w{i}")), one.clone()))
        .collect();
    e
}

proptest! {
    #[test]
    fn merging_an_entity_s_own_attributes_changes_no_value(e in entity()) {
        let c = ctx();
        let body = render_entity(&e, &RenderOptions::new(&c));
        let merged = stored(merge(Some(e.clone()), &e.id, &body, &c, at(NOW)));
        prop_assert_eq!(timeless(&merged.attrs), timeless(&e.attrs));
        prop_assert_eq!(&merged.types, &e.types);
        prop_assert_eq!(&merged.scopes, &e.scopes);
        prop_assert_eq!(merged.created_at, e.created_at);
    }

    #[test]
    fn a_replaced_entity_reads_as_its_replacement(before in entity(), new in entity()) {
        let after = stored(replace(Some(before.clone()), new.clone(), at(NOW)));
        prop_assert_eq!(timeless(&after.attrs), timeless(&new.attrs));
        prop_assert_eq!(&after.types, &new.types);
        prop_assert_eq!(&after.scopes, &new.scopes);
        prop_assert_eq!((after.created_at, after.modified_at), (before.created_at, at(NOW)));
    }

    #[test]
    fn append_with_no_overwrite_never_changes_an_existing_instance(
        before in entity(),
        attrs in attributes(6..18),
    ) {
        let new = Entity { attrs, ..before.clone() };
        let after = stored(append_entity(Some(before.clone()), new.clone(), false, at(NOW)));
        for (name, instances) in &before.attrs {
            for old in instances {
                prop_assert!(after.attrs[name].contains(old), "{name}: {old:?} changed");
            }
        }
        // And what was appended is there, unless an instance of its datasetId was.
        for (name, instances) in &new.attrs {
            for inst in instances {
                let kept = before.attrs.get(name).is_some_and(|old| {
                    old.iter().any(|o| o.dataset_id == inst.dataset_id)
                });
                prop_assert!(kept || after.attrs[name].contains(inst));
            }
        }
    }

    #[test]
    fn deleting_an_attribute_then_appending_it_restores_it(
        before in entity().prop_filter("an attribute to delete", |e| !e.attrs.is_empty()),
        pick in any::<prop::sample::Index>(),
    ) {
        let (name, instances) = *pick.get(&before.attrs.iter().collect::<Vec<_>>());
        let (name, instances) = (name.clone(), instances.clone());
        let c = ctx();
        let deleted = stored(delete_attr(Some(before.clone()), &before.id, &name, None, true, at(NOW)));
        prop_assert!(!deleted.attrs.contains_key(&name));
        let again = Entity {
            attrs: BTreeMap::from([(name.clone(), instances)]),
            ..before.clone()
        };
        let restored = stored(append_entity(Some(deleted), again, false, at(NOW)));
        prop_assert_eq!(&restored.attrs, &before.attrs);
        // The same through the API's body: the attribute rendered and appended.
        let deleted = stored(delete_attr(Some(before.clone()), &before.id, &name, None, true, at(NOW)));
        let mut body = render_entity(&before, &RenderOptions::new(&c));
        body.retain(|k, _| c.expand(k) == name);
        let restored = stored(append(Some(deleted), &before.id, &body, &c, false, at(NOW)));
        prop_assert_eq!(timeless(&restored.attrs), timeless(&before.attrs));
    }

    #[test]
    fn no_rule_stores_more_attributes_than_allowed(
        missing in 0usize..4,
        added in 0usize..6,
    ) {
        let before = wide(MAX_ATTRIBUTES - missing);
        let fits = added <= missing;
        let extra = wide(added).attrs.into_iter()
            .map(|(name, v)| (name.replace("/w", "/x"), v))
            .collect::<BTreeMap<_, _>>();
        let new = Entity { attrs: extra.clone(), ..before.clone() };
        let c = ctx();
        let body: Map<String, Value> = extra.keys().map(|name| (c.compact(name), json!(2))).collect();
        let now = at(NOW);
        for outcome in [
            append_entity(Some(before.clone()), new.clone(), true, now),
            upsert(Some(before.clone()), new.clone(), false, now),
            append(Some(before.clone()), &before.id, &body, &c, true, now),
            merge(Some(before.clone()), &before.id, &body, &c, now),
            record_measures(Some(before.clone()), &before.id, vec![], extra.clone(), BTreeMap::new(), now),
        ] {
            match outcome {
                Ok(Outcome { write: Write::Put(e), .. }) => {
                    prop_assert!(fits);
                    prop_assert!(e.attrs.len() <= MAX_ATTRIBUTES);
                }
                Ok(other) => prop_assert!(false, "unexpected {other:?}"),
                Err(err) => {
                    prop_assert!(!fits);
                    prop_assert_eq!(err.kind, ErrorKind::BadRequestData);
                }
            }
        }
    }

    #[test]
    fn importing_what_is_stored_writes_nothing(e in entity(), later in STORED..NOW) {
        let mut again = e.clone();
        again.created_at = at(later);
        for instances in again.attrs.values_mut() {
            for inst in instances {
                inst.modified_at = at(later);
            }
        }
        let outcome = import(Some(e), again, at(NOW)).unwrap();
        prop_assert_eq!(outcome.write, Write::Unchanged);
    }
}
