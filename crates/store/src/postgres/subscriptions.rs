//! The registry, subscriptions and the outbox in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ngsi::subscription::Subscription;
use serde_json::Value;

use super::write::OUTBOX_LOCK;
use super::{PostgresStore, count_of, ms, optional_row, pg_error, refuse_nul, rows};
use crate::{
    Delivery, OutboxRow, RegistryPage, RegistryRecord, RegistryStore, RegistryWrite, StoreError,
    StoreResult, StoredSubscription, SubscriptionPage, SubscriptionWrite,
};

/// How long rows taken by [`crate::Store::outbox_due`] stay claimed by the node that
/// took them: another node may take them after, if this one has not reported.
const CLAIM: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn parse(what: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("corrupt {what}: {e}")))
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const SUBSCRIPTION_COLUMNS: &str =
    "doc::text, times_sent, times_failed, last_notification, last_success, last_failure";

fn stored(r: &tokio_postgres::Row) -> StoreResult<StoredSubscription> {
    let delivery = Delivery {
        times_sent: count(r.get(1)),
        times_failed: count(r.get(2)),
        last_notification: r.get(3),
        last_success: r.get(4),
        last_failure: r.get(5),
    };
    crate::subscription::stored(r.get(0), delivery)
}

const OUTBOX_COLUMNS: &str =
    "id, tenant, subscription, entity, payload::text, created_at, attempts, next_attempt_at";

fn outbox_row(r: &tokio_postgres::Row) -> StoreResult<OutboxRow> {
    let id: i64 = r.get(0);
    let payload: String = r.get(4);
    Ok(OutboxRow {
        id,
        tenant: r.get(1),
        subscription_id: r.get(2),
        entity_id: r.get(3),
        payload: parse(&format!("outbox row {id}"), &payload)?,
        created_at: r.get(5),
        attempts: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        next_attempt_at: r.get(7),
    })
}

