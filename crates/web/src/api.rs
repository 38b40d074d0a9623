//! The app's own read endpoints under `/ioc/api`: configuration, communes with their
//! indicators, markers, dashboard tiles, the explorer's search and export. They read
//! through the in-process [`Hub`] in the request's tenant (`NGSILD-Tenant`), answer
//! errors as ProblemDetails, and bound every list.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use formats::write::{CsvRecords, CsvStyle};
use hub::http::ApiError;
use hub::http::gate::Head;
use hub::http::negotiate::tenant;
use hub::http::params::Params;
use hub::{Hub, Scope};
use ngsi::query::ast::TypeExpr;
use ngsi::{Context, Entity, Error};
use serde::Serialize;
use serde_json::{Value, json};
use store::EntityQuery;

use crate::WebConfig;
use crate::view::{
    self, COMMUNE_TYPE, Indicators, Item, LAYERS, Observation, State as ItemState, View,
};

/// Entities read for one answer at most (beyond, the answer says it is partial).
pub const MAX_ENTITIES: usize = 50_000;
/// Rows of one explorer page at most.
pub const MAX_PAGE: usize = 200;
/// Rows of one export at most.
pub const MAX_EXPORT: usize = 10_000;
/// Entities read from the store per query.
const READ_PAGE: usize = 1_000;

/// What the web routes share.
#[derive(Clone)]
pub struct WebState {
    pub hub: Arc<Hub>,
    pub config: Arc<WebConfig>,
    /// Communes (with their simplified boundaries) by tenant, dropped when one changes.
    pub communes: Arc<Mutex<HashMap<String, Arc<Vec<Commune>>>>>,
    /// Open event streams at most ([`crate::stream`]).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// The items of each tenant as last read, until the change feed says something
    /// changed; concurrent requests wait for one read instead of each reading.
    pub snapshots: Arc<tokio::sync::Mutex<Snapshots>>,
    /// The Content-Security-Policy of the pages ([`crate::assets`]).
    pub page_csp: HeaderValue,
}

/// Items and commune indicators by tenant, kept up to date from the change feed.
pub struct Snapshots {
    feed: tokio::sync::broadcast::Receiver<Arc<hub::EntityChange>>,
    by_tenant: HashMap<String, Snapshot>,
    /// Changes seen on the feed and not yet applied: tenant → id → deleted.
    pending: HashMap<String, BTreeMap<String, bool>>,
    /// Tenants whose communes changed (their cached map is dropped).
    communes_changed: Vec<String>,
    /// Whether changes were lost (every cached map is dropped).
    communes_lost: bool,
}

/// One tenant's items (by id), read whole at `read_at` and patched since.
#[derive(Clone)]
pub struct Snapshot {
    pub items: Arc<BTreeMap<String, Item>>,
    pub indicators: Arc<BTreeMap<String, Indicators>>,
    read_at: DateTime<Utc>,
}

/// How long a snapshot serves before it is read whole again: states depend on the
/// clock too (a sensor falls silent without any write).
const SNAPSHOT_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Changed entities patched into a snapshot at most; beyond, it is read again whole.
const PATCH_MAX: usize = 500;

impl Snapshots {
    pub fn new(hub: &Hub) -> Self {
        Snapshots {
            feed: hub.subscribe_changes(),
            by_tenant: HashMap::new(),
            pending: HashMap::new(),
            communes_changed: Vec::new(),
            communes_lost: false,
        }
    }

