//! The CKAN Action API (`/api/3/action/{name}` and `/api/action/{name}`): datasets as
//! CKAN packages, organisations, themes as groups, tags, licences; CKAN's envelope
//! (`help`, `success`, `result`) and its error shape. Reads by GET (query string) or
//! POST (JSON body), as ckanapi sends them; writes for admins.

use std::collections::BTreeMap;

use hub::Scope;
use hub::auth::Role;
use ngsi::{Error, ErrorKind};
use serde_json::{Map, Value, json};

use crate::model::{
    ARTICLE_43, Contact, Dataset, Invalid, LICENCES, Organization, Text, View, theme,
};
use crate::portal::{Fault, Portal};

/// Rows of `package_search` by default and at most.
const DEFAULT_ROWS: usize = 10;
const MAX_ROWS: usize = 1_000;
/// Items of a facet by default.
const DEFAULT_FACET_LIMIT: usize = 50;
/// Every field `facet.field` may name.
const FACETS: &[&str] = &["organization", "tags", "res_format", "license_id", "groups"];

/// A CKAN answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// A CKAN error.
#[derive(Debug)]
pub enum CkanError {
    NotFound(String),
    Authorization(String),
    Validation(Invalid),
    /// Anything else the hub says, as CKAN would say it.
    Hub(Error),
}

impl From<Error> for CkanError {
    fn from(e: Error) -> Self {
        CkanError::Hub(e)
    }
}

impl From<Fault> for CkanError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Invalid(i) => CkanError::Validation(i),
            Fault::Hub(e) => CkanError::Hub(e),
        }
    }
}

fn help(action: &str) -> String {
    format!("/api/3/action/help_show?name={action}")
}

impl CkanError {
    fn answer(self, action: &str) -> Answer {
        let (status, error) = match self {
            CkanError::NotFound(m) => (404, json!({"__type": "Not Found Error", "message": m})),
            CkanError::Authorization(m) => {
                (403, json!({"__type": "Authorization Error", "message": m}))
            }
            CkanError::Validation(inv) => {
                let mut e = Map::new();
                e.insert("__type".into(), json!("Validation Error"));
                e.insert("message".into(), json!(inv.message()));
                for (k, v) in inv.0 {
                    e.insert(k, json!(v));
                }
                (409, Value::Object(e))
            }
            CkanError::Hub(e) => match e.kind {
                ErrorKind::ResourceNotFound => (
                    404,
                    json!({"__type": "Not Found Error", "message": e.detail}),
                ),
                ErrorKind::Forbidden | ErrorKind::Unauthenticated => (
                    403,
                    json!({"__type": "Authorization Error", "message": e.detail}),
                ),
                ErrorKind::InternalError => {
                    tracing::error!(error = %e.detail, "CKAN action failed");
                    (
                        500,
                        json!({"__type": "Internal Server Error", "message": "the action failed"}),
                    )
                }
                _ if e.kind.status() >= 500 => (
                    e.kind.status(),
                    json!({"__type": "Service Unavailable", "message": e.detail}),
                ),
                _ => (
                    409,
                    json!({"__type": "Validation Error", "message": e.detail}),
                ),
            },
        };
        Answer {
            status,
            body: json!({"help": help(action), "success": false, "error": error}),
        }
    }
}

type Result<T> = std::result::Result<T, CkanError>;

/// The parameters of an action: the JSON body, or the query string (each value a
/// string, as CKAN reads them).
pub struct Params(pub Map<String, Value>);

impl Params {
    fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn required(&self, key: &str) -> Result<String> {
        self.str(key)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CkanError::Validation(Invalid::field(key, "Missing value")))
    }

    fn number(&self, key: &str, default: usize, max: usize) -> Result<usize> {
        match self.str(key) {
            None => Ok(default),
            Some(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    CkanError::Validation(Invalid::field(
                        key,
                        format!("a whole number from 0 to {max}"),
                    ))
                }),
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key), Some(Value::Bool(true)))
            || self
                .str(key)
                .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    }

    /// A list: a JSON list, or a string holding one (`facet.field` in a query).
    fn list(&self, key: &str) -> Result<Option<Vec<String>>> {
        let bad = || CkanError::Validation(Invalid::field(key, "a JSON list of strings"));
        let value = match self.0.get(key) {
            None => return Ok(None),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
            Some(v) => v.clone(),
        };
        let list = value.as_array().ok_or_else(bad)?;
        list.iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// Where the answers point to: the server's origin.
pub struct Ctx<'a> {
    pub portal: &'a Portal,
    pub base: &'a str,
    /// The caller, for writes.
    pub caller: Scope,
}

