//! The public page's data under `/public/api`, for anyone without a login: the
//! communes' boundaries and names, and the open sensor layers — river gauges
//! (`WaterObserved`), air-quality stations and weather stations — of the default
//! tenant.
//!
//! These answers are cut from the same per-tenant snapshot as the operations centre's,
//! read with the web app's own scope, but always the default tenant's (whatever
//! `NGSILD-Tenant` says) and only through [`PublicItem`], which names every field it
//! shows: another layer, another tenant or a new field of [`Item`] never reaches them.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::Utc;
use hub::Scope;
use hub::http::ApiError;
use hub::http::params::Params;
use ngsi::Error;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{WebState, communes, communes_feature_collection, snapshot};
use crate::view::{self, Item, Observation, State as ItemState};

/// The public layers and the one entity type each shows.
pub const PUBLIC_LAYERS: &[(&str, &str)] = &[
    ("water", "WaterObserved"),
    ("air", "AirQualityObserved"),
    ("weather", "WeatherObserved"),
];

/// The public layer of an entity type, if it has one.
pub fn public_layer(type_name: &str) -> Option<&'static str> {
    PUBLIC_LAYERS
        .iter()
        .find(|(_, t)| *t == type_name)
        .map(|(l, _)| *l)
}

/// What the public page shows of a station: named field by field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicItem {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub layer: &'static str,
    pub name: String,
    #[serde(rename = "nameEn", skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    #[serde(rename = "communeName", skip_serializing_if = "Option::is_none")]
    pub commune_name: Option<String>,
    pub position: [f64; 2],
    pub state: ItemState,
    pub demo: bool,
    /// Its reading: water level (m), AQI, or temperature (°C).
    #[serde(flatten)]
    pub observation: Observation,
}

impl PublicItem {
    /// The public view of an item: none for an item outside the public layers or
    /// without a position.
    pub fn of(item: &Item) -> Option<PublicItem> {
        let layer = public_layer(&item.type_name)?;
        Some(PublicItem {
            id: item.id.clone(),
            type_name: item.type_name.clone(),
            layer,
            name: item.name.clone(),
            name_en: item.name_en.clone(),
            commune_name: item.commune_name.clone(),
            position: item.position?,
            state: item.state,
            demo: item.demo,
            observation: item.observation.clone(),
        })
    }
}

/// The scope the public answers are read in: the web app's, in the default tenant.
fn scope() -> Scope {
    Scope::system("web", String::new())
}

/// GET /public/api/config
pub async fn config(State(state): State<WebState>) -> Json<Value> {
    let layers: Vec<Value> = PUBLIC_LAYERS
        .iter()
        .map(|(id, t)| json!({"id": id, "types": [t]}))
        .collect();
    Json(json!({
        "province": {"name": "Tỉnh Quảng Trị", "nameEn": "Quang Tri Province", "code": "44"},
        "bounds": [[105.9, 16.1], [107.9, 18.1]],
        "basemapUrl": state.config.basemap_url,
        "timeZone": "Asia/Ho_Chi_Minh",
        "layers": layers,
        "silentAfterMinutes": view::SILENT_AFTER.num_minutes(),
    }))
}

/// GET /public/api/communes: the communes as GeoJSON with their names, code, kind and
/// area (no indicator drawn from other layers).
pub async fn communes_geojson(State(state): State<WebState>) -> Result<Response, ApiError> {
    let scope = scope();
    // The snapshot first: it drops the cached communes when they changed.
    snapshot(&state, &scope).await?;
    let list = communes(&state, &scope).await?;
    Ok(communes_feature_collection(&list, |_| json!({})))
}

/// GET /public/api/markers?layers=water,air,weather: the stations of the public layers
/// (all three without `layers`), with their state and reading.
pub async fn markers(
    State(state): State<WebState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let wanted: Vec<&str> = match params.get("layers") {
        Some(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            for w in &wanted {
                if !PUBLIC_LAYERS.iter().any(|(l, _)| l == w) {
                    return Err(Error::bad_data(format!(
                        "{w:?} is not a public layer (water, air, weather)"
                    ))
                    .into());
                }
            }
            wanted
        }
        None => PUBLIC_LAYERS.iter().map(|(l, _)| *l).collect(),
    };
    let items = snapshot(&state, &scope()).await?.items;
    let markers: Vec<PublicItem> = items
        .values()
        .filter_map(PublicItem::of)
        .filter(|p| wanted.contains(&p.layer))
        .collect();
    Ok(Json(json!({
        "generatedAt": Utc::now(),
        "count": markers.len(),
        "markers": markers,
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(type_name: &str, position: Option<[f64; 2]>) -> Item {
        Item {
            id: format!("urn:ngsi-ld:{type_name}:x"),
            type_name: type_name.to_string(),
            layer: view::layer_of(type_name),
            name: "x".into(),
            name_en: None,
            commune: Some("urn:ngsi-ld:AdministrativeArea:VN-44-19333".into()),
            commune_name: None,
            position,
            state: ItemState::Normal,
            demo: true,
            modified_at: Utc::now(),
            observation: Observation {
                reading: Some(1.0),
                ..Observation::default()
            },
            indicator: None,
        }
    }

    #[test]
    fn only_located_stations_of_the_public_layers_are_shown() {
        let here = Some([107.1, 16.8]);
        for t in ["WaterObserved", "AirQualityObserved", "WeatherObserved"] {
            assert!(PublicItem::of(&item(t, here)).is_some(), "{t}");
            assert!(
                PublicItem::of(&item(t, None)).is_none(),
                "{t} without a place"
            );
        }
        for t in [
            "WaterConsumptionObserved",
            "FloodMonitoring",
            "Streetlight",
            "TrafficFlowObserved",
            "Hospital",
            "KeyPerformanceIndicator",
            "AdministrativeArea",
        ] {
            assert!(PublicItem::of(&item(t, here)).is_none(), "{t}");
        }
        // The commune's id (a link into the hub) is not part of the public view.
        let shown = serde_json::to_value(PublicItem::of(&item("WaterObserved", here))).unwrap();
        assert!(shown.get("commune").is_none());
    }
}
