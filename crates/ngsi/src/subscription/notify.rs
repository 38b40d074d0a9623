//! What a notifier sends (clauses 5.3.1 and 5.8.6): the Notification body, the HTTP
//! headers, and the message of the MQTT binding.
//!
//! Entities are rendered as [`crate::render`] renders them for a query, in the
//! subscription's format, projection and language. A change adds what a plain
//! entity cannot show: attributes deleted by it carry the NGSI-LD Null
//! (`urn:ngsi-ld:null` as value, object, vocab or json, `{"@none":
//! "urn:ngsi-ld:null"}` as language map, `["urn:ngsi-ld:null"]` as list), and, with
//! `showChanges`, updated and deleted instances carry their previous value
//! (`previousValue`, `previousObject`, `previousLanguageMap`, `previousValueList`,
//! `previousObjectList`, `previousJson`, `previousVocab`).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{ACCEPT_JSON_LD, CompiledSubscription, Endpoint, Subscription, Trigger};
use crate::context::{CORE_CONTEXT_URL, Context};
use crate::entity::{AttrKind, Attribute, Entity, NGSI_LD_NULL, format_time};
use crate::render::{
    Format, RenderOptions, compact_value, render_attribute, render_entity, render_types,
    simplified_instances,
};

/// The `rel` of a `Link` header that carries an @context.
const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// One entity a notification reports: as it was before the change (None: it was
/// created, or nothing is known of its past) and as it is after (None: it was
/// deleted). A periodic notification reports `after` alone.
#[derive(Debug, Clone, Copy)]
pub struct EntityChange<'a> {
    pub before: Option<&'a Entity>,
    pub after: Option<&'a Entity>,
}

