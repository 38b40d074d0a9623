//! The hub's change feed: one message per entity change, after its commit.
//!
//! Every write the [`Hub`](crate::Hub) sends to the store goes through
//! [`Hub::commit`](crate::Hub); when someone listens, each mutation is watched inside
//! the store's transaction and, once the store reports it committed, an
//! [`EntityChange`] is published on a bounded broadcast channel. Publishing never waits:
//! a subscriber that falls more than [`FEED_CAPACITY`] changes behind loses the oldest
//! ones (and is told so by `RecvError::Lagged`), while writers go on. A write the store
//! refuses or fails publishes nothing.
//!
//! Nodes sharing a database share their feeds ([`share`]): each announces the changes
//! committed through it ([`store::Store::announce`]) and publishes those of the
//! others, so that a listener on any node sees every change. Announcing is batched
//! (every [`SHARE_WINDOW`]); a burst of more than [`SHARE_MAX`] changes in one window,
//! or announcements missed, is passed on as [`ChangeKind::Missed`]: listeners then
//! read again whatever they derived from the feed.
//!
//! A change committed through this node carries the entity as the write left it
//! ([`EntityChange::state`]: the store's own copy, shared, not copied), so that a
//! listener need not read it again. Changes are published when their writes return,
//! and two writes of one entity may return in either order: the state's sequence
//! tells which is the later. Changes heard from other nodes carry no state.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ngsi::Entity;
use serde::{Deserialize, Serialize};
use store::{Change, Store, WriteOp};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::service::Hub;

/// Changes a subscriber may be behind before it loses the oldest.
pub const FEED_CAPACITY: usize = 4096;
/// How long changes are gathered before they are announced to the other nodes.
pub const SHARE_WINDOW: Duration = Duration::from_millis(100);
/// Changes announced per window at most; beyond, the other nodes are told that
/// changes were missed.
pub const SHARE_MAX: usize = 500;

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    /// Changes were made that this feed does not describe (another node's burst, or
    /// its announcements were lost): what was derived from the feed must be read
    /// again. Its tenant, id, types and attributes are empty.
    Missed,
}

/// One committed change of one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityChange {
    pub tenant: String,
    /// The entity id.
    pub id: String,
    /// Its types (expanded IRIs), after the change (before it, for a deletion).
    pub types: Vec<String>,
    /// Expanded names of the attributes added, changed or removed.
    pub attrs: Vec<String>,
    pub kind: ChangeKind,
    /// The entity as this change left it, when it was committed through this node
    /// (never announced to other nodes: what they hear, they read).
    #[serde(skip)]
    pub state: Option<Committed>,
}

/// The state a change committed, and where it stands among the changes of its entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// Taken inside the store's transaction: of two changes of one entity committed
    /// through one node, the later has the larger sequence, whatever the order in
    /// which they are published ([`ChangeFeed::sequence`]).
    pub seq: u64,
    /// The entity after the change; None when it was deleted.
    pub entity: Option<Arc<Entity>>,
}

/// The sending side, owned by the hub.
#[derive(Debug)]
pub struct ChangeFeed {
    /// Every change: this node's and, when shared, the other nodes'.
    sender: broadcast::Sender<Arc<EntityChange>>,
    /// The changes committed through this node only (what it announces).
    local: broadcast::Sender<Arc<EntityChange>>,
    /// The last sequence given to a watched mutation.
    seq: Arc<AtomicU64>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            sender: broadcast::channel(FEED_CAPACITY).0,
            local: broadcast::channel(FEED_CAPACITY).0,
            seq: Arc::default(),
        }
    }
}

/// Where a watched mutation leaves its change until the commit is known.
pub(crate) type Pending = Arc<Mutex<Option<EntityChange>>>;

