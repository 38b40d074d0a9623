//! Where computed KPIs come from: a [`KpiSource`] reads the hub and answers a value
//! with its evidence — the formula, and every NGSI-LD query it ran with the number of
//! entities that query matched — so that anyone with read access can run the same
//! query and get the same count. Sources are pluggable: a service that owns other data
//! (citizen reports, open data) adds its own to [`crate::Scorecard::with_source`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use hub::http::params::{Params, QuerySpec};
use hub::{Hub, Scope};
use ngsi::{Context, Entity, Error};
use serde::Serialize;

/// One query a value was computed from: the NGSI-LD query string (the parameters of
/// `GET /ngsi-ld/v1/entities`) and what it matched.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Input {
    /// What the query stands for (a sector, "numerator").
    pub name: String,
    pub query: String,
    /// Entities matched.
    pub count: u64,
}

impl Input {
    /// The query as a link relative to the server (one click away in the UI).
    pub fn href(&self) -> String {
        format!("/ngsi-ld/v1/entities?{}", self.query)
    }
}

/// A computed value and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub value: f64,
    pub formula: String,
    pub inputs: Vec<Input>,
}

/// Computes one KPI of the plan from the hub.
#[async_trait]
pub trait KpiSource: Send + Sync {
    /// The slug of the KPI it computes (`broadband-communes`).
    fn kpi(&self) -> &str;
    /// The entity types (short names, core @context) whose changes move the value.
    fn watches(&self) -> Vec<String>;
    /// The value now, or None when the hub holds none of its inputs yet.
    async fn measure(
        &self,
        hub: &Hub,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Option<Measurement>, Error>;
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

    async fn measure(
        &self,
        hub: &Hub,
        scope: &Scope,
        _now: DateTime<Utc>,
    ) -> Result<Option<Measurement>, Error> {
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
                Input {
                    name: format!("units with {} above 0", self.indicator),
                    query,
                    count,
                },
                Input {
                    name: format!("units publishing {}", self.indicator),
                    query: all,
                    count: published,
                },
            ],
        }))
    }
}

/// One group of a [`LiveGroups`] KPI (a sector, an essential-service domain) and the
/// entity types that show it live, each with the attribute that carries its data.
#[derive(Debug, Clone)]
pub struct Group {
    pub slug: &'static str,
    pub name: (&'static str, &'static str),
    /// (entity type, attribute, `observedAt` or `modifiedAt`).
    pub feeds: &'static [(&'static str, &'static str, &'static str)],
}

/// How many groups have at least one entity of their types updated within `window`.
pub struct LiveGroups {
    pub kpi: &'static str,
    pub groups: &'static [Group],
    pub window: TimeDelta,
}

impl LiveGroups {
    fn feed_query(ty: &str, attr: &str, time: &str, since: &str) -> String {
        format!("type={ty}&q={attr}.{time}%3E%3D{since}")
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
            .flat_map(|g| g.feeds.iter().map(|f| f.0.to_string()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    async fn measure(
        &self,
        hub: &Hub,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Option<Measurement>, Error> {
        let since = ngsi::entity::format_time(&(now - self.window));
        let mut inputs = Vec::new();
        let mut live = Vec::new();
        for g in self.groups {
            let mut group_live = false;
            for (ty, attr, time) in g.feeds {
                let query = LiveGroups::feed_query(ty, attr, time, &since);
                let (count, _) = run_query(hub, scope, &query, false).await?;
                group_live |= count > 0;
                inputs.push(Input {
                    name: g.slug.to_string(),
                    query,
                    count,
                });
            }
            if group_live {
                live.push(g.slug);
            }
        }
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

/// The seven priority sectors of the plan's 2025 target and their feeds. E-government
/// counts with citizen reports (`ServiceRequest`) and the indicators computed from
/// imported dossiers (`EgovServiceIndex`).
pub const PRIORITY_SECTORS: &[Group] = &[
    Group {
        slug: "health",
        name: ("Y tế", "Health"),
        feeds: &[
            ("Hospital", "bedOccupancy", "observedAt"),
            ("MedicalClinic", "location", "modifiedAt"),
        ],
    },
    Group {
        slug: "education",
        name: ("Giáo dục", "Education"),
        feeds: &[("School", "location", "modifiedAt")],
    },
    Group {
        slug: "tourism",
        name: ("Du lịch", "Tourism"),
        feeds: &[("PointOfInterest", "location", "modifiedAt")],
    },
    Group {
        slug: "transport",
        name: ("Giao thông", "Transport"),
        feeds: &[("TrafficFlowObserved", "intensity", "observedAt")],
    },
    Group {
        slug: "environment",
        name: (
            "Tài nguyên và môi trường",
            "Natural resources and environment",
        ),
        feeds: &[
            ("AirQualityObserved", "airQualityIndex", "observedAt"),
            ("WaterObserved", "waterLevel", "observedAt"),
            ("WeatherObserved", "temperature", "observedAt"),
        ],
    },
    Group {
        slug: "agriculture",
        name: (
            "Nông nghiệp và phát triển nông thôn",
            "Agriculture and rural development",
        ),
        feeds: &[
            ("AgriParcel", "location", "modifiedAt"),
            ("AgriCrop", "location", "modifiedAt"),
        ],
    },
    Group {
        slug: "e-government",
        name: ("Chính quyền điện tử", "E-government"),
        feeds: &[
            ("ServiceRequest", "status", "modifiedAt"),
            ("EgovServiceIndex", "computedAt", "modifiedAt"),
        ],
    },
];

/// The eight essential smart services the plan's 2030 target names.
pub const ESSENTIAL_SERVICES: &[Group] = &[
    Group {
        slug: "electricity",
        name: ("Điện", "Electricity"),
        feeds: &[
            ("ACMeasurement", "totalActivePower", "observedAt"),
            ("Streetlight", "powerState", "observedAt"),
        ],
    },
    Group {
        slug: "water",
        name: ("Nước", "Water"),
        feeds: &[("WaterConsumptionObserved", "waterConsumption", "observedAt")],
    },
    Group {
        slug: "banking",
        name: ("Ngân hàng", "Banking"),
        feeds: &[("BankingService", "location", "modifiedAt")],
    },
    Group {
        slug: "commerce",
        name: ("Thương mại", "Commerce"),
        feeds: &[("Market", "location", "modifiedAt")],
    },
    Group {
        slug: "e-commerce",
        name: ("Thương mại điện tử", "E-commerce"),
        feeds: &[("OnlineShop", "location", "modifiedAt")],
    },
    Group {
        slug: "tourism",
        name: ("Du lịch", "Tourism"),
        feeds: &[("PointOfInterest", "location", "modifiedAt")],
    },
    Group {
        slug: "environment",
        name: ("Môi trường", "Environment"),
        feeds: &[
            ("AirQualityObserved", "airQualityIndex", "observedAt"),
            ("WaterObserved", "waterLevel", "observedAt"),
        ],
    },
    Group {
        slug: "urban-planning-housing",
        name: ("Quy hoạch và nhà ở đô thị", "Urban planning and housing"),
        feeds: &[
            ("LandUsePlan", "location", "modifiedAt"),
            ("Building", "location", "modifiedAt"),
        ],
    },
];

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
            for (t, a, time) in g.feeds {
                queries.push(LiveGroups::feed_query(t, a, time, since));
            }
        }
        for q in queries {
            let p = Params::parse(Some(&q)).expect("parameters");
            let built = QuerySpec::from_params(&p).and_then(|s| s.build(&ctx, 0, 0, true));
            assert!(built.is_ok(), "{q}: {:?}", built.err());
        }
    }
}
