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

/// The facts, shared by their readers (a change copies them only while one still
/// holds them).
pub type Facts = Arc<FactTable>;

/// Side of a cell of the grid that places the facts, in degrees (about 1.1 km).
const CELL: f64 = 0.01;

/// Facts by report entity id, and the ids of those with a place by grid cell, so that
/// a map view looks at the reports of its cells only.
#[derive(Clone, Default)]
pub struct FactTable {
    by_id: HashMap<String, Fact>,
    cells: HashMap<(i32, i32), Vec<String>>,
}

impl FactTable {
    pub fn values(&self) -> impl Iterator<Item = &Fact> {
        self.by_id.values()
    }

    /// The facts that may lie in the box `[min lon, min lat, max lon, max lat]`: those
    /// of the cells it touches (a superset; the caller tests each).
    pub fn near(&self, [x0, y0, x1, y1]: [f64; 4]) -> Box<dyn Iterator<Item = &Fact> + '_> {
        let (cx0, cy0) = cell((x0, y0));
        let (cx1, cy1) = cell((x1, y1));
        let touched = (i64::from(cx1) - i64::from(cx0) + 1) * (i64::from(cy1) - i64::from(cy0) + 1);
        if touched > self.cells.len() as i64 {
            return Box::new(self.by_id.values());
        }
        Box::new(
            (cx0..=cx1)
                .flat_map(move |x| (cy0..=cy1).map(move |y| (x, y)))
                .filter_map(|c| self.cells.get(&c))
                .flatten()
                .filter_map(|id| self.by_id.get(id)),
        )
    }

    fn get(&self, id: &str) -> Option<&Fact> {
        self.by_id.get(id)
    }

    fn insert(&mut self, id: String, fact: Fact) {
        let place = fact.tested.location.map(cell);
        match self.by_id.insert(id.clone(), fact) {
            Some(old) if old.tested.location.map(cell) == place => return,
            Some(old) => self.unplace(&id, old.tested.location.map(cell)),
            None => {}
        }
        if let Some(c) = place {
            self.cells.entry(c).or_default().push(id);
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            self.unplace(id, old.tested.location.map(cell));
        }
    }

    fn unplace(&mut self, id: &str, place: Option<(i32, i32)>) {
        if let Some(c) = place
            && let Some(ids) = self.cells.get_mut(&c)
        {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.cells.remove(&c);
            }
        }
    }
}

impl FromIterator<(String, Fact)> for FactTable {
    fn from_iter<I: IntoIterator<Item = (String, Fact)>>(iter: I) -> Self {
        let mut table = FactTable::default();
        for (id, fact) in iter {
            table.insert(id, fact);
        }
        table
    }
}

/// The grid cell of a point (longitude, latitude); far-off values are clamped.
fn cell((lon, lat): (f64, f64)) -> (i32, i32) {
    let at = |v: f64| (v / CELL).floor().clamp(-40_000.0, 40_000.0) as i32;
    (at(lon), at(lat))
}

