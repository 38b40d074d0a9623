//! /types and /attributes: what kinds of entity and attribute the hub holds.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ngsi::Error;
use serde_json::{Value, json};

use super::entities::Get;
use super::negotiate::{accept, respond, scope_from_headers};
use super::{ApiError, AppState, PathParam};

#[rustfmt::skip]
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/types", get(|s, get| list(Listed::Types, s, get)))
        .route("/types/{type}", get(|s, name, head| info(Listed::Types, s, name, head)))
        .route("/attributes", get(|s, get| list(Listed::Attributes, s, get)))
        .route("/attributes/{attr}", get(|s, name, head| info(Listed::Attributes, s, name, head)))
}

/// What a discovery route lists: the routes of both read the request the same way and
/// differ only in what they look up and show.
#[derive(Clone, Copy)]
enum Listed {
    Types,
    Attributes,
}

/// A list of names without details: an `EntityTypeList` or `AttributeList` (`kind`),
/// the names under `member`.
fn name_list(kind: &str, member: &str, names: impl Iterator<Item = String>) -> Value {
    let mut list = json!({
        "id": format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4()),
        "type": kind,
    });
    list[member] = Value::Array(names.map(Value::String).collect());
    list
}

/// The item of `items` whose IRI is `iri`, or not found: "no {what} {name}".
fn named<'a, T>(
    items: &'a [T],
    iri_of: impl Fn(&T) -> &str,
    iri: &str,
    what: &str,
    name: &str,
) -> Result<&'a T, Error> {
    items
        .iter()
        .find(|t| iri_of(t) == iri)
        .ok_or_else(|| Error::not_found(format!("no {what} {name}")))
}

/// `GET /types` and `GET /attributes`: the names, or with `details=true` the details.
async fn list(listed: Listed, State(s): State<AppState>, get: Get) -> Result<Response, ApiError> {
    let (wanted, scope, params) = get.read(&s, None, false).await?;
    let details = params.flag("details")?;
    let ctx = &scope.ctx;
    let body = match listed {
        Listed::Types => {
            let types = s.hub.types(&scope).await?;
            if details {
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
                let names = types.iter().map(|t| ctx.compact(&t.type_iri));
                name_list("EntityTypeList", "typeList", names)
            }
        }
        Listed::Attributes => {
            let attrs = s.hub.attributes(&scope).await?;
            if details {
                Value::Array(attrs.iter().map(|a| attribute_json(a, ctx)).collect())
            } else {
                let names = attrs.iter().map(|a| ctx.compact(&a.name_iri));
                name_list("AttributeList", "attributeList", names)
            }
        }
    };
    Ok(respond(StatusCode::OK, wanted, ctx, body))
}

/// `GET /types/{type}` and `GET /attributes/{attr}`: one type's or attribute's details.
async fn info(
    listed: Listed,
    State(s): State<AppState>,
    PathParam(name): PathParam<String>,
    super::gate::Head { headers, caller }: super::gate::Head,
) -> Result<Response, ApiError> {
    let wanted = accept(&headers, false)?;
    let scope = scope_from_headers(&s, &headers, &caller).await?;
    let ctx = &scope.ctx;
    let body = match listed {
        Listed::Types => {
            let iri = ngsi::entity::expand_type(&name, ctx)?;
            let types = s.hub.types(&scope).await?;
            let t = named(&types, |t| &t.type_iri, &iri, "entity of type", &name)?;
            json!({
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
            })
        }
        Listed::Attributes => {
            let iri = ngsi::entity::expand_attr(&name, ctx)?;
            let attrs = s.hub.attributes(&scope).await?;
            let a = named(&attrs, |a| &a.name_iri, &iri, "attribute", &name)?;
            attribute_json(a, ctx)
        }
    };
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
