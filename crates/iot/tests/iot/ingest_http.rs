//! Measures over HTTP (`POST /iot/json?k=&i=`): answered once the update is durable,
//! so the entity shows the values as soon as the answer comes.

use reqwest::Method;
use serde_json::json;

use crate::common::{App, assert_problem, send, unique};

#[tokio::test]
async fn http_measures_are_written_before_the_answer() {
    let app = App::start().await;
    let (tenant, apikey) = app
        .tenant_with_group(
            "http",
            json!({"entity_type": "WaterObserved", "autoprovision": false,
                   "attributes": [{"object_id": "l", "name": "height", "type": "Number",
                                   "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}}],
                   "static_attributes": [{"name": "location", "type": "geo:point", "value": "16.75, 107.19"}]}),
        )
        .await;
    app.provision_device(
        &tenant,
        json!({"device_id": "thach-han", "entity_name": "urn:ngsi-ld:WaterObserved:thach-han"}),
    )
    .await;
    let accepted = "dothi_iot_messages_total{transport=\"http\",outcome=\"accepted\"}";
    let before = app.metric(accepted).await;
    let r = app
        .post_measures(
            &format!("k={apikey}&i=thach-han"),
            r#"{"l": 1.25, "TimeInstant": "2026-11-27T02:00:00Z"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["accepted"], 1);
    assert_eq!(r.body["entity"], "urn:ngsi-ld:WaterObserved:thach-han");
    // Durable and visible at once: no waiting.
    let e = app
        .entity(&tenant, "urn:ngsi-ld:WaterObserved:thach-han")
        .await
        .unwrap();
    assert_eq!(e["height"]["value"], 1.25);
    assert_eq!(e["height"]["unitCode"], "MTR");
    assert_eq!(e["height"]["observedAt"], "2026-11-27T02:00:00Z");
    assert_eq!(e["location"]["type"], "GeoProperty");
    assert_eq!(
        e["location"]["value"],
        json!({"type": "Point", "coordinates": [107.19, 16.75]})
    );
    assert_eq!(app.metric(accepted).await, before + 1);

    // The `t` parameter times the measures; one attribute at a time.
    let r = app
        .post_measures(
            &format!("k={apikey}&i=thach-han&t=2026-11-27T03:00:00Z"),
            r#"{"l": 1.5}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        app.client
            .post(app.url(&format!("/iot/json/attrs/l?k={apikey}&i=thach-han")))
            .body("1.75"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = app
        .entity(&tenant, "urn:ngsi-ld:WaterObserved:thach-han")
        .await
        .unwrap();
    assert_eq!(e["height"]["value"], 1.75);

    // Some measures bad: the good ones are written and the bad ones listed.
    let r = app
        .post_measures(
            &format!("k={apikey}&i=thach-han"),
            r#"{"l": "high", "trend": "rising"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["accepted"], 1);
    assert_eq!(r.body["rejected"][0]["measure"], "l");
    // All bad: 400, nothing written.
    let r = app
        .post_measures(&format!("k={apikey}&i=thach-han"), r#"{"l": "high"}"#)
        .await;
    assert_problem(&r, 400, "BadRequestData");
    assert!(
        r.body["detail"].as_str().unwrap().contains("l: "),
        "{}",
        r.text
    );
    // Malformed, unknown, incomplete.
    let r = app
        .post_measures(&format!("k={apikey}&i=thach-han"), "{\"l\":")
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = app
        .post_measures(&format!("k={}&i=thach-han", unique("nokey")), r#"{"l": 1}"#)
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = app
        .post_measures(&format!("k={apikey}&i=stranger"), r#"{"l": 1}"#)
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = app
        .post_measures(&format!("k={apikey}"), r#"{"l": 1}"#)
        .await;
    assert_problem(&r, 400, "BadRequestData");
    for outcome in ["malformed", "unknown_apikey", "unknown_device", "invalid"] {
        let series =
            format!("dothi_iot_messages_total{{transport=\"http\",outcome=\"{outcome}\"}}");
        assert_eq!(app.metric(&series).await, 1, "{series}");
    }
    let r = send(app.client.get(app.url("/metrics"))).await;
    assert!(
        r.text.contains("# TYPE dothi_iot_messages_total counter"),
        "{}",
        r.text
    );
    assert!(r.text.contains("route=\"/iot/json\""), "{}", r.text);
    // The device list is unchanged: no autoprovisioning here.
    let r = send(app.iot(Method::GET, "/iot/devices", &tenant)).await;
    assert_eq!(r.body["count"], 1);
    app.stop().await;
}

/// The agent remembers a measure's device and group for a while: a change made through
/// the provisioning API still applies to the very next measure.
#[tokio::test]
async fn provisioning_changes_apply_to_the_next_measure() {
    let app = App::start().await;
    let (tenant, apikey) = app
        .tenant_with_group(
            "lookups",
            json!({"entity_type": "WaterObserved", "autoprovision": false,
                   "attributes": [{"object_id": "l", "name": "height", "type": "Number"}]}),
        )
        .await;
    app.provision_device(
        &tenant,
        json!({"device_id": "hieu", "entity_name": "urn:ngsi-ld:WaterObserved:hieu"}),
    )
    .await;
    let query = format!("k={apikey}&i=hieu");
    let measure = |value: f64| app.post_measures(&query, json!({ "l": value }).to_string());
    let r = measure(1.0).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = app
        .entity(&tenant, "urn:ngsi-ld:WaterObserved:hieu")
        .await
        .unwrap();
    assert_eq!(e["height"]["value"], 1.0);

    // The device's own mapping now sends `l` to another attribute.
    let r = send(
        app.iot(Method::PUT, "/iot/devices/hieu", &tenant)
            .json(&json!({"attributes": [{"object_id": "l", "name": "level", "type": "Number"}]})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = measure(2.0).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = app
        .entity(&tenant, "urn:ngsi-ld:WaterObserved:hieu")
        .await
        .unwrap();
    assert_eq!(e["level"]["value"], 2.0, "{e}");
    assert_eq!(e["height"]["value"], 1.0, "{e}");

    // Deleted: the next measure is refused.
    let r = send(app.iot(Method::DELETE, "/iot/devices/hieu", &tenant)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = measure(3.0).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let e = app
        .entity(&tenant, "urn:ngsi-ld:WaterObserved:hieu")
        .await
        .unwrap();
    assert_eq!(e["level"]["value"], 2.0, "{e}");
    app.stop().await;
}
