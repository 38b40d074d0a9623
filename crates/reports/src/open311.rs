//! Open311 GeoReport v2 at `/open311/v2/`, in XML (`.xml`) and JSON (`.json`), with
//! FixMyStreet's `servicerequestupdates` extension. Errors are the spec's `errors`
//! documents. No answer, with or without a key, carries personal data: the reporter's
//! contact is not in the report ([`crate::private`]), and `requestor_name` and the
//! like are never written.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use hub::auth::CallerRef;
use hub::http::PathParam;
use ngsi::{Error, ErrorKind};

use crate::doc::Doc;
use crate::http::Call;
use crate::model::{Category, Report, Stage};
use crate::private::Contact;
use crate::service::{JURISDICTION, NewReport, ReportFilter, Reports};

/// Largest form body.
pub const MAX_FORM_BYTES: usize = 256 * 1024;
/// Largest multipart body: 5 photos of 10 MB and the fields.
pub const MAX_MULTIPART_BYTES: usize = 5 * crate::media::MAX_BYTES + 1024 * 1024;
/// Most requests a list returns (the spec's default cap).
const MAX_REQUESTS: usize = 1_000;
const MAX_IDS: usize = 200;

/// The answer's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

/// `name.xml` / `name.json` → (name, format).
fn split(file: &str) -> Option<(&str, Format)> {
    if let Some(n) = file.strip_suffix(".xml") {
        Some((n, Format::Xml))
    } else {
        file.strip_suffix(".json").map(|n| (n, Format::Json))
    }
}

/// The answer to a file name that is neither `.xml` nor `.json`.
fn unknown_file() -> Answer {
    error(
        Format::Xml,
        &Error::not_found("no such resource: use .xml or .json"),
    )
}

