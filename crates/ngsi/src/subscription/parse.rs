//! Reading and checking a subscription (clause 5.8.1) or a fragment of one (clause
//! 5.8.2): every member on its own, then the rules that tie members together.
//!
//! Every violation is a 400 BadRequestData whose detail names the member, except the
//! member dothi knows but does not implement (`temporalQ`), which is 422
//! OperationNotSupported: accepting it would promise an
//! effect the subscriber would not get. Unknown members are refused for the same
//! reason (a misspelt `watchedAttribute` would silently watch everything); the
//! read-only members of Table 5.2.12-2 that a client copies back are ignored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use regex::RegexBuilder;
use serde_json::{Map, Value};

use super::format_name;
use super::{
    ACCEPT_JSON, ACCEPT_JSON_LD, Endpoint, EntitySelector, GeoQText, Join, NotificationParams,
    QText, Subscription, Trigger,
};
use crate::context::Context;
use crate::entity::{NGSI_LD_NULL, expand_attr, is_uri, is_valid_name, parse_time};
use crate::error::{Error, ErrorKind, Result, shorten};
use crate::filter::{GeoFilter, QFilter};
use crate::query::ast::{QExpr, QTerm};
use crate::query::{parse_geoq, parse_q, parse_scope_q, parse_type_expr};
use crate::render::Format;

/// Bounds on what one subscription may hold, so that storing and matching it stays
/// cheap whatever a client sends.
pub const MAX_SELECTORS: usize = 100;
/// Names in `watchedAttributes`, `notification.attributes`, `pick`, `omit`, and
/// dataset ids in `datasetId`.
pub const MAX_NAMES: usize = 100;
/// Pairs in `receiverInfo` and in `notifierInfo`.
pub const MAX_KEY_VALUES: usize = 32;
/// Longest `q`, `csf`, `scopeQ` text: a subscription is evaluated on every change,
/// so its filters stay far smaller than what a one-off query may send.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Longest `geoQ.coordinates` text (a polygon may have many points).
pub const MAX_COORDINATES_LEN: usize = 64 * 1024;
/// Largest `timeInterval` and `throttling`, in seconds (a leap year).
pub const MAX_SECONDS: u64 = 366 * 86_400;
/// Largest `timeout` and `cooldown`, in milliseconds (a day).
pub const MAX_MILLIS: u64 = 86_400_000;
/// Largest `notification.joinLevel`: hops of Relationships followed for one
/// notification (as for a query's `joinLevel`).
pub const MAX_JOIN_LEVEL: u8 = 5;

const MAX_SUBSCRIPTION_NAME_LEN: usize = 256;
const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
const MAX_URI_LEN: usize = 2 * 1024;
const MAX_PATTERN_LEN: usize = 1024;
const MAX_KEY_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 1024;
const MAX_TIME_LEN: usize = 64;
const MAX_LANG_LEN: usize = 256;
const MAX_TRIGGERS: usize = 32;
/// The same bound as the `~=` patterns of `q`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Members the system writes, which a client may send back and which are ignored, and
/// the @context, which the caller has already turned into the `ctx` given here.
const READ_ONLY: &[&str] = &["status", "createdAt", "modifiedAt", "@context"];
const READ_ONLY_NOTIFICATION: &[&str] = &[
    "status",
    "timesSent",
    "timesFailed",
    "lastNotification",
    "lastSuccess",
    "lastFailure",
];
/// Headers the notifier sets itself, which a receiverInfo pair must not replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "link",
    "te",
    "trailer",
    "upgrade",
];

/// Whether a subscription is being created (null is no value) or patched (null
/// removes an optional member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Patch,
}

