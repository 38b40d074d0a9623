//! Rules as data: what a client sends (JSON), checked into a [`Rule`] that the
//! evaluator can run. Every check is here, so that a rule that cannot be evaluated
//! is refused when it is written, with a message that says why.

use std::collections::BTreeMap;
use std::time::Duration;

use ngsi::filter::QFilter;
use ngsi::{Context, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest rule id.
pub const MAX_ID_LEN: usize = 64;
/// Longest name, template, label key or value, in characters.
pub const MAX_TEXT: usize = 1_000;
/// Most labels, and most ids in a scope.
pub const MAX_LABELS: usize = 32;
pub const MAX_SCOPE_IDS: usize = 1_000;
/// Most vertices of a polygon area.
pub const MAX_POLYGON_POINTS: usize = 10_000;
/// Longest duration a rule may name (for, keep-firing, windows, staleness).
pub const MAX_DURATION: Duration = Duration::from_secs(400 * 86_400);

/// A comparison of a value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
        }
    }

    /// Whether a value that has come back past `threshold` by `margin` is clear of
    /// it: below `threshold - margin` for `>`/`>=`, above `threshold + margin` for
    /// `<`/`<=`.
    pub fn cleared(self, value: f64, threshold: f64, margin: f64) -> bool {
        match self {
            Op::Gt | Op::Ge => value < threshold - margin,
            Op::Lt | Op::Le => value > threshold + margin,
            Op::Eq => value != threshold,
        }
    }
}

/// The Smart Data Models Alert severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The area of a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Area {
    /// An `AdministrativeArea` entity: the entities naming it by
    /// `refAdministrativeArea`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune: Option<String>,
    /// A GeoJSON polygon's coordinates (`[[[lon, lat], ...]]`): the entities whose
    /// location lies within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Value>,
}

impl Area {
    /// Narrows a query to the area: a commune by `refAdministrativeArea`, a polygon
    /// by `within`. `what` names the member in errors.
    pub(crate) fn restrict(
        &self,
        spec: &mut hub::http::params::QuerySpec,
        what: &str,
    ) -> Result<(), Error> {
        match (&self.commune, &self.polygon) {
            (Some(commune), None) => {
                if !ngsi::entity::is_uri(commune) {
                    return Err(bad(format!("{what}.commune {commune:?} is not a URI")));
                }
                let term = format!("refAdministrativeArea==\"{commune}\"");
                spec.q = Some(match &spec.q {
                    Some(q) => format!("({q});{term}"),
                    None => term,
                });
            }
            (None, Some(polygon)) => {
                let points: usize = polygon
                    .as_array()
                    .map(|rings| rings.iter().filter_map(Value::as_array).map(Vec::len).sum())
                    .unwrap_or(0);
                if points > MAX_POLYGON_POINTS {
                    return Err(bad(format!(
                        "{what}.polygon has more than {MAX_POLYGON_POINTS} points"
                    )));
                }
                spec.georel = Some("within".into());
                spec.geometry = Some("Polygon".into());
                spec.coordinates = Some(polygon.to_string());
            }
            _ => {
                return Err(bad(format!(
                    "{what} names either a commune or a polygon, and one of them"
                )));
            }
        }
        Ok(())
    }
}

/// Which entities a rule watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeSpec {
    /// One entity type (a short name under the core @context, or an IRI).
    #[serde(rename = "type")]
    pub entity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Area>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// When a rule's condition holds for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum ConditionSpec {
    /// `attribute op value`.
    #[serde(rename_all = "camelCase")]
    Threshold {
        attribute: String,
        op: Op,
        value: Value,
    },
    /// `attribute op other`: another attribute of the same entity (a gauge's
    /// `waterLevel >= alarmLevel2`).
    #[serde(rename_all = "camelCase")]
    Compare {
        attribute: String,
        op: Op,
        other: String,
    },
    /// How much `attribute` changed over the last `window`: the current value less
    /// the oldest one recorded within the window, compared with `value`.
    #[serde(rename_all = "camelCase")]
    Rate {
        attribute: String,
        op: Op,
        value: f64,
        window: String,
    },
    /// No update for `after` (of `attribute` when given, else of the whole entity).
    #[serde(rename_all = "camelCase")]
    Stale {
        after: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attribute: Option<String>,
    },
    /// A due date passed: `attribute` holds a date-time, and now is later than it
    /// (plus `grace`, when given).
    #[serde(rename_all = "camelCase")]
    Deadline {
        attribute: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace: Option<String>,
    },
    /// An NGSI-LD `q` expression over the entity.
    Q { q: String },
}

