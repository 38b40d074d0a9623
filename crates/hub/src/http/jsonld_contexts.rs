//! /jsonldContexts: @context management (clauses 5.13.2 to 5.13.5, bound in 6.29 to
//! 6.31): add a hosted context, list the contexts the hub holds (hosted, implicitly
//! created, cached), serve one, delete or reload one. The contexts themselves are
//! kept by [`crate::hosted_contexts`] and [`crate::contexts`].

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use super::entities::{created, no_content};
use super::gate::Head;
use super::negotiate::{JsonBody, own_origin, tenant as request_tenant};
use super::params::Params;
use super::{ApiError, AppState, PathParam};
use crate::hosted_contexts::{ContextKind, HOSTED_PATH};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jsonldContexts", get(list_contexts).post(add_context))
        .route(
            "/jsonldContexts/{id}",
            get(serve_context).delete(delete_context),
        )
}

type ApiResult = Result<Response, ApiError>;

/// A JSON answer as clause 6.29 and 6.30 give it: `application/json`.
fn json(body: Value) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn add_context(State(s): State<AppState>, body: JsonBody) -> ApiResult {
    let id = s.hub.contexts.add_hosted(&body.caller, &body.value).await?;
    Ok(created(HOSTED_PATH, &id))
}

async fn list_contexts(
    State(s): State<AppState>,
    Head { headers, caller }: Head,
    params: Params,
) -> ApiResult {
    let details = params.flag("details")?;
    let kind = params.get("kind").map(ContextKind::parse).transpose()?;
    let tenant = request_tenant(&headers)?;
    let held = s.hub.contexts.list(&caller, &tenant, kind).await?;
    let origin = own_origin(&s, &headers);
    let items = held
        .iter()
        .map(|c| {
            if details {
                c.details(&origin)
            } else {
                Value::String(c.url(&origin))
            }
        })
        .collect();
    Ok(json(Value::Array(items)))
}

/// GET /jsonldContexts/{id}: `id` is a local id, or (percent-encoded) the URL of a
/// cached context or of the core context.
async fn serve_context(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    Head { headers, caller }: Head,
    params: Params,
) -> ApiResult {
    let details = params.flag("details")?;
    let held = s.hub.contexts.find(&caller, &id).await?;
    Ok(json(if details {
        held.details(&own_origin(&s, &headers))
    } else {
        held.body()
    }))
}

async fn delete_context(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    Head { caller, .. }: Head,
    params: Params,
) -> ApiResult {
    let reload = params.flag("reload")?;
    s.hub.contexts.delete(&caller, &id, reload).await?;
    Ok(no_content())
}
