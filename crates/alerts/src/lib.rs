//! Alerts and rules over the dothi hub (`docs/alerts.md`).
//!
//! Rules are data (`rule`): a scope of entities, a condition on them (threshold,
//! comparison with another attribute, rate of change, staleness, `q`), a clear
//! condition, for-duration, keep-firing-for, severity, labels and messages in
//! Vietnamese and English. They are kept as the store's registry records, so every
//! node sees them. Alerts are NGSI-LD `Alert` entities (`alert`), one per incident of
//! a (rule, entity), so history, queries and subscriptions serve them as any entity.
//! `eval` holds evaluation as pure functions; `service` runs it from the hub's change
//! feed and a timer on the node holding the duties; `backtest` runs it over history.
//! Notification policies, silences and inhibitions are data too (`policy`); groups
//! and their timers are pure functions (`delivery`); `notify` routes open alerts into
//! groups and keeps an outbox on the same node, and `channel` sends on webhooks,
//! e-mail and MQTT.
//!
//! **Invariants:** the crate reads and writes through [`hub::Hub`] only (entities, and
//! the registry through [`hub::Hub::records`]); it never opens the store. An incident
//! is persisted before the alert it raises, and an alert's id is a function of its
//! incident, so a restart neither loses nor doubles an alert.

mod alert;
mod backlog;
mod backtest;
mod channel;
mod delivery;
mod eval;
mod http;
mod notify;
mod policy;
pub mod presets;
mod rule;
mod service;
mod stream;

pub use alert::{ALERT_TYPE, Status, alert_id};
pub use backtest::{BacktestRequest, run as backtest};
pub use channel::{SmtpRelay, SmtpSecurity};
pub use eval::{Incident, Observation, Phase};
pub use http::{ROUTE_RULES, alert_json, component, routes};
pub use notify::{GROUPS, OUTBOX};
pub use policy::{InhibitionSpec, PolicySpec, Record, SilenceSpec};
pub use rule::{ConditionSpec, Op, Rule, RuleSpec, Severity, parse_duration};
pub use service::{
    Alerts, Clock, HandAction, INCIDENTS, ManualClock, RULES, Settings, SystemClock,
};

/// The description of the `/alerts/v1/` routes, merged into the hub's `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Loads rules into the default tenant, leaving those that exist as they are (for
/// `dothi demo`). Returns how many were created.
pub async fn load_presets(alerts: &Alerts, rules: Vec<RuleSpec>) -> Result<usize, ngsi::Error> {
    let scope = hub::Scope::system(service::COMPONENT, "");
    create_missing(rules, |r| {
        alerts.put_rule(&scope, r, store::RegistryWrite::Create)
    })
    .await
}

/// Loads policies, silences or inhibitions into the default tenant, leaving those
/// that exist as they are (for `dothi demo`). Returns how many were created.
pub async fn load_preset_records<T: Record>(
    alerts: &Alerts,
    records: Vec<T>,
) -> Result<usize, ngsi::Error> {
    let scope = hub::Scope::system(service::COMPONENT, "");
    create_missing(records, |r| {
        alerts.put_record(&scope, r, store::RegistryWrite::Create)
    })
    .await
}

/// Creates each item with `create`, counting those created; one that exists already
/// is left alone.
async fn create_missing<T, R, F: std::future::Future<Output = Result<R, ngsi::Error>>>(
    items: Vec<T>,
    create: impl Fn(T) -> F,
) -> Result<usize, ngsi::Error> {
    let mut created = 0;
    for item in items {
        match create(item).await {
            Ok(_) => created += 1,
            Err(e) if e.kind == ngsi::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_in_openapi() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("openapi.json");
        for r in super::ROUTE_RULES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not in openapi.json",
                r.method,
                r.path
            );
        }
    }
}
