//! The background duties: delivering the outbox ([`crate::notifier`]), periodic
//! notifications ([`crate::periodic`]), the history purge ([`crate::retention`]) and
//! sealing the audit log ([`crate::audit`]).
//!
//! Several nodes may serve one database; these duties run on one of them at a time,
//! the one the store grants them to ([`store::Store::duties`]), so that each
//! notification is sent by one node. When a node loses them (its database connection
//! failed) they stop there at once, and whichever node takes them next starts them
//! afresh from the outbox: a notification in flight at that moment may be sent
//! twice, none is lost. On an embedded store this node holds them for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audit::AuditPolicy;
use crate::retention::RetentionPolicy;
use crate::service::Hub;
use crate::{notifier, periodic};

/// Runs the duties whenever this node holds them, until the task is aborted; `running`
/// says whether they run.
pub fn spawn(
    hub: Arc<Hub>,
    retention: RetentionPolicy,
    audit: AuditPolicy,
    running: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = hub.store().duties();
        loop {
            if held.wait_for(|h| *h).await.is_err() {
                // The store's grant can no longer change: held for good, or never.
                if !*held.borrow() {
                    return;
                }
            }
            let tasks = Running::start(&hub, &retention, &audit, running.clone());
            // A closed grant that was true stays true: the duties run until aborted.
            if held.wait_for(|h| !*h).await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::warn!("this node gave up the background duties");
            drop(tasks);
        }
    })
}

/// The duties' tasks, aborted when dropped (the flag then turns false).
struct Running(Vec<tokio::task::JoinHandle<()>>, Arc<AtomicBool>);

impl Running {
    fn start(
        hub: &Arc<Hub>,
        retention: &RetentionPolicy,
        audit: &AuditPolicy,
        flag: Arc<AtomicBool>,
    ) -> Running {
        let mut tasks = vec![
            notifier::spawn(hub.clone()),
            periodic::spawn(hub.clone()),
            crate::audit::spawn(hub.store().clone(), audit.clone()),
        ];
        tasks.extend(retention.clone().spawn(hub.clone()));
        flag.store(true, Ordering::Relaxed);
        Running(tasks, flag)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.1.store(false, Ordering::Relaxed);
        for task in &self.0 {
            task.abort();
        }
    }
}