impl PostgresStore {
    pub(super) async fn put_subscription(
        &self,
        tenant: &str,
        subscription: Subscription,
        mode: SubscriptionWrite,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<()> {
        let doc = crate::subscription::document(&subscription)?;
        refuse_nul(&doc)?;
        let id = subscription.id;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let sql = match mode {
            SubscriptionWrite::Create => {
                "INSERT INTO subscriptions (tenant, id, doc) VALUES ($1, $2, $3::text::jsonb) ON CONFLICT DO NOTHING"
            }
            SubscriptionWrite::Replace => {
                "UPDATE subscriptions SET doc = $3::text::jsonb WHERE tenant = $1 AND id = $2"
            }
        };
        let n = tx
            .execute(sql, &[&tenant, &id, &doc])
            .await
            .map_err(pg_error)?;
        if n == 0 {
            return Err(mode.refusal(&id));
        }
        bump_version(&tx, tenant).await?;
        if let Some(record) = &audit {
            super::audit::insert(&tx, record).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    pub(super) async fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<StoredSubscription>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant = $1 AND id = $2"
        );
        let row = optional_row(&c, &sql, &[&tenant, &id]).await?;
        row.as_ref().map(stored).transpose()
    }

    pub(super) async fn list_subscriptions(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage> {
        let c = self.client().await?;
        let total = count_of(
            &c,
            "SELECT count(*) FROM subscriptions WHERE tenant = $1",
            &[&tenant],
        )
        .await?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant = $1
             ORDER BY id COLLATE \"C\" LIMIT $2 OFFSET $3"
        );
        let page = rows(&c, &sql, &[&tenant, &big(limit), &big(offset)]).await?;
        Ok(SubscriptionPage {
            subscriptions: page.iter().map(stored).collect::<StoreResult<_>>()?,
            count: total,
        })
    }

    pub(super) async fn delete_subscription(
        &self,
        tenant: &str,
        id: &str,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute(
                "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
            .map_err(pg_error)?;
        tx.execute(
            "DELETE FROM outbox WHERE tenant = $1 AND subscription = $2",
            &[&tenant, &id],
        )
        .await
        .map_err(pg_error)?;
        bump_version(&tx, tenant).await?;
        if let Some(record) = audit.filter(|_| n > 0) {
            super::audit::insert(&tx, &record).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n > 0)
    }

    /// The due rows among the oldest of each subscription, claimed for this node:
    /// rows another node holds (locked, or claimed and not expired) are skipped, so
    /// that each notification is taken by one node.
    pub(super) async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let now = ms(now);
        let rows = tx
            .query(
                &format!(
                    "WITH heads AS (
                        SELECT DISTINCT ON (tenant, subscription) id FROM outbox
                        ORDER BY tenant, subscription, id
                     )
                     SELECT {OUTBOX_COLUMNS} FROM outbox
                     WHERE id IN (SELECT id FROM heads) AND next_attempt_at <= $1
                       AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_until < $1)
                     ORDER BY id LIMIT $3
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&now, &self.node, &big(max as u64)],
            )
            .await
            .map_err(pg_error)?;
        let out: Vec<OutboxRow> = rows.iter().map(outbox_row).collect::<StoreResult<_>>()?;
        let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
        if !ids.is_empty() {
            tx.execute(
                "UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = ANY($3)",
                &[&self.node, &(now + CLAIM), &ids],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(out)
    }

    pub(super) async fn notifications_after(
        &self,
        after: i64,
        subscription: Option<(&str, &str)>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        let c = self.client().await?;
        let max = big(max as u64);
        let rows = match subscription {
            None => {
                c.query(
                    &format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id > $1 ORDER BY id LIMIT $2"
                    ),
                    &[&after, &max],
                )
                .await
            }
            Some((tenant, id)) => {
                c.query(
                    &format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox
                         WHERE tenant = $1 AND subscription = $2 AND id > $3 ORDER BY id LIMIT $4"
                    ),
                    &[&tenant, &id, &after, &max],
                )
                .await
            }
        }
        .map_err(pg_error)?;
        rows.iter().map(outbox_row).collect()
    }

    pub(super) async fn delivered(&self, row: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "WITH gone AS (DELETE FROM outbox WHERE id = $1 RETURNING tenant, subscription)
             UPDATE subscriptions s SET times_sent = times_sent + 1, last_notification = $2, last_success = $2
             FROM gone WHERE s.tenant = gone.tenant AND s.id = gone.subscription",
            &[&row, &ms(at)],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    pub(super) async fn failed(
        &self,
        row: i64,
        at: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "WITH tried AS (
                UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $3,
                       claimed_by = NULL, claimed_until = NULL
                WHERE id = $1 RETURNING tenant, subscription
             )
             UPDATE subscriptions s SET times_failed = times_failed + 1, last_notification = $2, last_failure = $2
             FROM tried WHERE s.tenant = tried.tenant AND s.id = tried.subscription",
            &[&row, &ms(at), &ms(retry_at)],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    pub(super) async fn push(
        &self,
        tenant: &str,
        subscription: &str,
        entity: &str,
        payload: Value,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
            .await
            .map_err(pg_error)?;
        let now = ms(ngsi::entity::now());
        let n = tx
            .execute(
                "INSERT INTO outbox (tenant, subscription, entity, payload, created_at, next_attempt_at)
                 SELECT $1, $2, $3, $4::text::jsonb, $5, $5
                 WHERE EXISTS (SELECT 1 FROM subscriptions WHERE tenant = $1 AND id = $2)",
                &[&tenant, &subscription, &entity, &payload.to_string(), &now],
            )
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        if n > 0 {
            self.outbox.notify_one();
        }
        Ok(())
    }
}

