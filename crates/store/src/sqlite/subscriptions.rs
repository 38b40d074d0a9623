//! Subscriptions and the outbox in SQLite: tables `subscriptions` and `outbox`
//! (schema v5).
//!
//! Subscriptions are written by the writer thread, which also keeps them compiled,
//! per tenant, in [`Watchers`]: after each entity change it decides there which
//! subscriptions fire and writes their notifications into the outbox, in the same
//! transaction as the change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ngsi::Entity;
use ngsi::subscription::Subscription;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{SqliteStore, sql_error, write};
use crate::watch::TenantWatchers;
use crate::{
    Delivery, OutboxRow, StoreError, StoreResult, StoredSubscription, SubscriptionPage,
    SubscriptionWrite,
};

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

impl SqliteStore {
    pub(super) async fn subscription_change(
        &self,
        change: SubscriptionChange,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<bool> {
        self.on_writer(|reply| write::Job::Subscription {
            change,
            audit,
            reply,
        })
        .await
    }

    /// A change of the outbox: it carries no audit record, and answers only success.
    pub(super) async fn outbox_change(&self, change: SubscriptionChange) -> StoreResult<()> {
        self.subscription_change(change, None).await.map(|_| ())
    }

    pub(super) async fn put_subscription(
        &self,
        tenant: &str,
        subscription: Subscription,
        mode: SubscriptionWrite,
        audit: Option<crate::AuditRecord>,
    ) -> StoreResult<()> {
        let doc = crate::subscription::document(&subscription)?;
        self.subscription_change(
            SubscriptionChange::Put {
                tenant: tenant.to_string(),
                id: subscription.id,
                doc,
                mode,
            },
            audit,
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<StoredSubscription>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |c| get(c, &tenant, &id)).await
    }

    pub(super) async fn list_subscriptions(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage> {
        self.read_in(tenant, move |c, tenant| list(c, tenant, offset, limit))
            .await
    }

    pub(super) async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        self.read(move |c| due(c, now, max)).await
    }

    pub(super) async fn notifications_after(
        &self,
        after: i64,
        subscription: Option<(&str, &str)>,
        max: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        let subscription = subscription.map(|(t, s)| (t.to_string(), s.to_string()));
        self.read(move |c| rows_after(c, after, subscription.as_ref(), max))
            .await
    }
}

const COLUMNS: &str =
    "doc, times_sent, times_failed, last_notification, last_success, last_failure";

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Delivery)> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok((
        r.get(0)?,
        Delivery {
            times_sent: count(1)?,
            times_failed: count(2)?,
            last_notification: time(r.get(3)?),
            last_success: time(r.get(4)?),
            last_failure: time(r.get(5)?),
        },
    ))
}

fn decode((doc, delivery): (String, Delivery)) -> StoreResult<StoredSubscription> {
    crate::subscription::stored(&doc, delivery)
}

fn get(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Option<StoredSubscription>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE tenant = ?1 AND id = ?2"
        ))
        .and_then(|mut s| s.query_row(params![tenant, id], stored).optional())
        .map_err(sql_error)?;
    row.map(decode).transpose()
}

fn list(conn: &Connection, tenant: &str, offset: u64, limit: u64) -> StoreResult<SubscriptionPage> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM subscriptions WHERE tenant = ?1")
        .and_then(|mut s| s.query_row([tenant], |r| r.get(0)))
        .map_err(sql_error)?;
    let rows: Vec<(String, Delivery)> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE tenant = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    tenant,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                stored,
            )?
            .collect()
        })
        .map_err(sql_error)?;
    Ok(SubscriptionPage {
        subscriptions: rows.into_iter().map(decode).collect::<StoreResult<_>>()?,
        count: count.max(0) as u64,
    })
}

/// Subscriptions with notifications waiting, looked at per call at most.
const MAX_BACKLOGGED_SUBSCRIPTIONS: usize = 100_000;

