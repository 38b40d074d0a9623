//! A subscription as GET /subscriptions shows it (clause 5.2.12), names compacted
//! under the request's @context, with the status and delivery counters the store
//! keeps.

use serde_json::{Map, Value, json};

use super::format_name;
use super::{Subscription, SubscriptionStatus};
use crate::context::Context;
use crate::entity::format_time;
use crate::query::parse_type_expr;

impl Subscription {
    /// Renders the subscription (without @context). `createdAt` and `modifiedAt`
    /// appear with `sys_attrs`, as for entities.
    pub fn render(&self, ctx: &Context, status: &SubscriptionStatus, sys_attrs: bool) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("type".into(), json!("Subscription"));
        if let Some(name) = &self.subscription_name {
            out.insert("subscriptionName".into(), json!(name));
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), json!(d));
        }
        if !self.entities.is_empty() {
            let entities: Vec<Value> = self
                .entities
                .iter()
                .map(|s| {
                    let mut e = Map::new();
                    if let Some(id) = &s.id {
                        e.insert("id".into(), json!(id));
                    }
                    if let Some(p) = &s.id_pattern {
                        e.insert("idPattern".into(), json!(p));
                    }
                    e.insert("type".into(), json!(compact_types(&s.entity_type, ctx)));
                    Value::Object(e)
                })
                .collect();
            out.insert("entities".into(), Value::Array(entities));
        }
        if !self.watched_attributes.is_empty() {
            out.insert(
                "watchedAttributes".into(),
                compact_all(&self.watched_attributes, ctx),
            );
        }
        out.insert(
            "notificationTrigger".into(),
            Value::Array(self.triggers.iter().map(|t| json!(t.name())).collect()),
        );
        if let Some(seconds) = self.time_interval {
            out.insert("timeInterval".into(), json!(seconds));
        }
        if let Some(q) = &self.q {
            out.insert("q".into(), json!(q.text));
        }
        if let Some(g) = &self.geo_q {
            // Coordinates given as a string stay a string if they are not JSON.
            let coordinates = serde_json::from_str::<Value>(&g.coordinates)
                .unwrap_or_else(|_| Value::String(g.coordinates.clone()));
            out.insert(
                "geoQ".into(),
                json!({
                    "georel": g.georel,
                    "geometry": g.geometry,
                    "coordinates": coordinates,
                    "geoproperty": ctx.compact(&g.geoproperty),
                }),
            );
        }
        if let Some(csf) = &self.csf {
            out.insert("csf".into(), json!(csf.text));
        }
        if let Some(scope) = &self.scope_q {
            out.insert("scopeQ".into(), json!(scope));
        }
        // Defaults are left out, as in what a client sends: `isActive` shows when the
        // subscription is paused (`status` says it in any case).
        if !self.is_active {
            out.insert("isActive".into(), json!(false));
        }
        out.insert("notification".into(), self.render_notification(ctx, status));
        if let Some(t) = &self.expires_at {
            out.insert("expiresAt".into(), json!(format_time(t)));
        }
        if let Some(seconds) = self.throttling {
            out.insert("throttling".into(), json!(seconds));
        }
        if let Some(lang) = &self.lang {
            out.insert("lang".into(), json!(lang));
        }
        if let Some(url) = &self.jsonld_context {
            out.insert("jsonldContext".into(), json!(url));
        }
        if !self.dataset_ids.is_empty() {
            out.insert("datasetId".into(), json!(self.dataset_ids));
        }
        out.insert("status".into(), json!(status.status.name()));
        if sys_attrs {
            out.insert("createdAt".into(), json!(format_time(&self.created_at)));
            out.insert("modifiedAt".into(), json!(format_time(&self.modified_at)));
        }
        Value::Object(out)
    }

    fn render_notification(&self, ctx: &Context, status: &SubscriptionStatus) -> Value {
        let n = &self.notification;
        let mut out = Map::new();
        if !n.attributes.is_empty() {
            out.insert("attributes".into(), compact_all(&n.attributes, ctx));
        }
        let members = |names: &[String]| -> Value {
            Value::Array(
                names
                    .iter()
                    .map(|m| match m.as_str() {
                        "id" | "type" => json!(m),
                        iri => json!(ctx.compact(iri)),
                    })
                    .collect(),
            )
        };
        if !n.pick.is_empty() {
            out.insert("pick".into(), members(&n.pick));
        }
        if !n.omit.is_empty() {
            out.insert("omit".into(), members(&n.omit));
        }
        out.insert("format".into(), json!(format_name::name(n.format)));
        if n.show_changes {
            out.insert("showChanges".into(), json!(true));
        }
        if n.sys_attrs {
            out.insert("sysAttrs".into(), json!(true));
        }
        if let Some(join) = n.join {
            out.insert("join".into(), json!(join.name()));
        }
        if let Some(level) = n.join_level {
            out.insert("joinLevel".into(), json!(level));
        }
        let e = &n.endpoint;
        let mut endpoint = Map::new();
        endpoint.insert("uri".into(), json!(e.uri));
        endpoint.insert("accept".into(), json!(e.accept));
        if let Some(ms) = e.timeout {
            endpoint.insert("timeout".into(), json!(ms));
        }
        if let Some(ms) = e.cooldown {
            endpoint.insert("cooldown".into(), json!(ms));
        }
        let pairs = |kv: &[(String, String)]| -> Value {
            Value::Array(
                kv.iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect(),
            )
        };
        if !e.receiver_info.is_empty() {
            endpoint.insert("receiverInfo".into(), pairs(&e.receiver_info));
        }
        if !e.notifier_info.is_empty() {
            endpoint.insert("notifierInfo".into(), pairs(&e.notifier_info));
        }
        out.insert("endpoint".into(), Value::Object(endpoint));
        if let Some(delivery) = status.delivery() {
            out.insert("status".into(), json!(delivery));
        }
        // Counters appear once there is something to count (clause 5.2.12).
        if status.times_sent > 0 {
            out.insert("timesSent".into(), json!(status.times_sent));
        }
        if status.times_failed > 0 {
            out.insert("timesFailed".into(), json!(status.times_failed));
        }
        for (name, t) in [
            ("lastNotification", &status.last_notification),
            ("lastSuccess", &status.last_success),
            ("lastFailure", &status.last_failure),
        ] {
            if let Some(t) = t {
                out.insert(name.into(), json!(format_time(t)));
            }
        }
        Value::Object(out)
    }
}

