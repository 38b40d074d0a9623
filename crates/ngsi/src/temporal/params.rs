//! The query parameters of the temporal API (clause 4.11 and 5.7.3/5.7.4): `timerel`,
//! `timeAt`, `endTimeAt`, `timeproperty`, `lastN`, the `temporalValues` and
//! `aggregatedValues` options, `aggrMethods` and `aggrPeriodDuration`, checked together
//! and turned into one [`TemporalParams`].

use chrono::{DateTime, Utc};

use super::duration::IsoDuration;
use crate::entity::{Attribute, parse_time};
use crate::error::{Error, Result, shorten};

/// An ISO 8601 datetime is about 35 characters; anything much longer is not one.
const MAX_TIME_LEN: usize = 64;
/// `u64::MAX` has 20 digits.
const MAX_LAST_N_LEN: usize = 20;
/// More option words than any request needs.
const MAX_OPTIONS: usize = 32;
/// Room for every method, each a few times over.
const MAX_AGGR_METHODS_LEN: usize = 256;
const MAX_AGGR_METHODS: usize = 32;

/// Which time of an attribute instance the temporal query selects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeProperty {
    /// The default (clause 4.11): when the value was observed.
    #[default]
    ObservedAt,
    CreatedAt,
    ModifiedAt,
    /// When an attribute (instance) was deleted: only the records of deletions have it
    /// (clause 4.5.7), so a query by it answers the deletions alone.
    DeletedAt,
}

impl TimeProperty {
    /// The wire name, as `timeproperty` takes it.
    pub fn name(self) -> &'static str {
        match self {
            TimeProperty::ObservedAt => "observedAt",
            TimeProperty::CreatedAt => "createdAt",
            TimeProperty::ModifiedAt => "modifiedAt",
            TimeProperty::DeletedAt => "deletedAt",
        }
    }

    pub fn parse(text: &str) -> Option<TimeProperty> {
        Some(match text {
            "observedAt" => TimeProperty::ObservedAt,
            "createdAt" => TimeProperty::CreatedAt,
            "modifiedAt" => TimeProperty::ModifiedAt,
            "deletedAt" => TimeProperty::DeletedAt,
            _ => return None,
        })
    }

    /// The time this property gives an instance; None when it has no observedAt, and
    /// for deletedAt, which only the record of a deletion carries (beside its
    /// attribute).
    pub fn of(self, a: &Attribute) -> Option<DateTime<Utc>> {
        match self {
            TimeProperty::ObservedAt => a.observed_at,
            TimeProperty::CreatedAt => Some(a.created_at),
            TimeProperty::ModifiedAt => Some(a.modified_at),
            TimeProperty::DeletedAt => None,
        }
    }
}

/// The time relation of a temporal query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeRel {
    Before(DateTime<Utc>),
    After(DateTime<Utc>),
    /// From the first time (included) to the second (excluded); the second is later.
    Between(DateTime<Utc>, DateTime<Utc>),
}

impl TimeRel {
    /// Whether an instance at `t` is selected. `before` and `after` are strict, and
    /// `between` is half-open, `[timeAt, endTimeAt)`, so that consecutive windows
    /// (and the aggregation periods of [`super::buckets`]) never count an instance twice.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        match *self {
            TimeRel::Before(at) => t < at,
            TimeRel::After(at) => t > at,
            TimeRel::Between(at, end) => at <= t && t < end,
        }
    }
}

/// The temporal representation asked for (clauses 4.5.7, 4.5.9 and 4.5.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TemporalFormat {
    #[default]
    Normalized,
    /// `options=temporalValues`: the simplified temporal representation.
    TemporalValues,
    /// `options=aggregatedValues`: the aggregated temporal representation.
    AggregatedValues,
}

/// The aggregation methods of clause 4.5.19; [`super::aggregate`] defines each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggrMethod {
    TotalCount,
    DistinctCount,
    Sum,
    Avg,
    Min,
    Max,
    StdDev,
    SumSq,
}

impl AggrMethod {
    pub const ALL: [AggrMethod; 8] = [
        AggrMethod::TotalCount,
        AggrMethod::DistinctCount,
        AggrMethod::Sum,
        AggrMethod::Avg,
        AggrMethod::Min,
        AggrMethod::Max,
        AggrMethod::StdDev,
        AggrMethod::SumSq,
    ];