impl Subscription {
    /// Reads a subscription from a POST /subscriptions body, names expanded with
    /// `ctx`; `id_if_missing` names it when the body does not.
    pub fn parse(
        body: &Value,
        ctx: &Context,
        id_if_missing: impl FnOnce() -> String,
        now: DateTime<Utc>,
    ) -> Result<Subscription> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::bad_data("a subscription must be a JSON object"))?;
        check_type(obj, true)?;
        let id = match obj.get("id") {
            None => id_if_missing(),
            Some(Value::String(id)) if is_uri(id) => id.clone(),
            Some(other) => {
                return Err(Error::bad_data(format!(
                    "the subscription id {} is not a URI",
                    shorten(&other.to_string())
                )));
            }
        };
        let mut sub = Subscription {
            id,
            subscription_name: None,
            description: None,
            entities: Vec::new(),
            watched_attributes: Vec::new(),
            triggers: Trigger::DEFAULT.to_vec(),
            q: None,
            geo_q: None,
            scope_q: None,
            csf: None,
            time_interval: None,
            throttling: None,
            expires_at: None,
            is_active: true,
            lang: None,
            jsonld_context: None,
            dataset_ids: Vec::new(),
            notification: NotificationParams::default(),
            context: ctx.source.clone(),
            created_at: now,
            modified_at: now,
        };
        if !obj.contains_key("notification") {
            return Err(Error::bad_data("notification is required"));
        }
        for (key, value) in obj {
            sub.set_member(key, value, ctx, now, Mode::Create)?;
        }
        sub.check()?;
        Ok(sub)
    }

    /// Applies a PATCH /subscriptions/{id} fragment: each member given replaces the
    /// current one (`notification` too, whole: it must name its endpoint), null or
    /// `urn:ngsi-ld:null` removes an optional member, and the result is checked as a
    /// whole. On error nothing changes.
    pub fn apply_patch(&mut self, body: &Value, ctx: &Context, now: DateTime<Utc>) -> Result<()> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::bad_data("a subscription fragment must be a JSON object"))?;
        check_type(obj, false)?;
        match obj.get("id") {
            None => {}
            Some(Value::String(id)) if *id == self.id => {}
            Some(_) => return Err(Error::bad_data("the id of a subscription cannot change")),
        }
        if !obj
            .keys()
            .any(|k| !["id", "type", "@context"].contains(&k.as_str()))
        {
            return Err(Error::bad_data("the fragment changes nothing"));
        }
        let mut next = self.clone();
        for (key, value) in obj {
            next.set_member(key, value, ctx, now, Mode::Patch)?;
        }
        next.check()?;
        next.modified_at = now;
        *self = next;
        Ok(())
    }

    fn set_member(
        &mut self,
        key: &str,
        value: &Value,
        ctx: &Context,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<()> {
        if matches!(key, "id" | "type") || READ_ONLY.contains(&key) {
            return Ok(());
        }
        if is_null(value) {
            if mode == Mode::Create {
                return Err(Error::bad_data(format!(
                    "{key}: null is not a value (leave the member out)"
                )));
            }
            return self.remove_member(key);
        }
        match key {
            "subscriptionName" => {
                self.subscription_name = Some(text(key, value, MAX_SUBSCRIPTION_NAME_LEN)?)
            }
            "description" => self.description = Some(text(key, value, MAX_DESCRIPTION_LEN)?),
            "entities" => self.entities = selectors(value, ctx)?,
            "watchedAttributes" => self.watched_attributes = names(key, value, ctx, false)?,
            "notificationTrigger" => self.triggers = triggers(value)?,
            "q" => self.q = Some(q_text(key, value, ctx)?),
            "csf" => self.csf = Some(q_text(key, value, ctx)?),
            "geoQ" => self.geo_q = Some(geo_q(value, ctx)?),
            "scopeQ" => self.scope_q = Some(scope_q(value)?),
            "timeInterval" => self.time_interval = Some(seconds(key, value)?),
            "throttling" => self.throttling = Some(seconds(key, value)?),
            "expiresAt" => self.expires_at = Some(expires_at(value, now)?),
            "isActive" => {
                self.is_active = value
                    .as_bool()
                    .ok_or_else(|| Error::bad_data("isActive must be true or false"))?
            }
            "lang" => self.lang = Some(lang(value)?),
            "jsonldContext" => self.jsonld_context = Some(jsonld_context(value)?),
            "datasetId" => self.dataset_ids = dataset_ids(value)?,
            "notification" => {
                let obj = value
                    .as_object()
                    .ok_or_else(|| Error::bad_data("notification must be a JSON object"))?;
                // A fragment's notification replaces the subscription's whole (clause
                // 5.8.2 replaces each member given), so it is a complete
                // NotificationParams, endpoint included.
                if !obj.contains_key("endpoint") {
                    return Err(Error::bad_data("notification.endpoint is required"));
                }
                let mut notification = NotificationParams::default();
                for (key, value) in obj {
                    set_notification_member(&mut notification, key, value, ctx, mode)?;
                }
                self.notification = notification;
            }
            "temporalQ" => {
                return Err(Error::new(
                    ErrorKind::OperationNotSupported,
                    "temporalQ in subscriptions is not supported",
                ));
            }
            other => {
                return Err(Error::bad_data(format!(
                    "{:?} is not a member of a subscription",
                    shorten(other)
                )));
            }
        }
        Ok(())
    }

    fn remove_member(&mut self, key: &str) -> Result<()> {
        match key {
            "subscriptionName" => self.subscription_name = None,
            "description" => self.description = None,
            "entities" => self.entities.clear(),
            "watchedAttributes" => self.watched_attributes.clear(),
            "notificationTrigger" => self.triggers = Trigger::DEFAULT.to_vec(),
            "q" => self.q = None,
            "csf" => self.csf = None,
            "geoQ" => self.geo_q = None,
            "scopeQ" => self.scope_q = None,
            "timeInterval" => self.time_interval = None,
            "throttling" => self.throttling = None,
            "expiresAt" => self.expires_at = None,
            "isActive" => self.is_active = true,
            "lang" => self.lang = None,
            "jsonldContext" => self.jsonld_context = None,
            "datasetId" => self.dataset_ids.clear(),
            "notification" => {
                return Err(Error::bad_data(
                    "notification is mandatory and cannot be removed",
                ));
            }
            other => {
                return Err(Error::bad_data(format!(
                    "{:?} is not a member of a subscription",
                    shorten(other)
                )));
            }
        }
        Ok(())
    }

    /// The rules between members (Table 5.2.12-1 and 5.2.14.1-1).
    fn check(&self) -> Result<()> {
        if self.entities.is_empty() && self.watched_attributes.is_empty() {
            return Err(Error::bad_data(
                "a subscription needs entities or watchedAttributes",
            ));
        }
        if self.time_interval.is_some() && self.throttling.is_some() {
            return Err(Error::bad_data(
                "timeInterval and throttling cannot be used together",
            ));
        }
        if self.time_interval.is_some() && !self.watched_attributes.is_empty() {
            return Err(Error::bad_data(
                "timeInterval and watchedAttributes cannot be used together: a periodic \
                 subscription does not watch changes",
            ));
        }
        let n = &self.notification;
        if n.show_changes && n.format == Format::KeyValues {
            return Err(Error::bad_data(
                "notification.showChanges cannot be used with the keyValues format, which \
                 has no place for previous values",
            ));
        }
        if !n.attributes.is_empty() && (!n.pick.is_empty() || !n.omit.is_empty()) {
            return Err(Error::bad_data(
                "notification.attributes cannot be used with pick or omit",
            ));
        }
        if !n.pick.is_empty() && !n.omit.is_empty() {
            return Err(Error::bad_data(
                "notification.pick and notification.omit cannot be used together",
            ));
        }
        let mqtt = n
            .endpoint
            .uri
            .get(..4)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("mqtt"));
        if !mqtt
            && let Some((key, _)) = n
                .endpoint
                .notifier_info
                .iter()
                .find(|(k, _)| k.to_ascii_lowercase().starts_with("mqtt-"))
        {
            return Err(Error::bad_data(format!(
                "notification.endpoint.notifierInfo: {key} only applies to mqtt endpoints"
            )));
        }
        Ok(())
    }
}

fn check_type(obj: &Map<String, Value>, required: bool) -> Result<()> {
    match obj.get("type") {
        Some(Value::String(t)) if t == "Subscription" => Ok(()),
        None if !required => Ok(()),
        None => Err(Error::bad_data("type must be \"Subscription\"")),
        Some(_) => Err(Error::bad_data("type must be \"Subscription\"")),
    }
}

fn set_notification_member(
    n: &mut NotificationParams,
    key: &str,
    value: &Value,
    ctx: &Context,
    mode: Mode,
) -> Result<()> {
    if READ_ONLY_NOTIFICATION.contains(&key) {
        return Ok(());
    }
    if is_null(value) {
        if mode == Mode::Create {
            return Err(Error::bad_data(format!(
                "notification.{key}: null is not a value (leave the member out)"
            )));
        }
        match key {
            "attributes" => n.attributes.clear(),
            "pick" => n.pick.clear(),
            "omit" => n.omit.clear(),
            "format" => n.format = Format::Normalized,
            "showChanges" => n.show_changes = false,
            "sysAttrs" => n.sys_attrs = false,
            "join" => n.join = None,
            "joinLevel" => n.join_level = None,
            "endpoint" => {
                return Err(Error::bad_data(
                    "notification.endpoint is mandatory and cannot be removed",
                ));
            }
            other => return Err(unknown_notification_member(other)),
        }
        return Ok(());
    }
    match key {
        "attributes" => n.attributes = names("notification.attributes", value, ctx, false)?,
        "pick" => n.pick = names("notification.pick", value, ctx, true)?,
        "omit" => n.omit = names("notification.omit", value, ctx, true)?,
        "format" => {
            n.format = value.as_str().and_then(format_name::parse).ok_or_else(|| {
                Error::bad_data(format!(
                    "notification.format {} is not normalized, keyValues, simplified or \
                         concise",
                    shorten(&value.to_string())
                ))
            })?
        }
        "showChanges" => n.show_changes = boolean("notification.showChanges", value)?,
        "sysAttrs" => n.sys_attrs = boolean("notification.sysAttrs", value)?,
        "endpoint" => n.endpoint = endpoint(value)?,
        "join" => {
            n.join = match value.as_str() {
                Some("@none") => None,
                Some("flat") => Some(Join::Flat),
                Some("inline") => Some(Join::Inline),
                _ => {
                    return Err(Error::bad_data(
                        "notification.join must be flat, inline or @none",
                    ));
                }
            }
        }
        "joinLevel" => {
            let level = positive(
                "notification.joinLevel",
                value,
                u64::from(MAX_JOIN_LEVEL),
                "a positive integer",
            )?;
            n.join_level = u8::try_from(level).ok();
        }
        other => return Err(unknown_notification_member(other)),
    }
    Ok(())
}

fn unknown_notification_member(key: &str) -> Error {
    Error::bad_data(format!(
        "{:?} is not a member of notification",
        shorten(key)
    ))
}

/// NGSI-LD has two nulls: JSON null, and `urn:ngsi-ld:null` for where JSON-LD would
/// drop a JSON null.
fn is_null(value: &Value) -> bool {
    value.is_null() || value.as_str() == Some(NGSI_LD_NULL)
}