impl ChangeFeed {
    /// A new receiver of every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EntityChange>> {
        self.sender.subscribe()
    }

    /// The last sequence given to a change of this node (see [`Committed::seq`]): a
    /// change published later with a sequence at most this one was decided before
    /// now. 0 before the first.
    pub fn sequence(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Wraps the mutation so that it records what it changes, when anyone listens.
    pub(crate) fn watch(&self, tenant: &str, mut op: WriteOp) -> (WriteOp, Option<Pending>) {
        if self.sender.receiver_count() == 0 && self.local.receiver_count() == 0 {
            return (op, None);
        }
        let pending: Pending = Arc::default();
        let slot = pending.clone();
        let tenant = tenant.to_string();
        let seq = self.seq.clone();
        let earlier = op.observe.take();
        // The store shows the entity before from the copy it keeps for the history.
        op.observe = Some(Box::new(move |before: Option<&Entity>, change: &Change| {
            if let Some(earlier) = earlier {
                earlier(before, change);
            }
            // Taken while the store holds the entity's write (SQLite's one writer,
            // PostgreSQL's row lock), so in the order its changes commit.
            let seq = seq.fetch_add(1, Ordering::SeqCst) + 1;
            let record = describe(&tenant, before, change, seq);
            if let Ok(mut slot) = slot.lock() {
                *slot = record;
            }
        }));
        (op, Some(pending))
    }

    /// Publishes the change a committed mutation recorded.
    pub(crate) fn publish(&self, pending: Option<Pending>) {
        let Some(pending) = pending else { return };
        let change = pending.lock().ok().and_then(|mut slot| slot.take());
        if let Some(change) = change {
            // No receiver left is not an error: nobody listens any more.
            let change = Arc::new(change);
            let _ = self.local.send(change.clone());
            let _ = self.sender.send(change);
        }
    }

    fn missed() -> Arc<EntityChange> {
        Arc::new(EntityChange {
            tenant: String::new(),
            id: String::new(),
            types: Vec::new(),
            attrs: Vec::new(),
            kind: ChangeKind::Missed,
            state: None,
        })
    }
}

/// What one node announces to the others.
#[derive(Serialize, Deserialize)]
struct Announcement {
    /// The announcing node (its own announcements come back to it too).
    node: String,
    /// Its changes, or nothing with `missed`.
    changes: Vec<EntityChange>,
    missed: bool,
}

/// Shares the hub's change feed with the other nodes of its store, when it has any;
/// runs until the tasks are aborted.
pub fn share(hub: Arc<Hub>) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(heard) = hub.store().announcements() else {
        return Vec::new();
    };
    let node = uuid::Uuid::new_v4().to_string();
    let local = hub.changes().local.subscribe();
    vec![
        tokio::spawn(announce(hub.store().clone(), node.clone(), local)),
        tokio::spawn(publish_heard(hub, node, heard)),
    ]
}

/// Announces this node's changes, a window at a time.
async fn announce(
    store: Arc<dyn Store>,
    node: String,
    mut local: broadcast::Receiver<Arc<EntityChange>>,
) {
    loop {
        let mut changes = Vec::new();
        let mut missed = false;
        match local.recv().await {
            Ok(c) => changes.push(c),
            Err(RecvError::Lagged(_)) => missed = true,
            Err(RecvError::Closed) => return,
        }
        let window = tokio::time::sleep(SHARE_WINDOW);
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                next = local.recv() => match next {
                    Ok(c) if changes.len() < SHARE_MAX => changes.push(c),
                    Ok(_) | Err(RecvError::Lagged(_)) => missed = true,
                    Err(RecvError::Closed) => return,
                },
            }
        }
        for message in messages(&node, &changes, missed) {
            if let Err(e) = store.announce(&message).await {
                tracing::warn!(error = %e, "could not announce changes to the other nodes");
            }
        }
    }
}

