//! Which subscriptions a change fires, whatever the backend: one tenant's
//! subscriptions compiled and indexed by the entity ids and types their selectors
//! name, so that a change looks only at those that may select it. A backend loads
//! them from its rows and writes the notifications this returns into its outbox, in
//! the transaction of the change.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ngsi::context::is_core_context_url;
use ngsi::query::ast::TypeExpr;
use ngsi::subscription::{CompiledSubscription, EntityChange, Subscription};
use ngsi::{Context, Entity};
use serde_json::Value;

/// One tenant's subscriptions that can fire on a change.
#[derive(Default)]
pub(crate) struct TenantWatchers {
    subs: Vec<Watcher>,
    /// Entity id → indexes in `subs` of the subscriptions with a selector naming it
    /// by `id`.
    by_id: HashMap<String, Vec<usize>>,
    /// Type IRI → indexes in `subs` of the subscriptions with a selector that names
    /// it and no `id` (an `idPattern`, or the type alone).
    by_type: HashMap<String, Vec<usize>>,
    /// Subscriptions with no selector (any entity).
    any: Vec<usize>,
}

struct Watcher {
    compiled: CompiledSubscription,
    ctx: Arc<Context>,
    /// When its last notification was written to the outbox (throttling).
    last_queued: Option<DateTime<Utc>>,
}

/// A notification a change fired: the subscription's id and the Notification.
pub(crate) struct Fired {
    pub subscription: String,
    pub payload: Value,
}

fn type_names(t: &TypeExpr, out: &mut Vec<String>) {
    match t {
        TypeExpr::Type(name) => out.push(name.clone()),
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            for i in items {
                type_names(i, out);
            }
        }
    }
}

/// The context that compacts a subscription's notifications, built from the cached
/// remote documents `cached` returns (the hub resolves a subscription's context
/// before storing it, so they are there); the core context if that fails.
fn notification_context(
    sub: &Subscription,
    cached: &dyn Fn(&str) -> Option<Value>,
) -> Arc<Context> {
    let value = sub.notification_context();
    if matches!(&value, Value::String(url) if is_core_context_url(url)) {
        return Context::core();
    }
    match Context::build(&value, &cached) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            tracing::warn!(subscription = %sub.id, error = ?e, "notification @context unavailable; using the core context");
            Context::core()
        }
    }
}

impl TenantWatchers {
    /// Compiles a tenant's subscriptions from their stored rows: (the Subscription as
    /// JSON text, its last notification). `cached` reads a cached @context document.
    pub fn load(
        tenant: &str,
        rows: Vec<(String, Option<DateTime<Utc>>)>,
        cached: &dyn Fn(&str) -> Option<Value>,
    ) -> TenantWatchers {
        let mut out = TenantWatchers::default();
        for (doc, last) in rows {
            let sub: Subscription = match serde_json::from_str(&doc) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(tenant, error = %e, "corrupt subscription skipped");
                    continue;
                }
            };
            // Paused and periodic subscriptions never fire on a change.
            if !sub.is_active || sub.time_interval.is_some() {
                continue;
            }
            let compiled = match sub.compile() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(tenant, subscription = %sub.id, error = %e.detail, "subscription skipped");
                    continue;
                }
            };
            let i = out.subs.len();
            if sub.entities.is_empty() {
                out.any.push(i);
            } else {
                // A selector with an `id` selects that entity only: found by its id.
                // The others (an `idPattern`, or the type alone) by the types they name.
                let mut ids = Vec::new();
                let mut names = Vec::new();
                for s in &sub.entities {
                    if let Some(id) = &s.id {
                        ids.push(id.clone());
                        continue;
                    }
                    match ngsi::query::parse_type_expr(&s.entity_type) {
                        Ok(t) => type_names(&t, &mut names),
                        Err(_) => continue,
                    }
                }
                ids.sort();
                ids.dedup();
                for id in ids {
                    out.by_id.entry(id).or_default().push(i);
                }
                names.sort();
                names.dedup();
                for n in names {
                    out.by_type.entry(n).or_default().push(i);
                }
            }
            out.subs.push(Watcher {
                ctx: notification_context(&sub, cached),
                compiled,
                last_queued: last,
            });
        }
        out
    }

    /// Whether some subscription can fire on a change.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The notification of each subscription the change fires, in the order the
    /// subscriptions were loaded; each counts as queued at `now` (throttling).
    pub fn fire(
        &mut self,
        before: Option<&Entity>,
        after: Option<&Entity>,
        now: DateTime<Utc>,
    ) -> Vec<Fired> {
        let mut candidates: Vec<usize> = self.any.clone();
        for e in [before, after].into_iter().flatten() {
            if let Some(found) = self.by_id.get(&e.id) {
                candidates.extend(found);
            }
            for t in &e.types {
                if let Some(found) = self.by_type.get(t) {
                    candidates.extend(found);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut out = Vec::new();
        for i in candidates {
            let watcher = &mut self.subs[i];
            let sub = watcher.compiled.subscription();
            if watcher.compiled.triggered(before, after, now).is_none() {
                continue;
            }
            // Throttling: a change within `throttling` seconds of the last
            // notification queued for the subscription is not notified.
            if sub.throttled(watcher.last_queued, now) {
                continue;
            }
            let subscription = sub.id.clone();
            let payload = watcher.compiled.notification(
                &[EntityChange { before, after }],
                &watcher.ctx,
                format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4()),
                now,
            );
            watcher.last_queued = Some(now);
            out.push(Fired {
                subscription,
                payload,
            });
        }
        out
    }
}