    /// Takes in what the feed brought since the last look.
    fn take_feed(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match self.feed.try_recv() {
                Ok(change) if change.kind == hub::ChangeKind::Missed => self.forget_all(),
                Ok(change) => {
                    if change.types.iter().any(|t| t.ends_with(COMMUNE_TYPE)) {
                        // Communes are not items: their map is read again.
                        self.communes_changed.push(change.tenant.clone());
                        continue;
                    }
                    let deleted = change.kind == hub::ChangeKind::Deleted;
                    let ids = self.pending.entry(change.tenant.clone()).or_default();
                    ids.insert(change.id.clone(), deleted);
                    if ids.len() > PATCH_MAX {
                        self.by_tenant.remove(&change.tenant);
                        self.pending.remove(&change.tenant);
                    }
                }
                Err(TryRecvError::Lagged(_)) => self.forget_all(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
    }

    /// Changes were missed: every snapshot is read again.
    fn forget_all(&mut self) {
        self.by_tenant.clear();
        self.pending.clear();
        self.communes_lost = true;
    }
}

/// A commune as the map draws it.
#[derive(Debug, Clone, Serialize)]
pub struct Commune {
    pub id: String,
    pub code: String,
    pub name: String,
    #[serde(rename = "nameEn")]
    pub name_en: Option<String>,
    pub kind: Option<String>,
    #[serde(rename = "areaKm2")]
    pub area_km2: Option<f64>,
    pub population: Option<f64>,
    #[serde(skip)]
    pub boundary: Option<Value>,
}

/// The tenant a request reads, once its caller is known to be granted it. The app's
/// snapshots are shared by every caller of a tenant, so they are read with the web
/// app's own scope; a caller limited to some entity types is refused (the operations
/// centre shows every layer).
pub(crate) fn scope(headers: &HeaderMap, caller: &hub::auth::Caller) -> Result<Scope, Error> {
    let tenant = tenant(headers)?;
    caller.check(&tenant, hub::auth::Access::Read)?;
    if caller.types.is_some() {
        return Err(Error::forbidden(
            "the operations centre shows every entity type; this grant is limited to some",
        ));
    }
    Ok(Scope::system("web", tenant))
}

/// Every entity of the tenant whose type is in `types`, up to [`MAX_ENTITIES`].
async fn read_all(hub: &Hub, scope: &Scope, types: &[String]) -> Result<Vec<Entity>, Error> {
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let expr = TypeExpr::Or(
        types
            .iter()
            .map(|t| TypeExpr::Type(scope.ctx.expand(t)))
            .collect(),
    );
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = hub
            .query(
                scope,
                EntityQuery {
                    types: Some(expr.clone()),
                    limit: READ_PAGE,
                    after,
                    ..Default::default()
                },
            )
            .await?;
        after = page.next(READ_PAGE);
        all.extend(page.entities);
        if after.is_none() || all.len() >= MAX_ENTITIES {
            break;
        }
    }
    all.truncate(MAX_ENTITIES);
    Ok(all)
}

/// The types of the tenant other than communes (compacted).
async fn other_types(hub: &Hub, scope: &Scope) -> Result<Vec<String>, Error> {
    Ok(hub
        .types(scope)
        .await?
        .into_iter()
        .map(|t| scope.ctx.compact(&t.type_iri))
        .filter(|t| t != COMMUNE_TYPE)
        .collect())
}

/// Every entity of the tenant but the communes, as items, and the commune indicators:
/// the snapshot with the entities changed since patched in, or read whole when it is
/// missing or old.
pub(crate) async fn snapshot(state: &WebState, scope: &Scope) -> Result<Snapshot, Error> {
    let mut snapshots = state.snapshots.lock().await;
    snapshots.take_feed();
    if let Ok(mut cache) = state.communes.lock() {
        if std::mem::take(&mut snapshots.communes_lost) {
            cache.clear();
        }
        for tenant in snapshots.communes_changed.drain(..) {
            cache.remove(&tenant);
        }
    }
    let now = Utc::now();
    let changed = snapshots.pending.remove(&scope.tenant).unwrap_or_default();
    if let Some(current) = snapshots.by_tenant.get(&scope.tenant)
        && now - current.read_at < SNAPSHOT_TTL
    {
        if changed.is_empty() {
            return Ok(current.clone());
        }
        let mut items = current.items.as_ref().clone();
        for (id, deleted) in changed {
            let entity = match deleted {
                true => None,
                false => state.hub.get_entity(scope, &id).await.ok(),
            };
            match entity {
                Some(e) => items.insert(id, view::item(&e, &scope.ctx, now)),
                None => items.remove(&id),
            };
        }
        let patched = Snapshot {
            indicators: Arc::new(view::indicators(items.values())),
            items: Arc::new(items),
            read_at: current.read_at,
        };
        snapshots
            .by_tenant
            .insert(scope.tenant.clone(), patched.clone());
        return Ok(patched);
    }
    let items = read_items(&state.hub, scope, now).await?;
    let snapshot = Snapshot {
        indicators: Arc::new(view::indicators(items.values())),
        items: Arc::new(items),
        read_at: now,
    };
    snapshots
        .by_tenant
        .insert(scope.tenant.clone(), snapshot.clone());
    Ok(snapshot)
}

async fn read_items(
    hub: &Hub,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Item>, Error> {
    let types = match hub.require_tenant(scope).await {
        Ok(()) => other_types(hub, scope).await?,
        // A tenant without data yet shows an empty map.
        Err(_) => Vec::new(),
    };
    let entities = read_all(hub, scope, &types).await?;
    Ok(entities
        .iter()
        .map(|e| (e.id.clone(), view::item(e, &scope.ctx, now)))
        .collect())
}

/// The tenant's communes, from the cache or the hub.
pub(crate) async fn communes(state: &WebState, scope: &Scope) -> Result<Arc<Vec<Commune>>, Error> {
    if let Some(cached) = state
        .communes
        .lock()
        .ok()
        .and_then(|c| c.get(&scope.tenant).cloned())
    {
        return Ok(cached);
    }
    let entities = match state.hub.require_tenant(scope).await {
        Ok(()) => read_all(&state.hub, scope, &[COMMUNE_TYPE.to_string()]).await?,
        Err(_) => Vec::new(),
    };
    let mut list: Vec<Commune> = entities
        .iter()
        .filter(|e| {
            // The province itself contains the others: the map draws units only.
            View::new(e, &scope.ctx)
                .object("containedInPlace")
                .is_some()
        })
        .map(|e| commune(e, &scope.ctx))
        .collect();
    list.sort_by(|a, b| a.code.cmp(&b.code));
    let list = Arc::new(list);
    if let Ok(mut cache) = state.communes.lock() {
        cache.insert(scope.tenant.clone(), list.clone());
    }
    Ok(list)
}

fn commune(e: &Entity, ctx: &Context) -> Commune {
    let v = View::new(e, ctx);
    Commune {
        id: e.id.clone(),
        code: v.text("code").unwrap_or_default().to_string(),
        name: v.localized("name", "vi").unwrap_or_else(|| e.id.clone()),
        name_en: v.localized("name", "en"),
        kind: v.text("kind").map(str::to_string),
        area_km2: v.number("areaKm2"),
        population: v.number("population"),
        boundary: v
            .value("displayBoundary")
            .or_else(|| v.value("location"))
            .cloned(),
    }
}

/// GET /ioc/api/config
pub async fn config(State(state): State<WebState>) -> Json<Value> {
    let layers: Vec<Value> = LAYERS
        .iter()
        .map(|(id, types)| json!({"id": id, "types": types}))
        .collect();
    Json(json!({
        "province": {"name": "Tỉnh Quảng Trị", "nameEn": "Quang Tri Province", "code": "44"},
        "center": [107.0, 17.2],
        "bounds": [[105.9, 16.1], [107.9, 18.1]],
        "basemapUrl": state.config.basemap_url,
        "timeZone": "Asia/Ho_Chi_Minh",
        "layers": layers,
        "indicators": ["population", "broadband", "5g", "aqi", "alerts", "areaKm2"],
        "silentAfterMinutes": view::SILENT_AFTER.num_minutes(),
        "aqiAlert": view::AQI_ALERT,
    }))
}

/// GET /ioc/api/communes: the communes as GeoJSON, each with its indicators.
pub async fn communes_geojson(
    State(state): State<WebState>,
    Head { headers, caller }: Head,
) -> Result<Response, ApiError> {
    let scope = scope(&headers, &caller)?;
    // The snapshot first: it drops the cached communes when they changed.
    let indicators = snapshot(&state, &scope).await?.indicators;
    let list = communes(&state, &scope).await?;
    Ok(communes_feature_collection(&list, |c| {
        let ind = indicators.get(&c.id).cloned().unwrap_or_default();
        json!({
            "population": c.population,
            "broadband": ind.broadband, "5g": ind.five_g, "aqi": ind.aqi,
            "alerts": ind.alerts, "entities": ind.entities,
        })
    }))
}

/// The communes as a GeoJSON FeatureCollection: each with its boundary, and as
/// properties its names, code, kind and area followed by the members `more` gives.
pub(crate) fn communes_feature_collection(
    list: &[Commune],
    more: impl Fn(&Commune) -> Value,
) -> Response {
    let features: Vec<Value> = list
        .iter()
        .map(|c| {
            let mut properties = json!({
                "id": c.id, "code": c.code, "name": c.name, "nameEn": c.name_en,
                "kind": c.kind, "areaKm2": c.area_km2,
            });
            if let (Some(properties), Value::Object(more)) = (properties.as_object_mut(), more(c)) {
                properties.extend(more);
            }
            json!({"type": "Feature", "id": c.id, "geometry": c.boundary, "properties": properties})
        })
        .collect();
    let body = json!({"type": "FeatureCollection", "features": features});
    with_type(Json(body).into_response(), "application/geo+json")
}

fn with_type(mut response: Response, content_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// GET /ioc/api/markers: every located entity of the sector layers, with its state.
pub async fn markers(
    State(state): State<WebState>,
    Head { headers, caller }: Head,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&headers, &caller)?;
    let params = Params::parse(raw.as_deref())?;
    let wanted = match params.get("layers") {
        Some(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            for w in &wanted {
                if !LAYERS.iter().any(|(l, _)| l == w) {
                    return Err(Error::bad_data(format!("unknown layer {w:?}")).into());
                }
            }
            Some(wanted)
        }
        None => None,
    };
    let items = snapshot(&state, &scope).await?.items;
    let markers: Vec<&Item> = items
        .values()
        .filter(|i| i.position.is_some())
        .filter(|i| match (&wanted, i.layer) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(w), Some(l)) => w.contains(&l),
        })
        .collect();
    Ok(Json(json!({"count": markers.len(), "markers": markers})))
}