    /// The wire name, in `aggrMethods` and as the member of the aggregated representation.
    pub fn name(self) -> &'static str {
        match self {
            AggrMethod::TotalCount => "totalCount",
            AggrMethod::DistinctCount => "distinctCount",
            AggrMethod::Sum => "sum",
            AggrMethod::Avg => "avg",
            AggrMethod::Min => "min",
            AggrMethod::Max => "max",
            AggrMethod::StdDev => "stddev",
            AggrMethod::SumSq => "sumsq",
        }
    }

    pub fn parse(text: &str) -> Option<AggrMethod> {
        AggrMethod::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// The temporal query parameters of one request, checked against each other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemporalParams {
    pub timerel: Option<TimeRel>,
    pub time_property: TimeProperty,
    pub last_n: Option<u64>,
    pub format: TemporalFormat,
    /// Non-empty exactly when `format` is AggregatedValues; each method once, in the
    /// order the client named them.
    pub aggr_methods: Vec<AggrMethod>,
    /// None, or the zero duration: one period over the whole range.
    pub aggr_period: Option<IsoDuration>,
    /// `datasetId`: only the instances of these datasetIds (None in the list: the
    /// default instance, `@none` on the wire); None for every instance.
    pub datasets: Option<Vec<Option<String>>>,
}

impl TemporalParams {
    /// Checks the raw query parameters (None when absent) and turns them into one
    /// value. `options` holds the words of the `options` (and/or `format`) parameter
    /// split on commas; words other than `temporalValues` and `aggregatedValues` are
    /// left to the layers that know them (`sysAttrs`, ...).
    ///
    /// Every violation is a 400 BadRequestData whose detail names the parameter.
    /// Parameters that would be ignored (`timeAt` without `timerel`, `endTimeAt` with
    /// `before`, `aggrMethods` without `aggregatedValues`, ...) are refused too: a
    /// client that sends them expects an effect it would not get.
    #[allow(clippy::too_many_arguments)] // One argument per query parameter, by design.
    pub fn parse(
        timerel: Option<&str>,
        time_at: Option<&str>,
        end_time_at: Option<&str>,
        timeproperty: Option<&str>,
        last_n: Option<&str>,
        options: &[&str],
        aggr_methods: Option<&str>,
        aggr_period_duration: Option<&str>,
    ) -> Result<TemporalParams> {
        let format = parse_format(options)?;
        let timerel = parse_timerel(timerel, time_at, end_time_at)?;
        let time_property = match timeproperty {
            None => TimeProperty::default(),
            Some(text) => TimeProperty::parse(text).ok_or_else(|| {
                Error::bad_data(format!(
                    "timeproperty {:?} is not observedAt, createdAt, modifiedAt or deletedAt",
                    shorten(text)
                ))
            })?,
        };
        let last_n = last_n.map(parse_last_n).transpose()?;
        let aggregated = format == TemporalFormat::AggregatedValues;
        let aggr_methods = match (aggr_methods, aggregated) {
            (Some(_), false) => {
                return Err(Error::bad_data(
                    "aggrMethods is only used with options=aggregatedValues",
                ));
            }
            (None, true) => {
                return Err(Error::bad_data(
                    "options=aggregatedValues needs aggrMethods (a comma-separated list of \
                     totalCount, distinctCount, sum, avg, min, max, stddev, sumsq)",
                ));
            }
            (Some(text), true) => parse_aggr_methods(text)?,
            (None, false) => Vec::new(),
        };
        let aggr_period = match (aggr_period_duration, aggregated) {
            (Some(_), false) => {
                return Err(Error::bad_data(
                    "aggrPeriodDuration is only used with options=aggregatedValues",
                ));
            }
            (Some(text), true) => Some(
                IsoDuration::parse(text)
                    .map_err(|e| Error::bad_data(format!("aggrPeriodDuration: {}", e.detail)))?,
            ),
            (None, _) => None,
        };
        Ok(TemporalParams {
            timerel,
            time_property,
            last_n,
            format,
            aggr_methods,
            aggr_period,
            datasets: None,
        })
    }

    /// The `datasetId` parameter of a query (clause 4.5.5): a comma-separated list of
    /// datasetIds, each a URI or `@none` for the default instance.
    pub fn parse_datasets(text: &str) -> Result<Vec<Option<String>>> {
        text.split(',')
            .map(str::trim)
            .map(|d| match d {
                "@none" => Ok(None),
                _ if crate::entity::is_uri(d) => Ok(Some(d.to_string())),
                _ => Err(Error::bad_data(format!(
                    "datasetId {:?} is neither a URI nor @none",
                    shorten(d)
                ))),
            })
            .collect()
    }
}