/// How a firing alert clears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearSpec {
    /// The value must come back past the threshold by this much (hysteresis).
    pub hysteresis: f64,
}

/// A rule as clients write it (`/alerts/v1/rules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub scope: ScopeSpec,
    pub condition: ConditionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<ClearSpec>,
    /// How long the condition must hold before the alert fires (pending).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_duration: Option<String>,
    /// How long an alert keeps firing once its condition has cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    pub severity: Severity,
    #[serde(default = "default_category")]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_category: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Templates by language (`vi`, `en`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn default_category() -> String {
    "environment".into()
}

/// A checked condition, names expanded.
#[derive(Debug, Clone)]
pub enum Condition {
    Threshold {
        attribute: String,
        op: Op,
        value: Threshold,
    },
    Compare {
        attribute: String,
        op: Op,
        other: String,
    },
    Rate {
        attribute: String,
        op: Op,
        value: f64,
        window: Duration,
    },
    Stale {
        after: Duration,
        attribute: Option<String>,
    },
    Deadline {
        attribute: String,
        grace: Duration,
    },
    Q(QFilter),
}

/// A threshold: a number for every operator; a string or boolean for `==`.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    Number(f64),
    Exact(Value),
}

/// A rule checked for evaluation: its spec as written, and what it compiles to.
#[derive(Debug, Clone)]
pub struct Rule {
    pub tenant: String,
    pub spec: RuleSpec,
    /// The expanded entity type.
    pub entity_type: String,
    pub query: store::EntityQuery,
    pub condition: Condition,
    pub hysteresis: f64,
    pub for_duration: Duration,
    pub keep_firing_for: Duration,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::bad_data(detail)
}

/// Reads a duration: a number and a unit, repeated (`90s`, `15m`, `1h30m`, `2d`).
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let wrong = || {
        bad(format!(
            "{text:?} is not a duration: write numbers with units s, m, h or d, e.g. 15m or 1h30m"
        ))
    };
    if text.is_empty() || text.len() > 32 {
        return Err(wrong());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| wrong())?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(wrong()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(wrong)?;
    }
    if !digits.is_empty() {
        return Err(wrong());
    }
    let d = Duration::from_secs(total);
    if d > MAX_DURATION {
        return Err(bad(format!("{text:?} is longer than 400 days")));
    }
    Ok(d)
}

pub(crate) fn check_text(what: &str, text: &str) -> Result<(), Error> {
    if text.chars().count() > MAX_TEXT {
        return Err(bad(format!("{what} is longer than {MAX_TEXT} characters")));
    }
    Ok(())
}

fn attribute_name(what: &str, name: &str, ctx: &Context) -> Result<String, Error> {
    if !ngsi::entity::is_valid_name(name) {
        return Err(bad(format!(
            "{what} {name:?} is not a valid attribute name"
        )));
    }
    ngsi::entity::expand_attr(name, ctx)
}

/// Whether `text` is a valid rule id: 1 to 64 letters, digits, `-` and `_`.
pub fn valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ID_LEN
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The words a message template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "value",
    "threshold",
    "attribute",
    "place",
    "commune",
    "entity",
    "rule",
    "severity",
    "unit",
];

