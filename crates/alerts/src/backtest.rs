//! Backtests: what a rule, as written, would have raised over a past period, from
//! the hub's temporal history. Each entity's history is read page by page in time
//! order (never whole) and run through the same evaluation as live readings
//! ([`crate::eval`]), so for-durations, hysteresis and keep-firing count as they
//! would have.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use hub::Scope;
use hub::temporal::{MAX_INSTANCES, TemporalAnswer, TemporalRequest};
use ngsi::temporal::{TemporalFormat, TemporalParams, TimeProperty, TimeRel};
use ngsi::{Attribute, Entity, Error, ErrorKind};
use serde_json::{Value, json};

use crate::alert;
use crate::eval::{self, Action, Incident};
use crate::rule::{Condition, Rule, RuleSpec};
use crate::service::Alerts;

/// Longest period of one backtest.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// Most entities one backtest reads, and most alerts it reports.
pub const MAX_ENTITIES: usize = 1_000;
pub const MAX_ALERTS: usize = 10_000;
/// Entities whose history is read at once (the store's readers work side by side).
const ENTITIES_AT_ONCE: usize = 4;

/// What a backtest asks: a rule (as it would be written) and a period.
pub struct BacktestRequest {
    pub rule: RuleSpec,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl BacktestRequest {
    /// `{"rule": {...}, "from": "...", "to": "..."}`; `to` defaults to now, `from`
    /// to 30 days before it.
    pub fn from_json(body: &Value, now: DateTime<Utc>) -> Result<BacktestRequest, Error> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::bad_data("a backtest is a JSON object with a rule"))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "rule" | "from" | "to") {
                return Err(Error::bad_data(format!(
                    "unknown member {key:?}: a backtest has rule, from and to"
                )));
            }
        }
        let rule = RuleSpec::from_json(
            obj.get("rule")
                .ok_or_else(|| Error::bad_data("a backtest needs a rule"))?,
        )?;
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => ngsi::entity::parse_time(s)
                    .map(Some)
                    .ok_or_else(|| Error::bad_data(format!("{key} is not an ISO 8601 time"))),
                Some(_) => Err(Error::bad_data(format!("{key} is not an ISO 8601 time"))),
            }
        };
        let to = time("to")?.unwrap_or(now);
        let from = time("from")?.unwrap_or(to - TimeDelta::days(30));
        if from >= to {
            return Err(Error::bad_data("from must be before to"));
        }
        if to - from > TimeDelta::days(MAX_PERIOD_DAYS) {
            return Err(Error::bad_data(format!(
                "a backtest covers at most {MAX_PERIOD_DAYS} days"
            )));
        }
        Ok(BacktestRequest { rule, from, to })
    }
}

/// One alert the rule would have raised.
struct Raised {
    entity: String,
    since: DateTime<Utc>,
    fired: DateTime<Utc>,
    resolved: Option<DateTime<Utc>>,
    value: Option<Value>,
    threshold: Option<Value>,
    message: (String, String),
}

/// The attribute whose history drives the backtest, and another read beside it.
fn driving(rule: &Rule) -> Result<(String, Option<String>), Error> {
    match &rule.condition {
        Condition::Threshold { attribute, .. } | Condition::Rate { attribute, .. } => {
            Ok((attribute.clone(), None))
        }
        Condition::Compare {
            attribute, other, ..
        } => Ok((attribute.clone(), Some(other.clone()))),
        Condition::Stale {
            attribute: Some(a), ..
        } => Ok((a.clone(), None)),
        Condition::Stale {
            attribute: None, ..
        } => Err(Error::new(
            ErrorKind::OperationNotSupported,
            "a backtest of a staleness rule needs the condition's attribute",
        )),
        Condition::Deadline { .. } => Err(Error::new(
            ErrorKind::OperationNotSupported,
            "deadline conditions cannot be backtested: whether a due date had passed depends on the scope's history too (e.g. the report's stage)",
        )),
        Condition::Q(_) => Err(Error::new(
            ErrorKind::OperationNotSupported,
            "q conditions cannot be backtested: write the condition as a threshold, compare or rate",
        )),
    }
}

