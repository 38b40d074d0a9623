//! The facts of every report ([`Fact`]: what the statistics and the lists' filters
//! need), kept in memory and followed on the hub's change feed, so that statistics over
//! a province's year and a list of the reports in a map view cost a pass over memory,
//! not a read of every report.
//!
//! A task follows the feed as changes are published: a change committed through this
//! node carries the report as it left it (its fact is taken from it, the later of two
//! by their sequence), one heard from another node is read again. A reader takes in
//! what the task has not yet (so a client lists what it has just written). When
//! changes were missed (the feed lagged, or another node's burst), every report is
//! read again, without holding up the readers: statistics wait for that read, lists
//! are answered from the store meanwhile ([`FactCache::current_if_warm`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use hub::{ChangeKind, EntityChange, Hub, Scope};
use ngsi::query::ast::TypeExpr;
use ngsi::{Context, Error, ErrorKind};
use store::EntityQuery;
use tokio::sync::{Mutex, broadcast};

use crate::model::{self, Report, SERVICE_REQUEST};
use crate::stats::Fact;

/// Reports heard changed on other nodes read again one by one at most; beyond, all
/// are read again.
const PATCH_MAX: usize = 500;
/// Changes kept while every report is read again; beyond, that read starts over.
const BACKLOG_MAX: usize = 200_000;
/// Entities per page of the full read.
const PAGE: usize = 1_000;

/// Facts by report entity id.
pub type Facts = Arc<HashMap<String, Fact>>;

pub struct FactCache {
    hub: Arc<Hub>,
    reader: Scope,
    report_type: String,
    inner: Mutex<Inner>,
    /// Held by the one full read at a time.
    full_read: Mutex<()>,
    following: AtomicBool,
}

struct Inner {
    feed: broadcast::Receiver<Arc<EntityChange>>,
    /// None until every report has been read (and again when changes were missed).
    facts: Option<Facts>,
    /// While every report is read again: the changes heard since that read began,
    /// applied on top of it.
    backlog: Option<Backlog>,
}

#[derive(Default)]
struct Backlog {
    changes: Vec<Arc<EntityChange>>,
    missed: bool,
}

/// The report changes a drain of the feed found.
#[derive(Default)]
struct Drained {
    changes: Vec<Arc<EntityChange>>,
    missed: bool,
}

impl FactCache {
    pub fn new(hub: Arc<Hub>, reader: Scope) -> Arc<FactCache> {
        Arc::new(FactCache {
            inner: Mutex::new(Inner {
                feed: hub.subscribe_changes(),
                facts: None,
                backlog: None,
            }),
            hub,
            reader,
            report_type: Context::core().expand(SERVICE_REQUEST),
            full_read: Mutex::new(()),
            following: AtomicBool::new(false),
        })
    }

