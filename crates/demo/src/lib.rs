//! The Quảng Trị demo (`dothi demo`), assembled from what each service ships: the data
//! set ([`city`]), one simulated device per demo sensor and a year of their readings
//! ([`sensors`]), a year of citizen reports, the plan's scorecard with its sample, the
//! alert presets, and the open data catalogue published over all of them.
//!
//! Each loader is idempotent (a second start finds the demo there and changes nothing)
//! and logs what it loaded. The binary calls them in the order the services start;
//! the open data catalogue comes last, as it publishes what the others loaded.

pub mod sensors;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

pub use sensors::{DEMO_APIKEY, DEMO_TENANT};

/// Loads the Quảng Trị data set; the hour its observations are dated to (the demo's
/// history ends there).
pub async fn load_city(hub: &hub::Hub) -> anyhow::Result<DateTime<Utc>> {
    let report = city::load(hub)
        .await
        .context("loading the Quảng Trị data set")?;
    tracing::info!(
        entities = report.entities(),
        created = report.created,
        build_ms = report.build_time.as_millis() as u64,
        write_ms = report.write_time.as_millis() as u64,
        "Quảng Trị data set loaded (administrative units and demo layers)"
    );
    Ok(report.observed_at)
}

/// The demo's categories and a year of reports.
pub async fn load_reports(reports: &Arc<reports::Reports>) -> anyhow::Result<()> {
    let loaded = reports::demo::load(reports)
        .await
        .context("loading the demo reports")?;
    tracing::info!(
        categories = loaded.categories,
        reports = loaded.reports,
        "demo reports loaded"
    );
    Ok(())
}

/// The plan, its synthetic dossier sample and the KPIs' demo history.
pub async fn load_scorecard(scorecard: &scorecard::Scorecard) -> anyhow::Result<()> {
    let r = scorecard::demo::load(scorecard)
        .await
        .context("loading the scorecard's demo")?;
    tracing::info!(
        created = r.created,
        dossiers = r.dossiers,
        computed = r.computed,
        history = r.history,
        "plan scorecard loaded (synthetic dossier sample, demo KPI history)"
    );
    Ok(())
}

/// The demo's service group and one device per demo sensor.
pub async fn provision_devices(agent: &iot::Agent) -> anyhow::Result<()> {
    let p = sensors::provision(agent).await?;
    tracing::info!(
        created = p.created,
        replaced = p.replaced,
        unchanged = p.unchanged,
        apikey = DEMO_APIKEY,
        "demo devices provisioned (one per demo sensor)"
    );
    Ok(())
}

/// The alert presets for the demo sensors' types, and the demo's inhibitions.
pub async fn load_alerts(alerts: &alerts::Alerts) -> anyhow::Result<()> {
    let types: Vec<&str> = city::demo::sensors()
        .iter()
        .map(|s| s.entity_type)
        .collect();
    let created = alerts::load_presets(alerts, alerts::presets::demo(&types))
        .await
        .context("loading the demo's alert rules")?;
    tracing::info!(created, "demo alert rules loaded");
    let created = alerts::load_preset_records(alerts, alerts::presets::demo_inhibitions())
        .await
        .context("loading the demo's alert inhibitions")?;
    tracing::info!(created, "demo alert inhibitions loaded");
    Ok(())
}

/// Publishes the demo datasets on the open data portal, then computes the scorecard's
/// KPIs (its open data KPIs read the catalogue just published). `base` is the
/// server's address, for the log.
pub async fn publish_open_data(
    hub: Arc<hub::Hub>,
    scorecard: &scorecard::Scorecard,
    base: &str,
) -> anyhow::Result<()> {
    let portal = opendata::Portal::new(hub);
    let report = opendata::load_demo(&portal)
        .await
        .map_err(|e| anyhow::anyhow!("publishing the demo datasets: {e}"))?;
    tracing::info!(
        datasets = report.datasets.len(),
        organizations = report.organizations,
        skipped = ?report.skipped,
        "open data portal: demo datasets published ({base}/catalog.ttl, /api/3/action/package_list)"
    );
    let computed = scorecard
        .recompute(DEMO_TENANT)
        .await
        .context("computing the scorecard's KPIs")?;
    tracing::info!(
        computed = computed.iter().filter(|r| r.value.is_some()).count(),
        "plan scorecard: KPIs computed over the loaded demo"
    );
    Ok(())
}
