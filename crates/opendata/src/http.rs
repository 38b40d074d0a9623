//! The portal's HTTP routes, served beside the hub's: the CKAN Action API, the
//! DCAT-AP catalogue, and each dataset's downloads. All of them are public (open data
//! needs no identification); the door limits anonymous callers' rate, and the CKAN
//! writes are refused to all but administrators, by the handler and again by the hub.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hub::http::gate::Head;
use hub::http::params::Params;
use hub::http::{ApiError, Permission, RouteRule, rule};
use hub::{Hub, Scope};
use ngsi::{Context, Error};
use serde_json::{Map, Value};

use crate::ckan;
use crate::dcat::{self, CatalogueInfo, PAGE_SIZE, Paging};
use crate::download::{self, Kind};
use crate::model::Dataset;
use crate::portal::{CATALOGUE_TENANT, Portal};

/// Largest body of a CKAN action.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the portal is set up.
#[derive(Debug, Clone, Default)]
pub struct OpendataConfig {
    /// The origin the portal's links use (`https://data.example.gov.vn`); by default
    /// that of each request (its `Host`).
    pub public_url: Option<String>,
}

#[derive(Clone)]
struct App {
    portal: Portal,
    config: Arc<OpendataConfig>,
}

pub const ROUTE_RULES: &[RouteRule] = &[
    rule("GET", "/api/3/action/{action}", Permission::Public),
    rule("POST", "/api/3/action/{action}", Permission::Public),
    rule("GET", "/api/action/{action}", Permission::Public),
    rule("POST", "/api/action/{action}", Permission::Public),
    rule("GET", "/catalog.ttl", Permission::Public),
    rule("GET", "/catalog.jsonld", Permission::Public),
    rule("GET", "/catalog.rdf", Permission::Public),
    rule("GET", "/dataset/{file}", Permission::Public),
    rule("GET", "/dataset/{name}/{file}", Permission::Public),
];

/// The portal's routes and their permissions, to serve beside the hub's.
pub fn component(hub: Arc<Hub>, config: OpendataConfig) -> hub::Component {
    hub::Component {
        router: routes(hub, config),
        rules: ROUTE_RULES.to_vec(),
    }
}

pub fn routes(hub: Arc<Hub>, config: OpendataConfig) -> Router {
    let app = App {
        portal: Portal::new(hub),
        config: Arc::new(config),
    };
    Router::new()
        .route("/api/3/action/{action}", get(action).post(action))
        .route("/api/action/{action}", get(action).post(action))
        .route("/catalog.ttl", get(catalog_file))
        .route("/catalog.jsonld", get(catalog_file))
        .route("/catalog.rdf", get(catalog_file))
        .route("/dataset/{file}", get(dataset_file))
        .route("/dataset/{name}/{file}", get(download))
        .with_state(app)
}

/// The origin links are made with: configured, else the request's `Host` (when it
/// is a plain host name and port).
fn base(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = hub::http::negotiate::request_host(headers);
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn typed(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn action(
    State(app): State<App>,
    head: Head,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = if body.is_empty() {
        // A GET, or a POST without a body: the query string.
        match Params::parse(raw.as_deref()) {
            Ok(p) => Ok(p
                .0
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect::<Map<_, _>>()),
            Err(e) => Err(e.detail),
        }
    } else if body.len() > MAX_BODY_BYTES {
        Err(format!("a body of at most {MAX_BODY_BYTES} bytes"))
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("the body is a JSON object".to_string()),
            Err(e) => Err(format!("the body is not JSON: {e}")),
        }
    };
    let answer = match params {
        Ok(p) => {
            let caller = Scope::new(CATALOGUE_TENANT, Context::core(), head.caller.clone());
            let base = base(&app, &head.headers);
            let cx = ckan::Ctx {
                portal: &app.portal,
                base: &base,
                caller,
            };
            ckan::run(&cx, &name, ckan::Params(p)).await
        }
        Err(message) => ckan::Answer {
            status: 400,
            body: serde_json::json!({
                "help": format!("/api/3/action/help_show?name={name}"),
                "success": false,
                "error": {"__type": "Bad request - JSON Error", "message": message},
            }),
        },
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(answer.body)).into_response()
}

/// Which page, and since when: the catalogue's query parameters.
struct CatalogQuery {
    page: usize,
    modified_since: Option<String>,
}

fn catalog_query(raw: Option<&str>) -> Result<CatalogQuery, Error> {
    let p = Params::parse(raw)?;
    let page = match p.get("page") {
        None => 1,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| Error::bad_data("page is a whole number from 1"))?,
    };
    let modified_since = match p.get("modified_since") {
        None => None,
        Some(s) => Some(ngsi::entity::format_time(
            &ngsi::entity::parse_time(s)
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
                .ok_or_else(|| Error::bad_data("modified_since is an ISO 8601 date or time"))?,
        )),
    };
    Ok(CatalogQuery {
        page,
        modified_since,
    })
}

