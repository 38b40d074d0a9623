//! The temporal operations of the `Hub`: an entity's history read as instances or
//! aggregated per period, history provided by clients, and history edited.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::temporal::{
    AggrMethod, AggregatedAttr, Bucket, Instance, TemporalEntity, TemporalFormat, TemporalParams,
    TimeProperty, TimeRel, buckets, buckets_through,
};
use ngsi::{AttrKind, Attribute, Entity, Error};
use serde_json::Value;
use store::history::{deletion_uri, instance_number, instance_uri};
use store::{
    AggregateQuery, Applied, Change, EntityQuery, HistoryEdit, HistoryPage, HistoryQuery,
    PeriodStats, TimeField, TimeRange, WriteOp,
};

use crate::service::{Hub, Scope, rule_write, store_error};

/// Most instances of one attribute in one response, unless configured otherwise
/// (`HttpConfig::temporal_page_instances`); more make a partial answer.
pub const MAX_INSTANCES: usize = 1_000;
/// The largest page a configuration may set: it bounds what one read holds in memory.
pub const MAX_PAGE_INSTANCES: usize = 10_000;
/// Which end of an entity's history [`EntityHistory::edge_time`] finds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    First,
    Last,
}

/// Most periods of one aggregation.
pub const MAX_PERIODS: usize = 10_000;
/// Entities of one temporal query whose history is read at the same time.
const CONCURRENT_ANSWERS: usize = 4;
/// Most instances one request may provide.
pub const MAX_PROVIDED_INSTANCES: usize = 100_000;
/// Most instances one [`Hub::add_past_history`] writes.
pub const MAX_PAST_INSTANCES: usize = 2_000_000;

/// What a temporal read asks for beside the entity: the parameters, the attributes
/// (expanded; empty for all) and the page size per attribute.
#[derive(Debug, Clone)]
pub struct TemporalRequest {
    pub params: TemporalParams,
    pub attrs: Vec<String>,
    pub limit: usize,
}

/// One entity's temporal answer.
pub enum TemporalAnswer {
    Instances {
        entity: TemporalEntity,
        /// The attributes that had more instances than one answer holds.
        partial: BTreeSet<String>,
        /// When the answer (of which this entity is part) is partial, the part of the
        /// requested time range it covers.
        page: Option<PageRange>,
    },
    Aggregated {
        id: String,
        types: Vec<String>,
        attrs: BTreeMap<String, Vec<AggregatedAttr>>,
    },
}

/// The part of the requested time range a partial answer covers (clause 6.3.10):
/// from `start` to `end` in the direction of the paging, forwards in time, or
/// backwards with `lastN` (then `start` is the later time). Every attribute of the
/// answer is whole within it; the next page starts past `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `lastN`, when asked for.
    pub size: Option<u64>,
}

impl TemporalAnswer {
    /// Whether it holds no attribute at all.
    pub fn is_empty(&self) -> bool {
        match self {
            TemporalAnswer::Instances { entity, .. } => entity.attrs.is_empty(),
            TemporalAnswer::Aggregated { attrs, .. } => attrs.is_empty(),
        }
    }
}

fn time_field(p: TimeProperty) -> TimeField {
    match p {
        TimeProperty::ObservedAt => TimeField::Observed,
        // An instance is created when written, and modified when replaced.
        TimeProperty::CreatedAt | TimeProperty::ModifiedAt => TimeField::Written,
        TimeProperty::DeletedAt => TimeField::Deleted,
    }
}

fn time_range(rel: Option<&TimeRel>) -> TimeRange {
    let after = |t: DateTime<Utc>| t.checked_add_signed(TimeDelta::milliseconds(1));
    match rel {
        None => TimeRange::default(),
        Some(TimeRel::Before(t)) => TimeRange {
            from: None,
            to: Some(*t),
        },
        // `after` is strict, and times are kept to the millisecond.
        Some(TimeRel::After(t)) => TimeRange {
            from: after(*t),
            to: None,
        },
        Some(TimeRel::Between(a, b)) => TimeRange {
            from: Some(*a),
            to: Some(*b),
        },
    }
}

