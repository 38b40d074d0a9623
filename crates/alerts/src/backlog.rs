//! The changes taken from the hub's feed and not yet evaluated, one entry per entity.
//!
//! The feed is a bounded broadcast channel: a listener that falls too far behind loses
//! the oldest changes. So the evaluator does not read it directly. A small task
//! ([`drain`]) moves each change into the backlog as it comes (a map insert), and the
//! evaluator takes entities from the backlog in batches, in the order they first
//! changed. Changes of an entity that wait together are merged: the evaluator reads
//! the entity as it is when its turn comes, so one read serves them all.
//!
//! The backlog holds at most one entry per entity and at most a given number of
//! entities. Changes are known to be lost only when the feed itself overflowed, said
//! that changes were missed (another node's burst), or the backlog was full: then the
//! backlog has a *gap*, and the evaluator evaluates every rule over its scope once.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hub::{ChangeKind, EntityChange};
use tokio::sync::Notify;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// Most entities waiting to be evaluated; beyond, the backlog has a gap.
pub(crate) const MAX_ENTITIES: usize = 100_000;

/// An entity, by (tenant, id).
pub(crate) type EntityKey = (String, String);

/// What changed in one entity since it was last evaluated.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Dirty {
    /// Its types (expanded), in every change.
    pub types: BTreeSet<String>,
    /// The attributes changed (expanded names).
    pub attrs: BTreeSet<String>,
    /// Created or deleted meanwhile: every attribute counts as changed.
    pub whole: bool,
    /// Updated at least once (for an `Alert`: a person may have resolved it).
    pub updated: bool,
}

impl Dirty {
    fn add(&mut self, change: &EntityChange) {
        self.types.extend(change.types.iter().cloned());
        self.attrs.extend(change.attrs.iter().cloned());
        match change.kind {
            ChangeKind::Updated => self.updated = true,
            _ => self.whole = true,
        }
    }

    fn merge(&mut self, other: Dirty) {
        self.types.extend(other.types);
        self.attrs.extend(other.attrs);
        self.whole |= other.whole;
        self.updated |= other.updated;
    }
}

/// What the evaluator takes.
#[derive(Debug, PartialEq)]
pub(crate) enum Batch {
    /// Changes were lost: evaluate every rule over its scope (the entries waiting
    /// were dropped, the full pass covers them).
    Gap,
    /// Entities to evaluate, oldest first (none: nothing waits).
    Entities(Vec<(EntityKey, Dirty)>),
}

#[derive(Debug)]
pub(crate) struct Backlog {
    entries: HashMap<EntityKey, Dirty>,
    order: VecDeque<EntityKey>,
    gap: bool,
    limit: usize,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Backlog {
        Backlog {
            entries: HashMap::new(),
            order: VecDeque::new(),
            gap: false,
            limit,
        }
    }

    /// Takes one change of the feed.
    pub(crate) fn add(&mut self, change: &EntityChange) {
        if change.kind == ChangeKind::Missed {
            return self.lost();
        }
        if self.gap {
            // The full pass to come reads every entity after this change.
            return;
        }
        let key = (change.tenant.clone(), change.id.clone());
        match self.entries.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().add(change),
            Entry::Vacant(_) if self.order.len() >= self.limit => self.lost(),
            Entry::Vacant(e) => {
                self.order.push_back(e.key().clone());
                e.insert(Dirty::default()).add(change);
            }
        }
    }

    /// Changes were lost: what waits is dropped, a full pass is due.
    pub(crate) fn lost(&mut self) {
        self.gap = true;
        self.entries.clear();
        self.order.clear();
    }

    /// The gap, when there is one, or up to `max` entities, oldest first.
    pub(crate) fn take(&mut self, max: usize) -> Batch {
        if self.gap {
            self.gap = false;
            return Batch::Gap;
        }
        let n = max.min(self.order.len());
        let taken = self
            .order
            .drain(..n)
            .filter_map(|k| self.entries.remove(&k).map(|d| (k, d)))
            .collect();
        Batch::Entities(taken)
    }

    /// Puts back a batch the evaluator could not finish, ahead of what came since (an
    /// entity that changed again since waits once, merged, in its newer place).
    pub(crate) fn restore(&mut self, batch: Batch) {
        let entities = match batch {
            Batch::Gap => return self.lost(),
            Batch::Entities(e) => e,
        };
        if self.gap {
            return;
        }
        for (key, dirty) in entities.into_iter().rev() {
            match self.entries.entry(key) {
                // It changed again since: it waits in its newer place.
                Entry::Occupied(mut e) => e.get_mut().merge(dirty),
                Entry::Vacant(e) => {
                    self.order.push_front(e.key().clone());
                    e.insert(dirty);
                }
            }
        }
        if self.order.len() > self.limit {
            self.lost();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.gap && self.order.is_empty()
    }
}

