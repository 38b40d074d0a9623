//! Evaluation as pure functions: what a rule's condition says of an entity at a time
//! ([`observe`]), and how an incident moves from one phase to the next ([`step`],
//! [`advance`]). The live evaluator and the backtest both run these, so a backtest
//! shows what the rule, as written, does.

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::{AttrKind, Attribute, Entity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rule::{Condition, Rule, Threshold};

/// What a condition says of an entity at one time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// The condition holds.
    pub active: bool,
    /// The clear condition holds (the condition no longer holds, past the hysteresis).
    pub cleared: bool,
    /// The value the condition read, and the threshold it was compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
}

impl Observation {
    fn not_applicable() -> Observation {
        Observation {
            active: false,
            cleared: true,
            value: None,
            threshold: None,
        }
    }
}

/// The default instance of an attribute (no datasetId), else its first.
pub fn instance<'a>(e: &'a Entity, name: &str) -> Option<&'a Attribute> {
    let list = e.attrs.get(name)?;
    list.iter()
        .find(|a| a.dataset_id.is_none())
        .or_else(|| list.first())
}

/// An attribute's number, when it is a Property holding one.
pub fn number(a: &Attribute) -> Option<f64> {
    if a.kind != AttrKind::Property {
        return None;
    }
    a.value.as_f64().filter(|n| n.is_finite())
}

fn json_number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// When an attribute (or the entity) was last updated: its observation time, else
/// when it was written.
pub fn last_update(e: &Entity, attribute: Option<&str>) -> Option<DateTime<Utc>> {
    match attribute {
        Some(name) => instance(e, name).map(|a| a.observed_at.unwrap_or(a.modified_at)),
        None => Some(
            e.attrs
                .values()
                .flatten()
                .filter_map(|a| a.observed_at)
                .max()
                .map_or(e.modified_at, |o| o.max(e.modified_at)),
        ),
    }
}

/// A date-time held by a Property: an ISO 8601 text, or a typed literal
/// `{"@type": "DateTime", "@value": …}`.
pub fn date_time(a: &Attribute) -> Option<DateTime<Utc>> {
    if a.kind != AttrKind::Property {
        return None;
    }
    let text = match &a.value {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("@value")?.as_str()?,
        _ => return None,
    };
    ngsi::entity::parse_time(text)
}

/// For a timed condition (staleness, deadline), the time it counts from: the
/// entity's (or attribute's) last update, or the attribute's due date. None when the
/// entity has no such time (the condition does not apply).
pub fn moment(rule: &Rule, entity: &Entity) -> Option<DateTime<Utc>> {
    match &rule.condition {
        Condition::Stale { attribute, .. } => last_update(entity, attribute.as_deref()),
        Condition::Deadline { attribute, .. } => instance(entity, attribute).and_then(date_time),
        _ => None,
    }
}