// The registry, in table `registry`.
#[async_trait]
impl RegistryStore for PostgresStore {
    async fn registry_put(
        &self,
        collection: &str,
        tenant: &str,
        records: Vec<(String, Value)>,
        mode: RegistryWrite,
    ) -> StoreResult<()> {
        for (key, value) in &records {
            refuse_nul(&Value::String(key.clone()).to_string())?;
            refuse_nul(&value.to_string())?;
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let mut taken = std::collections::HashSet::new();
        for (key, _) in &records {
            if mode == RegistryWrite::Upsert {
                break;
            }
            // Locked, so that a concurrent put of the same key waits for this one.
            let found = tx
                .query_opt(
                    "SELECT 1 FROM registry WHERE collection = $1 AND tenant = $2 AND key = $3 FOR UPDATE",
                    &[&collection, &tenant, key],
                )
                .await
                .map_err(pg_error)?
                .is_some();
            if found {
                taken.insert(key.as_str());
            }
        }
        let keys = records.iter().map(|(k, _)| k.as_str());
        if let Some(refused) = crate::registry::refusal(mode, keys, |k| taken.contains(k)) {
            return Err(StoreError::Rejected(refused));
        }
        for (key, value) in &records {
            tx.execute(
                "INSERT INTO registry (collection, tenant, key, value, modified_at)
                 VALUES ($1, $2, $3, $4::text::jsonb, now())
                 ON CONFLICT (collection, tenant, key)
                 DO UPDATE SET value = excluded.value, modified_at = excluded.modified_at",
                &[&collection, &tenant, key, &value.to_string()],
            )
            .await
            .map_err(|e| match mode {
                // Two nodes creating one key at once: the second finds it taken.
                RegistryWrite::Create
                    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    StoreError::Rejected(ngsi::Error::already_exists(format!(
                        "{key:?} already exists"
                    )))
                }
                _ => pg_error(e),
            })?;
        }
        announce_registry_change(&tx, collection).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn registry_get(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<Value>> {
        let c = self.client().await?;
        let row = optional_row(
            &c,
            "SELECT value::text FROM registry WHERE collection = $1 AND tenant = $2 AND key = $3",
            &[&collection, &tenant, &key],
        )
        .await?;
        row.map(|r| parse(&format!("registry record {key:?}"), r.get(0)))
            .transpose()
    }

    async fn registry_find(&self, collection: &str, key: &str) -> StoreResult<Vec<RegistryRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                // The default tenant through the primary key, the others through the
                // by-key index, which holds only theirs (schema version 5).
                "SELECT tenant, value FROM (
                     SELECT tenant, value::text FROM registry
                     WHERE collection = $1 AND tenant = '' AND key = $2
                     UNION ALL
                     SELECT tenant, value::text FROM registry
                     WHERE collection = $1 AND key = $2 AND tenant <> ''
                 ) r ORDER BY tenant COLLATE \"C\"",
                &[&collection, &key],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                Ok(RegistryRecord {
                    tenant: r.get(0),
                    key: key.to_string(),
                    value: parse(&format!("registry record {key:?}"), r.get(1))?,
                })
            })
            .collect()
    }

    async fn registry_list(
        &self,
        collection: &str,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<RegistryPage> {
        let c = self.client().await?;
        let total = count_of(
            &c,
            "SELECT count(*) FROM registry WHERE collection = $1 AND tenant = $2",
            &[&collection, &tenant],
        )
        .await?;
        let page = rows(
            &c,
            "SELECT key, value::text FROM registry WHERE collection = $1 AND tenant = $2
             ORDER BY key COLLATE \"C\" LIMIT $3 OFFSET $4",
            &[&collection, &tenant, &big(limit), &big(offset)],
        )
        .await?;
        let records = page
            .iter()
            .map(|r| {
                let key: String = r.get(0);
                let value = parse(&format!("registry record {key:?}"), r.get(1))?;
                Ok(RegistryRecord {
                    tenant: tenant.to_string(),
                    key,
                    value,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(RegistryPage {
            records,
            count: total,
        })
    }

    async fn registry_delete(
        &self,
        collection: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute(
                "DELETE FROM registry WHERE collection = $1 AND tenant = $2 AND key = $3",
                &[&collection, &tenant, &key],
            )
            .await
            .map_err(pg_error)?;
        if n > 0 {
            announce_registry_change(&tx, collection).await?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n > 0)
    }

    fn registry_generation(&self) -> u64 {
        self.control
            .registry_generation
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Tells every node, on commit, that a registry collection changed (their caches of
/// its records are stale).
async fn announce_registry_change(
    tx: &deadpool_postgres::Transaction<'_>,
    collection: &str,
) -> StoreResult<()> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&super::control::REGISTRY_CHANNEL, &collection],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Records that the tenant's subscriptions changed (every node reloads them on its
/// next write), creating the tenant on its first subscription.
async fn bump_version(tx: &deadpool_postgres::Transaction<'_>, tenant: &str) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO tenants (name, subscriptions_version) VALUES ($1, 1)
         ON CONFLICT (name) DO UPDATE SET subscriptions_version = tenants.subscriptions_version + 1",
        &[&tenant],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}
