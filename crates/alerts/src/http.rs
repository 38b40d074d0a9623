//! The HTTP API under `/alerts/v1/`: rules (CRUD), alerts (list, read, acknowledge,
//! assign, resolve) and backtests. Errors are ProblemDetails, as everywhere in dothi.
//! The tenant is the `NGSILD-Tenant` header's, as on the NGSI-LD API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, MatchedPath, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hub::Scope;
use hub::auth::Access;
use hub::http::gate::Head;
use hub::http::params::Params;
use hub::http::{
    ApiError, BoundedBody, PathParam, Permission, RouteRule, method_not_allowed, rule,
};
use ngsi::render::{Format, RenderOptions, render_entity};
use ngsi::{Context, Entity, Error, ErrorKind};
use serde_json::{Value, json};
use store::RegistryWrite;

use crate::alert::ALERT_TYPE;
use crate::backtest::{self, BacktestRequest};
use crate::policy::{InhibitionSpec, PolicySpec, Record, SilenceSpec};
use crate::rule::RuleSpec;
use crate::service::{Alerts, HandAction};

/// Largest request body.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest comment or assignee.
const MAX_COMMENT: usize = 2_000;

pub fn routes(alerts: Arc<Alerts>) -> Router {
    let router = stored_routes::<RuleSpec>(Router::new());
    let router = stored_routes::<PolicySpec>(router);
    let router = stored_routes::<SilenceSpec>(router);
    let router = stored_routes::<InhibitionSpec>(router);
    router
        .route("/alerts/v1/alerts", get(list_alerts))
        .route("/alerts/v1/alerts/{id}", get(get_alert))
        .route("/alerts/v1/alerts/{id}/acknowledge", post(act))
        .route("/alerts/v1/alerts/{id}/assign", post(act))
        .route("/alerts/v1/alerts/{id}/resolve", post(act))
        .route("/alerts/v1/backtest", post(run_backtest))
        .route("/alerts/v1/stream", get(crate::stream::stream))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(alerts)
}

/// Viewers read rules and alerts; operators and admins change rules and act on alerts.
pub const ROUTE_RULES: &[RouteRule] = &[
    rule("GET", "/alerts/v1/rules", Permission::Read),
    rule("POST", "/alerts/v1/rules", Permission::Operate),
    rule("GET", "/alerts/v1/rules/{id}", Permission::Read),
    rule("PUT", "/alerts/v1/rules/{id}", Permission::Operate),
    rule("DELETE", "/alerts/v1/rules/{id}", Permission::Operate),
    rule("GET", "/alerts/v1/alerts", Permission::Read),
    rule("GET", "/alerts/v1/alerts/{id}", Permission::Read),
    rule(
        "POST",
        "/alerts/v1/alerts/{id}/acknowledge",
        Permission::Operate,
    ),
    rule("POST", "/alerts/v1/alerts/{id}/assign", Permission::Operate),
    rule(
        "POST",
        "/alerts/v1/alerts/{id}/resolve",
        Permission::Operate,
    ),
    rule("POST", "/alerts/v1/backtest", Permission::Read),
    rule("GET", "/alerts/v1/stream", Permission::Read),
    // Policies name contacts and webhook URLs (which may hold tokens): operators
    // read them too.
    rule("GET", "/alerts/v1/policies", Permission::Operate),
    rule("POST", "/alerts/v1/policies", Permission::Operate),
    rule("GET", "/alerts/v1/policies/{id}", Permission::Operate),
    rule("PUT", "/alerts/v1/policies/{id}", Permission::Operate),
    rule("DELETE", "/alerts/v1/policies/{id}", Permission::Operate),
    rule("GET", "/alerts/v1/silences", Permission::Read),
    rule("POST", "/alerts/v1/silences", Permission::Operate),
    rule("GET", "/alerts/v1/silences/{id}", Permission::Read),
    rule("PUT", "/alerts/v1/silences/{id}", Permission::Operate),
    rule("DELETE", "/alerts/v1/silences/{id}", Permission::Operate),
    rule("GET", "/alerts/v1/inhibitions", Permission::Read),
    rule("POST", "/alerts/v1/inhibitions", Permission::Operate),
    rule("GET", "/alerts/v1/inhibitions/{id}", Permission::Read),
    rule("PUT", "/alerts/v1/inhibitions/{id}", Permission::Operate),
    rule("DELETE", "/alerts/v1/inhibitions/{id}", Permission::Operate),
];

