//! The scorecard's JSON API under `/scorecard/v1`, served beside the hub's. The public
//! summary is anonymous and carries no personal data (no submitter, no approver); the
//! rest needs a signed-in role. Errors are ProblemDetails.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use hub::Scope;
use hub::http::Permission::{Admin, Operate, Public, Read, Write};
use hub::http::gate::Head;
use hub::http::{ApiError, BoundedBody, PathParam, RouteRule, rule};
use ngsi::Error;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::engine::{Confirmation, Scorecard, Submission, TaskUpdate};
use crate::{egov, evidence, maturity, plan};

const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub const ROUTE_RULES: &[RouteRule] = &[
    rule("GET", "/scorecard/v1/public", Public),
    rule("GET", "/scorecard/v1/kpis", Read),
    rule("GET", "/scorecard/v1/kpis/{slug}", Read),
    rule("POST", "/scorecard/v1/kpis/{slug}/submissions", Write),
    rule("POST", "/scorecard/v1/kpis/{slug}/confirm", Write),
    rule("GET", "/scorecard/v1/submissions", Read),
    rule("POST", "/scorecard/v1/submissions/{id}/approve", Admin),
    rule("POST", "/scorecard/v1/submissions/{id}/reject", Admin),
    rule("POST", "/scorecard/v1/recompute", Operate),
    rule("POST", "/scorecard/v1/plan", Admin),
    rule("GET", "/scorecard/v1/tasks", Read),
    rule("GET", "/scorecard/v1/members", Admin),
    rule("GET", "/scorecard/v1/members/me", Read),
    rule("PUT", "/scorecard/v1/members/{actor}", Admin),
    rule("PATCH", "/scorecard/v1/tasks/{number}", Write),
    rule("GET", "/scorecard/v1/maturity", Read),
    rule("PUT", "/scorecard/v1/maturity/criteria", Admin),
    rule("PUT", "/scorecard/v1/maturity/{ward}/{code}", Write),
    rule("GET", "/scorecard/v1/dti", Read),
    rule("GET", "/scorecard/v1/egov", Read),
    rule("POST", "/scorecard/v1/egov/dossiers", Write),
    rule("GET", "/scorecard/v1/export.xlsx", Read),
    rule("POST", "/scorecard/v1/egov/portal-scores", Write),
    rule("POST", "/scorecard/v1/egov/portal-scores.csv", Write),
    rule("POST", "/scorecard/v1/evidence", Write),
    rule("GET", "/scorecard/v1/evidence/{id}", Read),
];

pub fn routes(scorecard: Arc<Scorecard>) -> Router {
    Router::new()
        .route("/scorecard/v1/public", get(public))
        .route("/scorecard/v1/kpis", get(kpis))
        .route("/scorecard/v1/kpis/{slug}", get(kpi))
        .route("/scorecard/v1/kpis/{slug}/submissions", post(submit))
        .route("/scorecard/v1/kpis/{slug}/confirm", post(confirm))
        .route("/scorecard/v1/submissions", get(submissions))
        .route("/scorecard/v1/submissions/{id}/approve", post(approve))
        .route("/scorecard/v1/submissions/{id}/reject", post(reject))
        .route("/scorecard/v1/recompute", post(recompute))
        .route("/scorecard/v1/plan", post(seed))
        .route("/scorecard/v1/tasks", get(tasks))
        .route("/scorecard/v1/members", get(members))
        .route("/scorecard/v1/members/me", get(my_membership))
        .route("/scorecard/v1/members/{actor}", put(set_membership))
        .route("/scorecard/v1/tasks/{number}", patch(update_task))
        .route("/scorecard/v1/maturity", get(maturity_report))
        .route("/scorecard/v1/maturity/criteria", put(replace_criteria))
        .route("/scorecard/v1/maturity/{ward}/{code}", put(assess))
        .route("/scorecard/v1/dti", get(dti))
        .route("/scorecard/v1/egov", get(egov_report))
        .route("/scorecard/v1/egov/dossiers", post(import_dossiers))
        .route("/scorecard/v1/export.xlsx", get(export_xlsx))
        .route("/scorecard/v1/egov/portal-scores", post(portal_scores))
        .route(
            "/scorecard/v1/egov/portal-scores.csv",
            post(portal_scores_csv),
        )
        .route("/scorecard/v1/evidence", post(upload_evidence))
        .route("/scorecard/v1/evidence/{id}", get(download_evidence))
        .with_state(scorecard)
}

