//! /entities and /entities/{id}/attrs: create, retrieve (every representation and
//! projection), replace, merge, append, update, partial update, delete.

use serde_json::{Value, json};

use crate::common::*;

const ID: &str = "urn:ngsi-ld:WaterObserved:thach-han";

fn gauge() -> Value {
    json!({
        "id": ID,
        "type": "WaterObserved",
        "height": {
            "type": "Property", "value": 3.2, "unitCode": "MTR",
            "observedAt": "2024-05-01T10:00:00Z",
            "accuracy": {"type": "Property", "value": 0.05, "unitCode": "MTR"}
        },
        "status": "ok",
        "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"},
        "name": {"type": "LanguageProperty", "languageMap": {"vi": "Sông Thạch Hãn", "en": "Thach Han river"}},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1905, 16.753]}}
    })
}

/// The path of an attribute of [`gauge`].
fn gauge_attr(name: &str) -> String {
    format!("{}/attrs/{name}", path(ID))
}

/// [`gauge`] in the normalized form.
fn gauge_normalized() -> Value {
    let mut gauge = gauge();
    gauge["status"] = json!({"type": "Property", "value": "ok"});
    gauge
}

/// A hub holding [`gauge`].
async fn with_gauge() -> App {
    let app = App::start().await;
    app.create(gauge()).await;
    app
}

/// A sensor `id` whose temperature is in °C by default and in °F in the dataset
/// `urn:ngsi-ld:Dataset:f`.
async fn create_sensor_in_two_units(app: &App, id: &str) {
    app.create(json!({
        "id": id, "type": "Sensor",
        "temperature": [
            {"type": "Property", "value": 20.5, "unitCode": "CEL"},
            {"type": "Property", "value": 68.5, "unitCode": "FAH", "datasetId": "urn:ngsi-ld:Dataset:f"}
        ]
    }))
    .await;
}

