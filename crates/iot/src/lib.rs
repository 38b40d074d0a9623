//! The IoT agent of dothi: a device registry and the ingestion of device measures over
//! MQTT and HTTP, compatible with the FIWARE IoT Agent for JSON (its provisioning API,
//! topics and payloads). See `docs/iot.md`.
//!
//! The agent owns service groups and devices (kept as the store's registry records,
//! never as entities: API keys are secrets) and turns each message into one update of
//! the device's entity through the in-process [`hub::Hub`], which keeps its history.
//!
//! **Invariants:** entities are written through `hub::Hub` only; the store is used for
//! registry records alone. A message is acknowledged (MQTT) or answered (HTTP) only
//! once its update is durable. No payload, however bad, stops the agent: it is counted
//! in the metrics, logged with the device id, and the other measures of the same
//! message are still written.
//!
//! [`simulate`] is the device simulator of `dothi simulate`: it sends readings the way
//! devices do (MQTT, HTTP), and is no part of ingestion.

mod agent;
mod http;
pub mod measure;
mod model;
mod mqtt;
mod registry;
pub mod simulate;

pub use agent::{Agent, IngestError, Ingested, Message, Payload, Transport};
pub use http::{ROUTE_RULES, component, routes};
pub use measure::Rejection;
pub use model::{AttributeMapping, Device, RESOURCE, ServiceGroup, StaticAttribute};
pub use mqtt::{MqttConfig, MqttConfigError, MqttIngest, TOPICS};
pub use registry::{DEVICES, GROUPS, Registry};
