//! Periodic notifications (`timeInterval`): every [`TICK`], each periodic subscription
//! that is due gets a notification of the entities it selects now, queued in the
//! outbox like any other, so [`crate::notifier`] delivers it with the same
//! guarantees.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ngsi::Entity;
use ngsi::subscription::{EntityChange, Subscription};
use store::{EntityQuery, StoreError};

use crate::service::Hub;

/// How often periodic subscriptions are looked at.
pub const TICK: Duration = Duration::from_secs(1);
/// The most entities one periodic notification reports.
pub const MAX_ENTITIES: usize = 1_000;
/// Subscriptions read per tenant and tick, at most.
const MAX_SUBSCRIPTIONS: u64 = 100_000;

/// Starts the periodic notifications; they run until the task is aborted.
pub fn spawn(hub: Arc<Hub>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut queued = HashMap::new();
        loop {
            tokio::time::sleep(TICK).await;
            if let Err(e) = tick(&hub, &mut queued, ngsi::entity::now()).await {
                tracing::warn!(error = %e, "periodic notifications failed; retried later");
            }
        }
    })
}

/// One look at every tenant's periodic subscriptions; `queued` remembers when each
/// was last queued (the delivery time is known only once it is sent). Returns how
/// many notifications were queued.
pub async fn tick(
    hub: &Hub,
    queued: &mut HashMap<(String, String), DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let store = hub.store();
    let mut tenants = store.tenants().await?;
    if !tenants.iter().any(|t| t.is_empty()) {
        tenants.push(String::new());
    }
    let mut sent = 0;
    for tenant in tenants {
        let page = store
            .subscription_list(&tenant, 0, MAX_SUBSCRIPTIONS)
            .await?;
        for stored in page.subscriptions {
            let sub = stored.subscription;
            if sub.time_interval.is_none() {
                continue;
            }
            let key = (tenant.clone(), sub.id.clone());
            let last = match (queued.get(&key), stored.delivery.last_notification) {
                (Some(q), Some(d)) => Some((*q).max(d)),
                (q, d) => q.copied().or(d),
            };
            if !sub.periodic_due(last, now) {
                continue;
            }
            queued.insert(key, now);
            match notify(hub, &tenant, &sub, now).await {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(subscription = %sub.id, error = %e, "periodic notification skipped")
                }
            }
        }
    }
    Ok(sent)
}

/// Queues the notification of one periodic subscription; false when it selects no
/// entity (nothing is sent then).
async fn notify(
    hub: &Hub,
    tenant: &str,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> Result<bool, ngsi::Error> {
    let compiled = sub.compile()?;
    let queries: Vec<EntityQuery> = if sub.entities.is_empty() {
        vec![EntityQuery {
            limit: MAX_ENTITIES,
            ..Default::default()
        }]
    } else {
        sub.entities
            .iter()
            .map(|s| {
                Ok(EntityQuery {
                    ids: s.id.iter().cloned().collect(),
                    types: Some(ngsi::query::parse_type_expr(&s.entity_type).map_err(|e| {
                        ngsi::Error::bad_data(format!("stored type selection: {e}"))
                    })?),
                    limit: MAX_ENTITIES,
                    ..Default::default()
                })
            })
            .collect::<Result<_, ngsi::Error>>()?
    };
    let mut found: BTreeMap<String, Entity> = BTreeMap::new();
    for query in queries {
        let page = hub
            .store()
            .query(tenant, query)
            .await
            .map_err(crate::service::store_error)?;
        for e in page.entities {
            if found.len() < MAX_ENTITIES && compiled.selects(&e) && compiled.filters_match(&e) {
                found.insert(e.id.clone(), e);
            }
        }
    }
    let Some(first) = found.keys().next().cloned() else {
        return Ok(false);
    };
    let ctx = hub.contexts.resolve(&sub.notification_context()).await?;
    let changes: Vec<EntityChange<'_>> = found
        .values()
        .map(|e| EntityChange {
            before: None,
            after: Some(e),
        })
        .collect();
    let payload = compiled.notification(
        &changes,
        &ctx,
        format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4()),
        now,
    );
    hub.store()
        .outbox_push(tenant, &sub.id, &first, payload)
        .await
        .map_err(crate::service::store_error)?;
    Ok(true)
}
