//! /entities: create, retrieve, query, replace, merge, delete, and attribute operations.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use ngsi::entity::{Reader, UpdateResult, is_uri};
use ngsi::render::{render_entity, render_feature};
use ngsi::{Context, Error};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::convert::Infallible;

use super::gate::Head;
use super::join::{Join, LinkSource, join_spec, with_links};
use super::negotiate::{Accept, JsonBody, accept, respond, scope_from_headers};
use super::params::{
    Params, QuerySpec, geometry_property, paging, picked_attributes, render_options, results_count,
};
use super::{ApiError, AppState, PathParam};
use crate::auth::CallerRef;
use crate::service::Scope;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/entities",
            get(query_entities)
                .post(create_entity)
                .put(id_missing)
                .patch(id_missing),
        )
        .route(
            "/entities/{id}",
            get(retrieve_entity)
                .put(replace_entity)
                .patch(merge_entity)
                .delete(delete_entity),
        )
        .route(
            "/entities/{id}/attrs",
            patch(update_attrs).post(append_attrs),
        )
        .route(
            "/entities/{id}/attrs/{attr}",
            patch(patch_attr).put(replace_attr).delete(delete_attr),
        )
        .route("/entityOperations/query", axum::routing::post(query_post))
}

type ApiResult = Result<Response, ApiError>;

pub(super) fn checked_id(id: &str) -> Result<(), Error> {
    if is_uri(id) {
        Ok(())
    } else {
        Err(Error::bad_data(format!("{id:?} is not a URI")))
    }
}

/// The caller's scope for a request without a body about the resource `id`, which is
/// checked to be a URI first.
pub(super) async fn scope_for(
    s: &AppState,
    headers: &HeaderMap,
    caller: &CallerRef,
    id: &str,
) -> Result<Scope, Error> {
    checked_id(id)?;
    scope_from_headers(s, headers, caller).await
}

/// The same for a request with a body, whose scope the body gives.
pub(super) async fn body_scope_for(
    s: &AppState,
    body: &JsonBody,
    id: &str,
) -> Result<Scope, Error> {
    checked_id(id)?;
    body.scope(s).await
}

/// The path's parameters and the JSON body of a write, in the order their errors are
/// answered.
async fn path_and_body<P: DeserializeOwned + Send>(
    req: Request,
    state: &AppState,
) -> Result<(P, JsonBody), ApiError> {
    let (mut parts, body) = req.into_parts();
    let PathParam(path) = PathParam::from_request_parts(&mut parts, state).await?;
    let body = JsonBody::from_request(Request::from_parts(parts, body), state).await?;
    Ok((path, body))
}

/// A write to the resource whose id its path names: the id and the body.
pub(super) struct IdBody {
    pub id: String,
    pub body: JsonBody,
}

impl FromRequest<AppState> for IdBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (id, body) = path_and_body(req, state).await?;
        Ok(IdBody { id, body })
    }
}

/// A write to one attribute of the entity its path names: the entity's id, the
/// attribute's name as the path gives it, and the body.
struct AttrBody {
    id: String,
    attr: String,
    body: JsonBody,
}

impl FromRequest<AppState> for AttrBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ((id, attr), body) = path_and_body(req, state).await?;
        Ok(AttrBody { id, attr, body })
    }
}

/// A request without a body: its head and query string ([`Get::read`] reads a GET's).
pub(super) struct Get {
    headers: HeaderMap,
    caller: CallerRef,
    raw: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Get {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Head { headers, caller } = Head::from_request_parts(parts, state).await?;
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state).await?;
        Ok(Get {
            headers,
            caller,
            raw,
        })
    }
}

impl Get {
    /// What a GET of a resource or of a collection reads of its request, in the order
    /// its errors are answered: the media type wanted (GeoJSON too where
    /// `geo_allowed`), the resource's `id` when the path names one (a URI), the
    /// caller's scope and the query parameters.
    pub(super) async fn read(
        &self,
        s: &AppState,
        id: Option<&str>,
        geo_allowed: bool,
    ) -> Result<(Accept, Scope, Params), Error> {
        let wanted = accept(&self.headers, geo_allowed)?;
        if let Some(id) = id {
            checked_id(id)?;
        }
        let scope = scope_from_headers(s, &self.headers, &self.caller).await?;
        Ok((wanted, scope, Params::parse(self.raw.as_deref())?))
    }
}

