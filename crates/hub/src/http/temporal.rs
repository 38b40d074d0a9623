//! /temporal/entities and /temporal/entityOperations/query (also at
//! /temporalOperations/query): history read, provided and edited.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, patch, post};
use ngsi::entity::{Reader, expand_attr, format_time, is_uri};
use ngsi::temporal::{TemporalParams, render_aggregated, render_temporal};
use ngsi::{Attribute, Context, Error};
use serde_json::{Map, Value};

use super::entities::{
    AttrDeletion, IdBody, IdHead, body_object, body_scope_for, created, delete_entity, no_content,
    reader, scope_for,
};
use super::negotiate::{JsonBody, accept, respond, scope_from_headers};
use super::params::{Params, QuerySpec, paging, results_count};
use super::{ApiError, AppState, PathParam};
use crate::service::Scope;
use crate::temporal::{TemporalAnswer, TemporalRequest};

#[rustfmt::skip]
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/temporal/entities", get(query_temporal).post(create_temporal))
        // Deleting a temporal entity is deleting the entity: its history goes with it.
        .route("/temporal/entities/{id}", get(retrieve_temporal).delete(delete_entity))
        .route("/temporal/entities/{id}/attrs", post(append_temporal))
        .route("/temporal/entities/{id}/attrs/{attr}", axum::routing::delete(delete_attr_temporal))
        .route("/temporal/entities/{id}/attrs/{attr}/{instance}", patch(patch_instance).delete(delete_instance))
        // v1.8 names it /temporal/entityOperations/query; earlier versions
        // /temporalOperations/query. Both are served.
        .route("/temporalOperations/query", post(query_temporal_post))
        .route("/temporal/entityOperations/query", post(query_temporal_post))
}

type ApiResult = Result<Response, ApiError>;

/// The representations `format` and `options` may name.
const REPRESENTATIONS: &[&str] = &[
    "temporalValues",
    "aggregatedValues",
    "normalized",
    "keyValues",
    "simplified",
    "concise",
];

/// The temporal parameters of a GET (or of a POST query's string). An unknown option
/// or format is refused; `format` names the representation alone when given, and
/// `options` may then only add sysAttrs and the like (clause 6.3.7).
fn temporal_params(p: &Params) -> Result<TemporalParams, Error> {
    p.check_options()?;
    let options = p.options_under_format(REPRESENTATIONS);
    let mut aggregation = (p.get("aggrMethods"), p.get("aggrPeriodDuration"));
    // The aggregation's parameters go with the option `format` overrode.
    if p.get("format").is_some_and(|f| f != "aggregatedValues") {
        aggregation = (None, None);
    }
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    TemporalParams::parse(
        p.get("timerel"),
        p.get("timeAt"),
        p.get("endTimeAt"),
        p.get("timeproperty"),
        p.get("lastN"),
        &options,
        aggregation.0,
        aggregation.1,
    )
}

/// `pick` or `omit` of a temporal answer: members (id, type, attributes) by the names
/// the answer uses. Neither goes with `attrs`, nor with the other.
#[derive(Default)]
struct Projection {
    pick: Option<Vec<String>>,
    omit: Vec<String>,
}

impl Projection {
    fn parse(p: &Params) -> Result<Projection, Error> {
        let (pick, omit) = p.pick_omit(p.get("attrs").is_some())?;
        Ok(Projection {
            pick: (!pick.is_empty()).then_some(pick),
            omit,
        })
    }

    fn apply(&self, body: &mut Value) {
        if let Value::Object(members) = body {
            if let Some(pick) = &self.pick {
                members.retain(|k, _| k == "@context" || pick.contains(k));
            }
            for name in &self.omit {
                members.remove(name);
            }
        }
    }
}

/// The request of `p`, paged by `limit` instances of each attribute.
fn request(p: &Params, ctx: &Context, limit: usize) -> Result<TemporalRequest, Error> {
    let mut params = temporal_params(p)?;
    params.datasets = p
        .get("datasetId")
        .map(TemporalParams::parse_datasets)
        .transpose()?;
    Ok(TemporalRequest {
        params,
        attrs: p
            .list("attrs")
            .iter()
            .map(|n| expand_attr(n, ctx))
            .collect::<Result<_, _>>()?,
        limit,
    })
}

