//! City services of dothi. Today: the Quảng Trị data set that `dothi demo` loads.
//!
//! The data set has two parts. The **administrative units** are real: the province
//! (code 44) and its 78 commune-level units since the 2025 reorganisation, with names,
//! areas, full boundaries, boundaries simplified for maps, and the pre-2025 units each
//! was formed from ([`admin`]). The **sector layers** are demo data: river gauges,
//! air-quality and weather stations, traffic counters, street lights, meters, points of
//! interest, hospitals, schools, farm parcels, connectivity figures, bank offices and
//! ATMs, markets and supermarkets, cashless-payment and e-commerce figures, planning
//! zones and building permits ([`demo`]). Every
//! demo entity says so (`dataProvider`, and `demo` in its id), names the commune it is
//! in, and lies inside that commune's boundary.
//!
//! The source files are embedded in the binary; nothing is read at run time. Everything
//! is written through the in-process [`hub::Hub`], like any other client, with batch
//! upserts, so loading twice leaves the same entities.
//!
//! This crate never speaks HTTP and never touches the store directly.

pub mod admin;
pub mod demo;
pub mod geom;
pub mod simplify;

pub mod rng;
mod source;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hub::{Hub, Scope};
use ngsi::Context;
use ngsi::entity::Reader;
use serde_json::Value;

pub use admin::{AdminUnit, FormerUnit, UnitKind};

/// The value of `dataProvider` on every demo entity.
pub const DEMO_PROVIDER: &str = "dothi demo data";

/// Where the data set is described (the `source` of demo entities).
pub const DEMO_SOURCE: &str = "https://github.com/dothi-city/dothi/blob/main/docs/data.md";

/// Douglas–Peucker tolerance of `displayBoundary`, in metres. At 50 m the 78 units
/// together are about 320 KB of GeoJSON instead of about 4 MB.
pub const DISPLAY_TOLERANCE_M: f64 = 50.0;

/// Entities written per batch upsert, so that no single transaction is very large.
const BATCH: usize = 250;

/// Why the data set could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded source data is not what this crate expects.
    #[error("source data: {0}")]
    Source(String),
    /// A boundary could not be simplified into a valid geometry.
    #[error(transparent)]
    Simplify(#[from] simplify::SimplifyError),
    /// A demo entity could not be placed inside its commune.
    #[error("placing {what}: {why}")]
    Placement { what: String, why: String },
    /// The hub refused an entity (a bug in this crate, or a validation rule it breaks).
    #[error("the hub refused {id}: {error}")]
    Rejected { id: String, error: ngsi::Error },
    /// The hub could not run the batch at all.
    #[error("hub: {0}")]
    Hub(#[from] ngsi::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole data set, built in memory: units first, then the demo layers.
pub struct DataSet {
    /// The province (code 44).
    pub province: AdminUnit,
    /// Its 78 commune-level units, in code order.
    pub units: Vec<AdminUnit>,
    /// Every entity, NGSI-LD normalized JSON under the core @context.
    pub entities: Vec<Value>,
    /// Where well-known demo places were asked to be, and where they were put.
    pub placements: Vec<demo::Placement>,
    /// Neighbouring units whose source borders overlap slightly (codes, a position).
    pub source_overlaps: Vec<(String, String, geom::Position)>,
}

impl DataSet {
    /// Builds the data set with demo observations dated `observed_at`.
    pub fn build(observed_at: DateTime<Utc>) -> Result<DataSet> {
        let admin::Units {
            province,
            units,
            overlaps,
        } = admin::units()?;
        let mut entities = Vec::new();
        entities.push(admin::entity(&province, None));
        for u in &units {
            entities.push(admin::entity(u, Some(&province)));
        }
        let layers = demo::entities(&units, observed_at)?;
        entities.extend(layers.entities);
        Ok(DataSet {
            province,
            units,
            entities,
            placements: layers.placements,
            source_overlaps: overlaps,
        })
    }

    /// Total size of the 78 units' `displayBoundary` values, as compact JSON.
    pub fn display_boundary_bytes(&self) -> usize {
        self.units
            .iter()
            .map(|u| admin::geometry_json(&u.display).to_string().len())
            .sum()
    }
}

/// What [`load`] wrote.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Entities upserted, by entity type.
    pub by_type: BTreeMap<String, usize>,
    /// Of those, how many did not exist before.
    pub created: usize,
    /// Size of the units' simplified boundaries (see [`DataSet::display_boundary_bytes`]).
    pub display_boundary_bytes: usize,
    /// Time to build the data set and to write it.
    pub build_time: Duration,
    pub write_time: Duration,
    /// The hour the demo's observations are dated to (where a demo's history ends).
    pub observed_at: DateTime<Utc>,
}

impl LoadReport {
    pub fn entities(&self) -> usize {
        self.by_type.values().sum()
    }
}

/// Builds the data set and upserts it into the default tenant. Entities keep their ids
/// from one run to the next, so loading again replaces them instead of adding more.
pub async fn load(hub: &Hub) -> Result<LoadReport> {
    let started = Instant::now();
    // Demo observations are dated to the hour, so that a fresh demo looks current.
    let now = Utc::now();
    let observed_at = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let data = DataSet::build(observed_at)?;
    let build_time = started.elapsed();

    let started = Instant::now();
    let ctx = Context::core();
    // The default tenant (no NGSILD-Tenant header).
    let scope = Scope::system("demo", "");
    let mut by_type = BTreeMap::new();
    let mut created = 0;
    for chunk in data.entities.chunks(BATCH) {
        let reader = Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        };
        let mut batch = Vec::with_capacity(chunk.len());
        for v in chunk {
            let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
            let entity = reader.entity(v, None).map_err(|error| Error::Rejected {
                id: id.to_string(),
                error,
            })?;
            let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
            *by_type.entry(kind.to_string()).or_insert(0) += 1;
            batch.push(Ok(entity));
        }
        for (id, result) in hub.batch_upsert(&scope, batch, true).await? {
            match result {
                Ok(applied) => created += usize::from(applied.created),
                Err(error) => return Err(Error::Rejected { id, error }),
            }
        }
    }
    Ok(LoadReport {
        by_type,
        created,
        display_boundary_bytes: data.display_boundary_bytes(),
        build_time,
        write_time: started.elapsed(),
        observed_at,
    })
}
