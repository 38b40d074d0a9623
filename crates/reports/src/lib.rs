//! Citizen field reports (phản ánh hiện trường) of dothi: intake over Open311 GeoReport
//! v2 (with FixMyStreet's updates), routing to a commune and an agency, the workflow and
//! its deadlines in Vietnamese working days, statistics. See `docs/reports.md`.
//!
//! Reports and categories are NGSI-LD entities (`Open311_ServiceRequest`,
//! `Open311_ServiceType`) written through the in-process [`hub::Hub`], so history,
//! subscriptions, queries and exports work on them as on any entity.
//!
//! **Invariants:** entities are written through `hub::Hub` only, and the store is used
//! for registry records alone. The reporter's personal data is never in an entity, a
//! public answer or a log: it is a registry record ([`private`]) read only by staff
//! holding the "see reporter" right (each read audited) and by the reporter through
//! their tracking token. Every input is bounded; bad input is a 4xx and stores nothing.

pub mod calendar;
mod catalog;
pub mod demo;
mod doc;
mod facts;
pub mod http;
pub mod media;
pub mod model;
pub mod open311;
pub mod places;
pub mod private;
pub mod public;
pub mod service;
pub mod stats;
pub mod workflow;

use std::sync::Arc;
use std::time::Duration;

pub use http::{ROUTE_RULES, routes};
pub use model::{Category, Report, Stage};
pub use service::{NewReport, Reports, ReportsConfig};

/// How often resolved reports are closed and old contacts erased.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The service over a hub's state: the communes' boundaries are loaded once (off the
/// async threads).
pub async fn start(
    state: &hub::AppState,
    config: ReportsConfig,
) -> Result<Arc<Reports>, city::Error> {
    let places = tokio::task::spawn_blocking(places::Places::load)
        .await
        .map_err(|e| city::Error::Placement {
            what: "the communes' boundaries".into(),
            why: e.to_string(),
        })??;
    let reports = Reports::new(
        state.hub.clone(),
        state.identity.clone(),
        Arc::new(places),
        config,
    );
    reports.leave_uncompared_out_of_the_index().await?;
    reports.read_facts_in_background();
    Ok(Arc::new(reports))
}

/// Reads the statistics' facts once (so that the first reader of the statistics does
/// not wait for every report to be read), then runs [`Reports::sweep`] every
/// [`SWEEP_EVERY`] until the task is aborted.
pub fn spawn_sweep(reports: Arc<Reports>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = reports.stats(stats::By::All, None, None).await {
            tracing::warn!(error = %e, "reports: the statistics' facts could not be read");
        }
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            match reports.sweep().await {
                Ok((closed, erased)) if closed + erased > 0 => {
                    tracing::info!(
                        closed,
                        erased,
                        "reports: resolved reports closed, contacts erased"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reports: sweep failed"),
            }
        }
    })
}

/// The service's routes and their permissions, to serve beside the hub's.
pub fn component(reports: Arc<Reports>) -> hub::Component {
    hub::Component {
        router: routes(reports),
        rules: ROUTE_RULES.to_vec(),
    }
}