fn compact_all(names: &[String], ctx: &Context) -> Value {
    Value::Array(names.iter().map(|n| json!(ctx.compact(n))).collect())
}

/// A stored (expanded) type selection in the terms of `ctx`. The text was checked
/// to parse when it was stored; should it not, it is shown as it is.
fn compact_types(text: &str, ctx: &Context) -> String {
    match parse_type_expr(text) {
        Ok(expr) => expr.map_names(&|n| ctx.compact(n)).to_string(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::DEFAULT_VOCAB;
    use crate::subscription::Status;
    use crate::subscription::testing::{now, t, try_parse, user_ctx};

    fn body() -> Value {
        json!({
            "type": "Subscription",
            "entities": [{"type": "(Gauge|ex:Tower);Sensor", "idPattern": "^urn:"}],
            "watchedAttributes": ["level", "name"],
            "q": "level>2",
            "geoQ": {"georel": "within", "geometry": "Polygon",
                     "coordinates": "[[[107,16.5],[107.5,16.5],[107.5,17],[107,16.5]]]",
                     "geoproperty": "level"},
            "notification": {
                "attributes": ["level"],
                "endpoint": {"uri": "http://example.org/notify",
                             "notifierInfo": [{"key": "X-Trace", "value": "1"}]}
            }
        })
    }

    #[test]
    fn compacts_names_with_the_requests_context() {
        let user = user_ctx();
        let s = try_parse(&body(), &user).unwrap();
        let fresh = SubscriptionStatus::new(Status::Active);
        let mine = s.render(&user, &fresh, false);
        assert_eq!(mine["entities"][0]["type"], "(Gauge,ex:Tower);Sensor");
        assert_eq!(mine["watchedAttributes"], json!(["level", "name"]));
        assert_eq!(mine["notification"]["attributes"], json!(["level"]));
        assert_eq!(mine["geoQ"]["geoproperty"], "level");
        assert_eq!(
            mine["geoQ"]["coordinates"],
            json!([[[107, 16.5], [107.5, 16.5], [107.5, 17], [107, 16.5]]])
        );
        // Under the core context alone, the user's terms are IRIs.
        let core = s.render(&Context::core(), &fresh, false);
        assert_eq!(
            core["entities"][0]["type"],
            "(https://example.org/Gauge,https://example.org/Tower);Sensor"
        );
        assert_eq!(
            core["watchedAttributes"],
            json!(["https://example.org/level", "name"])
        );
        assert_eq!(core["q"], "level>2");
        assert_eq!(s.watched_attributes[1], format!("{DEFAULT_VOCAB}name"));
    }

    #[test]
    fn shows_status_and_deliveries() {
        let s = try_parse(&body(), &user_ctx()).unwrap();
        let fresh = s.render(&user_ctx(), &SubscriptionStatus::new(Status::Active), false);
        assert_eq!(fresh["status"], "active");
        // Defaults are left out: isActive when true, counters while zero.
        assert!(fresh.get("isActive").is_none());
        assert_eq!(
            fresh["notificationTrigger"],
            json!(["attributeCreated", "attributeUpdated"])
        );
        let n = &fresh["notification"];
        assert_eq!(n["format"], "normalized");
        assert_eq!(n["endpoint"]["accept"], "application/json");
        assert_eq!(
            n["endpoint"]["notifierInfo"],
            json!([{"key": "X-Trace", "value": "1"}])
        );
        assert!(n.get("timesSent").is_none() && n.get("timesFailed").is_none());
        assert!(n.get("status").is_none() && n.get("lastNotification").is_none());
        assert!(fresh.get("createdAt").is_none());

        let failing = SubscriptionStatus {
            status: Status::Paused,
            times_sent: 3,
            times_failed: 1,
            last_notification: Some(t("2024-04-30T12:00:00Z")),
            last_success: Some(t("2024-04-30T11:00:00Z")),
            last_failure: Some(t("2024-04-30T12:00:00Z")),
        };
        let shown = s.render(&user_ctx(), &failing, true);
        assert_eq!(shown["status"], "paused");
        let n = &shown["notification"];
        assert_eq!(n["status"], "failed");
        assert_eq!(n["timesSent"], 3);
        assert_eq!(n["timesFailed"], 1);
        assert_eq!(n["lastNotification"], "2024-04-30T12:00:00Z");
        assert_eq!(n["lastSuccess"], "2024-04-30T11:00:00Z");
        assert_eq!(n["lastFailure"], "2024-04-30T12:00:00Z");
        assert_eq!(shown["createdAt"], "2024-05-01T00:00:00Z");
        assert_eq!(shown["modifiedAt"], "2024-05-01T00:00:00Z");
        let recovered = SubscriptionStatus {
            last_success: Some(t("2024-04-30T13:00:00Z")),
            ..failing
        };
        assert_eq!(recovered.delivery(), Some("ok"));
        assert_eq!(s.status(now()), Status::Active);
    }
}
