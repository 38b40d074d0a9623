//! Query parameters: read as raw text first, then checked and turned into an
//! [`EntityQuery`] and [`RenderOptions`] with every name expanded.

use std::collections::{HashMap, HashSet};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ngsi::filter::{GeoFilter, QFilter};
use ngsi::order::OrderBy;
use ngsi::query::{self, ast::TypeExpr};
use ngsi::render::{Format, RenderOptions};
use ngsi::{Context, Error, ErrorKind};
use regex::RegexBuilder;
use serde_json::Value;
use store::EntityQuery;

use super::ApiError;
use super::projection::{self, Projection};

/// Default and largest page size.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_000;
/// Most ids in one `id` list.
const MAX_IDS: usize = 1_000;
/// The values `options` may hold, across the operations that take it.
const KNOWN_OPTIONS: &[&str] = &[
    "keyValues",
    "simplified",
    "concise",
    "normalized",
    "sysAttrs",
    "noOverwrite",
    "temporalValues",
    "aggregatedValues",
    "replace",
    "update",
];
/// The values of `format`.
const KNOWN_FORMATS: &[&str] = &[
    "keyValues",
    "simplified",
    "concise",
    "normalized",
    "temporalValues",
    "aggregatedValues",
];

/// Raw parameters of a request, as text.
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

/// The parameters of the query string, as a handler's argument (a string too long is
/// a ProblemDetails like every other error). A handler that must read the request's
/// body or scope first, so that their errors come first, parses the raw query itself.
impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query())?)
    }
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, Error> {
        let mut map = HashMap::new();
        if let Some(raw) = raw {
            if raw.len() > 256 * 1024 {
                return Err(Error::bad_data("the query string is too long"));
            }
            for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The `options` list (and the `format` parameter, which v1.8 adds).
    pub fn options(&self) -> HashSet<String> {
        let mut set: HashSet<String> = self
            .get("options")
            .map(|o| o.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if let Some(f) = self.get("format") {
            set.insert(f.to_string());
        }
        set
    }

    /// The options in effect: `format`, when given, names the representation alone,
    /// replacing any of `representations` among `options`, which may then only add
    /// sysAttrs and the like (clause 6.3.7).
    pub fn options_under_format(&self, representations: &[&str]) -> Vec<String> {
        let mut options: Vec<String> = self
            .get("options")
            .map(|o| o.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if let Some(format) = self.get("format") {
            options.retain(|o| !representations.contains(&o.as_str()));
            options.push(format.to_string());
        }
        options
    }

    /// `pick` and `omit`: at most one of them, and neither beside `attrs` (`pick`
    /// replaces it).
    ///
    /// Braced members (`locatedAt{name}`) project linked entities ([`Self::projection`]);
    /// the lists answered are the members of the entities themselves.
    pub fn pick_omit(&self, has_attrs: bool) -> Result<(Vec<String>, Vec<String>), Error> {
        let names = |key: &str| -> Result<Vec<String>, Error> {
            Ok(match self.get(key) {
                Some(text) => Projection {
                    pick: key == "pick",
                    items: projection::parse(text)?,
                }
                .names(),
                None => Vec::new(),
            })
        };
        let pick = names("pick")?;
        let omit = names("omit")?;
        if !pick.is_empty() && !omit.is_empty() {
            return Err(Error::bad_data("pick and omit cannot be used together"));
        }
        if (!pick.is_empty() || !omit.is_empty()) && has_attrs {
            return Err(Error::bad_data(
                "attrs cannot be used with pick or omit (pick replaces it)",
            ));
        }
        Ok((pick, omit))
    }

    /// The `pick` or `omit` given, with its braced members.
    pub fn projection(&self) -> Result<Option<Projection>, Error> {
        for (key, pick) in [("pick", true), ("omit", false)] {
            if let Some(text) = self.get(key) {
                let items = projection::parse(text)?;
                return Ok(Some(Projection { pick, items }));
            }
        }
        Ok(None)
    }

    /// Refuses `options` and `format` values that no operation knows (clause 6.3.7):
    /// a misspelt option must not silently change nothing.
    pub fn check_options(&self) -> Result<(), Error> {
        if let Some(o) = self.get("options") {
            for token in o.split(',').map(str::trim) {
                if !KNOWN_OPTIONS.contains(&token) {
                    return Err(Error::invalid(format!("unknown option {token:?}")));
                }
            }
        }
        if let Some(f) = self.get("format")
            && !KNOWN_FORMATS.contains(&f)
        {
            return Err(Error::invalid(format!("unknown format {f:?}")));
        }
        Ok(())
    }

    /// A list whose items must all be present: `a,,b` and a trailing comma are refused.
    pub fn strict_list(&self, key: &str) -> Result<Vec<String>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(Error::bad_data(format!(
                "{key} has an empty item (two separators in a row?)"
            )));
        }
        Ok(items)
    }

    pub fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.get(key) {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(Error::bad_data(format!(
                "{key} must be true or false, not {other:?}"
            ))),
        }
    }

    fn number(&self, key: &str, default: usize) -> Result<usize, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                Error::bad_data(format!("{key} must be a non-negative integer, not {v:?}"))
            }),
        }
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The strings of a JSON array; `refusal` says what is wrong when one is not a string.
pub fn strings(items: &[Value], refusal: &str) -> Result<Vec<String>, Error> {
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::bad_data(refusal))
        })
        .collect()
}

