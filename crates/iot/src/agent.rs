//! The agent: from a message (API key, device id, payload) to the update of the
//! device's entity through the in-process [`Hub`], with the outcome counted.

use std::collections::BTreeMap;
use std::sync::Arc;

use hub::Hub;
use hub::metrics::Metrics;
use ngsi::{Context, Error, ErrorKind};

use crate::measure::{self, Mapping, Rejection};
use crate::model::{self, Device, ServiceGroup};
use crate::registry::{Found, Registry};

/// How a message arrived; a label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Mqtt,
    Http,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Http => "http",
        }
    }
}

/// What a message carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A JSON object of measures, or an array of such objects.
    Measures(&'a [u8]),
    /// One measure's value (`.../attrs/{name}`).
    Single { name: &'a str, value: &'a [u8] },
}

/// A message from a device.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub transport: Transport,
    pub apikey: &'a str,
    pub device_id: &'a str,
    pub payload: Payload<'a>,
    /// An observation time given beside the payload (HTTP `t`).
    pub timestamp: Option<&'a str>,
}

/// What one object of measures did to the entity.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub tenant: String,
    pub entity_id: String,
    /// Measures written.
    pub accepted: usize,
    /// Measures left out, and why.
    pub rejected: Vec<Rejection>,
    /// Why the observation time given was refused (the receipt time was used).
    pub bad_timestamp: Option<String>,
}

/// Why a message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown apikey")]
    UnknownApikey,
    #[error("device {0:?} is not provisioned for this apikey")]
    UnknownDevice(String),
    #[error("{0}")]
    Ambiguous(&'static str),
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A QoS 0 message that arrived while too many messages waited to be written.
    #[error("too many messages waiting to be written: a QoS 0 message was dropped")]
    Overloaded,
    /// The registry or the hub failed; retrying may help when the store is unavailable.
    #[error("{0}")]
    Failed(Error),
}

impl IngestError {
    /// Whether the same message may succeed later (the store was unavailable).
    pub fn retryable(&self) -> bool {
        matches!(self, IngestError::Failed(e) if e.kind == ErrorKind::ServiceUnavailable)
    }

    /// The `outcome` label of `dothi_iot_messages_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            IngestError::UnknownApikey => "unknown_apikey",
            IngestError::UnknownDevice(_) => "unknown_device",
            IngestError::Ambiguous(_) => "ambiguous",
            IngestError::Malformed(_) => "malformed",
            IngestError::Overloaded => "overloaded",
            IngestError::Failed(_) => "failed",
        }
    }

    /// The error for an HTTP client.
    pub fn to_api(&self) -> Error {
        match self {
            IngestError::UnknownApikey | IngestError::UnknownDevice(_) => {
                Error::not_found(self.to_string())
            }
            IngestError::Ambiguous(_) | IngestError::Malformed(_) => {
                Error::bad_data(self.to_string())
            }
            IngestError::Overloaded => Error::new(ErrorKind::ServiceUnavailable, self.to_string()),
            IngestError::Failed(e) => e.clone(),
        }
    }
}

/// The IoT agent: its registry, and the hub it writes to.
pub struct Agent {
    hub: Arc<Hub>,
    /// The caller of device measures (their API key was checked by the agent).
    telemetry: hub::auth::CallerRef,
    metrics: Arc<Metrics>,
    registry: Registry,
}

