//! The hub in this process, over the store `serve` would use: for commands that work
//! on the data directly (`import`, `export`) rather than over HTTP.

use anyhow::Context as _;
use clap::Args;

/// Which store and which tenant.
#[derive(Args, Clone, Debug)]
pub struct HubArgs {
    /// Where data lives, as for `serve`: sqlite://path/to/file.db
    #[arg(long, env = "DOTHI_STORE", default_value = crate::config::DEFAULT_STORE)]
    pub store: String,
    /// The tenant (as the NGSILD-Tenant header names it); default: the default tenant.
    #[arg(long, env = "DOTHI_TENANT", default_value = "")]
    pub tenant: String,
}

/// Opens the store and the hub on it; the scope of the tenant, in the core @context.
pub async fn open(args: &HubArgs) -> anyhow::Result<(hub::AppState, hub::Scope)> {
    let tenant = checked_tenant(&args.tenant)?;
    let store = store::open(&args.store)
        .await
        .with_context(|| format!("opening the store {}", args.store))?;
    let state = hub::state(store, &hub::HubConfig::default())?;
    let scope = hub::Scope::system("cli", tenant);
    Ok((state, scope))
}

/// The tenant name, checked as the HTTP API checks its header.
fn checked_tenant(name: &str) -> anyhow::Result<String> {
    let mut headers = axum::http::HeaderMap::new();
    if !name.is_empty() {
        let value = axum::http::HeaderValue::from_str(name)
            .map_err(|_| anyhow::anyhow!("--tenant {name:?} is not a valid tenant name"))?;
        headers.insert("NGSILD-Tenant", value);
    }
    hub::http::negotiate::tenant(&headers).map_err(|e| anyhow::anyhow!("--tenant: {}", e.detail))
}
