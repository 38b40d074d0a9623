//! `GET /alerts/v1/stream`: the tenant's alerts as server-sent events, for the
//! operations centre's banner. It opens with a `snapshot` event (the alerts not yet
//! resolved), then sends an `alert` event for each Alert entity created or changed,
//! read after its commit from the hub's change feed. A stream that fell behind the
//! feed gets a new `snapshot` event instead of what it missed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use hub::auth::Access;
use hub::http::ApiError;
use hub::http::gate::Head;
use hub::{ChangeKind, Scope};
use ngsi::{Error, ErrorKind};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::alert::ALERT_TYPE;
use crate::http::alert_json;
use crate::service::Alerts;

/// Streams open at once at most (503 beyond).
pub const MAX_STREAMS: usize = 64;
/// Open alerts sent at most in an `open` event.
const MAX_OPEN: usize = 1_000;

/// The alerts of the tenant not yet resolved, newest first.
async fn open_alerts(alerts: &Alerts, scope: &Scope) -> Value {
    let spec = hub::http::params::QuerySpec {
        types: Some(ALERT_TYPE.into()),
        q: Some("status!=\"resolved\"".into()),
        ..Default::default()
    };
    let page = match spec.build(&scope.ctx, MAX_OPEN, 0, false) {
        Ok(query) => alerts.hub().query(scope, query).await.ok(),
        Err(_) => None,
    };
    let mut items: Vec<Value> = page
        .map(|p| p.entities.iter().map(alert_json).collect())
        .unwrap_or_default();
    items.sort_by(|a, b| b["dateIssued"].as_str().cmp(&a["dateIssued"].as_str()));
    json!({"alerts": items})
}

pub async fn stream(State(alerts): State<Arc<Alerts>>, head: Head) -> Response {
    let scope = match head.scope(Access::Read) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Ok(permit) = alerts.streams.clone().try_acquire_owned() else {
        return ApiError(Error::new(
            ErrorKind::ServiceUnavailable,
            "too many open alert streams, retry later",
        ))
        .into_response();
    };
    let feed = alerts.hub().subscribe_changes();
    let first = Event::default()
        .event("snapshot")
        .data(open_alerts(&alerts, &scope).await.to_string());
    let alert_type = scope.ctx.expand(ALERT_TYPE);
    let events = stream::unfold(
        (feed, alerts, scope, permit, alert_type),
        |(mut feed, alerts, scope, permit, alert_type)| async move {
            let event = loop {
                match feed.recv().await {
                    Ok(change) => {
                        if change.tenant != scope.tenant
                            || change.kind == ChangeKind::Deleted
                            || !change.types.contains(&alert_type)
                        {
                            continue;
                        }
                        match alerts.hub().get_entity(&scope, &change.id).await {
                            Ok(e) => {
                                break Event::default()
                                    .event("alert")
                                    .data(alert_json(&e).to_string());
                            }
                            Err(_) => continue,
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        break Event::default()
                            .event("snapshot")
                            .data(open_alerts(&alerts, &scope).await.to_string());
                    }
                    Err(RecvError::Closed) => return None,
                }
            };
            Some((
                Ok::<Event, Infallible>(event),
                (feed, alerts, scope, permit, alert_type),
            ))
        },
    );
    let events = stream::once(async { Ok(first) }).chain(events);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