async fn catalog_graph(
    app: &App,
    headers: &HeaderMap,
    raw: Option<&str>,
    file: &str,
) -> Result<dcat::Graph, ApiError> {
    let q = catalog_query(raw)?;
    let base = base(app, headers);
    let all = app.portal.datasets().await?;
    let datasets: Vec<&Dataset> = all
        .iter()
        .filter(|d| {
            q.modified_since
                .as_ref()
                .is_none_or(|since| d.modified >= *since)
        })
        .collect();
    let total = datasets.len();
    let page: Vec<Dataset> = datasets
        .into_iter()
        .skip((q.page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .cloned()
        .collect();
    let orgs = app.portal.organizations().await?;
    let keep = q
        .modified_since
        .map(|s| format!("modified_since={s}&"))
        .unwrap_or_default();
    Ok(dcat::catalogue(
        &base,
        &CatalogueInfo::default(),
        &page,
        &orgs,
        Some(&Paging {
            page: q.page,
            total,
            url: format!("{base}/{file}"),
            keep,
        }),
    ))
}

/// `/catalog.ttl`, `.jsonld`, `.rdf`: the catalogue's DCAT-AP description, in the
/// format of the route's extension.
async fn catalog_file(
    State(app): State<App>,
    headers: HeaderMap,
    route: MatchedPath,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let file = route.as_str().rsplit('/').next().unwrap_or_default();
    let g = catalog_graph(&app, &headers, raw.as_deref(), file).await?;
    rendered(&g, file.rsplit_once('.').map_or("", |(_, ext)| ext))
}

/// A DCAT-AP graph in the format a file extension names (404 for another).
fn rendered(g: &dcat::Graph, ext: &str) -> Result<Response, ApiError> {
    Ok(match ext {
        "ttl" => typed(g.to_turtle(), "text/turtle; charset=utf-8"),
        "jsonld" => typed(g.to_json_ld().to_string(), "application/ld+json"),
        "rdf" => typed(g.to_rdf_xml(), "application/rdf+xml"),
        _ => {
            return Err(ApiError(Error::not_found(
                "formats are .ttl, .jsonld and .rdf",
            )));
        }
    })
}

async fn find(app: &App, name: &str) -> Result<crate::model::Dataset, ApiError> {
    app.portal
        .dataset(name)
        .await?
        .ok_or_else(|| ApiError(Error::not_found(format!("no dataset named {name}"))))
}

/// `/dataset/{name}.ttl`, `.jsonld`, `.rdf`: one dataset's DCAT-AP description;
/// `/dataset/{name}` leads to its page in the web app.
async fn dataset_file(
    State(app): State<App>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let Some((name, ext)) = file.rsplit_once('.') else {
        // The dataset's page, in the web app's portal.
        if !crate::model::is_name(&file) {
            return Err(ApiError(Error::not_found("no such dataset")));
        }
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(to) = HeaderValue::from_str(&format!("/data/?dataset={file}")) {
            r.headers_mut().insert(header::LOCATION, to);
        }
        return Ok(r);
    };
    let d = find(&app, name).await?;
    let orgs = app.portal.organizations().await?;
    let org = orgs.iter().find(|o| o.name == d.organization);
    let mut g = dcat::Graph::default();
    dcat::dataset(&mut g, &base(&app, &headers), &d, org);
    rendered(&g, ext)
}

fn attachment(mut r: Response, name: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A dataset's downloads: `data.csv`, `data.geojson`, `data.json`, and
/// `history.csv?from=…&to=…`.
async fn download(
    State(app): State<App>,
    Path((name, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let kind = match file.as_str() {
        "data.csv" => Some(Kind::Csv),
        "data.geojson" => Some(Kind::GeoJson),
        "data.json" => Some(Kind::NgsiLd),
        "history.csv" => None,
        _ => {
            return Err(ApiError(Error::not_found(
                "downloads are data.csv, data.geojson, data.json and history.csv",
            )));
        }
    };
    let d = find(&app, &name).await?;
    let hub = app.portal.hub().clone();
    let (body, media, file_name) = match kind {
        Some(kind) => (
            download::entities(hub, &d.view, kind)?,
            kind.media_type(),
            format!("{}.{}", d.name, file.trim_start_matches("data.")),
        ),
        None => {
            let p = Params::parse(raw.as_deref())?;
            let (Some(from), Some(to)) = (p.get("from"), p.get("to")) else {
                return Err(ApiError(Error::bad_data(
                    "a history download needs its period: from and to (ISO 8601)",
                )));
            };
            let (from, to) = download::period(from, to)?;
            (
                download::history(hub, &d.view, from, to)?,
                Kind::Csv.media_type(),
                format!("{}-history.csv", d.name),
            )
        }
    };
    let mut r = attachment(typed(body, media), &file_name);
    if kind == Some(Kind::NgsiLd) {
        r.headers_mut().insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"",
            ),
        );
    }
    Ok(r)
}