/// The service's routes and their permissions, to serve beside the hub's.
pub fn component(alerts: Arc<Alerts>) -> hub::Component {
    hub::Component {
        router: routes(alerts),
        rules: ROUTE_RULES.to_vec(),
    }
}

type Answer = Result<Response, ApiError>;

/// A JSON body, read within the size limit (Null when empty).
struct JsonBody(Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BoundedBody(bytes) = BoundedBody::<MAX_BODY_BYTES>::from_request(req, state).await?;
        if bytes.is_empty() {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError(Error::bad_data(format!("the body is not JSON: {e}"))))
    }
}

/// The reader's scope, then the query parameters and their paging (`limit` at most
/// 1,000).
fn listing(head: &Head, raw: Option<String>) -> Result<(Scope, Params, u64, u64), ApiError> {
    let scope = head.scope(Access::Read)?;
    let p = Params::parse(raw.as_deref())?;
    let (limit, offset, _) = hub::http::params::paging(&Params(
        p.0.iter()
            .filter(|(k, _)| *k == "limit" || *k == "offset")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))?;
    Ok((scope, p, limit as u64, offset as u64))
}

/// A rule, policy, silence or inhibition as the API shows it.
fn stored_json(item: &impl serde::Serialize) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// 201 Created: what was stored, and where it is now read.
fn created(location: String, body: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}

/// A replacement's body takes the path's id; one that names another is refused.
fn same_id(body: &mut Value, id: &str) -> Result<(), ApiError> {
    match body.get("id") {
        None => {
            if let Some(obj) = body.as_object_mut() {
                obj.insert("id".into(), Value::String(id.to_string()));
            }
            Ok(())
        }
        Some(Value::String(given)) if given == id => Ok(()),
        Some(_) => Err(ApiError(Error::bad_data(
            "the body's id differs from the path's",
        ))),
    }
}

// Alerts.

/// An alert in concise form (keyValues), short names.
pub fn alert_json(e: &Entity) -> Value {
    let ctx = Context::core();
    Value::Object(render_entity(
        e,
        &RenderOptions {
            format: Format::KeyValues,
            ..RenderOptions::new(&ctx)
        },
    ))
}

fn check_word(name: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty()
        || v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError(Error::bad_data(format!(
            "{name} must be 1 to 64 letters, digits, - or _"
        ))));
    }
    Ok(())
}

async fn list_alerts(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    RawQuery(raw): RawQuery,
) -> Answer {
    let (scope, p, limit, offset) = listing(&head, raw)?;
    let mut terms = Vec::new();
    for (name, attr) in [
        ("status", "status"),
        ("rule", "rule"),
        ("severity", "severity"),
    ] {
        if let Some(v) = p.get(name) {
            check_word(name, v)?;
            terms.push(format!("{attr}==\"{v}\""));
        }
    }
    if p.flag("open")? {
        terms.push("status!=\"resolved\"".into());
    }
    let spec = hub::http::params::QuerySpec {
        types: Some(ALERT_TYPE.into()),
        q: (!terms.is_empty()).then(|| terms.join(";")),
        ..Default::default()
    };
    let query = spec.build(&scope.ctx, limit as usize, offset as usize, true)?;
    let page = match alerts.hub().query(&scope, query).await {
        Ok(page) => page,
        Err(e) if e.kind == ErrorKind::NonExistentTenant => store::QueryPage::default(),
        Err(e) => return Err(e.into()),
    };
    let items: Vec<Value> = page.entities.iter().map(alert_json).collect();
    Ok(
        axum::Json(json!({"count": page.count.unwrap_or(items.len() as u64), "alerts": items}))
            .into_response(),
    )
}

