//! Where computed KPIs come from: a [`KpiSource`] reads the hub and answers a value
//! with its evidence — the formula, and every NGSI-LD query it ran with the number of
//! entities that query matched — so that anyone with read access can run the same
//! query and get the same count. Sources are pluggable: a service that owns other data
//! (citizen reports, open data) adds its own to [`crate::Scorecard::with_source`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::engine::QUERIES_AT_ONCE;
use hub::http::params::{Params, QuerySpec};
use hub::{Hub, Scope};
use ngsi::{Context, Entity, Error};
use serde::Serialize;

/// One query a value was computed from: the NGSI-LD query string (the parameters of
/// `GET /ngsi-ld/v1/entities`, or of `GET /ngsi-ld/v1/temporal/entities`) and what it
/// matched.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Input {
    /// What the query stands for (a sector, "numerator").
    pub name: String,
    pub query: String,
    /// Entities matched; with a `rule`, what the rule selects in the query's answer.
    pub count: u64,
    /// Which API the query is for.
    #[serde(default, skip_serializing_if = "Api::is_entities")]
    pub api: Api,
    /// How the count is read from the answer when it is not the number of entities
    /// matched (a comparison of two attributes of each entity, the buckets of a
    /// temporal aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The NGSI-LD API an input's query is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    #[default]
    Entities,
    /// The temporal API (history, aggregations).
    Temporal,
}

impl Api {
    fn is_entities(&self) -> bool {
        *self == Api::Entities
    }
}

impl Input {
    /// An input counting the entities `query` matches.
    pub fn counted(name: impl Into<String>, query: impl Into<String>, count: u64) -> Input {
        Input {
            name: name.into(),
            query: query.into(),
            count,
            api: Api::Entities,
            rule: None,
        }
    }

    /// The query as a link relative to the server (one click away in the UI).
    pub fn href(&self) -> String {
        match self.api {
            Api::Entities => format!("/ngsi-ld/v1/entities?{}", self.query),
            Api::Temporal => format!("/ngsi-ld/v1/temporal/entities?{}", self.query),
        }
    }
}

/// A computed value and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub value: f64,
    pub formula: String,
    pub inputs: Vec<Input>,
}

/// What measuring a KPI answers: its value now, or None when the hub holds none of its
/// inputs yet.
pub type Measured = Result<Option<Measurement>, Error>;

/// Computes one KPI of the plan from the hub.
#[async_trait]
pub trait KpiSource: Send + Sync {
    /// The slug of the KPI it computes (`broadband-communes`).
    fn kpi(&self) -> &str;
    /// The entity types (short names, core @context) whose changes move the value.
    fn watches(&self) -> Vec<String>;
    /// The value now, or None when the hub holds none of its inputs yet.
    async fn measure(&self, hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured;
}

/// Page size when a source reads the matching entities themselves.
const PAGE: usize = 1_000;
/// At most this many entities are read by one query of a source.
const MAX_READ: usize = 200_000;

/// Runs a query string (`type=…&q=…`) in `scope`: the count, and the entities when
/// `read` (all of them, page by page).
pub async fn run_query(
    hub: &Hub,
    scope: &Scope,
    query: &str,
    read: bool,
) -> Result<(u64, Vec<Entity>), Error> {
    let params = Params::parse(Some(query))?;
    let spec = QuerySpec::from_params(&params)?;
    let ctx = Context::core();
    let counted = hub.query(scope, spec.build(&ctx, 0, 0, true)?).await?;
    let count = counted.count.unwrap_or(0);
    let mut entities = Vec::new();
    if read {
        while entities.len() < count as usize && entities.len() < MAX_READ {
            let page = hub
                .query(scope, spec.build(&ctx, PAGE, entities.len(), false)?)
                .await?;
            let n = page.entities.len();
            entities.extend(page.entities);
            if n < PAGE {
                break;
            }
        }
    }
    Ok((count, entities))
}

/// The count of a query, as an input named `name`.
async fn count_input(hub: &Hub, scope: &Scope, name: &str, query: String) -> Result<Input, Error> {
    let (count, _) = run_query(hub, scope, &query, false).await?;
    Ok(Input::counted(name, query, count))
}

/// The share of the province's commune-level units whose per-unit
/// `KeyPerformanceIndicator` named `indicator` is above 0 (broadband, 5G). A unit
/// counts once however many such entities it has.
pub struct UnitsReached {
    pub kpi: &'static str,
    pub indicator: &'static str,
}

impl UnitsReached {
    pub fn query(&self) -> String {
        format!(
            "type=KeyPerformanceIndicator&q=indicator==%22{}%22;kpiValue%3E0",
            self.indicator
        )
    }
}

#[async_trait]
impl KpiSource for UnitsReached {
    fn kpi(&self) -> &str {
        self.kpi
    }