/// The normalized `observedAt` instances of `attr` within `timerel`, at most `limit`.
pub(crate) fn observed(attr: &str, timerel: TimeRel, limit: usize) -> TemporalRequest {
    TemporalRequest {
        params: TemporalParams {
            timerel: Some(timerel),
            time_property: TimeProperty::ObservedAt,
            last_n: None,
            format: TemporalFormat::Normalized,
            aggr_methods: vec![],
            aggr_period: None,
            datasets: None,
        },
        attrs: vec![attr.to_string()],
        limit,
    }
}

/// One page of an attribute's instances from `from`, in time order, and whether
/// more follow (the page then ends between two times: the next starts past it).
async fn page(
    alerts: &Alerts,
    scope: &Scope,
    id: &str,
    attr: &str,
    timerel: TimeRel,
) -> Result<(Vec<Attribute>, bool), Error> {
    match alerts
        .hub()
        .temporal_entity(scope, id, &observed(attr, timerel, MAX_INSTANCES))
        .await?
    {
        TemporalAnswer::Instances {
            mut entity,
            partial,
            ..
        } => Ok((
            entity
                .attrs
                .remove(attr)
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.attribute)
                .collect(),
            !partial.is_empty(),
        )),
        TemporalAnswer::Aggregated { .. } => Ok((vec![], false)),
    }
}

fn time_of(a: &Attribute) -> DateTime<Utc> {
    a.observed_at.unwrap_or(a.modified_at)
}