impl Agent {
    pub fn new(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Agent {
        let registry = Registry::new(hub.records());
        Agent {
            hub,
            telemetry: Arc::new(hub::auth::Caller::telemetry("iot.measure")),
            metrics,
            registry,
        }
    }

    /// The agent over a hub's application state (its hub and its metrics).
    pub fn for_hub(state: &hub::AppState) -> Agent {
        Agent::new(state.hub.clone(), state.metrics.clone())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Applies a message: one update of the device's entity per object of measures,
    /// each durable when this returns. Measures that do not convert are left out and
    /// reported; the others are written. Nothing is counted here (see [`Agent::count`]),
    /// so that a caller retrying counts a message once.
    pub async fn ingest(&self, msg: &Message<'_>) -> Result<Vec<Ingested>, IngestError> {
        let objects = match msg.payload {
            Payload::Measures(bytes) => measure::objects(bytes),
            Payload::Single { name, value } => {
                if !model::is_key(name) {
                    return Err(IngestError::Malformed(format!(
                        "{name:?} is not a measure name"
                    )));
                }
                measure::single(name, value).map(|o| vec![o])
            }
        }
        .map_err(|e| IngestError::Malformed(e.0))?;
        if !model::is_key(msg.apikey) || !model::is_key(msg.device_id) {
            return Err(IngestError::Malformed(
                "the apikey or device id is empty, too long or holds forbidden characters".into(),
            ));
        }
        let (tenant, device, group) = self.resolve(msg.apikey, msg.device_id).await?;
        let now = ngsi::entity::now();

        // The device's own mappings first, then its group's for other measures.
        let mut attributes: Vec<&model::AttributeMapping> = device.attributes.iter().collect();
        let mut static_list: Vec<&model::StaticAttribute> =
            device.static_attributes.iter().collect();
        let mut explicit = device.explicit_attrs;
        if let Some(g) = &group {
            for a in &g.attributes {
                let measure = a.object_id.as_deref().unwrap_or(&a.name);
                if !attributes.iter().any(|d| {
                    d.object_id.as_deref().unwrap_or(&d.name) == measure || d.name == a.name
                }) {
                    attributes.push(a);
                }
            }
            for s in &g.static_attributes {
                if !static_list.iter().any(|d| d.name == s.name) {
                    static_list.push(s);
                }
            }
            explicit = explicit.or(g.explicit_attrs);
        }
        let mapping = Mapping {
            attributes,
            explicit: explicit.unwrap_or(false),
        };
        let (statics, broken) = measure::statics(&static_list, now);
        for r in &broken {
            tracing::warn!(device_id = msg.device_id, tenant = %tenant, attribute = %r.measure, reason = %r.reason, "static attribute left out");
        }
        let ctx = Context::core();
        let entity_type = ngsi::entity::expand_type(&device.entity_type, &ctx)
            .map_err(|e| IngestError::Failed(Error::new(ErrorKind::InternalError, e.detail)))?;
        // Measures are recorded in the entity's history (with their observation
        // time), not in the audit log: at thousands a second they would drown it.
        let scope = hub::Scope::new(tenant.clone(), ctx, self.telemetry.clone());

        let mut out = Vec::with_capacity(objects.len());
        for object in &objects {
            let update = measure::map_object(object, &mapping, msg.timestamp, now);
            for r in &update.rejected {
                tracing::warn!(device_id = msg.device_id, tenant = %tenant, measure = %r.measure, reason = %r.reason, "measure rejected");
            }
            if let Some(reason) = &update.bad_timestamp {
                tracing::warn!(device_id = msg.device_id, tenant = %tenant, reason = %reason, "observation time refused; the receipt time is used");
            }
            let accepted = update.measures.len();
            if accepted > 0 {
                self.hub
                    .record_measures(
                        &scope,
                        &device.entity_name,
                        vec![entity_type.clone()],
                        update.measures,
                        statics.clone(),
                    )
                    .await
                    .map_err(IngestError::Failed)?;
            }
            out.push(Ingested {
                tenant: tenant.clone(),
                entity_id: device.entity_name.clone(),
                accepted,
                rejected: update.rejected,
                bad_timestamp: update.bad_timestamp,
            });
        }
        Ok(out)
    }

    /// The tenant, device and group a message names; provisions the device when its
    /// group allows it.
    async fn resolve(
        &self,
        apikey: &str,
        device_id: &str,
    ) -> Result<(String, Device, Option<ServiceGroup>), IngestError> {
        match self
            .registry
            .find_device(apikey, device_id)
            .await
            .map_err(IngestError::Failed)?
        {
            Found::One { tenant, record } => {
                let group = self
                    .registry
                    .measure_group(&tenant, apikey)
                    .await
                    .map_err(IngestError::Failed)?;
                return Ok((tenant, record, group));
            }
            Found::Ambiguous => {
                return Err(IngestError::Ambiguous(
                    "this apikey and device id are provisioned in several services",
                ));
            }
            Found::None => {}
        }
        match self
            .registry
            .find_group(apikey)
            .await
            .map_err(IngestError::Failed)?
        {
            Found::None => Err(IngestError::UnknownApikey),
            Found::Ambiguous => Err(IngestError::Ambiguous(
                "this apikey belongs to service groups of several services",
            )),
            Found::One { record: g, .. } if !g.autoprovision => {
                Err(IngestError::UnknownDevice(device_id.to_string()))
            }
            Found::One { tenant, record: g } => {
                let entity_name = model::default_entity_name(&g.entity_type, device_id);
                if !ngsi::entity::is_uri(&entity_name) {
                    return Err(IngestError::Malformed(format!(
                        "device id {device_id:?} does not make an entity id"
                    )));
                }
                let device = Device {
                    device_id: device_id.to_string(),
                    apikey: apikey.to_string(),
                    entity_name,
                    entity_type: g.entity_type.clone(),
                    attributes: Vec::new(),
                    static_attributes: Vec::new(),
                    explicit_attrs: None,
                    protocol: None,
                    transport: None,
                    autoprovisioned: true,
                };
                let device = self
                    .registry
                    .autoprovision(&tenant, device)
                    .await
                    .map_err(IngestError::Failed)?;
                tracing::info!(device_id, tenant = %tenant, entity = %device.entity_name, "device provisioned by its first measure");
                Ok((tenant, device, Some(g)))
            }
        }
    }

    /// Counts a message's outcome in the metrics: `dothi_iot_messages_total`,
    /// `dothi_iot_measures_total` and `dothi_iot_timestamps_rejected_total`, each by
    /// transport. Failures are logged with the device id.
    pub fn count(&self, msg: &Message<'_>, result: &Result<Vec<Ingested>, IngestError>) {
        let transport = msg.transport.label();
        let add = |family: &str, outcome: Option<&str>, n: usize| {
            if n == 0 {
                return;
            }
            let name = match outcome {
                Some(o) => format!("{family}{{transport=\"{transport}\",outcome=\"{o}\"}}"),
                None => format!("{family}{{transport=\"{transport}\"}}"),
            };
            self.metrics.add(&name, n as u64);
        };
        match result {
            Ok(updates) => {
                let accepted: usize = updates.iter().map(|u| u.accepted).sum();
                let rejected: usize = updates.iter().map(|u| u.rejected.len()).sum();
                let times = updates.iter().filter(|u| u.bad_timestamp.is_some()).count();
                let outcome = if accepted > 0 { "accepted" } else { "invalid" };
                add("dothi_iot_messages_total", Some(outcome), 1);
                add("dothi_iot_measures_total", Some("accepted"), accepted);
                add("dothi_iot_measures_total", Some("rejected"), rejected);
                add("dothi_iot_timestamps_rejected_total", None, times);
                if accepted == 0 {
                    tracing::warn!(
                        device_id = msg.device_id,
                        transport,
                        "no measure of the message could be written"
                    );
                }
            }
            Err(e) => {
                add("dothi_iot_messages_total", Some(e.outcome()), 1);
                tracing::warn!(device_id = msg.device_id, transport, error = %e, "message rejected");
            }
        }
    }
}

/// Sums the updates of a message for an answer: entity, accepted count and rejections.
pub fn summary(updates: &[Ingested]) -> serde_json::Value {
    let accepted: usize = updates.iter().map(|u| u.accepted).sum();
    let rejected: Vec<serde_json::Value> = updates
        .iter()
        .flat_map(|u| &u.rejected)
        .map(|r| serde_json::json!({"measure": r.measure, "reason": r.reason}))
        .collect();
    let mut out = BTreeMap::new();
    if let Some(u) = updates.first() {
        out.insert("entity", serde_json::json!(u.entity_id));
    }
    out.insert("accepted", serde_json::json!(accepted));
    out.insert("rejected", serde_json::json!(rejected));
    if let Some(reason) = updates.iter().find_map(|u| u.bad_timestamp.as_ref()) {
        out.insert("timestampRejected", serde_json::json!(reason));
    }
    serde_json::json!(out)
}
