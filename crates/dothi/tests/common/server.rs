//! The whole server in this test's process, composed as `dothi serve` composes it:
//! the hub's routes and `/auth/v1`, the IoT agent's, the web app's, citizen reports',
//! the open data portal's, alerts' and the plan scorecard's, behind one front door
//! (without their periodic work: the tests call it when they need it). Over a fresh
//! SQLite file, or with `DOTHI_TEST_STORE=postgres` over a fresh PostgreSQL database
//! (`DOTHI_TEST_DATABASE_URL` names the server), dropped with it
//! (`hub::test_support`).

use std::sync::Arc;
use std::time::Duration;

use hub::test_support::{TestHub, TestStore};

pub use super::ADMIN_KEY;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub state: hub::AppState,
    /// A client that sends the admin key.
    pub admin: reqwest::Client,
    /// Every route the server declares: the hub's and `/auth/v1`'s, then each
    /// component's, as the front door was given them.
    pub rules: Vec<hub::RouteRule>,
    pub reports: Arc<reports::Reports>,
    pub alerts: Arc<alerts::Alerts>,
    pub scorecard: Arc<scorecard::Scorecard>,
    _hub: TestHub,
}

impl Server {
    pub async fn start() -> Server {
        let mut config = hub::HubConfig::default();
        config.http.openapi_extra.push(web::OPENAPI);
        config.http.openapi_extra.push(alerts::OPENAPI);
        config.http.openapi_extra.push(scorecard::OPENAPI);
        config.outbound = Arc::new(hub::outbound::OutboundPolicy::strict().with_loopback());
        let mut hub = TestHub::new(TestStore::fresh("server").await, &config, ADMIN_KEY).await;
        let state = hub.state.clone();
        let base = hub.base.clone();
        let agent = Arc::new(iot::Agent::for_hub(&state));
        let reports = reports::start(
            &state,
            reports::ReportsConfig {
                base_url: base.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("citizen reports");
        let alerts = Arc::new(alerts::Alerts::new(state.hub.clone()));
        let scorecard = Arc::new(
            scorecard::Scorecard::new(state.hub.clone()).with_audit(state.identity.clone()),
        );
        // The same services, in the same order, as `dothi serve`.
        let components = vec![
            iot::component(agent),
            web::component(state.hub.clone(), web::WebConfig::default()),
            reports::component(reports.clone()),
            opendata::component(state.hub.clone(), opendata::OpendataConfig::default()),
            alerts::component(alerts.clone()),
            scorecard::component(scorecard.clone()),
        ];
        let rules = hub::http::ROUTES
            .iter()
            .chain(hub::http::auth_api::ROUTES)
            .copied()
            .chain(components.iter().flat_map(|c| c.rules.iter().copied()))
            .collect();
        hub.serve(components);
        Server {
            base,
            state,
            admin: client(Some(ADMIN_KEY)),
            rules,
            reports,
            alerts,
            scorecard,
            _hub: hub,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[allow(unused_imports)]
pub use hub::test_support::ensure_key;

/// A client sending `key` as its bearer credential (none: anonymous), following no
/// redirect.
pub fn client(key: Option<&str>) -> reqwest::Client {
    hub::test_support::client_builder(key)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client")
}