/// The announcements of a window's changes, each within the store's limit: all the
/// changes, or one saying that changes were missed.
fn messages(node: &str, changes: &[Arc<EntityChange>], missed: bool) -> Vec<String> {
    let node = serde_json::to_string(node).unwrap_or_default();
    let missed_only = || vec![format!(r#"{{"node":{node},"changes":[],"missed":true}}"#)];
    if missed {
        return missed_only();
    }
    let head = format!(r#"{{"node":{node},"missed":false,"changes":["#);
    let mut out = Vec::new();
    let mut message = head.clone();
    for change in changes {
        let Ok(one) = serde_json::to_string(&**change) else {
            return missed_only();
        };
        if head.len() + one.len() + 2 > store::MAX_ANNOUNCEMENT_BYTES {
            // One change alone is too long to announce.
            return missed_only();
        }
        if message.len() + one.len() + 3 > store::MAX_ANNOUNCEMENT_BYTES {
            message.push_str("]}");
            out.push(std::mem::replace(&mut message, head.clone()));
        }
        if message.len() > head.len() {
            message.push(',');
        }
        message.push_str(&one);
    }
    if message.len() > head.len() {
        message.push_str("]}");
        out.push(message);
    }
    out
}

/// Publishes on this node's feed the changes the other nodes announce.
async fn publish_heard(hub: Arc<Hub>, node: String, mut heard: broadcast::Receiver<Arc<str>>) {
    let feed = &hub.changes().sender;
    loop {
        let message = match heard.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(_)) => {
                let _ = feed.send(ChangeFeed::missed());
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if message.is_empty() {
            // The store's receiving connection was lost and is back.
            let _ = feed.send(ChangeFeed::missed());
            continue;
        }
        let Ok(a) = serde_json::from_str::<Announcement>(&message) else {
            tracing::warn!("an announcement of changes that is not one");
            continue;
        };
        if a.node == node {
            continue;
        }
        if a.missed {
            let _ = feed.send(ChangeFeed::missed());
        }
        for change in a.changes {
            let _ = feed.send(Arc::new(change));
        }
    }
}

/// The change a mutation decided, or none when it leaves the entity as it was.
fn describe(
    tenant: &str,
    before: Option<&Entity>,
    change: &Change,
    seq: u64,
) -> Option<EntityChange> {
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
    let entity = match change {
        Change::Put(new) => Some(new.clone()),
        Change::Delete | Change::Unchanged => None,
    };
    Some(EntityChange {
        tenant: tenant.to_string(),
        id,
        types,
        attrs,
        kind,
        state: Some(Committed { seq, entity }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn change(n: usize, attrs: usize) -> Arc<EntityChange> {
        Arc::new(EntityChange {
            tenant: "quang-tri".into(),
            id: format!("urn:ngsi-ld:WaterObserved:{n}"),
            types: vec!["https://smartdatamodels.org/dataModel.Environment/WaterObserved".into()],
            attrs: (0..attrs)
                .map(|a| format!("https://example.org/attribute-{a}"))
                .collect(),
            kind: ChangeKind::Updated,
            state: None,
        })
    }

    #[test]
    fn a_window_is_split_into_announcements_within_the_limit_in_order() {
        let mut changes: Vec<_> = (0..300).map(|n| change(n, n % 7)).collect();
        // The state a change committed stays on this node.
        let mut with_state = (*changes[0]).clone();
        with_state.state = Some(Committed {
            seq: 1,
            entity: None,
        });
        changes[0] = Arc::new(with_state);
        let messages = messages("node-a", &changes, false);
        assert!(messages.len() > 1, "300 changes fit in one announcement?");
        let mut back = Vec::new();
        for m in &messages {
            assert!(
                m.len() <= store::MAX_ANNOUNCEMENT_BYTES,
                "{} bytes",
                m.len()
            );
            let a: Announcement = serde_json::from_str(m).unwrap();
            assert_eq!(a.node, "node-a");
            assert!(!a.missed);
            back.extend(a.changes);
        }
        let sent: Vec<EntityChange> = changes
            .iter()
            .map(|c| EntityChange {
                state: None,
                ..(**c).clone()
            })
            .collect();
        assert!(messages.iter().all(|m| !m.contains("seq")));
        assert_eq!(back, sent);
    }

    #[test]
    fn what_cannot_be_announced_is_announced_as_missed() {
        for (changes, missed) in [
            (vec![change(1, 1), change(2, 1_000)], false),
            (vec![change(1, 1)], true),
        ] {
            let messages = messages("node-a", &changes, missed);
            assert_eq!(messages.len(), 1);
            let a: Announcement = serde_json::from_str(&messages[0]).unwrap();
            assert!(a.missed && a.changes.is_empty(), "{}", messages[0]);
        }
        assert!(messages("node-a", &[], false).is_empty());
    }
}
