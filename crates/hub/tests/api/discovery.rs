//! /types and /attributes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::*;

async fn seeded() -> App {
    let app = App::start().await;
    app.create_all(vec![
        json!({"id": "urn:ngsi-ld:Station:d1", "type": "Station",
               "level": {"type": "Property", "value": 3.2},
               "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}},
               "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:d3"}}),
        json!({"id": "urn:ngsi-ld:Station:d2", "type": "Station",
               "level": 1.5,
               "name": {"type": "LanguageProperty", "languageMap": {"vi": "Hiếu"}}}),
        json!({"id": "urn:ngsi-ld:River:d3", "type": "River", "name": "Thạch Hãn", "length": 155.5}),
    ])
    .await;
    app
}

fn by<'a>(items: &'a Value, key: &str) -> BTreeMap<String, &'a Value> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {items}"))
        .iter()
        .map(|i| (i[key].as_str().unwrap_or_default().to_string(), i))
        .collect()
}

/// The details `path` lists (`details=true`), by the member `key` names each with;
/// `count` of them.
async fn details(app: &App, path: &str, key: &str, count: usize) -> BTreeMap<String, Value> {
    let r = app.get_ok(path, &[("details", "true")]).await;
    let items = by(&r.body, key);
    assert_eq!(items.len(), count, "{}", r.text);
    items.into_iter().map(|(k, v)| (k, v.clone())).collect()
}

/// Asserts that `r` is a list of the `kind` given, with a generated id of that kind.
#[track_caller]
fn assert_list(r: &Resp, kind: &str) {
    assert_eq!(r.body["type"], kind, "{}", r.text);
    let prefix = format!("urn:ngsi-ld:{kind}:");
    assert!(
        r.body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&prefix)),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_list_and_details() {
    let app = seeded().await;
    let r = app.get_ok("/types", &[]).await;
    assert_eq!(r.content_type(), JSON);
    assert_list(&r, "EntityTypeList");
    assert_eq!(string_set(&r.body["typeList"]), set(&["River", "Station"]));

    let types = details(&app, "/types", "typeName", 2).await;
    let station = &types["Station"];
    assert_eq!(station["id"], format!("{DEFAULT_VOCAB}Station"));
    assert_eq!(station["type"], "EntityType");
    assert_eq!(
        string_set(&station["attributeNames"]),
        set(&["level", "location", "name", "refRiver"])
    );
    assert_eq!(
        string_set(&types["River"]["attributeNames"]),
        set(&["length", "name"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_info() {
    let app = seeded().await;
    let r = app.get_ok("/types/Station", &[]).await;
    assert_eq!(r.body["id"], format!("{DEFAULT_VOCAB}Station"));
    assert_eq!(r.body["type"], "EntityTypeInfo");
    assert_eq!(r.body["typeName"], "Station");
    assert_eq!(r.body["entityCount"], 2);
    let details = by(&r.body["attributeDetails"], "attributeName");
    assert_eq!(details.len(), 4, "{}", r.text);
    assert_eq!(
        details["location"],
        &json!({"id": "https://uri.etsi.org/ngsi-ld/location", "type": "Attribute",
                "attributeName": "location", "attributeTypes": ["GeoProperty"]})
    );
    assert_eq!(
        details["level"],
        &json!({"id": format!("{DEFAULT_VOCAB}level"), "type": "Attribute",
                "attributeName": "level", "attributeTypes": ["Property"]})
    );
    assert_eq!(
        details["refRiver"]["attributeTypes"],
        json!(["Relationship"])
    );
    assert_eq!(
        details["name"]["attributeTypes"],
        json!(["LanguageProperty"])
    );
    // By full IRI too.
    let r = send(app.get(&format!(
        "/types/{}",
        urlencode(&format!("{DEFAULT_VOCAB}River"))
    )))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["entityCount"], 1);

    let r = send(app.get("/types/Nothing")).await;
    assert_problem(&r, 404, "ResourceNotFound");

    // Counts follow deletions.
    app.delete_ok("/entities/urn:ngsi-ld:Station:d2").await;
    let r = send(app.get("/types/Station")).await;
    assert_eq!(r.body["entityCount"], 1);
    assert_eq!(
        by(&r.body["attributeDetails"], "attributeName")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["level", "location", "refRiver"]
    );
    app.delete_ok("/entities/urn:ngsi-ld:Station:d1").await;
    let r = send(app.get("/types/Station")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.get("/types")).await;
    assert_eq!(string_set(&r.body["typeList"]), set(&["River"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_list_details_and_info() {
    let app = seeded().await;
    let r = app.get_ok("/attributes", &[]).await;
    assert_list(&r, "AttributeList");
    assert_eq!(
        string_set(&r.body["attributeList"]),
        set(&["length", "level", "location", "name", "refRiver"])
    );

    let attrs = details(&app, "/attributes", "attributeName", 5).await;
    let name = &attrs["name"];
    assert_eq!(name["id"], format!("{DEFAULT_VOCAB}name"));
    assert_eq!(name["type"], "Attribute");
    assert_eq!(name["attributeCount"], 2);
    assert_eq!(
        string_set(&name["attributeTypes"]),
        set(&["LanguageProperty", "Property"])
    );
    assert_eq!(string_set(&name["typeNames"]), set(&["River", "Station"]));
    assert_eq!(attrs["level"]["attributeCount"], 2);
    assert_eq!(attrs["level"]["typeNames"], json!(["Station"]));

    let r = app.get_ok("/attributes/level", &[]).await;
    assert_eq!(
        r.body,
        json!({"id": format!("{DEFAULT_VOCAB}level"), "type": "Attribute", "attributeName": "level",
               "attributeCount": 2, "attributeTypes": ["Property"], "typeNames": ["Station"]})
    );
    let r = send(app.get("/attributes/location")).await;
    assert_eq!(r.body["id"], "https://uri.etsi.org/ngsi-ld/location");
    assert_eq!(r.body["attributeTypes"], json!(["GeoProperty"]));
    let r = send(app.get("/attributes/nothing")).await;
    assert_problem(&r, 404, "ResourceNotFound");

    // Counts follow changes.
    app.delete_ok("/entities/urn:ngsi-ld:Station:d1/attrs/level")
        .await;
    let r = send(app.get("/attributes/level")).await;
    assert_eq!(r.body["attributeCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_of_an_empty_hub() {
    let app = App::start().await;
    let r = app.get_ok("/types", &[]).await;
    assert_eq!(r.body["typeList"], json!([]));
    let r = app.get_ok("/attributes", &[]).await;
    assert_eq!(r.body["attributeList"], json!([]));
    let r = send(app.get("/types").header("accept", GEO_JSON)).await;
    assert_problem(&r, 406, "NotAcceptable");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