pub struct FactCache {
    hub: Arc<Hub>,
    reader: Scope,
    report_type: String,
    inner: Mutex<Inner>,
    /// Held by the one full read at a time.
    full_read: Mutex<()>,
    following: AtomicBool,
    /// A background full read has been started and has not ended: lists asked
    /// meanwhile do not start another.
    reading_behind: AtomicBool,
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
            reading_behind: AtomicBool::new(false),
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
        if facts.is_none() && !self.reading_behind.swap(true, Ordering::AcqRel) {
            let cache = self.clone();
            tokio::spawn(async move {
                if let Err(e) = cache.current().await {
                    tracing::warn!(error = %e, "reports: the facts could not be read");
                }
                cache.reading_behind.store(false, Ordering::Release);
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
                    let table = Arc::make_mut(facts);
                    if table.get(&change.id).is_some_and(|f| f.seq > committed.seq) {
                        continue; // a later change of this report is in already
                    }
                    match committed.entity.as_deref().and_then(fact_of) {
                        Some(mut fact) => {
                            fact.seq = committed.seq;
                            table.insert(change.id.clone(), fact);
                        }
                        None => table.remove(&change.id),
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
            let table = Arc::make_mut(facts);
            match fact {
                Some(mut f) => {
                    f.seq = table.get(&id).map_or(0, |old| old.seq);
                    table.insert(id, f);
                }
                None => table.remove(&id),
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
        // Page by page, each page's entities let go once their facts are taken: a
        // province's year of reports read whole would take gigabytes at once.
        let read = self.read_facts().await;
        let mut inner = self.inner.lock().await;
        let drained = self.drain(&mut inner.feed);
        let mut backlog = inner.backlog.take().unwrap_or_default();
        let mut facts: Facts = Arc::new(read?);
        backlog.missed |= drained.missed;
        backlog.changes.extend(drained.changes);
        if backlog.missed {
            return Ok(());
        }
        if self.apply(&mut facts, &backlog.changes).await? {
            inner.facts = Some(facts);
        }
        Ok(())
    }

    /// Every report's fact, read a page at a time.
    async fn read_facts(&self) -> Result<FactTable, Error> {
        let facts = each_report(&self.hub, &self.reader, |r| {
            Some((model::report_id(&r.service_request_id), Fact::of(&r)))
        })
        .await?;
        Ok(facts.into_iter().collect())
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

/// What `keep` takes of every report, read a page at a time: memory holds one page of
/// reports (and what is kept), not a province's year of them at once.
pub(crate) async fn each_report<T>(
    hub: &Hub,
    reader: &Scope,
    mut keep: impl FnMut(Report) -> Option<T>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = hub
            .query(
                reader,
                EntityQuery {
                    types: Some(TypeExpr::Type(Context::core().expand(SERVICE_REQUEST))),
                    limit: PAGE,
                    after,
                    ..Default::default()
                },
            )
            .await?;
        after = page.next(PAGE);
        out.extend(
            page.entities
                .iter()
                .filter_map(model::readable_report)
                .filter_map(&mut keep),
        );
        if after.is_none() {
            return Ok(out);
        }
    }
}

/// The fact of a report entity; None (and a warning) when it is not a readable report.
fn fact_of(e: &ngsi::Entity) -> Option<Fact> {
    model::readable_report(e).map(|r| Fact::of(&r))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{Report, report_id};

    fn in_box(f: &Fact, [x0, y0, x1, y1]: [f64; 4]) -> bool {
        f.tested
            .location
            .is_some_and(|(x, y)| x >= x0 && x <= x1 && y >= y0 && y <= y1)
    }

    /// The ids `near` finds in a box, tested, sorted; and those a scan finds.
    fn found(table: &FactTable, bbox: [f64; 4]) -> (Vec<String>, Vec<String>) {
        let mut near: Vec<String> = table
            .near(bbox)
            .filter(|f| in_box(f, bbox))
            .map(|f| f.service_request_id.clone())
            .collect();
        let mut scan: Vec<String> = table
            .values()
            .filter(|f| in_box(f, bbox))
            .map(|f| f.service_request_id.clone())
            .collect();
        near.sort();
        scan.sort();
        (near, scan)
    }

    #[test]
    fn the_grid_finds_what_a_scan_finds_as_reports_move_and_go() {
        let places = crate::places::Places::load().unwrap();
        let calendar = crate::calendar::Calendar::shipped();
        let reports: Vec<Report> =
            crate::demo::reports(&places, &calendar, "2026-06-01T08:00:00Z".parse().unwrap());
        let mut table: FactTable = reports
            .iter()
            .map(|r| (report_id(&r.service_request_id), Fact::of(r)))
            .collect();
        let boxes = |reports: &[Report]| {
            let mut out = vec![
                // The whole province, and the world (both scan every fact).
                [106.0, 16.0, 108.0, 18.0],
                [-180.0, -90.0, 180.0, 90.0],
                // An empty box, and a box on no report.
                [107.1, 16.8, 107.1, 16.8],
                [106.1, 16.1, 106.11, 16.11],
            ];
            for (i, r) in reports.iter().enumerate().step_by(97) {
                let p = r.location.unwrap();
                let d = [0.0005, 0.005, 0.01, 0.05][i % 4];
                out.push([p.lon() - d, p.lat() - d, p.lon() + d, p.lat() + d]);
            }
            out
        };
        for bbox in boxes(&reports) {
            let (near, scan) = found(&table, bbox);
            assert_eq!(near, scan, "{bbox:?}");
        }
        // A report moves to another's place (another cell), one is placed no more,
        // one is gone; the grid follows.
        let mut moved = reports[0].clone();
        moved.location = reports[1500].location;
        table.insert(report_id(&moved.service_request_id), Fact::of(&moved));
        let mut unplaced = reports[1].clone();
        unplaced.location = None;
        table.insert(report_id(&unplaced.service_request_id), Fact::of(&unplaced));
        table.remove(&report_id(&reports[2].service_request_id));
        let now: Vec<Report> = reports[3..].to_vec();
        for bbox in boxes(&now) {
            let (near, scan) = found(&table, bbox);
            assert_eq!(near, scan, "{bbox:?}");
        }
        let p = moved.location.unwrap();
        let (near, _) = found(&table, [p.lon(), p.lat(), p.lon(), p.lat()]);
        assert!(near.contains(&moved.service_request_id));
        let total: usize = table.cells.values().map(Vec::len).sum();
        assert_eq!(total, reports.len() - 2, "every placed fact in one cell");
    }
}