/// The scorecard's routes and their permissions, to serve beside the hub's.
pub fn component(scorecard: Arc<Scorecard>) -> hub::Component {
    hub::Component {
        router: routes(scorecard),
        rules: ROUTE_RULES.to_vec(),
    }
}

type Answer = Result<Response, ApiError>;

/// What the routes read before their path and body: the scorecard, and the request's
/// caller and tenant.
struct Call {
    s: Arc<Scorecard>,
    head: Head,
}

impl FromRequestParts<Arc<Scorecard>> for Call {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Scorecard>) -> Result<Self, Infallible> {
        let head = Head::from_request_parts(parts, s).await?;
        Ok(Call { s: s.clone(), head })
    }
}

impl Call {
    /// The caller's scope in the tenant its request names.
    fn scope(&self) -> Result<Scope, ApiError> {
        self.head.scope(hub::auth::Access::Read)
    }
}

/// A body within the size limit (413 beyond, as a ProblemDetails).
type Body = BoundedBody<MAX_BODY_BYTES>;

/// The body as JSON of the expected shape.
fn json<T: DeserializeOwned>(body: &Body) -> Result<T, ApiError> {
    serde_json::from_slice(&body.0)
        .map_err(|e| ApiError(Error::bad_data(format!("invalid body: {e}"))))
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// GET /scorecard/v1/public: the plan's KPIs for everyone, in the default tenant.
async fn public(State(s): State<Arc<Scorecard>>) -> Answer {
    let scope = Scope::system("scorecard-public", String::new());
    let kpis = s.kpis(&scope, true).await?;
    let keep = [
        "slug",
        "id",
        "name",
        "kpiValue",
        "unitCode",
        "maximumValue",
        "target",
        "direction",
        "mode",
        "status",
        "currentStanding",
        "observedAt",
        "calculationFormula",
        "calculationPeriod",
        "organization",
        "planReference",
        "evidence",
        "confirmed",
    ];
    let items: Vec<Value> = kpis
        .into_iter()
        .map(|k| {
            let obj: serde_json::Map<String, Value> = k
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(key, _)| keep.contains(&key.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Value::Object(obj)
        })
        .collect();
    Ok(ok(json!({"kpis": items})))
}

async fn kpis(c: Call) -> Answer {
    let scope = c.scope()?;
    Ok(ok(json!({"kpis": c.s.kpis(&scope, false).await?})))
}

async fn kpi(c: Call, PathParam(slug): PathParam<String>) -> Answer {
    let scope = c.scope()?;
    let found =
        c.s.kpis(&scope, false)
            .await?
            .into_iter()
            .find(|k| k.get("slug").and_then(Value::as_str) == Some(slug.as_str()))
            .ok_or_else(|| ApiError(Error::not_found(format!("no KPI {slug:?}"))))?;
    let mut v = found;
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "history".into(),
            json!(format!(
                "/ngsi-ld/v1/temporal/entities/{}?attrs=kpiValue",
                plan::kpi_id(&slug)
            )),
        );
    }
    Ok(ok(v))
}

