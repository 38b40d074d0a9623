//! The write core: what one operation does to its entity, whatever the backend.
//!
//! A backend reads the entity an operation names, hands both to [`apply`], and
//! persists what the [`Outcome`] says: the entity inserted, updated or deleted, the
//! history instances appended, the registry records written with it and, when the
//! tenant has subscriptions, the change matched against them. Deciding is here and
//! nowhere else; storing is the backend's.
//!
//! **Invariant:** this module does no I/O. The same operation on the same entity
//! gives the same outcome on every backend.

use std::sync::Arc;

use ngsi::{Attribute, Entity};

use crate::{
    Applied, Change, Deletion, HistoryWrite, RegistryPut, StoreError, StoreResult, WriteOp,
};

/// What an operation does to its entity row.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The entity did not exist: insert it.
    Created(Arc<Entity>),
    /// The entity existed: store it as it is now.
    Changed(Arc<Entity>),
    /// Delete the entity, with its history (the NGSI-LD default). A delete of an
    /// entity that does not exist writes nothing but still counts as a write.
    Deleted,
    /// Nothing to write.
    Unchanged,
}

/// Everything a backend persists for one operation.
#[derive(Debug)]
pub struct Outcome {
    /// What the mutation reports to the caller.
    pub applied: Applied,
    pub effect: Effect,
    /// The entity before the operation, kept only when the tenant is watched:
    /// subscriptions compare it with the entity after.
    pub before: Option<Entity>,
    /// The instances to append to the history, as (expanded name, instance).
    pub history: Vec<(String, Attribute)>,
    /// The attribute instances the operation removed, to record in the history.
    pub deletions: Vec<Deletion>,
    /// Registry records that commit with the operation or not at all.
    pub records: Vec<RegistryPut>,
    watched: bool,
}

impl Outcome {
    /// The entity as the operation leaves it; None when deleted or unchanged.
    pub fn after(&self) -> Option<&Entity> {
        match &self.effect {
            Effect::Created(e) | Effect::Changed(e) => Some(e),
            Effect::Deleted | Effect::Unchanged => None,
        }
    }

    /// Whether the operation writes to the entity (a tenant is created on its first).
    pub fn wrote(&self) -> bool {
        self.effect != Effect::Unchanged
    }

    /// The change the tenant's subscriptions are matched against, as (before,
    /// after); None when nothing is watched or nothing changed.
    pub fn watched_change(&self) -> Option<(Option<&Entity>, Option<&Entity>)> {
        let after = self.after();
        (self.watched && self.wrote() && (self.before.is_some() || after.is_some()))
            .then_some((self.before.as_ref(), after))
    }
}

/// Applies an operation to its entity as stored (`before`, None when there is
/// none). `watched`: whether the tenant has subscriptions, so that the entity before
/// is kept for them. A refusal of the mutation is `Rejected`; nothing of a failed
/// operation is to be written.
pub fn apply(op: WriteOp, before: Option<Entity>, watched: bool) -> StoreResult<Outcome> {
    let WriteOp {
        entity_id,
        mutate,
        observe,
        history,
        records,
    } = op;
    let existed = before.is_some();
    // The mutation consumes the entity: keep one copy when subscriptions, the history
    // or an observer compare with it.
    let copy = match (&history, watched || observe.is_some()) {
        (HistoryWrite::Changes, _) | (_, true) => before.clone(),
        (HistoryWrite::Instances(_), false) => None,
    };
    let (change, applied) = mutate(before)?;
    if let Some(observe) = observe {
        observe(copy.as_ref(), &change);
    }
    let (effect, history, deletions) = match change {
        Change::Unchanged => (Effect::Unchanged, Vec::new(), Vec::new()),
        // The history goes with the entity: no deletion is recorded.
        Change::Delete => (Effect::Deleted, Vec::new(), Vec::new()),
        Change::Put(entity) => {
            if entity.id != entity_id {
                return Err(StoreError::Other("a mutation changed the entity id".into()));
            }
            let (history, deletions) = match history {
                // History a client provides adds instances and removes none.
                HistoryWrite::Instances(instances) => (instances, Vec::new()),
                HistoryWrite::Changes => (
                    changed_instances(&entity, copy.as_ref()),
                    deleted_instances(&entity, copy.as_ref()),
                ),
            };
            let effect = if existed {
                Effect::Changed(entity)
            } else {
                Effect::Created(entity)
            };
            (effect, history, deletions)
        }
    };
    Ok(Outcome {
        applied,
        effect,
        before: copy.filter(|_| watched),
        history,
        deletions,
        records,
        watched,
    })
}