/// Runs an action.
pub async fn run(cx: &Ctx<'_>, action: &str, params: Params) -> Answer {
    match dispatch(cx, action, &params).await {
        Ok(result) => Answer {
            status: 200,
            body: json!({"help": help(action), "success": true, "result": result}),
        },
        Err(e) => e.answer(action),
    }
}

async fn dispatch(cx: &Ctx<'_>, action: &str, p: &Params) -> Result<Value> {
    match action {
        "status_show" => Ok(json!({
            "site_title": crate::dcat::CatalogueInfo::default().title.vi,
            "site_url": cx.base,
            "site_description": crate::dcat::CatalogueInfo::default().description.vi,
            "ckan_version": "2.10.0",
            "locale_default": "vi",
            "extensions": ["dcat", "ngsi-ld"],
        })),
        "package_list" => {
            let names: Vec<String> = cx.portal.datasets().await?.iter().map(|d| d.name.clone()).collect();
            let offset = p.number("offset", 0, usize::MAX)?;
            let limit = p.number("limit", names.len(), usize::MAX)?;
            Ok(json!(names.into_iter().skip(offset).take(limit).collect::<Vec<_>>()))
        }
        "package_show" => {
            let d = find_dataset(cx, &p.required("id")?).await?;
            let orgs = cx.portal.organizations().await?;
            Ok(package(cx.base, &d, &orgs))
        }
        "package_search" => search(cx, p).await,
        "organization_list" => {
            let orgs = cx.portal.organizations().await?;
            let datasets = cx.portal.datasets().await?;
            if p.flag("all_fields") {
                Ok(json!(orgs.iter().map(|o| {
                    let mut v = org_dict(o);
                    v["package_count"] = json!(datasets.iter().filter(|d| d.organization == o.name).count());
                    v
                }).collect::<Vec<_>>()))
            } else {
                Ok(json!(orgs.iter().map(|o| o.name.clone()).collect::<Vec<_>>()))
            }
        }
        "organization_show" => {
            let id = p.required("id")?;
            let o = cx.portal.organization(&id).await?.ok_or_else(|| CkanError::NotFound("Organization not found".into()))?;
            let mut v = org_dict(&o);
            let datasets = cx.portal.datasets().await?;
            let own: Vec<&Dataset> = datasets.iter().filter(|d| d.organization == o.name).collect();
            v["package_count"] = json!(own.len());
            if p.flag("include_datasets") {
                let orgs = [o.clone()];
                v["packages"] = json!(own.iter().map(|d| package(cx.base, d, &orgs)).collect::<Vec<_>>());
            }
            Ok(v)
        }
        "group_list" => {
            let datasets = cx.portal.datasets().await?;
            let mut used: Vec<&str> = datasets.iter().map(|d| d.theme.as_str()).collect();
            used.sort_unstable();
            used.dedup();
            if p.flag("all_fields") {
                Ok(json!(used.iter().filter_map(|c| theme(c)).map(|t| {
                    let mut g = group_dict(t.code);
                    g["package_count"] = json!(datasets.iter().filter(|d| d.theme == t.code).count());
                    g
                }).collect::<Vec<_>>()))
            } else {
                Ok(json!(used.iter().map(|c| c.to_ascii_lowercase()).collect::<Vec<_>>()))
            }
        }
        "tag_list" => {
            let mut tags: Vec<String> = cx.portal.datasets().await?.iter().flat_map(|d| d.keywords.iter().cloned()).collect();
            if let Some(q) = p.str("query") {
                let q = q.to_lowercase();
                tags.retain(|t| t.to_lowercase().contains(&q));
            }
            tags.sort();
            tags.dedup();
            Ok(json!(tags))
        }
        "license_list" => Ok(json!(LICENCES.iter().map(|l| json!({
            "id": l.id, "title": l.title, "url": l.url,
            "od_conformance": "approved", "osd_conformance": "not reviewed",
            "status": "active", "domain_data": true, "domain_content": true, "domain_software": false,
        })).collect::<Vec<_>>())),
        "resource_show" => {
            let id = p.required("id")?;
            let not_found = || CkanError::NotFound("Resource was not found.".into());
            let name = ["csv", "geojson", "json", "ngsi-ld", "history"]
                .iter()
                .find_map(|k| id.strip_suffix(&format!("-{k}")))
                .ok_or_else(not_found)?;
            let d = cx.portal.dataset(name).await?.ok_or_else(not_found)?;
            d.resources(cx.base).iter().enumerate().find(|(_, r)| r.id == id)
                .map(|(i, r)| resource_dict(&d, r, i))
                .ok_or_else(not_found)
        }
        "package_create" | "package_update" | "package_patch" => {
            admin(cx)?;
            write(cx, action, p).await
        }
        "package_delete" => {
            admin(cx)?;
            let id = p.required("id")?;
            cx.portal.delete_dataset(&cx.caller, &id).await?;
            Ok(Value::Null)
        }
        "organization_create" => {
            admin(cx)?;
            let o = Organization {
                name: p.required("name")?,
                title: Text { vi: p.str("title").unwrap_or_default(), en: p.str("title_en").unwrap_or_default() },
                description: Text { vi: p.str("description").unwrap_or_default(), en: String::new() },
                email: p.str("email").unwrap_or_default(),
                homepage: p.str("url").unwrap_or_default(),
            };
            cx.portal.put_organization(&cx.caller, o.clone()).await?;
            Ok(org_dict(&o))
        }
        _ => Err(CkanError::NotFound(format!("Action name not known: {}", action.chars().take(100).collect::<String>()))),
    }
}

