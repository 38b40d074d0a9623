//! `/auth/v1/`: logging in and out, users, API keys, sessions and the audit log.
//! Everything but logging in is for signed-in callers, and the management of others
//! for admins; every change is audited.

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use ngsi::Error;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::gate::{
    CallerOf, Head, Permission, RouteRule, SESSION_COOKIE, cookie, rule, session_cookie,
};
use super::params::Params;
use super::{ApiError, AppState, PathParam};
use crate::auth::identity::{NewKey, NewUser, OpenedSession, UserChange};
use crate::auth::{Caller, Via, totp};

/// Largest body of these routes.
const MAX_BODY: usize = 64 * 1024;
/// Audit records of one page at most.
const MAX_AUDIT_PAGE: usize = 1_000;

pub const ROUTES: &[RouteRule] = &[
    rule("POST", "/auth/v1/login", Permission::Public),
    rule("GET", "/auth/v1/login-link", Permission::Public),
    rule("POST", "/auth/v1/logout", Permission::Signed),
    rule("GET", "/auth/v1/me", Permission::Signed),
    rule("POST", "/auth/v1/me/totp", Permission::Signed),
    rule("GET", "/auth/v1/users", Permission::Admin),
    rule("POST", "/auth/v1/users", Permission::Admin),
    rule("GET", "/auth/v1/users/{name}", Permission::Admin),
    rule("PATCH", "/auth/v1/users/{name}", Permission::Admin),
    rule("DELETE", "/auth/v1/users/{name}", Permission::Admin),
    rule("POST", "/auth/v1/users/{name}/totp", Permission::Admin),
    rule("GET", "/auth/v1/keys", Permission::Admin),
    rule("POST", "/auth/v1/keys", Permission::Admin),
    rule("DELETE", "/auth/v1/keys/{id}", Permission::Admin),
    rule("GET", "/auth/v1/sessions", Permission::Admin),
    rule("DELETE", "/auth/v1/sessions/{id}", Permission::Admin),
    rule("GET", "/auth/v1/audit", Permission::Admin),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/login", post(login))
        .route("/auth/v1/login-link", get(login_link))
        .route("/auth/v1/logout", post(logout))
        .route("/auth/v1/me", get(me))
        .route("/auth/v1/me/totp", post(enrol_own_totp))
        .route("/auth/v1/users", get(list_users).post(create_user))
        .route(
            "/auth/v1/users/{name}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/auth/v1/users/{name}/totp", post(enrol_totp))
        .route("/auth/v1/keys", get(list_keys).post(create_key))
        .route(
            "/auth/v1/keys/{id}",
            delete(|s, caller, id| revoke(Revocable::Key, s, caller, id)),
        )
        .route("/auth/v1/sessions", get(list_sessions))
        .route(
            "/auth/v1/sessions/{id}",
            delete(|s, caller, id| revoke(Revocable::Session, s, caller, id)),
        )
        .route("/auth/v1/audit", get(audit))
}

type ApiResult = Result<Response, ApiError>;

/// A JSON body of these routes, whose errors are ProblemDetails.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(Error::new(
                ngsi::ErrorKind::UnsupportedMediaType,
                "send application/json",
            )
            .into());
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                Error::new(
                    ngsi::ErrorKind::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            })?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| Error::bad_data(format!("the body does not fit: {e}")).into())
    }
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Audits the caller's change of one user, key or session (`user:…`, `key:…`,
/// `session:…`).
async fn audit_change(s: &AppState, caller: &Caller, target: String) {
    s.identity
        .audit(vec![caller.audit(None, vec![target])])
        .await;
}

fn me_json(caller: &Caller) -> Value {
    let (via, csrf) = match &caller.via {
        Via::Session { csrf, .. } => ("session", Some(csrf.clone())),
        Via::Key { .. } => ("key", None),
        Via::Token => ("token", None),
        Via::Insecure => ("insecure", None),
        Via::System => ("system", None),
        Via::Anonymous => ("anonymous", None),
    };
    json!({
        "actor": caller.actor,
        "name": caller.name,
        "role": caller.role.map(|r| r.as_str()),
        "tenants": caller.tenants,
        "types": caller.types,
        "via": via,
        "csrf": csrf,
    })
}