async fn get_alert(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    PathParam(id): PathParam<String>,
) -> Answer {
    let scope = head.scope(Access::Read)?;
    let e = alerts.hub().get_entity(&scope, &id).await?;
    if !e.has_type(&scope.ctx.expand(ALERT_TYPE)) {
        return Err(ApiError(Error::not_found(format!("no alert {id}"))));
    }
    Ok(axum::Json(alert_json(&e)).into_response())
}

fn text(body: &Value, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_COMMENT => Ok(Some(s.clone())),
        Some(_) => Err(ApiError(Error::bad_data(format!(
            "{name} must be a text of at most {MAX_COMMENT} characters"
        )))),
    }
}

/// `POST /alerts/v1/alerts/{id}/acknowledge`, `.../assign` (with an `assignee`) and
/// `.../resolve`, each with an optional `comment`; the route names the action (and
/// so does the audit log).
async fn act(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    route: MatchedPath,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    let action = route.as_str().rsplit('/').next().unwrap_or_default();
    if !body.is_null() && !body.is_object() {
        return Err(ApiError(Error::bad_data("the body is a JSON object")));
    }
    let action = match action {
        "acknowledge" => HandAction::Acknowledge,
        "resolve" => HandAction::Resolve,
        "assign" => HandAction::Assign(
            text(&body, "assignee")?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ApiError(Error::bad_data("assign needs an assignee")))?,
        ),
        other => {
            return Err(ApiError(Error::not_found(format!(
                "no action {other:?}: acknowledge, assign or resolve"
            ))));
        }
    };
    let scope = head.scope(Access::Write)?;
    let comment = text(&body, "comment")?;
    let e = alerts.act(&scope, &id, action, comment).await?;
    Ok(axum::Json(alert_json(&e)).into_response())
}

async fn run_backtest(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    JsonBody(body): JsonBody,
) -> Answer {
    let scope = head.scope(Access::Read)?;
    let req = BacktestRequest::from_json(&body, alerts.now())?;
    let report = backtest::run(&alerts, &scope, req).await?;
    Ok(axum::Json(report).into_response())
}

// Rules, policies, silences and inhibitions: the same five routes each.

/// A page of stored items, and how many there are in all.
type Listed<T> = Result<(u64, Vec<T>), Error>;