fn admin(cx: &Ctx<'_>) -> Result<()> {
    match cx.caller.caller.role {
        Some(Role::Admin) => Ok(()),
        None => Err(CkanError::Authorization(
            "an API key is needed: send it in the Authorization header".into(),
        )),
        Some(_) => Err(CkanError::Authorization(
            "only administrators publish datasets".into(),
        )),
    }
}

async fn find_dataset(cx: &Ctx<'_>, id: &str) -> Result<Dataset> {
    cx.portal
        .dataset(id)
        .await?
        .ok_or_else(|| CkanError::NotFound("Dataset not found".into()))
}

fn org_dict(o: &Organization) -> Value {
    json!({
        "id": Organization::entity_id(&o.name),
        "name": o.name,
        "title": o.title.vi,
        "title_translated": o.title,
        "display_name": o.title.vi,
        "description": o.description.vi,
        "description_translated": o.description,
        "email": o.email,
        "url": o.homepage,
        "image_url": "",
        "type": "organization",
        "is_organization": true,
        "state": "active",
        "approval_status": "approved",
    })
}

fn group_dict(code: &str) -> Value {
    let t = theme(code).map_or((code, code), |t| (t.vi, t.en));
    json!({
        "id": code.to_ascii_lowercase(),
        "name": code.to_ascii_lowercase(),
        "title": t.0,
        "title_translated": {"vi": t.0, "en": t.1},
        "display_name": t.0,
        "type": "group",
        "is_organization": false,
        "state": "active",
        "url": format!("{}{code}", crate::model::THEME_BASE),
    })
}

fn resource_dict(d: &Dataset, r: &crate::model::Resource, position: usize) -> Value {
    json!({
        "id": r.id,
        "package_id": Dataset::entity_id(&d.name),
        "name": r.name.vi,
        "name_translated": r.name,
        "description": r.name.en,
        "format": r.format,
        "mimetype": r.media_type,
        "url": r.url,
        "position": position,
        "state": "active",
        "url_type": Value::Null,
        "datastore_active": false,
        "created": d.issued,
        "last_modified": d.modified,
        "license": crate::model::licence(&d.licence).map(|l| l.url),
    })
}