fn syntax_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::bad_data(format!("invalid {what}: {e}"))
}

/// Expands the names of a list parameter (`attrs`, `pick`, `omit`).
fn expand_names(names: &[String], ctx: &Context) -> Result<Vec<String>, Error> {
    names
        .iter()
        .map(|n| ngsi::entity::expand_attr(n, ctx))
        .collect()
}

/// The parts of a query that the GET parameters and the POST query body share.
#[derive(Debug, Default)]
pub struct QuerySpec {
    pub types: Option<String>,
    pub ids: Vec<String>,
    pub id_pattern: Option<String>,
    pub attrs: Vec<String>,
    pub q: Option<String>,
    pub georel: Option<String>,
    pub geometry: Option<String>,
    pub coordinates: Option<String>,
    pub geoproperty: Option<String>,
    pub scope_q: Option<String>,
    /// `local=true`: only this broker's entities. There are no context sources, so it
    /// selects every entity, and may stand alone as the query's selection.
    pub local: bool,
    /// `orderBy` (v1.9.1), as written.
    pub order_by: Option<String>,
}

impl QuerySpec {
    pub fn from_params(p: &Params) -> Result<QuerySpec, Error> {
        Ok(QuerySpec {
            types: p.get("type").map(str::to_string),
            ids: p.list("id"),
            id_pattern: p.get("idPattern").map(str::to_string),
            attrs: p.strict_list("attrs")?,
            q: p.get("q").map(str::to_string),
            georel: p.get("georel").map(str::to_string),
            geometry: p.get("geometry").map(str::to_string),
            coordinates: p.get("coordinates").map(str::to_string),
            geoproperty: p.get("geoproperty").map(str::to_string),
            scope_q: p.get("scopeQ").map(str::to_string),
            local: p.flag("local")?,
            order_by: p.get("orderBy").map(str::to_string),
        })
    }

    /// A query of entities names at least a type, attributes, `q` or a geo-query
    /// (clause 5.7.2): ids alone do not select a set to page through.
    pub fn require_selection(&self) -> Result<(), Error> {
        if !self.local
            && self.types.is_none()
            && self.attrs.is_empty()
            && self.q.is_none()
            && self.georel.is_none()
        {
            return Err(Error::bad_data(
                "a query needs at least one of type, attrs, q and a geo-query",
            ));
        }
        Ok(())
    }

