//! The hub's change feed: one message per entity change, after its commit.
//!
//! Every write the [`Hub`](crate::Hub) sends to the store goes through
//! [`Hub::commit`](crate::Hub); when someone listens, each mutation is watched inside
//! the store's transaction and, once the store reports it committed, an
//! [`EntityChange`] is published on a bounded broadcast channel. Publishing never waits:
//! a subscriber that falls more than [`FEED_CAPACITY`] changes behind loses the oldest
//! ones (and is told so by `RecvError::Lagged`), while writers go on. A write the store
//! refuses or fails publishes nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ngsi::Entity;
use store::{Change, WriteOp};
use tokio::sync::broadcast;

/// Changes a subscriber may be behind before it loses the oldest.
pub const FEED_CAPACITY: usize = 4096;

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// One committed change of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityChange {
    pub tenant: String,
    /// The entity id.
    pub id: String,
    /// Its types (expanded IRIs), after the change (before it, for a deletion).
    pub types: Vec<String>,
    /// Expanded names of the attributes added, changed or removed.
    pub attrs: Vec<String>,
    pub kind: ChangeKind,
}

/// The sending side, owned by the hub.
#[derive(Debug)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Arc<EntityChange>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        ChangeFeed { sender }
    }
}

/// Where a watched mutation leaves its change until the commit is known.
pub(crate) type Pending = Arc<Mutex<Option<EntityChange>>>;

impl ChangeFeed {
    /// A new receiver of every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EntityChange>> {
        self.sender.subscribe()
    }

    /// Wraps the mutation so that it records what it changes, when anyone listens.
    pub(crate) fn watch(&self, tenant: &str, mut op: WriteOp) -> (WriteOp, Option<Pending>) {
        if self.sender.receiver_count() == 0 {
            return (op, None);
        }
        let pending: Pending = Arc::default();
        let slot = pending.clone();
        let tenant = tenant.to_string();
        let mutate = op.mutate;
        op.mutate = Box::new(move |current: Option<Entity>| {
            let before = current.clone();
            let (change, applied) = mutate(current)?;
            let record = describe(&tenant, before.as_ref(), &change);
            if let Ok(mut slot) = slot.lock() {
                *slot = record;
            }
            Ok((change, applied))
        });
        (op, Some(pending))
    }

    /// Publishes the change a committed mutation recorded.
    pub(crate) fn publish(&self, pending: Option<Pending>) {
        let Some(pending) = pending else { return };
        let change = pending.lock().ok().and_then(|mut slot| slot.take());
        if let Some(change) = change {
            // No receiver left is not an error: nobody listens any more.
            let _ = self.sender.send(Arc::new(change));
        }
    }
}

/// The change a mutation decided, or none when it leaves the entity as it was.
fn describe(tenant: &str, before: Option<&Entity>, change: &Change) -> Option<EntityChange> {
    let (kind, id, types, attrs) = match (before, change) {
        (_, Change::Unchanged) | (None, Change::Delete) => return None,
        (Some(old), Change::Delete) => (
            ChangeKind::Deleted,
            old.id.clone(),
            old.types.clone(),
            old.attrs.keys().cloned().collect(),
        ),
        (None, Change::Put(new)) => (
            ChangeKind::Created,
            new.id.clone(),
            new.types.clone(),
            new.attrs.keys().cloned().collect(),
        ),
        (Some(old), Change::Put(new)) => {
            let names: BTreeSet<&String> = old.attrs.keys().chain(new.attrs.keys()).collect();
            let changed: Vec<String> = names
                .into_iter()
                .filter(|n| old.attrs.get(*n) != new.attrs.get(*n))
                .cloned()
                .collect();
            if changed.is_empty() && old.types == new.types && old.scopes == new.scopes {
                return None;
            }
            (
                ChangeKind::Updated,
                new.id.clone(),
                new.types.clone(),
                changed,
            )
        }
    };
    Some(EntityChange {
        tenant: tenant.to_string(),
        id,
        types,
        attrs,
        kind,
    })
}
