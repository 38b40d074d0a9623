//! The dothi data hub: the [`Hub`] service and its NGSI-LD HTTP API.
//!
//! The hub owns the NGSI-LD operations (ETSI GS CIM 009) over a [`store::Store`]; the
//! HTTP layer in [`http`] is one client of it. Only this crate (and `web`) knows
//! HTTP; the hub never touches SQL.

pub mod audit;
pub mod auth;
pub mod changes;
pub mod contexts;
pub mod duties;
pub mod grants;
pub mod hosted_contexts;
pub mod http;
pub mod metrics;
pub mod notifier;
pub mod outbound;
pub mod periodic;
pub mod retention;
pub mod service;
pub mod subscriptions;
pub mod temporal;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use changes::{ChangeKind, Committed, EntityChange};
pub use http::{AppState, Component, HttpConfig, Permission, RouteRule, router, rule};
pub use service::{Hub, Imported, Records, Scope};

/// How the hub is set up.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub http: HttpConfig,
    /// How long fetching a remote @context may take.
    pub context_fetch_timeout: Duration,
    /// Largest remote @context accepted.
    pub context_max_bytes: usize,
    /// How long history is kept (by default, whole).
    pub retention: retention::RetentionPolicy,
    /// Users, sessions, lockout, identity providers.
    pub identity: auth::IdentityConfig,
    /// The front door: `--insecure`, public metrics, CORS, TLS.
    pub gate: http::gate::GateConfig,
    /// How long audit records are kept.
    pub audit: audit::AuditPolicy,
    /// Which addresses requests made for callers may reach (remote @contexts,
    /// notifications).
    pub outbound: Arc<outbound::OutboundPolicy>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// The base URL callers reach the hub at (`https://hub.example.gov.vn`), which
    /// the URLs it gives out for @contexts start with; without it, the origin each
    /// request was sent to.
    pub public_url: Option<String>,
}

/// The PEM files of native TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            http: HttpConfig::default(),
            context_fetch_timeout: Duration::from_secs(5),
            context_max_bytes: 1024 * 1024,
            retention: retention::RetentionPolicy::default(),
            identity: auth::IdentityConfig::default(),
            gate: http::gate::GateConfig::default(),
            audit: audit::AuditPolicy::default(),
            outbound: Arc::new(outbound::OutboundPolicy::strict()),
            tls: None,
            public_url: None,
        }
    }
}

/// Builds the application state over a store.
pub fn state(
    store: Arc<dyn store::Store>,
    config: &HubConfig,
) -> Result<AppState, outbound::OutboundError> {
    let contexts = contexts::ContextResolver::new(
        store.clone(),
        config.context_fetch_timeout,
        config.context_max_bytes,
        config.public_url.as_deref(),
        &config.outbound,
    )?;
    Ok(AppState {
        identity: Arc::new(auth::Identity::new(store.clone(), config.identity.clone())),
        gate: Arc::new(http::gate::GateConfig {
            tls: config.tls.is_some() || config.gate.tls,
            ..config.gate.clone()
        }),
        tls: config.tls.clone(),
        audit: Arc::new(config.audit.clone()),
        hub: Arc::new({
            let hub = Hub::new(store, contexts, config.outbound.clone());
            if config.audit.record_writes {
                hub
            } else {
                hub.without_write_audit()
            }
        }),
        config: Arc::new(config.http.clone()),
        metrics: Arc::new(metrics::Metrics::default()),
        retention: Arc::new(config.retention.clone()),
        duties: Arc::default(),
    })
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Vec::new(), shutdown).await
}

/// Serves the API and, beside it, the routes of other components (the IoT agent's
/// `/iot/...`, the web app), which must not define a fallback of their own; all of
/// them behind the one front door. The node's background work runs meanwhile.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    components: Vec<Component>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Node::run(state).serve(listener, components, shutdown).await
}

/// A running hub: its state, and the background work it owns while it lives — the
/// duties (notifier, periodic notifications, history purge, audit sealing) on the one
/// node of a shared store holding them, and the change feed shared with the other
/// nodes. Serving is separate ([`Node::serve`]); dropping the node stops the work.
pub struct Node {
    pub state: AppState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Builds the hub over a store and starts its background work (inside a tokio
    /// runtime).
    pub fn start(
        store: Arc<dyn store::Store>,
        config: &HubConfig,
    ) -> Result<Node, outbound::OutboundError> {
        Ok(Node::run(state(store, config)?))
    }

    /// Starts the background work of a hub already built.
    pub fn run(state: AppState) -> Node {
        let mut tasks = vec![duties::spawn(
            state.hub.clone(),
            (*state.retention).clone(),
            (*state.audit).clone(),
            state.duties.clone(),
        )];
        tasks.extend(changes::share(state.hub.clone()));
        Node { state, tasks }
    }

    /// Serves the node's routes and the components' on `listener` (HTTPS when the
    /// configuration names TLS files) until `shutdown` resolves; then the node stops.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        components: Vec<Component>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = serve_only(listener, self.state.clone(), components, shutdown).await;
        self.stop().await;
        served
    }

    /// Stops the background work and waits until it has let go of the hub (a store
    /// reopened afterwards at the same place finds no one else writing).
    pub async fn stop(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Only serves: the router behind its front door, over plain HTTP or TLS.
async fn serve_only(
    listener: tokio::net::TcpListener,
    state: AppState,
    components: Vec<Component>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = state.tls.clone();
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(http::TrimSlash(router(state, components)));
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(files) => {
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await?;
            let handle = axum_server::Handle::new();
            let stopping = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopping.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(app)
                .await
        }
    }
}
