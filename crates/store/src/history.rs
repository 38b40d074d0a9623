//! The temporal history: every attribute instance the hub has written, kept beside the
//! current state and read by time range, last N, or aggregated per period.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ngsi::Attribute;

use crate::{StoreError, StoreResult};

/// Which time of an instance a history query selects and orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeField {
    /// `observedAt` when the instance has one, else when it was written.
    #[default]
    Observed,
    /// When the instance was written (its `modifiedAt`, which is also its `createdAt`).
    Written,
    /// When the attribute instance was deleted: selects the records of deletions, and
    /// only them (an instance never deleted has no such time).
    Deleted,
}

/// A half-open time range `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The history of one entity's attributes, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub entity_id: String,
    /// Expanded attribute names; empty for all.
    pub attrs: Vec<String>,
    pub field: TimeField,
    pub range: TimeRange,
    /// Only the last N instances of each attribute in the range (returned oldest first).
    pub last_n: Option<u64>,
    /// At most this many instances per attribute in one page.
    pub limit: usize,
    /// Only the instances of these datasetIds (None: the default instance); None for
    /// all.
    pub datasets: Option<Vec<Option<String>>>,
}

/// One stored instance and its id (`instanceId` is built from it), or the record of a
/// deletion: then `deleted_at` is its time, `id` its number among the deletions, and
/// the attribute NGSI-LD Null ([`ngsi::entity::deleted_instance`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInstance {
    pub id: i64,
    pub attribute: Attribute,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The record of a deleted attribute instance, kept in the history: a write that
/// leaves an entity without an instance (name and datasetId) it had records one, timed
/// by the write.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// Expanded attribute name.
    pub name: String,
    pub dataset_id: Option<String>,
    pub kind: ngsi::AttrKind,
    pub at: DateTime<Utc>,
}

impl Deletion {
    /// The instance the history shows for it.
    pub fn instance(&self) -> Attribute {
        ngsi::entity::deleted_instance(self.kind, self.dataset_id.clone(), self.at)
    }
}

/// A page of one entity's history.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Instances per expanded attribute name, oldest first.
    pub attrs: BTreeMap<String, Vec<StoredInstance>>,
    /// Whether some attribute had more instances than the page holds.
    pub truncated: bool,
    /// The attributes that had more instances than the page holds.
    pub partial: std::collections::BTreeSet<String>,
}

/// What each aggregation period of one attribute holds; the methods are computed from
/// these (stddev from count, sum and sum of squares).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeriodStats {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Instances in the period.
    pub total: u64,
    /// Distinct values among them.
    pub distinct: u64,
    /// Instances whose value is a number, and their sum, sum of squares, min and max.
    pub numbers: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl HistoryQuery {
    /// The order of a page's read (backwards for `lastN`) and how many rows it takes
    /// of each attribute: one more than the page holds tells whether there are more.
    pub(crate) fn order_and_take(&self) -> (&'static str, usize) {
        let limit = self.limit.max(1);
        match self.last_n {
            Some(n) => (
                "DESC",
                usize::try_from(n).unwrap_or(usize::MAX).min(limit + 1),
            ),
            None => ("ASC", limit + 1),
        }
    }
}

impl StoredInstance {
    /// An instance from its stored columns, the inverse of [`instance_columns`]: its
    /// document, or for a plain numeric Property the columns alone. It reads as
    /// created and modified when written (a replaced instance keeps its new time).
    pub(crate) fn from_columns(
        id: i64,
        t: DateTime<Utc>,
        written: DateTime<Utc>,
        num: Option<f64>,
        unit: Option<String>,
        doc: Option<&str>,
    ) -> StoreResult<StoredInstance> {
        let mut attribute = match doc {
            Some(doc) => serde_json::from_str::<Attribute>(doc)
                .map_err(|e| StoreError::Other(format!("corrupt history instance {id}: {e}")))?,
            None => Attribute {
                kind: ngsi::AttrKind::Property,
                value: num.map_or(serde_json::Value::Null, number_value),
                dataset_id: None,
                observed_at: Some(t),
                unit_code: unit,
                object_type: None,
                created_at: written,
                modified_at: written,
                sub_attrs: BTreeMap::new(),
            },
        };
        attribute.created_at = written;
        attribute.modified_at = written;
        Ok(StoredInstance {
            id,
            attribute,
            deleted_at: None,
        })
    }

    /// The record of a deletion at `at`, from its stored document.
    pub(crate) fn deletion(id: i64, at: DateTime<Utc>, doc: &str) -> StoreResult<StoredInstance> {
        let attribute = serde_json::from_str::<Attribute>(doc)
            .map_err(|e| StoreError::Other(format!("corrupt deletion record {id}: {e}")))?;
        Ok(StoredInstance {
            id,
            attribute,
            deleted_at: Some(at),
        })
    }

    /// The time a read by `field` orders it by (to the millisecond, as times are kept):
    /// an observation without `observedAt` is ordered by when it was written.
    pub fn time_millis(&self, field: TimeField) -> i64 {
        let a = &self.attribute;
        match field {
            TimeField::Observed => a.observed_at.unwrap_or(a.modified_at),
            TimeField::Written => a.modified_at,
            TimeField::Deleted => self.deleted_at.unwrap_or(a.modified_at),
        }
        .timestamp_millis()
    }
}

