//! Update rules as NGSI-LD clients exercise them: NGSI-LD Null deleting one instance,
//! types and scopes in updates, batch merge, and the checks of representation
//! parameters.

use serde_json::{Value, json};

use crate::common::*;

const ID: &str = "urn:ngsi-ld:Building:u1";

/// A building with two instances of `name` (default and a datasetId), a relationship
/// and a location, in scope /QuangTri.
fn building() -> Value {
    json!({
        "id": ID, "type": "Building", "scope": "/QuangTri",
        "name": [
            {"type": "Property", "value": "Nhà văn hóa"},
            {"type": "Property", "value": "Culture house", "datasetId": "urn:ngsi-ld:Dataset:en"}
        ],
        "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:DongHa"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}}
    })
}

/// A hub holding [`building`].
async fn with_building() -> App {
    let app = App::start().await;
    app.create(building()).await;
    app
}

/// The instances of an attribute of a retrieved entity, as a list.
fn instances(entity: &Value, name: &str) -> Vec<Value> {
    match &entity[name] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngsi_ld_null_deletes_one_instance_in_every_kind_of_update() {
    let app = with_building().await;
    // Partial attribute update: the datasetId instance goes, the default one stays.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs/name"),
        &json!({"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": "urn:ngsi-ld:Dataset:en"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(
        instances(&e, "name"),
        vec![json!({"type": "Property", "value": "Nhà văn hóa"})]
    );
    // A GeoProperty set to null is deleted, not refused as a bad geometry.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs/location"),
        &json!({"type": "GeoProperty", "value": "urn:ngsi-ld:null"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(app.entity(ID).await.get("location").is_none());

    // Update attributes: a relationship deleted by a null object, beside a real update.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs"),
        &json!({
            "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:null"},
            "name": {"type": "Property", "value": "Nhà văn hóa mới"}
        }),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert!(e.get("locatedAt").is_none(), "{e}");
    assert_eq!(e["name"]["value"], "Nhà văn hóa mới");
    // Deleting what is not there is reported, and changes nothing.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs"),
        &json!({"locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:null"}}),
    ))
    .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["notUpdated"][0]["attributeName"], "locatedAt");

    // Merge-patch: only the named instance goes.
    send(app.delete(&format!("/entities/{ID}"))).await;
    app.create(building()).await;
    let r = send(app.patch(
        &format!("/entities/{ID}"),
        &json!({"name": {"type": "Property", "value": "urn:ngsi-ld:null"}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(
        instances(&e, "name"),
        vec![
            json!({"type": "Property", "value": "Culture house", "datasetId": "urn:ngsi-ld:Dataset:en"})
        ]
    );
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_add_types_and_handle_scopes() {
    let app = with_building().await;
    // PATCH /attrs with a type adds it; types are never removed by an update.
    let r = send(app.patch(&format!("/entities/{ID}/attrs"), &json!({"type": "School"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.entity(ID).await["type"], json!(["Building", "School"]));
    // Scope: replaced by an update where there is one…
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs"),
        &json!({"scope": "/QuangTri/DongHa"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.entity(ID).await["scope"], "/QuangTri/DongHa");
    // …added to by an append with noOverwrite…
    let r = send(app.post(
        &format!("/entities/{ID}/attrs?options=noOverwrite"),
        &json!({"scope": "/Tourism"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await["scope"],
        json!(["/QuangTri/DongHa", "/Tourism"])
    );
    // …deleted as if it were an attribute, once.
    app.delete_ok(&format!("/entities/{ID}/attrs/scope")).await;
    assert!(app.entity(ID).await.get("scope").is_none());
    let r = send(app.delete(&format!("/entities/{ID}/attrs/scope"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    // An update cannot give a scope to an entity without one.
    let r = send(app.patch(&format!("/entities/{ID}/attrs"), &json!({"scope": "/X"}))).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert!(app.entity(ID).await.get("scope").is_none());
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_merge_patches_each_entity_and_reports_the_missing() {
    let app = with_building().await;
    let other = "urn:ngsi-ld:Building:u2";
    app.create(
        json!({"id": other, "type": "Building", "height": {"type": "Property", "value": 12}}),
    )
    .await;
    let r = send(app.post(
        "/entityOperations/merge",
        &json!([
            {"id": ID, "type": "Building", "height": {"type": "Property", "value": 7},
             "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:null"}},
            {"id": other, "type": "Building", "height": {"type": "Property", "value": 13}}
        ]),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(e["height"]["value"], 7);
    assert!(e.get("locatedAt").is_none());
    assert_eq!(
        instances(&e, "name").len(),
        2,
        "untouched attributes stay: {e}"
    );
    assert_eq!(app.entity(other).await["height"]["value"], 13);

    let r = send(app.post(
        "/entityOperations/merge",
        &json!([
            {"id": other, "type": "Building", "height": {"type": "Property", "value": 14}},
            {"id": "urn:ngsi-ld:Building:none", "type": "Building", "height": {"type": "Property", "value": 1}},
            {"id": "not a uri", "type": "Building"},
            {"id": "urn:ngsi-ld:Building:none", "type": "Building", "height": {"type": "Property", "value": null}}
        ]),
    ))
    .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([other]));
    let errors: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entityId"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "urn:ngsi-ld:Building:none",
            "not a uri",
            "urn:ngsi-ld:Building:none"
        ]
    );
    // A JSON null value is bad data, found before the missing entity.
    assert_eq!(
        r.body["errors"][2]["error"]["type"],
        "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    );
    assert_eq!(app.entity(other).await["height"]["value"], 14);
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn representation_parameters_are_checked() {
    let app = with_building().await;
    let path = format!("/entities/{ID}");
    // An unknown format or option is not a request the API knows (InvalidRequest).
    for query in [
        vec![("format", "tabular")],
        vec![("options", "keyValues,fast")],
    ] {
        let r = app.get_with(&path, &query).await;
        assert_problem(&r, 400, "InvalidRequest");
    }
    for query in [
        vec![("pick", "name"), ("attrs", "name")],
        vec![("omit", "name"), ("attrs", "name")],
        vec![("pick", "name,,type")],
        vec![("attrs", "name,")],
    ] {
        let r = app.get_with(&path, &query).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    // The checks come before the entity is looked up.
    let r = app
        .get_with(
            "/entities/urn:ngsi-ld:Building:none",
            &[("format", "tabular")],
        )
        .await;
    assert_problem(&r, 400, "InvalidRequest");
    // format names the representation even beside options.
    let e = app
        .entity_with(ID, &[("format", "keyValues"), ("options", "normalized")])
        .await;
    assert_eq!(e["locatedAt"], "urn:ngsi-ld:City:DongHa");
    // Asking for what the entity lacks finds nothing.
    for query in [
        vec![("attrs", "colour")],
        vec![("pick", "colour")],
        vec![("omit", "id,type,scope,name,locatedAt,location")],
    ] {
        let r = app.get_with(&path, &query).await;
        assert_problem(&r, 404, "ResourceNotFound");
    }
    // datasetId keeps the instances of those datasets only (@none: the default ones).
    let e = app
        .entity_with(ID, &[("datasetId", "urn:ngsi-ld:Dataset:en")])
        .await;
    assert_eq!(e["name"]["value"], "Culture house", "{e}");
    assert!(e.get("locatedAt").is_none(), "{e}");
    let e = app
        .entity_with(ID, &[("datasetId", "@none"), ("attrs", "name")])
        .await;
    assert_eq!(
        e["name"],
        json!({"type": "Property", "value": "Nhà văn hóa"}),
        "{e}"
    );
    let r = app.get_with(&path, &[("datasetId", "not a uri")]).await;
    assert_problem(&r, 400, "BadRequestData");
    // An attribute path named like a JSON-LD keyword is refused before any lookup.
    let r = send(app.put(
        &format!("/entities/{ID}/attrs/@invalid"),
        &json!({"type": "Property", "value": 1}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    // A type named like a JSON-LD keyword is refused.
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:X:1", "type": "type"}),
    ))
    .await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_cannot_change_the_kind_of_an_attribute() {
    let app = with_building().await;
    // `name` is a Property: a Relationship fragment is refused and changes nothing.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs/name"),
        &json!({"type": "Relationship", "object": "urn:ngsi-ld:City:Hue"}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let e = app.entity(ID).await;
    assert_eq!(instances(&e, "name")[0]["value"], "Nhà văn hóa");
    // The same kind is patched as before.
    let r = send(app.patch(
        &format!("/entities/{ID}/attrs/locatedAt"),
        &json!({"type": "Relationship", "object": "urn:ngsi-ld:City:Hue"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await["locatedAt"]["object"],
        "urn:ngsi-ld:City:Hue"
    );
}
