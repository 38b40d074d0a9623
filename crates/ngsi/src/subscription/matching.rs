//! Which change fires which subscription (clause 5.8.6): the entity selectors, the
//! filters, the watched attributes and the notification triggers, with everything a
//! subscription holds as text compiled once.

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};

use super::parse::lang_prefs;
use super::{Status, Subscription, Trigger};
use crate::entity::{Attribute, Entity};
use crate::error::{Error, Result};
use crate::filter::{GeoFilter, QFilter};
use crate::query::ast::{ScopeExpr, TypeExpr};
use crate::query::{parse_scope_q, parse_type_expr, scope_expr_matches};

/// The same bound as the `~=` patterns of `q`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A subscription ready to test changes against: its selectors, `q`, `geoQ` and
/// `scopeQ` parsed, its patterns compiled.
#[derive(Debug, Clone)]
pub struct CompiledSubscription {
    subscription: Subscription,
    selectors: Vec<Selector>,
    q: Option<QFilter>,
    geo: Option<GeoFilter>,
    scope: Option<ScopeExpr>,
    pub(super) lang: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Selector {
    id: Option<String>,
    id_pattern: Option<Regex>,
    types: TypeExpr,
}

impl Selector {
    fn selects(&self, e: &Entity) -> bool {
        let types: Vec<&str> = e.types.iter().map(String::as_str).collect();
        self.types.matches(&types)
            && match (&self.id, &self.id_pattern) {
                (Some(id), _) => *id == e.id,
                (None, Some(pattern)) => pattern.is_match(&e.id),
                (None, None) => true,
            }
    }
}

impl Subscription {
    /// Parses what the subscription holds as text. A subscription that [`parse`]
    /// accepted always compiles; an error means a stored row was altered.
    ///
    /// [`parse`]: Subscription::parse
    pub fn compile(&self) -> Result<CompiledSubscription> {
        let corrupt = |what: &str, detail: String| {
            Error::new(
                crate::error::ErrorKind::InternalError,
                format!(
                    "subscription {}: stored {what} does not compile: {detail}",
                    self.id
                ),
            )
        };
        let selectors = self
            .entities
            .iter()
            .map(|s| {
                let types = parse_type_expr(&s.entity_type)
                    .map_err(|e| corrupt("type selection", e.to_string()))?;
                let id_pattern = match &s.id_pattern {
                    Some(p) => Some(
                        RegexBuilder::new(p)
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|e| corrupt("idPattern", e.to_string()))?,
                    ),
                    None => None,
                };
                Ok(Selector {
                    id: s.id.clone(),
                    id_pattern,
                    types,
                })
            })
            .collect::<Result<_>>()?;
        let q = match &self.q {
            Some(q) => Some(q.filter().map_err(|e| corrupt("q", e.detail))?),
            None => None,
        };
        let geo = match &self.geo_q {
            Some(g) => Some(g.filter().map_err(|e| corrupt("geoQ", e.detail))?),
            None => None,
        };
        let scope = match &self.scope_q {
            Some(text) => Some(parse_scope_q(text).map_err(|e| corrupt("scopeQ", e.to_string()))?),
            None => None,
        };
        Ok(CompiledSubscription {
            subscription: self.clone(),
            selectors,
            q,
            geo,
            scope,
            lang: self.lang.as_deref().and_then(lang_prefs),
        })
    }
}

/// What a change did to the attributes a subscription looks at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct AttrChanges {
    pub created: bool,
    pub updated: bool,
    pub deleted: bool,
}

impl AttrChanges {
    fn any(self) -> bool {
        self.created || self.updated || self.deleted
    }
}

