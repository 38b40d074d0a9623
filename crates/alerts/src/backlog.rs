//! The changes taken from the hub's feed and not yet evaluated, one entry per entity.
//!
//! The feed is a bounded broadcast channel: a listener that falls too far behind loses
//! the oldest changes. So the evaluator does not read it directly. A small task
//! ([`drain`]) moves each change into the backlog as it comes (a map insert), and the
//! evaluator takes entities from the backlog in batches, in the order they first
//! changed. Changes of an entity that wait together are merged.
//!
//! A change committed through this node carries the entity's new state: the entry
//! keeps the state of the latest of its changes (by the feed's sequence, since two
//! writes of one entity may be published in either order), and the evaluator
//! evaluates it without reading. The entity is read when its turn comes instead when
//! a change carries no state (heard from another node), when a change may be older
//! than what the evaluator has already evaluated of the entity (it came after a
//! newer one was taken, or while the entity was being read), or when more than
//! [`MAX_STATES`] entries already hold one.
//!
//! A read does not tell which of the entity's changes it saw, only that it saw none
//! decided after the feed's sequence when it ended. So a change decided before that
//! and published after it is read again, unless a change decided later comes while it
//! waits: that change's state is later than both, and is evaluated instead. Under a
//! steady stream of writes this is what keeps the evaluator from reading an entity
//! again and again, each read making the next change it hears ambiguous.
//!
//! The backlog holds at most one entry per entity and at most a given number of
//! entities. Changes are known to be lost only when the feed itself overflowed, said
//! that changes were missed (another node's burst), or the backlog was full: then the
//! backlog has a *gap*, and the evaluator evaluates every rule over its scope once.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hub::{ChangeKind, EntityChange};
use ngsi::Entity;
use tokio::sync::Notify;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// Most entities waiting to be evaluated; beyond, the backlog has a gap.
pub(crate) const MAX_ENTITIES: usize = 100_000;
/// Most entries holding their entity's state: beyond, entities are read when their
/// turn comes, so that a backlog far behind does not hold every entity in memory.
pub(crate) const MAX_STATES: usize = 10_000;

/// An entity, by (tenant, id).
pub(crate) type EntityKey = (String, String);

/// What an entity is evaluated on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Latest {
    /// The entity as it is when its turn comes, read then.
    Read,
    /// Read when its turn comes, unless a change of this node decided after the
    /// given sequence comes first ([`READING`]: the bound of a read still in flight,
    /// set when it ends): that change's state is then the one evaluated.
    ReadUnlessLater(u64),
    /// The state the latest of its changes committed (None: deleted), and that
    /// change's sequence on the feed.
    State(u64, Option<Arc<Entity>>),
}

/// What changed in one entity since it was last evaluated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dirty {
    /// Its types (expanded), in every change.
    pub types: BTreeSet<String>,
    /// The attributes changed (expanded names).
    pub attrs: BTreeSet<String>,
    /// Created or deleted meanwhile: every attribute counts as changed.
    pub whole: bool,
    /// Updated at least once (for an `Alert`: a person may have resolved it).
    pub updated: bool,
    pub latest: Latest,
}

impl Dirty {
    fn new(change: &EntityChange, latest: Latest) -> Dirty {
        let mut d = Dirty {
            types: BTreeSet::new(),
            attrs: BTreeSet::new(),
            whole: false,
            updated: false,
            latest,
        };
        d.describe(change);
        d
    }

    fn describe(&mut self, change: &EntityChange) {
        self.types.extend(change.types.iter().cloned());
        self.attrs.extend(change.attrs.iter().cloned());
        match change.kind {
            ChangeKind::Updated => self.updated = true,
            _ => self.whole = true,
        }
    }

    /// Adds a later change of the entity (`latest`: what it says of the state).
    fn add(&mut self, change: &EntityChange, latest: Latest) {
        self.describe(change);
        self.keep_latest(latest);
    }