fn boolean(name: &str, value: &Value) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| Error::bad_data(format!("{name} must be true or false")))
}

/// A string of at most `max` bytes.
fn bounded_str<'a>(name: &str, value: &'a Value, max: usize) -> Result<&'a str> {
    let s = value
        .as_str()
        .ok_or_else(|| Error::bad_data(format!("{name} must be a string")))?;
    if s.len() > max {
        return Err(Error::bad_data(format!(
            "{name} is longer than {max} bytes"
        )));
    }
    Ok(s)
}

/// A free text without control characters.
fn text(name: &str, value: &Value, max: usize) -> Result<String> {
    let s = bounded_str(name, value, max)?;
    if s.chars().any(char::is_control) {
        return Err(Error::bad_data(format!(
            "{name} must not hold control characters"
        )));
    }
    Ok(s.to_string())
}

/// A JSON array of at most `max` items (a lone item is not accepted: the members
/// read here are all arrays in the spec).
fn array<'a>(name: &str, value: &'a Value, max: usize) -> Result<&'a Vec<Value>> {
    match value {
        Value::Array(items) if items.is_empty() => {
            Err(Error::bad_data(format!("{name} must not be empty")))
        }
        Value::Array(items) if items.len() > max => {
            Err(Error::bad_data(format!("{name} has more than {max} items")))
        }
        Value::Array(items) => Ok(items),
        _ => Err(Error::bad_data(format!("{name} must be an array"))),
    }
}

/// Attribute names, expanded and each kept once. With `members`, `id` and `type`
/// are entity members (pick, omit) and stay as they are.
fn names(name: &str, value: &Value, ctx: &Context, members: bool) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in array(name, value, MAX_NAMES)? {
        let term = item
            .as_str()
            .ok_or_else(|| Error::bad_data(format!("{name} must hold strings")))?;
        let iri = if members && matches!(term, "id" | "type") {
            term.to_string()
        } else {
            expand_attr(term, ctx).map_err(|e| Error::bad_data(format!("{name}: {}", e.detail)))?
        };
        if !out.contains(&iri) {
            out.push(iri);
        }
    }
    Ok(out)
}

fn selectors(value: &Value, ctx: &Context) -> Result<Vec<EntitySelector>> {
    let mut out = Vec::new();
    for (i, item) in array("entities", value, MAX_SELECTORS)?.iter().enumerate() {
        let name = format!("entities[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| Error::bad_data(format!("{name} must be a JSON object")))?;
        let mut selector = EntitySelector {
            id: None,
            id_pattern: None,
            entity_type: String::new(),
        };
        for (key, value) in obj {
            match key.as_str() {
                "id" => match value.as_str() {
                    Some(id) if is_uri(id) => selector.id = Some(id.to_string()),
                    _ => return Err(Error::bad_data(format!("{name}.id must be a URI"))),
                },
                "idPattern" => selector.id_pattern = Some(id_pattern(&name, value)?),
                "type" => selector.entity_type = type_selection(&name, value, ctx)?,
                other => {
                    return Err(Error::bad_data(format!(
                        "{name}: {:?} is not a member of an entity selector (id, idPattern, type)",
                        shorten(other)
                    )));
                }
            }
        }
        if selector.entity_type.is_empty() {
            return Err(Error::bad_data(format!("{name}.type is required")));
        }
        if !out.contains(&selector) {
            out.push(selector);
        }
    }
    Ok(out)
}

fn id_pattern(name: &str, value: &Value) -> Result<String> {
    let pattern = bounded_str(&format!("{name}.idPattern"), value, MAX_PATTERN_LEN)?;
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| Error::bad_data(format!("{name}.idPattern is not a valid pattern: {e}")))?;
    Ok(pattern.to_string())
}

/// Expands a type selection and prints it canonically. The printed text must parse
/// back to the same selection (an expanded IRI holding `,` or `;` would not): a
/// stored selection is compiled from its text.
fn type_selection(name: &str, value: &Value, ctx: &Context) -> Result<String> {
    let text = bounded_str(&format!("{name}.type"), value, MAX_FILTER_LEN)?;
    let expr = parse_type_expr(text)
        .map_err(|e| Error::bad_data(format!("{name}.type is not a type selection: {e}")))?;
    if let Some(bad) = expr.names().into_iter().find(|n| !is_valid_name(n)) {
        return Err(Error::bad_data(format!(
            "{name}.type: {bad:?} is not a valid type name"
        )));
    }
    let expanded = expr.map_names(&|n| ctx.expand(n));
    let printed = expanded.to_string();
    if parse_type_expr(&printed).as_ref() != Ok(&expanded) {
        return Err(Error::bad_data(format!(
            "{name}.type: the @context expands a type to an IRI a type selection cannot hold"
        )));
    }
    Ok(printed)
}

fn triggers(value: &Value) -> Result<Vec<Trigger>> {
    let mut out = Vec::new();
    for item in array("notificationTrigger", value, MAX_TRIGGERS)? {
        let trigger = item.as_str().and_then(Trigger::parse).ok_or_else(|| {
            Error::bad_data(format!(
                "notificationTrigger {} is not one of entityCreated, entityUpdated, \
                 entityDeleted, attributeCreated, attributeUpdated, attributeDeleted",
                shorten(&item.to_string())
            ))
        })?;
        if !out.contains(&trigger) {
            out.push(trigger);
        }
    }
    Ok(out)
}

/// The attribute (and sub-attribute) names of a `q` expression.
fn q_names(expr: &QExpr, out: &mut BTreeSet<String>) {
    match expr {
        QExpr::And(items) | QExpr::Or(items) => items.iter().for_each(|e| q_names(e, out)),
        QExpr::Term(term) => {
            let path = QTerm::path(term);
            out.insert(path.attr.clone());
            out.extend(path.sub_attrs.iter().cloned());
        }
    }
}

fn q_text(name: &str, value: &Value, ctx: &Context) -> Result<QText> {
    let text = bounded_str(name, value, MAX_FILTER_LEN)?;
    let expr = parse_q(text).map_err(|e| Error::bad_data(format!("invalid {name}: {e}")))?;
    let mut found = BTreeSet::new();
    q_names(&expr, &mut found);
    let names: BTreeMap<String, String> = found
        .into_iter()
        .map(|n| {
            let iri = ctx.expand(&n);
            (n, iri)
        })
        .collect();
    let q = QText {
        text: text.to_string(),
        names,
    };
    // Compiles the patterns now, so that a bad `~=` pattern is the client's error.
    q.filter()
        .map_err(|e| Error::bad_data(format!("invalid {name}: {}", e.detail)))?;
    Ok(q)
}

impl QText {
    /// The expression, names replaced by the IRIs recorded for them.
    pub(crate) fn expr(&self) -> Result<QExpr> {
        let expr = parse_q(&self.text).map_err(|e| Error::bad_data(format!("invalid q: {e}")))?;
        Ok(expr.map_attrs(&|n| self.names.get(n).cloned().unwrap_or_else(|| n.to_string())))
    }

    pub(crate) fn filter(&self) -> Result<QFilter> {
        QFilter::new(self.expr()?)
    }
}

impl GeoQText {
    pub(crate) fn filter(&self) -> Result<GeoFilter> {
        let mut query = parse_geoq(&self.georel, &self.geometry, &self.coordinates, None)
            .map_err(|e| Error::bad_data(format!("invalid geoQ: {e}")))?;
        query.geoproperty = self.geoproperty.clone();
        GeoFilter::new(query)
    }
}

