//! /subscriptions: create, query, retrieve, update and delete subscriptions
//! (clauses 5.8.1 to 5.8.5). Their notifications are sent by [`crate::notifier`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::entities::{Get, IdBody, IdHead, body_scope_for, created, no_content};
use super::negotiate::{JsonBody, own_origin, respond};
use super::params::{Params, paging, results_count};
use super::{ApiError, AppState};
use crate::subscriptions::status;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/subscriptions",
            get(query_subscriptions).post(create_subscription),
        )
        .route(
            "/subscriptions/{id}",
            get(retrieve_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
}

type ApiResult = Result<Response, ApiError>;

/// Whether `options=sysAttrs` asks for createdAt and modifiedAt.
fn sys_attrs(params: &Params) -> bool {
    params.options().contains("sysAttrs")
}

async fn create_subscription(State(s): State<AppState>, body: JsonBody) -> ApiResult {
    let scope = body.scope(&s).await?;
    let origin = own_origin(&s, &body.headers);
    let id = s
        .hub
        .create_subscription(&scope, &body.value, &origin)
        .await?;
    Ok(created("/ngsi-ld/v1/subscriptions/", &id))
}

async fn query_subscriptions(State(s): State<AppState>, get: Get) -> ApiResult {
    let (wanted, scope, params) = get.read(&s, None, false).await?;
    let (limit, offset, count) = paging(&params)?;
    let page = s
        .hub
        .list_subscriptions(&scope, offset as u64, limit as u64)
        .await?;
    let sys = sys_attrs(&params);
    let body = Value::Array(
        page.subscriptions
            .iter()
            .map(|stored| stored.subscription.render(&scope.ctx, &status(stored), sys))
            .collect(),
    );
    let mut response = respond(StatusCode::OK, wanted, &scope.ctx, body);
    results_count(&mut response, count.then_some(page.count));
    let more = (offset + limit) < page.count as usize;
    super::params::page_links(
        &mut response,
        "/ngsi-ld/v1/subscriptions",
        &params,
        offset,
        limit,
        more,
    );
    Ok(response)
}

async fn retrieve_subscription(State(s): State<AppState>, resource: IdHead) -> ApiResult {
    let (wanted, scope, params) = resource.read(&s, false).await?;
    let stored = s.hub.get_subscription(&scope, &resource.id).await?;
    let body = stored
        .subscription
        .render(&scope.ctx, &status(&stored), sys_attrs(&params));
    Ok(respond(StatusCode::OK, wanted, &scope.ctx, body))
}

async fn update_subscription(State(s): State<AppState>, IdBody { id, body }: IdBody) -> ApiResult {
    let scope = body_scope_for(&s, &body, &id).await?;
    s.hub.update_subscription(&scope, &id, &body.value).await?;
    Ok(no_content())
}

async fn delete_subscription(State(s): State<AppState>, resource: IdHead) -> ApiResult {
    let scope = resource.scope(&s).await?;
    s.hub.delete_subscription(&scope, &resource.id).await?;
    Ok(no_content())
}