    fn watches(&self) -> Vec<String> {
        vec!["KeyPerformanceIndicator".into()]
    }

    async fn measure(&self, hub: &Hub, scope: &Scope, _now: DateTime<Utc>) -> Measured {
        let all = format!(
            "type=KeyPerformanceIndicator&q=indicator==%22{}%22",
            self.indicator
        );
        let (published, _) = run_query(hub, scope, &all, false).await?;
        if published == 0 {
            return Ok(None);
        }
        let query = self.query();
        let (count, entities) = run_query(hub, scope, &query, true).await?;
        let area = Context::core().expand("refAdministrativeArea");
        let units: BTreeSet<String> = entities
            .iter()
            .filter_map(|e| {
                e.attrs
                    .get(&area)?
                    .first()?
                    .value
                    .as_str()
                    .map(String::from)
            })
            .collect();
        let denominator = crate::plan::COMMUNE_UNITS;
        let reached = (units.len() as u64).min(denominator);
        Ok(Some(Measurement {
            value: round(reached as f64 * 100.0 / denominator as f64, 1),
            formula: format!(
                "{reached} distinct units (refAdministrativeArea) of the matching entities / {denominator} commune-level units × 100"
            ),
            inputs: vec![
                Input::counted(
                    format!("units with {} above 0", self.indicator),
                    query,
                    count,
                ),
                Input::counted(
                    format!("units publishing {}", self.indicator),
                    all,
                    published,
                ),
            ],
        }))
    }
}

/// One group of a [`LiveGroups`] KPI (a sector, an essential-service domain) and the
/// entities that show it live.
#[derive(Debug, Clone)]
pub struct Group {
    pub slug: &'static str,
    pub name: (&'static str, &'static str),
    pub feeds: &'static [Feed],
}

/// Entities of one type (and, where the type alone does not tell the group, matching a
/// condition), with the attribute that carries their data and which of its times
/// counts: `observedAt` or `modifiedAt`.
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    pub ty: &'static str,
    /// A q condition, e.g. `category=="atm"`.
    pub filter: Option<&'static str>,
    pub attr: &'static str,
    pub time: &'static str,
}

/// The `time` of a feed whose attribute's value is itself the time of the last update,
/// written as text (the reports' `updated_datetime`): compared as text, which the
/// store narrows by its index.
const VALUE: &str = "value";

/// A feed of every entity of a type.
const fn feed(ty: &'static str, attr: &'static str, time: &'static str) -> Feed {
    Feed {
        ty,
        filter: None,
        attr,
        time,
    }
}

/// A feed of the entities of a type that match `filter`.
const fn feed_where(
    ty: &'static str,
    filter: &'static str,
    attr: &'static str,
    time: &'static str,
) -> Feed {
    Feed {
        ty,
        filter: Some(filter),
        attr,
        time,
    }
}

/// How many groups have at least one entity of their types updated within `window`.
pub struct LiveGroups {
    pub kpi: &'static str,
    pub groups: &'static [Group],
    pub window: TimeDelta,
}

impl LiveGroups {
    fn feed_query(feed: &Feed, since: &str) -> String {
        let Feed {
            ty,
            filter,
            attr,
            time,
        } = feed;
        let condition = filter
            .map(|f| format!("{};", encode(f)))
            .unwrap_or_default();
        if *time == VALUE {
            return format!("type={ty}&q={condition}{attr}%3E%3D%22{since}%22");
        }
        format!("type={ty}&q={condition}{attr}.{time}%3E%3D{since}")
    }
}

#[async_trait]
impl KpiSource for LiveGroups {
    fn kpi(&self) -> &str {
        self.kpi
    }

