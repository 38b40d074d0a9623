//! How the nodes sharing one database coordinate: each keeps one control connection
//! beside its pool.
//!
//! - It listens for what other nodes announce with `NOTIFY`: new outbox rows (so the
//!   node delivering them wakes at once), registry changes (so that caches of
//!   registry records are dropped) and the messages of [`crate::Store::announce`].
//! - It holds the duties lock, a session advisory lock, while this node runs the
//!   background duties ([`crate::Store::duties`]): one node at a time delivers the
//!   outbox, so each notification is sent by one node. The server frees the lock
//!   with the session, so a node that dies or loses the database hands the duties to
//!   another within about a second ([`CHECK`]).
//!
//! The connection is checked every [`CHECK`]; when it fails, the duties are given up
//! at once and the node reconnects by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

/// The session lock the node running the duties holds.
const DUTIES_LOCK: i64 = 0x646f_7468_695f_6475; // "dothi_du"
/// The channel announcing new outbox rows.
pub(super) const OUTBOX_CHANNEL: &str = "dothi_outbox";
/// The channel announcing registry changes.
pub(super) const REGISTRY_CHANNEL: &str = "dothi_registry";
/// The channel of [`crate::Store::announce`].
pub(super) const ANNOUNCE_CHANNEL: &str = "dothi_announce";
/// Announcements kept for a receiver that falls behind.
const ANNOUNCEMENTS_KEPT: usize = 1_024;

/// How often the control connection is checked (and the duties lock tried).
const CHECK: Duration = Duration::from_secs(1);
/// How long a check or a connection attempt may take before the connection counts
/// as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the control connection shares with the store.
pub(super) struct Shared {
    /// Wakes the notifier: notifications from other nodes and this node's commits.
    pub wake: Arc<Notify>,
    /// Moves with every registry change announced, and on every reconnection
    /// (announcements may have been missed meanwhile).
    pub registry_generation: AtomicU64,
    /// Whether this node holds the duties.
    pub duties: watch::Sender<bool>,
    /// Whether this node wants the duties (someone called `duties`).
    pub wanted: AtomicBool,
    /// Pokes the control loop (the duties were just wanted).
    pub poke: Notify,
    /// The messages of [`crate::Store::announce`], as received.
    pub announcements: tokio::sync::broadcast::Sender<Arc<str>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            wake: Arc::new(Notify::new()),
            registry_generation: AtomicU64::new(0),
            duties: watch::channel(false).0,
            wanted: AtomicBool::new(false),
            poke: Notify::new(),
            announcements: tokio::sync::broadcast::channel(ANNOUNCEMENTS_KEPT).0,
        }
    }

    fn holds_duties(&self) -> bool {
        *self.duties.borrow()
    }
}

/// Aborts a task when dropped: the store's background tasks end with it.
pub(super) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the control connection up, for as long as the task runs.
pub(super) async fn run(config: tokio_postgres::Config, shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        let ended = session(&config, &shared, &mut failing).await;
        shared.duties.send_replace(false);
        if !failing {
            tracing::warn!(reason = %ended, "lost the control connection to PostgreSQL; reconnecting");
        }
        failing = true;
        tokio::time::sleep(CHECK).await;
    }
}

/// One control connection, until it fails: why it ended.
async fn session(
    config: &tokio_postgres::Config,
    shared: &Arc<Shared>,
    failing: &mut bool,
) -> String {
    let (client, mut connection) =
        match tokio::time::timeout(CHECK_TIMEOUT, config.connect(NoTls)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return "connecting timed out".into(),
        };
    // The connection is driven here, where its notifications are read.
    let (closed, mut on_close) = tokio::sync::oneshot::channel::<String>();
    let listener = shared.clone();
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let why = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => match n.channel() {
                    OUTBOX_CHANNEL => listener.wake.notify_one(),
                    REGISTRY_CHANNEL => {
                        listener.registry_generation.fetch_add(1, Ordering::Relaxed);
                    }
                    ANNOUNCE_CHANNEL if !n.payload().is_empty() => {
                        let _ = listener.announcements.send(Arc::from(n.payload()));
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "the server closed the connection".to_string(),
            }
        };
        let _ = closed.send(why);
    }));
    // The server notices a vanished node within seconds too, and frees its lock.
    let setup = format!(
        "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3;
         LISTEN {OUTBOX_CHANNEL}; LISTEN {REGISTRY_CHANNEL}; LISTEN {ANNOUNCE_CHANNEL}"
    );
    match tokio::time::timeout(CHECK_TIMEOUT, client.batch_execute(&setup)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "setting up timed out".into(),
    }
    if *failing {
        tracing::info!("control connection to PostgreSQL back");
        *failing = false;
    }
    // Announcements may have been missed while away.
    shared.registry_generation.fetch_add(1, Ordering::Relaxed);
    shared.wake.notify_one();
    let _ = shared.announcements.send(Arc::from(""));
    loop {
        let take = shared.wanted.load(Ordering::Relaxed) && !shared.holds_duties();
        let check = async {
            if take {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&DUTIES_LOCK])
                    .await?;
                Ok::<bool, tokio_postgres::Error>(row.get(0))
            } else {
                client.simple_query("").await.map(|_| false)
            }
        };
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(true)) => {
                tracing::info!("this node runs the background duties (delivering notifications)");
                shared.duties.send_replace(true);
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return "a check timed out".into(),
        }
        tokio::select! {
            why = &mut on_close => return why.unwrap_or_default(),
            () = tokio::time::sleep(CHECK) => {}
            () = shared.poke.notified() => {}
        }
    }
}

/// Passes this node's commits that queued notifications on: to its own notifier when
/// it holds the duties, else to the node that does (`NOTIFY`; that node also polls,
/// so a lost announcement only delays).
pub(super) async fn announce_commits(commits: Arc<Notify>, shared: Arc<Shared>, pool: Pool) {
    loop {
        commits.notified().await;
        if shared.holds_duties() {
            shared.wake.notify_one();
            continue;
        }
        if let Ok(c) = pool.get().await
            && let Err(e) = c
                .execute("SELECT pg_notify($1, '')", &[&OUTBOX_CHANNEL])
                .await
        {
            tracing::debug!(error = %e, "could not announce new notifications");
        }
    }
}