impl CompiledSubscription {
    /// The Notification (clause 5.3.1) for these changes, entities compacted with
    /// `ctx`, which should be built from [`Subscription::notification_context`].
    ///
    /// A deleted entity is shown as `id`, `type` and `deletedAt` (`now`, so build the
    /// notification when the deletion commits), plus `createdAt` and `modifiedAt`
    /// with sysAttrs (in every format); its attributes are listed, nulled, only when
    /// the subscription shows changes or listens to attribute deletions, and then
    /// only those it watches (all when `watchedAttributes` is empty). For a deleted
    /// attribute, `deletedAt` is when the entity changed.
    ///
    /// With `accept` ld+json the @context goes in the body, at the top and in each
    /// entity of `data` (each is then a JSON-LD document of its own, as receivers
    /// that pass entities on expect); otherwise it goes in the `Link` header of
    /// [`Subscription::http_headers`].
    pub fn notification(
        &self,
        changes: &[EntityChange<'_>],
        ctx: &Context,
        notification_id: String,
        now: DateTime<Utc>,
    ) -> Value {
        let opts = self.render_options(ctx);
        let in_body = self.subscription().context_in_body();
        let data: Vec<Value> = changes
            .iter()
            .filter_map(|c| self.render_change(c, &opts, now))
            .map(|mut entity| {
                if in_body {
                    entity.insert("@context".into(), ctx.response_value());
                }
                Value::Object(entity)
            })
            .collect();
        let mut out = Map::new();
        out.insert("id".into(), json!(notification_id));
        out.insert("type".into(), json!("Notification"));
        out.insert("subscriptionId".into(), json!(self.subscription().id));
        out.insert("notifiedAt".into(), json!(format_time(&now)));
        out.insert("data".into(), Value::Array(data));
        if in_body {
            out.insert("@context".into(), ctx.response_value());
        }
        Value::Object(out)
    }

    /// How the subscription's entities are rendered: its format, sysAttrs,
    /// language and projection (`attributes`, `pick`, `omit`), names compacted with
    /// `ctx`.
    pub fn render_options<'a>(&self, ctx: &'a Context) -> RenderOptions<'a> {
        let n = &self.subscription().notification;
        let mut opts = RenderOptions::new(ctx);
        opts.format = n.format;
        opts.sys_attrs = n.sys_attrs;
        opts.lang = self.lang.clone();
        let attrs = |names: &[String]| -> HashSet<String> {
            names
                .iter()
                .filter(|n| !matches!(n.as_str(), "id" | "type"))
                .cloned()
                .collect()
        };
        if !n.attributes.is_empty() {
            opts.keep_attrs = Some(attrs(&n.attributes));
        }
        if !n.pick.is_empty() {
            opts.keep_id = n.pick.iter().any(|m| m == "id");
            opts.keep_type = n.pick.iter().any(|m| m == "type");
            opts.keep_attrs = Some(attrs(&n.pick));
        }
        if !n.omit.is_empty() {
            opts.keep_id = !n.omit.iter().any(|m| m == "id");
            opts.keep_type = !n.omit.iter().any(|m| m == "type");
            opts.omit_attrs = attrs(&n.omit);
        }
        opts
    }

    /// The entity with only the instances the datasetId selection keeps.
    fn selected(&self, e: &Entity) -> Entity {
        let mut e = e.clone();
        if !self.subscription().dataset_ids.is_empty() {
            for instances in e.attrs.values_mut() {
                instances.retain(|a| self.keeps_instance(a));
            }
            e.attrs.retain(|_, v| !v.is_empty());
        }
        e
    }

    fn render_change(
        &self,
        change: &EntityChange<'_>,
        opts: &RenderOptions,
        now: DateTime<Utc>,
    ) -> Option<Map<String, Value>> {
        let show_changes = self.subscription().notification.show_changes;
        match (change.before, change.after) {
            (before, Some(after)) => {
                let after = self.selected(after);
                let mut out = render_entity(&after, opts);
                if let Some(before) = before {
                    let before = self.selected(before);
                    let names: BTreeSet<&String> = before
                        .attrs
                        .keys()
                        .chain(after.attrs.keys())
                        .filter(|n| opts.keeps(n))
                        .collect();
                    for name in names {
                        let old = before.attrs.get(name).map_or(&[][..], Vec::as_slice);
                        let new = after.attrs.get(name).map_or(&[][..], Vec::as_slice);
                        if let Some(v) =
                            changed_attribute(old, new, opts, show_changes, after.modified_at)
                        {
                            out.insert(opts.ctx.compact(name), v);
                        }
                    }
                }
                Some(out)
            }
            (Some(before), None) => {
                let before = self.selected(before);
                let mut out = Map::new();
                if opts.keep_id {
                    out.insert("id".into(), json!(before.id));
                }
                if opts.keep_type {
                    out.insert("type".into(), render_types(&before.types, opts.ctx));
                }
                // As for an entity that is still there, the entity's own system times
                // are members in every format, keyValues included.
                if opts.sys_attrs {
                    out.insert("createdAt".into(), json!(format_time(&before.created_at)));
                    out.insert("modifiedAt".into(), json!(format_time(&before.modified_at)));
                }
                out.insert("deletedAt".into(), json!(format_time(&now)));
                let sub = self.subscription();
                if show_changes || sub.triggers.contains(&Trigger::AttributeDeleted) {
                    // The deletion of the entity deletes every attribute, but only
                    // those the subscription watches are its changes (all when it
                    // watches none).
                    let watched = |name: &String| {
                        sub.watched_attributes.is_empty() || sub.watched_attributes.contains(name)
                    };
                    for (name, instances) in &before.attrs {
                        if !opts.keeps(name) || !watched(name) {
                            continue;
                        }
                        if let Some(v) = changed_attribute(instances, &[], opts, show_changes, now)
                        {
                            out.insert(opts.ctx.compact(name), v);
                        }
                    }
                }
                Some(out)
            }
            (None, None) => None,
        }
    }
}

