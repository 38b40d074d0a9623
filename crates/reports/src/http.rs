//! The routes of the service: Open311 at `/open311/v2/` ([`crate::open311`]), and
//! `/reports/v1/` for staff (the inbox, actions, statistics, the reporter's contact for
//! those holding the right, the holiday calendar), for the reporter holding a
//! tracking token (their report, their contact, erasure, rating) and for anyone (the
//! categories, aggregated statistics, the public page's list of reports, photos).
//! JSON, errors as ProblemDetails.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use hub::Scope;
use hub::auth::Access;
use hub::auth::CallerRef;
use hub::http::gate::caller_of;
use hub::http::{ApiError, PathParam, Permission, RouteRule, rule};
use ngsi::{Context, Error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::calendar::Holiday;
use crate::model::{Category, Report, Stage};
use crate::open311::{self, Params};
use crate::public::{PublicReport, RecentAnswers};
use crate::service::{PageMark, ReportFilter, Reports, TENANT};
use crate::stats::By;
use crate::workflow::Action;

const MAX_JSON: usize = 1024 * 1024;

/// Every route and what it needs. Open311 is public: a key, when sent, is checked by
/// the service, and answers carry no personal data either way.
pub const ROUTE_RULES: &[RouteRule] = &[
    rule("GET", "/open311/v2/{file}", Permission::Public),
    rule("POST", "/open311/v2/{file}", Permission::KeyInRequest),
    rule("GET", "/open311/v2/services/{file}", Permission::Public),
    rule("GET", "/open311/v2/requests/{file}", Permission::Public),
    rule("GET", "/open311/v2/tokens/{file}", Permission::Public),
    rule("GET", "/reports/v1/media/{file}", Permission::Public),
    rule("GET", "/reports/v1/requests", Permission::Read),
    rule("GET", "/reports/v1/requests/{id}", Permission::Read),
    rule(
        "POST",
        "/reports/v1/requests/{id}/actions",
        Permission::Operate,
    ),
    rule("POST", "/reports/v1/actions", Permission::Operate),
    rule(
        "GET",
        "/reports/v1/requests/{id}/reporter",
        Permission::Operate,
    ),
    rule(
        "POST",
        "/reports/v1/requests/{id}/support",
        Permission::Public,
    ),
    rule(
        "PUT",
        "/reports/v1/reporter-access/{actor}",
        Permission::Admin,
    ),
    rule("GET", "/reports/v1/categories", Permission::Public),
    rule("POST", "/reports/v1/categories", Permission::Admin),
    rule("GET", "/reports/v1/stats", Permission::Read),
    rule("GET", "/reports/v1/public/stats", Permission::Public),
    rule("GET", "/reports/v1/public/requests", Permission::Public),
    rule("GET", "/reports/v1/nearby", Permission::Public),
    rule("GET", "/reports/v1/holidays", Permission::Read),
    rule("PUT", "/reports/v1/holidays/{year}", Permission::Admin),
    rule("POST", "/reports/v1/sweep", Permission::Admin),
    rule("GET", "/reports/v1/track/{token}", Permission::Public),
    rule(
        "DELETE",
        "/reports/v1/track/{token}/contact",
        Permission::Public,
    ),
    rule(
        "POST",
        "/reports/v1/track/{token}/rating",
        Permission::Public,
    ),
];

pub fn routes(reports: Arc<Reports>) -> Router {
    let recent = Arc::new(RecentAnswers::default());
    Router::new()
        .route(
            "/open311/v2/{file}",
            get(open311::get_root).post(open311::post_root).layer(
                axum::extract::DefaultBodyLimit::max(open311::MAX_MULTIPART_BYTES),
            ),
        )
        .route("/reports/v1/media/{file}", get(media))
        .route("/open311/v2/services/{file}", get(open311::get_service))
        .route("/open311/v2/requests/{file}", get(open311::get_request))
        .route("/open311/v2/tokens/{file}", get(open311::get_token))
        .route("/reports/v1/requests", get(inbox))
        .route("/reports/v1/requests/{id}", get(one))
        .route("/reports/v1/requests/{id}/actions", post(act))
        .route("/reports/v1/actions", post(bulk))
        .route("/reports/v1/requests/{id}/reporter", get(reporter))
        .route("/reports/v1/requests/{id}/support", post(support))
        .route("/reports/v1/reporter-access/{actor}", put(grant))
        .route(
            "/reports/v1/categories",
            get(list_categories).post(categories),
        )
        .route("/reports/v1/stats", get(staff_stats))
        .route("/reports/v1/public/stats", get(public_stats))
        .route(
            "/reports/v1/public/requests",
            get(move |state, query| public_requests(state, query, recent.clone())),
        )
        .route("/reports/v1/nearby", get(nearby))
        .route("/reports/v1/holidays", get(holidays))
        .route("/reports/v1/holidays/{year}", put(set_holidays))
        .route("/reports/v1/sweep", post(sweep))
        .route("/reports/v1/track/{token}", get(track))
        .route("/reports/v1/track/{token}/contact", delete(erase))
        .route("/reports/v1/track/{token}/rating", post(rate))
        .with_state(reports)
}

type Answer = Result<Response, ApiError>;

/// The service and who calls it: what most routes start from.
pub struct Call {
    pub reports: Arc<Reports>,
    pub caller: CallerRef,
}

impl FromRequestParts<Arc<Reports>> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        reports: &Arc<Reports>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Call {
            reports: reports.clone(),
            caller: caller_of(&parts.extensions),
        })
    }
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.len() > MAX_JSON {
        return Err(Error::bad_data("the body is too large"));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::bad_data(format!("invalid body: {e}")))
}