impl HistoryPage {
    /// Adds one attribute's instances as read for `q`: at most `q.limit` of them (the
    /// page is then marked truncated), oldest first (a `lastN` read comes newest first).
    /// A truncated page ends between two times, never within one: the instances at
    /// the time of the first one left out are left out with it, so that the next
    /// page, asked strictly past this one's end, has them all. (Only when more
    /// instances than a page holds share one time is the page cut within it.)
    pub(crate) fn add_attribute(
        &mut self,
        name: String,
        mut instances: Vec<StoredInstance>,
        q: &HistoryQuery,
    ) {
        let limit = q.limit.max(1);
        if instances.len() > limit {
            let next = instances[limit].time_millis(q.field);
            instances.truncate(limit);
            if let Some(last) = instances
                .iter()
                .rposition(|i| i.time_millis(q.field) != next)
            {
                instances.truncate(last + 1);
            }
            self.truncated = true;
            self.partial.insert(name.clone());
        }
        if q.last_n.is_some() {
            instances.reverse();
        }
        if !instances.is_empty() {
            self.attrs.insert(name, instances);
        }
    }
}

impl AggregateQuery {
    /// Its periods with nothing counted yet.
    pub(crate) fn empty_periods(&self) -> Vec<PeriodStats> {
        self.periods
            .iter()
            .map(|(start, end)| PeriodStats {
                start: *start,
                end: *end,
                ..Default::default()
            })
            .collect()
    }
}

/// Per-period statistics of one entity's attributes.
#[derive(Debug, Clone, Default)]
pub struct AggregateQuery {
    pub entity_id: String,
    /// Expanded attribute names; empty for all that have history.
    pub attrs: Vec<String>,
    pub field: TimeField,
    /// The periods, in order, each half-open, none overlapping the next (both
    /// backends bucket each instance by its period's start).
    pub periods: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whether to count distinct values (it reads each instance's row, not only the
    /// index, so it is left out when not asked for).
    pub distinct: bool,
}

/// A change to history alone.
#[derive(Debug, Clone)]
pub enum HistoryEdit {
    /// Delete an attribute's instances: of one dataset (`Some(None)` for the default
    /// one), or of all (`None`).
    DeleteAttribute {
        entity_id: String,
        name: String,
        dataset_id: Option<Option<String>>,
    },
    DeleteInstance {
        entity_id: String,
        name: String,
        instance: i64,
    },
    /// Replace an instance's content (value, observedAt, sub-attributes...).
    ReplaceInstance {
        entity_id: String,
        name: String,
        instance: i64,
        attribute: Attribute,
    },
}

/// How old one tenant's history may grow: instances timed before their cutoff are
/// purged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionCutoffs {
    /// For entities of no type in `by_type`; None keeps them whole.
    pub default: Option<DateTime<Utc>>,
    /// Per entity type (expanded). An entity of several such types keeps the longest
    /// history of them.
    pub by_type: Vec<(String, DateTime<Utc>)>,
}

/// What one step of a purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PurgeStep {
    pub deleted: u64,
    /// The entity row to continue after; None when the tenant is done.
    pub next: Option<i64>,
}

/// How a write records history.
#[derive(Debug, Clone, Default)]
pub enum HistoryWrite {
    /// Every attribute instance the write changes (the normal case).
    #[default]
    Changes,
    /// Exactly these instances (expanded name, instance), as a client provides history.
    Instances(Vec<(String, Attribute)>),
}

/// A JSON number from a stored double: integral values come back as integers.
pub(crate) fn number_value(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// The URI of a stored instance.
pub fn instance_uri(id: i64) -> String {
    format!("urn:ngsi-ld:Instance:{id}")
}

/// The URI of the record of a deletion: numbered apart from the instances, and not
/// one [`instance_number`] reads (a deletion is not edited through the temporal API).
pub fn deletion_uri(id: i64) -> String {
    format!("urn:ngsi-ld:Instance:deleted:{id}")
}

/// The stored id of an instance URI, if it is one of ours.
pub fn instance_number(uri: &str) -> Option<i64> {
    uri.strip_prefix("urn:ngsi-ld:Instance:")?
        .parse()
        .ok()
        .filter(|n: &i64| *n > 0)
}

/// The history columns of an instance, on every backend: (t, written, num, txt,
/// unit, doc), times in milliseconds since the epoch (PostgreSQL stores them as
/// timestamps).
pub type InstanceColumns = (
    i64,
    i64,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The stored columns of an instance. A plain numeric Property observed at a time (a
/// sensor's reading, most of the history) keeps no document: the columns say all of
/// it.
pub fn instance_columns(inst: &ngsi::Attribute) -> InstanceColumns {
    let written = inst.modified_at.timestamp_millis();
    let t = inst.observed_at.map_or(written, |o| o.timestamp_millis());
    let (num, txt) = match &inst.value {
        serde_json::Value::Number(n) => (n.as_f64(), None),
        serde_json::Value::String(s) => (None, Some(s.clone())),
        other => (None, Some(other.to_string())),
    };
    let plain = inst.kind == ngsi::AttrKind::Property
        && num.is_some()
        && inst.observed_at.is_some()
        && inst.dataset_id.is_none()
        && inst.object_type.is_none()
        && inst.sub_attrs.is_empty();
    let doc = if plain {
        None
    } else {
        serde_json::to_string(inst).ok()
    };
    (t, written, num, txt, inst.unit_code.clone(), doc)
}