    fn merge(&mut self, other: Dirty) {
        self.types.extend(other.types);
        self.attrs.extend(other.attrs);
        self.whole |= other.whole;
        self.updated |= other.updated;
        self.keep_latest(other.latest);
    }

    /// Of two states, the later; a change to read makes the entry read, unless the
    /// entry's state (or a later change's) was decided after every change the read
    /// stands for.
    fn keep_latest(&mut self, other: Latest) {
        use Latest::{Read, ReadUnlessLater, State};
        let next = match (&self.latest, other) {
            (State(mine, _), State(theirs, e)) if theirs > *mine => State(theirs, e),
            (ReadUnlessLater(bound), State(theirs, e)) if theirs > *bound => State(theirs, e),
            (ReadUnlessLater(mine), ReadUnlessLater(theirs)) => {
                ReadUnlessLater((*mine).max(theirs))
            }
            (State(mine, _), ReadUnlessLater(bound)) if bound >= *mine => ReadUnlessLater(bound),
            (_, Read) => Read,
            (State(..) | ReadUnlessLater(_) | Read, _) => return,
        };
        self.latest = next;
    }

    fn holds_state(&self) -> bool {
        matches!(self.latest, Latest::State(..))
    }

    /// The read in flight that made this entry's bound ended when the feed's
    /// sequence was at most `seq`.
    fn bound_read_at(&mut self, seq: u64) {
        if self.latest == Latest::ReadUnlessLater(READING) {
            self.latest = Latest::ReadUnlessLater(seq);
        }
    }

