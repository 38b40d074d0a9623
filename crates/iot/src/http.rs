//! The agent's HTTP API, served beside the hub's: provisioning of service groups
//! (`/iot/services`) and devices (`/iot/devices`), and measures (`POST /iot/json`).
//! Errors are ProblemDetails, as everywhere in dothi.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hub::http::gate::caller_of;
use hub::http::{
    ApiError, BoundedBody, PathParam, Permission, RouteRule, method_not_allowed, rule,
};
use ngsi::Error;
use serde_json::{Value, json};

use crate::agent::{Agent, Message, Payload, Transport, summary};
use crate::model::{self, RESOURCE};
use crate::registry::Page;

/// Largest request body of the agent's routes.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Page size of the lists, by default and at most.
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 1_000;

/// The agent's routes, to merge beside the hub's router (they have no fallback: the
/// hub's answers unknown paths).
pub fn routes(agent: Arc<Agent>) -> Router {
    Router::new()
        .route(
            "/iot/services",
            get(list_groups)
                .post(create_groups)
                .put(update_group)
                .delete(delete_group),
        )
        .route("/iot/devices", get(list_devices).post(create_devices))
        .route(
            "/iot/devices/{device_id}",
            get(get_device).put(update_device).delete(delete_device),
        )
        .route(RESOURCE, post(measures))
        .route("/iot/json/attrs/{name}", post(single_measure))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(agent)
}

/// What each route of the agent needs: provisioning is for operators; measures carry
/// their group's API key (the FIWARE convention), checked by the agent.
pub const ROUTE_RULES: &[RouteRule] = &[
    rule("GET", "/iot/services", Permission::Operate),
    rule("POST", "/iot/services", Permission::Operate),
    rule("PUT", "/iot/services", Permission::Operate),
    rule("DELETE", "/iot/services", Permission::Operate),
    rule("GET", "/iot/devices", Permission::Operate),
    rule("POST", "/iot/devices", Permission::Operate),
    rule("GET", "/iot/devices/{device_id}", Permission::Operate),
    rule("PUT", "/iot/devices/{device_id}", Permission::Operate),
    rule("DELETE", "/iot/devices/{device_id}", Permission::Operate),
    rule("POST", RESOURCE, Permission::KeyInRequest),
    rule("POST", "/iot/json/attrs/{name}", Permission::KeyInRequest),
];

/// The agent's routes and their permissions, to serve beside the hub's.
pub fn component(agent: Arc<Agent>) -> hub::Component {
    hub::Component {
        router: routes(agent),
        rules: ROUTE_RULES.to_vec(),
    }
}

type Answer = Result<Response, ApiError>;

/// The agent and the tenant a provisioning request is for, the caller's grant on it
/// checked.
struct InTenant {
    tenant: String,
    agent: Arc<Agent>,
}

impl FromRequestParts<Arc<Agent>> for InTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, agent: &Arc<Agent>) -> Result<Self, ApiError> {
        let tenant = tenant(&parts.headers, &caller_of(&parts.extensions))?;
        Ok(InTenant {
            tenant,
            agent: agent.clone(),
        })
    }
}

/// A request body, read within the size limit (413 beyond, as a ProblemDetails).
type BodyBytes = BoundedBody<MAX_BODY_BYTES>;

fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(Error::bad_data(format!("the body is not JSON: {e}"))))
}

/// The tenant: `Fiware-Service`, or `NGSILD-Tenant` (they must agree when both are
/// given), else the default tenant. `Fiware-ServicePath` is not used. Provisioning
/// in a tenant needs a grant on it ([`hub::auth::Caller::check`]).
fn tenant(headers: &HeaderMap, caller: &hub::auth::Caller) -> Result<String, ApiError> {
    let read = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_string())
                    .map_err(|_| ApiError(Error::bad_data(format!("unreadable {name} header"))))
            })
            .transpose()
    };
    let t = match (read("fiware-service")?, read("NGSILD-Tenant")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError(Error::bad_data(
                "Fiware-Service and NGSILD-Tenant name different tenants",
            )));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => String::new(),
    };
    // The hub's rule for tenant names, and the caller's grant on this one.
    hub::http::negotiate::check_tenant_name(&t)?;
    caller.check(&t, hub::auth::Access::Write)?;
    Ok(t)
}