async fn submit(c: Call, PathParam(slug): PathParam<String>, body: Body) -> Answer {
    let scope = c.scope()?;
    let sub: Submission = json(&body)?;
    let created = c.s.submit(&scope, &slug, sub).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// An officer confirms a confirmed-mode KPI's current value.
async fn confirm(c: Call, PathParam(slug): PathParam<String>, body: Body) -> Answer {
    let scope = c.scope()?;
    let confirmation: Confirmation = json(&body)?;
    Ok(ok(c.s.confirm(&scope, &slug, confirmation).await?))
}

async fn submissions(c: Call) -> Answer {
    let items = key_values(&c, "type=KpiSubmission").await?;
    Ok(ok(json!({"submissions": items})))
}

/// The entities a query finds in the caller's scope, in key-values form.
async fn key_values(c: &Call, query: &str) -> Result<Vec<Value>, ApiError> {
    let scope = c.scope()?;
    let (_, entities) = crate::sources::run_query(c.s.hub(), &scope, query, true).await?;
    Ok(entities
        .iter()
        .map(|e| Value::Object(crate::engine::keyvalues(e)))
        .collect())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    reason: Option<String>,
}

async fn decide(c: &Call, id: &str, body: &Body, approve: bool) -> Answer {
    let scope = c.scope()?;
    let d: Decision = if body.0.is_empty() {
        Decision::default()
    } else {
        json(body)?
    };
    if d.reason.as_ref().is_some_and(|r| r.len() > 2_000) {
        return Err(ApiError(Error::bad_data("reason is at most 2000 bytes")));
    }
    Ok(ok(c.s.decide(&scope, id, approve, d.reason).await?))
}

async fn approve(c: Call, PathParam(id): PathParam<String>, body: Body) -> Answer {
    decide(&c, &id, &body, true).await
}

async fn reject(c: Call, PathParam(id): PathParam<String>, body: Body) -> Answer {
    decide(&c, &id, &body, false).await
}

async fn recompute(c: Call) -> Answer {
    let scope = c.scope()?;
    scope.check(hub::auth::Access::Write)?;
    Ok(ok(
        json!({"recomputed": c.s.recompute(&scope.tenant).await?}),
    ))
}

async fn seed(c: Call) -> Answer {
    let scope = c.scope()?;
    scope.check(hub::auth::Access::Write)?;
    let created = c.s.seed(&scope.tenant).await?;
    let recomputed = c.s.recompute(&scope.tenant).await?;
    Ok(ok(json!({"created": created, "recomputed": recomputed})))
}

async fn tasks(c: Call) -> Answer {
    let mut items = key_values(&c, "type=PlanTaskGroup").await?;
    items.sort_by_key(|t| t.get("number").and_then(Value::as_u64).unwrap_or(u64::MAX));
    Ok(ok(json!({"tasks": items})))
}

async fn update_task(c: Call, PathParam(number): PathParam<u8>, body: Body) -> Answer {
    let scope = c.scope()?;
    if !(1..=8).contains(&number) {
        return Err(ApiError(Error::not_found(
            "the plan has task groups 1 to 8",
        )));
    }
    let update: TaskUpdate = json(&body)?;
    Ok(ok(c.s.update_task_group(&scope, number, update).await?))
}

async fn members(c: Call) -> Answer {
    let scope = c.scope()?;
    Ok(ok(crate::owners::list(c.s.hub(), &scope).await?))
}

async fn my_membership(c: Call) -> Answer {
    let scope = c.scope()?;
    Ok(ok(crate::owners::mine(c.s.hub(), &scope).await?))
}

async fn set_membership(c: Call, PathParam(actor): PathParam<String>, body: Body) -> Answer {
    let scope = c.scope()?;
    let membership: crate::owners::Membership = json(&body)?;
    c.s.set_membership(&scope, &actor, membership.agencies)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn maturity_report(c: Call) -> Answer {
    let scope = c.scope()?;
    Ok(ok(maturity::report(c.s.hub(), &scope).await?))
}

async fn replace_criteria(c: Call, body: Body) -> Answer {
    let scope = c.scope()?;
    scope.check(hub::auth::Access::Write)?;
    let list: maturity::Checklist = json(&body)?;
    maturity::replace_checklist(c.s.hub(), &scope.tenant, list).await?;
    Ok(ok(maturity::report(c.s.hub(), &scope).await?))
}

async fn assess(
    c: Call,
    PathParam((ward, code)): PathParam<(String, String)>,
    body: Body,
) -> Answer {
    let scope = c.scope()?;
    let a: maturity::Assessment = json(&body)?;
    if a.assessor.is_some() || a.assessed_at.is_some() {
        return Err(ApiError(Error::bad_data(
            "assessor and assessedAt are set by the service",
        )));
    }
    Ok(ok(
        maturity::assess(c.s.hub(), &scope, &ward, &code, a).await?
    ))
}

async fn dti(c: Call) -> Answer {
    c.scope()?;
    Ok(ok(maturity::dti()))
}

async fn egov_report(c: Call) -> Answer {
    let scope = c.scope()?;
    Ok(ok(egov::report(c.s.hub(), &scope).await?))
}

async fn import_dossiers(c: Call, body: Body) -> Answer {
    let scope = c.scope()?;
    Ok(ok(egov::import(c.s.hub(), &scope, &body.0).await?))
}

/// GET /scorecard/v1/export.xlsx
async fn export_xlsx(c: Call) -> Answer {
    let scope = c.scope()?;
    let bytes = crate::export::workbook(&c.s, &scope).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"bang-diem-ke-hoach.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The body of `POST /scorecard/v1/egov/portal-scores`: the portal's export, the
/// department to read (the province's code), and the period and evidence of the
/// submission it becomes.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PortalScores {
    export: Value,
    department: String,
    period_end: chrono::NaiveDate,
    evidence_url: String,
}

/// Turns the national portal's 766 export into a pending submission of the
/// `egov-766` KPI, with its group scores; an admin approves it as any other.
async fn portal_scores(c: Call, body: Body) -> Answer {
    let scope = c.scope()?;
    let p: PortalScores = json(&body)?;
    let (value, groups) = egov::portal_scores(&p.export, &p.department)?;
    let sub = Submission {
        value,
        period_end: p.period_end,
        evidence_url: Some(p.evidence_url),
        evidence_file: None,
        note: Some(format!(
            "national portal export, department {}",
            p.department
        )),
        rank: None,
        group_scores: Some(groups),
    };
    let created = c.s.submit(&scope, "egov-766", sub).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// The query of `POST /scorecard/v1/egov/portal-scores.csv`: the department to read,
/// and the period and evidence of the submission it becomes.
fn csv_submission(
    raw: Option<&str>,
) -> Result<(String, chrono::NaiveDate, Option<String>, Option<String>), ApiError> {
    let p = hub::http::params::Params::parse(raw)?;
    let department = p
        .get("department")
        .ok_or_else(|| ApiError(Error::bad_data("the query needs department")))?
        .to_string();
    let period_end = p
        .get("periodEnd")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            ApiError(Error::bad_data(
                "the query needs periodEnd, a date YYYY-MM-DD",
            ))
        })?;
    Ok((
        department,
        period_end,
        p.get("evidenceUrl").map(str::to_string),
        p.get("evidenceFile").map(str::to_string),
    ))
}

/// The national portal's 766 scores as its CSV export (one department a row): the
/// department's row becomes a pending `egov-766` submission; a file with any bad row
/// is refused whole.
async fn portal_scores_csv(
    c: Call,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: Body,
) -> Answer {
    let scope = c.scope()?;
    let (department, period_end, evidence_url, evidence_file) = csv_submission(raw.as_deref())?;
    let (value, groups) = egov::portal_scores_csv(&body.0, &department)?;
    let sub = Submission {
        value,
        period_end,
        evidence_url,
        evidence_file,
        note: Some(format!(
            "national portal CSV export, department {department}"
        )),
        rank: None,
        group_scores: Some(groups),
    };
    let created = c.s.submit(&scope, "egov-766", sub).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// An evidence file: the body is the file itself (PDF, PNG or JPEG, at most 10 MB),
/// `?name=` its name for people.
async fn upload_evidence(
    c: Call,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: BoundedBody<{ evidence::MAX_BYTES }>,
) -> Answer {
    let scope = c.scope()?;
    let p = hub::http::params::Params::parse(raw.as_deref())?;
    let name = p.get("name").map(str::to_string);
    let described = evidence::upload(c.s.hub(), &scope, body.0.to_vec(), name).await?;
    Ok((StatusCode::CREATED, axum::Json(described)).into_response())
}

/// An evidence file, to signed-in readers of its tenant; each download is audited.
async fn download_evidence(c: Call, PathParam(key): PathParam<String>) -> Answer {
    let scope = c.scope()?;
    let (kind, bytes) = evidence::download(c.s.hub(), &scope, &key).await?;
    c.s.audit_action(&scope, "download evidence", evidence::file_id(&key))
        .await;
    let disposition = format!(
        "attachment; filename=\"evidence-{key}.{}\"",
        kind.extension()
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                kind.media_type().to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                "nosniff".to_string(),
            ),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}