/// A stored number as JSON: integral values as integers.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// The value of `method` over one period's statistics (see `ngsi::temporal::aggregate`
/// for the definitions: numeric methods ignore non-numbers; stddev is the sample one).
fn method_value(method: AggrMethod, s: &PeriodStats) -> Value {
    let n = s.numbers as f64;
    match method {
        AggrMethod::TotalCount => Value::from(s.total),
        AggrMethod::DistinctCount => Value::from(s.distinct),
        _ if s.numbers == 0 => Value::Null,
        AggrMethod::Sum => number(s.sum),
        AggrMethod::SumSq => number(s.sum_sq),
        AggrMethod::Avg => {
            serde_json::Number::from_f64(s.sum / n).map_or(Value::Null, Value::Number)
        }
        AggrMethod::Min => s.min.map_or(Value::Null, number),
        AggrMethod::Max => s.max.map_or(Value::Null, number),
        AggrMethod::StdDev if s.numbers < 2 => Value::Null,
        AggrMethod::StdDev => {
            let variance = ((s.sum_sq - s.sum * s.sum / n) / (n - 1.0)).max(0.0);
            serde_json::Number::from_f64(variance.sqrt()).map_or(Value::Null, Value::Number)
        }
    }
}

/// The history of one entity that a temporal request reads.
#[derive(Clone, Copy)]
struct EntityHistory<'a> {
    hub: &'a Hub,
    scope: &'a Scope,
    entity: &'a Entity,
    req: &'a TemporalRequest,
}

