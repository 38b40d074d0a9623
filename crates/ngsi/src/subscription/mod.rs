//! Subscriptions and notifications (ETSI GS CIM 009 v1.8: the Subscription,
//! NotificationParams, Endpoint, KeyValuePair and EntitySelector data types of clause
//! 5.2, the Notification of clause 5.3.1, and the behaviour of clauses 5.8.1 to 5.8.6).
//!
//! This module is the pure part: it reads and checks what a client sends ([`parse`],
//! [`apply_patch`]), renders a subscription for GET ([`render`]), decides which change
//! fires which subscription ([`CompiledSubscription::triggered`]) and builds the
//! payload and headers a notifier sends ([`CompiledSubscription::notification`],
//! [`Subscription::http_headers`], [`Subscription::mqtt_message`]). Storing
//! subscriptions, counting deliveries and sending over HTTP or MQTT belong to the
//! crates that do I/O; they meet on these types.
//!
//! As everywhere in the model, names are expanded IRIs. The `q` and `csf` texts are
//! kept as the client wrote them, with the IRI each of their names expanded to, so a
//! stored subscription compiles the same way whatever @context is active later.
//!
//! [`parse`]: Subscription::parse
//! [`apply_patch`]: Subscription::apply_patch
//! [`render`]: Subscription::render

mod matching;
mod notify;
mod parse;
mod render;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render::Format;

pub use matching::CompiledSubscription;
pub use notify::{EntityChange, MqttTarget, MqttVersion};
pub use parse::{
    MAX_COORDINATES_LEN, MAX_FILTER_LEN, MAX_JOIN_LEVEL, MAX_KEY_VALUES, MAX_MILLIS, MAX_NAMES,
    MAX_SECONDS, MAX_SELECTORS,
};

/// The `accept` of an endpoint that wants the @context in a `Link` header.
pub const ACCEPT_JSON: &str = "application/json";
/// The `accept` of an endpoint that wants the @context in the body.
pub const ACCEPT_JSON_LD: &str = "application/ld+json";

/// What kind of change a subscription listens to (`notificationTrigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    EntityCreated,
    /// Any change of an existing entity: its attributes created, updated or deleted,
    /// or its types or scopes changed.
    EntityUpdated,
    EntityDeleted,
    AttributeCreated,
    AttributeUpdated,
    AttributeDeleted,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::EntityCreated,
        Trigger::EntityUpdated,
        Trigger::EntityDeleted,
        Trigger::AttributeCreated,
        Trigger::AttributeUpdated,
        Trigger::AttributeDeleted,
    ];

    /// What a subscription listens to when it names nothing: in v1.8, attributes
    /// created or updated.
    pub const DEFAULT: [Trigger; 2] = [Trigger::AttributeCreated, Trigger::AttributeUpdated];

    /// The wire name, as `notificationTrigger` holds it.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::EntityCreated => "entityCreated",
            Trigger::EntityUpdated => "entityUpdated",
            Trigger::EntityDeleted => "entityDeleted",
            Trigger::AttributeCreated => "attributeCreated",
            Trigger::AttributeUpdated => "attributeUpdated",
            Trigger::AttributeDeleted => "attributeDeleted",
        }
    }

    pub fn parse(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.name() == text)
    }
}

/// Which entities a subscription is about (clause 5.2.33): a type selection, and
/// optionally an id or an id pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A regular expression the id must match; ignored when `id` is given, as the
    /// spec has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    /// The entity type selection (clause 4.17, e.g. `A`, `(A;B)|C`), its names
    /// expanded, in canonical text.
    pub entity_type: String,
}

/// A query text (`q` or `csf`) as the client wrote it, and the IRI each attribute
/// name in it expanded to. The text alone is not enough: expanding it again later,
/// under another @context, could select other attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QText {
    pub text: String,
    pub names: BTreeMap<String, String>,
}

/// A `geoQ` (clause 5.2.13) as given, except the GeoProperty, which is expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoQText {
    pub georel: String,
    pub geometry: String,
    /// The coordinates as JSON text (the member may be an array or a string).
    pub coordinates: String,
    pub geoproperty: String,
}

/// Where and how notifications go (clause 5.2.15).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Endpoint {
    /// An absolute `http`, `https`, `mqtt` or `mqtts` URI.
    pub uri: String,
    /// [`ACCEPT_JSON`] or [`ACCEPT_JSON_LD`].
    pub accept: String,
    /// How long to wait for the receiver, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// How long to wait after a failure before trying again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<u64>,
    /// Sent along to the receiver: HTTP headers, or MQTT message metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receiver_info: Vec<(String, String)>,
    /// Settings for the notifier, such as `MQTT-QoS` and `MQTT-Version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifier_info: Vec<(String, String)>,
}