/// When a timed condition counting from `at` comes to hold: `after` past the last
/// update, or `grace` past the due date. None for other conditions.
pub fn due(rule: &Rule, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let wait = match &rule.condition {
        Condition::Stale { after, .. } => *after,
        Condition::Deadline { grace, .. } => *grace,
        _ => return None,
    };
    Some(
        at.checked_add_signed(TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Whether a timed condition counting from `at` holds at `now`.
pub fn holds(rule: &Rule, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    match (&rule.condition, due(rule, at)) {
        (Condition::Stale { .. }, Some(due)) => now >= due,
        (Condition::Deadline { .. }, Some(due)) => now > due,
        _ => false,
    }
}

/// What a timed condition counting from `at` says at `now`. A staleness rule holds
/// once `after` has passed; a deadline once now is later than the due date plus the
/// grace.
pub fn timed(rule: &Rule, at: DateTime<Utc>, now: DateTime<Utc>) -> Observation {
    let active = holds(rule, at, now);
    Observation {
        active,
        cleared: !active,
        value: Some(Value::String(ngsi::entity::format_time(&at))),
        threshold: None,
    }
}

fn numeric(op: crate::rule::Op, value: f64, threshold: f64, margin: f64) -> Observation {
    Observation {
        active: op.holds(value, threshold),
        cleared: op.cleared(value, threshold, margin),
        value: Some(json_number(value)),
        threshold: Some(json_number(threshold)),
    }
}

/// What the rule's condition says of `entity` at `now`. `window_start` is, for a rate
/// condition, the oldest value of the attribute recorded within the window (the
/// caller reads it from the history); other conditions ignore it.
pub fn observe(
    rule: &Rule,
    entity: &Entity,
    now: DateTime<Utc>,
    window_start: Option<f64>,
) -> Observation {
    let margin = rule.hysteresis;
    match &rule.condition {
        Condition::Threshold {
            attribute,
            op,
            value,
        } => {
            let Some(a) = instance(entity, attribute) else {
                return Observation::not_applicable();
            };
            match value {
                Threshold::Number(t) => match number(a) {
                    Some(v) => numeric(*op, v, *t, margin),
                    None => Observation::not_applicable(),
                },
                Threshold::Exact(t) => {
                    let active = &a.value == t;
                    Observation {
                        active,
                        cleared: !active,
                        value: Some(a.value.clone()),
                        threshold: Some(t.clone()),
                    }
                }
            }
        }
        Condition::Compare {
            attribute,
            op,
            other,
        } => {
            let v = instance(entity, attribute).and_then(number);
            let t = instance(entity, other).and_then(number);
            match (v, t) {
                (Some(v), Some(t)) => numeric(*op, v, t, margin),
                _ => Observation::not_applicable(),
            }
        }
        Condition::Rate {
            attribute,
            op,
            value,
            ..
        } => {
            let v = instance(entity, attribute).and_then(number);
            match (v, window_start) {
                (Some(v), Some(start)) => {
                    let mut o = numeric(*op, v - start, *value, margin);
                    o.value = Some(json_number(v));
                    o
                }
                _ => Observation::not_applicable(),
            }
        }
        Condition::Stale { .. } | Condition::Deadline { .. } => match moment(rule, entity) {
            Some(at) => timed(rule, at, now),
            None => Observation::not_applicable(),
        },
        Condition::Q(filter) => {
            let active = filter.matches(entity);
            Observation {
                active,
                cleared: !active,
                value: None,
                threshold: None,
            }
        }
    }
}

/// Where an incident of a (rule, entity) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "camelCase")]
pub enum Phase {
    /// Nothing.
    Idle,
    /// The condition holds since `since`, not yet for the rule's for-duration.
    #[serde(rename_all = "camelCase")]
    Pending { since: DateTime<Utc> },
    /// The alert `alert` fires (since `since`, when the condition began); the clear
    /// condition holds since `clearing` when set.
    #[serde(rename_all = "camelCase")]
    Firing {
        since: DateTime<Utc>,
        alert: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clearing: Option<DateTime<Utc>>,
    },
    /// Resolved by hand while the condition still held: nothing fires again until
    /// the condition has cleared.
    Latched,
}

/// A (rule, entity)'s phase and the last observation (what timers act on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(flatten)]
    pub phase: Phase,
    pub last: Observation,
}

/// What a transition asks the evaluator to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Raise an alert for the incident that began at `since`, at time `at`, on the
    /// observation that made it due.
    Fire {
        since: DateTime<Utc>,
        at: DateTime<Utc>,
        obs: Observation,
    },
    /// Resolve the incident's alert at `at`.
    Resolve { alert: String, at: DateTime<Utc> },
}

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Moves an incident to `now` without a new observation: a pending incident fires
/// once it has held for the rule's for-duration; a firing one whose clear condition
/// has held for keep-firing-for resolves. The action's time is when it became due
/// (at most `now`). `alert_id` names the alert of an incident that fires.
pub fn advance(
    rule: &Rule,
    incident: &mut Incident,
    now: DateTime<Utc>,
    alert_id: impl Fn(DateTime<Utc>) -> String,
) -> Option<Action> {
    match incident.phase.clone() {
        Phase::Pending { since } if incident.last.active => {
            let due = since.checked_add_signed(delta(rule.for_duration))?;
            (due <= now).then(|| {
                incident.phase = Phase::Firing {
                    since,
                    alert: alert_id(since),
                    clearing: None,
                };
                Action::Fire {
                    since,
                    at: due,
                    obs: incident.last.clone(),
                }
            })
        }
        Phase::Firing {
            alert,
            clearing: Some(from),
            ..
        } => {
            let due = from.checked_add_signed(delta(rule.keep_firing_for))?;
            (due <= now).then(|| {
                incident.phase = Phase::Idle;
                Action::Resolve { alert, at: due }
            })
        }
        _ => None,
    }
}

/// Takes a new observation at `now`: the incident moves (timed transitions that fell
/// due before `now` first), and says what to do. At most two actions (a resolve due
/// earlier, then a fire).
pub fn step(
    rule: &Rule,
    incident: &mut Incident,
    obs: Observation,
    now: DateTime<Utc>,
    alert_id: impl Fn(DateTime<Utc>) -> String,
) -> Vec<Action> {
    let mut actions: Vec<Action> = advance(rule, incident, now, &alert_id)
        .into_iter()
        .collect();
    let active = obs.active;
    let cleared = obs.cleared;
    incident.last = obs;
    match incident.phase.clone() {
        Phase::Idle if active => {
            incident.phase = Phase::Pending { since: now };
            actions.extend(advance(rule, incident, now, &alert_id));
        }
        Phase::Idle => {}
        Phase::Pending { .. } if !active => incident.phase = Phase::Idle,
        Phase::Pending { .. } => {}
        Phase::Firing {
            since,
            alert,
            clearing,
        } => {
            let clearing = if cleared {
                Some(clearing.unwrap_or(now))
            } else {
                None
            };
            incident.phase = Phase::Firing {
                since,
                alert,
                clearing,
            };
            actions.extend(advance(rule, incident, now, &alert_id));
        }
        Phase::Latched if cleared => incident.phase = Phase::Idle,
        Phase::Latched => {}
    }
    actions
}

impl Incident {
    pub fn idle() -> Incident {
        Incident {
            phase: Phase::Idle,
            last: Observation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSpec;
    use serde_json::json;

    fn rule(extra: Value) -> Rule {
        let mut v = json!({
            "id": "r",
            "scope": {"type": "WaterObserved"},
            "condition": {"kind": "threshold", "attribute": "waterLevel", "op": ">=", "value": 3.0},
            "severity": "high"
        });
        for (k, x) in extra.as_object().expect("object") {
            v[k] = x.clone();
        }
        RuleSpec::from_json(&v)
            .and_then(|s| s.compile(""))
            .expect("rule")
    }

    /// An entity read from normalized JSON, written at t(0).
    fn read(v: Value) -> Entity {
        let ctx = ngsi::Context::core();
        ngsi::entity::Reader {
            ctx: &ctx,
            now: t(0),
        }
        .entity(&v, None)
        .expect("entity")
    }

    fn gauge(level: f64) -> Entity {
        read(
            json!({"id": "urn:ngsi-ld:WaterObserved:g", "type": "WaterObserved",
                    "waterLevel": {"type": "Property", "value": level},
                    "alarmLevel2": {"type": "Property", "value": 4.5}}),
        )
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    /// Feeds (time, level) readings, returns the actions with their times.
    fn run(rule: &Rule, readings: &[(i64, f64)], until: i64) -> Vec<String> {
        let mut inc = Incident::idle();
        let mut out = Vec::new();
        let name = |a: &Action| match a {
            Action::Fire { at, .. } => format!("fire@{}", at.timestamp() - 1_800_000_000),
            Action::Resolve { at, .. } => format!("resolve@{}", at.timestamp() - 1_800_000_000),
        };
        for (s, level) in readings {
            let obs = observe(rule, &gauge(*level), t(*s), None);
            for a in step(rule, &mut inc, obs, t(*s), |_| "a".into()) {
                out.push(name(&a));
            }
        }
        if let Some(a) = advance(rule, &mut inc, t(until), |_| "a".into()) {
            out.push(name(&a));
        }
        out
    }

    #[test]
    fn threshold_fires_once_and_clears() {
        let r = rule(json!({}));
        assert_eq!(
            run(
                &r,
                &[(0, 2.0), (10, 3.0), (20, 3.5), (30, 2.9), (40, 3.2)],
                50
            ),
            ["fire@10", "resolve@30", "fire@40"]
        );
    }

    #[test]
    fn hysteresis_holds_the_alert_until_the_margin() {
        let r = rule(json!({"clear": {"hysteresis": 0.1}}));
        assert_eq!(
            run(&r, &[(0, 3.0), (10, 2.95), (20, 3.01), (30, 2.89)], 40),
            ["fire@0", "resolve@30"]
        );
    }

    #[test]
    fn for_duration_fires_when_due_and_not_on_a_blip() {
        let r = rule(json!({"for": "1m"}));
        // A blip shorter than a minute fires nothing.
        assert!(run(&r, &[(0, 3.5), (30, 2.0)], 200).is_empty());
        // Held: fires at since + 60 s, even with no reading then.
        assert_eq!(run(&r, &[(100, 3.5), (130, 3.6)], 400), ["fire@160"]);
    }

    #[test]
    fn keep_firing_for_delays_the_resolve() {
        let r = rule(json!({"keepFiringFor": "5m"}));
        assert_eq!(
            run(&r, &[(0, 3.5), (60, 2.0)], 1000),
            ["fire@0", "resolve@360"]
        );
        // Coming back within the period keeps the same incident.
        assert_eq!(
            run(&r, &[(0, 3.5), (60, 2.0), (120, 3.4), (180, 2.0)], 300),
            ["fire@0"]
        );
    }

    #[test]
    fn compare_reads_the_other_attribute() {
        let r = rule(
            json!({"condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel2"}}),
        );
        assert!(!observe(&r, &gauge(4.4), t(0), None).active);
        let o = observe(&r, &gauge(4.5), t(0), None);
        assert!(o.active);
        assert_eq!(o.threshold, Some(json!(4.5)));
    }

    #[test]
    fn rate_compares_the_change_over_the_window() {
        let r = rule(
            json!({"condition": {"kind": "rate", "attribute": "waterLevel", "op": ">", "value": 0.5, "window": "1h"}}),
        );
        assert!(observe(&r, &gauge(3.0), t(0), Some(2.4)).active);
        assert!(!observe(&r, &gauge(3.0), t(0), Some(2.6)).active);
        assert!(!observe(&r, &gauge(3.0), t(0), None).active);
    }

    #[test]
    fn staleness_counts_from_the_last_update() {
        let r = rule(
            json!({"condition": {"kind": "stale", "after": "15m", "attribute": "waterLevel"}}),
        );
        // The gauge's attributes were written at t(0).
        assert!(!observe(&r, &gauge(1.0), t(899), None).active);
        assert!(observe(&r, &gauge(1.0), t(900), None).active);
    }

    fn report(due: &Value) -> Entity {
        read(
            json!({"id": "urn:ngsi-ld:Open311_ServiceRequest:r", "type": "Open311_ServiceRequest",
                    "expected_datetime": {"type": "Property", "value": due}}),
        )
    }

    #[test]
    fn a_deadline_holds_once_the_due_date_and_its_grace_have_passed() {
        let r = rule(
            json!({"condition": {"kind": "deadline", "attribute": "expected_datetime", "grace": "1h"}}),
        );
        let due = ngsi::entity::format_time(&t(1_000));
        for value in [json!(due), json!({"@type": "DateTime", "@value": due})] {
            let e = report(&value);
            assert!(!observe(&r, &e, t(4_600), None).active);
            let o = observe(&r, &e, t(4_601), None);
            assert!(o.active && !o.cleared);
            assert_eq!(o.value, Some(json!(due)));
        }
        // Not a date-time, or missing: not in alarm.
        for value in [json!("tomorrow"), json!(42)] {
            let o = observe(&r, &report(&value), t(1_000_000), None);
            assert!(!o.active && o.cleared);
        }
        let o = observe(&r, &gauge(1.0), t(1_000_000), None);
        assert!(!o.active && o.cleared);
        // Without a grace, it holds as soon as now is later than the date.
        let r = rule(json!({"condition": {"kind": "deadline", "attribute": "expected_datetime"}}));
        assert!(!observe(&r, &report(&json!(due)), t(1_000), None).active);
        assert!(observe(&r, &report(&json!(due)), t(1_001), None).active);
    }

    #[test]
    fn q_conditions_match_the_entity() {
        let r = rule(json!({"condition": {"kind": "q", "q": "waterLevel>4;alarmLevel2==4.5"}}));
        assert!(observe(&r, &gauge(4.1), t(0), None).active);
        assert!(!observe(&r, &gauge(3.9), t(0), None).active);
    }

    #[test]
    fn a_missing_attribute_is_not_an_alarm() {
        let r = rule(
            json!({"condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel9"}}),
        );
        let o = observe(&r, &gauge(9.0), t(0), None);
        assert!(!o.active && o.cleared);
    }
}
