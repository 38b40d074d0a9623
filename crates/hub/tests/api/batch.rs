//! /entityOperations/create, /upsert, /update and /delete.

use serde_json::{Value, json};

use crate::common::*;

fn room(n: u32, temperature: f64) -> Value {
    json!({"id": format!("urn:ngsi-ld:Room:{n}"), "type": "Room",
           "temperature": {"type": "Property", "value": temperature, "unitCode": "CEL"}})
}

fn room_id(n: u32) -> String {
    format!("urn:ngsi-ld:Room:{n}")
}

/// A hub holding Room 1 at 20.5 degrees, with a humidity of 60.
async fn with_humid_room() -> App {
    let app = App::start().await;
    app.create(json!({"id": room_id(1), "type": "Room",
        "temperature": {"type": "Property", "value": 20.5}, "humidity": 60}))
        .await;
    app
}

/// Asserts that the `error` of a batch item is a whole ProblemDetails of `status` and
/// `kind`.
#[track_caller]
fn assert_item_problem(error: &Value, status: u16, kind: &str) {
    let uri = format!("https://uri.etsi.org/ngsi-ld/errors/{kind}");
    assert_eq!(error["type"], uri.as_str(), "{error}");
    assert_eq!(error["status"], status, "{error}");
    assert!(
        error["title"].is_string() && error["detail"].is_string(),
        "{error}"
    );
}