fn geo_q(value: &Value, ctx: &Context) -> Result<GeoQText> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::bad_data("geoQ must be a JSON object"))?;
    let mut georel = None;
    let mut geometry = None;
    let mut coordinates = None;
    let mut geoproperty = None;
    for (key, value) in obj {
        match key.as_str() {
            "georel" => georel = Some(text("geoQ.georel", value, MAX_FILTER_LEN)?),
            "geometry" => geometry = Some(text("geoQ.geometry", value, MAX_FILTER_LEN)?),
            "coordinates" => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Array(_) => value.to_string(),
                    _ => {
                        return Err(Error::bad_data(
                            "geoQ.coordinates must be an array or a string",
                        ));
                    }
                };
                if text.len() > MAX_COORDINATES_LEN {
                    return Err(Error::bad_data(format!(
                        "geoQ.coordinates is longer than {MAX_COORDINATES_LEN} bytes"
                    )));
                }
                coordinates = Some(text);
            }
            "geoproperty" => geoproperty = Some(text("geoQ.geoproperty", value, MAX_FILTER_LEN)?),
            other => {
                return Err(Error::bad_data(format!(
                    "geoQ: {:?} is not a member (georel, geometry, coordinates, geoproperty)",
                    shorten(other)
                )));
            }
        }
    }
    let (Some(georel), Some(geometry), Some(coordinates)) = (georel, geometry, coordinates) else {
        return Err(Error::bad_data(
            "geoQ needs georel, geometry and coordinates",
        ));
    };
    let query = parse_geoq(&georel, &geometry, &coordinates, geoproperty.as_deref())
        .map_err(|e| Error::bad_data(format!("invalid geoQ: {e}")))?;
    let geo = GeoQText {
        georel,
        geometry,
        coordinates,
        geoproperty: expand_attr(&query.geoproperty, ctx)?,
    };
    geo.filter()?;
    Ok(geo)
}

fn scope_q(value: &Value) -> Result<String> {
    let text = bounded_str("scopeQ", value, MAX_FILTER_LEN)?;
    parse_scope_q(text).map_err(|e| Error::bad_data(format!("invalid scopeQ: {e}")))?;
    Ok(text.to_string())
}

/// A positive whole number no larger than `max`. A JSON number with a zero
/// fraction (`5.0`) counts as whole.
fn positive(name: &str, value: &Value, max: u64, what: &str) -> Result<u64> {
    let n = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= max as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    match n {
        Some(n) if n >= 1 && n <= max => Ok(n),
        _ => Err(Error::bad_data(format!(
            "{name} must be {what} no larger than {max}"
        ))),
    }
}

fn seconds(name: &str, value: &Value) -> Result<u64> {
    positive(
        name,
        value,
        MAX_SECONDS,
        "a positive whole number of seconds",
    )
}

fn expires_at(value: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let t = value
        .as_str()
        .filter(|s| s.len() <= MAX_TIME_LEN)
        .and_then(parse_time)
        .ok_or_else(|| {
            Error::bad_data("expiresAt must be an ISO 8601 datetime with a time zone")
        })?;
    if t <= now {
        return Err(Error::bad_data("expiresAt must be in the future"));
    }
    Ok(t)
}

/// A language preference, read as the `lang` query parameter is: tags (or `*`)
/// separated by commas, quality values ignored.
fn lang(value: &Value) -> Result<String> {
    let text = value
        .as_str()
        .filter(|s| s.len() <= MAX_LANG_LEN)
        .ok_or_else(|| Error::bad_data("lang must be a short string of language tags"))?;
    if lang_prefs(text).is_none() {
        return Err(Error::bad_data(format!(
            "lang {:?} is not a list of language tags",
            shorten(text)
        )));
    }
    Ok(text.to_string())
}

/// The tags of a `lang` text in order, or None when it holds no tag or a malformed one.
pub(crate) fn lang_prefs(text: &str) -> Option<Vec<String>> {
    let prefs: Vec<String> = text
        .split(',')
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let valid = !prefs.is_empty()
        && prefs.iter().all(|t| {
            t.len() <= 35
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
        });
    valid.then_some(prefs)
}

fn jsonld_context(value: &Value) -> Result<String> {
    match value.as_str() {
        Some(s)
            if s.len() <= MAX_URI_LEN
                && is_uri(s)
                && url::Url::parse(s)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) =>
        {
            Ok(s.to_string())
        }
        _ => Err(Error::bad_data(
            "jsonldContext must be the http(s) URL of an @context",
        )),
    }
}

fn dataset_ids(value: &Value) -> Result<Vec<String>> {
    let single;
    let items = match value {
        Value::String(_) => {
            single = vec![value.clone()];
            &single
        }
        other => array("datasetId", other, MAX_NAMES)?,
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(id) if id == "@none" || is_uri(id) => {
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_string());
                }
            }
            _ => {
                return Err(Error::bad_data(
                    "datasetId must hold URIs (or @none for the default instance)",
                ));
            }
        }
    }
    Ok(out)
}

fn endpoint(value: &Value) -> Result<Endpoint> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::bad_data("notification.endpoint must be a JSON object"))?;
    let mut e = Endpoint {
        accept: ACCEPT_JSON.to_string(),
        ..Endpoint::default()
    };
    for (key, value) in obj {
        match key.as_str() {
            "uri" => e.uri = endpoint_uri(value)?,
            "accept" => match value.as_str() {
                Some(a @ (ACCEPT_JSON | ACCEPT_JSON_LD)) => e.accept = a.to_string(),
                _ => {
                    return Err(Error::bad_data(format!(
                        "notification.endpoint.accept must be {ACCEPT_JSON} or {ACCEPT_JSON_LD}"
                    )));
                }
            },
            "timeout" => {
                e.timeout = Some(positive(
                    "notification.endpoint.timeout",
                    value,
                    MAX_MILLIS,
                    "a positive number of milliseconds",
                )?)
            }
            "cooldown" => {
                e.cooldown = Some(positive(
                    "notification.endpoint.cooldown",
                    value,
                    MAX_MILLIS,
                    "a positive number of milliseconds",
                )?)
            }
            "receiverInfo" => e.receiver_info = key_values("receiverInfo", value)?,
            "notifierInfo" => e.notifier_info = key_values("notifierInfo", value)?,
            other => {
                return Err(Error::bad_data(format!(
                    "notification.endpoint: {:?} is not a member (uri, accept, timeout, \
                     cooldown, receiverInfo, notifierInfo)",
                    shorten(other)
                )));
            }
        }
    }
    if e.uri.is_empty() {
        return Err(Error::bad_data("notification.endpoint.uri is required"));
    }
    Ok(e)
}