impl CompiledSubscription {
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Which trigger a change fires, or None. `before` is the entity before the
    /// change (None: it was created), `after` the entity after it (None: it was
    /// deleted).
    ///
    /// A subscription fires only while active and unexpired, and never when
    /// periodic (`timeInterval`). The entity after the change (before it, for a
    /// deletion) must be selected by one of the selectors and match `q`, `geoQ` and
    /// `scopeQ`.
    ///
    /// - A creation fires `entityCreated`, else `attributeCreated` when a (watched)
    ///   attribute was created with the entity.
    /// - A deletion fires `entityDeleted`, else `attributeDeleted` when a (watched)
    ///   attribute went with the entity.
    /// - Another change fires `entityUpdated` when anything changed (attributes
    ///   watched, or, watching none, also types and scopes), else the first of
    ///   `attributeCreated`, `attributeUpdated`, `attributeDeleted` listed that
    ///   happened to a watched attribute.
    ///
    /// Attribute instances are compared as a whole, system times included: an
    /// instance written again with the same value was still updated. With
    /// `datasetId`, only the instances of those datasets count. `entityCreated` and
    /// `entityDeleted` concern the entity as a whole and ignore watchedAttributes.
    pub fn triggered(
        &self,
        before: Option<&Entity>,
        after: Option<&Entity>,
        now: DateTime<Utc>,
    ) -> Option<Trigger> {
        let s = &self.subscription;
        if s.status(now) != Status::Active || s.time_interval.is_some() {
            return None;
        }
        let subject = after.or(before)?;
        if !self.selects(subject) || !self.filters_match(subject) {
            return None;
        }
        let has = |t: Trigger| s.triggers.contains(&t);
        match (before, after) {
            (None, Some(created)) => {
                if has(Trigger::EntityCreated) {
                    Some(Trigger::EntityCreated)
                } else if has(Trigger::AttributeCreated)
                    && self.changes(None, Some(created)).created
                {
                    Some(Trigger::AttributeCreated)
                } else {
                    None
                }
            }
            (Some(deleted), None) => {
                if has(Trigger::EntityDeleted) {
                    Some(Trigger::EntityDeleted)
                } else if has(Trigger::AttributeDeleted)
                    && self.changes(Some(deleted), None).deleted
                {
                    Some(Trigger::AttributeDeleted)
                } else {
                    None
                }
            }
            (Some(b), Some(a)) => {
                let changes = self.changes(Some(b), Some(a));
                let entity_changed =
                    s.watched_attributes.is_empty() && (b.types != a.types || b.scopes != a.scopes);
                if has(Trigger::EntityUpdated) && (changes.any() || entity_changed) {
                    return Some(Trigger::EntityUpdated);
                }
                [
                    (Trigger::AttributeCreated, changes.created),
                    (Trigger::AttributeUpdated, changes.updated),
                    (Trigger::AttributeDeleted, changes.deleted),
                ]
                .into_iter()
                .find(|(t, happened)| *happened && has(*t))
                .map(|(t, _)| t)
            }
            (None, None) => None,
        }
    }

    /// Whether one of the selectors (if any) selects the entity.
    pub fn selects(&self, e: &Entity) -> bool {
        self.selectors.is_empty() || self.selectors.iter().any(|s| s.selects(e))
    }

    /// Whether the entity matches `q`, `geoQ` and `scopeQ`, with the evaluation
    /// queries use.
    pub fn filters_match(&self, e: &Entity) -> bool {
        self.q.as_ref().is_none_or(|q| q.matches(e))
            && self.geo.as_ref().is_none_or(|g| g.matches_entity(e))
            && self.scope.as_ref().is_none_or(|scope| {
                let scopes: Vec<&str> = e.scopes.iter().map(String::as_str).collect();
                scope_expr_matches(scope, &scopes)
            })
    }

    /// Whether the datasetId selection keeps an instance.
    pub(super) fn keeps_instance(&self, a: &Attribute) -> bool {
        let ids = &self.subscription.dataset_ids;
        ids.is_empty()
            || ids
                .iter()
                .any(|d| *d == a.dataset_id.as_deref().unwrap_or("@none"))
    }

    /// What happened to the watched attributes (all, watching none), instance by
    /// instance, among the instances the datasetId selection keeps.
    pub(super) fn changes(&self, before: Option<&Entity>, after: Option<&Entity>) -> AttrChanges {
        let watched = &self.subscription.watched_attributes;
        let mut names: Vec<&String> = before
            .into_iter()
            .chain(after)
            .flat_map(|e| e.attrs.keys())
            .filter(|n| watched.is_empty() || watched.contains(n))
            .collect();
        names.sort();
        names.dedup();
        let mut out = AttrChanges::default();
        for name in names {
            let (old, new) = (self.instances(before, name), self.instances(after, name));
            for a in &new {
                match old.iter().find(|b| b.dataset_id == a.dataset_id) {
                    None => out.created = true,
                    Some(b) if b != a => out.updated = true,
                    Some(_) => {}
                }
            }
            if old
                .iter()
                .any(|b| !new.iter().any(|a| a.dataset_id == b.dataset_id))
            {
                out.deleted = true;
            }
        }
        out
    }