/// POST `items` to `/entityOperations/{op}`, with `options` unless empty.
async fn batch(app: &App, op: &str, options: &str, items: &Value) -> Resp {
    let mut rb = app.post(&format!("/entityOperations/{op}"), items);
    if !options.is_empty() {
        rb = rb.query(&[("options", options)]);
    }
    send(rb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_answers_201_with_the_ids() {
    let app = App::start().await;
    let items = json!([room(1, 20.5), room(2, 21.5), room(3, 22.5)]);
    let r = batch(&app, "create", "", &items).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body, json!([room_id(1), room_id(2), room_id(3)]));
    for n in 1..=3 {
        assert_eq!(
            app.entity(&room_id(n)).await["temperature"]["unitCode"],
            "CEL"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_partial_failure_is_207_with_each_error() {
    let app = App::start().await;
    app.create(room(1, 20.5)).await;
    let invalid = json!({"id": "urn:ngsi-ld:Room:bad", "type": "Room", "temperature": null});
    let items = json!([room(1, 30.5), room(2, 21.5), invalid]);
    let r = batch(&app, "create", "", &items).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([room_id(2)]));
    let errors = r.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{}", r.text);
    let of = |id: &str| -> &Value {
        errors
            .iter()
            .find(|e| e["entityId"] == id)
            .unwrap_or_else(|| panic!("no error for {id} in {}", r.text))
    };
    assert_item_problem(&of(&room_id(1))["error"], 409, "AlreadyExists");
    assert_item_problem(&of("urn:ngsi-ld:Room:bad")["error"], 400, "BadRequestData");
    // The duplicate was not overwritten; the good one was created; the bad one not.
    assert_eq!(app.entity(&room_id(1)).await["temperature"]["value"], 20.5);
    assert_eq!(app.entity(&room_id(2)).await["temperature"]["value"], 21.5);
    let r = send(app.get("/entities/urn:ngsi-ld:Room:bad")).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_refuses_a_body_that_is_not_a_list() {
    let app = App::start().await;
    let r = batch(&app, "create", "", &room(1, 1.5)).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = batch(&app, "create", "", &json!([])).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_201_when_some_created_204_when_all_existed() {
    let app = with_humid_room().await;
    // One new, one existing: 201 with the id created only.
    let r = batch(&app, "upsert", "", &json!([room(1, 25.5), room(2, 21.5)])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body, json!([room_id(2)]));
    // Default is replace: humidity is gone.
    assert_eq!(
        app.entity(&room_id(1)).await,
        json!({"id": room_id(1), "type": "Room",
               "temperature": {"type": "Property", "value": 25.5, "unitCode": "CEL"}})
    );
    // All existing: 204.
    let r = batch(&app, "upsert", "", &json!([room(1, 26.5), room(2, 27.5)])).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(app.entity(&room_id(2)).await["temperature"]["value"], 27.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_with_options_update_merges() {
    let app = with_humid_room().await;
    let items = json!([{"id": room_id(1), "type": "Room", "temperature": 22.5, "co2": 400}]);
    let r = batch(&app, "upsert", "update", &items).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(&room_id(1)).await,
        json!({"id": room_id(1), "type": "Room",
               "temperature": {"type": "Property", "value": 22.5},
               "humidity": {"type": "Property", "value": 60},
               "co2": {"type": "Property", "value": 400}})
    );
    // options=replace spelled out is the default.
    let items = json!([{"id": room_id(1), "type": "Room", "co2": 500}]);
    let r = batch(&app, "upsert", "replace", &items).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(&room_id(1)).await,
        json!({"id": room_id(1), "type": "Room", "co2": {"type": "Property", "value": 500}})
    );
    let r = batch(&app, "upsert", "update,replace", &json!([room(1, 1.5)])).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_update_and_no_overwrite() {
    let app = App::start().await;
    app.create_all(vec![room(1, 20.5), room(2, 21.5)]).await;
    let items = json!([
        {"id": room_id(1), "type": "Room", "temperature": 23.5},
        {"id": room_id(2), "type": "Room", "humidity": 55}
    ]);
    let r = batch(&app, "update", "", &items).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.entity(&room_id(1)).await["temperature"],
        json!({"type": "Property", "value": 23.5})
    );
    assert_eq!(app.entity(&room_id(2)).await["humidity"]["value"], 55);
    assert_eq!(app.entity(&room_id(2)).await["temperature"]["value"], 21.5);

    let items = json!([{"id": room_id(1), "type": "Room", "temperature": 99.5, "co2": 410}]);
    let r = batch(&app, "update", "noOverwrite", &items).await;
    // The kept attribute is reported: the entity is among the errors.
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([]));
    assert_eq!(r.body["errors"][0]["entityId"], room_id(1));
    let detail = r.body["errors"][0]["error"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("temperature"), "{detail}");
    let e = app.entity(&room_id(1)).await;
    assert_eq!(e["temperature"]["value"], 23.5, "noOverwrite keeps it");
    assert_eq!(e["co2"]["value"], 410, "new attributes are added");

    // An entity that does not exist is reported.
    let items = json!([{"id": room_id(1), "type": "Room", "temperature": 24.5},
                   {"id": room_id(9), "type": "Room", "temperature": 1.5}]);
    let r = batch(&app, "update", "", &items).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([room_id(1)]));
    assert_eq!(r.body["errors"][0]["entityId"], room_id(9));
    assert_item_problem(&r.body["errors"][0]["error"], 404, "ResourceNotFound");
    let r = send(app.get(&format!("/entities/{}", room_id(9)))).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_204_and_207_for_unknown_ids() {
    let app = App::start().await;
    app.create_all(vec![room(1, 20.5), room(2, 21.5), room(3, 22.5)])
        .await;
    let r = batch(&app, "delete", "", &json!([room_id(1), room_id(2)])).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.query_ids(&[("type", "Room")]).await,
        set(&[&room_id(3)])
    );
    let r = batch(&app, "delete", "", &json!([room_id(3), room_id(1)])).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([room_id(3)]));
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["entityId"], room_id(1));
    assert_item_problem(&errors[0]["error"], 404, "ResourceNotFound");
    assert!(app.query_ids(&[("type", "Room")]).await.is_empty());
    // Items that are not ids.
    let r = batch(&app, "delete", "", &json!([{"id": room_id(3)}])).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = batch(&app, "delete", "", &json!(["not a uri"])).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["errors"][0]["error"]["status"], 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_twice_in_one_batch() {
    let app = App::start().await;
    let r = batch(&app, "create", "", &json!([room(1, 20.5), room(1, 30.5)])).await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([room_id(1)]));
    assert_eq!(r.body["errors"][0]["entityId"], room_id(1));
    assert_eq!(r.body["errors"][0]["error"]["status"], 409);
    assert_eq!(app.entity(&room_id(1)).await["temperature"]["value"], 20.5);
    // Upsert: the later item wins.
    let r = batch(&app, "upsert", "", &json!([room(2, 1.5), room(2, 2.5)])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.entity(&room_id(2)).await["temperature"]["value"], 2.5);
    // Upsert with one invalid item: 207, the others written.
    let r = batch(&app, "upsert", "", &json!([room(3, 3.5), {"id": room_id(4), "type": "Room", "temperature": {"type": "Property"}}]))
    .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["success"], json!([room_id(3)]));
    assert_eq!(r.body["errors"][0]["entityId"], room_id(4));
    assert_eq!(r.body["errors"][0]["error"]["status"], 400);
    assert_eq!(app.entity(&room_id(3)).await["temperature"]["value"], 3.5);
}