    /// Reads the body of POST /entityOperations/query.
    pub fn from_query_body(body: &Value) -> Result<QuerySpec, Error> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::bad_data("a query must be a JSON object"))?;
        if let Some(t) = obj.get("type")
            && t.as_str() != Some("Query")
        {
            return Err(Error::bad_data("a query's type must be \"Query\""));
        }
        let text = |key: &str| -> Result<Option<String>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::bad_data(format!("{key} must be a string"))),
            }
        };
        let mut spec = QuerySpec {
            q: text("q")?,
            scope_q: text("scopeQ")?,
            order_by: text("orderBy")?,
            ..Default::default()
        };
        if let Some(entities) = obj.get("entities") {
            let items = entities
                .as_array()
                .ok_or_else(|| Error::bad_data("entities must be an array"))?;
            let mut types = Vec::new();
            for item in items {
                if let Some(t) = item.get("type").and_then(Value::as_str) {
                    types.push(t.to_string());
                }
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    spec.ids.push(id.to_string());
                }
                if let Some(p) = item.get("idPattern").and_then(Value::as_str) {
                    spec.id_pattern = Some(p.to_string());
                }
            }
            if !types.is_empty() {
                spec.types = Some(types.join(","));
            }
        }
        if let Some(attrs) = obj.get("attrs") {
            let items = attrs
                .as_array()
                .ok_or_else(|| Error::bad_data("attrs must be an array of names"))?;
            spec.attrs = strings(items, "attrs must be names")?;
        }
        if let Some(geo) = obj.get("geoQ") {
            spec.georel = geo
                .get("georel")
                .and_then(Value::as_str)
                .map(str::to_string);
            spec.geometry = geo
                .get("geometry")
                .and_then(Value::as_str)
                .map(str::to_string);
            spec.coordinates = match geo.get("coordinates") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v @ Value::Array(_)) => Some(v.to_string()),
                _ => None,
            };
            spec.geoproperty = geo
                .get("geoproperty")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(spec)
    }

    /// Checks every part and expands every name.
    pub fn build(
        &self,
        ctx: &Context,
        limit: usize,
        offset: usize,
        count: bool,
    ) -> Result<EntityQuery, Error> {
        let types = match &self.types {
            Some(text) => {
                let expr = query::parse_type_expr(text).map_err(|e| syntax_error("type", e))?;
                for name in expr.names() {
                    if !ngsi::entity::is_valid_name(name) {
                        return Err(Error::bad_data(format!(
                            "{name:?} is not a valid type name"
                        )));
                    }
                }
                Some(expr.map_names(&|n| ctx.expand(n)))
            }
            None => None,
        };
        if self.ids.len() > MAX_IDS {
            return Err(Error::bad_data(format!(
                "at most {MAX_IDS} ids in one query"
            )));
        }
        for id in &self.ids {
            if !ngsi::entity::is_uri(id) {
                return Err(Error::bad_data(format!("{id:?} is not a URI")));
            }
        }
        let id_pattern = match &self.id_pattern {
            Some(p) if has_stacked_quantifier(p) => {
                return Err(Error::bad_data(format!(
                    "invalid idPattern {p:?}: a repetition repeats nothing"
                )));
            }
            Some(p) => Some(
                RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| syntax_error("idPattern", e))?,
            ),
            None => None,
        };
        let q = match &self.q {
            Some(text) => {
                let expr = query::parse_q(text).map_err(|e| syntax_error("q", e))?;
                Some(QFilter::new(expr.map_attrs(&|n| ctx.expand(n)))?)
            }
            None => None,
        };
        let geo = match (&self.georel, &self.geometry, &self.coordinates) {
            (None, None, None) => None,
            (Some(georel), Some(geometry), Some(coordinates)) => {
                let mut gq =
                    query::parse_geoq(georel, geometry, coordinates, self.geoproperty.as_deref())
                        .map_err(|e| syntax_error("geoQ", e))?;
                gq.geoproperty = ngsi::entity::expand_attr(&gq.geoproperty, ctx)?;
                Some(GeoFilter::new(gq)?)
            }
            _ => {
                return Err(Error::bad_data(
                    "a geo-query needs georel, geometry and coordinates together",
                ));
            }
        };
        let scope = match &self.scope_q {
            Some(text) => Some(query::parse_scope_q(text).map_err(|e| syntax_error("scopeQ", e))?),
            None => None,
        };
        Ok(EntityQuery {
            ids: self.ids.clone(),
            id_pattern,
            types,
            attrs: expand_names(&self.attrs, ctx)?,
            q,
            geo,
            scope,
            limit,
            offset,
            count,
            after: None,
            order: match &self.order_by {
                Some(text) => Some(OrderBy::parse(text)?.map_attrs(&|n| ctx.expand(n))),
                None => None,
            },
            only_attrs: None,
            as_documents: false,
        })
    }
}

