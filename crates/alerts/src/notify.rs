//! The notification half of the service: policies, silences and inhibitions kept as
//! registry records (CRUD), and the delivery loop on the node holding the duties.
//!
//! Each round ([`Alerts::deliver`]) reads the open alerts of every tenant that has
//! policies, routes them into groups, lets each group say what it is due to send
//! ([`crate::delivery`]), writes those messages to an outbox, then sends what is due
//! in the outbox, retrying failures with a growing delay. Groups and the outbox are
//! registry records (collections [`GROUPS`], [`OUTBOX`]): a restart, or another node
//! taking the duties over, carries on where the last left off. A message is written
//! to the outbox before its group records it as sent, so a crash between the two
//! sends it twice rather than never.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hub::Scope;
use hub::auth::Access;
use ngsi::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::RegistryWrite;

use crate::delivery::{self, Group, Member, Notice};
use crate::policy::{
    self, Channel, Inhibition, InhibitionSpec, Labels, MAX_RECORDS, Policy, PolicySpec, Record,
    Silence, SilenceSpec,
};
use crate::service::{Alerts, TENANTS, store_error};

/// Registry collections: groups by (tenant, policy and digest); outbox messages by
/// (tenant, id).
pub const GROUPS: &str = "alerts.groups";
pub const OUTBOX: &str = "alerts.outbox";
/// Most open alerts read per tenant and round.
const MAX_OPEN: usize = 10_000;
const PAGE: usize = 1_000;
/// Attempts at one message before it is given up; the delay doubles from one
/// second up to five minutes.
pub const MAX_ATTEMPTS: u32 = 6;
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Messages sent at once.
const SEND_BATCH: usize = 64;
/// The open alerts are read again at least this often (clock time), even when the
/// change feed told of no change.
const REREAD: TimeDelta = TimeDelta::seconds(30);

/// A message waiting to be sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutboxItem {
    channel: Channel,
    payload: Value,
    attempts: u32,
    next_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// One tenant's policies, silences and inhibitions, checked.
#[derive(Default)]
struct TenantConfig {
    policies: Vec<Policy>,
    silences: Vec<Silence>,
    inhibitions: Vec<Inhibition>,
}

/// What the delivery loop holds while it runs.
#[derive(Default)]
pub(crate) struct Delivery {
    loaded: bool,
    /// The registry generation and local version the configuration was read at.
    config_at: Option<(u64, u64)>,
    config: HashMap<String, Arc<TenantConfig>>,
    groups: BTreeMap<(String, String), Group>,
    outbox: BTreeMap<(String, String), OutboxItem>,
    /// When the open alerts were last read, and what was read by tenant.
    read_at: Option<DateTime<Utc>>,
    routed: HashMap<String, Routed>,
}