/// An absolute URI the notifier can deliver to: http(s) with a host, or mqtt(s) with
/// a host and a topic to publish on. Kept as given.
fn endpoint_uri(value: &Value) -> Result<String> {
    let bad = |why: &str| Error::bad_data(format!("notification.endpoint.uri {why}"));
    let text = value.as_str().ok_or_else(|| bad("must be a string"))?;
    if text.len() > MAX_URI_LEN {
        return Err(bad(&format!("is longer than {MAX_URI_LEN} bytes")));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not hold spaces or control characters"));
    }
    let url = url::Url::parse(text)
        .map_err(|e| bad(&format!("{:?} is not an absolute URI: {e}", shorten(text))))?;
    // The URL parser mends `http:/x` into `http://x/`; a notification target is
    // taken as written or not at all.
    if !text[url.scheme().len()..].starts_with("://") {
        return Err(bad("needs a host (scheme://host/...)"));
    }
    match url.scheme() {
        "http" | "https" => {
            if !url.has_host() || url.host_str().is_some_and(str::is_empty) {
                return Err(bad("needs a host"));
            }
        }
        "mqtt" | "mqtts" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("needs a host (mqtt://host[:port]/topic)"));
            }
            let topic = url.path().trim_start_matches('/');
            if topic.is_empty() {
                return Err(bad("needs a topic (mqtt://host[:port]/topic)"));
            }
            // A `#` starts the fragment of a URI, so a wildcard shows up there.
            if topic.contains('+') || url.fragment().is_some() {
                return Err(bad(
                    "names a topic filter: one publishes to a topic without + or #",
                ));
            }
            if url.query().is_some() {
                return Err(bad("of an mqtt endpoint takes no query"));
            }
        }
        other => {
            return Err(bad(&format!(
                "has scheme {:?}: it must be http, https, mqtt or mqtts",
                shorten(other)
            )));
        }
    }
    Ok(text.to_string())
}

