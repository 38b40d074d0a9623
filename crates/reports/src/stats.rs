//! Statistics of reports per agency, commune, category or month: received, handled %,
//! on time %, overdue, median time to first response and to resolution, satisfaction %
//! (ratings of 4 or 5 among those rated). Pure: a list of [`Fact`]s in, figures out.
//! A fact is the little of a report the figures need, so that a province's year of
//! reports stays in memory ([`crate::service::Reports::stats`] keeps them, current
//! from the hub's change feed).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::local;
use crate::model::{Report, Stage};

/// What to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Agency,
    Commune,
    Category,
    Month,
    All,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "agency" => By::Agency,
            "commune" => By::Commune,
            "category" => By::Category,
            "month" => By::Month,
            "all" => By::All,
            _ => return None,
        })
    }

    fn key(self, f: &Fact) -> String {
        match self {
            By::Agency => f.tested.agency.clone(),
            By::Commune => f
                .commune
                .clone()
                .unwrap_or_else(|| "(chưa xác định)".into()),
            By::Category => f.tested.service_code.clone(),
            By::Month => f
                .tested
                .requested
                .with_timezone(&local())
                .format("%Y-%m")
                .to_string(),
            By::All => "all".into(),
        }
    }
}

/// What the figures and the lists need of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub(crate) service_request_id: String,
    /// What the lists' filters test.
    pub(crate) tested: Tested,
    pub(crate) commune: Option<String>,
    handled: bool,
    on_time: Option<bool>,
    first_response: Option<DateTime<Utc>>,
    resolved: Option<DateTime<Utc>>,
    rating: Option<u8>,
    /// The change-feed sequence of the state it was taken from (0: read from the store).
    pub(crate) seq: u64,
    /// The report as Open311 lists it (shared: a copy of the facts does not copy it).
    pub(crate) open311: Arc<crate::open311::Request>,
}

impl Fact {
    pub fn of(r: &Report) -> Fact {
        Fact {
            service_request_id: r.service_request_id.clone(),
            tested: Tested::of(r),
            commune: r.commune_name.clone(),
            handled: r.stage.is_handled(),
            on_time: r.on_time(),
            first_response: r.first_response_at,
            resolved: r.resolved_at,
            rating: r.rating,
            seq: 0,
            open311: Arc::new(crate::open311::Request::of(r)),
        }
    }
}

/// What the lists' filters test of a report: kept in its fact, and taken alone from
/// a report read from the store to test it again (without building a whole fact).
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    /// (longitude, latitude)
    pub(crate) location: Option<(f64, f64)>,
    pub(crate) requested: DateTime<Utc>,
    pub(crate) urgent: bool,
    pub(crate) stage: Stage,
    open: bool,
    due: DateTime<Utc>,
    /// Open311's `open` or `closed`.
    pub(crate) status: String,
    pub(crate) service_code: String,
    pub(crate) agency: String,
    pub(crate) commune_code: Option<String>,
}

impl Tested {
    pub fn of(r: &Report) -> Tested {
        Tested {
            location: r.location.map(|p| (p.lon(), p.lat())),
            requested: r.requested_datetime,
            urgent: r.urgent,
            stage: r.stage,
            open: r.stage.is_open(),
            due: r.due(),
            status: r.status.clone(),
            service_code: r.service_code.clone(),
            agency: r.agency_responsible.clone(),
            commune_code: r.commune_code.clone(),
        }
    }

    /// Open and past its deadline at `now` (as [`Report::is_overdue`]).
    pub(crate) fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.open && now > self.due
    }
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub key: String,
    pub received: u64,
    pub handled: u64,
    pub handled_pct: Option<f64>,
    /// Of the handled, those answered by their deadline.
    pub on_time: u64,
    pub on_time_pct: Option<f64>,
    /// Open and past their deadline now.
    pub overdue: u64,
    pub median_first_response_hours: Option<f64>,
    pub median_resolution_hours: Option<f64>,
    pub rated: u64,
    pub satisfied: u64,
    pub satisfaction_pct: Option<f64>,
    pub urgent: u64,
}

fn pct(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| (n as f64 * 1000.0 / d as f64).round() / 10.0)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((m * 10.0).round() / 10.0)
}

fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds() as f64 / 3600.0
}

/// Figures per group, of the reports received in `[from, to]`, at `now`.
pub fn compute<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    by: By,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Figures> {
    let mut groups: BTreeMap<String, Vec<&Fact>> = BTreeMap::new();
    for r in facts {
        if from.is_some_and(|f| r.tested.requested < f)
            || to.is_some_and(|t| r.tested.requested > t)
        {
            continue;
        }
        groups.entry(by.key(r)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(key, rs)| {
            let received = rs.len() as u64;
            let handled: Vec<&&Fact> = rs.iter().filter(|r| r.handled).collect();
            let on_time = handled.iter().filter(|r| r.on_time == Some(true)).count() as u64;
            let rated: Vec<u8> = rs.iter().filter_map(|r| r.rating).collect();
            let satisfied = rated.iter().filter(|&&x| x >= 4).count() as u64;
            Figures {
                key,
                received,
                handled: handled.len() as u64,
                handled_pct: pct(handled.len() as u64, received),
                on_time,
                on_time_pct: pct(on_time, handled.len() as u64),
                overdue: rs.iter().filter(|r| r.tested.is_overdue(now)).count() as u64,
                median_first_response_hours: median(
                    rs.iter()
                        .filter_map(|r| r.first_response.map(|t| hours(r.tested.requested, t)))
                        .collect(),
                ),
                median_resolution_hours: median(
                    rs.iter()
                        .filter_map(|r| r.resolved.map(|t| hours(r.tested.requested, t)))
                        .collect(),
                ),
                rated: rated.len() as u64,
                satisfied,
                satisfaction_pct: pct(satisfied, rated.len() as u64),
                urgent: rs.iter().filter(|r| r.tested.urgent).count() as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentages() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(pct(2, 3), Some(66.7));
        assert_eq!(pct(1, 0), None);
    }
}