/// The rendering of an attribute a change touched, or None when the plain
/// rendering already shows it (nothing deleted, and no previous value to add).
fn changed_attribute(
    old: &[Attribute],
    new: &[Attribute],
    opts: &RenderOptions,
    show_changes: bool,
    deleted_at: DateTime<Utc>,
) -> Option<Value> {
    let deleted: Vec<&Attribute> = old
        .iter()
        .filter(|b| !new.iter().any(|a| a.dataset_id == b.dataset_id))
        .collect();
    let previous = |a: &Attribute| -> Option<&Attribute> {
        old.iter()
            .find(|b| b.dataset_id == a.dataset_id)
            .filter(|b| *b != a)
    };
    let updated = show_changes && new.iter().any(|a| previous(a).is_some());
    if deleted.is_empty() && !updated {
        return None;
    }
    let mut items: Vec<(Option<&str>, Value)> = new
        .iter()
        .map(|a| {
            let rendered = render_attribute(a, opts);
            let rendered = match previous(a) {
                Some(b) if show_changes => with_previous(rendered, a, b, opts.ctx),
                _ => rendered,
            };
            (a.dataset_id.as_deref(), rendered)
        })
        .collect();
    items.extend(deleted.into_iter().map(|b| {
        (
            b.dataset_id.as_deref(),
            deleted_instance(b, opts, show_changes, deleted_at),
        )
    }));
    Some(match items.len() {
        1 => items.remove(0).1,
        _ if opts.format == Format::KeyValues => simplified_instances(items),
        _ => Value::Array(items.into_iter().map(|(_, v)| v).collect()),
    })
}

/// Adds the previous value to a rendered instance (a concise bare value becomes an
/// object to hold it).
fn with_previous(rendered: Value, now: &Attribute, before: &Attribute, ctx: &Context) -> Value {
    let mut obj = match rendered {
        Value::Object(obj) => obj,
        bare => {
            let mut obj = Map::new();
            obj.insert(now.kind.value_member().into(), bare);
            obj
        }
    };
    obj.insert(
        before.kind.previous_member().into(),
        compact_value(before, ctx),
    );
    Value::Object(obj)
}

/// An instance the change deleted, its value the NGSI-LD Null of its kind.
fn deleted_instance(
    a: &Attribute,
    opts: &RenderOptions,
    show_changes: bool,
    deleted_at: DateTime<Utc>,
) -> Value {
    let null = null_value(a.kind);
    if opts.format == Format::KeyValues {
        return null;
    }
    let mut out = Map::new();
    if opts.format == Format::Normalized {
        out.insert("type".into(), json!(a.kind.name()));
    }
    out.insert(a.kind.value_member().into(), null);
    if let Some(ds) = &a.dataset_id {
        out.insert("datasetId".into(), json!(ds));
    }
    if opts.sys_attrs {
        out.insert("createdAt".into(), json!(format_time(&a.created_at)));
        out.insert("modifiedAt".into(), json!(format_time(&a.modified_at)));
        out.insert("deletedAt".into(), json!(format_time(&deleted_at)));
    }
    if show_changes {
        out.insert(a.kind.previous_member().into(), compact_value(a, opts.ctx));
    }
    Value::Object(out)
}

/// How each kind of attribute shows the NGSI-LD Null (clause 5.2.1).
fn null_value(kind: AttrKind) -> Value {
    match kind {
        AttrKind::LanguageProperty => json!({"@none": NGSI_LD_NULL}),
        AttrKind::ListProperty | AttrKind::ListRelationship => json!([NGSI_LD_NULL]),
        _ => json!(NGSI_LD_NULL),
    }
}

impl Subscription {
    /// Whether the @context travels in the notification body (`accept`
    /// ld+json) rather than in a `Link` header.
    pub fn context_in_body(&self) -> bool {
        self.notification.endpoint.accept == ACCEPT_JSON_LD
    }

    /// The @context to build the [`Context`] that compacts notifications:
    /// `jsonldContext` when given, else the @context the subscription was created
    /// with (the core context when that was none).
    pub fn notification_context(&self) -> Value {
        match (&self.jsonld_context, self.context.as_slice()) {
            (Some(url), _) => Value::String(url.clone()),
            (None, []) => Value::String(CORE_CONTEXT_URL.into()),
            (None, [one]) => one.clone(),
            (None, many) => Value::Array(many.to_vec()),
        }
    }

