//! A hub served on 127.0.0.1, in this process or as a `dothi serve` child process,
//! and the HTTP client that loads it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the hubs of a benchmark keep their data.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite files in the run's directory.
    Sqlite,
    /// A database per hub, created on this PostgreSQL server for the run (the URL
    /// names the server and a database to connect to for creating them) and dropped
    /// by [`Backend::drop_databases`].
    Postgres {
        server: String,
        created: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    },
}

impl Backend {
    pub fn postgres(server: &str) -> Backend {
        Backend::Postgres {
            server: server.to_string(),
            created: Default::default(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    /// The store URL of the hub whose SQLite file would be `db`: that file, or a
    /// new database named after it.
    pub async fn store_url(&self, db: &Path) -> anyhow::Result<String> {
        let Backend::Postgres { server, created } = self else {
            return Ok(store_url(db));
        };
        let stem: String = db
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("dothi_bench_{stem}_{}", std::process::id());
        let admin = admin(server).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        if let Ok(mut c) = created.lock() {
            c.push(name.clone());
        }
        let base = server.split('?').next().unwrap_or_default();
        let (prefix, _) = base
            .rsplit_once('/')
            .context("a PostgreSQL URL ends with /database")?;
        Ok(format!("{prefix}/{name}"))
    }

    /// The size on disk of the databases this run created (PostgreSQL), in MB.
    pub async fn databases_mb(&self) -> anyhow::Result<f64> {
        let Backend::Postgres { server, created } = self else {
            bail!("an SQLite run has files, not databases");
        };
        let names: Vec<String> = created.lock().map(|c| c.clone()).unwrap_or_default();
        let admin = admin(server).await?;
        let mut bytes = 0i64;
        for name in names {
            let row = admin
                .query_one("SELECT pg_database_size($1)", &[&name])
                .await?;
            bytes += row.get::<_, i64>(0);
        }
        Ok(bytes as f64 / 1e6)
    }

    /// Drops the databases this run created.
    pub async fn drop_databases(&self) -> anyhow::Result<()> {
        let Backend::Postgres { server, created } = self else {
            return Ok(());
        };
        let names: Vec<String> = created
            .lock()
            .map(|mut c| c.drain(..).collect())
            .unwrap_or_default();
        let admin = admin(server).await?;
        for name in names {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
        }
        Ok(())
    }
}

async fn admin(server: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A running hub over one SQLite file (or PostgreSQL database).
pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    process: Process,
}

enum Process {
    /// Served by a task of this process.
    InProcess {
        state: hub::AppState,
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    },
    /// `dothi serve` in a process of its own: the hub alone, as in production.
    Child(tokio::process::Child),
}

/// The admin key every benchmark server accepts and every benchmark client sends
/// (random for each run).
pub fn bench_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        hub::auth::secrets::new_api_key().unwrap_or_else(|_| {
            // No system randomness: a key of this run's time is still unguessable
            // enough for a loopback benchmark.
            format!(
                "bench-{:?}-{}",
                std::time::SystemTime::now(),
                std::process::id()
            )
        })
    })
}

/// The hub's configuration on a benchmark server: notifications go to receivers on
/// loopback; the load comes from one address, so the per-address limits are off.
pub fn bench_config() -> hub::HubConfig {
    let mut config = hub::HubConfig {
        outbound: std::sync::Arc::new(hub::outbound::OutboundPolicy::strict().with_loopback()),
        ..hub::HubConfig::default()
    };
    config.gate.limits.logins_per_minute = 0;
    config.gate.limits.anonymous_per_minute = 0;
    config
}