/// What the API keeps under `/alerts/v1/{PLURAL}`: rules, and the records (policies,
/// silences, inhibitions); the service checks and stores each kind its own way.
trait Stored: serde::Serialize + Send + Sized + 'static {
    /// The last segment of its routes and its list's member.
    const PLURAL: &'static str;
    fn from_json(body: &Value) -> Result<Self, Error>;
    fn id(&self) -> &str;
    fn put(
        self,
        alerts: &Alerts,
        scope: &Scope,
        mode: RegistryWrite,
    ) -> impl Future<Output = Result<Self, Error>> + Send;
    fn get(
        alerts: &Alerts,
        scope: &Scope,
        id: &str,
    ) -> impl Future<Output = Result<Self, Error>> + Send;
    fn list(
        alerts: &Alerts,
        scope: &Scope,
        offset: u64,
        limit: u64,
    ) -> impl Future<Output = Listed<Self>> + Send;
    fn delete(
        alerts: &Alerts,
        scope: &Scope,
        id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Stored for RuleSpec {
    const PLURAL: &'static str = "rules";

    fn from_json(body: &Value) -> Result<Self, Error> {
        RuleSpec::from_json(body)
    }

    fn id(&self) -> &str {
        &self.id
    }

    async fn put(self, alerts: &Alerts, scope: &Scope, mode: RegistryWrite) -> Result<Self, Error> {
        Ok(alerts.put_rule(scope, self, mode).await?.spec)
    }

    async fn get(alerts: &Alerts, scope: &Scope, id: &str) -> Result<Self, Error> {
        alerts.get_rule(scope, id).await
    }

    async fn list(alerts: &Alerts, scope: &Scope, offset: u64, limit: u64) -> Listed<Self> {
        alerts.list_rules(scope, offset, limit).await
    }

    async fn delete(alerts: &Alerts, scope: &Scope, id: &str) -> Result<(), Error> {
        alerts.delete_rule(scope, id).await
    }
}

impl<T: Record + 'static> Stored for T {
    const PLURAL: &'static str = T::PLURAL;

    fn from_json(body: &Value) -> Result<Self, Error> {
        crate::policy::from_json(body)
    }

    fn id(&self) -> &str {
        Record::id(self)
    }

    async fn put(self, alerts: &Alerts, scope: &Scope, mode: RegistryWrite) -> Result<Self, Error> {
        alerts.put_record(scope, self, mode).await
    }

    async fn get(alerts: &Alerts, scope: &Scope, id: &str) -> Result<Self, Error> {
        alerts.get_record(scope, id).await
    }

    async fn list(alerts: &Alerts, scope: &Scope, offset: u64, limit: u64) -> Listed<Self> {
        alerts.list_records(scope, offset, limit).await
    }

    async fn delete(alerts: &Alerts, scope: &Scope, id: &str) -> Result<(), Error> {
        alerts.delete_record::<T>(scope, id).await
    }
}

fn stored_routes<T: Stored>(router: Router<Arc<Alerts>>) -> Router<Arc<Alerts>> {
    router
        .route(
            &format!("/alerts/v1/{}", T::PLURAL),
            get(list_stored::<T>).post(create_stored::<T>),
        )
        .route(
            &format!("/alerts/v1/{}/{{id}}", T::PLURAL),
            get(get_stored::<T>)
                .put(replace_stored::<T>)
                .delete(delete_stored::<T>),
        )
}

async fn list_stored<T: Stored>(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    RawQuery(raw): RawQuery,
) -> Answer {
    let (scope, _, limit, offset) = listing(&head, raw)?;
    let (count, items) = T::list(&alerts, &scope, offset, limit).await?;
    let items: Vec<Value> = items.iter().map(stored_json).collect();
    Ok(axum::Json(json!({"count": count, T::PLURAL: items})).into_response())
}

async fn create_stored<T: Stored>(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    JsonBody(body): JsonBody,
) -> Answer {
    let scope = head.scope(Access::Write)?;
    let item = T::from_json(&body)?
        .put(&alerts, &scope, RegistryWrite::Create)
        .await?;
    let location = format!("/alerts/v1/{}/{}", T::PLURAL, item.id());
    Ok(created(location, stored_json(&item)))
}

async fn get_stored<T: Stored>(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    PathParam(id): PathParam<String>,
) -> Answer {
    let scope = head.scope(Access::Read)?;
    let item = T::get(&alerts, &scope, &id).await?;
    Ok(axum::Json(stored_json(&item)).into_response())
}

async fn replace_stored<T: Stored>(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    PathParam(id): PathParam<String>,
    JsonBody(mut body): JsonBody,
) -> Answer {
    let scope = head.scope(Access::Write)?;
    same_id(&mut body, &id)?;
    let item = T::from_json(&body)?
        .put(&alerts, &scope, RegistryWrite::Replace)
        .await?;
    Ok(axum::Json(stored_json(&item)).into_response())
}

async fn delete_stored<T: Stored>(
    State(alerts): State<Arc<Alerts>>,
    head: Head,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let scope = head.scope(Access::Write)?;
    T::delete(&alerts, &scope, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