/// A dashboard tile: how many, and which.
#[derive(Debug, Serialize)]
pub struct Tile {
    pub id: &'static str,
    pub layer: &'static str,
    pub count: usize,
    /// Up to 100 of the entities counted.
    pub entities: Vec<TileEntity>,
}

#[derive(Debug, Serialize)]
pub struct TileEntity {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<f64>,
}

fn tile(id: &'static str, layer: &'static str, items: &[&Item]) -> Tile {
    Tile {
        id,
        layer,
        count: items.len(),
        entities: items
            .iter()
            .take(100)
            .map(|i| TileEntity {
                id: i.id.clone(),
                name: i.name.clone(),
                reading: i.observation.reading,
            })
            .collect(),
    }
}

/// GET /ioc/api/summary: the dashboard's tiles and counts per layer and state.
pub async fn summary(
    State(state): State<WebState>,
    Head { headers, caller }: Head,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&headers, &caller)?;
    let items = snapshot(&state, &scope).await?.items;
    let of =
        |f: &dyn Fn(&Item) -> bool| -> Vec<&Item> { items.values().filter(|i| f(i)).collect() };
    let gauge = |min: u8| {
        move |i: &Item| {
            i.type_name == "WaterObserved" && i.observation.alarm_level.is_some_and(|l| l >= min)
        }
    };
    let tiles = vec![
        tile("gaugesAlarm1", "water", &of(&gauge(1))),
        tile("gaugesAlarm2", "water", &of(&gauge(2))),
        tile("gaugesAlarm3", "water", &of(&gauge(3))),
        tile(
            "airAqiOver150",
            "environment",
            &of(&|i| {
                i.type_name == "AirQualityObserved"
                    && i.observation.reading.is_some_and(|a| a > view::AQI_ALERT)
            }),
        ),
        tile(
            "devicesSilent",
            "environment",
            &of(&|i| i.state == ItemState::Offline),
        ),
        tile(
            "streetlightsOut",
            "energy",
            &of(&|i| i.type_name == "Streetlight" && i.state != ItemState::Normal),
        ),
        tile(
            "trafficCongested",
            "transport",
            &of(&|i| i.type_name == "TrafficFlowObserved" && i.state == ItemState::Warning),
        ),
        tile(
            "waterLeaks",
            "water",
            &of(&|i| i.type_name == "WaterConsumptionObserved" && i.state == ItemState::Warning),
        ),
    ];
    let mut layers: BTreeMap<&str, BTreeMap<ItemState, usize>> = BTreeMap::new();
    for i in items.values() {
        if let Some(l) = i.layer {
            *layers.entry(l).or_default().entry(i.state).or_default() += 1;
        }
    }
    Ok(Json(json!({
        "generatedAt": Utc::now(),
        "entities": items.len(),
        "demo": items.values().filter(|i| i.demo).count(),
        "tiles": tiles,
        "layers": layers,
    })))
}