/// A request without a body about the resource whose id its path names.
pub(super) struct IdHead {
    pub id: String,
    get: Get,
}

impl<S: Send + Sync> FromRequestParts<S> for IdHead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParam(id) = PathParam::from_request_parts(parts, state).await?;
        let Ok(get) = Get::from_request_parts(parts, state).await;
        Ok(IdHead { id, get })
    }
}

impl IdHead {
    /// [`Get::read`] with the path's id.
    pub(super) async fn read(
        &self,
        s: &AppState,
        geo_allowed: bool,
    ) -> Result<(Accept, Scope, Params), Error> {
        self.get.read(s, Some(&self.id), geo_allowed).await
    }

    /// The caller's scope, once the id is checked to be a URI (a DELETE's).
    pub(super) async fn scope(&self, s: &AppState) -> Result<Scope, Error> {
        scope_for(s, &self.get.headers, &self.get.caller, &self.id).await
    }
}

/// A deletion of an attribute, or of its history: the entity's id and the attribute's
/// name as the path gives them, and the request's head and query string.
pub(super) struct AttrDeletion {
    pub id: String,
    pub attr: String,
    get: Get,
}

impl<S: Send + Sync> FromRequestParts<S> for AttrDeletion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParam((id, attr)) = PathParam::from_request_parts(parts, state).await?;
        let Ok(get) = Get::from_request_parts(parts, state).await;
        Ok(AttrDeletion { id, attr, get })
    }
}

impl AttrDeletion {
    /// The caller's scope, once the id is checked to be a URI.
    pub(super) async fn scope(&self, s: &AppState) -> Result<Scope, Error> {
        scope_for(s, &self.get.headers, &self.get.caller, &self.id).await
    }

    /// The `datasetId` (a URI) and `deleteAll` of the deletion.
    pub(super) fn which_instances(&self) -> Result<(Option<String>, bool), Error> {
        let params = Params::parse(self.get.raw.as_deref())?;
        let dataset_id = params.get("datasetId").map(str::to_string);
        if dataset_id.as_deref().is_some_and(|d| !is_uri(d)) {
            return Err(Error::bad_data("datasetId must be a URI"));
        }
        Ok((dataset_id, params.flag("deleteAll")?))
    }
}

/// A reader of request bodies in the scope's @context, as of now.
pub(super) fn reader(scope: &Scope) -> Reader<'_> {
    Reader {
        ctx: &scope.ctx,
        now: ngsi::entity::now(),
    }
}

pub(super) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(super) fn body_object(body: &JsonBody) -> Result<Map<String, Value>, Error> {
    body.value
        .as_object()
        .cloned()
        .ok_or_else(|| Error::bad_data("the body must be a JSON object"))
}

/// 204 when every attribute was written, else 207 with the UpdateResult.
fn update_response(result: UpdateResult, ctx: &Context) -> Response {
    if result.not_updated.is_empty() {
        return no_content();
    }
    let body = json!({
        "updated": result.updated.iter().map(|n| ctx.compact(n)).collect::<Vec<_>>(),
        "notUpdated": result.not_updated.iter().map(|(n, reason)| json!({"attributeName": ctx.compact(n), "reason": reason})).collect::<Vec<_>>(),
    });
    (StatusCode::MULTI_STATUS, axum::Json(body)).into_response()
}

/// PUT or PATCH without an entity id in the path: a request missing its id (400),
/// not an unknown method.
async fn id_missing() -> ApiResult {
    Err(Error::bad_data("the path needs the entity id: /ngsi-ld/v1/entities/{id}").into())
}

async fn create_entity(State(s): State<AppState>, body: JsonBody) -> ApiResult {
    let scope = body.scope(&s).await?;
    let entity = reader(&scope).entity(&body.value, None)?;
    let id = entity.id.clone();
    s.hub.create_entity(&scope, entity).await?;
    Ok(created("/ngsi-ld/v1/entities/", &id))
}