fn check_template(lang: &str, template: &str) -> Result<(), Error> {
    check_text(&format!("message.{lang}"), template)?;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| bad(format!("message.{lang} has a {{ without its }}")))?;
        let word = &after[..close];
        if !PLACEHOLDERS.contains(&word) {
            return Err(bad(format!(
                "message.{lang} uses {{{word}}}; the placeholders are {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

impl RuleSpec {
    /// Reads a rule from a request body, with errors naming what is wrong.
    pub fn from_json(body: &Value) -> Result<RuleSpec, Error> {
        if !body.is_object() {
            return Err(bad("a rule is a JSON object"));
        }
        serde_json::from_value(body.clone()).map_err(|e| bad(format!("invalid rule: {e}")))
    }

    /// Checks everything that needs no data, and compiles the rule. The commune of an
    /// area is checked by the caller, which can read it.
    pub fn compile(self, tenant: &str) -> Result<Rule, Error> {
        let ctx = Context::core();
        if !valid_id(&self.id) {
            return Err(bad(format!(
                "rule id {:?} must be 1 to {MAX_ID_LEN} letters, digits, - or _",
                self.id
            )));
        }
        if let Some(name) = &self.name {
            check_text("name", name)?;
        }
        check_text("category", &self.category)?;
        if let Some(s) = &self.sub_category {
            check_text("subCategory", s)?;
        }
        if self.labels.len() > MAX_LABELS {
            return Err(bad(format!("at most {MAX_LABELS} labels")));
        }
        for (k, v) in &self.labels {
            if !valid_id(k) {
                return Err(bad(format!(
                    "label name {k:?} must be 1 to {MAX_ID_LEN} letters, digits, - or _"
                )));
            }
            check_text(&format!("label {k}"), v)?;
        }
        for (lang, template) in &self.message {
            if !matches!(lang.as_str(), "vi" | "en") {
                return Err(bad(format!(
                    "message languages are vi and en, not {lang:?}"
                )));
            }
            check_template(lang, template)?;
        }
        // The scope, as an entity query.
        let scope = &self.scope;
        if !ngsi::entity::is_valid_name(&scope.entity_type) {
            return Err(bad(format!(
                "scope.type {:?} is not a valid type name",
                scope.entity_type
            )));
        }
        if scope.ids.len() > MAX_SCOPE_IDS {
            return Err(bad(format!(
                "scope.ids holds more than {MAX_SCOPE_IDS} ids"
            )));
        }
        let mut spec = hub::http::params::QuerySpec {
            types: Some(scope.entity_type.clone()),
            ids: scope.ids.clone(),
            q: scope.q.clone(),
            ..Default::default()
        };
        if let Some(q) = &scope.q {
            check_text("scope.q", q)?;
        }
        if let Some(area) = &scope.area {
            area.restrict(&mut spec, "scope.area")?;
        }
        let query = spec
            .build(&ctx, hub::http::params::MAX_LIMIT, 0, false)
            .map_err(|e| bad(format!("scope: {}", e.detail)))?;
        let entity_type = ngsi::entity::expand_type(&scope.entity_type, &ctx)?;
        // The condition.
        let condition = match &self.condition {
            ConditionSpec::Threshold {
                attribute,
                op,
                value,
            } => Condition::Threshold {
                attribute: attribute_name("condition.attribute", attribute, &ctx)?,
                op: *op,
                value: match value {
                    Value::Number(n) => Threshold::Number(
                        n.as_f64()
                            .ok_or_else(|| bad("condition.value is not a finite number"))?,
                    ),
                    Value::String(s) if *op == Op::Eq => {
                        check_text("condition.value", s)?;
                        Threshold::Exact(value.clone())
                    }
                    Value::Bool(_) if *op == Op::Eq => Threshold::Exact(value.clone()),
                    _ => {
                        return Err(bad(format!(
                            "condition.value must be a number for {} (a string or boolean only with ==)",
                            op.as_str()
                        )));
                    }
                },
            },
            ConditionSpec::Compare {
                attribute,
                op,
                other,
            } => Condition::Compare {
                attribute: attribute_name("condition.attribute", attribute, &ctx)?,
                op: *op,
                other: attribute_name("condition.other", other, &ctx)?,
            },
            ConditionSpec::Rate {
                attribute,
                op,
                value,
                window,
            } => {
                let window = parse_duration(window)?;
                if window.is_zero() {
                    return Err(bad("condition.window must be longer than zero"));
                }
                if !value.is_finite() {
                    return Err(bad("condition.value is not a finite number"));
                }
                Condition::Rate {
                    attribute: attribute_name("condition.attribute", attribute, &ctx)?,
                    op: *op,
                    value: *value,
                    window,
                }
            }
            ConditionSpec::Stale { after, attribute } => {
                let after = parse_duration(after)?;
                if after < Duration::from_secs(1) {
                    return Err(bad("condition.after must be at least 1s"));
                }
                Condition::Stale {
                    after,
                    attribute: attribute
                        .as_ref()
                        .map(|a| attribute_name("condition.attribute", a, &ctx))
                        .transpose()?,
                }
            }
            ConditionSpec::Deadline { attribute, grace } => Condition::Deadline {
                attribute: attribute_name("condition.attribute", attribute, &ctx)?,
                grace: grace
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| bad(format!("condition.grace: {}", e.detail)))?
                    .unwrap_or_default(),
            },
            ConditionSpec::Q { q } => {
                check_text("condition.q", q)?;
                let expr = ngsi::query::parse_q(q)
                    .map_err(|e| bad(format!("condition.q is not a valid q expression: {e}")))?;
                Condition::Q(QFilter::new(expr.map_attrs(&|n| ctx.expand(n)))?)
            }
        };
        let hysteresis = match &self.clear {
            None => 0.0,
            Some(c) => {
                if !c.hysteresis.is_finite() || c.hysteresis < 0.0 {
                    return Err(bad("clear.hysteresis must be a number of 0 or more"));
                }
                let numeric = match &condition {
                    Condition::Threshold { op, value, .. } => {
                        *op != Op::Eq && matches!(value, Threshold::Number(_))
                    }
                    Condition::Compare { op, .. } | Condition::Rate { op, .. } => *op != Op::Eq,
                    Condition::Stale { .. } | Condition::Deadline { .. } | Condition::Q(_) => false,
                };
                if !numeric {
                    return Err(bad(
                        "clear.hysteresis applies to threshold, compare and rate conditions with >, >=, < or <=",
                    ));
                }
                c.hysteresis
            }
        };
        let duration = |what: &str, text: &Option<String>| -> Result<Duration, Error> {
            text.as_deref()
                .map(parse_duration)
                .transpose()
                .map(Option::unwrap_or_default)
                .map_err(|e| bad(format!("{what}: {}", e.detail)))
        };
        let for_duration = duration("for", &self.for_duration)?;
        let keep_firing_for = duration("keepFiringFor", &self.keep_firing_for)?;
        Ok(Rule {
            tenant: tenant.to_string(),
            entity_type,
            query,
            condition,
            hysteresis,
            for_duration,
            keep_firing_for,
            spec: self,
        })
    }
}

impl Rule {
    /// The expanded attributes the condition reads (for checking their kind).
    pub fn attributes(&self) -> Vec<&str> {
        match &self.condition {
            Condition::Threshold { attribute, .. }
            | Condition::Rate { attribute, .. }
            | Condition::Deadline { attribute, .. } => vec![attribute],
            Condition::Compare {
                attribute, other, ..
            } => vec![attribute, other],
            Condition::Stale { attribute, .. } => attribute.iter().map(String::as_str).collect(),
            Condition::Q(_) => vec![],
        }
    }

    /// Whether the condition compares numbers (its attributes must hold numbers).
    pub fn numeric(&self) -> bool {
        match &self.condition {
            Condition::Threshold { value, .. } => matches!(value, Threshold::Number(_)),
            Condition::Compare { .. } | Condition::Rate { .. } => true,
            Condition::Stale { .. } | Condition::Deadline { .. } | Condition::Q(_) => false,
        }
    }

    /// Whether the condition comes to hold as time passes, with no change of the
    /// entity (staleness, deadlines): the timer sweeps these.
    pub fn timed(&self) -> bool {
        matches!(
            self.condition,
            Condition::Stale { .. } | Condition::Deadline { .. }
        )
    }

    /// The short name of the attribute the condition is about, for messages.
    pub fn attribute_short(&self) -> Option<String> {
        match &self.spec.condition {
            ConditionSpec::Threshold { attribute, .. }
            | ConditionSpec::Compare { attribute, .. }
            | ConditionSpec::Rate { attribute, .. }
            | ConditionSpec::Deadline { attribute, .. } => Some(attribute.clone()),
            ConditionSpec::Stale { attribute, .. } => attribute.clone(),
            ConditionSpec::Q { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Result<Rule, Error> {
        RuleSpec::from_json(&v)?.compile("")
    }

    fn base() -> Value {
        json!({
            "id": "flood-2",
            "scope": {"type": "WaterObserved"},
            "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": "alarmLevel2"},
            "clear": {"hysteresis": 0.1},
            "severity": "high",
            "message": {"vi": "Mực nước {value} m tại {place}", "en": "Level {value} m at {place} (alarm {threshold} m)"}
        })
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").ok(), Some(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("2d").ok(),
            Some(Duration::from_secs(172_800))
        );
        for wrong in [
            "",
            "15",
            "m",
            "1x",
            "-1m",
            "1.5h",
            "99999999999999999999s",
            "401d",
        ] {
            assert!(parse_duration(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_good_rule_compiles() {
        let rule = compile(base()).expect("compiles");
        assert_eq!(rule.hysteresis, 0.1);
        assert!(rule.entity_type.ends_with("WaterObserved"));
        assert!(rule.numeric());
        assert_eq!(rule.attributes().len(), 2);
    }

    #[test]
    fn bad_rules_say_why() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"id": "bad id!"}), "rule id"),
            (
                json!({"condition": {"kind": "q", "q": "waterLevel>>3"}}),
                "condition.q",
            ),
            (
                json!({"condition": {"kind": "threshold", "attribute": "a", "op": ">", "value": "x"}}),
                "must be a number",
            ),
            (json!({"condition": {"kind": "sometimes"}}), "invalid rule"),
            (
                json!({"condition": {"kind": "stale", "after": "0s"}}),
                "at least 1s",
            ),
            (
                json!({"condition": {"kind": "rate", "attribute": "a", "op": ">", "value": 1, "window": "soon"}}),
                "not a duration",
            ),
            (json!({"for": "tomorrow"}), "for:"),
            (json!({"severity": "apocalyptic"}), "invalid rule"),
            (json!({"message": {"fr": "x"}}), "vi and en"),
            (json!({"message": {"en": "{nope}"}}), "placeholders"),
            (json!({"message": {"en": "{value"}}), "without its"),
            (
                json!({"scope": {"type": "WaterObserved", "q": "(("}}),
                "scope",
            ),
            (
                json!({"scope": {"type": "WaterObserved", "area": {}}}),
                "either a commune",
            ),
            (
                json!({"scope": {"type": "WaterObserved", "area": {"commune": "not a uri"}}}),
                "not a URI",
            ),
            (json!({"clear": {"hysteresis": -1}}), "hysteresis"),
            (
                json!({"condition": {"kind": "stale", "after": "15m"}, "clear": {"hysteresis": 0.1}}),
                "hysteresis applies",
            ),
            (
                json!({"condition": {"kind": "deadline", "attribute": "dueAt", "grace": "later"}}),
                "condition.grace",
            ),
            (
                json!({"condition": {"kind": "deadline", "attribute": "dueAt"}, "clear": {"hysteresis": 1}}),
                "hysteresis applies",
            ),
            (json!({"unknown": 1}), "unknown field"),
        ];
        for (patch, says) in cases {
            let mut v = base();
            for (k, x) in patch.as_object().expect("object") {
                v[k] = x.clone();
            }
            let e = compile(v.clone()).expect_err(&v.to_string());
            assert!(e.detail.contains(says), "{v}: {}", e.detail);
        }
    }

    #[test]
    fn hysteresis_clears_past_the_margin() {
        assert!(!Op::Ge.cleared(4.45, 4.5, 0.1));
        assert!(Op::Ge.cleared(4.39, 4.5, 0.1));
        assert!(Op::Lt.cleared(10.2, 10.0, 0.1));
        assert!(!Op::Lt.cleared(10.05, 10.0, 0.1));
    }
}
