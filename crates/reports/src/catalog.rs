//! What every submission reads besides its own input, kept in memory between
//! submissions: the categories (entities) and the holiday calendar (registry records).
//!
//! A category is kept as last read until the hub's change feed says that an entity of
//! a category's id changed, or that changes were missed: then every category is read
//! again when next asked for. The calendar is kept until this node replaces a year,
//! or until the store's registry generation moves (another node changed the
//! registry, or notice of such changes may have been lost). A value read while the
//! cache was dropped is not kept, so a read that raced with a change is never served
//! after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hub::{ChangeKind, EntityChange, Hub};
use tokio::sync::broadcast;

use crate::calendar::Calendar;
use crate::model::{Category, category_id};

/// The categories by code as last read; `None`: no such category.
pub struct CategoryCache {
    inner: Mutex<Categories>,
    tenant: String,
    /// The entity id of every category starts with this.
    id_prefix: String,
}

struct Categories {
    feed: broadcast::Receiver<Arc<EntityChange>>,
    /// Moves whenever the kept categories are dropped.
    generation: u64,
    by_code: HashMap<String, Option<Category>>,
}

/// A lookup in a cache: the value when kept, else the generation to keep a value
/// read now under ([`CategoryCache::keep`]).
pub enum Lookup<T> {
    Kept(T),
    Missing(u64),
}

impl CategoryCache {
    pub fn new(hub: &Hub, tenant: &str) -> CategoryCache {
        CategoryCache {
            inner: Mutex::new(Categories {
                feed: hub.subscribe_changes(),
                generation: 0,
                by_code: HashMap::new(),
            }),
            tenant: tenant.to_string(),
            id_prefix: category_id(""),
        }
    }

    /// The category of `code` as kept, after taking in the changes announced since
    /// the last lookup.
    pub fn lookup(&self, code: &str) -> Lookup<Option<Category>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Lookup::Missing(u64::MAX);
        };
        self.take_feed(&mut inner);
        match inner.by_code.get(code) {
            Some(c) => Lookup::Kept(c.clone()),
            None => Lookup::Missing(inner.generation),
        }
    }

    /// Keeps what was read of `code`, unless the cache was dropped since the lookup
    /// that missed it (the read may predate a change).
    pub fn keep(&self, code: &str, category: Option<Category>, generation: u64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        self.take_feed(&mut inner);
        if inner.generation == generation {
            inner.by_code.insert(code.to_string(), category);
        }
    }

    fn take_feed(&self, inner: &mut Categories) {
        use broadcast::error::TryRecvError;
        let mut stale = false;
        loop {
            match inner.feed.try_recv() {
                Ok(c) if c.kind == ChangeKind::Missed => stale = true,
                Ok(c) => stale |= c.tenant == self.tenant && c.id.starts_with(&self.id_prefix),
                Err(TryRecvError::Lagged(_)) => stale = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if stale {
            inner.by_code.clear();
            inner.generation += 1;
        }
    }
}

/// The holiday calendar as last read.
pub struct CalendarCache {
    kept: Mutex<Option<KeptCalendar>>,
    /// Moves when this node replaces a year.
    local: AtomicU64,
}

struct KeptCalendar {
    /// (the store's registry generation, [`CalendarCache::local`]) when read.
    at: (u64, u64),
    calendar: Arc<Calendar>,
}

impl Default for CalendarCache {
    fn default() -> Self {
        CalendarCache {
            kept: Mutex::new(None),
            local: AtomicU64::new(0),
        }
    }
}

impl CalendarCache {
    /// The calendar when kept at `registry` (the store's registry generation now), else
    /// the mark to keep one read now under.
    pub fn lookup(&self, registry: u64) -> Lookup<Arc<Calendar>> {
        let at = (registry, self.local.load(Ordering::Acquire));
        match self.kept.lock().ok().as_deref() {
            Some(Some(k)) if k.at == at => Lookup::Kept(k.calendar.clone()),
            _ => Lookup::Missing(at.1),
        }
    }

    /// Keeps a calendar read at `registry` after a lookup that gave `local`.
    pub fn keep(&self, calendar: Arc<Calendar>, registry: u64, local: u64) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some(KeptCalendar {
                at: (registry, local),
                calendar,
            });
        }
    }

    /// Drops the calendar kept (this node replaced a year).
    pub fn changed(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(l: Lookup<Arc<Calendar>>) -> Option<Arc<Calendar>> {
        match l {
            Lookup::Kept(c) => Some(c),
            Lookup::Missing(_) => None,
        }
    }

    #[test]
    fn the_calendar_is_kept_until_a_year_is_replaced_or_the_registry_moves() {
        let cache = CalendarCache::default();
        let Lookup::Missing(local) = cache.lookup(7) else {
            panic!("nothing is kept at first");
        };
        let calendar = Arc::new(Calendar::shipped());
        cache.keep(calendar.clone(), 7, local);
        assert_eq!(kept(cache.lookup(7)), Some(calendar.clone()));
        // Another node changed the registry (or notice of it was lost).
        assert_eq!(kept(cache.lookup(8)), None);
        cache.keep(calendar.clone(), 8, local);
        assert_eq!(kept(cache.lookup(8)), Some(calendar.clone()));
        // A year replaced here; a calendar read before it is not kept.
        let Lookup::Missing(before) = cache.lookup(9) else {
            panic!("the registry moved");
        };
        cache.changed();
        assert_eq!(kept(cache.lookup(8)), None);
        cache.keep(calendar.clone(), 8, before);
        assert_eq!(kept(cache.lookup(8)), None, "read before the change");
    }
}