/// The explorer's filters, checked.
struct Search {
    text: Option<String>,
    type_name: Option<String>,
    commune: Option<String>,
    layer: Option<String>,
    state: Option<String>,
    ids: Option<Vec<String>>,
}

const MAX_TEXT: usize = 200;

impl Search {
    fn parse(p: &Params) -> Result<Search, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match p.get(key) {
                Some(v) if v.chars().count() > MAX_TEXT => Err(Error::bad_data(format!(
                    "{key} is longer than {MAX_TEXT} characters"
                ))),
                Some(v) => Ok(Some(v.trim().to_string()).filter(|v| !v.is_empty())),
                None => Ok(None),
            }
        };
        let layer = text("layer")?;
        if let Some(l) = &layer
            && !LAYERS.iter().any(|(id, _)| id == l)
        {
            return Err(Error::bad_data(format!("unknown layer {l:?}")));
        }
        let state = text("state")?;
        const STATES: [&str; 6] = ["normal", "warning", "alarm1", "alarm2", "alarm3", "offline"];
        if let Some(s) = &state
            && !STATES.contains(&s.as_str())
        {
            return Err(Error::bad_data(format!(
                "state is one of {}",
                STATES.join(", ")
            )));
        }
        let ids = match p.get("id") {
            Some(list) => {
                let ids: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
                if ids.len() > MAX_PAGE || ids.iter().any(|i| i.len() > 512) {
                    return Err(Error::bad_data(format!("id takes up to {MAX_PAGE} ids")));
                }
                Some(ids)
            }
            None => None,
        };
        Ok(Search {
            text: text("q")?.map(|t| view::fold(&t)),
            type_name: text("type")?,
            commune: text("commune")?.map(|t| view::fold(&t)),
            layer,
            state,
            ids,
        })
    }

    fn matches(&self, i: &Item) -> bool {
        let state = serde_json::to_value(i.state).unwrap_or(Value::Null);
        self.ids.as_ref().is_none_or(|ids| ids.contains(&i.id))
            && self.type_name.as_ref().is_none_or(|t| &i.type_name == t)
            && self
                .layer
                .as_ref()
                .is_none_or(|l| i.layer == Some(l.as_str()))
            && self
                .state
                .as_ref()
                .is_none_or(|s| state.as_str() == Some(s.as_str()))
            && self.commune.as_ref().is_none_or(|c| {
                i.commune.as_ref().is_some_and(|id| view::fold(id) == *c)
                    || i.commune_name
                        .as_ref()
                        .is_some_and(|n| view::fold(n).contains(c))
            })
            && self.text.as_ref().is_none_or(|t| {
                view::fold(&i.name).contains(t)
                    || i.name_en
                        .as_ref()
                        .is_some_and(|n| view::fold(n).contains(t))
                    || view::fold(&i.id).contains(t)
            })
    }
}