/// A report as staff see it: every workflow field, the deadline state, never the
/// contact.
pub fn staff_view(r: &Report, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("due".into(), json!(open311::w3c(r.due())));
        m.insert("overdue".into(), json!(r.is_overdue(now)));
    }
    v
}

/// A report as anyone may see it (the tracking page, the public list): no actors.
pub fn public_view(r: &Report, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = staff_view(r, now);
    if let Value::Object(m) = &mut v {
        m.remove("workflowHistory");
        m.remove("extensions");
        m.remove("assignedOfficer");
        if let Some(Value::Array(us)) = m.get_mut("updates") {
            for u in us {
                if let Value::Object(u) = u {
                    u.remove("external_id");
                }
            }
        }
    }
    v
}

/// A response with how long it may be cached (`Cache-Control`).
fn cached(r: impl IntoResponse, cache: &'static str) -> Response {
    ([(header::CACHE_CONTROL, cache)], r).into_response()
}

/// A body of `content_type`, with how long it may be cached.
fn typed(body: impl IntoResponse, content_type: &'static str, cache: &'static str) -> Response {
    cached(([(header::CONTENT_TYPE, content_type)], body), cache)
}

/// A photo (`{id}.jpg`) or its thumbnail (`{id}-thumb.jpg`): immutable, cached.
async fn media(State(reports): State<Arc<Reports>>, PathParam(file): PathParam<String>) -> Answer {
    let Some(stem) = file.strip_suffix(".jpg") else {
        return Err(Error::not_found("no such photo").into());
    };
    let (id, thumb) = match stem.strip_suffix("-thumb") {
        Some(id) => (id, true),
        None => (stem, false),
    };
    let bytes = reports
        .photo(id, thumb)
        .await?
        .ok_or_else(|| Error::not_found("no such photo"))?;
    let mut r = typed(bytes, "image/jpeg", "public, max-age=31536000, immutable");
    if let Ok(v) = HeaderValue::from_str(&format!("\"{stem}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

/// Whether the caller is staff of the reports' tenant (its grants, beyond the role
/// the route asks for: the service reads the reports itself, not in the caller's
/// scope).
fn staff(caller: &hub::auth::Caller, access: Access) -> Result<(), ApiError> {
    caller.check(TENANT, access).map_err(ApiError)
}

async fn inbox(Call { reports, caller }: Call, RawQuery(q): RawQuery) -> Answer {
    staff(&caller, Access::Read)?;
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let stages = match p.get("stage") {
        None => Vec::new(),
        Some(s) => s
            .split(',')
            .map(|x| {
                Stage::parse(x.trim())
                    .ok_or_else(|| Error::bad_data(format!("unknown stage {x:?}")))
            })
            .collect::<Result<_, _>>()?,
    };
    let overdue = flag(&p, "overdue")?;
    let limit = match p.get("limit") {
        None => 200,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| Error::bad_data("limit: 1–1000"))?,
    };
    let urgent = flag(&p, "urgent")?;
    let after = match p.get("after") {
        None => None,
        Some(a) => Some(PageMark::parse(a).ok_or_else(|| {
            Error::bad_data("after: the mark of a page's end, as its next link gives it")
        })?),
    };
    let filter = ReportFilter {
        stages,
        overdue,
        urgent,
        agency: p.get("agency").map(str::to_string),
        commune: p.get("commune").map(str::to_string),
        service_codes: p
            .get("service_code")
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        limit,
        ..Default::default()
    };
    let now = reports.now();
    let page = reports.page(&filter, after.as_ref()).await?;
    let mut response = axum::Json(
        page.reports
            .iter()
            .map(|r| staff_view(r, now))
            .collect::<Vec<_>>(),
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert("X-Total-Count", HeaderValue::from(page.total));
    if let Some(next) = page.next {
        // The same query with `after` set to this page's end.
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in p.0.iter().filter(|(k, _)| k != "after") {
            query.append_pair(k, v);
        }
        query.append_pair("after", &next.encode());
        let link = format!("</reports/v1/requests?{}>; rel=\"next\"", query.finish());
        if let Ok(v) = HeaderValue::from_str(&link) {
            headers.insert(axum::http::header::LINK, v);
        }
    }
    Ok(response)
}

/// A filter that is `true`, `false` or absent.
fn flag(p: &Params, name: &str) -> Result<Option<bool>, Error> {
    match p.get(name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(Error::bad_data(format!("{name} is true or false"))),
    }
}

async fn one(Call { reports, caller }: Call, PathParam(id): PathParam<String>) -> Answer {
    staff(&caller, Access::Read)?;
    let r = reports
        .get(&id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no report {id}")))?;
    Ok(axum::Json(staff_view(&r, reports.now())).into_response())
}

fn staff_scope(caller: hub::auth::CallerRef) -> Scope {
    Scope::new(TENANT, Context::core(), caller)
}

async fn act(
    Call { reports, caller }: Call,
    PathParam(id): PathParam<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    staff(&caller, Access::Write)?;
    let action: Action = body(&bytes)?;
    let r = reports.act(&staff_scope(caller), &id, &action).await?;
    Ok(axum::Json(staff_view(&r, reports.now())).into_response())
}

#[derive(Deserialize)]
struct Bulk {
    ids: Vec<String>,
    action: Action,
}

async fn bulk(Call { reports, caller }: Call, bytes: axum::body::Bytes) -> Answer {
    staff(&caller, Access::Write)?;
    let b: Bulk = body(&bytes)?;
    if b.ids.is_empty() || b.ids.len() > 200 {
        return Err(Error::bad_data("ids: 1–200 reports").into());
    }
    let scope = staff_scope(caller);
    let mut out = Vec::new();
    for id in &b.ids {
        match reports.act(&scope, id, &b.action).await {
            Ok(_) => out.push(json!({"id": id, "ok": true})),
            Err(e) => out.push(json!({"id": id, "ok": false, "error": e.detail})),
        }
    }
    Ok(axum::Json(out).into_response())
}

async fn reporter(Call { reports, caller }: Call, PathParam(id): PathParam<String>) -> Answer {
    let found = reports.reporter(&caller, &id).await?;
    Ok(axum::Json(json!({"service_request_id": id, "reporter": found})).into_response())
}

async fn support(Call { reports, caller }: Call, PathParam(id): PathParam<String>) -> Answer {
    let n = reports.support(&caller, &id).await?;
    Ok(axum::Json(json!({"service_request_id": id, "supporters": n})).into_response())
}

#[derive(Deserialize)]
struct Grant {
    agencies: Vec<String>,
}

async fn grant(
    Call { reports, caller }: Call,
    PathParam(actor): PathParam<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    let g: Grant = body(&bytes)?;
    reports
        .set_reporter_access(&caller, &actor, g.agencies)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The categories as the citizen page shows them: both languages, group, icon,
/// urgency, the agency, the attributes to fill. Nothing personal is in a category.
async fn list_categories(State(reports): State<Arc<Reports>>) -> Answer {
    let cats = reports.categories().await?;
    Ok(cached(axum::Json(cats), "no-cache"))
}

async fn categories(Call { reports, caller }: Call, bytes: axum::body::Bytes) -> Answer {
    let cats: Vec<Category> = body(&bytes)?;
    if cats.is_empty() || cats.len() > 200 {
        return Err(Error::bad_data("1–200 categories").into());
    }
    reports.put_categories(&staff_scope(caller), cats).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

type Window = Option<chrono::DateTime<chrono::Utc>>;

fn stats_query(p: &Params) -> Result<(By, Window, Window), Error> {
    let by = match p.get("by") {
        None => By::All,
        Some(b) => By::parse(b)
            .ok_or_else(|| Error::bad_data("by: agency, commune, category, month or all"))?,
    };
    let date = |k: &str| -> Result<Window, Error> {
        match p.get(k) {
            None => Ok(None),
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| Error::bad_data(format!("{k}: an ISO 8601 date-time"))),
        }
    };
    Ok((by, date("from")?, date("to")?))
}

async fn staff_stats(Call { reports, caller }: Call, RawQuery(q): RawQuery) -> Answer {
    staff(&caller, Access::Read)?;
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let (by, from, to) = stats_query(&p)?;
    Ok(axum::Json(reports.stats(by, from, to).await?).into_response())
}

/// The public page's figures: by category or month, or all (never per agency staff).
async fn public_stats(State(reports): State<Arc<Reports>>, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let (by, from, to) = stats_query(&p)?;
    Ok(axum::Json(reports.stats(by, from, to).await?).into_response())
}

/// The public page's list and map: the newest reports of the last `days` (1–365,
/// default 30), at most `limit` (1–500, default 200), each as [`PublicReport`] shows
/// it. An answer is kept a short while ([`RecentAnswers`]).
async fn public_requests(
    State(reports): State<Arc<Reports>>,
    RawQuery(q): RawQuery,
    recent: Arc<RecentAnswers>,
) -> Answer {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let bounded = |key: &str, default: i64, max: i64| -> Result<i64, Error> {
        match p.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| Error::bad_data(format!("{key}: 1–{max}"))),
        }
    };
    let days = bounded("days", 30, 365)?;
    let limit = bounded("limit", 200, 500)?;
    let body = match recent.get((days, limit)) {
        Some(body) => body,
        None => {
            let now = reports.now();
            let filter = ReportFilter {
                start: Some(now - chrono::TimeDelta::days(days)),
                limit: usize::try_from(limit).unwrap_or(200),
                ..Default::default()
            };
            let list = reports.list(&filter).await?;
            let body = axum::body::Bytes::from(
                json!({
                    "generatedAt": open311::w3c(now),
                    "requests": list.iter().map(|r| PublicReport::of(r, now)).collect::<Vec<_>>(),
                })
                .to_string(),
            );
            recent.put((days, limit), body.clone());
            body
        }
    };
    Ok(typed(body, "application/json", "public, max-age=30"))
}

async fn nearby(State(reports): State<Arc<Reports>>, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let num = |k: &str| {
        p.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .ok_or_else(|| Error::bad_data(format!("{k} is required (a number)")))
    };
    let (lat, lon) = (num("lat")?, num("long")?);
    let code = p
        .get("service_code")
        .ok_or_else(|| Error::bad_data("service_code is required"))?;
    let now = reports.now();
    let found = reports.nearby(code, lon, lat, 50.0).await?;
    Ok(axum::Json(
        found
            .iter()
            .map(|r| public_view(r, now))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn holidays(Call { reports, caller }: Call) -> Answer {
    staff(&caller, Access::Read)?;
    let c = reports.calendar().await?;
    let years: serde_json::Map<String, Value> =
        c.years().map(|(y, d)| (y.to_string(), json!(d))).collect();
    Ok(axum::Json(json!({"years": years})).into_response())
}

async fn set_holidays(
    Call { reports, caller }: Call,
    PathParam(year): PathParam<i32>,
    bytes: axum::body::Bytes,
) -> Answer {
    let days: Vec<Holiday> = body(&bytes)?;
    reports.set_holidays(&caller, year, days).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sweep(State(reports): State<Arc<Reports>>) -> Answer {
    let (closed, erased) = reports.sweep().await?;
    Ok(axum::Json(json!({"closed": closed, "contactsErased": erased})).into_response())
}

async fn track(Call { reports, caller }: Call, PathParam(token): PathParam<String>) -> Answer {
    let (r, contact) = reports.track(&caller, &token).await?;
    let mut v = public_view(&r, reports.now());
    if let Value::Object(m) = &mut v {
        m.insert(
            "yourContact".into(),
            contact.map_or(Value::Null, |c| json!(c)),
        );
    }
    Ok(cached(axum::Json(v), "no-store"))
}

async fn erase(Call { reports, caller }: Call, PathParam(token): PathParam<String>) -> Answer {
    let erased = reports.erase_by_token(&caller, &token).await?;
    Ok(axum::Json(json!({"erased": erased})).into_response())
}

#[derive(Deserialize)]
struct Rating {
    rating: u8,
    #[serde(default)]
    comment: Option<String>,
}

async fn rate(
    Call { reports, caller }: Call,
    PathParam(token): PathParam<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    let r: Rating = body(&bytes)?;
    let report = reports
        .rate_by_token(&caller, &token, r.rating, r.comment)
        .await?;
    Ok(axum::Json(public_view(&report, reports.now())).into_response())
}
