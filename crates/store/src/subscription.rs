//! Subscriptions as the store keeps them, and the outbox of notifications.
//!
//! A subscription is stored whole ([`ngsi::subscription::Subscription`], expanded
//! names) with its delivery counters beside it. The *outbox* holds the notifications
//! a change fired, written in the same transaction as the change: a notification is
//! never lost between a commit and its delivery, and a restart resumes what was not
//! delivered. A notifier takes due rows ([`crate::Store::outbox_due`], or every row
//! after one it has read, [`crate::Store::outbox_after`]) and reports
//! each attempt ([`crate::Store::outbox_delivered`], [`crate::Store::outbox_failed`]).

use chrono::{DateTime, Utc};
use ngsi::subscription::Subscription;
use serde_json::Value;

use crate::{StoreError, StoreResult};

/// How [`crate::Store::subscription_put`] treats an id that already holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionWrite {
    /// The id must be free (else `Rejected(AlreadyExists)`).
    Create,
    /// The id must hold a subscription (else `Rejected(ResourceNotFound)`); its
    /// delivery counters are kept.
    Replace,
}

/// What has been sent for a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub times_sent: u64,
    pub times_failed: u64,
    pub last_notification: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
}

/// A subscription and its delivery counters.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub subscription: Subscription,
    pub delivery: Delivery,
}

/// A page of a tenant's subscriptions, in id order, with their total count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionPage {
    pub subscriptions: Vec<StoredSubscription>,
    pub count: u64,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Rows are numbered in commit order.
    pub id: i64,
    pub tenant: String,
    pub subscription_id: String,
    pub entity_id: String,
    /// The Notification, rendered when the change committed.
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it may be tried (again).
    pub next_attempt_at: DateTime<Utc>,
}

/// A subscription as the stored document (JSON text), the same on every backend.
pub(crate) fn document(subscription: &Subscription) -> StoreResult<String> {
    serde_json::to_string(subscription)
        .map_err(|e| StoreError::Other(format!("cannot store a subscription: {e}")))
}

/// A stored subscription from its document (see [`document`]) and its counters.
pub(crate) fn stored(doc: &str, delivery: Delivery) -> StoreResult<StoredSubscription> {
    let subscription = serde_json::from_str(doc)
        .map_err(|e| StoreError::Other(format!("corrupt subscription: {e}")))?;
    Ok(StoredSubscription {
        subscription,
        delivery,
    })
}

impl SubscriptionWrite {
    /// The refusal of a write in this mode when the id holds a subscription
    /// (`Create`) or holds none (`Replace`).
    pub(crate) fn refusal(self, id: &str) -> StoreError {
        StoreError::Rejected(match self {
            SubscriptionWrite::Create => {
                ngsi::Error::already_exists(format!("subscription {id} already exists"))
            }
            SubscriptionWrite::Replace => {
                ngsi::Error::not_found(format!("subscription {id} not found"))
            }
        })
    }
}