/// The items (communes included) that match the request's filters.
async fn search(state: &WebState, head: &Head, params: &Params) -> Result<Vec<Item>, Error> {
    let scope = scope(&head.headers, &head.caller)?;
    let filter = Search::parse(params)?;
    let mut items: Vec<Item> = snapshot(state, &scope)
        .await?
        .items
        .values()
        .cloned()
        .collect();
    let now = Utc::now();
    for c in communes(state, &scope).await?.iter() {
        items.push(commune_item(c, now));
    }
    items.retain(|i| filter.matches(i));
    items.sort_by(|a, b| (&a.type_name, &a.name, &a.id).cmp(&(&b.type_name, &b.name, &b.id)));
    Ok(items)
}

fn commune_item(c: &Commune, now: DateTime<Utc>) -> Item {
    Item {
        id: c.id.clone(),
        type_name: COMMUNE_TYPE.to_string(),
        layer: None,
        name: c.name.clone(),
        name_en: c.name_en.clone(),
        commune: Some(c.id.clone()),
        commune_name: Some(c.name.clone()),
        position: None,
        state: ItemState::Normal,
        demo: false,
        modified_at: now,
        observation: Observation {
            reading: c.population,
            ..Observation::default()
        },
        indicator: None,
    }
}

fn bounded(p: &Params, key: &str, default: usize, max: usize) -> Result<usize, Error> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Error::bad_data(format!(
                "{key} is a whole number from 0 to {max}"
            ))),
        },
    }
}