/// Whether a pattern stacks repetitions (`a**`, `a+*`): an error in POSIX and
/// ECMAScript patterns, which the regex crate would read as a repetition of one.
/// A lazy `?` after a repetition stays allowed.
fn has_stacked_quantifier(pattern: &str) -> bool {
    let mut prev_quantifier = false;
    let mut escaped = false;
    let mut in_class = false;
    for c in pattern.chars() {
        if escaped {
            escaped = false;
            prev_quantifier = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                prev_quantifier = false;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => {
                in_class = false;
                prev_quantifier = false;
            }
            _ if in_class => {}
            '*' | '+' | '{' if prev_quantifier => return true,
            '*' | '+' | '?' | '}' => prev_quantifier = c != '?' || !prev_quantifier,
            _ => prev_quantifier = false,
        }
    }
    false
}

/// Reads `limit`, `offset` and `count`.
pub fn paging(p: &Params) -> Result<(usize, usize, bool), Error> {
    let limit = p.number("limit", DEFAULT_LIMIT)?;
    if limit > MAX_LIMIT {
        return Err(Error::new(
            ErrorKind::TooManyResults,
            format!("limit may be at most {MAX_LIMIT}"),
        ));
    }
    let offset = p.number("offset", 0)?;
    let count = p.flag("count")?;
    if limit == 0 && !count {
        return Err(Error::bad_data(
            "limit=0 is only meaningful with count=true",
        ));
    }
    Ok((limit, offset, count))
}

/// The attributes a `pick` of attributes alone names (expanded): a query answers only
/// the entities that keep some member once picked, so it selects the entities having
/// one of them, and counts and pages over those. None when `pick` is absent or names
/// an entity member (`id`, `type`, `scope`): the query then selects as without it.
pub fn picked_attributes(p: &Params, ctx: &Context) -> Result<Option<Vec<String>>, Error> {
    let (pick, _) = p.pick_omit(false)?;
    if pick.is_empty()
        || pick
            .iter()
            .any(|n| matches!(n.as_str(), "id" | "type" | "scope"))
    {
        return Ok(None);
    }
    Ok(Some(expand_names(&pick, ctx)?))
}