/// A dataset as a CKAN package.
pub fn package(base: &str, d: &Dataset, orgs: &[Organization]) -> Value {
    let licence = d.licence();
    let org = orgs.iter().find(|o| o.name == d.organization);
    let resources: Vec<Value> = d
        .resources(base)
        .iter()
        .enumerate()
        .map(|(i, r)| resource_dict(d, r, i))
        .collect();
    json!({
        "id": Dataset::entity_id(&d.name),
        "name": d.name,
        "title": d.title.vi,
        "title_translated": d.title,
        "notes": d.description.vi,
        "notes_translated": d.description,
        "type": "dataset",
        "state": "active",
        "private": false,
        "url": format!("{base}/dataset/{}", d.name),
        "owner_org": Organization::entity_id(&d.organization),
        "organization": org.map_or_else(|| json!({"name": d.organization}), org_dict),
        "maintainer": d.contact.name,
        "maintainer_email": d.contact.email,
        "author": org.map_or(d.organization.as_str(), |o| o.title.vi.as_str()),
        "license_id": licence.id,
        "license_title": licence.title,
        "license_url": licence.url,
        "isopen": true,
        "metadata_created": d.issued,
        "metadata_modified": d.modified,
        "tags": d.keywords.iter().map(|k| json!({"name": k, "display_name": k, "state": "active"})).collect::<Vec<_>>(),
        "num_tags": d.keywords.len(),
        "groups": [group_dict(&d.theme)],
        "resources": resources,
        "num_resources": resources.len(),
        "theme": d.theme,
        "spatial_coverage": d.spatial,
        "frequency": d.frequency,
        "rights": ARTICLE_43,
        "ngsi_ld_view": d.view,
        "extras": [
            {"key": "theme", "value": format!("{}{}", crate::model::THEME_BASE, d.theme)},
            {"key": "frequency", "value": format!("{}{}", crate::model::FREQUENCY_BASE, d.frequency)},
            {"key": "rights", "value": ARTICLE_43},
        ],
    })
}

/// The fields of a package that writes read.
fn dataset_from(p: &Map<String, Value>, old: Option<&Dataset>) -> Result<Dataset> {
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    let text = |k: &str, tr: &str, old: Option<&Text>| -> Text {
        match p
            .get(tr)
            .and_then(|v| serde_json::from_value::<Text>(v.clone()).ok())
        {
            Some(t) => t,
            None => Text {
                vi: s(k).unwrap_or_else(|| old.map(|t| t.vi.clone()).unwrap_or_default()),
                en: old.map(|t| t.en.clone()).unwrap_or_default(),
            },
        }
    };
    let tags = match p.get("tags") {
        None => old.map(|o| o.keywords.clone()).unwrap_or_default(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).or_else(|| t.as_str()))
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(CkanError::Validation(Invalid::field(
                "tags",
                "a list of {\"name\": …}",
            )));
        }
    };
    let view = match p.get("ngsi_ld_view") {
        Some(v) => serde_json::from_value::<View>(v.clone()).map_err(|e| {
            CkanError::Validation(Invalid::field(
                "ngsi_ld_view",
                format!("tenant, types, q, attrs: {e}"),
            ))
        })?,
        None => old.map(|o| o.view.clone()).ok_or_else(|| {
            CkanError::Validation(Invalid::field(
                "ngsi_ld_view",
                "Missing value: the published view (types and public attrs)",
            ))
        })?,
    };
    let org = s("owner_org").map(|o| {
        o.trim_start_matches("urn:ngsi-ld:Organization:")
            .to_string()
    });
    let strings = |k: &str| -> Option<Vec<String>> {
        p.get(k)?.as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    Ok(Dataset {
        name: s("name")
            .or_else(|| old.map(|o| o.name.clone()))
            .unwrap_or_default(),
        title: text("title", "title_translated", old.map(|o| &o.title)),
        description: text("notes", "notes_translated", old.map(|o| &o.description)),
        organization: org
            .or_else(|| old.map(|o| o.organization.clone()))
            .unwrap_or_default(),
        contact: Contact {
            name: s("maintainer")
                .or_else(|| old.map(|o| o.contact.name.clone()))
                .unwrap_or_default(),
            email: s("maintainer_email")
                .or_else(|| old.map(|o| o.contact.email.clone()))
                .unwrap_or_default(),
        },
        theme: s("theme")
            .or_else(|| old.map(|o| o.theme.clone()))
            .unwrap_or_else(|| "GOVE".into())
            .to_ascii_uppercase(),
        keywords: tags,
        spatial: strings("spatial_coverage")
            .or_else(|| old.map(|o| o.spatial.clone()))
            .unwrap_or_default(),
        licence: s("license_id")
            .or_else(|| old.map(|o| o.licence.clone()))
            .unwrap_or_else(|| "cc-by-4.0".into()),
        frequency: s("frequency")
            .or_else(|| old.map(|o| o.frequency.clone()))
            .unwrap_or_else(|| "CONT".into()),
        issued: old.map(|o| o.issued.clone()).unwrap_or_default(),
        modified: String::new(),
        view,
    })
}