/// The query parameters, decoded.
fn query(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn number(
    params: &[(String, String)],
    name: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match param(params, name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError(Error::bad_data(format!(
                "{name} must be a whole number from 0 to {max}"
            )))),
        },
    }
}

fn paging(params: &[(String, String)]) -> Result<(u64, u64), ApiError> {
    Ok((
        number(params, "offset", 0, u64::from(u32::MAX))?,
        number(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
    ))
}

/// The group a request names by `resource` and `apikey`.
fn group_key(params: &[(String, String)]) -> Result<String, ApiError> {
    if let Some(r) = param(params, "resource")
        && r != RESOURCE
    {
        return Err(ApiError(Error::not_found(format!(
            "no service group of resource {r:?} (only {RESOURCE} is served)"
        ))));
    }
    param(params, "apikey")
        .map(str::to_string)
        .ok_or_else(|| ApiError(Error::bad_data("the apikey parameter is required")))
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

/// A page of a list as the IoT Agent answers it: the total count, and the page's items
/// under `key`.
fn listing<T>(page: Page<T>, key: &str, render: impl Fn(&T) -> Value) -> Response {
    let items: Vec<Value> = page.items.iter().map(render).collect();
    axum::Json(json!({"count": page.count, key: items})).into_response()
}

// Service groups.

async fn create_groups(
    InTenant { agent, tenant }: InTenant,
    BoundedBody(body): BodyBytes,
) -> Answer {
    let body = json_body(&body)?;
    let mut groups = Vec::new();
    for (i, item) in model::items(&body, "services")?.iter().enumerate() {
        let at = format!("services[{i}]");
        groups.push(model::parse_group(at.clone(), item)?.into_group(&at)?);
    }
    agent.registry().create_groups(&tenant, &groups).await?;
    Ok(status(StatusCode::CREATED))
}

async fn list_groups(InTenant { agent, tenant }: InTenant, RawQuery(raw): RawQuery) -> Answer {
    let (offset, limit) = paging(&query(raw))?;
    let page = agent.registry().groups(&tenant, offset, limit).await?;
    Ok(listing(page, "services", |g| g.render(&tenant)))
}

async fn update_group(
    InTenant { agent, tenant }: InTenant,
    RawQuery(raw): RawQuery,
    BoundedBody(body): BodyBytes,
) -> Answer {
    let apikey = group_key(&query(raw))?;
    let body = json_body(&body)?;
    let change = model::parse_group("the body".into(), &body)?;
    let mut group = agent
        .registry()
        .group(&tenant, &apikey)
        .await?
        .ok_or_else(|| ApiError(Error::not_found("no service group with this apikey")))?;
    change.apply_to(&mut group)?;
    agent.registry().replace_group(&tenant, &group).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn delete_group(InTenant { agent, tenant }: InTenant, RawQuery(raw): RawQuery) -> Answer {
    let params = query(raw);
    let apikey = group_key(&params)?;
    if !agent.registry().delete_group(&tenant, &apikey).await? {
        return Err(ApiError(Error::not_found(
            "no service group with this apikey",
        )));
    }
    // `device=true` removes the group's devices too, as the IoT Agent does.
    if param(&params, "device") == Some("true") {
        let n = agent.registry().delete_devices_of(&tenant, &apikey).await?;
        tracing::info!(tenant = %tenant, devices = n, "devices of a deleted service group removed");
    }
    Ok(status(StatusCode::NO_CONTENT))
}

// Devices.

async fn create_devices(
    InTenant { agent, tenant }: InTenant,
    BoundedBody(body): BodyBytes,
) -> Answer {
    let body = json_body(&body)?;
    let items = model::items(&body, "devices")?;
    let only = agent.registry().only_group(&tenant).await?;
    let mut devices = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("devices[{i}]");
        let input = model::parse_device(at.clone(), item)?;
        // The group of the device's own apikey, else the tenant's only group.
        let group = match &input.apikey {
            Some(k) => agent.registry().group(&tenant, k).await?,
            None => only.clone(),
        };
        devices.push(input.into_device(&at, group.as_ref())?);
    }
    agent.registry().create_devices(&tenant, &devices).await?;
    Ok(status(StatusCode::CREATED))
}

async fn list_devices(InTenant { agent, tenant }: InTenant, RawQuery(raw): RawQuery) -> Answer {
    let (offset, limit) = paging(&query(raw))?;
    let page = agent.registry().devices(&tenant, offset, limit).await?;
    Ok(listing(page, "devices", |d| d.render(&tenant)))
}

fn no_device(id: &str) -> ApiError {
    ApiError(Error::not_found(format!("device {id:?} not found")))
}

async fn get_device(
    InTenant { agent, tenant }: InTenant,
    PathParam(id): PathParam<String>,
) -> Answer {
    let device = agent
        .registry()
        .device(&tenant, &id)
        .await?
        .ok_or_else(|| no_device(&id))?;
    Ok(axum::Json(device.render(&tenant)).into_response())
}

async fn update_device(
    InTenant { agent, tenant }: InTenant,
    PathParam(id): PathParam<String>,
    BoundedBody(body): BodyBytes,
) -> Answer {
    let body = json_body(&body)?;
    let change = model::parse_device("the body".into(), &body)?;
    let mut device = agent
        .registry()
        .device(&tenant, &id)
        .await?
        .ok_or_else(|| no_device(&id))?;
    change.apply_to(&mut device)?;
    agent.registry().replace_device(&tenant, &device).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn delete_device(
    InTenant { agent, tenant }: InTenant,
    PathParam(id): PathParam<String>,
) -> Answer {
    if !agent.registry().delete_device(&tenant, &id).await? {
        return Err(no_device(&id));
    }
    Ok(status(StatusCode::NO_CONTENT))
}

// Measures.

async fn ingest(agent: &Agent, raw: Option<String>, payload: Payload<'_>) -> Answer {
    let params = query(raw);
    let apikey = param(&params, "k")
        .ok_or_else(|| ApiError(Error::bad_data("the k parameter (apikey) is required")))?;
    let device_id = param(&params, "i")
        .ok_or_else(|| ApiError(Error::bad_data("the i parameter (device id) is required")))?;
    let msg = Message {
        transport: Transport::Http,
        apikey,
        device_id,
        payload,
        timestamp: param(&params, "t"),
    };
    let result = agent.ingest(&msg).await;
    agent.count(&msg, &result);
    let updates = result.map_err(|e| ApiError(e.to_api()))?;
    if updates.iter().all(|u| u.accepted == 0) {
        let reasons: Vec<String> = updates
            .iter()
            .flat_map(|u| &u.rejected)
            .map(|r| format!("{}: {}", r.measure, r.reason))
            .collect();
        return Err(ApiError(Error::bad_data(format!(
            "no measure could be written ({})",
            if reasons.is_empty() {
                "the message holds none".to_string()
            } else {
                reasons.join("; ")
            }
        ))));
    }
    Ok(axum::Json(summary(&updates)).into_response())
}

async fn measures(
    State(agent): State<Arc<Agent>>,
    RawQuery(raw): RawQuery,
    BoundedBody(body): BodyBytes,
) -> Answer {
    ingest(&agent, raw, Payload::Measures(&body)).await
}

async fn single_measure(
    State(agent): State<Arc<Agent>>,
    PathParam(name): PathParam<String>,
    RawQuery(raw): RawQuery,
    BoundedBody(body): BodyBytes,
) -> Answer {
    ingest(
        &agent,
        raw,
        Payload::Single {
            name: &name,
            value: &body,
        },
    )
    .await
}