/// 201 Created, with the Location of the new resource (`collection` + its id, encoded).
pub(super) fn created(collection: &str, id: &str) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{collection}{}", urlencode(id))) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub(super) fn urlencode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn retrieve_entity(State(s): State<AppState>, resource: IdHead) -> ApiResult {
    let (wanted, scope, params) = resource.read(&s, true).await?;
    let attrs = params.strict_list("attrs")?;
    let opts = render_options(&params, &scope.ctx, &attrs)?;
    let join = join_spec(&params)?;
    let entity = s.hub.get_entity(&scope, &resource.id).await?;
    // Asking for attributes the entity does not have finds nothing (clause 5.7.1),
    // as does a pick or omit that leaves no member.
    let selected = opts
        .keep_attrs
        .as_ref()
        .is_none_or(|keep| keep.iter().any(|a| entity.attrs.contains_key(a)));
    if !attrs.is_empty() && !selected {
        return Err(Error::not_found("the entity has none of the requested attributes").into());
    }
    let body = if wanted == Accept::GeoJson {
        render_feature(&entity, &opts, &geometry_property(&params, &scope.ctx)?)
    } else {
        let rendered = render_entity(&entity, &opts);
        if rendered.keys().all(|k| k == "@context") {
            return Err(Error::not_found("pick or omit leaves nothing of the entity").into());
        }
        match join {
            None => Value::Object(rendered),
            Some(join) => {
                let roots = std::slice::from_ref(&entity);
                let projection = params.projection()?;
                let mut joined = with_links(
                    &LinkSource::Caller(&s.hub, &scope),
                    roots,
                    vec![rendered],
                    &opts,
                    projection.as_ref(),
                    join,
                )
                .await?;
                if join.0 == Join::Flat {
                    Value::Array(joined)
                } else {
                    joined.pop().unwrap_or_default()
                }
            }
        }
    };
    Ok(respond(StatusCode::OK, wanted, &scope.ctx, body))
}

async fn run_query(
    s: &AppState,
    scope: &Scope,
    spec: QuerySpec,
    params: &Params,
    wanted: Accept,
    body_params: Vec<(&'static str, String)>,
    page_path: Option<&str>,
) -> ApiResult {
    let (limit, offset, count) = paging(params)?;
    let mut query = spec.build(&scope.ctx, limit, offset, count)?;
    if let Some(picked) = picked_attributes(params, &scope.ctx)? {
        query.attrs = picked;
    }
    let mut params = params.clone();
    for (key, value) in body_params {
        params.0.insert(key.into(), value);
    }
    let opts = render_options(&params, &scope.ctx, &spec.attrs)?;
    let join = join_spec(&params)?;
    let page = s.hub.query(scope, query).await?;
    let body = if wanted == Accept::GeoJson {
        let geometry = geometry_property(&params, &scope.ctx)?;
        json!({
            "type": "FeatureCollection",
            "features": page.entities.iter().map(|e| render_feature(e, &opts, &geometry)).collect::<Vec<_>>(),
        })
    } else {
        let rendered: Vec<Map<String, Value>> = page
            .entities
            .iter()
            .map(|e| render_entity(e, &opts))
            .collect();
        match join {
            None => Value::Array(rendered.into_iter().map(Value::Object).collect()),
            Some(join) => Value::Array(
                with_links(
                    &LinkSource::Caller(&s.hub, scope),
                    &page.entities,
                    rendered,
                    &opts,
                    params.projection()?.as_ref(),
                    join,
                )
                .await?,
            ),
        }
    };
    let mut response = respond(StatusCode::OK, wanted, &scope.ctx, body);
    results_count(&mut response, page.count);
    // Links to the neighbouring pages (GET only: a POST query cannot be linked to).
    if let Some(path) = page_path {
        let more = page.entities.len() == limit
            && page.count.is_none_or(|n| (offset + limit) < n as usize);
        super::params::page_links(&mut response, path, &params, offset, limit, more);
    }
    Ok(response)
}

async fn query_entities(State(s): State<AppState>, get: Get) -> ApiResult {
    let (wanted, scope, params) = get.read(&s, None, true).await?;
    let spec = QuerySpec::from_params(&params)?;
    spec.require_selection()?;
    run_query(
        &s,
        &scope,
        spec,
        &params,
        wanted,
        Vec::new(),
        Some("/ngsi-ld/v1/entities"),
    )
    .await
}

async fn query_post(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: JsonBody,
) -> ApiResult {
    let wanted = accept(&body.headers, true)?;
    let scope = body.scope(&s).await?;
    let params = Params::parse(raw.as_deref())?;
    let spec = QuerySpec::from_query_body(&body.value)?;
    // Members of the Query body that shape the answer as the same GET parameters do
    // (the Query data type), read the same way.
    let mut body_params = Vec::new();
    for key in ["lang", "join", "joinLevel", "geometryProperty"] {
        match body.value.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) => body_params.push((key, v.clone())),
            Some(Value::Number(n)) => body_params.push((key, n.to_string())),
            Some(_) => {
                return Err(Error::bad_data(format!("{key} must be a string")).into());
            }
        }
    }
    run_query(&s, &scope, spec, &params, wanted, body_params, None).await
}