    /// The `Link` header that carries the @context of a JSON notification, or None
    /// when the @context is in the body. A header holds one URL: `jsonldContext`, or
    /// the creation @context when it was a single URL, else the core context (whose
    /// terms an inline @context cannot be linked to).
    pub fn link_header(&self) -> Option<String> {
        if self.context_in_body() {
            return None;
        }
        let url = match (&self.jsonld_context, self.context.as_slice()) {
            (Some(url), _) => url.as_str(),
            (None, [Value::String(url)]) => url.as_str(),
            _ => CORE_CONTEXT_URL,
        };
        Some(format!(
            "<{url}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\""
        ))
    }

    /// The headers of an HTTP notification: `Content-Type`, `Link` for JSON, then
    /// the `receiverInfo` pairs (which cannot name the first two).
    pub fn http_headers(&self) -> Vec<(String, String)> {
        let endpoint = &self.notification.endpoint;
        let mut headers = vec![("Content-Type".to_string(), endpoint.accept.clone())];
        if let Some(link) = self.link_header() {
            headers.push(("Link".to_string(), link));
        }
        headers.extend(endpoint.receiver_info.iter().cloned());
        headers
    }

    /// The message of an MQTT notification: the headers an HTTP notification would
    /// have as `metadata`, the notification as `body`.
    pub fn mqtt_message(&self, notification: Value) -> Value {
        let metadata: Map<String, Value> = self
            .http_headers()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        json!({ "metadata": metadata, "body": notification })
    }
}

/// The MQTT protocol version a notifier speaks (`MQTT-Version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqttVersion {
    #[default]
    V3_1_1,
    V5,
}

/// Where and how to publish an MQTT notification, read from an `mqtt(s)://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTarget {
    pub tls: bool,
    pub host: String,
    /// The port given, else 1883 (8883 with TLS).
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic: String,
    /// 0 unless `MQTT-QoS` says otherwise.
    pub qos: u8,
    pub version: MqttVersion,
}

impl Endpoint {
    /// The MQTT target of an `mqtt` or `mqtts` endpoint; None for HTTP.
    pub fn mqtt_target(&self) -> Option<MqttTarget> {
        let url = url::Url::parse(&self.uri).ok()?;
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return None,
        };
        let info = |key: &str| {
            self.notifier_info
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        Some(MqttTarget {
            tls,
            host: url.host_str()?.to_string(),
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username: Some(percent_decode(url.username())).filter(|u| !u.is_empty()),
            password: url.password().map(percent_decode),
            topic: percent_decode(url.path().trim_start_matches('/')),
            qos: info("MQTT-QoS").and_then(|q| q.parse().ok()).unwrap_or(0),
            version: match info("MQTT-Version") {
                Some("mqtt5.0") => MqttVersion::V5,
                _ => MqttVersion::V3_1_1,
            },
        })
    }
}

