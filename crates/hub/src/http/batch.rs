//! /entityOperations: batch create, upsert, update, merge and delete.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ngsi::entity::Reader;
use ngsi::{Entity, Error};
use serde_json::{Value, json};

use super::negotiate::JsonBody;
use super::params::{Params, strings};
use super::{ApiError, AppState};
use crate::service::{BatchItem, MergeItem, Scope};

/// Most entities in one batch.
pub const MAX_BATCH: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/entityOperations/create", post(create))
        .route("/entityOperations/upsert", post(upsert))
        .route("/entityOperations/update", post(update))
        .route("/entityOperations/merge", post(merge))
        .route("/entityOperations/delete", post(delete))
}

fn items(body: &JsonBody) -> Result<&Vec<Value>, Error> {
    // Refused as a whole, not item by item.
    body.check_framing()?;
    let items = body
        .value
        .as_array()
        .ok_or_else(|| Error::bad_data("a batch is a JSON array"))?;
    if items.is_empty() {
        return Err(Error::bad_data("a batch needs at least one item"));
    }
    if items.len() > MAX_BATCH {
        return Err(Error::bad_data(format!(
            "a batch holds at most {MAX_BATCH} items"
        )));
    }
    Ok(items)
}

/// The id an item of a batch names, to report its outcome under: empty when none.
fn item_id(item: &Value) -> String {
    item.get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Parses each entity of a batch; a bad one becomes an error in its place. All items
/// share the tenant; each may carry its own @context.
async fn parse_entities(
    s: &AppState,
    body: &JsonBody,
) -> Result<(Scope, Vec<Result<Entity, (String, Error)>>), Error> {
    let items = items(body)?;
    let tenant_scope = super::negotiate::scope_from_headers(s, &body.headers, &body.caller).await;
    let mut shared: Option<Scope> = None;
    let mut out = Vec::with_capacity(items.len());
    let now = ngsi::entity::now();
    for item in items {
        let id = item_id(item);
        let parsed = async {
            let scope = body.scope_of(s, item).await?;
            let e = Reader {
                ctx: &scope.ctx,
                now,
            }
            .entity(item, None)?;
            if shared.is_none() {
                shared = Some(scope);
            }
            Ok::<_, Error>(e)
        }
        .await;
        out.push(parsed.map_err(|e| (id, e)));
    }
    let scope = match shared {
        Some(scope) => scope,
        None => tenant_scope?,
    };
    Ok((scope, out))
}

fn problem_list(results: &[(String, BatchItem)]) -> (Vec<String>, Vec<Value>) {
    let mut success = Vec::new();
    let mut errors = Vec::new();
    for (id, r) in results {
        match r {
            Ok(_) => success.push(id.clone()),
            Err(e) => errors.push(json!({"entityId": id, "error": e.problem()})),
        }
    }
    (success, errors)
}

fn multi_status(success: Vec<String>, errors: Vec<Value>) -> Response {
    (
        StatusCode::MULTI_STATUS,
        axum::Json(json!({"success": success, "errors": errors})),
    )
        .into_response()
}

/// 204 when every entity of the batch succeeded, else 207 naming each outcome.
fn all_or_multi_status(results: &[(String, BatchItem)]) -> Response {
    let (success, errors) = problem_list(results);
    if errors.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        multi_status(success, errors)
    }
}

/// When every entity of the batch succeeded, 201 with the ids of those created (every
/// one for a create) or 204 when none was; else 207 naming each outcome.
fn created_or_multi_status(results: &[(String, BatchItem)]) -> Response {
    let (success, errors) = problem_list(results);
    if !errors.is_empty() {
        return multi_status(success, errors);
    }
    let created: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|a| a.created))
        .map(|(id, _)| id)
        .collect();
    if created.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::CREATED, axum::Json(json!(created))).into_response()
    }
}

async fn create(State(s): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let (scope, entities) = parse_entities(&s, &body).await?;
    let results = s.hub.batch_create(&scope, entities).await?;
    Ok(created_or_multi_status(&results))
}

async fn upsert(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let options = params.options();
    if options.contains("update") && options.contains("replace") {
        return Err(Error::bad_data("choose one of options=update and options=replace").into());
    }
    let replace = !options.contains("update");
    let (scope, entities) = parse_entities(&s, &body).await?;
    let results = s.hub.batch_upsert(&scope, entities, replace).await?;
    Ok(created_or_multi_status(&results))
}

async fn update(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let overwrite = !params.options().contains("noOverwrite");
    let (scope, entities) = parse_entities(&s, &body).await?;
    let results = s.hub.batch_update(&scope, entities, overwrite).await?;
    let mut results: Vec<(String, BatchItem)> = results;
    // An entity of which some attribute was kept (noOverwrite) is reported among the
    // errors, as Append Entity Attributes answers 207 for it (clauses 5.6.3, 5.6.9);
    // the attributes it did not have are added all the same.
    for (_, r) in results.iter_mut() {
        if let Ok(applied) = r
            && !applied.result.not_updated.is_empty()
        {
            let names: Vec<String> = applied
                .result
                .not_updated
                .iter()
                .map(|(n, _)| scope.ctx.compact(n))
                .collect();
            *r = Err(Error::bad_data(format!(
                "attributes not updated: {}",
                names.join(", ")
            )));
        }
    }
    Ok(all_or_multi_status(&results))
}

async fn merge(State(s): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let items = items(&body)?;
    let scope = super::negotiate::scope_from_headers(&s, &body.headers, &body.caller).await?;
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let id = item_id(item);
        let one = async {
            let item_scope = body.scope_of(&s, item).await?;
            let obj = item
                .as_object()
                .ok_or_else(|| Error::bad_data("each entity of a batch is a JSON object"))?;
            if !ngsi::entity::is_uri(&id) {
                return Err(Error::bad_data("each entity needs an id that is a URI"));
            }
            // JSON null is never a value (NGSI-LD Null is urn:ngsi-ld:null): refused
            // before the entity is looked for.
            if let Some((name, _)) = obj
                .iter()
                .find(|(_, a)| a.is_null() || a.get("value").is_some_and(Value::is_null))
            {
                return Err(Error::bad_data(format!(
                    "{name} is null: urn:ngsi-ld:null deletes an attribute"
                )));
            }
            Ok(MergeItem {
                id: id.clone(),
                body: obj.clone(),
                ctx: item_scope.ctx,
            })
        }
        .await;
        parsed.push(one.map_err(|e| (id, e)));
    }
    let results = s.hub.batch_merge(&scope, parsed).await?;
    Ok(all_or_multi_status(&results))
}

async fn delete(State(s): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let items = items(&body)?;
    let scope = super::negotiate::scope_from_headers(&s, &body.headers, &body.caller).await?;
    let ids = strings(items, "a delete batch is an array of entity ids")?;
    let results = s.hub.batch_delete(&scope, ids).await?;
    Ok(all_or_multi_status(&results))
}