/// GET /ioc/api/entities: the explorer's search, one page of it.
pub async fn entities(
    State(state): State<WebState>,
    head: Head,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let limit = bounded(&params, "limit", 50, MAX_PAGE)?;
    let offset = bounded(&params, "offset", 0, MAX_ENTITIES)?;
    let found = search(&state, &head, &params).await?;
    let total = found.len();
    let page: Vec<Item> = found.into_iter().skip(offset).take(limit).collect();
    Ok(Json(
        json!({"total": total, "offset": offset, "limit": limit, "items": page}),
    ))
}

/// GET /ioc/api/export: the explorer's result as CSV or GeoJSON, to download.
pub async fn export(
    State(state): State<WebState>,
    head: Head,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let format = params.get("format").unwrap_or("csv");
    if format != "csv" && format != "geojson" {
        return Err(Error::bad_data("format is csv or geojson").into());
    }
    let mut found = search(&state, &head, &params).await?;
    if found.len() > MAX_EXPORT {
        return Err(Error::new(
            ngsi::ErrorKind::TooManyResults,
            format!("an export holds up to {MAX_EXPORT} entities: narrow the search"),
        )
        .into());
    }
    found.truncate(MAX_EXPORT);
    let (body, content_type, name) = if format == "csv" {
        (csv(&found), "text/csv; charset=utf-8", "dothi-export.csv")
    } else {
        let body = serde_json::to_string(&geojson(&found)).unwrap_or_default();
        (body, "application/geo+json", "dothi-export.geojson")
    };
    let mut response = with_type(body.into_response(), content_type);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

const CSV_COLUMNS: [&str; 12] = [
    "id",
    "type",
    "name",
    "nameEn",
    "commune",
    "communeName",
    "longitude",
    "latitude",
    "state",
    "reading",
    "modifiedAt",
    "demo",
];

/// The items as CSV for spreadsheets (UTF-8 with a byte-order mark, so spreadsheets
/// read the diacritics; formulas guarded).
pub fn csv(items: &[Item]) -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_csv(&mut out, items);
    String::from_utf8(out).unwrap_or_default()
}

fn write_csv(out: &mut Vec<u8>, items: &[Item]) -> std::io::Result<()> {
    let mut csv = CsvRecords::new(out, CsvStyle::SPREADSHEET)?;
    csv.record(&CSV_COLUMNS)?;
    for i in items {
        let state = serde_json::to_value(i.state).unwrap_or(Value::Null);
        csv.record(&[
            i.id.clone(),
            i.type_name.clone(),
            i.name.clone(),
            i.name_en.clone().unwrap_or_default(),
            i.commune.clone().unwrap_or_default(),
            i.commune_name.clone().unwrap_or_default(),
            i.position.map(|p| p[0].to_string()).unwrap_or_default(),
            i.position.map(|p| p[1].to_string()).unwrap_or_default(),
            state.as_str().unwrap_or_default().to_string(),
            i.observation
                .reading
                .map(|r| r.to_string())
                .unwrap_or_default(),
            ngsi::entity::format_time(&i.modified_at),
            i.demo.to_string(),
        ])?;
    }
    csv.flush()
}

/// The items as a GeoJSON FeatureCollection (points; unlocated items have no geometry).
pub fn geojson(items: &[Item]) -> Value {
    let features: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut properties = serde_json::to_value(i).unwrap_or(Value::Null);
            if let Some(p) = properties.as_object_mut() {
                p.remove("position");
            }
            json!({
                "type": "Feature",
                "id": i.id,
                "geometry": i.position.map(|p| json!({"type": "Point", "coordinates": p})),
                "properties": properties,
            })
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features})
}