/// The answer that opens a session: the cookie, and who is now signed in.
fn opened(s: &AppState, opened: OpenedSession) -> Response {
    let body = json!({
        "actor": format!("user:{}", opened.session.username),
        "name": opened.session.username,
        "role": opened.session.role,
        "via": "session",
        "csrf": opened.session.csrf(),
    });
    let mut r = ok(body);
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&opened.token, s.gate.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

async fn login(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    Body(l): Body<Login>,
) -> ApiResult {
    let result = s
        .identity
        .login(
            &l.username,
            &l.password,
            l.totp.as_deref(),
            caller.request.client.clone(),
        )
        .await;
    let mut record = caller.audit(
        None,
        vec![format!("user:{}", l.username.to_ascii_lowercase())],
    );
    record.action = "auth.login".into();
    match result {
        Ok(session) => {
            record.actor = format!("user:{}", session.session.username);
            s.identity.audit(vec![record]).await;
            Ok(opened(&s, session))
        }
        Err(e) => {
            record.outcome = "denied".into();
            record.detail = Some(e.detail.clone());
            s.identity.audit(vec![record]).await;
            Err(e.into())
        }
    }
}

async fn login_link(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    params: Params,
) -> ApiResult {
    let token = params
        .get("token")
        .ok_or_else(|| Error::bad_data("the link has no token"))?;
    let used = s
        .identity
        .use_login_link(token, caller.request.client.clone())
        .await;
    let mut record = caller.audit(None, Vec::new());
    record.action = "auth.login-link".into();
    let session = match used {
        Ok(session) => session,
        Err(e) => {
            record.outcome = "denied".into();
            record.detail = Some(e.detail.clone());
            s.identity.audit(vec![record]).await;
            return Err(e.into());
        }
    };
    record.actor = format!("user:{}", session.session.username);
    record.targets = vec![record.actor.clone()];
    s.identity.audit(vec![record]).await;
    let mut r = opened(&s, session);
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ioc/"));
    Ok(r)
}

/// `POST /auth/v1/logout`, or `?everywhere=true` for every session of the user.
async fn logout(State(s): State<AppState>, head: Head, params: Params) -> ApiResult {
    let everywhere = params.flag("everywhere")?;
    if everywhere && let Some(user) = head.caller.actor.strip_prefix("user:") {
        s.identity.revoke_user_sessions(user).await?;
    } else if let Some(token) = cookie(&head.headers, SESSION_COOKIE) {
        s.identity.end_session(&token).await?;
    }
    let mut record = head.caller.audit(None, vec![head.caller.actor.clone()]);
    record.action = if everywhere {
        "auth.logout-everywhere"
    } else {
        "auth.logout"
    }
    .into();
    s.identity.audit(vec![record]).await;
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie("", s.gate.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn me(CallerOf(caller): CallerOf) -> ApiResult {
    Ok(ok(me_json(&caller)))
}

async fn totp_answer(s: &AppState, caller: &Caller, username: &str) -> ApiResult {
    let secret = s.identity.enrol_totp(username).await?;
    let mut record = caller.audit(None, vec![format!("user:{username}")]);
    record.action = "auth.totp-enrol".into();
    s.identity.audit(vec![record]).await;
    Ok(ok(json!({
        "secret": secret,
        "uri": totp::otpauth_uri("dothi", username, &secret),
    })))
}

async fn enrol_own_totp(State(s): State<AppState>, CallerOf(caller): CallerOf) -> ApiResult {
    let Some(user) = caller.actor.strip_prefix("user:") else {
        return Err(Error::bad_data("only users enrol a second factor").into());
    };
    totp_answer(&s, &caller, user).await
}

async fn enrol_totp(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    PathParam(name): PathParam<String>,
) -> ApiResult {
    s.identity.get_user(&name).await?;
    totp_answer(&s, &caller, &name.to_ascii_lowercase()).await
}

async fn list_users(State(s): State<AppState>) -> ApiResult {
    Ok(ok(json!(s.identity.list_users().await?)))
}

async fn create_user(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    Body(new): Body<NewUser>,
) -> ApiResult {
    let user = s.identity.create_user(new).await?;
    audit_change(&s, &caller, format!("user:{}", user.username)).await;
    Ok((StatusCode::CREATED, axum::Json(json!(user))).into_response())
}

async fn get_user(State(s): State<AppState>, PathParam(name): PathParam<String>) -> ApiResult {
    Ok(ok(json!(s.identity.get_user(&name).await?)))
}

async fn update_user(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    PathParam(name): PathParam<String>,
    Body(change): Body<UserChange>,
) -> ApiResult {
    let user = s.identity.update_user(&name, change).await?;
    audit_change(&s, &caller, format!("user:{}", user.username)).await;
    Ok(ok(json!(user)))
}

async fn delete_user(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    PathParam(name): PathParam<String>,
) -> ApiResult {
    s.identity.delete_user(&name).await?;
    audit_change(&s, &caller, format!("user:{}", name.to_ascii_lowercase())).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_keys(State(s): State<AppState>) -> ApiResult {
    Ok(ok(json!(s.identity.list_keys().await?)))
}

async fn create_key(
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    Body(new): Body<NewKey>,
) -> ApiResult {
    let (view, secret) = s.identity.create_key(new, &caller.actor).await?;
    audit_change(&s, &caller, format!("key:{}", view.id)).await;
    let mut body = json!(view);
    body["key"] = Value::String(secret);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn list_sessions(State(s): State<AppState>, params: Params) -> ApiResult {
    let user = params.get("user");
    let sessions: Vec<Value> = s
        .identity
        .list_sessions(user)
        .await?
        .iter()
        .map(|s| s.shown())
        .collect();
    Ok(ok(Value::Array(sessions)))
}

/// What `DELETE /auth/v1/keys/{id}` and `DELETE /auth/v1/sessions/{id}` revoke.
#[derive(Clone, Copy)]
enum Revocable {
    Key,
    Session,
}

/// Revokes a key or session: 404 when there is none, otherwise audited and 204.
async fn revoke(
    what: Revocable,
    State(s): State<AppState>,
    CallerOf(caller): CallerOf,
    PathParam(id): PathParam<String>,
) -> ApiResult {
    let (kind, found) = match what {
        Revocable::Key => ("key", s.identity.revoke_key(&id).await?),
        Revocable::Session => ("session", s.identity.revoke_session(&id).await?),
    };
    if !found {
        return Err(Error::not_found(format!("no {kind} {id}")).into());
    }
    audit_change(&s, &caller, format!("{kind}:{id}")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn time_param(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, Error> {
    params
        .get(name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Error::bad_data(format!("{name} must be an ISO 8601 date-time")))
        })
        .transpose()
}

async fn audit(State(s): State<AppState>, CallerOf(caller): CallerOf, params: Params) -> ApiResult {
    let limit = match params.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_AUDIT_PAGE).contains(l))
            .ok_or_else(|| Error::bad_data(format!("limit is 1 to {MAX_AUDIT_PAGE}")))?,
        None => 100,
    };
    let before = params
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| Error::bad_data("before is a record id"))
        })
        .transpose()?;
    let filter = store::AuditFilter {
        actor: params.get("actor").map(str::to_string),
        tenant: params.get("tenant").map(|t| {
            if t == "default" {
                String::new()
            } else {
                t.to_string()
            }
        }),
        action: params.get("action").map(str::to_string),
        from: time_param(&params, "from")?,
        to: time_param(&params, "to")?,
        before,
        limit,
    };
    let rows = s.hub.audit_list(&caller, filter).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::from_str::<Value>(&r.text).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("id".into(), json!(r.id));
                m.insert("seq".into(), json!(r.seq));
            }
            v
        })
        .collect();
    Ok(ok(json!({"records": records, "next": next})))
}