fn render(answer: &TemporalAnswer, req: &TemporalRequest, ctx: &Context, sys: bool) -> Value {
    match answer {
        TemporalAnswer::Instances { entity, .. } => {
            Value::Object(render_temporal(entity, req.params.format, ctx, sys))
        }
        TemporalAnswer::Aggregated { id, types, attrs } => {
            Value::Object(render_aggregated(id, types, attrs, ctx))
        }
    }
}

/// 206 with the time range the answer covers when it is partial (clause 6.3.10):
/// `Content-Range: date-time <start>-<end>/<lastN or *>`; the client asks again from
/// the range's end.
fn partial(mut response: Response, answers: &[TemporalAnswer]) -> Response {
    let Some(range) = answers.iter().find_map(|a| match a {
        TemporalAnswer::Instances { page, .. } => *page,
        TemporalAnswer::Aggregated { .. } => None,
    }) else {
        return response;
    };
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let size = range.size.map_or("*".to_string(), |n| n.to_string());
    if let Ok(v) = HeaderValue::from_str(&format!(
        "date-time {}-{}/{size}",
        format_time(&range.start),
        format_time(&range.end)
    )) {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    response
}

async fn retrieve_temporal(State(s): State<AppState>, resource: IdHead) -> ApiResult {
    let (wanted, scope, params) = resource.read(&s, false).await?;
    let req = request(&params, &scope.ctx, s.config.temporal_page_instances)?;
    let projection = Projection::parse(&params)?;
    let sys = params.options().contains("sysAttrs");
    let answer = s.hub.temporal_entity(&scope, &resource.id, &req).await?;
    let mut body = render(&answer, &req, &scope.ctx, sys);
    projection.apply(&mut body);
    if body
        .as_object()
        .is_some_and(|m| m.keys().all(|k| k == "@context"))
    {
        return Err(Error::not_found("pick or omit leaves nothing of the entity").into());
    }
    let response = respond(StatusCode::OK, wanted, &scope.ctx, body);
    Ok(partial(response, &[answer]))
}

async fn run_temporal_query(
    s: &AppState,
    scope: &Scope,
    spec: QuerySpec,
    params: &Params,
    req: TemporalRequest,
    headers: &HeaderMap,
) -> ApiResult {
    let wanted = accept(headers, false)?;
    let (limit, offset, count) = paging(params)?;
    let query = spec.build(&scope.ctx, limit, offset, count)?;
    let sys = params.options().contains("sysAttrs");
    let projection = Projection::parse(params)?;
    let (answers, total) = s.hub.temporal_query(scope, query, &req).await?;
    let body = Value::Array(
        answers
            .iter()
            .map(|a| {
                let mut body = render(a, &req, &scope.ctx, sys);
                projection.apply(&mut body);
                body
            })
            .collect(),
    );
    let mut response = respond(StatusCode::OK, wanted, &scope.ctx, body);
    results_count(&mut response, total);
    Ok(partial(response, &answers))
}

async fn query_temporal(
    State(s): State<AppState>,
    super::gate::Head { headers, caller }: super::gate::Head,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let params = Params::parse(raw.as_deref())?;
    let spec = QuerySpec::from_params(&params)?;
    // As for entities (clause 6.18.3.2): ids alone do not make a query.
    spec.require_selection()?;
    let req = request(&params, &scope.ctx, s.config.temporal_page_instances)?;
    run_temporal_query(&s, &scope, spec, &params, req, &headers).await
}

/// POST /temporalOperations/query: a Query whose `temporalQ` holds the time
/// parameters; representation options stay in the query string.
async fn query_temporal_post(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: JsonBody,
) -> ApiResult {
    let scope = body.scope(&s).await?;
    let mut params = Params::parse(raw.as_deref())?;
    let spec = QuerySpec::from_query_body(&body.value)?;
    if let Some(tq) = body.value.get("temporalQ") {
        let tq = tq
            .as_object()
            .ok_or_else(|| Error::bad_data("temporalQ must be an object"))?;
        for key in ["timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"] {
            match tq.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) => {
                    params.0.insert(key.into(), v.clone());
                }
                Some(Value::Number(n)) if key == "lastN" => {
                    params.0.insert(key.into(), n.to_string());
                }
                Some(_) => {
                    return Err(Error::bad_data(format!("temporalQ.{key} must be a string")).into());
                }
            }
        }
    }
    let mut req = request(&params, &scope.ctx, s.config.temporal_page_instances)?;
    req.attrs = spec
        .attrs
        .iter()
        .map(|n| expand_attr(n, &scope.ctx))
        .collect::<Result<_, _>>()?;
    run_temporal_query(&s, &scope, spec, &params, req, &body.headers).await
}