/// Makes the benchmark key an admin key of an in-process server.
pub async fn admit(state: &hub::AppState) -> anyhow::Result<()> {
    state
        .identity
        .ensure_key(
            bench_key(),
            hub::auth::identity::NewKey {
                name: "bench".into(),
                role: hub::auth::Role::Admin,
                tenants: vec![hub::auth::ALL_TENANTS.into()],
                types: None,
                expires: None,
            },
            "system:bench",
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(())
}

/// GET `url` within `timeout`, timed until the whole body is in; the time and the body
/// as JSON. An answer other than a success is an error that quotes its start.
pub async fn timed_get(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let start = Instant::now();
    let r = client.get(url).timeout(timeout).send().await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    let took = start.elapsed();
    if !status.is_success() {
        bail!(
            "answered {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        );
    }
    Ok((took, serde_json::from_slice(&bytes)?))
}

/// A keep-alive client with a connection pool, as a real load generator would use,
/// sending the benchmark key.
pub fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", bench_key()))
            .context("the benchmark key")?,
    );
    reqwest::Client::builder()
        .default_headers(headers)
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
        Server::start_on(&Backend::Sqlite, db).await
    }

    /// Serves a new store of `backend` standing for the file `db`.
    pub async fn start_on(backend: &Backend, db: &Path) -> anyhow::Result<Server> {
        Server::start_configured(backend, db, bench_config()).await
    }

    /// The same, with the hub configured as given (the benchmark key is an admin).
    pub async fn start_configured(
        backend: &Backend,
        db: &Path,
        config: hub::HubConfig,
    ) -> anyhow::Result<Server> {
        let url = backend.store_url(db).await?;
        let store = store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))?;
        let state = hub::state(store, &config)?;
        admit(&state).await?;
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
            client,
            process: Process::InProcess {
                state,
                shutdown,
                task,
            },
        })
    }

    /// Starts `dothi serve` (executable `exe`) over the store at `db`, in a process of
    /// its own, on a free port.
    pub async fn spawn(exe: &Path, db: &Path) -> anyhow::Result<Server> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        Server::spawn_at(exe, db, addr).await
    }

    /// Starts `dothi serve` over the store at `db` on `addr` (a restart on the address
    /// of a server that is gone).
    pub async fn spawn_at(exe: &Path, db: &Path, addr: SocketAddr) -> anyhow::Result<Server> {
        Server::spawn_with(exe, db, addr, &[]).await
    }

    /// Starts `dothi serve` over the store at `db` on `addr`, with further arguments
    /// of `serve` (such as `--mqtt-url`).
    pub async fn spawn_with(
        exe: &Path,
        db: &Path,
        addr: SocketAddr,
        extra: &[String],
    ) -> anyhow::Result<Server> {
        Server::spawn_store(exe, &store_url(db), addr, extra).await
    }

    /// Starts `dothi serve` over the store `url` (one of several nodes sharing a
    /// PostgreSQL database, say) on a free port.
    pub async fn spawn_url(exe: &Path, url: &str) -> anyhow::Result<Server> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        Server::spawn_store(exe, url, addr, &[]).await
    }

    async fn spawn_store(
        exe: &Path,
        url: &str,
        addr: SocketAddr,
        extra: &[String],
    ) -> anyhow::Result<Server> {
        if !exe.is_file() {
            bail!("no dothi executable at {}", exe.display());
        }
        let child = tokio::process::Command::new(exe)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--store")
            .arg(url)
            .arg("--outbound-allow")
            .arg("127.0.0.0/8")
            .args(extra)
            .env("DOTHI_ADMIN_KEY", bench_key())
            .env("DOTHI_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting dothi serve")?;
        Ok(Server {
            addr,
            client: client()?,
            process: Process::Child(child),
        })
    }

    /// The hub itself, when it is served in this process.
    pub fn hub(&self) -> anyhow::Result<&std::sync::Arc<hub::Hub>> {
        match &self.process {
            Process::InProcess { state, .. } => Ok(&state.hub),
            Process::Child(_) => bail!("the hub runs in another process"),
        }
    }

    /// The resident memory of the process serving the hub, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        match &self.process {
            Process::InProcess { .. } => super::data::rss_bytes_of("self"),
            Process::Child(child) => super::data::rss_bytes_of(&child.id()?.to_string()),
        }
    }

    /// The id of the server's process, when it runs in a process of its own.
    pub fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::InProcess { .. } => None,
        }
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

    /// SIGKILL for a `dothi serve` child (no chance to flush anything); waits for its
    /// end. In this process, the same as [`Server::stop`].
    pub async fn kill(self) -> anyhow::Result<()> {
        match self.process {
            Process::Child(mut child) => {
                child.kill().await.context("killing dothi serve")?;
                Ok(())
            }
            Process::InProcess { .. } => self.stop().await,
        }
    }

    /// Stops serving and drops everything that holds the store, so that its writer
    /// thread and connections close.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Server {
            client, process, ..
        } = self;
        drop(client);
        match process {
            Process::InProcess {
                state,
                shutdown,
                task,
            } => {
                drop(state);
                let _ = shutdown.send(());
                match tokio::time::timeout(Duration::from_secs(30), task).await {
                    Ok(joined) => joined
                        .context("the server task failed")?
                        .context("serving")?,
                    Err(_) => bail!("the server did not stop within 30 s"),
                }
            }
            Process::Child(mut child) => {
                // SIGTERM: a graceful stop, as a service manager does it.
                if let Some(pid) = child.id() {
                    let _ = tokio::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status()
                        .await;
                }
                match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                    Ok(status) => {
                        let status = status.context("waiting for dothi serve")?;
                        if !status.success() {
                            bail!("dothi serve ended with {status}");
                        }
                    }
                    Err(_) => {
                        let _ = child.kill().await;
                        bail!("dothi serve did not stop within 30 s of SIGTERM");
                    }
                }
            }
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