/// What one reading of a tenant's open alerts says: their labels (the sources of
/// inhibitions), and the (group, alert) pairs they route to.
#[derive(Default, Clone)]
struct Routed {
    open: Vec<Labels>,
    seen: HashSet<(String, String)>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InternalError, e.to_string())
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Alerts {
    // Records: policies, silences, inhibitions.

    /// Checks and stores a new record (`Create`; an id is made when it has none) or
    /// replaces one.
    pub async fn put_record<T: Record>(
        &self,
        scope: &Scope,
        mut record: T,
        mode: RegistryWrite,
    ) -> Result<T, Error> {
        scope.check(Access::Write)?;
        let now = self.now();
        if record.id().is_empty() && mode == RegistryWrite::Create {
            record.set_id(uuid::Uuid::new_v4().simple().to_string());
        }
        record.stamp(&scope.caller.actor, now);
        record.check(now, &self.hub().outbound())?;
        if !self.senders.has_smtp()
            && record
                .channels()
                .iter()
                .any(|c| matches!(c, Channel::Email { .. }))
        {
            return Err(Error::new(
                ErrorKind::OperationNotSupported,
                "e-mail channels need an SMTP relay, and this server has none configured",
            ));
        }
        let value = serde_json::to_value(&record).map_err(internal)?;
        self.store_record(
            scope,
            T::COLLECTION,
            (T::NOUN, T::PLURAL, MAX_RECORDS),
            record.id(),
            value,
            mode,
        )
        .await?;
        self.config_changed();
        Ok(record)
    }

    pub async fn get_record<T: Record>(&self, scope: &Scope, id: &str) -> Result<T, Error> {
        let value = self
            .stored_record(scope, T::COLLECTION, T::NOUN, id)
            .await?;
        serde_json::from_value(value).map_err(internal)
    }

    pub async fn list_records<T: Record>(
        &self,
        scope: &Scope,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<T>), Error> {
        self.stored_records(scope, T::COLLECTION, offset, limit)
            .await
    }

    pub async fn delete_record<T: Record>(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        self.delete_stored_record(scope, T::COLLECTION, T::NOUN, id)
            .await?;
        self.config_changed();
        Ok(())
    }

    /// Stores one item of a tenant's collection, or replaces it.
    async fn upsert(
        &self,
        collection: &str,
        tenant: &str,
        id: &str,
        item: &impl Serialize,
    ) -> Result<(), Error> {
        let value = serde_json::to_value(item).map_err(internal)?;
        self.hub()
            .records()
            .registry_put(
                collection,
                tenant,
                vec![(id.to_string(), value)],
                RegistryWrite::Upsert,
            )
            .await
            .map_err(store_error)
    }

    fn config_changed(&self) {
        self.config_version.fetch_add(1, Ordering::Relaxed);
    }

    // Delivery.

    /// The delivery loop, while this node holds the duties: a round every tick; the
    /// open alerts are read again when the change feed says an alert changed (or
    /// may have), and every [`REREAD`] whatever it says.
    pub(crate) async fn deliver_forever(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let alert_type = ngsi::Context::core().expand(crate::alert::ALERT_TYPE);
        let mut feed = self.hub().subscribe_changes();
        let mut feed_open = true;
        let mut timer = tokio::time::interval(self.settings.tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {
                    if let Err(e) = self.deliver().await {
                        tracing::warn!(error = %e, "alerts: delivery failed; it is retried on the next tick");
                    }
                }
                change = feed.recv(), if feed_open => match change {
                    Ok(c) if c.types.contains(&alert_type) || c.kind == hub::ChangeKind::Missed => {
                        self.alerts_changed.store(true, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => self.alerts_changed.store(true, Ordering::Relaxed),
                    Err(RecvError::Closed) => feed_open = false,
                },
            }
        }
    }

    /// Forgets what the delivery loop held (the duties went elsewhere).
    pub(crate) async fn reset_delivery(&self) {
        *self.delivery.lock().await = Delivery::default();
    }

    /// One round: routes the open alerts into groups, writes the messages they are
    /// due to the outbox, and sends what is due in it.
    pub async fn deliver(&self) -> Result<(), Error> {
        // Only the node holding the duties sends, whoever calls.
        if !*self.hub().duties().borrow() {
            return Ok(());
        }
        let mut d = self.delivery.lock().await;
        if !d.loaded {
            self.load_delivery(&mut d).await?;
        }
        let config_at = d.config_at;
        self.refresh_config(&mut d).await?;
        let now = self.now();
        // Read the open alerts again when one changed, the configuration changed, or
        // a while has passed; timers need no reading.
        let changed = self.alerts_changed.swap(false, Ordering::Relaxed);
        let reread = changed
            || config_at != d.config_at
            || d.read_at
                .is_none_or(|t| now.signed_duration_since(t) >= REREAD || now < t);
        if reread {
            d.read_at = Some(now);
            d.routed.clear();
        }
        let mut tenants: Vec<String> = d
            .config
            .iter()
            .filter(|(_, c)| !c.policies.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        for (t, _) in d.groups.keys() {
            if !tenants.contains(t) {
                tenants.push(t.clone());
            }
        }
        for tenant in tenants {
            self.deliver_tenant(&mut d, &tenant, now).await?;
        }
        self.send_due(&mut d, now).await
    }

    async fn tenants(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .list_all(TENANTS, "")
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    async fn load_delivery(&self, d: &mut Delivery) -> Result<(), Error> {
        for tenant in self.tenants().await? {
            for r in self.list_all(GROUPS, &tenant).await? {
                if let Ok(g) = serde_json::from_value::<Group>(r.value) {
                    d.groups.insert((tenant.clone(), r.key), g);
                }
            }
            for r in self.list_all(OUTBOX, &tenant).await? {
                if let Ok(item) = serde_json::from_value::<OutboxItem>(r.value) {
                    d.outbox.insert((tenant.clone(), r.key), item);
                }
            }
        }
        d.loaded = true;
        Ok(())
    }

    async fn refresh_config(&self, d: &mut Delivery) -> Result<(), Error> {
        let at = (
            self.hub().records().registry_generation(),
            self.config_version.load(Ordering::Relaxed),
        );
        if d.config_at == Some(at) {
            return Ok(());
        }
        let mut config = HashMap::new();
        for tenant in self.tenants().await? {
            let mut c = TenantConfig::default();
            for r in self.list_all(policy::POLICIES, &tenant).await? {
                match serde_json::from_value::<PolicySpec>(r.value)
                    .map_err(internal)
                    .and_then(|s| s.compile())
                {
                    Ok(p) => c.policies.push(p),
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, policy = %r.key, error = %e, "alerts: a stored policy no longer compiles; skipped")
                    }
                }
            }
            c.policies
                .sort_by(|a, b| (a.spec.order, &a.spec.id).cmp(&(b.spec.order, &b.spec.id)));
            for r in self.list_all(policy::SILENCES, &tenant).await? {
                if let Ok(s) = serde_json::from_value::<SilenceSpec>(r.value)
                    .map_err(internal)
                    .and_then(|s| s.compile())
                {
                    c.silences.push(s);
                }
            }
            for r in self.list_all(policy::INHIBITIONS, &tenant).await? {
                if let Ok(i) = serde_json::from_value::<InhibitionSpec>(r.value)
                    .map_err(internal)
                    .and_then(|s| s.compile())
                {
                    c.inhibitions.push(i);
                }
            }
            config.insert(tenant, Arc::new(c));
        }
        d.config = config;
        d.config_at = Some(at);
        Ok(())
    }

    /// The open alerts of a tenant (at most [`MAX_OPEN`]), as entities.
    async fn open_alerts(&self, tenant: &str) -> Result<Vec<ngsi::Entity>, Error> {
        let scope = Scope::system(crate::service::COMPONENT, tenant);
        let mut out = Vec::new();
        while out.len() < MAX_OPEN {
            let spec = hub::http::params::QuerySpec {
                types: Some(crate::alert::ALERT_TYPE.into()),
                q: Some("status!=\"resolved\"".into()),
                ..Default::default()
            };
            let query = spec.build(&scope.ctx, PAGE, out.len(), false)?;
            let page = match self.hub().query(&scope, query).await {
                Ok(p) => p,
                Err(e) if e.kind == ErrorKind::NonExistentTenant => break,
                Err(e) => return Err(e),
            };
            let n = page.entities.len();
            out.extend(page.entities);
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn deliver_tenant(
        &self,
        d: &mut Delivery,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let config = d.config.get(tenant).cloned().unwrap_or_default();
        let routed = match d.routed.get(tenant) {
            Some(r) => r.clone(),
            None => {
                let r = self.route_open(d, tenant, &config).await?;
                d.routed.insert(tenant.to_string(), r.clone());
                r
            }
        };
        let Routed {
            open: open_labels,
            seen,
        } = routed;
        let muted = |m: &Member| {
            config.silences.iter().any(|s| s.mutes(&m.labels, now))
                || config
                    .inhibitions
                    .iter()
                    .any(|i| i.mutes(&m.labels, open_labels.iter()))
        };
        let keys: Vec<(String, String)> = d
            .groups
            .range((tenant.to_string(), String::new())..)
            .take_while(|(k, _)| k.0 == tenant)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(mut group) = d.groups.get(&key).cloned() else {
                continue;
            };
            let before = group.clone();
            // Alerts no longer open here resolved (or left the policy's routes).
            for (id, m) in group.members.iter_mut() {
                if m.open() && !seen.contains(&(key.1.clone(), id.clone())) {
                    m.status = "resolved".into();
                    m.alert["status"] = json!("resolved");
                    m.alert["validTo"] = json!(ngsi::entity::format_time(&now));
                }
            }
            let mut notices: Vec<Notice> = Vec::new();
            match config.policies.iter().find(|p| p.spec.id == group.policy) {
                Some(p) => {
                    notices.extend(delivery::flush(&mut group, p, now, &muted));
                    notices.extend(delivery::escalate(&mut group, p, now, &muted));
                }
                // The policy is gone: so is its group.
                None => group.members.clear(),
            }
            for notice in &notices {
                self.enqueue(d, tenant, notice, now).await?;
            }
            if group.members.is_empty() {
                self.hub()
                    .records()
                    .registry_delete(GROUPS, tenant, &key.1)
                    .await
                    .map_err(store_error)?;
                d.groups.remove(&key);
            } else {
                if group != before {
                    self.upsert(GROUPS, tenant, &key.1, &group).await?;
                }
                d.groups.insert(key, group);
            }
        }
        Ok(())
    }

    /// Reads a tenant's open alerts and routes each into its groups (members added,
    /// or refreshed from the alert as it is now).
    async fn route_open(
        &self,
        d: &mut Delivery,
        tenant: &str,
        config: &TenantConfig,
    ) -> Result<Routed, Error> {
        let open = if config.policies.is_empty() {
            vec![]
        } else {
            self.open_alerts(tenant).await?
        };
        let mut open_labels: Vec<Labels> = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for e in &open {
            let concise = crate::http::alert_json(e);
            let labels = crate::alert::labels_of(&concise);
            let status = concise["status"].as_str().unwrap_or("firing").to_string();
            for p in policy::route(&config.policies, &labels, e) {
                let values = p.group_values(&labels);
                let key = (tenant.to_string(), delivery::group_key(&p.spec.id, &values));
                let group = d.groups.entry(key.clone()).or_insert_with(|| Group {
                    policy: p.spec.id.clone(),
                    labels: p
                        .group_by
                        .iter()
                        .cloned()
                        .zip(values.iter().cloned())
                        .collect(),
                    ..Default::default()
                });
                match group.members.get_mut(&e.id) {
                    Some(m) => {
                        m.alert = concise.clone();
                        m.labels = labels.clone();
                        m.status = status.clone();
                    }
                    None => {
                        group.members.insert(
                            e.id.clone(),
                            Member {
                                alert: concise.clone(),
                                labels: labels.clone(),
                                status: status.clone(),
                                notified_at: None,
                                escalated: 0,
                            },
                        );
                    }
                }
                seen.insert((key.1, e.id.clone()));
            }
            open_labels.push(labels);
        }
        Ok(Routed {
            open: open_labels,
            seen,
        })
    }

    /// Writes a notice's messages, one a channel, to the outbox.
    async fn enqueue(
        &self,
        d: &mut Delivery,
        tenant: &str,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut rows = Vec::new();
        for channel in &notice.channels {
            let item = OutboxItem {
                payload: delivery::payload(tenant, notice, &channel.languages(), now),
                channel: channel.clone(),
                attempts: 0,
                next_at: now,
                last_error: None,
            };
            // Sorts by time: older messages go first.
            let id = format!(
                "{:014}-{}",
                now.timestamp_millis().max(0),
                uuid::Uuid::new_v4().simple()
            );
            rows.push((id, item));
        }
        let values = rows
            .iter()
            .map(|(id, item)| Ok((id.clone(), serde_json::to_value(item).map_err(internal)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.hub()
            .records()
            .registry_put(OUTBOX, tenant, values, RegistryWrite::Upsert)
            .await
            .map_err(store_error)?;
        for (id, item) in rows {
            tracing::info!(tenant = %tenant, policy = %notice.policy, firing = notice.firing.len(), resolved = notice.resolved.len(), escalation = ?notice.escalation.as_ref().map(|e| e.0), "alerts: notification queued");
            d.outbox.insert((tenant.to_string(), id), item);
        }
        Ok(())
    }

    /// Sends the outbox messages that are due, at most [`SEND_BATCH`] at once.
    async fn send_due(&self, d: &mut Delivery, now: DateTime<Utc>) -> Result<(), Error> {
        let due: Vec<((String, String), OutboxItem)> = d
            .outbox
            .iter()
            .filter(|(_, item)| item.next_at <= now)
            .take(SEND_BATCH)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let results = futures_util::future::join_all(
            due.iter()
                .map(|(_, item)| self.senders.send(&item.channel, &item.payload)),
        )
        .await;
        let records = self.hub().records();
        for ((key, mut item), result) in due.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    records
                        .registry_delete(OUTBOX, &key.0, &key.1)
                        .await
                        .map_err(store_error)?;
                    d.outbox.remove(&key);
                }
                Err(e) => {
                    item.attempts += 1;
                    if item.attempts >= MAX_ATTEMPTS {
                        tracing::warn!(tenant = %key.0, channel = item.channel.kind(), error = %e, attempts = item.attempts, "alerts: a notification was given up");
                        records
                            .registry_delete(OUTBOX, &key.0, &key.1)
                            .await
                            .map_err(store_error)?;
                        d.outbox.remove(&key);
                        continue;
                    }
                    tracing::info!(tenant = %key.0, error = %e, attempts = item.attempts, "alerts: a notification failed; it is retried");
                    item.next_at = later(now, backoff(item.attempts));
                    item.last_error = Some(e);
                    self.upsert(OUTBOX, &key.0, &key.1, &item).await?;
                    d.outbox.insert(key, item);
                }
            }
        }
        Ok(())
    }

    /// The messages waiting in the outbox of a tenant (what every node sees).
    pub async fn pending_notifications(&self, tenant: &str) -> Result<u64, Error> {
        Ok(self
            .hub()
            .records()
            .registry_list(OUTBOX, tenant, 0, 1)
            .await
            .map_err(store_error)?
            .count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