/// The instances of a temporal body: every attribute member, each an instance or an
/// array of instances (several may share a datasetId: they are moments in time).
fn instances(obj: &Map<String, Value>, reader: &Reader) -> Result<Vec<(String, Attribute)>, Error> {
    let mut out = Vec::new();
    for (name, value) in obj {
        if matches!(
            name.as_str(),
            "id" | "@id" | "type" | "@type" | "@context" | "scope" | "createdAt" | "modifiedAt"
        ) {
            continue;
        }
        let iri = expand_attr(name, reader.ctx)?;
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            for inst in reader.attribute(name, &iri, item, 0)? {
                out.push((iri.clone(), inst));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::bad_data("the body holds no attribute instance"));
    }
    Ok(out)
}

async fn create_temporal(State(s): State<AppState>, body: JsonBody) -> ApiResult {
    let scope = body.scope(&s).await?;
    let obj = body_object(&body)?;
    let reader = reader(&scope);
    let id = match obj.get("id").or_else(|| obj.get("@id")) {
        Some(Value::String(id)) if is_uri(id) => id.clone(),
        Some(_) => return Err(Error::bad_data("the entity id must be a URI").into()),
        None => return Err(Error::bad_data("the entity has no id").into()),
    };
    let types = reader.types(obj.get("type").or_else(|| obj.get("@type")))?;
    let provided = instances(&obj, &reader)?;
    let is_new = s
        .hub
        .add_history(&scope, &id, types, provided, false)
        .await?;
    if !is_new {
        return Ok(no_content());
    }
    Ok(created("/ngsi-ld/v1/temporal/entities/", &id))
}

async fn append_temporal(State(s): State<AppState>, IdBody { id, body }: IdBody) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let obj = body_object(&body)?;
    let reader = reader(&scope);
    let provided = instances(&obj, &reader)?;
    s.hub
        .add_history(&scope, &id, Vec::new(), provided, true)
        .await?;
    Ok(no_content())
}

async fn delete_attr_temporal(State(s): State<AppState>, deletion: AttrDeletion) -> ApiResult {
    let scope = deletion.scope(&s).await?;
    let name = expand_attr(&deletion.attr, &scope.ctx)?;
    let (dataset_id, delete_all) = deletion.which_instances()?;
    s.hub
        .delete_attr_history(&scope, &deletion.id, &name, dataset_id, delete_all)
        .await?;
    Ok(no_content())
}

async fn patch_instance(
    State(s): State<AppState>,
    PathParam((id, attr, instance)): PathParam<(String, String, String)>,
    body: JsonBody,
) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let name = expand_attr(&attr, &scope.ctx)?;
    let obj = body_object(&body)?;
    // Either `{attr: instance}` or the instance itself.
    let value = match obj.get(&attr) {
        Some(v) if obj.len() == 1 || (obj.len() == 2 && obj.contains_key("@context")) => v.clone(),
        _ => Value::Object(obj),
    };
    let value = match value {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    };
    let reader = reader(&scope);
    let mut parsed = reader.attribute(&attr, &name, &value, 0)?;
    if parsed.len() != 1 {
        return Err(Error::bad_data("the body must hold exactly one instance").into());
    }
    let attribute = parsed.remove(0);
    s.hub
        .edit_instance(&scope, &id, &name, &instance, Some(attribute))
        .await?;
    Ok(no_content())
}

async fn delete_instance(
    State(s): State<AppState>,
    PathParam((id, attr, instance)): PathParam<(String, String, String)>,
    super::gate::Head { headers, caller }: super::gate::Head,
) -> ApiResult {
    let scope = scope_for(&s, &headers, &caller, &id).await?;
    let name = expand_attr(&attr, &scope.ctx)?;
    s.hub
        .edit_instance(&scope, &id, &name, &instance, None)
        .await?;
    Ok(no_content())
}