async fn write(cx: &Ctx<'_>, action: &str, p: &Params) -> Result<Value> {
    let (dataset, create) = match action {
        "package_create" => (dataset_from(&p.0, None)?, true),
        _ => {
            let id = p
                .str("id")
                .or_else(|| p.str("name"))
                .ok_or_else(|| CkanError::Validation(Invalid::field("id", "Missing value")))?;
            let old = find_dataset(cx, &id).await?;
            let mut body = p.0.clone();
            // The name is the dataset's URL: it stays.
            body.insert("name".into(), json!(old.name));
            if action == "package_update" {
                // An update replaces the package: what it leaves out is dropped,
                // except what a dataset must have (view, organisation, licence...).
                for k in ["tags", "spatial_coverage"] {
                    body.entry(k).or_insert(json!([]));
                }
                for k in ["maintainer", "maintainer_email"] {
                    body.entry(k).or_insert(json!(""));
                }
            }
            (dataset_from(&body, Some(&old))?, false)
        }
    };
    let d = cx.portal.put_dataset(&cx.caller, dataset, create).await?;
    let orgs = cx.portal.organizations().await?;
    Ok(package(cx.base, &d, &orgs))
}

/// Splits `fq` into (field, value) terms: `field:value` or `field:"a value"`,
/// separated by spaces or `AND`.
fn filter_terms(fq: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = fq.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("AND ") {
            rest = r.trim_start();
            continue;
        }
        let (field, after) = rest
            .split_once(':')
            .ok_or_else(|| CkanError::Validation(Invalid::field("fq", "terms are field:value")))?;
        let field = field.trim().trim_start_matches('+').to_string();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| CkanError::Validation(Invalid::field("fq", "an unclosed quote")))?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        if !FACETS.contains(&field.as_str()) && field != "name" {
            return Err(CkanError::Validation(Invalid::field(
                "fq",
                format!("fields are {} and name", FACETS.join(", ")),
            )));
        }
        out.push((field, value));
        rest = next.trim_start();
    }
    Ok(out)
}

/// The values a dataset has for a facet field.
fn facet_values(base: &str, d: &Dataset, field: &str) -> Vec<String> {
    match field {
        "organization" => vec![d.organization.clone()],
        "tags" => d.keywords.clone(),
        "res_format" => {
            let mut f: Vec<String> = d
                .resources(base)
                .iter()
                .map(|r| r.format.to_string())
                .collect();
            f.sort();
            f.dedup();
            f
        }
        "license_id" => vec![d.licence.clone()],
        "groups" => vec![d.theme.to_ascii_lowercase()],
        "name" => vec![d.name.clone()],
        _ => Vec::new(),
    }
}

