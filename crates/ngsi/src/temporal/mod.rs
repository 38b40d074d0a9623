//! The pure part of the NGSI-LD temporal API (ETSI GS CIM 009, clauses 4.5.7 to 4.5.9,
//! 4.5.19 and 4.11): the query parameters as a validated value, ISO 8601 durations and
//! the aggregation periods they cut a range into, the reference semantics of every
//! aggregation method, and the three temporal representations of an entity.
//!
//! Nothing here reads history: the store selects attribute instances and computes
//! aggregates, the hub parses the request, and both meet on the types of this module.
//! [`aggregate`] is the definition a database's own aggregation must agree with.

mod aggregate;
mod duration;
mod params;
mod render;

pub use aggregate::aggregate;
pub use duration::{IsoDuration, buckets, buckets_through};
pub use params::{AggrMethod, TemporalFormat, TemporalParams, TimeProperty, TimeRel};
pub use render::{
    AggregatedAttr, Bucket, Instance, TemporalEntity, render_aggregated, render_temporal,
};