impl EntityHistory<'_> {
    async fn answer(self) -> Result<TemporalAnswer, Error> {
        let p = &self.req.params;
        if p.format == TemporalFormat::AggregatedValues {
            return self.aggregated().await;
        }
        let page = self
            .history(HistoryQuery {
                range: time_range(p.timerel.as_ref()),
                last_n: p.last_n,
                limit: self.req.limit.clamp(1, MAX_PAGE_INSTANCES),
                ..self.query(time_field(p.time_property))
            })
            .await?;
        let mut attrs = BTreeMap::new();
        for (name, instances) in page.attrs {
            let list: Vec<Instance> = instances
                .into_iter()
                .map(|i| Instance {
                    instance_id: match i.deleted_at {
                        Some(_) => deletion_uri(i.id),
                        None => instance_uri(i.id),
                    },
                    attribute: i.attribute,
                    deleted_at: i.deleted_at,
                })
                .collect();
            attrs.insert(name, list);
        }
        Ok(TemporalAnswer::Instances {
            entity: TemporalEntity {
                id: self.entity.id.clone(),
                types: self.entity.types.clone(),
                attrs,
                emptied: BTreeMap::new(),
            },
            partial: page.partial,
            page: None,
        })
    }

    async fn aggregated(self) -> Result<TemporalAnswer, Error> {
        let (entity, p) = (self.entity, &self.req.params);
        let field = time_field(p.time_property);
        let mut range = time_range(p.timerel.as_ref());
        // Periods start exactly at `timeAt`, also for `after`: a daily aggregate from
        // midnight puts a reading taken at the next midnight in the next day.
        if let Some(TimeRel::After(t)) = p.timerel.as_ref() {
            range.from = Some(*t);
        }
        // An open start is the first instance; an open end is just past the last one.
        let start = match range.from {
            Some(t) => Some(t),
            None => self.edge_time(field, Edge::First).await?,
        };
        let answer = |attrs| TemporalAnswer::Aggregated {
            id: entity.id.clone(),
            types: entity.types.clone(),
            attrs,
        };
        let Some(start) = start else {
            return Ok(answer(BTreeMap::new()));
        };
        let periods = match range.to {
            Some(end) if end <= start => return Ok(answer(BTreeMap::new())),
            Some(end) => buckets(start, end, p.aggr_period.as_ref(), MAX_PERIODS)?,
            None => match self.edge_time(field, Edge::Last).await? {
                Some(last) if last >= start => {
                    buckets_through(start, last, p.aggr_period.as_ref(), MAX_PERIODS)?
                }
                _ => return Ok(answer(BTreeMap::new())),
            },
        };
        let stats = self
            .hub
            .store()
            .aggregate(
                &self.scope.tenant,
                AggregateQuery {
                    entity_id: entity.id.clone(),
                    attrs: self.req.attrs.clone(),
                    field,
                    periods,
                    distinct: p.aggr_methods.contains(&AggrMethod::DistinctCount),
                },
            )
            .await
            .map_err(store_error)?
            .unwrap_or_default();
        let mut attrs = BTreeMap::new();
        for (name, mut by_dataset) in stats {
            // Each datasetId is aggregated apart: the filter keeps those asked for.
            if let Some(datasets) = &p.datasets {
                by_dataset.retain(|d, _| datasets.contains(d));
                if by_dataset.is_empty() {
                    continue;
                }
            }
            let kind_of = |dataset: &Option<String>| {
                entity
                    .attrs
                    .get(&name)
                    .and_then(|v| v.iter().find(|a| &a.dataset_id == dataset))
                    .map_or(AttrKind::Property, |a| a.kind)
            };
            let list: Vec<AggregatedAttr> = by_dataset
                .into_iter()
                .map(|(dataset_id, periods)| AggregatedAttr {
                    kind: kind_of(&dataset_id),
                    dataset_id,
                    buckets: periods
                        .iter()
                        // Periods without an instance say nothing; they are left out.
                        .filter(|s| s.total > 0)
                        .map(|s| Bucket {
                            start: s.start,
                            end: s.end,
                            values: p
                                .aggr_methods
                                .iter()
                                .map(|m| (*m, method_value(*m, s)))
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            attrs.insert(name, list);
        }
        Ok(answer(attrs))
    }

    /// The time of the earliest (or latest) instance among the attributes asked for.
    async fn edge_time(self, field: TimeField, edge: Edge) -> Result<Option<DateTime<Utc>>, Error> {
        let page = self
            .history(HistoryQuery {
                last_n: (edge == Edge::Last).then_some(1),
                limit: 1,
                ..self.query(field)
            })
            .await?;
        let times = page
            .attrs
            .values()
            .filter_map(|v| v.first())
            .map(|i| match field {
                TimeField::Observed => i.attribute.observed_at.unwrap_or(i.attribute.modified_at),
                TimeField::Written => i.attribute.modified_at,
                TimeField::Deleted => i.deleted_at.unwrap_or(i.attribute.modified_at),
            });
        Ok(match edge {
            Edge::First => times.min(),
            Edge::Last => times.max(),
        })
    }

    /// A history query of the entity's attributes and datasets the request asks for,
    /// on the time `field`.
    fn query(self, field: TimeField) -> HistoryQuery {
        HistoryQuery {
            entity_id: self.entity.id.clone(),
            attrs: self.req.attrs.clone(),
            field,
            datasets: self.req.params.datasets.clone(),
            ..Default::default()
        }
    }

    async fn history(self, query: HistoryQuery) -> Result<HistoryPage, Error> {
        Ok(self
            .hub
            .store()
            .history(&self.scope.tenant, query)
            .await
            .map_err(store_error)?
            .unwrap_or_default())
    }
}

impl Hub {
    /// GET /temporal/entities/{id}.
    pub async fn temporal_entity(
        &self,
        scope: &Scope,
        id: &str,
        req: &TemporalRequest,
    ) -> Result<TemporalAnswer, Error> {
        let entity = self.get_entity(scope, id).await?;
        let answer = self.answer(scope, &entity, req).await?;
        // Attributes the entity has not, and of which nothing is left in the history
        // asked for, are not found (clause 5.7.3); one without instances in the range
        // is an empty answer.
        if !req.attrs.is_empty()
            && !req.attrs.iter().any(|a| entity.attrs.contains_key(a))
            && answer.is_empty()
        {
            return Err(Error::not_found(
                "the entity has none of the requested attributes",
            ));
        }
        let mut answers = [answer];
        cut_to_one_range(&mut answers, &req.params);
        let [answer] = answers;
        Ok(answer)
    }

    /// GET /temporal/entities and POST /temporalOperations/query: the entities a query
    /// selects, each with its history.
    pub async fn temporal_query(
        &self,
        scope: &Scope,
        query: EntityQuery,
        req: &TemporalRequest,
    ) -> Result<(Vec<TemporalAnswer>, Option<u64>), Error> {
        use futures_util::StreamExt as _;
        let page = self.query(scope, query).await?;
        // Each entity's history is read on a reader connection of its own; a few at
        // once keep both cores busy on a long aggregation.
        let reads: Vec<_> = page
            .entities
            .iter()
            .map(|entity| self.answer(scope, entity, req))
            .collect();
        let answers: Vec<Result<TemporalAnswer, Error>> = futures_util::stream::iter(reads)
            .buffered(CONCURRENT_ANSWERS)
            .collect()
            .await;
        let mut out = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
        // A time restriction selects the entities with history in it: one with none
        // there is not part of the answer (the count is of the entities the query
        // matched before that).
        if req.params.timerel.is_some() {
            out.retain(|a| !a.is_empty());
        }
        cut_to_one_range(&mut out, &req.params);
        Ok((out, page.count))
    }

    /// One entity's answer to a temporal request.
    async fn answer(
        &self,
        scope: &Scope,
        entity: &Entity,
        req: &TemporalRequest,
    ) -> Result<TemporalAnswer, Error> {
        let history = EntityHistory {
            hub: self,
            scope,
            entity,
            req,
        };
        history.answer().await
    }

    /// POST /temporal/entities and POST /temporal/entities/{id}/attrs: instances a
    /// client provides. The entity is created when missing (types required); its current
    /// state takes each attribute's latest instance, unless the current one is newer.
    /// Returns whether the entity was created.
    pub async fn add_history(
        &self,
        scope: &Scope,
        id: &str,
        types: Vec<String>,
        instances: Vec<(String, Attribute)>,
        must_exist: bool,
    ) -> Result<bool, Error> {
        if instances.len() > MAX_PROVIDED_INSTANCES {
            return Err(Error::bad_data(format!(
                "{} instances: at most {MAX_PROVIDED_INSTANCES} in one request",
                instances.len()
            )));
        }
        let latest = latest_instances(&instances);
        let owned = id.to_string();
        let op = rule_write(id, move |before, now| {
            ngsi::entity::change::add_latest(before, &owned, types, latest, must_exist, now)
        })
        .with_history(instances);
        let results = self.commit(scope, vec![op]).await?;
        match results.into_iter().next() {
            Some(r) => r.map(|a| a.created).map_err(store_error),
            None => Err(Error::new(
                ngsi::ErrorKind::InternalError,
                "the store answered no result",
            )),
        }
    }

    /// Past instances of existing entities, written in one store write (one
    /// transaction on SQLite), each entity's current state left exactly as it is: a
    /// bulk load of history (the demo's year of readings). Since no entity changes,
    /// nothing is published on the change feed and no subscription fires. Returns one
    /// result per entity, in order; an entity that does not exist is refused.
    pub async fn add_past_history(
        &self,
        scope: &Scope,
        entries: Vec<(String, Vec<(String, Attribute)>)>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let total: usize = entries.iter().map(|(_, i)| i.len()).sum();
        if total > MAX_PAST_INSTANCES {
            return Err(Error::bad_data(format!(
                "{total} instances: at most {MAX_PAST_INSTANCES} in one write"
            )));
        }
        let ops = entries
            .into_iter()
            .map(|(id, instances)| {
                let owned = id.clone();
                WriteOp::new(id, move |current| match current {
                    Some(e) => Ok((Change::Put(e.into()), Applied::default())),
                    None => Err(Error::not_found(format!("entity {owned} not found"))),
                })
                .with_history(instances)
            })
            .collect();
        let results = self.commit(scope, ops).await?;
        Ok(results
            .into_iter()
            .map(|r| r.map(|_| ()).map_err(store_error))
            .collect())
    }

    /// DELETE /temporal/entities/{id}/attrs/{attrId}: the attribute's history (of one
    /// dataset, or all), and the attribute itself.
    pub async fn delete_attr_history(
        &self,
        scope: &Scope,
        id: &str,
        name: &str,
        dataset_id: Option<String>,
        delete_all: bool,
    ) -> Result<(), Error> {
        self.require_unlimited_write(scope)?;
        self.require_tenant(scope).await?;
        // The current attribute goes too, when it is there; first, so that the record
        // of its deletion goes with the rest of its history.
        let removed = self
            .delete_attr(scope, id, name, dataset_id.clone(), delete_all)
            .await;
        let edit = HistoryEdit::DeleteAttribute {
            entity_id: id.to_string(),
            name: name.to_string(),
            dataset_id: (!delete_all).then_some(dataset_id),
        };
        let deleted = self.edit_history(scope, id, edit).await?;
        match removed {
            Ok(()) => Ok(()),
            Err(_) if deleted > 0 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// PATCH /temporal/entities/{id}/attrs/{attrId}/{instanceId} with the instance's
    /// `replacement`, or DELETE without one.
    pub async fn edit_instance(
        &self,
        scope: &Scope,
        id: &str,
        name: &str,
        instance_id: &str,
        replacement: Option<Attribute>,
    ) -> Result<(), Error> {
        let (entity_id, name, instance) =
            (id.to_string(), name.to_string(), instance(instance_id)?);
        let edit = match replacement {
            Some(attribute) => HistoryEdit::ReplaceInstance {
                entity_id,
                name,
                instance,
                attribute,
            },
            None => HistoryEdit::DeleteInstance {
                entity_id,
                name,
                instance,
            },
        };
        self.require_unlimited_write(scope)?;
        self.require_tenant(scope).await?;
        if self.edit_history(scope, id, edit).await? == 0 {
            return Err(Error::not_found(
                "no such instance of this attribute of this entity",
            ));
        }
        Ok(())
    }

    /// An edit of the history of the entity `id`, audited; how many instances it
    /// touched.
    async fn edit_history(&self, scope: &Scope, id: &str, edit: HistoryEdit) -> Result<u64, Error> {
        self.store()
            .edit_history_audited(
                &scope.tenant,
                edit,
                Some(self.audit_record(scope, vec![id.to_string()])),
            )
            .await
            .map_err(store_error)
    }
}

/// The time by which an instance is paged: its deletion, or the time property asked
/// for (`observedAt` falls back to when it was written, as the store orders it).
fn paging_time(i: &Instance, p: &TemporalParams) -> DateTime<Utc> {
    i.deleted_at
        .or_else(|| p.time_property.of(&i.attribute))
        .unwrap_or(i.attribute.modified_at)
}

/// Of `t` and `so_far` (when there is one), the one met first in the direction of the
/// paging: the earlier forwards, the later backwards.
fn first_along(so_far: Option<DateTime<Utc>>, t: DateTime<Utc>, backwards: bool) -> DateTime<Utc> {
    match so_far {
        None => t,
        Some(s) if backwards => s.max(t),
        Some(s) => s.min(t),
    }
}

/// When some attribute of the answers had more instances than one answer holds, cuts
/// every attribute of every answer to one time range, as clause 6.3.10 pages
/// temporal data: forwards, up to the last instance of the attribute that ends first;
/// backwards (`lastN`), down to the earliest instance of the attribute that starts
/// last. Every attribute is then whole in the range, and the next page, asked from its
/// end, misses nothing. An attribute left without instances is shown empty
/// (`TemporalEntity::emptied`): it has some past the range. The range starts where the request does (`timeAt`, or
/// `endTimeAt` backwards), else at the first instance in the paging direction; it is
/// recorded in each answer.
fn cut_to_one_range(answers: &mut [TemporalAnswer], p: &TemporalParams) {
    let backwards = p.last_n.is_some();
    let mut cut: Option<DateTime<Utc>> = None;
    for answer in answers.iter() {
        let TemporalAnswer::Instances {
            entity, partial, ..
        } = answer
        else {
            continue;
        };
        for name in partial {
            let Some(list) = entity.attrs.get(name) else {
                continue;
            };
            // Oldest first: the far end of the page is the last one forwards, the first
            // one backwards.
            let far = if backwards { list.first() } else { list.last() };
            if let Some(t) = far.map(|i| paging_time(i, p)) {
                cut = Some(first_along(cut, t, backwards));
            }
        }
    }
    let Some(cut) = cut else {
        return;
    };
    let mut near: Option<DateTime<Utc>> = None;
    for answer in answers.iter_mut() {
        let TemporalAnswer::Instances { entity, .. } = answer else {
            continue;
        };
        for (name, list) in entity.attrs.iter_mut() {
            let kind = list.first().map(|i| i.attribute.kind);
            list.retain(|i| {
                let t = paging_time(i, p);
                if backwards { t >= cut } else { t <= cut }
            });
            if let (true, Some(kind)) = (list.is_empty(), kind) {
                entity.emptied.insert(name.clone(), kind);
            }
            let first = if backwards { list.last() } else { list.first() };
            if let Some(t) = first.map(|i| paging_time(i, p)) {
                near = Some(first_along(near, t, backwards));
            }
        }
    }
    let asked = match (p.timerel, backwards) {
        (Some(TimeRel::Before(t)), true) | (Some(TimeRel::Between(_, t)), true) => Some(t),
        (Some(TimeRel::After(t)), false) | (Some(TimeRel::Between(t, _)), false) => Some(t),
        _ => None,
    };
    let range = PageRange {
        start: asked.or(near).unwrap_or(cut),
        end: cut,
        size: p.last_n,
    };
    for answer in answers.iter_mut() {
        if let TemporalAnswer::Instances { page, .. } = answer {
            *page = Some(range);
        }
    }
}

fn instance(uri: &str) -> Result<i64, Error> {
    // An instanceId is a URI: anything else is a bad request, not a missing instance.
    if !ngsi::entity::is_uri(uri) {
        return Err(Error::bad_data(format!("{uri:?} is not a URI")));
    }
    instance_number(uri)
        .ok_or_else(|| Error::not_found(format!("{uri:?} is not an instance of this hub")))
}

/// The latest instance of each (attribute, datasetId) among those provided.
fn latest_instances(instances: &[(String, Attribute)]) -> Vec<(String, Attribute)> {
    let mut latest: BTreeMap<(String, Option<String>), &Attribute> = BTreeMap::new();
    for (name, inst) in instances {
        let key = (name.clone(), inst.dataset_id.clone());
        let newer = latest
            .get(&key)
            .is_none_or(|old| inst.observed_at >= old.observed_at);
        if newer {
            latest.insert(key, inst);
        }
    }
    latest
        .into_iter()
        .map(|((name, _), inst)| (name, inst.clone()))
        .collect()
}
