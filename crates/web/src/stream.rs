//! GET /ioc/api/stream: the hub's change feed as server-sent events, for the tenant of
//! the request. Changes are gathered for [`GATHER`] and sent together as one `items`
//! event (each changed entity as the map shows it, the deleted ids, the attributes
//! that changed), so a burst of writes costs the browser one message. A stream that
//! fell behind the feed gets a `resync` event (reload everything) instead of the lost
//! changes; the writers never wait for it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream;
use hub::http::ApiError;
use hub::http::gate::Head;
use hub::{ChangeKind, EntityChange};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{WebState, scope};
use crate::view::{self, COMMUNE_TYPE};

/// How long changes are gathered before they are sent.
pub const GATHER: Duration = Duration::from_millis(200);
/// Entities in one event at most; beyond, the event asks for a resync.
pub const MAX_BATCH: usize = 500;
/// Event streams open at once at most (503 beyond).
pub const MAX_STREAMS: usize = 256;

/// What a stream gathered since its last event.
#[derive(Default)]
struct Gathered {
    /// Id → (kind, changed attribute names, compacted).
    changes: BTreeMap<String, (ChangeKind, Vec<String>)>,
    communes: bool,
    lagged: bool,
}

pub async fn stream(State(state): State<WebState>, Head { headers, caller }: Head) -> Response {
    let scope = match scope(&headers, &caller) {
        Ok(s) => s,
        Err(e) => return ApiError(e).into_response(),
    };
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        return ApiError(ngsi::Error::new(
            ngsi::ErrorKind::ServiceUnavailable,
            "too many open event streams, retry later",
        ))
        .into_response();
    };
    let feed = state.hub.subscribe_changes();
    let hello = Event::default()
        .event("hello")
        .data(json!({"at": Utc::now()}).to_string());
    let events = stream::unfold(
        (feed, state, scope, permit),
        |(mut feed, state, scope, permit)| async move {
            let gathered = gather(&mut feed, &scope.tenant).await?;
            let event = render(&state, &scope, gathered).await;
            Some((Ok::<Event, Infallible>(event), (feed, state, scope, permit)))
        },
    );
    let events = stream::once(async { Ok(hello) }).chain(events);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Waits for the first change of the tenant, then gathers more for [`GATHER`]. None
/// when the feed is closed (the hub is stopping).
async fn gather(
    feed: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<EntityChange>>,
    tenant: &str,
) -> Option<Gathered> {
    let mut gathered = Gathered::default();
    let mut deadline = None;
    loop {
        let next = match deadline {
            None => feed.recv().await,
            Some(d) => match tokio::time::timeout_at(d, feed.recv()).await {
                Ok(r) => r,
                Err(_) => return Some(gathered),
            },
        };
        match next {
            Ok(change) if change.kind == ChangeKind::Missed => gathered.lagged = true,
            Ok(change) if change.tenant == tenant => {
                let ctx = ngsi::Context::core();
                if change.types.iter().any(|t| ctx.compact(t) == COMMUNE_TYPE) {
                    gathered.communes = true;
                }
                let attrs = change.attrs.iter().map(|a| ctx.compact(a)).collect();
                gathered
                    .changes
                    .insert(change.id.clone(), (change.kind, attrs));
            }
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => gathered.lagged = true,
            Err(RecvError::Closed) => return None,
        }
        if gathered.lagged || gathered.changes.len() > MAX_BATCH {
            return Some(gathered);
        }
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + GATHER);
        }
    }
}

async fn render(state: &WebState, scope: &hub::Scope, gathered: Gathered) -> Event {
    if gathered.lagged || gathered.changes.len() > MAX_BATCH {
        return Event::default().event("resync").data("{}");
    }
    let now = Utc::now();
    let mut items = Vec::new();
    let mut removed = Vec::new();
    let mut attrs = BTreeMap::new();
    for (id, (kind, names)) in gathered.changes {
        if kind == ChangeKind::Deleted {
            removed.push(id);
            continue;
        }
        match state.hub.get_entity(scope, &id).await {
            Ok(entity) => items.push(view::item(&entity, &scope.ctx, now)),
            // Deleted since: the next change says so, or it is gone already.
            Err(_) => removed.push(id.clone()),
        }
        attrs.insert(id, names);
    }
    let body = json!({
        "at": now,
        "items": items,
        "removed": removed,
        "attrs": attrs,
        "communes": gathered.communes,
    });
    Event::default().event("items").data(body.to_string())
}