fn render(format: Format, root: &'static str, doc: &Doc, status: StatusCode) -> Response {
    let (body, ctype) = match format {
        Format::Xml => (doc.xml(root), "text/xml; charset=utf-8"),
        Format::Json => (
            serde_json::to_string(doc).unwrap_or_default(),
            "application/json; charset=utf-8",
        ),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// The spec's error document (400, 403, 404…); 401 is answered 403 as the spec has
/// no 401.
pub fn error(format: Format, e: &Error) -> Response {
    let mut code = e.kind.status();
    if code == 401 {
        code = 403;
    }
    if code >= 500 {
        tracing::warn!(detail = %e.detail, "open311: server error");
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let doc = Doc::List(
        "error",
        vec![Doc::Obj(vec![
            ("code", Doc::Int(i64::from(code))),
            ("description", Doc::text(e.detail.clone())),
        ])],
    );
    let mut r = render(format, "errors", &doc, status);
    if code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
    }
    r
}

/// Form or query parameters, repeated keys kept.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(bytes: &[u8]) -> Params {
        Params(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn number(&self, key: &str) -> Result<Option<f64>, Error> {
        match self.string(key) {
            None => Ok(None),
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| Error::bad_data(format!("{key} is not a number"))),
        }
    }

    fn date(&self, key: &str) -> Result<Option<DateTime<Utc>>, Error> {
        match self.string(key) {
            None => Ok(None),
            Some(s) => parse_date(&s).map(Some).ok_or_else(|| {
                Error::bad_data(format!("{key}: a W3C date-time, e.g. 2026-03-01T00:00:00Z"))
            }),
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.string(key)
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // A date alone: its start, local time.
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some((d.and_time(chrono::NaiveTime::MIN) - TimeDelta::hours(7)).and_utc())
}

pub fn w3c(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The caller: the gate's (an `Authorization` header), or the `api_key` parameter.
async fn caller(reports: &Reports, gate: CallerRef, params: &Params) -> Result<CallerRef, Error> {
    match params.string("api_key") {
        None => Ok(gate),
        Some(key) => {
            let c = reports
                .identity()
                .bearer(&key, gate.request.clone())
                .await
                .map_err(|_| Error::forbidden("api_key is not valid"))?;
            Ok(Arc::new(c))
        }
    }
}

fn jurisdiction(params: &Params) -> Result<(), Error> {
    match params.string("jurisdiction_id") {
        Some(j) if j != JURISDICTION => Err(Error::not_found(format!(
            "jurisdiction_id {j:?} is not served here (use {JURISDICTION:?})"
        ))),
        _ => Ok(()),
    }
}

type Answer = Response;

/// `GET /open311/v2/{file}`: discovery, services, requests, servicerequestupdates.
pub async fn get_root(
    Call {
        reports,
        caller: gate,
    }: Call,
    PathParam(file): PathParam<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let Some((name, format)) = split(&file) else {
        return unknown_file();
    };
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let result = async {
        jurisdiction(&params)?;
        // A key, when given, must be valid (the answers are the same with or
        // without one).
        caller(&reports, gate, &params).await?;
        match name {
            "discovery" => Ok(("discovery", discovery(&reports))),
            "services" => {
                let cats = reports.categories().await?;
                Ok((
                    "services",
                    Doc::List("service", cats.iter().map(service).collect()),
                ))
            }
            "requests" => {
                let list = list_requests(&reports, &params).await?;
                Ok((
                    "service_requests",
                    Doc::List("request", list.iter().map(|r| r.doc()).collect()),
                ))
            }
            "servicerequestupdates" => {
                let now = reports.now();
                let start = params.date("start_date")?;
                let end = params.date("end_date")?;
                let (start, end) = match (start, end) {
                    (Some(s), Some(e)) => (s, e),
                    (Some(s), None) => (s, now),
                    (None, Some(e)) => (e - TimeDelta::days(1), e),
                    (None, None) => (now - TimeDelta::days(1), now),
                };
                if end < start || end - start > TimeDelta::days(92) {
                    return Err(Error::bad_data(
                        "start_date must come before end_date, at most 92 days apart",
                    ));
                }
                let updates = reports.updates_between(start, end).await?;
                Ok((
                    "service_request_updates",
                    Doc::List(
                        "request_update",
                        updates
                            .iter()
                            .map(|(id, u)| {
                                Doc::Obj(vec![
                                    ("update_id", Doc::text(u.update_id.clone())),
                                    ("service_request_id", Doc::text(id.clone())),
                                    ("status", Doc::text(u.status.clone())),
                                    ("updated_datetime", Doc::text(w3c(u.updated_datetime))),
                                    ("description", Doc::text(u.description.clone())),
                                    ("media_url", Doc::opt(u.media_url.clone())),
                                ])
                            })
                            .collect(),
                    ),
                ))
            }
            _ => Err(Error::not_found(format!("no such resource: {name}"))),
        }
    }
    .await;
    match result {
        Ok((root, doc)) => {
            let mut r = render(format, root, &doc, StatusCode::OK);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => error(format, &e),
    }
}

/// What the GETs of one resource share: the format from the file name, the
/// jurisdiction and the key checked; then `find` gives the document, if there is one
/// of this `id_name`.
async fn one<'a, F, Fut>(
    call: &'a Call,
    file: &'a str,
    query: Option<String>,
    (root, id_name): (&'static str, &'static str),
    find: F,
) -> Answer
where
    F: FnOnce(&'a Reports, &'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Doc>, Error>>,
{
    let Some((name, format)) = split(file) else {
        return unknown_file();
    };
    let reports = &*call.reports;
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let checked = async {
        jurisdiction(&params)?;
        caller(reports, call.caller.clone(), &params)
            .await
            .map(|_| ())
    }
    .await;
    match checked {
        Ok(()) => match find(reports, name).await {
            Ok(Some(doc)) => render(format, root, &doc, StatusCode::OK),
            Ok(None) => error(
                format,
                &Error::not_found(format!("{id_name} {name:?} not found")),
            ),
            Err(e) => error(format, &e),
        },
        Err(e) => error(format, &e),
    }
}

/// `GET /open311/v2/services/{code}.{format}`: a service definition.
pub async fn get_service(call: Call, file: PathParam<String>, query: RawQuery) -> Answer {
    one(
        &call,
        &file.0,
        query.0,
        ("service_definition", "service_code"),
        |r, code| async move { Ok(r.category(code).await?.map(|c| definition(&c))) },
    )
    .await
}

/// `GET /open311/v2/requests/{id}.{format}`: one request (as a list of one).
pub async fn get_request(call: Call, file: PathParam<String>, query: RawQuery) -> Answer {
    one(
        &call,
        &file.0,
        query.0,
        ("service_requests", "service_request_id"),
        |r, id| async move {
            let found = r.get(id).await?;
            Ok(found.map(|x| Doc::List("request", vec![Request::of(&x).doc()])))
        },
    )
    .await
}

/// `GET /open311/v2/tokens/{token}.{format}`.
pub async fn get_token(
    State(reports): State<Arc<Reports>>,
    PathParam(file): PathParam<String>,
) -> Answer {
    let Some((token, format)) = split(&file) else {
        return unknown_file();
    };
    match reports.by_token(token).await {
        Ok(Some(id)) => render(
            format,
            "service_requests",
            &Doc::List(
                "request",
                vec![Doc::Obj(vec![
                    ("service_request_id", Doc::text(id)),
                    ("token", Doc::text(token)),
                ])],
            ),
            StatusCode::OK,
        ),
        Ok(None) => error(format, &Error::not_found("token not found")),
        Err(e) => error(format, &e),
    }
}

/// `POST /open311/v2/{file}`: requests, servicerequestupdates.
pub async fn post_root(
    Call {
        reports,
        caller: gate,
    }: Call,
    PathParam(file): PathParam<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let Some((name, format)) = split(&file) else {
        return unknown_file();
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (params, files) = if ctype.starts_with("application/x-www-form-urlencoded") {
        if body.len() > MAX_FORM_BYTES {
            return error(format, &Error::bad_data("the form is too large"));
        }
        (Params::parse(&body), Vec::new())
    } else if ctype.starts_with("multipart/form-data") {
        match multipart(ctype, body).await {
            Ok(x) => x,
            Err(e) => return error(format, &e),
        }
    } else {
        return error(
            format,
            &Error::bad_data(
                "send the parameters form-encoded (application/x-www-form-urlencoded or multipart/form-data)",
            ),
        );
    };
    let result = async {
        jurisdiction(&params)?;
        let caller = caller(&reports, gate, &params).await?;
        match name {
            "requests" => {
                let mut new = new_report(&params)?;
                new.photos = photos(files).await?;
                let s = reports.submit(&caller, new).await?;
                Ok((
                    "service_requests",
                    Doc::List(
                        "request",
                        vec![Doc::Obj(vec![
                            ("service_request_id", Doc::text(s.service_request_id)),
                            ("token", Doc::text(s.token)),
                            ("service_notice", Doc::text(s.service_notice)),
                            ("account_id", Doc::Null),
                        ])],
                    ),
                ))
            }
            "servicerequestupdates" => {
                let id = params
                    .string("service_request_id")
                    .ok_or_else(|| Error::bad_data("service_request_id is required"))?;
                let status = params
                    .string("status")
                    .ok_or_else(|| Error::bad_data("status is required (OPEN or CLOSED)"))?;
                let update_id = reports
                    .citizen_update(
                        &caller,
                        &id,
                        &status,
                        params.string("description").unwrap_or_default(),
                        params.string("media_url"),
                        params.string("update_id"),
                    )
                    .await?;
                Ok((
                    "service_request_updates",
                    Doc::List(
                        "request_update",
                        vec![Doc::Obj(vec![("update_id", Doc::text(update_id))])],
                    ),
                ))
            }
            _ => Err(Error::new(
                ErrorKind::MethodNotAllowed,
                format!("{name} does not take POST"),
            )),
        }
    }
    .await;
    match result {
        Ok((root, doc)) => render(format, root, &doc, StatusCode::CREATED),
        Err(e) if e.kind == ErrorKind::MethodNotAllowed => {
            error(format, &Error::not_found(e.detail))
        }
        Err(e) => error(format, &e),
    }
}

/// The fields and files of a multipart form: text fields as parameters, files named
/// `photo1`…`photoN`, `photo` or `media` as photos (others are refused).
async fn multipart(ctype: &str, body: Bytes) -> Result<(Params, Vec<Bytes>), Error> {
    let boundary = multer::parse_boundary(ctype)
        .map_err(|_| Error::bad_data("a multipart form needs its boundary"))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(MAX_MULTIPART_BYTES as u64)
            .per_field(crate::media::MAX_BYTES as u64 + 1),
    );
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut params = Vec::new();
    let mut files = Vec::new();
    let bad = |e: multer::Error| Error::bad_data(format!("unreadable multipart form: {e}"));
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if field.file_name().is_some() {
            let is_photo = name == "media"
                || name == "photo"
                || name.strip_prefix("photo").is_some_and(|n| {
                    !n.is_empty() && n.len() <= 2 && n.chars().all(|c| c.is_ascii_digit())
                });
            if !is_photo {
                return Err(Error::bad_data(format!(
                    "file field {name:?}: photos are photo1…photo5 or media"
                )));
            }
            let bytes = field.bytes().await.map_err(|e| match e {
                multer::Error::FieldSizeExceeded { .. } => {
                    Error::bad_data("a photo is at most 10 MB")
                }
                e => bad(e),
            })?;
            if !bytes.is_empty() {
                files.push(bytes);
            }
            if files.len() > crate::media::MAX_PHOTOS {
                return Err(Error::bad_data("at most 5 photos"));
            }
        } else {
            if params.len() >= 200 {
                return Err(Error::bad_data("too many form fields"));
            }
            let text = field.text().await.map_err(bad)?;
            if text.len() > MAX_FORM_BYTES {
                return Err(Error::bad_data("a form field is too large"));
            }
            params.push((name, text));
        }
    }
    Ok((Params(params), files))
}

/// Checks and re-encodes photos off the async threads.
async fn photos(files: Vec<Bytes>) -> Result<Vec<crate::media::Photo>, Error> {
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.into_iter().enumerate() {
        let p = tokio::task::spawn_blocking(move || crate::media::process(&f))
            .await
            .map_err(|_| Error::bad_data("the photo could not be processed"))?
            .map_err(|e| Error::bad_data(format!("photo {}: {e}", i + 1)))?;
        out.push(p);
    }
    Ok(out)
}

/// Names whose `attribute[…]` values are personal (FixMyStreet sends the last name as
/// an attribute too): moved to the contact, never kept with the report.
const PERSONAL_ATTRIBUTES: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "account_id",
    "device_id",
    "deviceid",
    "requestor_name",
];

/// Reads a new report from its form.
pub fn new_report(p: &Params) -> Result<NewReport, Error> {
    let service_code = p
        .string("service_code")
        .ok_or_else(|| Error::bad_data("service_code is required"))?;
    let mut contact = Contact {
        first_name: p.string("first_name"),
        last_name: p.string("last_name"),
        email: p.string("email"),
        phone: p.string("phone"),
        device_id: p.string("device_id").or_else(|| p.string("deviceid")),
        account_id: p.string("account_id"),
    };
    let mut attributes = Vec::new();
    for (k, v) in &p.0 {
        let Some(code) = k
            .strip_prefix("attribute[")
            .and_then(|r| r.strip_suffix(']'))
        else {
            continue;
        };
        if PERSONAL_ATTRIBUTES.contains(&code) {
            let slot = match code {
                "first_name" | "name" | "requestor_name" => &mut contact.first_name,
                "last_name" => &mut contact.last_name,
                "email" => &mut contact.email,
                "phone" => &mut contact.phone,
                "account_id" => &mut contact.account_id,
                _ => &mut contact.device_id,
            };
            if slot.is_none() && !v.trim().is_empty() {
                *slot = Some(v.trim().to_string());
            }
            continue;
        }
        attributes.push((code.to_string(), v.clone()));
    }
    let mut media_urls = p.all("media_url");
    media_urls.retain(|u| !u.trim().is_empty());
    Ok(NewReport {
        jurisdiction_id: p.string("jurisdiction_id"),
        service_code,
        lat: p.number("lat")?,
        long: p.number("long")?,
        address_string: p.string("address_string"),
        address_id: p.string("address_id"),
        description: p.get("description").unwrap_or_default().to_string(),
        media_urls,
        attributes,
        contact,
        consent: p.string("consent"),
        honeypot: p.string("website").is_some(),
        photos: Vec::new(),
    })
}

async fn list_requests(reports: &Reports, p: &Params) -> Result<Vec<Arc<Request>>, Error> {
    let ids = p.list("service_request_id");
    if ids.len() > MAX_IDS {
        return Err(Error::bad_data(format!(
            "at most {MAX_IDS} service_request_id"
        )));
    }
    let status = match p.string("status").as_deref() {
        None => None,
        Some("open") => Some("open".to_string()),
        Some("closed") => Some("closed".to_string()),
        Some(other) => {
            return Err(Error::bad_data(format!("status {other:?}: open or closed")));
        }
    };
    let mut start = p.date("start_date")?;
    let end = p.date("end_date")?;
    if ids.is_empty() && start.is_none() {
        // The spec's default: the last 90 days.
        start = Some(end.unwrap_or_else(|| reports.now()) - TimeDelta::days(90));
    }
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(Error::bad_data("start_date must come before end_date"));
    }
    let bbox = match p.string("bbox") {
        None => None,
        Some(b) => {
            let v: Vec<f64> = b
                .split(',')
                .filter_map(|x| x.trim().parse::<f64>().ok())
                .filter(|x| x.is_finite())
                .collect();
            match v.as_slice() {
                [a, b, c, d] if a <= c && b <= d => Some([*a, *b, *c, *d]),
                _ => return Err(Error::bad_data("bbox: min_long,min_lat,max_long,max_lat")),
            }
        }
    };
    let filter = ReportFilter {
        ids,
        service_codes: p.list("service_code"),
        status,
        start,
        end,
        bbox,
        agency: p.string("agency_responsible"),
        commune: p.string("commune"),
        limit: MAX_REQUESTS,
        ..Default::default()
    };
    reports.open311_requests(&filter).await
}

fn discovery(reports: &Reports) -> Doc {
    let base = format!("{}/open311/v2", reports.config.base_url);
    Doc::Obj(vec![
        ("changeset", Doc::text("2026-01-01T00:00:00Z")),
        (
            "contact",
            Doc::text("Trung tâm Giám sát, điều hành đô thị thông minh tỉnh Quảng Trị"),
        ),
        (
            "key_service",
            Doc::text("API keys are issued by the operations centre's admins"),
        ),
        (
            "endpoints",
            Doc::List(
                "endpoint",
                vec![Doc::Obj(vec![
                    (
                        "specification",
                        Doc::text("http://wiki.open311.org/GeoReport_v2"),
                    ),
                    ("url", Doc::text(base)),
                    ("changeset", Doc::text("2026-01-01T00:00:00Z")),
                    ("type", Doc::text("production")),
                    (
                        "formats",
                        Doc::List(
                            "format",
                            vec![Doc::text("text/xml"), Doc::text("application/json")],
                        ),
                    ),
                ])],
            ),
        ),
    ])
}

fn service(c: &Category) -> Doc {
    Doc::Obj(vec![
        ("service_code", Doc::text(c.service_code.clone())),
        ("service_name", Doc::text(c.service_name.clone())),
        ("description", Doc::text(c.description.clone())),
        ("metadata", Doc::Bool(c.metadata)),
        (
            "type",
            Doc::text(if c.urgent { "realtime" } else { "batch" }),
        ),
        ("keywords", Doc::text(c.keywords.join(","))),
        ("group", Doc::text(c.group.clone())),
    ])
}

fn definition(c: &Category) -> Doc {
    Doc::Obj(vec![
        ("service_code", Doc::text(c.service_code.clone())),
        (
            "attributes",
            Doc::List(
                "attribute",
                c.attributes
                    .iter()
                    .map(|a| {
                        Doc::Obj(vec![
                            ("variable", Doc::Bool(a.variable)),
                            ("code", Doc::text(a.code.clone())),
                            ("datatype", Doc::text(a.datatype.clone())),
                            ("required", Doc::Bool(a.required)),
                            (
                                "datatype_description",
                                Doc::text(a.datatype_description.clone()),
                            ),
                            ("order", Doc::Int(i64::from(a.order))),
                            ("description", Doc::text(a.description.clone())),
                            (
                                "values",
                                Doc::List(
                                    "value",
                                    a.values
                                        .iter()
                                        .map(|v| {
                                            Doc::Obj(vec![
                                                ("key", Doc::text(v.key.clone())),
                                                ("name", Doc::text(v.name.clone())),
                                            ])
                                        })
                                        .collect(),
                                ),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// A request as Open311 shows it: no personal data, whoever asks. The reports' facts
/// keep one for each report, so that a list is answered without reading the reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    service_request_id: String,
    status: String,
    status_notes: Option<String>,
    service_name: String,
    service_code: String,
    description: String,
    agency_responsible: String,
    service_notice: Option<String>,
    requested: DateTime<Utc>,
    updated: DateTime<Utc>,
    expected: DateTime<Utc>,
    address: Option<String>,
    address_id: Option<String>,
    /// (longitude, latitude)
    location: Option<(f64, f64)>,
    media_url: Option<String>,
}

impl Request {
    pub fn of(r: &Report) -> Request {
        // The notes of the stage: the result once resolved, the reason of a refusal.
        let status_notes = match r.stage {
            Stage::Resolved | Stage::Closed => r.result.clone().or(r.status_notes.clone()),
            Stage::Rejected => r.reason.clone(),
            _ => r.status_notes.clone(),
        };
        Request {
            service_request_id: r.service_request_id.clone(),
            status: r.status.clone(),
            status_notes,
            service_name: r.service_name.clone(),
            service_code: r.service_code.clone(),
            description: r.description.clone(),
            agency_responsible: r.agency_responsible.clone(),
            service_notice: r.service_notice.clone(),
            requested: r.requested_datetime,
            updated: r.updated_datetime,
            expected: r.expected_datetime,
            address: r.address_string.clone(),
            address_id: r.address_id.clone(),
            location: r.location.map(|p| (p.lon(), p.lat())),
            media_url: r.media_url.clone(),
        }
    }

    pub fn doc(&self) -> Doc {
        let (lat, long) = match self.location {
            Some((lon, lat)) => (Doc::Num(lat), Doc::Num(lon)),
            None => (Doc::Null, Doc::Null),
        };
        Doc::Obj(vec![
            (
                "service_request_id",
                Doc::text(self.service_request_id.clone()),
            ),
            ("status", Doc::text(self.status.clone())),
            ("status_notes", Doc::opt(self.status_notes.clone())),
            ("service_name", Doc::text(self.service_name.clone())),
            ("service_code", Doc::text(self.service_code.clone())),
            ("description", Doc::text(self.description.clone())),
            (
                "agency_responsible",
                Doc::text(self.agency_responsible.clone()),
            ),
            ("service_notice", Doc::opt(self.service_notice.clone())),
            ("requested_datetime", Doc::text(w3c(self.requested))),
            ("updated_datetime", Doc::text(w3c(self.updated))),
            ("expected_datetime", Doc::text(w3c(self.expected))),
            ("address", Doc::opt(self.address.clone())),
            ("address_id", Doc::opt(self.address_id.clone())),
            ("zipcode", Doc::Null),
            ("lat", lat),
            ("long", long),
            ("media_url", Doc::opt(self.media_url.clone())),
        ])
    }
}