    fn watches(&self) -> Vec<String> {
        self.groups
            .iter()
            .flat_map(|g| g.feeds.iter().map(|f| f.ty.to_string()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    async fn measure(&self, hub: &Hub, scope: &Scope, now: DateTime<Utc>) -> Measured {
        let since = ngsi::entity::format_time(&(now - self.window));
        // The feeds' counts side by side, kept in the groups' order.
        let counts: Vec<_> = self
            .groups
            .iter()
            .flat_map(|g| g.feeds.iter().map(move |f| (g.slug, f)))
            .map(|(slug, feed)| count_input(hub, scope, slug, LiveGroups::feed_query(feed, &since)))
            .collect();
        let inputs: Vec<Input> = stream::iter(counts)
            .buffered(QUERIES_AT_ONCE)
            .try_collect()
            .await?;
        let live: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| inputs.iter().any(|i| i.name == g.slug && i.count > 0))
            .map(|g| g.slug)
            .collect();
        Ok(Some(Measurement {
            value: live.len() as f64,
            formula: format!(
                "groups with an entity updated since {since} (7 days): {} of {} [{}]",
                live.len(),
                self.groups.len(),
                live.join(", ")
            ),
            inputs,
        }))
    }
}

/// The categories of the points of interest that are tourism, banking and commerce (as
/// in `city::demo::POI_SECTORS`).
const TOURISM_POI: &str = r#"category=="historicSite","monument","museum","memorial","cemetery","placeOfWorship","bridge","borderCrossing","beach","island","nature","nationalPark","worldHeritageSite","cave""#;
const BANKING_POI: &str = r#"category=="bank","atm""#;
const COMMERCE_POI: &str = r#"category=="market","supermarket","shoppingCentre","tradeCentre""#;

/// A feed of entities that are places: live when their location changes.
const fn placed(ty: &'static str) -> Feed {
    feed(ty, "location", "modifiedAt")
}

/// A feed of the points of interest that match `filter` (a category condition).
const fn points_of_interest(filter: &'static str) -> Feed {
    feed_where("PointOfInterest", filter, "location", "modifiedAt")
}

/// A feed of the `KeyPerformanceIndicator`s that match `filter` (a process condition).
const fn process_indicator(filter: &'static str) -> Feed {
    feed_where("KeyPerformanceIndicator", filter, "kpiValue", "modifiedAt")
}

const AIR_QUALITY: Feed = feed("AirQualityObserved", "airQualityIndex", "observedAt");
const WATER_LEVEL: Feed = feed("WaterObserved", "waterLevel", "observedAt");

/// A group of the plan, by its slug, its name (Vietnamese, English) and its feeds.
const fn group(
    slug: &'static str,
    name: (&'static str, &'static str),
    feeds: &'static [Feed],
) -> Group {
    Group { slug, name, feeds }
}

/// Tourism is both a priority sector and an essential service.
const TOURISM: Group = group(
    "tourism",
    ("Du lịch", "Tourism"),
    &[points_of_interest(TOURISM_POI)],
);

/// The seven priority sectors of the plan's 2025 target and their feeds. E-government
/// counts with citizen reports (`Open311_ServiceRequest`, by their `updated_datetime`) and the indicators computed from
/// imported dossiers (`EgovServiceIndex`).
pub const PRIORITY_SECTORS: &[Group] = &[
    group(
        "health",
        ("Y tế", "Health"),
        &[
            feed("Hospital", "bedOccupancy", "observedAt"),
            placed("MedicalClinic"),
        ],
    ),
    group("education", ("Giáo dục", "Education"), &[placed("School")]),
    TOURISM,
    group(
        "transport",
        ("Giao thông", "Transport"),
        &[feed("TrafficFlowObserved", "intensity", "observedAt")],
    ),
    group(
        "environment",
        (
            "Tài nguyên và môi trường",
            "Natural resources and environment",
        ),
        &[
            AIR_QUALITY,
            WATER_LEVEL,
            feed("WeatherObserved", "temperature", "observedAt"),
        ],
    ),
    group(
        "agriculture",
        (
            "Nông nghiệp và phát triển nông thôn",
            "Agriculture and rural development",
        ),
        &[placed("AgriParcel"), placed("AgriCrop")],
    ),
    group(
        "e-government",
        ("Chính quyền điện tử", "E-government"),
        &[
            feed("Open311_ServiceRequest", "updated_datetime", VALUE),
            feed("EgovServiceIndex", "computedAt", "modifiedAt"),
        ],
    ),
];

/// The eight essential smart services the plan's 2030 target names.
pub const ESSENTIAL_SERVICES: &[Group] = &[
    group(
        "electricity",
        ("Điện", "Electricity"),
        &[
            feed("ACMeasurement", "totalActivePower", "observedAt"),
            feed("Streetlight", "powerState", "observedAt"),
        ],
    ),
    group(
        "water",
        ("Nước", "Water"),
        &[feed(
            "WaterConsumptionObserved",
            "waterConsumption",
            "observedAt",
        )],
    ),
    group(
        "banking",
        ("Ngân hàng", "Banking"),
        &[
            points_of_interest(BANKING_POI),
            process_indicator(r#"process=="cashlessPayment""#),
        ],
    ),
    group(
        "commerce",
        ("Thương mại", "Commerce"),
        &[points_of_interest(COMMERCE_POI)],
    ),
    group(
        "e-commerce",
        ("Thương mại điện tử", "E-commerce"),
        &[process_indicator(r#"process=="eCommerce""#)],
    ),
    TOURISM,
    group(
        "environment",
        ("Môi trường", "Environment"),
        &[AIR_QUALITY, WATER_LEVEL],
    ),
    group(
        "urban-planning-housing",
        ("Quy hoạch và nhà ở đô thị", "Urban planning and housing"),
        &[
            placed("UrbanPlanningZone"),
            feed("BuildingPermit", "status", "modifiedAt"),
        ],
    ),
];

/// A q condition as a query-string value: quotes and comparison signs escaped.
pub(crate) fn encode(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for c in q.chars() {
        match c {
            '"' => out.push_str("%22"),
            '>' => out.push_str("%3E"),
            '<' => out.push_str("%3C"),
            ' ' => out.push_str("%20"),
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            c => out.push(c),
        }
    }
    out
}

/// The sources of the plan's computed KPIs that the hub's own data allows.
pub fn plan_sources() -> Vec<std::sync::Arc<dyn KpiSource>> {
    vec![
        std::sync::Arc::new(UnitsReached {
            kpi: "broadband-communes",
            indicator: "broadband",
        }),
        std::sync::Arc::new(UnitsReached {
            kpi: "5g-communes",
            indicator: "5g",
        }),
        std::sync::Arc::new(LiveGroups {
            kpi: "priority-sectors-live",
            groups: PRIORITY_SECTORS,
            window: TimeDelta::days(7),
        }),
        std::sync::Arc::new(LiveGroups {
            kpi: "essential-services-live",
            groups: ESSENTIAL_SERVICES,
            window: TimeDelta::days(7),
        }),
    ]
}

pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_are_those_of_the_plan() {
        assert_eq!(PRIORITY_SECTORS.len(), 7);
        assert_eq!(ESSENTIAL_SERVICES.len(), 8);
    }

    #[test]
    fn point_of_interest_filters_follow_the_data_sets_sectors() {
        for (filter, sector) in [
            (TOURISM_POI, "tourism"),
            (BANKING_POI, "banking"),
            (COMMERCE_POI, "commerce"),
        ] {
            let listed: BTreeSet<&str> = filter
                .trim_start_matches("category==")
                .split(',')
                .map(|c| c.trim_matches('"'))
                .collect();
            let expected: BTreeSet<&str> = city::demo::POI_SECTORS
                .iter()
                .filter(|(_, s)| *s == sector)
                .map(|(c, _)| *c)
                .collect();
            assert_eq!(listed, expected, "{sector}");
        }
        // Every sector of the table is counted by one of the filters.
        let sectors: BTreeSet<&str> = city::demo::POI_SECTORS.iter().map(|(_, s)| *s).collect();
        assert_eq!(sectors, BTreeSet::from(["banking", "commerce", "tourism"]));
    }

    #[test]
    fn a_filtered_feed_escapes_its_condition() {
        let q = LiveGroups::feed_query(&ESSENTIAL_SERVICES[2].feeds[0], "2026-01-01T00:00:00Z");
        assert_eq!(
            q,
            "type=PointOfInterest&q=category==%22bank%22,%22atm%22;location.modifiedAt%3E%3D2026-01-01T00:00:00Z"
        );
        let q = LiveGroups::feed_query(&ESSENTIAL_SERVICES[0].feeds[0], "2026-01-01T00:00:00Z");
        assert_eq!(
            q,
            "type=ACMeasurement&q=totalActivePower.observedAt%3E%3D2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn every_query_of_a_source_parses() {
        let ctx = Context::core();
        let since = "2026-01-01T00:00:00Z";
        let mut queries = vec![
            UnitsReached {
                kpi: "x",
                indicator: "5g",
            }
            .query(),
        ];
        for g in PRIORITY_SECTORS.iter().chain(ESSENTIAL_SERVICES) {
            for feed in g.feeds {
                queries.push(LiveGroups::feed_query(feed, since));
            }
        }
        for q in queries {
            let p = Params::parse(Some(&q)).expect("parameters");
            let built = QuerySpec::from_params(&p).and_then(|s| s.build(&ctx, 0, 0, true));
            assert!(built.is_ok(), "{q}: {:?}", built.err());
        }
    }
}
