//! Every attribute kind, and every GeoJSON geometry, round-trips through the hub.

use serde_json::{Value, json};

use crate::common::*;

const ID: &str = "urn:ngsi-ld:Everything:1";

/// An entity with every kind of attribute, in normalized form (what the hub must
/// answer back, member for member).
fn everything() -> Value {
    json!({
        "id": ID,
        "type": "Everything",
        "scope": "/QuangTri/DongHa",
        "level": {
            "type": "Property", "value": 3.25, "unitCode": "MTR",
            "observedAt": "2024-05-01T10:00:00.123Z",
            "accuracy": {
                "type": "Property", "value": 0.05,
                "method": {"type": "Property", "value": "radar"}
            },
            "measuredBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:radar-1"}
        },
        "compound": {"type": "Property", "value": {"city": "Đông Hà", "street": "Lê Duẩn", "numbers": [1, 2.5, true, null]}},
        "flag": {"type": "Property", "value": false},
        "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han", "objectType": "River"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1905, 16.753]}},
        "name": {"type": "LanguageProperty", "languageMap": {"vi": "Thạch Hãn", "en": "Thach Han", "@none": "Thach Han"}},
        "readings": {"type": "ListProperty", "valueList": [1.5, "two", {"three": 3}]},
        "config": {"type": "JsonProperty", "json": {"nested": {"list": [1, {"a": null}]}, "type": "not an NGSI-LD type"}},
        "category": {"type": "VocabProperty", "vocab": "river"},
        "categories": {"type": "VocabProperty", "vocab": ["river", "gauge"]},
        "sensors": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:Device:1"}, {"object": "urn:ngsi-ld:Device:2"}]},
        "temperature": [
            {"type": "Property", "value": 30.5, "unitCode": "CEL", "observedAt": "2024-05-01T10:00:00Z"},
            {"type": "Property", "value": 86.5, "unitCode": "FAH", "datasetId": "urn:ngsi-ld:Dataset:fahrenheit"},
            {"type": "Property", "value": 303.5, "unitCode": "KEL", "datasetId": "urn:ngsi-ld:Dataset:kelvin"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_kind_round_trips() {
    let app = App::start().await;
    app.create(everything()).await;
    let got = app.entity(ID).await;
    let want = everything();
    for (name, value) in want.as_object().unwrap() {
        assert_eq!(&got[name], value, "{name} round-trips");
    }
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concise_output_sent_back_makes_the_same_entity() {
    let app = App::start().await;
    app.create(everything()).await;
    let mut concise = app.entity_with(ID, &[("options", "concise")]).await;
    assert_eq!(
        concise["flag"],
        json!(false),
        "a bare Property is its value"
    );
    concise["id"] = json!("urn:ngsi-ld:Everything:2");
    let r = send(app.post("/entities", &concise)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut copy = app.entity("urn:ngsi-ld:Everything:2").await;
    copy["id"] = json!(ID);
    assert_eq!(copy, everything());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_at_is_normalised_to_utc() {
    let app = App::start().await;
    app.create(json!({"id": "urn:ngsi-ld:T:tz", "type": "T",
        "a": {"type": "Property", "value": 1, "observedAt": "2024-05-01T17:00:00+07:00"}}))
        .await;
    assert_eq!(
        app.entity("urn:ngsi-ld:T:tz").await["a"]["observedAt"],
        "2024-05-01T10:00:00Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_geometry_round_trips() {
    let app = App::start().await;
    let geometries = [
        json!({"type": "Point", "coordinates": [107.1, 16.8]}),
        json!({"type": "MultiPoint", "coordinates": [[107.1, 16.8], [107.2, 16.7]]}),
        json!({"type": "LineString", "coordinates": [[106.75, 16.65], [107.05, 16.81], [107.1, 16.85]]}),
        json!({"type": "MultiLineString", "coordinates": [[[106.75, 16.65], [107.05, 16.81]], [[107.2, 16.7], [107.3, 16.6]]]}),
        json!({"type": "Polygon", "coordinates": [[[107.05, 16.78], [107.15, 16.78], [107.15, 16.86], [107.05, 16.86], [107.05, 16.78]]]}),
        json!({"type": "Polygon", "coordinates": [
            [[107.0, 16.7], [107.3, 16.7], [107.3, 16.9], [107.0, 16.9], [107.0, 16.7]],
            [[107.1, 16.75], [107.1, 16.8], [107.15, 16.8], [107.1, 16.75]]
        ]}),
        json!({"type": "MultiPolygon", "coordinates": [
            [[[107.05, 16.78], [107.15, 16.78], [107.15, 16.86], [107.05, 16.78]]],
            [[[107.5, 16.4], [107.6, 16.4], [107.6, 16.5], [107.5, 16.4]]]
        ]}),
    ];
    for (i, g) in geometries.iter().enumerate() {
        let id = format!("urn:ngsi-ld:Shape:{i}");
        app.create(json!({"id": id, "type": "Shape",
            "location": {"type": "GeoProperty", "value": g},
            "area": {"type": "GeoProperty", "value": g}}))
            .await;
        let e = app.entity(&id).await;
        assert_eq!(
            e["location"],
            json!({"type": "GeoProperty", "value": g}),
            "{g}"
        );
        assert_eq!(e["area"], json!({"type": "GeoProperty", "value": g}), "{g}");
        // Concise input: a bare geometry under location is a GeoProperty.
        let concise_id = format!("urn:ngsi-ld:Shape:concise-{i}");
        app.create(json!({"id": concise_id, "type": "Shape", "location": g}))
            .await;
        assert_eq!(
            app.entity(&concise_id).await["location"],
            json!({"type": "GeoProperty", "value": g})
        );
    }
}