/// Decodes `%XX` escapes, as a URI carries a topic or credentials (invalid escapes
/// and bytes that do not form UTF-8 are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::subscription::testing::{SUB_ID, entity, now, sub, t, user_ctx};

    const ID: &str = "urn:ngsi-ld:Gauge:1";

    fn before() -> Entity {
        entity(
            json!({
                "id": ID,
                "type": "Gauge",
                "level": {"type": "Property", "value": 2.5, "unitCode": "MTR"},
                "name": {"type": "LanguageProperty", "languageMap": {"vi": "Sông Hiếu", "en": "Hieu River"}},
                "river": {"type": "Relationship", "object": "urn:ngsi-ld:River:hieu"},
                "status": "ok",
                "kind": {"type": "VocabProperty", "vocab": "Gauge"},
            }),
            t("2024-04-30T00:00:00Z"),
        )
    }

    /// `before()` after a write at 01:00: level updated, status deleted, alarm
    /// created, the rest untouched.
    fn after() -> Entity {
        let later = t("2024-04-30T01:00:00Z");
        let mut e = before();
        let level = e.attrs.get_mut(&ctx().expand("level")).unwrap();
        level[0].value = json!(3.1);
        level[0].modified_at = later;
        e.attrs.remove(&ctx().expand("status"));
        let alarm = entity(json!({"id": ID, "type": "Gauge", "alarm": true}), later);
        e.attrs.extend(alarm.attrs);
        e.modified_at = later;
        e
    }

    fn ctx() -> std::sync::Arc<Context> {
        Context::core()
    }

    fn notify(patch: Value, changes: &[EntityChange<'_>]) -> Value {
        let s = sub(patch);
        s.compile().unwrap().notification(
            changes,
            &ctx(),
            "urn:ngsi-ld:Notification:1".into(),
            now(),
        )
    }

    fn one(patch: Value, before: Option<&Entity>, after: Option<&Entity>) -> Value {
        let n = notify(patch, &[EntityChange { before, after }]);
        assert_eq!(n["data"].as_array().unwrap().len(), 1, "{n}");
        n["data"][0].clone()
    }

    /// The entity notified of its deletion (or of its attributes') by `subscription`.
    fn deleted(subscription: Value, before: &Entity) -> Value {
        one(subscription, Some(before), None)
    }

    /// The entity notified of its change from `before` to `after` by a subscription of
    /// this `notification` member.
    fn changed(notification: Value, before: &Entity, after: &Entity) -> Value {
        one(
            json!({"notification": notification}),
            Some(before),
            Some(after),
        )
    }

    #[test]
    fn builds_the_notification() {
        let e = after();
        let n = notify(
            json!({}),
            &[EntityChange {
                before: None,
                after: Some(&e),
            }],
        );
        assert_eq!(n["id"], "urn:ngsi-ld:Notification:1");
        assert_eq!(n["type"], "Notification");
        assert_eq!(n["subscriptionId"], SUB_ID);
        assert_eq!(n["notifiedAt"], "2024-05-01T00:00:00Z");
        assert!(n.get("@context").is_none());
        let data = &n["data"][0];
        assert!(data.get("@context").is_none(), "{data}");
        assert_eq!(data["id"], ID);
        assert_eq!(data["type"], "Gauge");
        assert_eq!(
            data["level"],
            json!({"type": "Property", "value": 3.1, "unitCode": "MTR"})
        );
        assert_eq!(data["alarm"], json!({"type": "Property", "value": true}));
        assert!(data.get("status").is_none());
        assert!(data.get("createdAt").is_none());
        // Periodic notifications list several entities as they are.
        let other = before();
        let n = notify(
            json!({"timeInterval": 60}),
            &[
                EntityChange {
                    before: None,
                    after: Some(&e),
                },
                EntityChange {
                    before: None,
                    after: Some(&other),
                },
                EntityChange {
                    before: None,
                    after: None,
                },
            ],
        );
        assert_eq!(n["data"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn renders_each_format() {
        let e = after();
        let kv = one(
            json!({"notification": {"format": "keyValues"}}),
            None,
            Some(&e),
        );
        assert_eq!(kv["level"], json!(3.1));
        assert_eq!(kv["river"], json!("urn:ngsi-ld:River:hieu"));
        let concise = one(
            json!({"notification": {"format": "concise"}}),
            None,
            Some(&e),
        );
        assert_eq!(concise["alarm"], json!(true));
        assert_eq!(concise["level"], json!({"value": 3.1, "unitCode": "MTR"}));
        assert_eq!(
            concise["river"],
            json!({"object": "urn:ngsi-ld:River:hieu"})
        );
        let sys = one(json!({"notification": {"sysAttrs": true}}), None, Some(&e));
        assert_eq!(sys["createdAt"], "2024-04-30T00:00:00Z");
        assert_eq!(sys["modifiedAt"], "2024-04-30T01:00:00Z");
        assert_eq!(sys["level"]["modifiedAt"], "2024-04-30T01:00:00Z");
        let lang = one(json!({"lang": "en"}), None, Some(&e));
        assert_eq!(
            lang["name"],
            json!({"type": "Property", "value": "Hieu River", "lang": "en"})
        );
    }

    #[test]
    fn restricts_attributes() {
        let e = after();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let only = one(
            json!({"notification": {"attributes": ["level", "river"]}}),
            None,
            Some(&e),
        );
        assert_eq!(keys(&only), ["id", "level", "river", "type"]);
        let picked = one(
            json!({"notification": {"pick": ["id", "level"]}}),
            None,
            Some(&e),
        );
        assert_eq!(keys(&picked), ["id", "level"]);
        let omitted = one(
            json!({"notification": {"omit": ["type", "name", "river", "kind", "alarm"]}}),
            None,
            Some(&e),
        );
        assert_eq!(keys(&omitted), ["id", "level"]);
        // A deletion outside the attributes shown stays out of sight.
        let b = before();
        let level_only = changed(json!({"attributes": ["level"]}), &b, &e);
        assert_eq!(keys(&level_only), ["id", "level", "type"]);
    }

    #[test]
    fn shows_deleted_attributes_and_changes() {
        let (b, a) = (before(), after());
        let plain = one(json!({}), Some(&b), Some(&a));
        assert_eq!(
            plain["status"],
            json!({"type": "Property", "value": NGSI_LD_NULL})
        );
        assert_eq!(
            plain["level"],
            json!({"type": "Property", "value": 3.1, "unitCode": "MTR"})
        );
        let shown = changed(json!({"showChanges": true}), &b, &a);
        assert_eq!(
            shown["level"],
            json!({"type": "Property", "value": 3.1, "unitCode": "MTR", "previousValue": 2.5})
        );
        assert_eq!(
            shown["status"],
            json!({"type": "Property", "value": NGSI_LD_NULL, "previousValue": "ok"})
        );
        // Created and untouched attributes carry no previous value.
        assert_eq!(shown["alarm"], json!({"type": "Property", "value": true}));
        assert!(shown["river"].get("previousObject").is_none());
        // Concise: a bare value becomes an object to hold the previous one.
        let concise = changed(json!({"showChanges": true, "format": "concise"}), &b, &a);
        assert_eq!(
            concise["status"],
            json!({"value": NGSI_LD_NULL, "previousValue": "ok"})
        );
        let kv = changed(json!({"format": "keyValues"}), &b, &a);
        assert_eq!(kv["status"], json!(NGSI_LD_NULL));
        let sys = changed(json!({"sysAttrs": true}), &b, &a);
        assert_eq!(sys["status"]["deletedAt"], "2024-04-30T01:00:00Z");
        assert_eq!(sys["status"]["createdAt"], "2024-04-30T00:00:00Z");
    }

    #[test]
    fn previous_values_follow_the_attribute_kind() {
        let later = t("2024-04-30T01:00:00Z");
        let b = entity(
            json!({"id": ID, "type": "Gauge",
                   "river": {"type": "Relationship", "object": "urn:ngsi-ld:River:hieu"},
                   "name": {"type": "LanguageProperty", "languageMap": {"vi": "Sông Hiếu"}},
                   "kind": {"type": "VocabProperty", "vocab": "Gauge"},
                   "readings": {"type": "ListProperty", "valueList": [1, 2]},
                   "config": {"type": "JsonProperty", "json": {"a": 1}}}),
            t("2024-04-30T00:00:00Z"),
        );
        let a = entity(
            json!({"id": ID, "type": "Gauge",
                   "river": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"},
                   "kind": {"type": "VocabProperty", "vocab": "Sensor"}}),
            later,
        );
        let shown = changed(json!({"showChanges": true}), &b, &a);
        assert_eq!(shown["river"]["previousObject"], "urn:ngsi-ld:River:hieu");
        assert_eq!(shown["river"]["object"], "urn:ngsi-ld:River:thach-han");
        assert_eq!(shown["kind"]["previousVocab"], "Gauge");
        assert_eq!(
            shown["name"],
            json!({"type": "LanguageProperty", "languageMap": {"@none": NGSI_LD_NULL},
                   "previousLanguageMap": {"vi": "Sông Hiếu"}})
        );
        assert_eq!(
            shown["readings"],
            json!({"type": "ListProperty", "valueList": [NGSI_LD_NULL], "previousValueList": [1, 2]})
        );
        assert_eq!(
            shown["config"],
            json!({"type": "JsonProperty", "json": NGSI_LD_NULL, "previousJson": {"a": 1}})
        );
    }

    #[test]
    fn shows_deleted_entities() {
        let b = before();
        let gone = deleted(json!({"notificationTrigger": ["entityDeleted"]}), &b);
        assert_eq!(
            gone,
            json!({"id": ID, "type": "Gauge", "deletedAt": "2024-05-01T00:00:00Z"})
        );
        let sys = deleted(
            json!({"notificationTrigger": ["entityDeleted"], "notification": {"sysAttrs": true}}),
            &b,
        );
        assert_eq!(sys.as_object().unwrap().len(), 5);
        assert_eq!(sys["createdAt"], "2024-04-30T00:00:00Z");
        let simple = deleted(
            json!({"notificationTrigger": ["entityDeleted"],
                   "notification": {"sysAttrs": true, "format": "keyValues"}}),
            &b,
        );
        assert_eq!(simple, sys);
        let watched = deleted(
            json!({"notificationTrigger": ["attributeDeleted"], "watchedAttributes": ["level"]}),
            &b,
        );
        assert_eq!(
            watched,
            json!({"id": ID, "type": "Gauge", "deletedAt": "2024-05-01T00:00:00Z",
                   "level": {"type": "Property", "value": NGSI_LD_NULL}})
        );
        let changes = deleted(
            json!({"notificationTrigger": ["entityDeleted"], "notification": {"showChanges": true}}),
            &b,
        );
        assert_eq!(
            changes["level"],
            json!({"type": "Property", "value": NGSI_LD_NULL, "previousValue": 2.5})
        );
        assert_eq!(
            changes["river"],
            json!({"type": "Relationship", "object": NGSI_LD_NULL,
                   "previousObject": "urn:ngsi-ld:River:hieu"})
        );
        let attrs = deleted(
            json!({"notificationTrigger": ["attributeDeleted"], "notification": {"attributes": ["level"]}}),
            &b,
        );
        assert_eq!(
            attrs,
            json!({"id": ID, "type": "Gauge", "deletedAt": "2024-05-01T00:00:00Z",
                   "level": {"type": "Property", "value": NGSI_LD_NULL}})
        );
    }

    #[test]
    fn keeps_the_selected_datasets() {
        let e = entity(
            json!({"id": ID, "type": "Gauge",
                   "level": [{"type": "Property", "value": 1},
                             {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:radar"}]}),
            now(),
        );
        let radar = one(
            json!({"datasetId": ["urn:ngsi-ld:Dataset:radar"]}),
            None,
            Some(&e),
        );
        assert_eq!(
            radar["level"],
            json!({"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:radar"})
        );
        let all = one(json!({}), None, Some(&e));
        assert_eq!(all["level"].as_array().unwrap().len(), 2);
        // Simplified: one value per datasetId (clause 4.5.4), a deleted one null.
        let simple = one(
            json!({"notification": {"format": "keyValues"}}),
            None,
            Some(&e),
        );
        assert_eq!(
            simple["level"],
            json!({"dataset": {"@none": 1, "urn:ngsi-ld:Dataset:radar": 2}})
        );
        let mut radar_gone = e.clone();
        radar_gone
            .attrs
            .values_mut()
            .for_each(|v| v.retain(|a| a.dataset_id.is_none()));
        let deleted = one(
            json!({"notification": {"format": "keyValues"},
                   "notificationTrigger": ["attributeDeleted"]}),
            Some(&e),
            Some(&radar_gone),
        );
        assert_eq!(
            deleted["level"],
            json!({"dataset": {"@none": 1, "urn:ngsi-ld:Dataset:radar": NGSI_LD_NULL}})
        );
    }

    #[test]
    fn compacts_with_the_subscribers_context() {
        let ctx = user_ctx();
        let s = Subscription::parse(
            &json!({"type": "Subscription", "entities": [{"type": "Gauge"}],
                    "notification": {"endpoint": {"uri": "http://example.org/n", "accept": "application/ld+json"}}}),
            &ctx,
            || SUB_ID.into(),
            now(),
        )
        .unwrap();
        let e = crate::entity::Reader {
            ctx: &ctx,
            now: now(),
        }
        .entity(&json!({"id": ID, "type": "Gauge", "level": 1}), None)
        .unwrap();
        let n = s.compile().unwrap().notification(
            &[EntityChange {
                before: None,
                after: Some(&e),
            }],
            &ctx,
            "urn:n:1".into(),
            now(),
        );
        assert_eq!(n["data"][0]["type"], "Gauge");
        assert_eq!(n["data"][0]["level"]["value"], 1);
        assert_eq!(n["@context"], ctx.response_value());
        assert_eq!(n["data"][0]["@context"], ctx.response_value());
        assert!(s.context_in_body());
        assert_eq!(s.link_header(), None);
        assert_eq!(s.notification_context(), ctx.source[0]);
    }

    #[test]
    fn http_headers_carry_the_context_and_receiver_info() {
        let s = sub(json!({"notification": {"endpoint": {
            "receiverInfo": [{"key": "Authorization", "value": "Bearer t"}]}}}));
        let link =
            format!("<{CORE_CONTEXT_URL}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\"");
        assert_eq!(
            s.http_headers(),
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Link".to_string(), link.clone()),
                ("Authorization".to_string(), "Bearer t".to_string()),
            ]
        );
        let linked = sub(json!({"jsonldContext": "https://example.org/ctx.jsonld"}));
        assert_eq!(
            linked.link_header().unwrap(),
            format!(
                "<https://example.org/ctx.jsonld>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\""
            )
        );
        assert_eq!(
            linked.notification_context(),
            json!("https://example.org/ctx.jsonld")
        );
        let ld = sub(json!({"notification": {"endpoint": {"accept": "application/ld+json"}}}));
        assert_eq!(
            ld.http_headers(),
            vec![(
                "Content-Type".to_string(),
                "application/ld+json".to_string()
            )]
        );
        let message = s.mqtt_message(json!({"type": "Notification"}));
        assert_eq!(
            message,
            json!({"metadata": {"Content-Type": "application/json", "Link": link,
                                "Authorization": "Bearer t"},
                   "body": {"type": "Notification"}})
        );
    }

    #[test]
    fn reads_mqtt_targets() {
        let target = |uri: &str, info: Value| {
            sub(json!({"notification": {"endpoint": {"uri": uri, "notifierInfo": info}}}))
                .notification
                .endpoint
                .mqtt_target()
        };
        assert_eq!(
            target("mqtt://broker.example.org/rivers/levels", json!(null)),
            Some(MqttTarget {
                tls: false,
                host: "broker.example.org".into(),
                port: 1883,
                username: None,
                password: None,
                topic: "rivers/levels".into(),
                qos: 0,
                version: MqttVersion::V3_1_1,
            })
        );
        let t = target(
            "mqtts://user:p%40ss@broker:8884/s%C3%B4ng",
            json!([{"key": "MQTT-QoS", "value": "2"}, {"key": "MQTT-Version", "value": "mqtt5.0"}]),
        )
        .unwrap();
        assert!(t.tls);
        assert_eq!((t.port, t.qos, t.version), (8884, 2, MqttVersion::V5));
        assert_eq!(t.username.as_deref(), Some("user"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.topic, "sông");
        assert_eq!(target("mqtts://broker/t", json!(null)).unwrap().port, 8883);
        assert_eq!(target("http://example.org/n", json!(null)), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