/// What a notification holds and where it goes (clause 5.2.14).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotificationParams {
    /// The attributes to include (expanded); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// The entity members to keep (clause 4.21): `id` and `type` as they are,
    /// attribute names expanded. Exclusive with `attributes` and `omit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pick: Vec<String>,
    /// The entity members to leave out, named like `pick`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit: Vec<String>,
    #[serde(with = "format_name")]
    pub format: Format,
    /// Add each changed attribute's previous value (`previousValue`, ...).
    #[serde(default)]
    pub show_changes: bool,
    #[serde(default)]
    pub sys_attrs: bool,
    /// Linked entities added to each notified entity (clause 4.5.23); none when
    /// absent (`join` `@none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
    /// How many hops of Relationships `join` follows; 1 when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_level: Option<u8>,
    pub endpoint: Endpoint,
}

/// How linked entities join a notified entity (`notification.join`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Join {
    /// Each linked entity inside the Relationship that points to it.
    Inline,
    /// The linked entities listed after the notified ones.
    Flat,
}

impl Join {
    /// The wire name, as `notification.join` holds it.
    pub fn name(self) -> &'static str {
        match self {
            Join::Inline => "inline",
            Join::Flat => "flat",
        }
    }
}

/// A subscription, names expanded; the form the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Any of these selects an entity; none means any entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySelector>,
    /// Only changes of these attributes fire; any attribute when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched_attributes: Vec<String>,
    /// Never empty: [`Trigger::DEFAULT`] when the client named none.
    pub triggers: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<QText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_q: Option<GeoQText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_q: Option<String>,
    /// The context source filter. Kept and shown, but it selects nothing while the
    /// hub forwards no subscriptions to context sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csf: Option<QText>,
    /// Seconds between periodic notifications; such a subscription does not fire on
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_interval: Option<u64>,
    /// Fewest seconds between two notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    /// The language preference applied to LanguageProperties, as given (like `lang`
    /// of a query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The @context to compact notifications with, instead of [`Self::context`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonld_context: Option<String>,
    /// Only the attribute instances of these datasets count and are shown
    /// (`@none` is the default instance); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_ids: Vec<String>,
    pub notification: NotificationParams,
    /// The @context of the request that created the subscription
    /// ([`crate::Context::source`]): the terms notifications use.
    #[serde(default)]
    pub context: Vec<Value>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// Where a subscription stands (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Active,
    Paused,
    Expired,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Expired => "expired",
        }
    }
}

/// What the store knows of a subscription's deliveries, shown by GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// [`Subscription::status`] at the time of the request.
    pub status: Status,
    pub times_sent: u64,
    pub times_failed: u64,
    pub last_notification: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
}

impl SubscriptionStatus {
    /// A subscription nothing has been sent for yet.
    pub fn new(status: Status) -> SubscriptionStatus {
        SubscriptionStatus {
            status,
            times_sent: 0,
            times_failed: 0,
            last_notification: None,
            last_success: None,
            last_failure: None,
        }
    }

    /// `notification.status`: `ok` or `failed` after the latest attempt, None before
    /// the first one.
    pub fn delivery(&self) -> Option<&'static str> {
        match (self.last_success, self.last_failure) {
            (None, None) => None,
            (Some(_), None) => Some("ok"),
            (None, Some(_)) => Some("failed"),
            (Some(ok), Some(failed)) => Some(if failed > ok { "failed" } else { "ok" }),
        }
    }
}

impl Subscription {
    /// `expired` once `expiresAt` has passed, else `paused` when not active, else
    /// `active`.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        if self.expires_at.is_some_and(|t| t < now) {
            Status::Expired
        } else if !self.is_active {
            Status::Paused
        } else {
            Status::Active
        }
    }

    /// Whether `throttling` forbids a notification now, given when the last one went.
    pub fn throttled(&self, last_notification: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match (self.throttling, last_notification) {
            (Some(seconds), Some(last)) => now < last + seconds_delta(seconds),
            _ => false,
        }
    }

    /// Whether a periodic (`timeInterval`) subscription is due now, given when the
    /// last notification went. Never true for a subscription that is not periodic.
    pub fn periodic_due(
        &self,
        last_notification: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        match self.time_interval {
            Some(seconds) => {
                self.status(now) == Status::Active
                    && last_notification.is_none_or(|last| now >= last + seconds_delta(seconds))
            }
            None => false,
        }
    }
}

/// Seconds as a duration; the parser bounds them far below any overflow.
fn seconds_delta(seconds: u64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1_000))
}

/// Stores a [`Format`] by its wire name, since the render module's enum has no serde.
mod format_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::render::Format;

    pub fn serialize<S: Serializer>(format: &Format, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*format))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown format {text:?}")))
    }

    pub fn name(format: Format) -> &'static str {
        match format {
            Format::Normalized => "normalized",
            Format::Concise => "concise",
            Format::KeyValues => "keyValues",
        }
    }

    /// `simplified` is the spec's other name for `keyValues`.
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "normalized" => Format::Normalized,
            "concise" => Format::Concise,
            "keyValues" | "simplified" => Format::KeyValues,
            _ => return None,
        })
    }
}