/// Reads the representation and projection parameters.
pub fn render_options<'a>(
    p: &Params,
    ctx: &'a Context,
    attrs: &[String],
) -> Result<RenderOptions<'a>, Error> {
    p.check_options()?;
    let options: HashSet<String> = p
        .options_under_format(&["keyValues", "simplified", "concise", "normalized"])
        .into_iter()
        .collect();
    let mut opts = RenderOptions::new(ctx);
    let formats: Vec<Format> = [
        ("keyValues", Format::KeyValues),
        ("simplified", Format::KeyValues),
        ("concise", Format::Concise),
        ("normalized", Format::Normalized),
    ]
    .iter()
    .filter(|(name, _)| options.contains(*name))
    .map(|(_, f)| *f)
    .collect();
    opts.format = match formats.as_slice() {
        [] => Format::Normalized,
        [f] => *f,
        [first, rest @ ..] if rest.iter().all(|f| f == first) => *first,
        _ => {
            return Err(Error::bad_data(
                "choose one of keyValues, concise and normalized",
            ));
        }
    };
    opts.sys_attrs = options.contains("sysAttrs");
    if let Some(lang) = p.get("lang") {
        // Tags in order of their weight (`fr;q=0.9`, 1 when unweighted), as in
        // Accept-Language; equal weights keep their order.
        let mut weighted: Vec<(String, f32)> = lang
            .split(',')
            .map(|item| {
                let mut parts = item.split(';');
                let tag = parts.next().unwrap_or("").trim().to_string();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (tag, q)
            })
            .filter(|(tag, _)| !tag.is_empty())
            .collect();
        weighted.sort_by(|a, b| b.1.total_cmp(&a.1));
        let prefs: Vec<String> = weighted.into_iter().map(|(tag, _)| tag).collect();
        if prefs.is_empty()
            || prefs.iter().any(|t| {
                t.len() > 35
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            })
        {
            return Err(Error::bad_data("lang must be a list of language tags"));
        }
        opts.lang = Some(prefs);
    }
    let (pick, omit) = p.pick_omit(!attrs.is_empty())?;
    let mut keep: Option<HashSet<String>> = None;
    if !attrs.is_empty() {
        keep = Some(expand_names(attrs, ctx)?.into_iter().collect());
    }
    if !pick.is_empty() {
        opts.keep_id = pick.iter().any(|n| n == "id");
        opts.keep_type = pick.iter().any(|n| n == "type");
        let names: Vec<String> = pick
            .iter()
            .filter(|n| !matches!(n.as_str(), "id" | "type" | "scope"))
            .cloned()
            .collect();
        let mut picked: HashSet<String> = expand_names(&names, ctx)?.into_iter().collect();
        if pick.iter().any(|n| n == "scope") {
            picked.insert(ctx.expand("scope"));
        }
        keep = Some(match keep {
            Some(k) => k.intersection(&picked).cloned().collect(),
            None => picked,
        });
    }
    if !omit.is_empty() {
        opts.keep_id = !omit.iter().any(|n| n == "id");
        opts.keep_type = !omit.iter().any(|n| n == "type");
        let names: Vec<String> = omit
            .iter()
            .filter(|n| !matches!(n.as_str(), "id" | "type" | "scope"))
            .cloned()
            .collect();
        opts.omit_attrs = expand_names(&names, ctx)?.into_iter().collect();
        if omit.iter().any(|n| n == "scope") {
            opts.omit_attrs.insert(ctx.expand("scope"));
        }
    }
    opts.keep_attrs = keep;
    let datasets = p.strict_list("datasetId")?;
    if let Some(bad) = datasets
        .iter()
        .find(|d| *d != "@none" && !ngsi::entity::is_uri(d))
    {
        return Err(Error::bad_data(format!(
            "datasetId must be URIs or @none, not {bad:?}"
        )));
    }
    if !datasets.is_empty() {
        opts.datasets = Some(datasets.into_iter().collect());
    }
    Ok(opts)
}

/// The GeoProperty that becomes a Feature's geometry (`geometryProperty`).
pub fn geometry_property(p: &Params, ctx: &Context) -> Result<String, Error> {
    ngsi::entity::expand_attr(p.get("geometryProperty").unwrap_or("location"), ctx)
}

/// The type selection of a parsed spec, as text for error messages.
pub fn describe_types(t: &TypeExpr) -> String {
    t.to_string()
}

/// The `NGSILD-Results-Count` header of a listing, when its total was asked for.
pub fn results_count(response: &mut axum::response::Response, count: Option<u64>) {
    if let Some(n) = count
        && let Ok(v) = axum::http::HeaderValue::from_str(&n.to_string())
    {
        response.headers_mut().insert("NGSILD-Results-Count", v);
    }
}

/// `Link` headers to the neighbouring pages of a GET listing (clause 6.3.14), each
/// `</path?…>;rel="next";type="application/ld+json"` with the answer's media type and
/// the request's other parameters kept, in name order. `more` says whether a next page
/// exists.
pub fn page_links(
    response: &mut axum::response::Response,
    path: &str,
    params: &Params,
    offset: usize,
    limit: usize,
    more: bool,
) {
    use axum::http::{HeaderValue, header};
    if limit == 0 {
        return;
    }
    let media = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_else(|| "application/json".into());
    let pages = [
        (offset > 0, offset.saturating_sub(limit), "prev"),
        (more, offset + limit, "next"),
    ];
    for (present, at, rel) in pages {
        if !present {
            continue;
        }
        let mut p: Vec<(String, String)> = params
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != "offset")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        p.push(("offset".into(), at.to_string()));
        p.sort();
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p.iter())
            .finish();
        let link = format!("<{path}?{query}>;rel=\"{rel}\";type=\"{media}\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, v);
        }
    }
}