fn path(id: &str) -> String {
    format!("/entities/{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_201_with_a_location_that_retrieves_the_entity() {
    let app = App::start().await;
    let r = send(app.post("/entities", &gauge())).await;
    let location = created_location(&r, "/entities");
    let followed = send(app.client.get(format!("{}{location}", app.base))).await;
    assert_eq!(followed.status, 200, "{}", followed.text);
    assert_eq!(followed.body["id"], ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_twice_is_409_already_exists_and_keeps_the_first() {
    let app = with_gauge().await;
    let mut other = gauge();
    other["status"] = json!("changed");
    let r = send(app.post("/entities", &other)).await;
    assert_problem(&r, 409, "AlreadyExists");
    assert_eq!(app.entity(ID).await["status"]["value"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_normalized_is_the_full_form() {
    let app = with_gauge().await;
    let r = send(app.get(&path(ID))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), JSON);
    assert_eq!(r.body, gauge_normalized());
    // The response names its @context in a Link header.
    let link = r.header("link").expect("a Link header");
    assert!(
        link.contains(CORE) && link.contains(CONTEXT_REL),
        "Link {link}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_key_values_and_concise() {
    let app = with_gauge().await;
    let kv = app.entity_with(ID, &[("options", "keyValues")]).await;
    assert_eq!(kv["id"], ID);
    assert_eq!(kv["type"], "WaterObserved");
    assert_eq!(kv["height"], json!(3.2));
    assert_eq!(kv["status"], json!("ok"));
    assert_eq!(kv["refRiver"], json!("urn:ngsi-ld:River:thach-han"));
    assert_eq!(
        kv["location"],
        json!({"type": "Point", "coordinates": [107.1905, 16.753]})
    );
    // format=simplified is the v1.8 spelling of the same.
    let simplified = app.entity_with(ID, &[("format", "simplified")]).await;
    assert_eq!(simplified["height"], json!(3.2));

    let concise = app.entity_with(ID, &[("options", "concise")]).await;
    assert_eq!(concise["status"], json!("ok"));
    assert_eq!(
        concise["height"],
        json!({"value": 3.2, "unitCode": "MTR", "observedAt": "2024-05-01T10:00:00Z",
               "accuracy": {"value": 0.05, "unitCode": "MTR"}})
    );
    assert_eq!(
        concise["refRiver"],
        json!({"object": "urn:ngsi-ld:River:thach-han"})
    );
    assert_eq!(
        concise["name"],
        json!({"languageMap": {"vi": "Sông Thạch Hãn", "en": "Thach Han river"}})
    );
    // The concise form, sent back, makes the same entity.
    let mut copy = concise.clone();
    copy["id"] = json!("urn:ngsi-ld:WaterObserved:copy");
    app.create(copy).await;
    let mut again = app.entity("urn:ngsi-ld:WaterObserved:copy").await;
    again["id"] = json!(ID);
    assert_eq!(again, gauge_normalized());
    // Two formats at once are refused.
    let r = app
        .get_with(&path(ID), &[("options", "keyValues,concise")])
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_attrs_give_created_and_modified_at() {
    let app = App::start().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.create(gauge()).await;
    let plain = app.entity(ID).await;
    assert!(plain.get("createdAt").is_none() && plain.get("modifiedAt").is_none());
    let e = app.entity_with(ID, &[("options", "sysAttrs")]).await;
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}")))
            .unwrap_or_else(|err| panic!("{v}: {err}"))
            .with_timezone(&chrono::Utc)
    };
    let created = time(&e["createdAt"]);
    assert!(created >= before && created <= chrono::Utc::now());
    assert_eq!(e["createdAt"], e["modifiedAt"]);
    assert!(e["height"]["createdAt"].is_string());
    assert!(e["height"]["modifiedAt"].is_string());
    assert!(e["height"]["accuracy"]["createdAt"].is_string());

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = send(app.patch(&format!("{}/attrs", path(ID)), &json!({"status": "alarm"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let after = app.entity_with(ID, &[("options", "sysAttrs")]).await;
    assert_eq!(after["createdAt"], e["createdAt"], "createdAt stays");
    assert!(time(&after["modifiedAt"]) > time(&e["modifiedAt"]));
    assert_eq!(after["status"]["createdAt"], e["status"]["createdAt"]);
    assert!(time(&after["status"]["modifiedAt"]) > time(&e["status"]["modifiedAt"]));
    assert_eq!(
        after["height"]["modifiedAt"], e["height"]["modifiedAt"],
        "an attribute not touched keeps its modifiedAt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attrs_pick_and_omit_project_the_entity() {
    let app = with_gauge().await;
    let e = app.entity_with(ID, &[("attrs", "height,status")]).await;
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        set(&keys),
        set(&["id", "type", "height", "status"]),
        "attrs= keeps id, type and the attributes named: {e}"
    );
    assert_eq!(e["height"], gauge_normalized()["height"]);

    let e = app.entity_with(ID, &[("pick", "id,status")]).await;
    assert_eq!(
        e,
        json!({"id": ID, "status": {"type": "Property", "value": "ok"}})
    );

    let e = app
        .entity_with(ID, &[("omit", "type,name,location,height")])
        .await;
    assert_eq!(
        e,
        json!({"id": ID, "status": {"type": "Property", "value": "ok"},
               "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"}})
    );
    let e = app
        .entity_with(ID, &[("pick", "status,refRiver"), ("options", "keyValues")])
        .await;
    assert_eq!(
        e,
        json!({"status": "ok", "refRiver": "urn:ngsi-ld:River:thach-han"})
    );
    let r = app
        .get_with(&path(ID), &[("pick", "status"), ("omit", "name")])
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lang_turns_a_language_property_into_a_property() {
    let app = with_gauge().await;
    let e = app.entity_with(ID, &[("lang", "en")]).await;
    assert_eq!(
        e["name"],
        json!({"type": "Property", "value": "Thach Han river", "lang": "en"})
    );
    let e = app.entity_with(ID, &[("lang", "vi")]).await;
    assert_eq!(
        e["name"],
        json!({"type": "Property", "value": "Sông Thạch Hãn", "lang": "vi"})
    );
    // Preference order: the first language the attribute has.
    let e = app.entity_with(ID, &[("lang", "fr,vi;q=0.8")]).await;
    assert_eq!(e["name"]["value"], "Sông Thạch Hãn");
    let kv = app
        .entity_with(ID, &[("lang", "en"), ("options", "keyValues")])
        .await;
    assert_eq!(kv["name"], json!("Thach Han river"));
    // Weights order the preferences, as in Accept-Language.
    let e = app.entity_with(ID, &[("lang", "vi;q=0.5,en;q=0.9")]).await;
    assert_eq!(e["name"]["lang"], "en");
    // lang=* is any language the attribute has: one of its own, as a Property.
    let e = app.entity_with(ID, &[("lang", "*")]).await;
    let tag = e["name"]["lang"].as_str().unwrap();
    assert_eq!(
        e["name"]["value"],
        gauge_normalized()["name"]["languageMap"][tag],
        "{e}"
    );
    // Other attributes are untouched.
    let e = app.entity_with(ID, &[("lang", "en")]).await;
    assert_eq!(e["status"], json!({"type": "Property", "value": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_entity_removes_attributes_not_in_the_body() {
    let app = with_gauge().await;
    let created = app.entity_with(ID, &[("options", "sysAttrs")]).await["createdAt"].clone();
    let r = send(app.put(
        &path(ID),
        &json!({"id": ID, "type": "WaterObserved", "height": {"type": "Property", "value": 4.0, "unitCode": "MTR"}, "status": "alarm"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(
        app.entity(ID).await,
        json!({"id": ID, "type": "WaterObserved",
               "height": {"type": "Property", "value": 4.0, "unitCode": "MTR"},
               "status": {"type": "Property", "value": "alarm"}})
    );
    let e = app.entity_with(ID, &[("options", "sysAttrs")]).await;
    assert_eq!(e["createdAt"], created, "replace keeps createdAt");
    // Without id in the body, the path names the entity.
    let r = send(app.put(&path(ID), &json!({"type": "WaterObserved", "status": "ok"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await,
        json!({"id": ID, "type": "WaterObserved", "status": {"type": "Property", "value": "ok"}})
    );
    // A different id in the body, or an unknown entity, is refused.
    let r = send(app.put(
        &path(ID),
        &json!({"id": "urn:ngsi-ld:X:other", "type": "WaterObserved"}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.put(
        "/entities/urn:ngsi-ld:X:none",
        &json!({"type": "T", "a": 1}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch_merges_values_and_sub_attributes_and_deletes_with_null() {
    let app = with_gauge().await;
    let r = send(
        app.client
            .patch(app.url(&path(ID)))
            .header("content-type", "application/merge-patch+json")
            .body(
                json!({
                    "height": {"value": 3.5, "accuracy": {"value": 0.02}},
                    "status": "alarm",
                    "refRiver": "urn:ngsi-ld:null",
                    "newAttr": {"type": "Property", "value": "added"}
                })
                .to_string(),
            ),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(
        e["height"],
        json!({"type": "Property", "value": 3.5, "unitCode": "MTR",
               "observedAt": "2024-05-01T10:00:00Z",
               "accuracy": {"type": "Property", "value": 0.02, "unitCode": "MTR"}}),
        "members not in the patch stay, sub-attributes merge"
    );
    assert_eq!(e["status"], json!({"type": "Property", "value": "alarm"}));
    assert!(e.get("refRiver").is_none(), "urn:ngsi-ld:null deletes: {e}");
    assert_eq!(e["newAttr"], json!({"type": "Property", "value": "added"}));
    assert_eq!(e["name"], gauge_normalized()["name"], "others untouched");

    // A sub-attribute deleted with urn:ngsi-ld:null, and {"value": null-urn} deleting a
    // whole attribute, through application/json.
    let r = send(app.patch(
        &path(ID),
        &json!({"height": {"accuracy": "urn:ngsi-ld:null"}, "newAttr": {"value": "urn:ngsi-ld:null"}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(
        e["height"],
        json!({"type": "Property", "value": 3.5, "unitCode": "MTR", "observedAt": "2024-05-01T10:00:00Z"})
    );
    assert!(e.get("newAttr").is_none(), "{e}");

    let r = send(app.patch("/entities/urn:ngsi-ld:X:none", &json!({"a": 1}))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.patch(&path(ID), &json!({"id": "urn:ngsi-ld:X:other", "a": 1}))).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch_of_one_dataset_instance_keeps_that_instance_members() {
    let app = App::start().await;
    let id = "urn:ngsi-ld:Sensor:ds";
    create_sensor_in_two_units(&app, id).await;
    let r = send(app.patch(
        &path(id),
        &json!({"temperature": {"value": 70.5, "datasetId": "urn:ngsi-ld:Dataset:f"}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(id).await;
    let instances = e["temperature"].as_array().expect("two instances");
    let default = instances
        .iter()
        .find(|i| i.get("datasetId").is_none())
        .unwrap();
    let f = instances
        .iter()
        .find(|i| i["datasetId"] == "urn:ngsi-ld:Dataset:f")
        .unwrap();
    assert_eq!(
        default,
        &json!({"type": "Property", "value": 20.5, "unitCode": "CEL"})
    );
    assert_eq!(
        f,
        &json!({"type": "Property", "value": 70.5, "unitCode": "FAH", "datasetId": "urn:ngsi-ld:Dataset:f"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_attrs_and_no_overwrite() {
    let app = with_gauge().await;
    let attrs = format!("{}/attrs", path(ID));
    let r = send(app.post(
        &attrs,
        &json!({"status": "alarm", "flow": {"type": "Property", "value": 120, "unitCode": "MQS"}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let e = app.entity(ID).await;
    assert_eq!(
        e["status"]["value"], "alarm",
        "append overwrites by default"
    );
    assert_eq!(
        e["flow"],
        json!({"type": "Property", "value": 120, "unitCode": "MQS"})
    );

    let r = send(
        app.post(&attrs, &json!({"status": "ok", "depth": 7.5}))
            .query(&[("options", "noOverwrite")]),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["updated"], json!(["depth"]));
    let not_updated = r.body["notUpdated"].as_array().expect("notUpdated");
    assert_eq!(not_updated.len(), 1, "{}", r.text);
    assert_eq!(not_updated[0]["attributeName"], "status");
    assert!(not_updated[0]["reason"].is_string());
    let e = app.entity(ID).await;
    assert_eq!(e["status"]["value"], "alarm", "noOverwrite keeps it");
    assert_eq!(e["depth"]["value"], 7.5);

    // An entity type in the body must be the entity's.
    let r = send(app.post(&attrs, &json!({"type": "WaterObserved", "x": 1}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.post(&attrs, &json!({"type": "Other", "y": 1}))).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post("/entities/urn:ngsi-ld:X:none/attrs", &json!({"a": 1}))).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_attrs_updates_existing_ones_only() {
    let app = with_gauge().await;
    let attrs = format!("{}/attrs", path(ID));
    let r = send(app.patch(
        &attrs,
        &json!({"status": "alarm", "height": {"type": "Property", "value": 5.5}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(ID).await;
    assert_eq!(e["status"], json!({"type": "Property", "value": "alarm"}));
    assert_eq!(
        e["height"],
        json!({"type": "Property", "value": 5.5}),
        "update replaces the attribute"
    );

    let r = send(app.patch(&attrs, &json!({"status": "ok", "unknown": 1}))).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["updated"], json!(["status"]));
    let not_updated = r.body["notUpdated"].as_array().expect("notUpdated");
    assert_eq!(not_updated.len(), 1);
    assert_eq!(not_updated[0]["attributeName"], "unknown");
    assert!(not_updated[0]["reason"].is_string());
    let e = app.entity(ID).await;
    assert!(e.get("unknown").is_none(), "update does not add: {e}");
    assert_eq!(e["status"]["value"], "ok");

    let r = send(app.patch("/entities/urn:ngsi-ld:X:none/attrs", &json!({"a": 1}))).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_attribute_update_keeps_other_members() {
    let app = with_gauge().await;
    let r = send(app.patch(&gauge_attr("height"), &json!({"value": 4.1}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await["height"],
        json!({"type": "Property", "value": 4.1, "unitCode": "MTR",
               "observedAt": "2024-05-01T10:00:00Z",
               "accuracy": {"type": "Property", "value": 0.05, "unitCode": "MTR"}})
    );
    let r = send(app.patch(
        &gauge_attr("refRiver"),
        &json!({"object": "urn:ngsi-ld:River:hieu"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await["refRiver"],
        json!({"type": "Relationship", "object": "urn:ngsi-ld:River:hieu"})
    );
    let r = send(app.patch(&gauge_attr("nothing"), &json!({"value": 1}))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.patch(
        "/entities/urn:ngsi-ld:X:none/attrs/height",
        &json!({"value": 1}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_attribute_replaces_it_whole() {
    let app = with_gauge().await;
    let r = send(app.put(
        &gauge_attr("height"),
        &json!({"type": "Property", "value": 9.9}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(ID).await["height"],
        json!({"type": "Property", "value": 9.9}),
        "unitCode, observedAt and sub-attributes are gone"
    );
    let r = send(app.put(
        &gauge_attr("unknown"),
        &json!({"type": "Property", "value": 1}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    assert!(app.entity(ID).await.get("unknown").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_attribute_default_dataset_and_all() {
    let app = App::start().await;
    let id = "urn:ngsi-ld:Sensor:multi";
    app.create(json!({
        "id": id, "type": "Sensor",
        "status": "ok",
        "temperature": [
            {"type": "Property", "value": 20.5},
            {"type": "Property", "value": 21.5, "datasetId": "urn:ngsi-ld:Dataset:a"},
            {"type": "Property", "value": 22.5, "datasetId": "urn:ngsi-ld:Dataset:b"}
        ]
    }))
    .await;
    let attr = format!("{}/attrs/temperature", path(id));
    // The default instance.
    app.delete_ok(&attr).await;
    let e = app.entity(id).await;
    let left: Vec<&Value> = e["temperature"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 2, "{e}");
    assert!(left.iter().all(|i| i.get("datasetId").is_some()));
    // The default instance is gone: deleting it again is 404.
    let r = send(app.delete(&attr)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    // One dataset.
    let r = send(
        app.delete(&attr)
            .query(&[("datasetId", "urn:ngsi-ld:Dataset:a")]),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(id).await["temperature"],
        json!({"type": "Property", "value": 22.5, "datasetId": "urn:ngsi-ld:Dataset:b"})
    );
    let r = send(
        app.delete(&attr)
            .query(&[("datasetId", "urn:ngsi-ld:Dataset:zzz")]),
    )
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // deleteAll.
    let r = send(app.post(
        &format!("{}/attrs", path(id)),
        &json!({"temperature": [{"type": "Property", "value": 1.5}, {"type": "Property", "value": 2.5, "datasetId": "urn:ngsi-ld:Dataset:c"}]}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(id).await["temperature"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = send(app.delete(&attr).query(&[("deleteAll", "true")])).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(id).await;
    assert_eq!(
        e,
        json!({"id": id, "type": "Sensor", "status": {"type": "Property", "value": "ok"}})
    );
    let r = send(app.delete(&attr)).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_entity_then_it_is_gone() {
    let app = with_gauge().await;
    let r = send(app.delete(&path(ID))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = send(app.get(&path(ID))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.delete(&path(ID))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    assert!(app.query_ids(&[("type", "WaterObserved")]).await.is_empty());
    // The id is free again.
    app.create(gauge()).await;
    assert_eq!(app.entity(ID).await, gauge_normalized());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geojson_retrieval_gives_a_feature() {
    let app = with_gauge().await;
    let r = send(app.get(&path(ID)).header("accept", GEO_JSON)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), GEO_JSON);
    assert_eq!(r.body["type"], "Feature");
    assert_eq!(r.body["id"], ID);
    assert_eq!(
        r.body["geometry"],
        json!({"type": "Point", "coordinates": [107.1905, 16.753]})
    );
    assert_eq!(r.body["properties"]["type"], "WaterObserved");
    assert_eq!(
        r.body["properties"]["status"],
        json!({"type": "Property", "value": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_non_ascii_and_reserved_characters_work_through_location() {
    let app = App::start().await;
    for id in [
        "urn:ngsi-ld:River:sông-hiếu",
        "https://example.org/things/1?x=y#frag",
        "urn:ngsi-ld:Thing:a%20b",
    ] {
        let r = send(app.post("/entities", &json!({"id": id, "type": "Thing", "n": 1}))).await;
        assert_eq!(r.status, 201, "{id}: {}", r.text);
        let location = r.header("location").expect("Location").to_string();
        let followed = send(app.client.get(format!("{}{location}", app.base))).await;
        assert_eq!(
            followed.status, 200,
            "{id} via {location}: {}",
            followed.text
        );
        assert_eq!(followed.body["id"], id, "via {location}");
        let deleted = send(app.client.delete(format!("{}{location}", app.base))).await;
        assert_eq!(deleted.status, 204, "{id}: {}", deleted.text);
    }
    let long = format!("urn:ngsi-ld:Thing:{}", "a".repeat(2_000));
    let r = send(app.post("/entities", &json!({"id": long, "type": "Thing"}))).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_entity_are_all_kept() {
    let app = App::start().await;
    let id = "urn:ngsi-ld:Counter:1";
    app.create(json!({"id": id, "type": "Counter", "base": 0}))
        .await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let rb = app.post(&format!("{}/attrs", path(id)), &json!({format!("a{i}"): i}));
        tasks.push(tokio::spawn(async move { send(rb).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 204, "{}", r.text);
    }
    let e = app.entity_with(id, &[("options", "keyValues")]).await;
    for i in 0..24 {
        assert_eq!(e[format!("a{i}").as_str()], json!(i), "a{i} lost: {e}");
    }
    // Concurrent creates of one id: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let rb = app.post(
            "/entities",
            &json!({"id": "urn:ngsi-ld:Counter:race", "type": "Counter", "who": i}),
        );
        tasks.push(tokio::spawn(async move { send(rb).await }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            _ => assert_problem(&r, 409, "AlreadyExists"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_methods_are_405() {
    let app = App::start().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/entities"),
        (reqwest::Method::POST, "/entities/urn:ngsi-ld:T:1"),
        (reqwest::Method::GET, "/entityOperations/create"),
        (reqwest::Method::POST, "/types"),
    ] {
        let r = send(app.client.request(method.clone(), app.url(path))).await;
        assert_problem(&r, 405, "MethodNotAllowed");
        assert!(
            r.header("allow").is_some(),
            "{method} {path}: a 405 names the allowed methods (RFC 9110): {:?}",
            r.headers
        );
    }
    // PUT and PATCH on the collection are requests that forgot the entity id.
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let r = send(
            app.client
                .request(method, app.url("/entities"))
                .json(&json!({"type": "T"})),
        )
        .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_operations_address_one_dataset_instance() {
    let app = App::start().await;
    let id = "urn:ngsi-ld:Sensor:ds-ops";
    create_sensor_in_two_units(&app, id).await;
    let attr = format!("{}/attrs/temperature", path(id));
    let instance = |e: &Value, ds: Option<&str>| -> Value {
        e["temperature"]
            .as_array()
            .unwrap_or_else(|| panic!("two instances: {e}"))
            .iter()
            .find(|i| i.get("datasetId").and_then(Value::as_str) == ds)
            .cloned()
            .unwrap_or_else(|| panic!("no instance {ds:?} in {e}"))
    };
    // Partial update of the datasetId instance.
    let r = send(app.patch(
        &attr,
        &json!({"value": 70.5, "datasetId": "urn:ngsi-ld:Dataset:f"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(id).await;
    assert_eq!(
        instance(&e, Some("urn:ngsi-ld:Dataset:f")),
        json!({"type": "Property", "value": 70.5, "unitCode": "FAH", "datasetId": "urn:ngsi-ld:Dataset:f"})
    );
    assert_eq!(
        instance(&e, None),
        json!({"type": "Property", "value": 20.5, "unitCode": "CEL"})
    );
    // Replacing it.
    let r = send(app.put(
        &attr,
        &json!({"type": "Property", "value": 71.5, "datasetId": "urn:ngsi-ld:Dataset:f"}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = app.entity(id).await;
    assert_eq!(
        instance(&e, Some("urn:ngsi-ld:Dataset:f")),
        json!({"type": "Property", "value": 71.5, "datasetId": "urn:ngsi-ld:Dataset:f"})
    );
    assert_eq!(instance(&e, None)["unitCode"], "CEL");
    // An unknown datasetId is 404.
    let r = send(app.patch(
        &attr,
        &json!({"value": 1, "datasetId": "urn:ngsi-ld:Dataset:none"}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.put(
        &attr,
        &json!({"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:none"}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // deleteAll must be a boolean.
    let r = send(app.delete(&attr).query(&[("deleteAll", "maybe")])).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.delete(&attr).query(&[
        ("deleteAll", "false"),
        ("datasetId", "urn:ngsi-ld:Dataset:f"),
    ]))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(id).await["temperature"],
        json!({"type": "Property", "value": 20.5, "unitCode": "CEL"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch_of_scope_and_types() {
    let app = App::start().await;
    let id = "urn:ngsi-ld:Thing:scoped";
    app.create(json!({"id": id, "type": "Thing", "scope": "/QuangTri", "n": 1}))
        .await;
    let r = send(app.patch(&path(id), &json!({"scope": ["/QuangTri/DongHa", "/Hue"]}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(id).await["scope"],
        json!(["/QuangTri/DongHa", "/Hue"])
    );
    assert_eq!(
        app.query_ids(&[("type", "Thing"), ("scopeQ", "/Hue")])
            .await,
        set(&[id])
    );
    let r = send(app.patch(&path(id), &json!({"scope": "urn:ngsi-ld:null"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(app.entity(id).await.get("scope").is_none());
    let r = send(app.patch(&path(id), &json!({"type": "Device"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.entity(id).await["type"], json!(["Thing", "Device"]));
    assert_eq!(app.query_ids(&[("type", "Device")]).await, set(&[id]));
    let r = send(app.patch(&path(id), &json!({"scope": "no-slash"}))).await;
    assert_problem(&r, 400, "BadRequestData");
}

/// The smallest reproduction of the store bug that the tests marked "attr_values"
/// show: an update of an entity that has a q-indexed value, and a create that
/// reuses the row of a deleted entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_an_entity_and_creating_after_a_delete_succeed() {
    let app = App::start().await;
    app.create(json!({"id": "urn:ngsi-ld:T:1", "type": "T", "a": 1}))
        .await;
    let r = send(app.patch("/entities/urn:ngsi-ld:T:1/attrs", &json!({"a": 2}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.entity("urn:ngsi-ld:T:1").await["a"]["value"], 2);
    assert_eq!(
        app.query_ids(&[("type", "T"), ("q", "a==2")]).await,
        set(&["urn:ngsi-ld:T:1"])
    );
    assert!(
        app.query_ids(&[("type", "T"), ("q", "a==1")])
            .await
            .is_empty()
    );
    app.delete_ok("/entities/urn:ngsi-ld:T:1").await;
    let r = send(app.post(
        "/entities",
        &json!({"id": "urn:ngsi-ld:T:2", "type": "T", "a": 1}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Collections are also addressed with a trailing slash, as NGSI-LD clients (the ETSI
/// conformance suite among them) send them.
#[tokio::test]
async fn a_trailing_slash_names_the_same_collection() {
    let app = App::start().await;
    let r = send(app.post(
        "/entities/",
        &json!({"id": "urn:ngsi-ld:T:slash", "type": "T", "n": 1}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.query_ids(&[("type", "T")]).await.len(), 1);
    let r = app.get_ok("/entities/", &[("type", "T")]).await;
    assert_eq!(ids(&r.body).len(), 1);
    let r = send(app.post(
        "/subscriptions/",
        &json!({"type": "Subscription", "entities": [{"type": "T"}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_multi_attribute_is_simplified_by_dataset() {
    let app = App::start().await;
    app.create(json!({
        "id": "urn:ngsi-ld:Gauge:multi", "type": "Gauge",
        "level": [
            {"type": "Property", "value": 1.5},
            {"type": "Property", "value": 1.7, "datasetId": "urn:ngsi-ld:Dataset:radar"}
        ],
        "river": {"type": "Property", "value": "Hiếu", "datasetId": "urn:ngsi-ld:Dataset:map"}
    }))
    .await;
    for options in ["keyValues", "simplified"] {
        let r = app
            .get_ok("/entities/urn:ngsi-ld:Gauge:multi", &[("options", options)])
            .await;
        // Clause 4.5.4: the instances keyed by datasetId, the default one as @none;
        // an attribute of one instance stays its value.
        assert_eq!(
            r.body["level"],
            json!({"dataset": {"@none": 1.5, "urn:ngsi-ld:Dataset:radar": 1.7}}),
            "{}",
            r.text
        );
        assert_eq!(r.body["river"], "Hiếu", "{}", r.text);
    }
    let r = app.get_ok("/entities/urn:ngsi-ld:Gauge:multi", &[]).await;
    assert_eq!(
        r.body["level"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );
}