fn parse_format(options: &[&str]) -> Result<TemporalFormat> {
    if options.len() > MAX_OPTIONS {
        return Err(Error::bad_data(format!("more than {MAX_OPTIONS} options")));
    }
    let has = |word: &str| options.iter().any(|o| o.trim() == word);
    match (has("temporalValues"), has("aggregatedValues")) {
        (true, true) => Err(Error::bad_data(
            "temporalValues and aggregatedValues are two representations: ask for one",
        )),
        (true, false) => Ok(TemporalFormat::TemporalValues),
        (false, true) => Ok(TemporalFormat::AggregatedValues),
        (false, false) => Ok(TemporalFormat::Normalized),
    }
}

fn parse_timerel(
    timerel: Option<&str>,
    time_at: Option<&str>,
    end_time_at: Option<&str>,
) -> Result<Option<TimeRel>> {
    let Some(rel) = timerel else {
        if time_at.is_some() {
            return Err(Error::bad_data(
                "timeAt needs timerel (before, after or between)",
            ));
        }
        if end_time_at.is_some() {
            return Err(Error::bad_data("endTimeAt needs timerel=between"));
        }
        return Ok(None);
    };
    let at = || -> Result<DateTime<Utc>> {
        let text = time_at
            .ok_or_else(|| Error::bad_data(format!("timerel={} needs timeAt", shorten(rel))))?;
        parse_param_time("timeAt", text)
    };
    match rel {
        "before" | "after" => {
            if end_time_at.is_some() {
                return Err(Error::bad_data(format!(
                    "endTimeAt is only used with timerel=between, not timerel={rel}"
                )));
            }
            let at = at()?;
            Ok(Some(if rel == "before" {
                TimeRel::Before(at)
            } else {
                TimeRel::After(at)
            }))
        }
        "between" => {
            let at = at()?;
            let end =
                end_time_at.ok_or_else(|| Error::bad_data("timerel=between needs endTimeAt"))?;
            let end = parse_param_time("endTimeAt", end)?;
            if end <= at {
                return Err(Error::bad_data("endTimeAt must be later than timeAt"));
            }
            Ok(Some(TimeRel::Between(at, end)))
        }
        other => Err(Error::bad_data(format!(
            "timerel {:?} is not before, after or between",
            shorten(other)
        ))),
    }
}

fn parse_param_time(name: &str, text: &str) -> Result<DateTime<Utc>> {
    if text.len() <= MAX_TIME_LEN
        && let Some(t) = parse_time(text)
    {
        return Ok(t);
    }
    Err(Error::bad_data(format!(
        "{name} {:?} is not an ISO 8601 datetime with a time zone, such as \
         2024-01-31T08:00:00Z",
        shorten(text)
    )))
}

fn parse_last_n(text: &str) -> Result<u64> {
    let bad = || {
        Error::bad_data(format!(
            "lastN {:?} is not a positive integer",
            shorten(text)
        ))
    };
    if text.is_empty() || text.len() > MAX_LAST_N_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    }
}

