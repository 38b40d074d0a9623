//! The facts of every report ([`Fact`]: what the statistics need), kept in memory
//! between reads and brought up to date from the hub's change feed. A read first takes
//! in the changes since the last one: the reports changed are read again one by one,
//! or every report is, when too many changed or changes were missed. So statistics
//! over a province's year cost a pass over memory, not a read of every report.

use std::collections::HashMap;
use std::sync::Arc;

use hub::{ChangeKind, EntityChange, Hub, Scope};
use ngsi::{Context, Error, ErrorKind};
use tokio::sync::{Mutex, broadcast};

use crate::model::{self, Report, SERVICE_REQUEST};
use crate::stats::Fact;

/// Changed reports read again one by one at most; beyond, all are read again.
const PATCH_MAX: usize = 500;

/// Facts by report entity id.
pub type Facts = Arc<HashMap<String, Fact>>;

pub struct FactCache {
    inner: Mutex<Inner>,
    report_type: String,
}

struct Inner {
    feed: broadcast::Receiver<Arc<EntityChange>>,
    facts: Option<Facts>,
}

/// What the feed brought since the last read.
enum Pending {
    /// These reports changed.
    Some(Vec<String>),
    /// Anything may have changed.
    All,
}

impl FactCache {
    pub fn new(hub: &Hub) -> FactCache {
        FactCache {
            inner: Mutex::new(Inner {
                feed: hub.subscribe_changes(),
                facts: None,
            }),
            report_type: Context::core().expand(SERVICE_REQUEST),
        }
    }

    /// The facts as of now. `read_all` reads every report (when the cache is cold or
    /// too much changed).
    pub async fn current<F, Fut>(
        &self,
        hub: &Hub,
        reader: &Scope,
        read_all: F,
    ) -> Result<Facts, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Report>, Error>>,
    {
        let mut inner = self.inner.lock().await;
        let pending = self.take_feed(&mut inner.feed, reader.tenant.as_str());
        let facts = match (inner.facts.take(), pending) {
            (Some(mut facts), Pending::Some(ids)) => {
                for id in ids {
                    let fact = match hub.get_entity(reader, &id).await {
                        Ok(e) => model::from_entity::<Report>(&e).ok().map(|r| Fact::of(&r)),
                        Err(e) if e.kind == ErrorKind::ResourceNotFound => None,
                        Err(e) => return Err(e),
                    };
                    let map = Arc::make_mut(&mut facts);
                    match fact {
                        Some(f) => map.insert(id, f),
                        None => map.remove(&id),
                    };
                }
                facts
            }
            _ => {
                let all = read_all().await?;
                Arc::new(
                    all.iter()
                        .map(|r| (model::report_id(&r.service_request_id), Fact::of(r)))
                        .collect(),
                )
            }
        };
        inner.facts = Some(facts.clone());
        Ok(facts)
    }

    fn take_feed(
        &self,
        feed: &mut broadcast::Receiver<Arc<EntityChange>>,
        tenant: &str,
    ) -> Pending {
        use broadcast::error::TryRecvError;
        let mut ids = Vec::new();
        let mut all = false;
        loop {
            match feed.try_recv() {
                Ok(c) if c.kind == ChangeKind::Missed => all = true,
                Ok(c) => {
                    if c.tenant == tenant && c.types.contains(&self.report_type) {
                        ids.push(c.id.clone());
                    }
                }
                Err(TryRecvError::Lagged(_)) => all = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if all || ids.len() > PATCH_MAX {
            Pending::All
        } else {
            Pending::Some(ids)
        }
    }
}
