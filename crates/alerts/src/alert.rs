//! Alerts as NGSI-LD entities of type `Alert` (the Smart Data Models Alert:
//! category, subCategory, severity, alertSource, dateIssued, validFrom, validTo,
//! description, location), with dothi's `status` and `rule`, and their messages.

use chrono::{DateTime, Utc};
use ngsi::{Entity, Error};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::eval::{Observation, instance};
use crate::rule::Rule;

/// The entity type of alerts.
pub const ALERT_TYPE: &str = "Alert";

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "firing" => Status::Firing,
            "acknowledged" => Status::Acknowledged,
            "resolved" => Status::Resolved,
            _ => return None,
        })
    }
}

/// The id of the alert of one incident: the rule, a digest of the entity id, and
/// when the incident began. Computed again from the same incident, it is the same:
/// an alert raised twice after a crash is one entity.
pub fn alert_id(rule: &str, entity: &str, since: DateTime<Utc>) -> String {
    let digest = Sha256::digest(entity.as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:ngsi-ld:Alert:{rule}-{short}-{}",
        since.timestamp_millis()
    )
}

fn prop(v: impl Into<Value>) -> Value {
    json!({"type": "Property", "value": v.into()})
}

fn time(t: &DateTime<Utc>) -> Value {
    json!({"type": "Property", "value": ngsi::entity::format_time(t)})
}