/// Moves the feed's changes into the backlog as they come, waking the evaluator;
/// runs until the feed closes (or the task is aborted).
pub(crate) async fn drain(
    mut feed: broadcast::Receiver<Arc<EntityChange>>,
    backlog: Arc<Mutex<Backlog>>,
    ready: Arc<Notify>,
) {
    loop {
        let change = feed.recv().await;
        let Ok(mut b) = backlog.lock() else { return };
        match change {
            Ok(change) => b.add(&change),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "alerts: the change feed ran ahead of the backlog; every rule is evaluated again"
                );
                b.lost();
            }
            Err(RecvError::Closed) => return,
        }
        drop(b);
        ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, kind: ChangeKind, attrs: &[&str]) -> EntityChange {
        EntityChange {
            tenant: "t".into(),
            id: id.into(),
            types: vec!["Sensor".into()],
            attrs: attrs.iter().map(|a| a.to_string()).collect(),
            kind,
        }
    }

    fn ids(batch: &Batch) -> Vec<&str> {
        match batch {
            Batch::Gap => vec!["(gap)"],
            Batch::Entities(e) => e.iter().map(|((_, id), _)| id.as_str()).collect(),
        }
    }

    #[test]
    fn changes_of_one_entity_wait_as_one_entry_in_the_order_they_first_came() {
        let mut b = Backlog::new(10);
        b.add(&change("a", ChangeKind::Updated, &["level"]));
        b.add(&change("b", ChangeKind::Created, &["level"]));
        b.add(&change("a", ChangeKind::Updated, &["battery"]));
        let batch = b.take(10);
        assert_eq!(ids(&batch), ["a", "b"]);
        let Batch::Entities(e) = batch else {
            unreachable!()
        };
        assert_eq!(
            e[0].1.attrs,
            BTreeSet::from(["battery".to_string(), "level".to_string()])
        );
        assert!(e[0].1.updated && !e[0].1.whole);
        assert!(e[1].1.whole && !e[1].1.updated);
        assert!(b.is_empty());
        assert_eq!(b.take(10), Batch::Entities(vec![]));
    }

    #[test]
    fn a_batch_is_bounded_and_the_rest_waits() {
        let mut b = Backlog::new(100);
        for i in 0..25 {
            b.add(&change(
                &format!("e{i:02}"),
                ChangeKind::Updated,
                &["level"],
            ));
        }
        assert_eq!(ids(&b.take(10)).len(), 10);
        assert_eq!(ids(&b.take(10))[0], "e10");
        assert_eq!(ids(&b.take(10)), ["e20", "e21", "e22", "e23", "e24"]);
    }

    #[test]
    fn changes_beyond_the_limit_or_missed_make_a_gap_and_never_vanish() {
        let mut b = Backlog::new(3);
        for id in ["a", "b", "c"] {
            b.add(&change(id, ChangeKind::Updated, &["level"]));
        }
        // Another change of a waiting entity still fits.
        b.add(&change("a", ChangeKind::Updated, &["level"]));
        assert_eq!(b.order.len(), 3);
        b.add(&change("d", ChangeKind::Updated, &["level"]));
        assert!(!b.is_empty());
        assert_eq!(b.take(10), Batch::Gap);
        // After the gap is taken, changes wait again.
        b.add(&change("e", ChangeKind::Updated, &["level"]));
        assert_eq!(ids(&b.take(10)), ["e"]);

        let mut b = Backlog::new(3);
        b.add(&change("a", ChangeKind::Updated, &["level"]));
        b.add(&change("", ChangeKind::Missed, &[]));
        assert_eq!(b.take(10), Batch::Gap);
        assert!(b.is_empty());
    }

    #[test]
    fn a_batch_put_back_goes_first_and_an_entity_changed_since_waits_once() {
        let mut b = Backlog::new(10);
        b.add(&change("a", ChangeKind::Updated, &["level"]));
        b.add(&change("b", ChangeKind::Updated, &["level"]));
        let first = b.take(2);
        b.add(&change("c", ChangeKind::Updated, &["level"]));
        b.add(&change("b", ChangeKind::Deleted, &["level", "battery"]));
        b.restore(first);
        let batch = b.take(10);
        assert_eq!(ids(&batch), ["a", "c", "b"]);
        let Batch::Entities(e) = batch else {
            unreachable!()
        };
        assert!(e[2].1.whole && e[2].1.updated);
        assert!(e[2].1.attrs.contains("battery"));
        // A gap that could not be handled stays a gap.
        b.restore(Batch::Gap);
        assert_eq!(b.take(10), Batch::Gap);
    }
}