fn matches_text(d: &Dataset, words: &[String]) -> bool {
    let hay = format!(
        "{} {} {} {} {} {} {}",
        d.name,
        d.title.vi,
        d.title.en,
        d.description.vi,
        d.description.en,
        d.keywords.join(" "),
        d.organization
    )
    .to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

async fn search(cx: &Ctx<'_>, p: &Params) -> Result<Value> {
    let rows = p.number("rows", DEFAULT_ROWS, MAX_ROWS)?;
    let start = p.number("start", 0, usize::MAX)?;
    let q = p.str("q").unwrap_or_default();
    if q.len() > 1_000 {
        return Err(CkanError::Validation(Invalid::field(
            "q",
            "at most 1000 characters",
        )));
    }
    let mut filters = filter_terms(&p.str("fq").unwrap_or_default())?;
    // `q` may hold field:value terms too; the other words are searched in the text.
    let mut words = Vec::new();
    for term in q.split_whitespace() {
        match term.split_once(':') {
            Some((f, v)) if FACETS.contains(&f) || f == "name" => {
                filters.push((f.to_string(), v.trim_matches('"').to_string()))
            }
            _ if term == "*:*" => {}
            _ => words.push(term.to_lowercase()),
        }
    }
    let all = cx.portal.datasets().await?;
    let mut found: Vec<&Dataset> = all
        .iter()
        .filter(|d| matches_text(d, &words))
        .filter(|d| {
            filters
                .iter()
                .all(|(f, v)| facet_values(cx.base, d, f).iter().any(|x| x == v))
        })
        .collect();
    let sort = p
        .str("sort")
        .unwrap_or_else(|| "score desc, metadata_modified desc".into());
    let first = sort
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let (field, dir) = first.split_once(' ').unwrap_or((first.as_str(), "asc"));
    let desc = dir.trim().eq_ignore_ascii_case("desc");
    match field {
        "name" => found.sort_by(|a, b| a.name.cmp(&b.name)),
        "title_string" | "title" => {
            found.sort_by(|a, b| a.title.vi.cmp(&b.title.vi).then(a.name.cmp(&b.name)))
        }
        "metadata_modified" => {
            found.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)))
        }
        "metadata_created" => {
            found.sort_by(|a, b| a.issued.cmp(&b.issued).then(a.name.cmp(&b.name)))
        }
        // Every match scores the same: by name, newest change first as CKAN's default.
        "score" | "relevance" => {
            found.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)))
        }
        _ => {
            return Err(CkanError::Validation(Invalid::field(
                "sort",
                "name, title_string, metadata_modified, metadata_created or score, asc or desc",
            )));
        }
    }
    if desc && field != "score" && field != "relevance" {
        found.reverse();
    }
    let fields = p.list("facet.field")?.unwrap_or_default();
    for f in &fields {
        if !FACETS.contains(&f.as_str()) {
            return Err(CkanError::Validation(Invalid::field(
                "facet.field",
                format!("facets are {}", FACETS.join(", ")),
            )));
        }
    }
    let facet_limit = match p.str("facet.limit") {
        Some(s) if s.trim() == "-1" => usize::MAX,
        _ => p.number("facet.limit", DEFAULT_FACET_LIMIT, 10_000)?,
    };
    let orgs = cx.portal.organizations().await?;
    let mut facets = Map::new();
    let mut search_facets = Map::new();
    for f in &fields {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in &found {
            for v in facet_values(cx.base, d, f) {
                *counts.entry(v).or_default() += 1;
            }
        }
        let mut items: Vec<(String, usize)> = counts.into_iter().collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        items.truncate(facet_limit);
        facets.insert(
            f.clone(),
            json!(
                items
                    .iter()
                    .map(|(k, n)| (k.clone(), json!(n)))
                    .collect::<Map<_, _>>()
            ),
        );
        let display = |k: &str| match f.as_str() {
            "organization" => orgs
                .iter()
                .find(|o| o.name == k)
                .map_or(k.to_string(), |o| o.title.vi.clone()),
            "groups" => theme(k).map_or(k.to_string(), |t| t.vi.to_string()),
            _ => k.to_string(),
        };
        search_facets.insert(f.clone(), json!({
            "title": f,
            "items": items.iter().map(|(k, n)| json!({"name": k, "display_name": display(k), "count": n})).collect::<Vec<_>>(),
        }));
    }
    let count = found.len();
    let results: Vec<Value> = found
        .into_iter()
        .skip(start)
        .take(rows)
        .map(|d| package(cx.base, d, &orgs))
        .collect();
    Ok(json!({
        "count": count,
        "sort": sort,
        "results": results,
        "facets": facets,
        "search_facets": search_facets,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn filter_queries_are_split_into_terms() {
        assert_eq!(
            filter_terms("organization:so-gtvt tags:\"mực nước\" AND res_format:CSV").unwrap(),
            vec![
                ("organization".into(), "so-gtvt".into()),
                ("tags".into(), "mực nước".into()),
                ("res_format".into(), "CSV".into()),
            ]
        );
        assert!(filter_terms("owner:x").is_err());
        assert!(filter_terms("tags:\"open").is_err());
        assert!(filter_terms("nocolon").is_err());
    }
}