    /// The instances of an attribute the datasetId selection keeps.
    fn instances<'e>(&self, e: Option<&'e Entity>, name: &str) -> Vec<&'e Attribute> {
        e.and_then(|e| e.attrs.get(name))
            .map(|v| v.iter().filter(|a| self.keeps_instance(a)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::subscription::testing::{entity, now, sub, t};
    use Trigger::*;
    use serde_json::{Value, json};

    fn gauge(extra: Value) -> Entity {
        let mut body = json!({
            "id": "urn:ngsi-ld:Gauge:thach-han-1",
            "type": "Gauge",
            "level": {"type": "Property", "value": 2.5},
            "name": "Thạch Hãn",
            "location": {"type": "Point", "coordinates": [107.19, 16.75]},
            "scope": "/QuangTri/DongHa"
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        entity(body, t("2024-04-30T00:00:00Z"))
    }

    /// The entity with `extra` applied as a later write.
    fn changed(extra: Value) -> Entity {
        changed_from(&gauge(json!({})), extra)
    }

    /// `gauge(extra)` written after `before`: the instances that differ get a later
    /// modifiedAt.
    fn changed_from(before: &Entity, extra: Value) -> Entity {
        let mut e = gauge(extra);
        let later = t("2024-04-30T01:00:00Z");
        for (name, instances) in e.attrs.iter_mut() {
            for inst in instances {
                if before.attrs.get(name).is_none_or(|b| !b.contains(inst)) {
                    inst.modified_at = later;
                }
            }
        }
        e.modified_at = later;
        e
    }

    /// What each kind of change fires for a subscription made of `patch`.
    fn check(patch: Value, cases: &[(Option<&Entity>, Option<&Entity>, Option<Trigger>)]) {
        let c = sub(patch.clone()).compile().unwrap();
        for (i, (before, after, want)) in cases.iter().enumerate() {
            assert_eq!(
                c.triggered(*before, *after, now()),
                *want,
                "{patch} case {i}"
            );
        }
    }

    #[test]
    fn triggers_by_kind_of_change() {
        let old = gauge(json!({}));
        let updated = changed(json!({"level": 3.1}));
        let rewritten = changed(
            json!({"level": {"type": "Property", "value": 2.5, "observedAt": "2024-04-30T01:00:00Z"}}),
        );
        let added = changed(json!({"alarm": true}));
        let removed = changed(json!({"name": null}));
        let rescoped = changed(json!({"scope": "/QuangTri/GioLinh"}));
        let created = Some(&old);
        let same = (Some(&old), Some(&old));
        let up = (Some(&old), Some(&updated));
        let add = (Some(&old), Some(&added));
        let rm = (Some(&old), Some(&removed));
        let sc = (Some(&old), Some(&rescoped));
        let rw = (Some(&old), Some(&rewritten));
        // Default: attributes created or updated; a creation creates attributes.
        check(
            json!({}),
            &[
                (None, created, Some(AttributeCreated)),
                (Some(&old), None, None),
                (up.0, up.1, Some(AttributeUpdated)),
                (rw.0, rw.1, Some(AttributeUpdated)),
                (add.0, add.1, Some(AttributeCreated)),
                (rm.0, rm.1, None),
                (sc.0, sc.1, None),
                (same.0, same.1, None),
                (None, None, None),
            ],
        );
        check(
            json!({"notificationTrigger": ["entityCreated", "entityDeleted"]}),
            &[
                (None, created, Some(EntityCreated)),
                (Some(&old), None, Some(EntityDeleted)),
                (up.0, up.1, None),
                (rm.0, rm.1, None),
            ],
        );
        check(
            json!({"notificationTrigger": ["entityUpdated"]}),
            &[
                (None, created, None),
                (Some(&old), None, None),
                (up.0, up.1, Some(EntityUpdated)),
                (add.0, add.1, Some(EntityUpdated)),
                (rm.0, rm.1, Some(EntityUpdated)),
                (sc.0, sc.1, Some(EntityUpdated)),
                (same.0, same.1, None),
            ],
        );
        check(
            json!({"notificationTrigger": ["attributeDeleted"]}),
            &[
                (None, created, None),
                (Some(&old), None, Some(AttributeDeleted)),
                (up.0, up.1, None),
                (rm.0, rm.1, Some(AttributeDeleted)),
            ],
        );
        check(
            json!({"notificationTrigger": ["attributeUpdated"]}),
            &[
                (None, created, None),
                (add.0, add.1, None),
                (up.0, up.1, Some(AttributeUpdated)),
            ],
        );
    }

    #[test]
    fn watched_attributes_narrow_attribute_triggers() {
        let old = gauge(json!({}));
        let level = changed(json!({"level": 3.1}));
        let name = changed(json!({"name": "Hiếu"}));
        let no_name = changed(json!({"name": null}));
        let bare = gauge(json!({"level": null, "name": null}));
        check(
            json!({"watchedAttributes": ["level"]}),
            &[
                (Some(&old), Some(&level), Some(AttributeUpdated)),
                (Some(&old), Some(&name), None),
                (None, Some(&old), Some(AttributeCreated)),
                (None, Some(&bare), None),
            ],
        );
        check(
            json!({"watchedAttributes": ["name"], "notificationTrigger": ["attributeDeleted", "entityUpdated"]}),
            &[
                (Some(&old), Some(&no_name), Some(EntityUpdated)),
                (Some(&old), Some(&level), None),
                (Some(&old), None, Some(AttributeDeleted)),
            ],
        );
        // Entity-level triggers concern the entity as a whole.
        check(
            json!({"watchedAttributes": ["alarm"], "notificationTrigger": ["entityCreated"]}),
            &[(None, Some(&old), Some(EntityCreated))],
        );
    }

    #[test]
    fn selectors_pick_entities() {
        let old = gauge(json!({}));
        let new = changed(json!({"level": 3.1}));
        let typed = |types: Value| {
            (
                gauge(json!({"type": types.clone()})),
                changed(json!({"type": types, "level": 3.1})),
            )
        };
        let (multi_old, multi_new) = typed(json!(["Sensor", "Gauge"]));
        let fires = |patch: Value, before: &Entity, after: &Entity| {
            sub(patch)
                .compile()
                .unwrap()
                .triggered(Some(before), Some(after), now())
                .is_some()
        };
        let cases = [
            (json!({"entities": [{"type": "Gauge"}]}), true),
            (json!({"entities": [{"type": "River"}]}), false),
            (
                json!({"entities": [{"type": "River"}, {"type": "Gauge"}]}),
                true,
            ),
            (json!({"entities": [{"type": "River|Gauge"}]}), true),
            (json!({"entities": [{"type": "Sensor;Gauge"}]}), false),
            (
                json!({"entities": [{"type": "Gauge", "id": "urn:ngsi-ld:Gauge:thach-han-1"}]}),
                true,
            ),
            (
                json!({"entities": [{"type": "Gauge", "id": "urn:ngsi-ld:Gauge:other"}]}),
                false,
            ),
            (
                json!({"entities": [{"type": "Gauge", "idPattern": "thach-han-[0-9]$"}]}),
                true,
            ),
            (
                json!({"entities": [{"type": "Gauge", "idPattern": "^urn:ngsi-ld:River:"}]}),
                false,
            ),
            // The id wins over the pattern.
            (
                json!({"entities": [{"type": "Gauge", "id": "urn:ngsi-ld:Gauge:thach-han-1", "idPattern": "nothing"}]}),
                true,
            ),
            (
                json!({"entities": null, "watchedAttributes": ["level"]}),
                true,
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(fires(patch.clone(), &old, &new), want, "{patch}");
        }
        assert!(fires(
            json!({"entities": [{"type": "Sensor;Gauge"}]}),
            &multi_old,
            &multi_new
        ));
        assert!(fires(
            json!({"entities": [{"type": "Gauge"}]}),
            &multi_old,
            &multi_new
        ));
    }

    #[test]
    fn filters_apply_to_the_entity_after_the_change() {
        let old = gauge(json!({}));
        let high = changed(json!({"level": 4.6}));
        let low = changed(json!({"level": 1.0}));
        let moved = changed(
            json!({"level": 4.6, "location": {"type": "Point", "coordinates": [106.0, 16.0]}}),
        );
        let away = changed(json!({"level": 4.6, "scope": "/Hue"}));
        let fires = |patch: Value, before: Option<&Entity>, after: Option<&Entity>| {
            sub(patch)
                .compile()
                .unwrap()
                .triggered(before, after, now())
                .is_some()
        };
        let q = json!({"q": "level>4"});
        assert!(fires(q.clone(), Some(&old), Some(&high)));
        assert!(!fires(q.clone(), Some(&high), Some(&low)));
        // A deletion is judged on the entity as it was.
        let q_deleted = json!({"q": "level>4", "notificationTrigger": ["entityDeleted"]});
        assert!(fires(q_deleted.clone(), Some(&high), None));
        assert!(!fires(q_deleted, Some(&low), None));
        let near = json!({"geoQ": {"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [107.19, 16.751]}});
        assert!(fires(near.clone(), Some(&old), Some(&high)));
        assert!(!fires(near, Some(&old), Some(&moved)));
        let within = json!({"geoQ": {"georel": "within", "geometry": "Polygon",
            "coordinates": "[[[107,16.5],[107.5,16.5],[107.5,17],[107,17],[107,16.5]]]"}});
        assert!(fires(within.clone(), Some(&old), Some(&high)));
        assert!(!fires(within, Some(&old), Some(&moved)));
        let scoped = json!({"scopeQ": "/QuangTri/#"});
        assert!(fires(scoped.clone(), Some(&old), Some(&high)));
        assert!(!fires(scoped, Some(&old), Some(&away)));
        let all = json!({"q": "level>4;name==\"Thạch Hãn\"", "scopeQ": "/QuangTri/+",
            "geoQ": {"georel": "intersects", "geometry": "Point", "coordinates": [107.19, 16.75]}});
        assert!(fires(all, Some(&old), Some(&high)));
    }

    #[test]
    fn only_active_unexpired_change_subscriptions_fire() {
        let old = gauge(json!({}));
        let new = changed(json!({"level": 3.1}));
        let fires = |patch: Value| {
            sub(patch)
                .compile()
                .unwrap()
                .triggered(Some(&old), Some(&new), now())
        };
        assert_eq!(fires(json!({})), Some(AttributeUpdated));
        assert_eq!(fires(json!({"isActive": false})), None);
        assert_eq!(fires(json!({"timeInterval": 60})), None);
        let mut s = sub(json!({"expiresAt": "2024-05-01T00:00:01Z"}));
        assert!(
            s.compile()
                .unwrap()
                .triggered(Some(&old), Some(&new), now())
                .is_some()
        );
        s.expires_at = Some(t("2024-04-30T23:59:59Z"));
        assert_eq!(s.status(now()), Status::Expired);
        assert_eq!(
            s.compile()
                .unwrap()
                .triggered(Some(&old), Some(&new), now()),
            None
        );
    }

    #[test]
    fn dataset_ids_select_instances() {
        let base = json!({"level": [{"type": "Property", "value": 1},
                                    {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:radar"}]});
        let old = gauge(base);
        let radar = changed_from(
            &old,
            json!({"level": [{"type": "Property", "value": 1},
                                             {"type": "Property", "value": 3, "datasetId": "urn:ngsi-ld:Dataset:radar"}]}),
        );
        let default = changed_from(
            &old,
            json!({"level": [{"type": "Property", "value": 5},
                                               {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:radar"}]}),
        );
        let fires = |patch: Value, after: &Entity| {
            sub(patch)
                .compile()
                .unwrap()
                .triggered(Some(&old), Some(after), now())
                .is_some()
        };
        let radar_only = json!({"datasetId": ["urn:ngsi-ld:Dataset:radar"]});
        assert!(fires(radar_only.clone(), &radar));
        assert!(!fires(radar_only, &default));
        let default_only = json!({"datasetId": "@none"});
        assert!(!fires(default_only.clone(), &radar));
        assert!(fires(default_only, &default));
        assert!(fires(json!({}), &radar) && fires(json!({}), &default));
    }

    #[test]
    fn status_throttling_and_periods() {
        let s = sub(json!({"throttling": 10}));
        let last = Some(t("2024-04-30T23:59:55Z"));
        assert!(s.throttled(last, now()));
        assert!(!s.throttled(last, t("2024-05-01T00:00:05Z")));
        assert!(!s.throttled(None, now()));
        assert!(!s.periodic_due(None, now()));
        let p = sub(json!({"timeInterval": 60}));
        assert!(p.periodic_due(None, now()));
        assert!(!p.periodic_due(last, now()));
        assert!(p.periodic_due(last, t("2024-05-01T00:00:55Z")));
        assert!(!p.throttled(last, now()));
        let paused = sub(json!({"timeInterval": 60, "isActive": false}));
        assert!(!paused.periodic_due(None, now()));
    }
}