/// Takes one alert from what is left of a backtest's allowance.
fn take_one(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// When the entity of a staleness rule (stale `after` a reading) went stale between
/// its reading at `previous` and `until`, if it did.
fn stale_at(
    after: Option<TimeDelta>,
    previous: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let (after, previous) = (after?, previous?);
    (until - previous >= after).then_some(previous + after)
}

/// Runs the rule over one entity's history: the alerts it would have raised, as many
/// as `left` allows (shared by the entities of a backtest).
async fn entity_history(
    alerts: &Alerts,
    scope: &Scope,
    rule: &Rule,
    current: &Entity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    left: &AtomicUsize,
) -> Result<Vec<Raised>, Error> {
    let mut raised = Vec::new();
    let out = &mut raised;
    let (attr, other) = driving(rule)?;
    // The other attribute of a comparison (an alarm level) changes rarely: its
    // instances up to the end, and its value before the first is the current one.
    let others = match &other {
        Some(o) => {
            page(alerts, scope, &current.id, o, TimeRel::Before(to))
                .await?
                .0
        }
        None => vec![],
    };
    let window = match &rule.condition {
        Condition::Rate { window, .. } => TimeDelta::from_std(*window).ok(),
        _ => None,
    };
    let stale_after = match &rule.condition {
        Condition::Stale { after, .. } => TimeDelta::from_std(*after).ok(),
        _ => None,
    };
    let mut incident = Incident::idle();
    let mut open: Option<usize> = None;
    let mut recent: VecDeque<(DateTime<Utc>, f64)> = VecDeque::new();
    let mut entity = current.clone();
    let mut cursor = from;
    let mut previous: Option<DateTime<Utc>> = None;
    let id = |since| alert::alert_id(&rule.spec.id, &current.id, since);
    let mut record = |actions: Vec<Action>, entity: &Entity, out: &mut Vec<Raised>| {
        for a in actions {
            match a {
                Action::Fire { since, at, obs } => {
                    if take_one(left) {
                        open = Some(out.len());
                        out.push(Raised {
                            entity: current.id.clone(),
                            since,
                            fired: at,
                            resolved: None,
                            value: obs.value.clone(),
                            threshold: obs.threshold.clone(),
                            message: (
                                alert::message(rule, entity, &obs, "vi"),
                                alert::message(rule, entity, &obs, "en"),
                            ),
                        });
                    }
                }
                Action::Resolve { at, .. } => {
                    if let Some(i) = open.take()
                        && let Some(r) = out.get_mut(i)
                    {
                        r.resolved = Some(at);
                    }
                }
            }
        }
    };
    // The rule evaluated on the entity as it is at `at`, and what it did recorded.
    let mut evaluate = |entity: &Entity, at: DateTime<Utc>, start: Option<f64>| {
        let obs = eval::observe(rule, entity, at, start);
        let actions = eval::step(rule, &mut incident, obs, at, id);
        record(actions, entity, out);
    };
    loop {
        let (instances, more) = page(
            alerts,
            scope,
            &current.id,
            &attr,
            TimeRel::Between(cursor, to),
        )
        .await?;
        for inst in instances {
            let t = time_of(&inst);
            cursor = t + TimeDelta::milliseconds(1);
            // A gap in the readings, for a staleness rule.
            if let Some(at) = stale_at(stale_after, previous, t) {
                evaluate(&entity, at, None);
            }
            previous = Some(t);
            // The entity as it was at t.
            if let Some(o) = &other {
                let latest = others.iter().rev().find(|a| time_of(a) <= t);
                if let Some(a) = latest {
                    entity.attrs.insert(o.clone(), vec![a.clone()]);
                }
            }
            entity.attrs.insert(attr.clone(), vec![inst.clone()]);
            let start = match (window, eval::number(&inst)) {
                (Some(w), Some(v)) => {
                    recent.push_back((t, v));
                    while recent.front().is_some_and(|(rt, _)| *rt < t - w) {
                        recent.pop_front();
                    }
                    recent.front().map(|(_, v)| *v)
                }
                _ => None,
            };
            evaluate(&entity, t, start);
        }
        if !more {
            break;
        }
    }
    // The end of the period: timers that fell due, and a last stale stretch.
    if let Some(at) = stale_at(stale_after, previous, to) {
        evaluate(&entity, at, None);
    }
    if let Some(a) = eval::advance(rule, &mut incident, to, id) {
        record(vec![a], &entity, out);
    }
    Ok(raised)
}

/// Runs a backtest and reports the alerts the rule would have raised, in time order.
pub async fn run(alerts: &Alerts, scope: &Scope, req: BacktestRequest) -> Result<Value, Error> {
    let started = std::time::Instant::now();
    let rule = req.rule.compile(&scope.tenant)?;
    driving(&rule)?;
    let mut query = rule.query.clone();
    query.limit = MAX_ENTITIES;
    let page = match alerts.hub().query(scope, query).await {
        Ok(p) => p,
        Err(e) if e.kind == ErrorKind::NonExistentTenant => store::QueryPage::default(),
        Err(e) => return Err(e),
    };
    let left = AtomicUsize::new(MAX_ALERTS);
    let entities = page.entities.len();
    let (rule, left) = (&rule, &left);
    let histories: Vec<Result<Vec<Raised>, Error>> =
        futures_util::stream::iter(page.entities)
            .map(|e| async move {
                entity_history(alerts, scope, rule, &e, req.from, req.to, left).await
            })
            .buffered(ENTITIES_AT_ONCE)
            .collect()
            .await;
    let mut raised = Vec::new();
    for h in histories {
        raised.extend(h?);
    }
    raised.sort_by(|a, b| a.fired.cmp(&b.fired).then_with(|| a.entity.cmp(&b.entity)));
    let items: Vec<Value> = raised
        .iter()
        .map(|r| {
            json!({
                "entity": r.entity,
                "since": ngsi::entity::format_time(&r.since),
                "firedAt": ngsi::entity::format_time(&r.fired),
                "resolvedAt": r.resolved.as_ref().map(ngsi::entity::format_time),
                "value": r.value,
                "threshold": r.threshold,
                "description": {"vi": r.message.0, "en": r.message.1},
            })
        })
        .collect();
    Ok(json!({
        "rule": rule.spec.id,
        "from": ngsi::entity::format_time(&req.from),
        "to": ngsi::entity::format_time(&req.to),
        "entities": entities,
        "count": items.len(),
        "truncated": items.len() >= MAX_ALERTS || entities >= MAX_ENTITIES,
        "alerts": items,
        "tookMs": started.elapsed().as_millis() as u64,
    }))
}