/// The due rows among the oldest of each subscription. The heads are found by
/// seeking the index `outbox_by_subscription` once per subscription with rows
/// (a skip scan), so a long backlog behind one receiver costs nothing here.
fn due(conn: &Connection, now: DateTime<Utc>, max: usize) -> StoreResult<Vec<OutboxRow>> {
    let mut next_head = conn
        .prepare_cached(
            "SELECT tenant, subscription, id, next_attempt_at FROM outbox
             WHERE (tenant, subscription) > (?1, ?2)
             ORDER BY tenant, subscription, id LIMIT 1",
        )
        .map_err(sql_error)?;
    let (mut tenant, mut subscription) = (String::new(), String::new());
    let mut heads: Vec<i64> = Vec::new();
    for _ in 0..MAX_BACKLOGGED_SUBSCRIPTIONS {
        let head: Option<(String, String, i64, i64)> = next_head
            .query_row(params![tenant, subscription], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(sql_error)?;
        let Some((t, sub, id, next_attempt)) = head else {
            break;
        };
        if next_attempt <= millis(now) {
            heads.push(id);
        }
        (tenant, subscription) = (t, sub);
    }
    heads.sort_unstable();
    heads.truncate(max);
    let mut read = conn
        .prepare_cached(
            "SELECT id, tenant, subscription, entity, payload, created_at, attempts, next_attempt_at
             FROM outbox WHERE id = ?1",
        )
        .map_err(sql_error)?;
    let mut out = Vec::with_capacity(heads.len());
    for id in heads {
        // The reads above and this one are not one snapshot: a row delivered (and
        // deleted by the writer) in between is gone, and skipped, not an error.
        let Some(row) = read
            .query_row([id], RawRow::read)
            .optional()
            .map_err(sql_error)?
        else {
            continue;
        };
        out.push(row.decode()?);
    }
    Ok(out)
}

/// An outbox row as read.
struct RawRow {
    id: i64,
    tenant: String,
    subscription: String,
    entity: String,
    payload: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
}

impl RawRow {
    /// Reads a row whose columns are `id, tenant, subscription, entity, payload,
    /// created_at, attempts, next_attempt_at`.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            id: r.get(0)?,
            tenant: r.get(1)?,
            subscription: r.get(2)?,
            entity: r.get(3)?,
            payload: r.get(4)?,
            created_at: r.get(5)?,
            attempts: r.get(6)?,
            next_attempt_at: r.get(7)?,
        })
    }

    fn decode(self) -> StoreResult<OutboxRow> {
        let id = self.id;
        Ok(OutboxRow {
            id,
            tenant: self.tenant,
            subscription_id: self.subscription,
            entity_id: self.entity,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Other(format!("corrupt outbox row {id}: {e}")))?,
            created_at: time(Some(self.created_at)).unwrap_or_default(),
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: time(Some(self.next_attempt_at)).unwrap_or_default(),
        })
    }
}

/// The rows after `after` in outbox order (of one subscription when given), due or
/// not: one query, one snapshot.
fn rows_after(
    conn: &Connection,
    after: i64,
    subscription: Option<&(String, String)>,
    max: usize,
) -> StoreResult<Vec<OutboxRow>> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let rows: Vec<RawRow> = match subscription {
        None => conn
            .prepare_cached(
                "SELECT id, tenant, subscription, entity, payload, created_at, attempts, next_attempt_at
                 FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut s| s.query_map(params![after, max], RawRow::read)?.collect()),
        Some((tenant, id)) => conn
            .prepare_cached(
                "SELECT id, tenant, subscription, entity, payload, created_at, attempts, next_attempt_at
                 FROM outbox WHERE tenant = ?1 AND subscription = ?2 AND id > ?3
                 ORDER BY id LIMIT ?4",
            )
            .and_then(|mut s| {
                s.query_map(params![tenant, id, after, max], RawRow::read)?
                    .collect()
            }),
    }
    .map_err(sql_error)?;
    rows.into_iter().map(RawRow::decode).collect()
}

/// A change the writer applies.
pub enum SubscriptionChange {
    Put {
        tenant: String,
        id: String,
        /// The subscription as JSON text.
        doc: String,
        mode: SubscriptionWrite,
    },
    Delete {
        tenant: String,
        id: String,
    },
    /// A notification no change fired (periodic).
    Queue {
        tenant: String,
        id: String,
        entity_id: String,
        /// The Notification as JSON text.
        payload: String,
        at: DateTime<Utc>,
    },
    Delivered {
        row: i64,
        at: DateTime<Utc>,
    },
    Failed {
        row: i64,
        at: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    },
}

fn subscription_exists(conn: &Connection, tenant: &str, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM subscriptions WHERE tenant = ?1 AND id = ?2")?
        .exists(params![tenant, id])
}