    /// The entry is read, whatever comes (held states are bounded).
    fn read_anyway(&mut self) {
        self.latest = Latest::Read;
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

/// Evaluation in flight: whatever comes meanwhile may be older than what it reads.
const READING: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Backlog {
    entries: HashMap<EntityKey, Dirty>,
    order: VecDeque<EntityKey>,
    gap: bool,
    limit: usize,
    /// Entries holding a state.
    states: usize,
    /// By entity, the latest sequence of the feed its last evaluation covered (or
    /// [`READING`]): a change at or below it that comes afterwards is read instead.
    evaluated: HashMap<EntityKey, u64>,
    /// The same, for the entities not in `evaluated`.
    floor: u64,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Backlog {
        Backlog {
            entries: HashMap::new(),
            order: VecDeque::new(),
            gap: false,
            limit,
            states: 0,
            evaluated: HashMap::new(),
            floor: 0,
        }
    }

    /// What a change says of its entity's state, for an entity that has no entry.
    fn latest(&self, key: &EntityKey, change: &EntityChange) -> Latest {
        let Some(state) = &change.state else {
            return Latest::Read;
        };
        let covered = self.evaluated.get(key).copied().unwrap_or(self.floor);
        if state.seq <= covered {
            Latest::ReadUnlessLater(covered)
        } else {
            Latest::State(state.seq, state.entity.clone())
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
        let latest = match &change.state {
            Some(s) => Latest::State(s.seq, s.entity.clone()),
            None => Latest::Read,
        };
        match self.entries.entry(key) {
            Entry::Occupied(mut e) => {
                // Not evaluated yet: the later of the two states is what counts.
                let held = e.get().holds_state();
                e.get_mut().add(change, latest);
                self.states = count_state(self.states, held, e.get_mut());
            }
            Entry::Vacant(_) if self.order.len() >= self.limit => self.lost(),
            Entry::Vacant(e) => {
                let key = e.key().clone();
                let mut latest = self.latest(&key, change);
                if self.states >= MAX_STATES {
                    latest = Latest::Read;
                }
                let dirty = Dirty::new(change, latest);
                self.states += usize::from(dirty.holds_state());
                self.order.push_back(key.clone());
                self.entries.insert(key, dirty);
            }
        }
    }

    /// Changes were lost: what waits is dropped, a full pass is due.
    pub(crate) fn lost(&mut self) {
        self.gap = true;
        self.entries.clear();
        self.order.clear();
        self.states = 0;
    }

    /// The gap, when there is one, or up to `max` entities, oldest first. Until the
    /// evaluator reports it done ([`Backlog::evaluated`]), what it reads counts as
    /// being read.
    pub(crate) fn take(&mut self, max: usize) -> Batch {
        if self.gap {
            self.gap = false;
            self.evaluated.clear();
            self.floor = READING;
            return Batch::Gap;
        }
        let n = max.min(self.order.len());
        let taken: Vec<(EntityKey, Dirty)> = self
            .order
            .drain(..n)
            .filter_map(|k| self.entries.remove(&k).map(|d| (k, d)))
            .collect();
        for (key, dirty) in &taken {
            let covered = match dirty.latest {
                Latest::State(seq, _) => {
                    self.states = self.states.saturating_sub(1);
                    seq
                }
                Latest::Read | Latest::ReadUnlessLater(_) => READING,
            };
            let slot = self.evaluated.entry(key.clone()).or_insert(covered);
            *slot = (*slot).max(covered);
        }
        if self.evaluated.len() > self.limit {
            // Forget the entities evaluated, keeping the highest sequence they
            // covered for all (those being read stay).
            let highest = self
                .evaluated
                .values()
                .filter(|s| **s != READING)
                .max()
                .copied()
                .unwrap_or(0);
            self.floor = self.floor.max(highest);
            self.evaluated.retain(|_, s| *s == READING);
        }
        Batch::Entities(taken)
    }

    /// The evaluator is done with a batch it took: what it read was read when the
    /// feed's sequence was at most `seq`.
    pub(crate) fn evaluated(&mut self, batch: &Batch, seq: u64) {
        match batch {
            Batch::Gap => {
                if self.floor == READING {
                    self.floor = seq;
                }
                for dirty in self.entries.values_mut() {
                    dirty.bound_read_at(seq);
                }
            }
            Batch::Entities(e) => {
                for (key, dirty) in e {
                    if !dirty.holds_state()
                        && let Some(s) = self.evaluated.get_mut(key)
                        && *s == READING
                    {
                        *s = seq;
                        // A change heard while it was read waits for a later one.
                        if let Some(waiting) = self.entries.get_mut(key) {
                            waiting.bound_read_at(seq);
                        }
                    }
                }
            }
        }
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
                Entry::Occupied(mut e) => {
                    let held = e.get().holds_state();
                    e.get_mut().merge(dirty);
                    self.states = count_state(self.states, held, e.get_mut());
                }
                Entry::Vacant(e) => {
                    self.states += usize::from(dirty.holds_state());
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

/// The number of entries holding a state, after `dirty` (which held one or not) took
/// a change: an entry that comes to hold one beyond [`MAX_STATES`] is read instead.
fn count_state(states: usize, held: bool, dirty: &mut Dirty) -> usize {
    match (held, dirty.holds_state()) {
        (true, false) => states.saturating_sub(1),
        (false, true) if states >= MAX_STATES => {
            dirty.read_anyway();
            states
        }
        (false, true) => states + 1,
        _ => states,
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
            state: None,
        }
    }

    /// A change of this node committing `level` (None: a deletion) at `seq`.
    fn committed(id: &str, seq: u64, level: Option<f64>) -> EntityChange {
        let entity = level.map(|v| {
            let ctx = ngsi::Context::core();
            let json = serde_json::json!({"id": format!("urn:ngsi-ld:Sensor:{id}"), "type": "Sensor",
                "level": {"type": "Property", "value": v}});
            let reader = ngsi::entity::Reader {
                ctx: &ctx,
                now: ngsi::entity::now(),
            };
            Arc::new(reader.entity(&json, None).expect("an entity"))
        });
        let kind = if level.is_some() {
            ChangeKind::Updated
        } else {
            ChangeKind::Deleted
        };
        EntityChange {
            state: Some(hub::Committed { seq, entity }),
            ..change(id, kind, &["level"])
        }
    }

    /// The level of the state an entry holds; None: read it; Some(None): deleted.
    fn level(dirty: &Dirty) -> Option<Option<f64>> {
        match &dirty.latest {
            Latest::Read | Latest::ReadUnlessLater(_) => None,
            Latest::State(_, e) => Some(e.as_ref().map(|e| {
                let name = ngsi::Context::core().expand("level");
                e.attrs[&name][0].value.as_f64().expect("a number")
            })),
        }
    }

    fn entities(batch: Batch) -> Vec<(EntityKey, Dirty)> {
        match batch {
            Batch::Gap => panic!("a gap"),
            Batch::Entities(e) => e,
        }
    }

    #[test]
    fn two_changes_of_one_entity_keep_the_later_state_in_whatever_order_they_come() {
        let mut b = Backlog::new(10);
        b.add(&committed("a", 2, Some(150.0)));
        b.add(&committed("b", 3, Some(1.0)));
        b.add(&committed("b", 4, Some(2.0)));
        // Published after the write that followed it.
        b.add(&committed("a", 1, Some(10.0)));
        let e = entities(b.take(10));
        assert_eq!(level(&e[0].1), Some(Some(150.0)));
        assert_eq!(level(&e[1].1), Some(Some(2.0)));
        // A deletion is a state too: the entity is gone.
        b.add(&committed("c", 5, Some(1.0)));
        b.add(&committed("c", 6, None));
        assert_eq!(level(&entities(b.take(10))[0].1), Some(None));
    }

    #[test]
    fn a_change_older_than_what_was_evaluated_or_without_state_is_read() {
        let mut b = Backlog::new(10);
        b.add(&committed("a", 5, Some(150.0)));
        let first = b.take(10);
        b.evaluated(&first, 5);
        // The older write comes after the newer one was taken: it is read, not
        // evaluated on its stale state.
        b.add(&committed("a", 4, Some(10.0)));
        // A newer one is evaluated on its state.
        b.add(&committed("b", 6, Some(1.0)));
        let e = entities(b.take(10));
        assert_eq!(level(&e[0].1), None);
        assert_eq!(level(&e[1].1), Some(Some(1.0)));
        b.evaluated(&Batch::Entities(e), 9);
        // Read at 9: what was decided before is read again, what comes after is not.
        b.add(&committed("a", 8, Some(20.0)));
        b.add(&committed("b", 10, Some(30.0)));
        let batch = b.take(10);
        let Batch::Entities(e) = &batch else {
            unreachable!()
        };
        assert_eq!(level(&e[0].1), None);
        assert_eq!(level(&e[1].1), Some(Some(30.0)));
        // While an entity is being read, any change of it is read again.
        b.add(&committed("a", 100, Some(1.0)));
        assert_eq!(level(&entities(b.take(10))[0].1), None);
        b.evaluated(&batch, 10);
        b.add(&committed("a", 101, Some(1.0)));
        assert_eq!(level(&entities(b.take(10))[0].1), Some(Some(1.0)));
        // A change heard from another node makes the entry read.
        b.add(&committed("c", 11, Some(1.0)));
        b.add(&change("c", ChangeKind::Updated, &["level"]));
        assert_eq!(level(&entities(b.take(10))[0].1), None);
        // After a gap, what was decided before the full pass read is read again.
        b.add(&change("", ChangeKind::Missed, &[]));
        let gap = b.take(10);
        b.add(&committed("d", 12, Some(1.0)));
        b.evaluated(&gap, 12);
        b.add(&committed("e", 12, Some(1.0)));
        b.add(&committed("f", 13, Some(1.0)));
        let e = entities(b.take(10));
        assert_eq!(
            e.iter().map(|(_, d)| level(d)).collect::<Vec<_>>(),
            [None, None, Some(Some(1.0))]
        );
    }

    #[test]
    fn a_change_decided_after_a_read_ended_is_evaluated_on_its_state_in_place_of_the_read() {
        let mut b = Backlog::new(10);
        read_heard(&mut b, "a", 10);
        // Decided before the read ended, published after it: read, unless…
        b.add(&committed("a", 8, Some(1.0)));
        b.add(&committed("a", 9, Some(2.0)));
        assert_eq!(b.states, 0);
        // …a change decided after it comes while it waits: its state is the latest.
        b.add(&committed("a", 12, Some(3.0)));
        assert_eq!(b.states, 1);
        let e = entities(b.take(10));
        assert_eq!(level(&e[0].1), Some(Some(3.0)));
        b.evaluated(&Batch::Entities(e), 12);

        // Heard while the entity is read: the bound is where that read ends.
        b.add(&change("b", ChangeKind::Updated, &["level"]));
        let read = b.take(10);
        b.add(&committed("b", 15, Some(1.0)));
        b.add(&committed("b", 16, Some(1.0)));
        b.evaluated(&read, 20);
        b.add(&committed("b", 18, Some(2.0)));
        assert_eq!(b.entries[&key("b")].latest, Latest::ReadUnlessLater(20));
        b.add(&committed("b", 21, Some(4.0)));
        let e = entities(b.take(10));
        assert_eq!(level(&e[0].1), Some(Some(4.0)));
        b.evaluated(&Batch::Entities(e), 21);

        // A change heard from another node is read whatever comes after it.
        b.add(&committed("a", 11, Some(1.0)));
        b.add(&change("a", ChangeKind::Updated, &["level"]));
        b.add(&committed("a", 30, Some(5.0)));
        assert_eq!(level(&entities(b.take(10))[0].1), None);

        // An entry holding a state decided after the read keeps it when an older,
        // ambiguous change comes; one decided before it is read.
        let mut b = Backlog::new(10);
        read_heard(&mut b, "c", 40);
        b.add(&committed("c", 41, Some(6.0)));
        b.add(&committed("c", 39, Some(0.0)));
        assert_eq!(level(&entities(b.take(10))[0].1), Some(Some(6.0)));
    }

    /// Reads a change of `id` heard from another node (the only entry of `b`), the
    /// read ending at `end`.
    fn read_heard(b: &mut Backlog, id: &str, end: u64) {
        b.add(&change(id, ChangeKind::Updated, &["level"]));
        let read = b.take(10);
        b.evaluated(&read, end);
    }

    fn key(id: &str) -> EntityKey {
        ("t".to_string(), id.to_string())
    }

    #[test]
    fn a_read_given_way_to_a_later_state_counts_within_the_bound_of_states() {
        let mut b = Backlog::new(MAX_ENTITIES);
        // One entity waits to be read again after its read ended at 10…
        read_heard(&mut b, "x", 10);
        b.add(&committed("x", 5, Some(1.0)));
        // …while the others hold every state the backlog may hold.
        for i in 0..MAX_STATES {
            b.add(&committed(&format!("e{i}"), i as u64 + 11, Some(1.0)));
        }
        assert_eq!(b.states, MAX_STATES);
        // A later change of it would hold one more: it is read instead.
        b.add(&committed("x", 1_000_000, Some(2.0)));
        assert_eq!(b.states, MAX_STATES);
        assert_eq!(b.entries[&key("x")].latest, Latest::Read);
    }

    #[test]
    fn states_held_are_bounded_and_counted_back() {
        let mut b = Backlog::new(MAX_ENTITIES);
        for i in 0..MAX_STATES + 5 {
            b.add(&committed(&format!("e{i}"), i as u64 + 1, Some(1.0)));
        }
        assert_eq!(b.states, MAX_STATES);
        let e = entities(b.take(MAX_STATES + 5));
        assert!(e[..MAX_STATES].iter().all(|(_, d)| d.holds_state()));
        assert!(e[MAX_STATES..].iter().all(|(_, d)| !d.holds_state()));
        assert_eq!(b.states, 0);
        // Put back, they hold their states again; a newer change without state
        // makes one read.
        b.restore(Batch::Entities(e));
        assert_eq!(b.states, MAX_STATES);
        b.add(&change("e0", ChangeKind::Updated, &["level"]));
        assert_eq!(b.states, MAX_STATES - 1);
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