/// A text attribute of the entity in `lang` (a LanguageProperty's entry, or a string).
fn text_of(e: &Entity, short: &str, lang: &str) -> Option<String> {
    let ctx = ngsi::Context::core();
    let a = instance(e, &ctx.expand(short))?;
    match &a.value {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get(lang)
            .or_else(|| m.get("vi"))
            .or_else(|| m.values().next())
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// The commune of an entity's address.
fn commune_of(e: &Entity) -> Option<String> {
    let ctx = ngsi::Context::core();
    instance(e, &ctx.expand("address"))?
        .value
        .get("addressLocality")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{}", (f * 1000.0).round() / 1000.0),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// The message of an alert in `lang`: the rule's template with its placeholders
/// filled, or a default one.
pub fn message(rule: &Rule, e: &Entity, obs: &Observation, lang: &str) -> String {
    let attribute = rule.attribute_short().unwrap_or_default();
    let unit = instance(e, &ngsi::Context::core().expand(&attribute))
        .and_then(|a| a.unit_code.clone())
        .map(|u| match u.as_str() {
            "MTR" => "m".to_string(),
            "GQ" => "µg/m³".to_string(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let place = text_of(e, "name", lang).unwrap_or_else(|| e.id.clone());
    let commune = commune_of(e).unwrap_or_default();
    let template = rule.spec.message.get(lang).cloned().unwrap_or_else(|| {
        let name = rule
            .spec
            .name
            .clone()
            .unwrap_or_else(|| rule.spec.id.clone());
        match lang {
            "vi" => format!("{name}: {{place}} — {{attribute}} = {{value}} (ngưỡng {{threshold}})"),
            _ => format!("{name}: {{place}} — {{attribute}} = {{value}} (threshold {{threshold}})"),
        }
    });
    let mut out = template;
    for (word, value) in [
        ("value", show(&obs.value)),
        ("threshold", show(&obs.threshold)),
        ("attribute", attribute.clone()),
        ("place", place),
        ("commune", commune),
        ("entity", e.id.clone()),
        ("rule", rule.spec.id.clone()),
        ("severity", rule.spec.severity.as_str().to_string()),
        ("unit", unit),
    ] {
        out = out.replace(&format!("{{{word}}}"), &value);
    }
    out
}

/// The Alert entity of a firing incident, in normalized NGSI-LD under the core
/// @context.
pub fn firing(
    rule: &Rule,
    id: &str,
    source: &Entity,
    obs: &Observation,
    since: DateTime<Utc>,
    issued: DateTime<Utc>,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.into()));
    m.insert("type".into(), Value::String(ALERT_TYPE.into()));
    m.insert("category".into(), prop(rule.spec.category.clone()));
    if let Some(sub) = &rule.spec.sub_category {
        m.insert("subCategory".into(), prop(sub.clone()));
    }
    m.insert("severity".into(), prop(rule.spec.severity.as_str()));
    m.insert("alertSource".into(), prop(source.id.clone()));
    m.insert("dateIssued".into(), time(&issued));
    m.insert("validFrom".into(), time(&since));
    m.insert(
        "description".into(),
        json!({"type": "LanguageProperty", "languageMap": {
            "vi": message(rule, source, obs, "vi"),
            "en": message(rule, source, obs, "en"),
        }}),
    );
    if let Some(loc) = source.attrs.get(&ngsi::Context::core().expand("location"))
        && let Some(a) = loc.first()
    {
        m.insert(
            "location".into(),
            json!({"type": "GeoProperty", "value": a.value}),
        );
    }
    // The source's commune, so that notification policies can route by area.
    if let Some(area) = instance(
        source,
        &ngsi::Context::core().expand("refAdministrativeArea"),
    )
    .and_then(|a| a.value.as_str())
    {
        m.insert(
            "refAdministrativeArea".into(),
            json!({"type": "Relationship", "object": area}),
        );
    }
    m.insert("status".into(), prop(Status::Firing.as_str()));
    m.insert("rule".into(), prop(rule.spec.id.clone()));
    if let Some(a) = rule.attribute_short() {
        m.insert("attribute".into(), prop(a));
    }
    if let Some(v) = &obs.value {
        m.insert("value".into(), prop(v.clone()));
    }
    if let Some(t) = &obs.threshold {
        m.insert("threshold".into(), prop(t.clone()));
    }
    if !rule.spec.labels.is_empty() {
        m.insert(
            "labels".into(),
            json!({"type": "JsonProperty", "json": rule.spec.labels}),
        );
    }
    Value::Object(m)
}

/// Reads an alert body into an entity (the core @context).
pub fn entity(body: &Value) -> Result<Entity, Error> {
    let ctx = ngsi::Context::core();
    ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    }
    .entity(body, None)
}

/// The attributes that resolve an alert: status, validTo, and who did it.
pub fn resolution(
    at: DateTime<Utc>,
    by: Option<&str>,
    comment: Option<&str>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("status".into(), prop(Status::Resolved.as_str()));
    m.insert("validTo".into(), time(&at));
    if let Some(by) = by {
        m.insert("resolvedBy".into(), prop(by));
    }
    if let Some(c) = comment {
        m.insert("comment".into(), prop(c));
    }
    m
}

/// The labels an alert is matched by (silences, inhibitions, policies): its rule's
/// labels, and `rule`, `severity`, `category`, `subCategory` and `entity` (the alert's
/// source), read from its concise form.
pub fn labels_of(concise: &Value) -> crate::policy::Labels {
    let mut out = crate::policy::Labels::new();
    if let Some(Value::Object(labels)) = concise.get("labels") {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                out.insert(k.clone(), v.to_string());
            }
        }
    }
    for (label, member) in [
        ("rule", "rule"),
        ("severity", "severity"),
        ("category", "category"),
        ("subCategory", "subCategory"),
        ("entity", "alertSource"),
    ] {
        if let Some(v) = concise.get(member).and_then(Value::as_str) {
            out.insert(label.to_string(), v.to_string());
        }
    }
    out
}

/// An alert's status, as stored.
pub fn status_of(e: &Entity) -> Option<Status> {
    instance(e, &ngsi::Context::core().expand("status"))
        .and_then(|a| a.value.as_str())
        .and_then(Status::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_per_incident() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let a = alert_id("flood-2", "urn:ngsi-ld:WaterObserved:x", t);
        assert_eq!(a, alert_id("flood-2", "urn:ngsi-ld:WaterObserved:x", t));
        assert_ne!(a, alert_id("flood-2", "urn:ngsi-ld:WaterObserved:y", t));
        assert!(ngsi::entity::is_uri(&a));
    }
}