/// A KeyValuePair list (clause 5.2.22): both members strings, keys unique (ignoring
/// case, as header names are) and usable as an HTTP header name, values free of
/// control characters so they cannot split a header.
fn key_values(name: &str, value: &Value) -> Result<Vec<(String, String)>> {
    let name = format!("notification.endpoint.{name}");
    let mut out: Vec<(String, String)> = Vec::new();
    for item in array(&name, value, MAX_KEY_VALUES)? {
        let obj = item.as_object().filter(|o| o.len() == 2).ok_or_else(|| {
            Error::bad_data(format!("{name} holds {{\"key\", \"value\"}} objects"))
        })?;
        let (Some(Value::String(key)), Some(Value::String(val))) =
            (obj.get("key"), obj.get("value"))
        else {
            return Err(Error::bad_data(format!(
                "{name} holds {{\"key\", \"value\"}} objects of two strings"
            )));
        };
        let token = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Err(Error::bad_data(format!(
                "{name}: {:?} is not a valid key (an HTTP header name)",
                shorten(key)
            )));
        }
        if val.len() > MAX_VALUE_LEN || val.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Error::bad_data(format!(
                "{name}: the value of {key} must be at most {MAX_VALUE_LEN} bytes without \
                 control characters"
            )));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(Error::bad_data(format!("{name}: {key} is given twice")));
        }
        out.push((key.clone(), val.clone()));
    }
    if name.ends_with("receiverInfo")
        && let Some((key, _)) = out
            .iter()
            .find(|(k, _)| RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
    {
        return Err(Error::bad_data(format!(
            "{name}: {key} is set by the notifier and cannot be given"
        )));
    }
    if name.ends_with("notifierInfo") {
        for (key, val) in &out {
            let valid = match key.to_ascii_lowercase().as_str() {
                "mqtt-qos" => matches!(val.as_str(), "0" | "1" | "2"),
                "mqtt-version" => matches!(val.as_str(), "mqtt3.1.1" | "mqtt5.0"),
                _ => true,
            };
            if !valid {
                return Err(Error::bad_data(format!(
                    "{name}: {key} {:?} is not valid (MQTT-QoS is 0, 1 or 2; MQTT-Version is \
                     mqtt3.1.1 or mqtt5.0)",
                    shorten(val)
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::DEFAULT_VOCAB;
    use crate::subscription::testing::{SUB_ID, minimal, now, sub, t, try_parse, user_ctx, with};
    use crate::subscription::{Status, SubscriptionStatus};
    use proptest::prelude::*;
    use serde_json::json;

    fn full() -> Value {
        json!({
            "id": "urn:ngsi-ld:Subscription:full",
            "type": "Subscription",
            "subscriptionName": "river levels",
            "description": "Levels of the rivers of Quảng Trị",
            "entities": [
                {"type": "Gauge"},
                {"id": "urn:ngsi-ld:Gauge:1", "type": "(Gauge|ex:Tower);Sensor"},
                {"idPattern": "^urn:ngsi-ld:Gauge:", "type": "Gauge"}
            ],
            "watchedAttributes": ["level", "name", "level"],
            "notificationTrigger": ["entityCreated", "attributeUpdated"],
            "q": "level>2;alarm.since>=2024-01-01T00:00:00Z",
            "geoQ": {"georel": "near;maxDistance==2000", "geometry": "Point",
                     "coordinates": [107.1, 16.8], "geoproperty": "location"},
            "scopeQ": "/QuangTri/#",
            "csf": "endpoint==\"http://cs.example.org\"",
            "throttling": 5,
            "expiresAt": "2030-01-01T00:00:00+07:00",
            "isActive": false,
            "lang": "vi,en;q=0.5",
            "jsonldContext": "https://example.org/ctx.jsonld",
            "datasetId": ["urn:ngsi-ld:Dataset:a", "@none"],
            "status": "expired",
            "createdAt": "2000-01-01T00:00:00Z",
            "@context": "https://example.org/ignored.jsonld",
            "notification": {
                "attributes": ["level"],
                "format": "concise",
                "showChanges": true,
                "sysAttrs": true,
                "timesSent": 42,
                "status": "ok",
                "join": "@none",
                "endpoint": {
                    "uri": "mqtts://user:secret@broker.example.org:8883/rivers/levels",
                    "accept": "application/ld+json",
                    "timeout": 5000,
                    "cooldown": 60000,
                    "receiverInfo": [{"key": "Authorization", "value": "Bearer abc"}],
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "1"},
                                     {"key": "MQTT-Version", "value": "mqtt5.0"}]
                }
            }
        })
    }

    #[test]
    fn reads_every_member() {
        let ctx = user_ctx();
        let s = try_parse(&full(), &ctx).unwrap();
        assert_eq!(s.id, "urn:ngsi-ld:Subscription:full");
        assert_eq!(s.subscription_name.as_deref(), Some("river levels"));
        assert_eq!(s.entities.len(), 3);
        assert_eq!(s.entities[0].entity_type, "https://example.org/Gauge");
        assert_eq!(
            s.entities[1].entity_type,
            format!("(https://example.org/Gauge,https://example.org/Tower);{DEFAULT_VOCAB}Sensor")
        );
        assert_eq!(s.entities[1].id.as_deref(), Some("urn:ngsi-ld:Gauge:1"));
        assert_eq!(
            s.entities[2].id_pattern.as_deref(),
            Some("^urn:ngsi-ld:Gauge:")
        );
        assert_eq!(
            s.watched_attributes,
            vec![
                "https://example.org/level".to_string(),
                format!("{DEFAULT_VOCAB}name")
            ]
        );
        assert_eq!(
            s.triggers,
            vec![Trigger::EntityCreated, Trigger::AttributeUpdated]
        );
        let q = s.q.as_ref().unwrap();
        assert_eq!(q.text, "level>2;alarm.since>=2024-01-01T00:00:00Z");
        assert_eq!(q.names["level"], "https://example.org/level");
        assert_eq!(q.names["since"], format!("{DEFAULT_VOCAB}since"));
        let geo = s.geo_q.as_ref().unwrap();
        assert_eq!(geo.coordinates, "[107.1,16.8]");
        assert_eq!(geo.geoproperty, "https://uri.etsi.org/ngsi-ld/location");
        assert_eq!(s.scope_q.as_deref(), Some("/QuangTri/#"));
        assert!(s.csf.is_some());
        assert_eq!(s.throttling, Some(5));
        assert_eq!(s.expires_at, Some(t("2029-12-31T17:00:00Z")));
        assert!(!s.is_active);
        assert_eq!(s.status(now()), Status::Paused);
        assert_eq!(s.lang.as_deref(), Some("vi,en;q=0.5"));
        assert_eq!(s.dataset_ids, vec!["urn:ngsi-ld:Dataset:a", "@none"]);
        let n = &s.notification;
        assert_eq!(n.attributes, vec!["https://example.org/level".to_string()]);
        assert_eq!(n.format, Format::Concise);
        assert!(n.show_changes && n.sys_attrs);
        let e = &n.endpoint;
        assert_eq!(e.accept, ACCEPT_JSON_LD);
        assert_eq!((e.timeout, e.cooldown), (Some(5000), Some(60000)));
        assert_eq!(
            e.receiver_info,
            vec![("Authorization".into(), "Bearer abc".into())]
        );
        assert_eq!(e.notifier_info.len(), 2);
        assert_eq!(s.context, ctx.source);
        assert_eq!((s.created_at, s.modified_at), (now(), now()));
    }

    #[test]
    fn fills_in_defaults() {
        let s = try_parse(&minimal(), &Context::core()).unwrap();
        assert_eq!(s.id, SUB_ID);
        assert_eq!(s.triggers, Trigger::DEFAULT.to_vec());
        assert!(s.is_active);
        assert_eq!(s.status(now()), Status::Active);
        assert_eq!(s.notification.format, Format::Normalized);
        assert_eq!(s.notification.endpoint.accept, ACCEPT_JSON);
        assert!(!s.notification.show_changes && !s.notification.sys_attrs);
        assert_eq!(s.entities[0].entity_type, format!("{DEFAULT_VOCAB}Gauge"));
        let s = sub(json!({"notification": {"format": "simplified"}}));
        assert_eq!(s.notification.format, Format::KeyValues);
        let s = sub(json!({"entities": null, "watchedAttributes": ["level"]}));
        assert!(s.entities.is_empty());
        let s = sub(json!({"timeInterval": 5.0}));
        assert_eq!(s.time_interval, Some(5));
        let s = sub(json!({"datasetId": "urn:ngsi-ld:Dataset:a"}));
        assert_eq!(s.dataset_ids, vec!["urn:ngsi-ld:Dataset:a"]);
        for uri in [
            "https://example.org:8443/notify?x=1",
            "mqtt://broker/topic",
            "mqtt://user@broker:1884/a/b",
        ] {
            let s = sub(json!({"notification": {"endpoint": {"uri": uri}}}));
            assert_eq!(s.notification.endpoint.uri, uri);
        }
    }

    /// Every case is `minimal()` with a patch merged in, and must give a 400 whose
    /// detail holds the needle.
    #[test]
    fn refuses_invalid_members() {
        let long = "x".repeat(9_000);
        let many = |n: usize, item: Value| Value::Array(vec![item; n]);
        let pairs = |n: usize| {
            Value::Array(
                (0..n)
                    .map(|i| json!({"key": format!("K{i}"), "value": "v"}))
                    .collect(),
            )
        };
        let endpoint = |e: Value| json!({"notification": {"endpoint": e}});
        let uri = |u: &str| endpoint(json!({"uri": u}));
        // Endpoints with one more member.
        let http_with =
            |member: &str, v: Value| endpoint(json!({"uri": "http://example.org", member: v}));
        let receiver_info =
            |info: Value| endpoint(json!({"uri": "http://e.org", "receiverInfo": info}));
        let notifier_info =
            |uri: &str, info: Value| endpoint(json!({"uri": uri, "notifierInfo": info}));
        let cases: Vec<(Value, &str)> = vec![
            (json!({"type": "Entity"}), "type"),
            (json!({"type": null}), "type"),
            (json!({"id": "not a uri"}), "not a URI"),
            (json!({"id": 7}), "not a URI"),
            (json!({"entities": null}), "entities or watchedAttributes"),
            (json!({"entities": []}), "must not be empty"),
            (json!({"entities": {"type": "Gauge"}}), "must be an array"),
            (
                json!({"entities": many(101, json!({"type": "G"}))}),
                "more than 100",
            ),
            (json!({"entities": [{"id": "urn:x:1"}]}), "type is required"),
            (
                json!({"entities": [{"type": "Gauge", "id": "x"}]}),
                "must be a URI",
            ),
            (
                json!({"entities": [{"type": "Gauge", "idPattern": "("}]}),
                "idPattern",
            ),
            (
                json!({"entities": [{"type": "Gauge", "idPattern": long.clone()}]}),
                "idPattern",
            ),
            (
                json!({"entities": [{"type": "Gauge", "ids": "urn:x:1"}]}),
                "not a member",
            ),
            (json!({"entities": [{"type": "(Gauge"}]}), "type selection"),
            (json!({"entities": [{"type": "Ga uge"}]}), "type"),
            (json!({"entities": [{"type": 3}]}), "type must be a string"),
            (json!({"watchedAttributes": []}), "must not be empty"),
            (json!({"watchedAttributes": ["a b"]}), "watchedAttributes"),
            (json!({"watchedAttributes": ["id"]}), "watchedAttributes"),
            (json!({"watchedAttributes": [1]}), "strings"),
            (
                json!({"watchedAttributes": many(101, json!("a"))}),
                "more than 100",
            ),
            (
                json!({"notificationTrigger": ["entityChanged"]}),
                "notificationTrigger",
            ),
            (json!({"notificationTrigger": []}), "must not be empty"),
            (
                json!({"notificationTrigger": "entityCreated"}),
                "must be an array",
            ),
            (json!({"q": "(("}), "invalid q"),
            (json!({"q": "name~=\"(\""}), "invalid q"),
            (json!({"q": long.clone()}), "longer than"),
            (json!({"q": 3}), "q must be a string"),
            (json!({"csf": "(("}), "invalid csf"),
            (json!({"scopeQ": "nope"}), "invalid scopeQ"),
            (
                json!({"geoQ": {"georel": "within", "geometry": "Point"}}),
                "geoQ needs",
            ),
            (
                json!({"geoQ": {"georel": "inside", "geometry": "Point", "coordinates": [1, 2]}}),
                "invalid geoQ",
            ),
            (
                json!({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Polygon",
                    "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}),
                "near needs a Point",
            ),
            (
                json!({"geoQ": {"georel": "within", "geometry": "Point", "coordinates": 5}}),
                "coordinates",
            ),
            (
                json!({"geoQ": {"georel": "within", "geometry": "Point", "coordinates": [1, 2], "crs": "x"}}),
                "not a member",
            ),
            (json!({"geoQ": "near"}), "JSON object"),
            (json!({"timeInterval": 0}), "timeInterval"),
            (json!({"timeInterval": -5}), "timeInterval"),
            (json!({"timeInterval": 1.5}), "timeInterval"),
            (json!({"timeInterval": "5"}), "timeInterval"),
            (json!({"timeInterval": 40_000_000}), "timeInterval"),
            (json!({"throttling": 0}), "throttling"),
            (
                json!({"throttling": 5, "timeInterval": 10}),
                "cannot be used together",
            ),
            (
                json!({"watchedAttributes": ["level"], "timeInterval": 10}),
                "cannot be used together",
            ),
            (json!({"expiresAt": "tomorrow"}), "expiresAt"),
            (json!({"expiresAt": "2024-06-01T00:00:00"}), "expiresAt"),
            (
                json!({"expiresAt": "2020-01-01T00:00:00Z"}),
                "in the future",
            ),
            (json!({"isActive": "yes"}), "isActive"),
            (json!({"subscriptionName": long.clone()}), "longer than"),
            (json!({"description": "a\u{7}b"}), "control characters"),
            (json!({"description": 5}), "must be a string"),
            (json!({"lang": "e n"}), "language tags"),
            (json!({"lang": ","}), "language tags"),
            (json!({"lang": 5}), "lang"),
            (json!({"jsonldContext": "not a url"}), "jsonldContext"),
            (
                json!({"jsonldContext": "ftp://example.org/ctx"}),
                "jsonldContext",
            ),
            (json!({"datasetId": ["not a uri"]}), "datasetId"),
            (json!({"datasetId": []}), "must not be empty"),
            (
                json!({"watchedAttribute": ["level"]}),
                "not a member of a subscription",
            ),
            (json!({"notification": null}), "notification is required"),
            (json!({"notification": "http://example.org"}), "JSON object"),
            (
                json!({"notification": {"endpoint": null, "format": "normalized"}}),
                "endpoint is required",
            ),
            (
                json!({"notification": {"attrs": ["level"]}}),
                "not a member of notification",
            ),
            (
                json!({"notification": {"format": "xml"}}),
                "notification.format",
            ),
            (
                json!({"notification": {"format": 1}}),
                "notification.format",
            ),
            (
                json!({"notification": {"showChanges": "true"}}),
                "showChanges",
            ),
            (json!({"notification": {"sysAttrs": 1}}), "sysAttrs"),
            (
                json!({"notification": {"format": "keyValues", "showChanges": true}}),
                "showChanges",
            ),
            (
                json!({"notification": {"format": "simplified", "showChanges": true}}),
                "showChanges",
            ),
            (
                json!({"notification": {"attributes": []}}),
                "must not be empty",
            ),
            (
                json!({"notification": {"attributes": ["level"], "pick": ["id"]}}),
                "pick or omit",
            ),
            (
                json!({"notification": {"attributes": ["level"], "omit": ["id"]}}),
                "pick or omit",
            ),
            (
                json!({"notification": {"pick": ["id"], "omit": ["level"]}}),
                "pick and notification.omit",
            ),
            (json!({"notification": {"pick": []}}), "must not be empty"),
            (json!({"notification": {"join": "sideways"}}), "join"),
            (
                endpoint(json!({"uri": null, "accept": "application/json"})),
                "uri is required",
            ),
            (endpoint(json!("http://example.org")), "JSON object"),
            (http_with("url", json!("x")), "not a member"),
            (http_with("accept", json!("text/plain")), "accept"),
            (http_with("accept", json!("application/geo+json")), "accept"),
            (http_with("timeout", json!(0)), "timeout"),
            (http_with("cooldown", json!("1s")), "cooldown"),
            (uri("/notify"), "not an absolute URI"),
            (uri("example.org/notify"), "not an absolute URI"),
            (uri("ftp://example.org/notify"), "scheme"),
            (uri("urn:ngsi-ld:x"), "scheme"),
            (uri("http://exa mple.org/"), "spaces"),
            (uri("http:/notify"), "host"),
            (uri("mqtt://broker"), "topic"),
            (uri("mqtt://broker/"), "topic"),
            (uri("mqtt:/topic"), "host"),
            (uri("mqtt://broker/a/+"), "topic filter"),
            (uri("mqtt://broker/a/#"), "topic filter"),
            (uri("mqtt://broker/a?x=1"), "no query"),
            (
                json!({"notification": {"endpoint": {"uri": format!("http://example.org/{long}")}}}),
                "longer than",
            ),
            (receiver_info(pairs(33)), "more than 32"),
            (
                receiver_info(json!([{"key": "K", "value": 42}])),
                "two strings",
            ),
            (receiver_info(json!([{"key": "K"}])), "receiverInfo"),
            (
                receiver_info(json!([{"key": 5, "value": "v"}])),
                "two strings",
            ),
            (
                receiver_info(json!([{"key": "K", "value": "v", "x": 1}])),
                "receiverInfo",
            ),
            (
                receiver_info(json!([{"key": "A B", "value": "v"}])),
                "not a valid key",
            ),
            (
                receiver_info(json!([{"key": "K", "value": "v\r\nX: y"}])),
                "control characters",
            ),
            (
                receiver_info(json!([{"key": "K", "value": "v"}, {"key": "k", "value": "w"}])),
                "twice",
            ),
            (
                receiver_info(json!([{"key": "Content-Type", "value": "text/plain"}])),
                "set by the notifier",
            ),
            (
                notifier_info("http://e.org", json!([{"key": "MQTT-QoS", "value": "1"}])),
                "only applies to mqtt",
            ),
            (
                notifier_info("mqtt://b/t", json!([{"key": "MQTT-QoS", "value": "3"}])),
                "MQTT-QoS",
            ),
            (
                notifier_info(
                    "mqtt://b/t",
                    json!([{"key": "MQTT-Version", "value": "mqtt4"}]),
                ),
                "MQTT-Version",
            ),
        ];
        for (patch, needle) in cases {
            let body = with(minimal(), patch.clone());
            let shown: String = patch.to_string().chars().take(200).collect();
            let Err(err) = try_parse(&body, &Context::core()) else {
                panic!("{shown} was accepted");
            };
            let patch = shown;
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{patch}: {err}");
            assert!(
                err.detail.contains(needle),
                "{patch}: {:?} lacks {needle:?}",
                err.detail
            );
            assert!(err.detail.len() < 400, "{}", err.detail);
        }
        // Null removes a member in a patch only; `with` would drop these.
        for (key, value) in [
            ("q", json!(null)),
            ("throttling", json!("urn:ngsi-ld:null")),
            ("notification", json!(null)),
        ] {
            let mut body = minimal();
            body[key] = value;
            let err = try_parse(&body, &Context::core()).unwrap_err();
            assert!(
                err.detail.contains("null is not a value"),
                "{key}: {}",
                err.detail
            );
        }
        let mut body = minimal();
        body["notification"]["format"] = json!(null);
        let err = try_parse(&body, &Context::core()).unwrap_err();
        assert!(err.detail.contains("null is not a value"), "{}", err.detail);
        for body in [json!([1]), json!("Subscription"), json!(null)] {
            let err = try_parse(&body, &Context::core()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{body}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_implement() {
        let patch = json!({"temporalQ": {"timerel": "after", "timeAt": "2024-01-01T00:00:00Z"}});
        let err = try_parse(&with(minimal(), patch.clone()), &Context::core()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OperationNotSupported, "{patch}");
    }

    #[test]
    fn reads_join_and_join_level() {
        let ctx = Context::core();
        let s = sub(json!({"notification": {"join": "inline", "joinLevel": 2}}));
        assert_eq!(
            (s.notification.join, s.notification.join_level),
            (Some(Join::Inline), Some(2))
        );
        let s = sub(json!({"notification": {"join": "flat"}}));
        assert_eq!(
            (s.notification.join, s.notification.join_level),
            (Some(Join::Flat), None)
        );
        let s = sub(json!({"notification": {"join": "@none"}}));
        assert_eq!(s.notification.join, None);
        for level in [json!(0), json!(6), json!("2"), json!(1.5)] {
            let body = with(
                minimal(),
                json!({"notification": {"join": "flat", "joinLevel": level}}),
            );
            let err = try_parse(&body, &ctx).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{level}");
            assert!(err.detail.contains("joinLevel"), "{}", err.detail);
        }
    }

    #[test]
    fn survives_a_storage_round_trip() {
        let s = try_parse(&full(), &user_ctx()).unwrap();
        let stored = serde_json::to_string(&s).unwrap();
        let back: Subscription = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, s);
        let s = try_parse(&minimal(), &Context::core()).unwrap();
        let back: Subscription = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(back.compile().is_ok());
    }

    /// What GET shows parses back, under the same @context, to the same subscription.
    #[test]
    fn rendering_parses_back() {
        let ctx = user_ctx();
        for body in [
            full(),
            minimal(),
            with(minimal(), json!({"timeInterval": 60})),
        ] {
            let s = try_parse(&body, &ctx).unwrap();
            let shown = s.render(&ctx, &SubscriptionStatus::new(s.status(now())), true);
            let again = try_parse(&shown, &ctx).unwrap();
            assert_eq!(again, s, "{shown}");
        }
    }

    #[test]
    fn patches_members() {
        let ctx = Context::core();
        let mut s = sub(json!({"q": "level>1", "throttling": 10}));
        let later = t("2024-05-02T00:00:00Z");
        s.apply_patch(
            &json!({"id": SUB_ID, "type": "Subscription",
                    "notification": {"format": "keyValues", "endpoint": {"uri": "http://example.org/notify"}},
                    "q": null, "throttling": "urn:ngsi-ld:null", "watchedAttributes": ["level"]}),
            &ctx,
            later,
        )
        .unwrap();
        assert_eq!(s.notification.format, Format::KeyValues);
        assert_eq!(s.notification.endpoint.uri, "http://example.org/notify");
        assert!(s.q.is_none() && s.throttling.is_none());
        assert_eq!(s.watched_attributes, vec![format!("{DEFAULT_VOCAB}level")]);
        assert_eq!((s.created_at, s.modified_at), (now(), later));

        s.apply_patch(
            &json!({"notification": {"endpoint": {"uri": "https://example.org/other", "accept": "application/ld+json"}},
                    "isActive": false, "notificationTrigger": ["entityDeleted"]}),
            &ctx,
            later,
        )
        .unwrap();
        assert_eq!(s.notification.endpoint.uri, "https://example.org/other");
        assert_eq!(s.notification.endpoint.accept, ACCEPT_JSON_LD);
        // The notification was replaced whole: its format is the default again.
        assert_eq!(s.notification.format, Format::Normalized);
        assert_eq!(s.status(later), Status::Paused);
        assert_eq!(s.triggers, vec![Trigger::EntityDeleted]);
        s.apply_patch(
            &json!({"isActive": null, "notificationTrigger": null}),
            &ctx,
            later,
        )
        .unwrap();
        assert!(s.is_active);
        assert_eq!(s.triggers, Trigger::DEFAULT.to_vec());
    }

    #[test]
    fn a_patch_may_revive_an_expired_subscription() {
        let ctx = Context::core();
        let mut s = sub(json!({"expiresAt": "2024-05-01T01:00:00Z"}));
        let later = t("2024-05-02T00:00:00Z");
        assert_eq!(s.status(later), Status::Expired);
        // Another member may change while expired.
        s.apply_patch(&json!({"description": "still expired"}), &ctx, later)
            .unwrap();
        assert_eq!(s.status(later), Status::Expired);
        s.apply_patch(&json!({"expiresAt": "2024-06-01T00:00:00Z"}), &ctx, later)
            .unwrap();
        assert_eq!(s.status(later), Status::Active);
        let err = s
            .apply_patch(&json!({"expiresAt": "2024-05-01T12:00:00Z"}), &ctx, later)
            .unwrap_err();
        assert!(err.detail.contains("future"), "{}", err.detail);
    }

    #[test]
    fn refuses_invalid_patches_and_changes_nothing() {
        let ctx = Context::core();
        let original = sub(json!({"watchedAttributes": ["level"], "q": "level>1"}));
        for patch in [
            json!({"id": "urn:ngsi-ld:Subscription:other"}),
            json!({"type": "Entity"}),
            json!({}),
            json!({"id": SUB_ID, "type": "Subscription"}),
            json!({"notification": null}),
            json!({"notification": {"endpoint": null}}),
            json!({"notification": {"endpoint": {"accept": "application/json"}}}),
            json!({"notification": {"format": "keyValues"}}),
            json!({"entities": null, "watchedAttributes": null}),
            json!({"timeInterval": 5}),
            json!({"notification": {"format": "keyValues", "showChanges": true}}),
            json!({"q": "level>"}),
            json!({"x": 1}),
            json!([]),
        ] {
            let mut s = original.clone();
            let err = s.apply_patch(&patch, &ctx, now()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{patch}");
            assert_eq!(s, original, "{patch}");
        }
        // Fixing the conflict in the same fragment is fine.
        let mut s = original.clone();
        s.apply_patch(
            &json!({"watchedAttributes": null, "timeInterval": 5}),
            &ctx,
            now(),
        )
        .unwrap();
        assert_eq!(s.time_interval, Some(5));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-zA-Z:/.#+;,()!=<>~\"' -]{0,24}".prop_map(Value::String),
            prop::sample::select(vec![
                "Subscription",
                "urn:ngsi-ld:x:1",
                "http://e.org/n",
                "mqtt://b/t",
                "level>1",
                "entityCreated",
                "keyValues",
                "application/ld+json",
                "2030-01-01T00:00:00Z",
                "urn:ngsi-ld:null",
                "near;maxDistance==5",
                "Point",
                "/a/#",
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "id",
                            "type",
                            "entities",
                            "watchedAttributes",
                            "notificationTrigger",
                            "q",
                            "geoQ",
                            "scopeQ",
                            "timeInterval",
                            "throttling",
                            "expiresAt",
                            "isActive",
                            "notification",
                            "endpoint",
                            "uri",
                            "accept",
                            "format",
                            "attributes",
                            "receiverInfo",
                            "notifierInfo",
                            "key",
                            "value",
                            "georel",
                            "geometry",
                            "coordinates",
                            "idPattern",
                            "lang",
                            "datasetId",
                        ]),
                        inner,
                    ),
                    0..6,
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        /// Any body gives a subscription that compiles, or a client error; never a panic.
        #[test]
        fn never_panics(body in arb_json(), patch in arb_json()) {
            let ctx = Context::core();
            let merged = with(minimal(), body.clone());
            for candidate in [body, merged] {
                match try_parse(&candidate, &ctx) {
                    Ok(s) => {
                        prop_assert!(s.compile().is_ok());
                        prop_assert!(!s.triggers.is_empty());
                        prop_assert!(!s.entities.is_empty() || !s.watched_attributes.is_empty());
                        let mut patched = s.clone();
                        match patched.apply_patch(&patch, &ctx, now()) {
                            Ok(()) => prop_assert!(patched.compile().is_ok()),
                            Err(e) => {
                                prop_assert!(matches!(e.kind, ErrorKind::BadRequestData | ErrorKind::OperationNotSupported));
                                prop_assert_eq!(&patched, &s);
                            }
                        }
                    }
                    Err(e) => prop_assert!(matches!(e.kind, ErrorKind::BadRequestData | ErrorKind::OperationNotSupported)),
                }
            }
        }
    }
}