fn parse_aggr_methods(text: &str) -> Result<Vec<AggrMethod>> {
    if text.len() > MAX_AGGR_METHODS_LEN {
        return Err(Error::bad_data(format!(
            "aggrMethods is longer than {MAX_AGGR_METHODS_LEN} characters"
        )));
    }
    let mut methods = Vec::new();
    for (i, word) in text.split(',').enumerate() {
        if i >= MAX_AGGR_METHODS {
            return Err(Error::bad_data(format!(
                "aggrMethods names more than {MAX_AGGR_METHODS} methods"
            )));
        }
        let word = word.trim();
        let method = AggrMethod::parse(word).ok_or_else(|| {
            Error::bad_data(format!(
                "aggrMethods: {:?} is not one of totalCount, distinctCount, sum, avg, \
                 min, max, stddev, sumsq",
                shorten(word)
            ))
        })?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    Ok(methods)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    /// Parses a query string (`timerel=before&timeAt=...`) as the hub would hand it over.
    fn parse(query: &str) -> Result<TemporalParams> {
        let mut get: HashMap<&str, &str> = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            get.insert(k, v);
        }
        let options: Vec<&str> = get
            .get("options")
            .map(|o| o.split(',').collect())
            .unwrap_or_default();
        TemporalParams::parse(
            get.get("timerel").copied(),
            get.get("timeAt").copied(),
            get.get("endTimeAt").copied(),
            get.get("timeproperty").copied(),
            get.get("lastN").copied(),
            &options,
            get.get("aggrMethods").copied(),
            get.get("aggrPeriodDuration").copied(),
        )
    }

    fn t(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    #[test]
    fn accepts_valid_parameters() {
        assert_eq!(parse("").unwrap(), TemporalParams::default());
        let p = parse("timerel=before&timeAt=2024-01-31T08:00:00+07:00").unwrap();
        assert_eq!(p.timerel, Some(TimeRel::Before(t("2024-01-31T01:00:00Z"))));
        assert_eq!(p.time_property, TimeProperty::ObservedAt);
        let p = parse("timerel=after&timeAt=2024-01-31T08:00:00Z&timeproperty=modifiedAt").unwrap();
        assert_eq!(p.timerel, Some(TimeRel::After(t("2024-01-31T08:00:00Z"))));
        assert_eq!(p.time_property, TimeProperty::ModifiedAt);
        let p = parse(
            "timerel=between&timeAt=2024-01-01T00:00:00Z&endTimeAt=2024-02-01T00:00:00.5Z\
             &lastN=10&options=temporalValues,sysAttrs&timeproperty=createdAt",
        )
        .unwrap();
        assert_eq!(
            p,
            TemporalParams {
                timerel: Some(TimeRel::Between(
                    t("2024-01-01T00:00:00Z"),
                    t("2024-02-01T00:00:00.5Z")
                )),
                time_property: TimeProperty::CreatedAt,
                last_n: Some(10),
                format: TemporalFormat::TemporalValues,
                aggr_methods: vec![],
                aggr_period: None,
                datasets: None,
            }
        );
        let p = parse(
            "options=aggregatedValues&aggrMethods=avg, max,avg,totalCount&aggrPeriodDuration=PT1H",
        )
        .unwrap();
        assert_eq!(p.format, TemporalFormat::AggregatedValues);
        assert_eq!(
            p.aggr_methods,
            vec![AggrMethod::Avg, AggrMethod::Max, AggrMethod::TotalCount]
        );
        assert_eq!(
            p.aggr_period,
            Some(IsoDuration {
                months: 0,
                millis: 3_600_000
            })
        );
        let every = AggrMethod::ALL.map(AggrMethod::name).join(",");
        let p = parse(&format!("options=aggregatedValues&aggrMethods={every}")).unwrap();
        assert_eq!(p.aggr_methods, AggrMethod::ALL.to_vec());
        assert_eq!(p.aggr_period, None);
        assert_eq!(
            parse("lastN=18446744073709551615").unwrap().last_n,
            Some(u64::MAX)
        );
    }

    #[test]
    fn refuses_invalid_parameters() {
        let long = "9".repeat(1_000);
        for (query, needle) in [
            ("timerel=during&timeAt=2024-01-01T00:00:00Z", "timerel"),
            ("timerel=Before&timeAt=2024-01-01T00:00:00Z", "timerel"),
            ("timerel=", "timerel"),
            ("timerel=before", "needs timeAt"),
            (
                "timerel=between&endTimeAt=2024-01-01T00:00:00Z",
                "needs timeAt",
            ),
            (
                "timerel=between&timeAt=2024-01-01T00:00:00Z",
                "needs endTimeAt",
            ),
            (
                "timerel=between&timeAt=2024-01-01T00:00:00Z&endTimeAt=2024-01-01T00:00:00Z",
                "later than timeAt",
            ),
            (
                "timerel=between&timeAt=2024-01-02T00:00:00Z&endTimeAt=2024-01-01T00:00:00Z",
                "later than timeAt",
            ),
            (
                "timerel=before&timeAt=2024-01-01T00:00:00Z&endTimeAt=2024-02-01T00:00:00Z",
                "only used with timerel=between",
            ),
            ("timeAt=2024-01-01T00:00:00Z", "timeAt needs timerel"),
            ("endTimeAt=2024-01-01T00:00:00Z", "endTimeAt needs timerel"),
            ("timerel=after&timeAt=2024-01-01T00:00:00", "timeAt"),
            ("timerel=after&timeAt=2024-01-01", "timeAt"),
            ("timerel=after&timeAt=yesterday", "timeAt"),
            ("timerel=after&timeAt=", "timeAt"),
            (
                "timerel=between&timeAt=2024-01-01T00:00:00Z&endTimeAt=2024-13-01T00:00:00Z",
                "endTimeAt",
            ),
            ("timeproperty=observedat", "timeproperty"),
            ("lastN=0", "lastN"),
            ("lastN=-3", "lastN"),
            ("lastN=+3", "lastN"),
            ("lastN=3.0", "lastN"),
            ("lastN=ten", "lastN"),
            ("lastN=", "lastN"),
            ("lastN= 3", "lastN"),
            ("lastN=18446744073709551616", "lastN"),
            (
                "options=temporalValues,aggregatedValues&aggrMethods=sum",
                "ask for one",
            ),
            ("options=aggregatedValues", "needs aggrMethods"),
            ("options=aggregatedValues&aggrMethods=", "aggrMethods"),
            (
                "options=aggregatedValues&aggrMethods=avg,,max",
                "aggrMethods",
            ),
            ("options=aggregatedValues&aggrMethods=mean", "aggrMethods"),
            ("options=aggregatedValues&aggrMethods=AVG", "aggrMethods"),
            ("aggrMethods=avg", "only used with options=aggregatedValues"),
            (
                "options=temporalValues&aggrMethods=avg",
                "only used with options=aggregatedValues",
            ),
            (
                "aggrPeriodDuration=PT1H",
                "only used with options=aggregatedValues",
            ),
            (
                "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=1H",
                "aggrPeriodDuration",
            ),
            (
                "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P",
                "aggrPeriodDuration",
            ),
        ] {
            let err = parse(query).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{query}");
            assert!(err.detail.contains(needle), "{query}: {}", err.detail);
        }
        for query in [
            format!("lastN={long}"),
            format!("timerel=after&timeAt=2024-01-01T00:00:00{long}Z"),
            format!("timerel={long}"),
            format!("timeproperty={long}"),
            format!(
                "options=aggregatedValues&aggrMethods={}",
                vec!["avg"; 100].join(",")
            ),
            format!(
                "options=aggregatedValues&aggrMethods={}",
                vec!["avg"; 40].join(",")
            ),
            format!("options={}", vec!["sysAttrs"; 40].join(",")),
            format!("options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P{long}D"),
        ] {
            let err = parse(&query).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequestData, "{query}");
            assert!(err.detail.len() < 300, "{}", err.detail);
        }
    }

    #[test]
    fn time_relations_select_half_open_windows() {
        let (a, b) = (t("2024-01-01T00:00:00Z"), t("2024-01-02T00:00:00Z"));
        let mid = t("2024-01-01T12:00:00Z");
        assert!(TimeRel::Before(b).matches(a) && !TimeRel::Before(b).matches(b));
        assert!(TimeRel::After(a).matches(b) && !TimeRel::After(a).matches(a));
        let between = TimeRel::Between(a, b);
        assert!(between.matches(a) && between.matches(mid) && !between.matches(b));
    }

    #[test]
    fn dataset_ids_are_uris_or_the_default_instance() {
        assert_eq!(
            TemporalParams::parse_datasets("urn:ngsi-ld:Dataset:a, @none").unwrap(),
            vec![Some("urn:ngsi-ld:Dataset:a".to_string()), None]
        );
        for bad in ["", "a,b", "urn:ngsi-ld:Dataset:a,", "none"] {
            assert!(TemporalParams::parse_datasets(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for m in AggrMethod::ALL {
            assert_eq!(AggrMethod::parse(m.name()), Some(m));
        }
        for p in [
            TimeProperty::ObservedAt,
            TimeProperty::CreatedAt,
            TimeProperty::ModifiedAt,
            TimeProperty::DeletedAt,
        ] {
            assert_eq!(TimeProperty::parse(p.name()), Some(p));
        }
    }

    proptest! {
        #[test]
        fn never_panics(rel in prop::option::of("before|after|between|[a-z]{0,8}"),
                        at in prop::option::of(any::<String>()),
                        end in prop::option::of("2024-0[1-2]-0[1-9]T00:00:00Z|.{0,40}"),
                        prop in prop::option::of(".{0,12}"),
                        last_n in prop::option::of("[0-9+-]{0,25}"),
                        opts in prop::collection::vec("temporalValues|aggregatedValues|sysAttrs|.{0,10}", 0..40),
                        methods in prop::option::of("[a-zA-Z, ]{0,300}"),
                        period in prop::option::of("P[0-9YMWDTHS.]{0,12}")) {
            let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
            match TemporalParams::parse(rel.as_deref(), at.as_deref(), end.as_deref(),
                                        prop.as_deref(), last_n.as_deref(), &opts,
                                        methods.as_deref(), period.as_deref()) {
                Ok(p) => {
                    prop_assert_eq!(p.aggr_methods.is_empty(),
                                    p.format != TemporalFormat::AggregatedValues);
                    prop_assert!(p.last_n != Some(0));
                    if let Some(TimeRel::Between(a, b)) = p.timerel {
                        prop_assert!(a < b);
                    }
                }
                Err(e) => prop_assert_eq!(e.kind, ErrorKind::BadRequestData),
            }
        }
    }
}