    /// The facts as of now; reads every report first when they are not known.
    pub async fn current(self: &Arc<Self>) -> Result<Facts, Error> {
        self.follow();
        if let Some(facts) = self.catch_up().await? {
            return Ok(facts);
        }
        self.read_all().await?;
        match self.catch_up().await? {
            Some(facts) => Ok(facts),
            // Missed again while reading (a burst beyond the backlog): once more.
            None => {
                self.read_all().await?;
                self.catch_up().await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::ServiceUnavailable,
                        "the reports change faster than they can be read; retry later",
                    )
                })
            }
        }
    }

    /// The facts as of now when they are known; None while every report is (being)
    /// read again, which then runs in the background.
    pub async fn current_if_warm(self: &Arc<Self>) -> Result<Option<Facts>, Error> {
        self.follow();
        let facts = self.catch_up().await?;
        if facts.is_none() {
            let cache = self.clone();
            tokio::spawn(async move {
                if let Err(e) = cache.current().await {
                    tracing::warn!(error = %e, "reports: the facts could not be read");
                }
            });
        }
        Ok(facts)
    }

    /// Starts the task that follows the feed (once).
    fn follow(self: &Arc<Self>) {
        if self.following.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wake = self.hub.subscribe_changes();
        let cache: Weak<FactCache> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                match wake.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                // Wakes that came meanwhile are covered by the one catch-up.
                while wake.try_recv().is_ok() {}
                let Some(cache) = cache.upgrade() else { return };
                if let Err(e) = cache.catch_up().await {
                    tracing::warn!(error = %e, "reports: the facts could not follow a change");
                }
            }
        });
    }

    /// Takes in the changes published since the last catch-up; the facts, or None when
    /// they are not known (cold, being read again, or changes were missed).
    async fn catch_up(&self) -> Result<Option<Facts>, Error> {
        let mut inner = self.inner.lock().await;
        let drained = self.drain(&mut inner.feed);
        if let Some(backlog) = inner.backlog.as_mut() {
            backlog.missed |= drained.missed;
            backlog.changes.extend(drained.changes);
            if backlog.changes.len() > BACKLOG_MAX {
                backlog.missed = true;
                backlog.changes.clear();
            }
            return Ok(None);
        }
        let Some(mut facts) = inner.facts.take() else {
            return Ok(None);
        };
        if drained.missed || !self.apply(&mut facts, &drained.changes).await? {
            return Ok(None);
        }
        inner.facts = Some(facts.clone());
        Ok(Some(facts))
    }

    /// Applies changes to the facts; false when too many must be read again.
    async fn apply(&self, facts: &mut Facts, changes: &[Arc<EntityChange>]) -> Result<bool, Error> {
        let mut heard = Vec::new();
        for change in changes {
            match &change.state {
                Some(committed) => {
                    let map = Arc::make_mut(facts);
                    if map.get(&change.id).is_some_and(|f| f.seq > committed.seq) {
                        continue; // a later change of this report is in already
                    }
                    match committed.entity.as_deref().and_then(fact_of) {
                        Some(mut fact) => {
                            fact.seq = committed.seq;
                            map.insert(change.id.clone(), fact);
                        }
                        None => {
                            map.remove(&change.id);
                        }
                    }
                }
                None => heard.push(change.id.clone()),
            }
        }
        heard.sort_unstable();
        heard.dedup();
        if heard.len() > PATCH_MAX {
            return Ok(false);
        }
        for id in heard {
            let fact = match self.hub.get_entity(&self.reader, &id).await {
                Ok(e) => fact_of(&e),
                Err(e) if e.kind == ErrorKind::ResourceNotFound => None,
                Err(e) => return Err(e),
            };
            let map = Arc::make_mut(facts);
            match fact {
                Some(mut f) => {
                    f.seq = map.get(&id).map_or(0, |old| old.seq);
                    map.insert(id, f);
                }
                None => {
                    map.remove(&id);
                }
            }
        }
        Ok(true)
    }

    /// Reads every report, then applies the changes heard meanwhile. One at a time: a
    /// caller that waited for another's read finds the facts known and reads nothing.
    async fn read_all(&self) -> Result<(), Error> {
        let _one = self.full_read.lock().await;
        {
            let mut inner = self.inner.lock().await;
            if inner.facts.is_some() {
                return Ok(());
            }
            // What the feed holds now is older than the read below.
            let _ = self.drain(&mut inner.feed);
            inner.backlog = Some(Backlog::default());
        }
        let read = self
            .hub
            .query_all(
                &self.reader,
                EntityQuery {
                    types: Some(TypeExpr::Type(self.report_type.clone())),
                    ..Default::default()
                },
                PAGE,
            )
            .await;
        let mut inner = self.inner.lock().await;
        let drained = self.drain(&mut inner.feed);
        let mut backlog = inner.backlog.take().unwrap_or_default();
        let entities = read?;
        backlog.missed |= drained.missed;
        backlog.changes.extend(drained.changes);
        if backlog.missed {
            return Ok(());
        }
        let mut facts: Facts = Arc::new(
            entities
                .iter()
                .filter_map(|e| fact_of(e).map(|f| (e.id.clone(), f)))
                .collect(),
        );
        if self.apply(&mut facts, &backlog.changes).await? {
            inner.facts = Some(facts);
        }
        Ok(())
    }

    /// The report changes of the reader's tenant waiting in the feed.
    fn drain(&self, feed: &mut broadcast::Receiver<Arc<EntityChange>>) -> Drained {
        use broadcast::error::TryRecvError;
        let mut out = Drained::default();
        loop {
            match feed.try_recv() {
                Ok(c) if c.kind == ChangeKind::Missed => out.missed = true,
                Ok(c) => {
                    if c.tenant == self.reader.tenant.as_str()
                        && c.types.contains(&self.report_type)
                    {
                        out.changes.push(c);
                    }
                }
                Err(TryRecvError::Lagged(_)) => out.missed = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return out,
            }
        }
    }
}

/// The fact of a report entity; None (and a warning) when it is not a readable report.
fn fact_of(e: &ngsi::Entity) -> Option<Fact> {
    match model::from_entity::<Report>(e) {
        Ok(r) => Some(Fact::of(&r)),
        Err(err) => {
            tracing::warn!(error = %err, id = %e.id, "an unreadable report is left out");
            None
        }
    }
}
