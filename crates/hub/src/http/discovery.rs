//! /types and /attributes: what kinds of entity and attribute the hub holds.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ngsi::Error;
use serde_json::{Value, json};

use super::negotiate::{accept, respond, scope_from_headers};
use super::params::Params;
use super::{ApiError, AppState, PathParam};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/types", get(list_types))
        .route("/types/{type}", get(type_info))
        .route("/attributes", get(list_attributes))
        .route("/attributes/{attr}", get(attribute_info))
}

fn list_id(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4())
}

async fn list_types(
    State(s): State<AppState>,
    super::gate::Head { headers, caller }: super::gate::Head,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let wanted = accept(&headers, false)?;
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let details = Params::parse(raw.as_deref())?.flag("details")?;
    let types = s.hub.types(&scope).await?;
    let ctx = &scope.ctx;
    let body = if details {
        Value::Array(
            types
                .iter()
                .map(|t| {
                    json!({
                        "id": t.type_iri,
                        "type": "EntityType",
                        "typeName": ctx.compact(&t.type_iri),
                        "attributeNames": t.attributes.keys().map(|a| ctx.compact(a)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": types.iter().map(|t| ctx.compact(&t.type_iri)).collect::<Vec<_>>(),
        })
    };
    Ok(respond(StatusCode::OK, wanted, ctx, body))
}

async fn type_info(
    State(s): State<AppState>,
    PathParam(name): PathParam<String>,
    super::gate::Head { headers, caller }: super::gate::Head,
) -> Result<Response, ApiError> {
    let wanted = accept(&headers, false)?;
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let ctx = &scope.ctx;
    let iri = ngsi::entity::expand_type(&name, ctx)?;
    let types = s.hub.types(&scope).await?;
    let t = types
        .iter()
        .find(|t| t.type_iri == iri)
        .ok_or_else(|| Error::not_found(format!("no entity of type {name}")))?;
    let body = json!({
        "id": t.type_iri,
        "type": "EntityTypeInfo",
        "typeName": ctx.compact(&t.type_iri),
        "entityCount": t.entity_count,
        "attributeDetails": t.attributes.iter().map(|(a, kinds)| json!({
            "id": a,
            "type": "Attribute",
            "attributeName": ctx.compact(a),
            "attributeTypes": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    Ok(respond(StatusCode::OK, wanted, ctx, body))
}

fn attribute_json(a: &store::AttributeSummary, ctx: &ngsi::Context) -> Value {
    json!({
        "id": a.name_iri,
        "type": "Attribute",
        "attributeName": ctx.compact(&a.name_iri),
        "attributeCount": a.attribute_count,
        "attributeTypes": a.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "typeNames": a.type_names.iter().map(|t| ctx.compact(t)).collect::<Vec<_>>(),
    })
}

async fn list_attributes(
    State(s): State<AppState>,
    super::gate::Head { headers, caller }: super::gate::Head,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let wanted = accept(&headers, false)?;
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let details = Params::parse(raw.as_deref())?.flag("details")?;
    let attrs = s.hub.attributes(&scope).await?;
    let ctx = &scope.ctx;
    let body = if details {
        Value::Array(attrs.iter().map(|a| attribute_json(a, ctx)).collect())
    } else {
        json!({
            "id": list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": attrs.iter().map(|a| ctx.compact(&a.name_iri)).collect::<Vec<_>>(),
        })
    };
    Ok(respond(StatusCode::OK, wanted, ctx, body))
}

async fn attribute_info(
    State(s): State<AppState>,
    PathParam(name): PathParam<String>,
    super::gate::Head { headers, caller }: super::gate::Head,
) -> Result<Response, ApiError> {
    let wanted = accept(&headers, false)?;
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let ctx = &scope.ctx;
    let iri = ngsi::entity::expand_attr(&name, ctx)?;
    let attrs = s.hub.attributes(&scope).await?;
    let a = attrs
        .iter()
        .find(|a| a.name_iri == iri)
        .ok_or_else(|| Error::not_found(format!("no attribute {name}")))?;
    Ok(respond(StatusCode::OK, wanted, ctx, attribute_json(a, ctx)))
}
