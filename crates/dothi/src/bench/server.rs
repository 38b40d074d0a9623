//! A hub served in this process on 127.0.0.1:0, and the HTTP client that loads it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running hub over one SQLite file.
pub struct Server {
    pub addr: SocketAddr,
    pub state: hub::AppState,
    pub client: reqwest::Client,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A keep-alive client with a connection pool, as a real load generator would use.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

pub fn store_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

impl Server {
    /// Opens (or creates) the store at `db` and serves it.
    pub async fn start(db: &Path) -> anyhow::Result<Server> {
        let url = store_url(db);
        let store = store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))?;
        let state = hub::state(store, &hub::HubConfig::default());
        Server::serve(state, client()?).await
    }

    /// Serves `state` on a fresh port; `client` talks to it.
    pub async fn serve(state: hub::AppState, client: reqwest::Client) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(hub::serve(listener, state.clone(), async move {
            let _ = stop.await;
        }));
        Ok(Server {
            addr,
            state,
            client,
            shutdown,
            task,
        })
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Waits for the first 200 of /health; returns how long it took.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send().await
                && r.status().is_success()
            {
                let _ = r.bytes().await;
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("the hub did not answer /health within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// `NGSILD-Results-Count` of GET /entities?{query}&limit=0&count=true.
    pub async fn count(&self, query: &str) -> anyhow::Result<u64> {
        let url = self.url(&format!("/ngsi-ld/v1/entities?{query}&limit=0&count=true"));
        let r = self.client.get(&url).send().await?;
        let status = r.status();
        let n = r
            .headers()
            .get("NGSILD-Results-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = r.text().await.unwrap_or_default();
        match n {
            Some(n) if status.is_success() => Ok(n),
            _ => bail!("count query {url} answered {status}: {body}"),
        }
    }

    /// Stops serving and drops everything that holds the store, so that its writer
    /// thread and connections close.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Server {
            state,
            client,
            shutdown,
            task,
            ..
        } = self;
        drop(client);
        drop(state);
        let _ = shutdown.send(());
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(joined) => joined
                .context("the server task failed")?
                .context("serving")?,
            Err(_) => bail!("the server did not stop within 30 s"),
        }
        Ok(())
    }
}

/// Waits until SQLite has checkpointed and removed the WAL of `db` (what the last
/// connection does on close), up to `timeout`; returns whether it did.
pub async fn wait_wal_gone(db: &Path, timeout: Duration) -> bool {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let start = Instant::now();
    while wal.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// How many file descriptors of this process point at `db` or its WAL (Linux; 0
/// elsewhere): a sign of connections still open.
pub fn open_fds(db: &Path) -> usize {
    let Ok(db) = db.canonicalize() else {
        return 0;
    };
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == db || *target == wal)
        .count()
}