async fn replace_entity(State(s): State<AppState>, IdBody { id, body }: IdBody) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let entity = reader(&scope).entity(&body.value, Some(&id))?;
    s.hub.replace_entity(&scope, entity).await?;
    Ok(no_content())
}

async fn merge_entity(State(s): State<AppState>, IdBody { id, body }: IdBody) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let obj = body_object(&body)?;
    if let Some(body_id) = obj.get("id")
        && body_id.as_str() != Some(id.as_str())
    {
        return Err(Error::bad_data("the id in the body differs from the id in the path").into());
    }
    s.hub.merge_entity(&scope, &id, obj).await?;
    Ok(no_content())
}

pub(super) async fn delete_entity(State(s): State<AppState>, resource: IdHead) -> ApiResult {
    let scope = resource.scope(&s).await?;
    s.hub.delete_entity(&scope, &resource.id).await?;
    Ok(no_content())
}

async fn append_attrs(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    IdBody { id, body }: IdBody,
) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let params = Params::parse(raw.as_deref())?;
    let overwrite = !params.options().contains("noOverwrite");
    let result = s
        .hub
        .append_attrs(&scope, &id, body_object(&body)?, overwrite)
        .await?;
    Ok(update_response(result, &scope.ctx))
}

async fn update_attrs(State(s): State<AppState>, IdBody { id, body }: IdBody) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    let result = s.hub.update_attrs(&scope, &id, body_object(&body)?).await?;
    Ok(update_response(result, &scope.ctx))
}

/// The body of a one-attribute request, without its @context (already applied).
fn attribute_body(body: &JsonBody) -> Value {
    let mut value = body.value.clone();
    if let Value::Object(map) = &mut value {
        map.remove("@context");
    }
    value
}

fn attr_name(attr: &str, scope: &Scope) -> Result<String, Error> {
    // JSON-LD keywords (`@id`, `@invalid`…) name no attribute.
    if attr.starts_with('@') || (!ngsi::entity::is_valid_name(attr) && !is_uri(attr)) {
        return Err(Error::bad_data(format!(
            "{attr:?} is not a valid attribute name"
        )));
    }
    ngsi::entity::expand_attr(attr, &scope.ctx)
}

impl AttrBody {
    /// What the write needs: the caller's scope, the attribute's expanded name and the
    /// body without its @context.
    async fn read(&self, s: &AppState) -> Result<(Scope, String, Value), Error> {
        let scope = body_scope_for(s, &self.body, &self.id).await?;
        let name = attr_name(&self.attr, &scope)?;
        Ok((scope, name, attribute_body(&self.body)))
    }
}

async fn patch_attr(State(s): State<AppState>, write: AttrBody) -> ApiResult {
    let (scope, name, fragment) = write.read(&s).await?;
    s.hub.patch_attr(&scope, &write.id, &name, fragment).await?;
    Ok(no_content())
}

async fn replace_attr(State(s): State<AppState>, write: AttrBody) -> ApiResult {
    let (scope, name, value) = write.read(&s).await?;
    s.hub.replace_attr(&scope, &write.id, &name, value).await?;
    Ok(no_content())
}

async fn delete_attr(State(s): State<AppState>, deletion: AttrDeletion) -> ApiResult {
    let scope = deletion.scope(&s).await?;
    if deletion.attr == "scope" {
        // Scope is an entity member, not an attribute, but is deleted the same way.
        s.hub.delete_scope(&scope, &deletion.id).await?;
        return Ok(no_content());
    }
    let name = attr_name(&deletion.attr, &scope)?;
    let (dataset_id, delete_all) = deletion.which_instances()?;
    s.hub
        .delete_attr(&scope, &deletion.id, &name, dataset_id, delete_all)
        .await?;
    Ok(no_content())
}