/// Applies a change in the writer's transaction. The outer error is a fault of the
/// database (the group is rolled back); the inner one a refusal, decided before
/// anything is written.
pub fn apply(
    conn: &Connection,
    change: &SubscriptionChange,
    watchers: &mut Watchers,
) -> rusqlite::Result<StoreResult<bool>> {
    match change {
        SubscriptionChange::Put {
            tenant,
            id,
            doc,
            mode,
        } => {
            let exists = subscription_exists(conn, tenant, id)?;
            match (mode, exists) {
                (SubscriptionWrite::Create, true) | (SubscriptionWrite::Replace, false) => {
                    return Ok(Err(mode.refusal(id)));
                }
                (SubscriptionWrite::Create, false) => {
                    conn.prepare_cached(
                        "INSERT INTO subscriptions (tenant, id, doc) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![tenant, id, doc])?;
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, datetime('now'))",
                    )?
                    .execute([tenant])?;
                }
                (SubscriptionWrite::Replace, true) => {
                    conn.prepare_cached(
                        "UPDATE subscriptions SET doc = ?3 WHERE tenant = ?1 AND id = ?2",
                    )?
                    .execute(params![tenant, id, doc])?;
                }
            }
            watchers.forget_tenant(tenant);
            Ok(Ok(true))
        }
        SubscriptionChange::Delete { tenant, id } => {
            let n = conn
                .prepare_cached("DELETE FROM subscriptions WHERE tenant = ?1 AND id = ?2")?
                .execute(params![tenant, id])?;
            conn.prepare_cached("DELETE FROM outbox WHERE tenant = ?1 AND subscription = ?2")?
                .execute(params![tenant, id])?;
            watchers.forget_tenant(tenant);
            Ok(Ok(n > 0))
        }
        SubscriptionChange::Queue {
            tenant,
            id,
            entity_id,
            payload,
            at,
        } => {
            let exists = subscription_exists(conn, tenant, id)?;
            if exists {
                conn.prepare_cached(
                    "INSERT INTO outbox (tenant, subscription, entity, payload, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?
                .execute(params![tenant, id, entity_id, payload, millis(*at)])?;
            }
            Ok(Ok(exists))
        }
        SubscriptionChange::Delivered { row, at } => {
            let Some((tenant, id)) = outbox_owner(conn, *row)? else {
                return Ok(Ok(false));
            };
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([row])?;
            conn.prepare_cached(
                "UPDATE subscriptions SET times_sent = times_sent + 1, last_notification = ?3, last_success = ?3 WHERE tenant = ?1 AND id = ?2",
            )?
            .execute(params![tenant, id, millis(*at)])?;
            Ok(Ok(true))
        }
        SubscriptionChange::Failed { row, at, retry_at } => {
            let Some((tenant, id)) = outbox_owner(conn, *row)? else {
                return Ok(Ok(false));
            };
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1",
            )?
            .execute(params![row, millis(*retry_at)])?;
            conn.prepare_cached(
                "UPDATE subscriptions SET times_failed = times_failed + 1, last_notification = ?3, last_failure = ?3 WHERE tenant = ?1 AND id = ?2",
            )?
            .execute(params![tenant, id, millis(*at)])?;
            Ok(Ok(true))
        }
    }
}

fn outbox_owner(conn: &Connection, row: i64) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached("SELECT tenant, subscription FROM outbox WHERE id = ?1")?
        .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The compiled subscriptions of the tenants the writer has seen, loaded when a
/// tenant's entity is first written and dropped when one of its subscriptions is.
#[derive(Default)]
pub struct Watchers(HashMap<String, TenantWatchers>);

impl Watchers {
    pub fn forget(&mut self) {
        self.0.clear();
    }

    fn forget_tenant(&mut self, tenant: &str) {
        self.0.remove(tenant);
    }

    /// Whether the tenant has subscriptions that can fire on changes (loading them
    /// the first time).
    pub fn watching(&mut self, conn: &Connection, tenant: &str) -> StoreResult<bool> {
        if !self.0.contains_key(tenant) {
            let loaded = load(conn, tenant)?;
            self.0.insert(tenant.to_string(), loaded);
        }
        Ok(self.0.get(tenant).is_some_and(|w| !w.is_empty()))
    }

    /// Writes to the outbox the notification of each subscription the change fires;
    /// returns how many.
    pub fn fire(
        &mut self,
        conn: &Connection,
        tenant: &str,
        before: Option<&Entity>,
        after: Option<&Entity>,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<usize> {
        let Some(w) = self.0.get_mut(tenant) else {
            return Ok(0);
        };
        let Some(entity_id) = after.or(before).map(|e| e.id.clone()) else {
            return Ok(0);
        };
        let fired = w.fire(before, after, now);
        for f in &fired {
            conn.prepare_cached(
                "INSERT INTO outbox (tenant, subscription, entity, payload, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![tenant, f.subscription, entity_id, f.payload.to_string(), millis(now)])?;
        }
        Ok(fired.len())
    }
}

fn load(conn: &Connection, tenant: &str) -> StoreResult<TenantWatchers> {
    let rows: Vec<(String, Option<i64>)> = conn
        .prepare_cached("SELECT doc, last_notification FROM subscriptions WHERE tenant = ?1")
        .and_then(|mut s| {
            s.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(sql_error)?;
    // The hub resolves a subscription's @context before storing it, so the remote
    // documents are in table `contexts`.
    let cached = |url: &str| -> Option<Value> {
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM contexts WHERE url = ?1")
            .and_then(|mut s| s.query_row([url], |r| r.get(0)).optional())
            .ok()
            .flatten();
        body.and_then(|b| serde_json::from_str(&b).ok())
    };
    let rows = rows
        .into_iter()
        .map(|(doc, last)| (doc, time(last)))
        .collect();
    Ok(TenantWatchers::load(tenant, rows, &cached))
}