/// The instances of `entity` not among those of `before`, compared whole (a
/// rewritten instance has a new modifiedAt, so it counts as changed).
fn changed_instances(entity: &Entity, before: Option<&Entity>) -> Vec<(String, Attribute)> {
    entity
        .attrs
        .iter()
        .flat_map(|(name, instances)| {
            let old = before.and_then(|b| b.attrs.get(name));
            instances
                .iter()
                .filter(move |i| !old.is_some_and(|o| o.contains(i)))
                .map(move |i| (name.clone(), i.clone()))
        })
        .collect()
}

/// The instances of `before` (by name and datasetId) that `entity` no longer has,
/// deleted when `entity` was last modified.
fn deleted_instances(entity: &Entity, before: Option<&Entity>) -> Vec<Deletion> {
    let Some(before) = before else {
        return Vec::new();
    };
    before
        .attrs
        .iter()
        .flat_map(|(name, instances)| {
            let now = entity.attrs.get(name);
            instances
                .iter()
                .filter(move |i| {
                    !now.is_some_and(|n| n.iter().any(|a| a.dataset_id == i.dataset_id))
                })
                .map(move |i| Deletion {
                    name: name.clone(),
                    dataset_id: i.dataset_id.clone(),
                    kind: i.kind,
                    at: entity.modified_at,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ngsi::entity::Reader;
    use ngsi::{Context, Error};
    use serde_json::{Value, json};

    use super::*;
    use crate::RegistryWrite;

    const ID: &str = "urn:ngsi-ld:Sensor:1";
    const LEVEL: &str = "https://uri.etsi.org/ngsi-ld/default-context/level";
    const NAME: &str = "https://uri.etsi.org/ngsi-ld/default-context/name";

    fn entity(level: f64, name: &str) -> Entity {
        let ctx = Context::core();
        let v: Value = json!({
            "id": ID,
            "type": "Sensor",
            "level": {"type": "Property", "value": level},
            "name": {"type": "Property", "value": name},
        });
        Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        }
        .entity(&v, None)
        .unwrap()
    }

    fn put(e: Entity) -> WriteOp {
        WriteOp::new(ID, move |_| {
            Ok((Change::Put(Arc::new(e)), Applied::default()))
        })
    }

    fn names(history: &[(String, Attribute)]) -> Vec<&str> {
        history.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn a_new_entity_is_created_with_every_instance_in_its_history() {
        let out = apply(put(entity(1.0, "a")), None, false).unwrap();
        assert!(matches!(out.effect, Effect::Created(_)));
        assert_eq!(names(&out.history), [LEVEL, NAME]);
        assert!(out.before.is_none());
        assert!(out.wrote());
        // Nobody watches: nothing to match.
        assert!(out.watched_change().is_none());
    }

    #[test]
    fn a_change_records_only_the_instances_it_changed() {
        let old = entity(1.0, "a");
        let mut new = old.clone();
        new.attrs.get_mut(LEVEL).unwrap()[0].value = json!(2.0);
        let out = apply(put(new), Some(old), false).unwrap();
        assert!(matches!(out.effect, Effect::Changed(_)));
        assert_eq!(names(&out.history), [LEVEL]);
        assert_eq!(out.history[0].1.value, json!(2.0));
        assert!(out.before.is_none(), "kept only when watched");
    }

    #[test]
    fn a_watched_change_keeps_the_entity_before_for_the_subscriptions() {
        let old = entity(1.0, "a");
        let mut new = old.clone();
        new.attrs.get_mut(NAME).unwrap()[0].value = json!("b");
        let out = apply(put(new), Some(old.clone()), true).unwrap();
        assert_eq!(out.before.as_ref(), Some(&old));
        let (before, after) = out.watched_change().unwrap();
        assert_eq!(before, Some(&old));
        assert_eq!(after.unwrap().attrs[NAME][0].value, json!("b"));
    }

    #[test]
    fn an_observer_sees_the_entity_before_and_the_change_and_nothing_of_a_refusal() {
        type Seen = Vec<(Option<Entity>, Option<Arc<Entity>>)>;
        let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
        let watch = |op: WriteOp| {
            let seen = seen.clone();
            WriteOp {
                observe: Some(Box::new(move |before, change| {
                    let put = match change {
                        Change::Put(e) => Some(e.clone()),
                        Change::Delete | Change::Unchanged => None,
                    };
                    seen.lock().unwrap().push((before.cloned(), put));
                })),
                ..op
            }
        };
        let old = entity(1.0, "a");
        let mut new = old.clone();
        new.attrs.get_mut(LEVEL).unwrap()[0].value = json!(2.0);
        // The copy kept for the history is the one shown; the history is unchanged.
        let out = apply(watch(put(new.clone())), Some(old.clone()), false).unwrap();
        assert_eq!(names(&out.history), [LEVEL]);
        assert!(
            out.before.is_none(),
            "kept for subscriptions only when watched"
        );
        // With the client's instances, the entity before is still shown.
        let given = old.attrs[LEVEL][0].clone();
        let op = watch(put(new.clone())).with_history(vec![(LEVEL.into(), given)]);
        apply(op, Some(old.clone()), false).unwrap();
        // A creation shows no entity before; a refusal shows nothing.
        apply(watch(put(new.clone())), None, false).unwrap();
        let refused = watch(WriteOp::new(ID, |_| Err(Error::not_found("none"))));
        assert!(apply(refused, Some(old.clone()), false).is_err());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0.as_ref(), Some(&old));
        assert_eq!(seen[1].0.as_ref(), Some(&old));
        assert_eq!(seen[2].0, None);
        for (_, put) in seen.iter() {
            assert_eq!(put.as_deref(), Some(&new));
        }
    }

    #[test]
    fn a_removed_instance_is_recorded_as_deleted_at_the_write_time() {
        let old = entity(1.0, "a");
        let mut new = old.clone();
        new.attrs.remove(NAME);
        new.modified_at = old.modified_at + chrono::TimeDelta::seconds(5);
        let out = apply(put(new.clone()), Some(old.clone()), false).unwrap();
        assert!(out.history.is_empty(), "nothing left changed");
        assert_eq!(
            out.deletions,
            vec![Deletion {
                name: NAME.into(),
                dataset_id: None,
                kind: ngsi::AttrKind::Property,
                at: new.modified_at,
            }]
        );
        // Another datasetId of the same name is another instance.
        let mut with_dataset = old.clone();
        let mut other = old.attrs[NAME][0].clone();
        other.dataset_id = Some("urn:ngsi-ld:Dataset:b".into());
        with_dataset.attrs.get_mut(NAME).unwrap().push(other);
        let out = apply(put(old.clone()), Some(with_dataset), false).unwrap();
        assert_eq!(out.deletions.len(), 1);
        assert_eq!(
            out.deletions[0].dataset_id.as_deref(),
            Some("urn:ngsi-ld:Dataset:b")
        );
        // A creation, a change that keeps every instance, and history a client
        // provides delete nothing.
        assert!(
            apply(put(old.clone()), None, false)
                .unwrap()
                .deletions
                .is_empty()
        );
        let mut changed = old.clone();
        changed.attrs.get_mut(LEVEL).unwrap()[0].value = json!(3.0);
        assert!(
            apply(put(changed), Some(old.clone()), false)
                .unwrap()
                .deletions
                .is_empty()
        );
        let given = old.attrs[LEVEL][0].clone();
        let op = put(new).with_history(vec![(LEVEL.into(), given)]);
        assert!(apply(op, Some(old), true).unwrap().deletions.is_empty());
    }

    #[test]
    fn instances_given_by_the_client_replace_the_changes_in_the_history() {
        let old = entity(1.0, "a");
        let given = old.attrs[LEVEL][0].clone();
        let op = put(entity(5.0, "z")).with_history(vec![(LEVEL.into(), given.clone())]);
        let out = apply(op, Some(old), false).unwrap();
        assert_eq!(out.history, vec![(LEVEL.to_string(), given)]);
    }

    #[test]
    fn a_delete_records_no_history_and_is_watched_only_when_something_was_there() {
        let delete = || WriteOp::new(ID, |_| Ok((Change::Delete, Applied::default())));
        let out = apply(delete(), Some(entity(1.0, "a")), true).unwrap();
        assert_eq!(out.effect, Effect::Deleted);
        assert!(out.history.is_empty());
        let (before, after) = out.watched_change().unwrap();
        assert!(before.is_some() && after.is_none());
        // Deleting nothing still counts as a write, and fires nothing.
        let out = apply(delete(), None, true).unwrap();
        assert!(out.wrote());
        assert!(out.watched_change().is_none());
    }

    #[test]
    fn an_unchanged_entity_writes_nothing_and_fires_nothing() {
        let op = WriteOp::new(ID, |_| Ok((Change::Unchanged, Applied::default())));
        let out = apply(op, Some(entity(1.0, "a")), true).unwrap();
        assert!(!out.wrote());
        assert!(out.history.is_empty());
        assert!(out.watched_change().is_none());
    }

    #[test]
    fn a_refusal_or_a_changed_id_fails_the_operation() {
        let op = WriteOp::new(ID, |_| Err(Error::not_found("none")));
        assert!(matches!(
            apply(op, None, false),
            Err(StoreError::Rejected(e)) if e.kind == ngsi::ErrorKind::ResourceNotFound
        ));
        let mut other = entity(1.0, "a");
        other.id = "urn:ngsi-ld:Sensor:2".into();
        assert!(matches!(
            apply(put(other), None, false),
            Err(StoreError::Other(_))
        ));
    }

    #[test]
    fn registry_records_ride_with_the_operation() {
        let op = put(entity(1.0, "a")).with_records(RegistryPut::new(
            "c",
            "t",
            vec![("k".into(), json!(1))],
            RegistryWrite::Create,
        ));
        let out = apply(op, None, false).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].records, vec![("k".to_string(), json!(1))]);
    }
}
