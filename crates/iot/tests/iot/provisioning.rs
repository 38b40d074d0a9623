//! The provisioning API: service groups and devices, created, listed, read, changed and
//! deleted over HTTP; checked; kept apart by tenant; never shown as entities.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{App, assert_problem, send, unique};

#[tokio::test]
async fn service_groups_are_created_listed_changed_and_deleted() {
    let app = App::start().await;
    let tenant = unique("groups");
    let apikey = unique("key");
    app.provision_group(
        &tenant,
        json!({
            "apikey": apikey, "cbroker": "http://orion:1026", "entity_type": "Thermometer",
            "resource": "/iot/json",
            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number",
                            "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}],
            "static_attributes": [{"name": "category", "type": "Text", "value": "sensor"}]
        }),
    )
    .await;

    // Listed in its tenant, with a count; not in another.
    let r = send(app.iot(Method::GET, "/iot/services", &tenant)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["count"], 1);
    let g = &r.body["services"][0];
    assert_eq!(g["apikey"], apikey.as_str());
    assert_eq!(g["entity_type"], "Thermometer");
    assert_eq!(g["resource"], "/iot/json");
    assert_eq!(g["service"], tenant.as_str());
    assert_eq!(g["autoprovision"], true);
    assert_eq!(g["attributes"][0]["metadata"]["unitCode"]["value"], "CEL");
    let r = send(app.iot(Method::GET, "/iot/services", &unique("other"))).await;
    assert_eq!(r.body["count"], 0);
    // NGSILD-Tenant names the same tenant.
    let r = send(
        app.client
            .get(app.url("/iot/services"))
            .header("NGSILD-Tenant", &tenant),
    )
    .await;
    assert_eq!(r.body["count"], 1);

    // The same apikey again: 409, in this tenant and in another.
    let again = json!({"services": [{"apikey": apikey, "entity_type": "X"}]});
    let r = send(app.iot(Method::POST, "/iot/services", &tenant).json(&again)).await;
    assert_problem(&r, 409, "AlreadyExists");
    let r = send(
        app.iot(Method::POST, "/iot/services", &unique("other"))
            .json(&again),
    )
    .await;
    assert_problem(&r, 409, "AlreadyExists");

    // Changed by resource and apikey: only the members given.
    let path = format!("/iot/services?resource=/iot/json&apikey={apikey}");
    let r = send(
        app.iot(Method::PUT, &path, &tenant)
            .json(&json!({"entity_type": "Hygrometer", "autoprovision": false})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.iot(Method::GET, "/iot/services", &tenant)).await;
    let g = &r.body["services"][0];
    assert_eq!(g["entity_type"], "Hygrometer");
    assert_eq!(g["autoprovision"], false);
    assert_eq!(g["attributes"][0]["name"], "temperature");
    let r = send(
        app.iot(
            Method::PUT,
            "/iot/services?resource=/iot/json&apikey=nope",
            &tenant,
        )
        .json(&json!({"entity_type": "X"})),
    )
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(
        app.iot(
            Method::PUT,
            "/iot/services?resource=/iot/d&apikey=x",
            &tenant,
        )
        .json(&json!({})),
    )
    .await;
    assert_problem(&r, 404, "ResourceNotFound");

    // Deleted, with its devices when asked.
    app.provision_device(&tenant, json!({"device_id": "dev-1"}))
        .await;
    let r = send(app.iot(Method::DELETE, &format!("{path}&device=true"), &tenant)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.iot(Method::GET, "/iot/services", &tenant)).await;
    assert_eq!(r.body["count"], 0);
    let r = send(app.iot(Method::GET, "/iot/devices/dev-1", &tenant)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.iot(Method::DELETE, &path, &tenant)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    app.stop().await;
}

#[tokio::test]
async fn devices_are_created_listed_paged_changed_and_deleted() {
    let app = App::start().await;
    let (tenant, apikey) = app
        .tenant_with_group("devices", json!({"entity_type": "Gauge"}))
        .await;
    let devices: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "device_id": format!("gauge-{i}"),
                "protocol": "PDI-IoTA-JSON", "transport": "MQTT", "lazy": [],
                "attributes": [{"object_id": "l", "name": "level", "type": "Number",
                                "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}}]
            })
        })
        .collect();
    let r = send(
        app.iot(Method::POST, "/iot/devices", &tenant)
            .json(&json!({"devices": devices})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // A page, with the total count.
    let r = send(app.iot(Method::GET, "/iot/devices?limit=2&offset=1", &tenant)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["count"], 5);
    let ids: Vec<&str> = r.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gauge-1", "gauge-2"]);
    let r = send(app.iot(Method::GET, "/iot/devices?limit=5000", &tenant)).await;
    assert_problem(&r, 400, "BadRequestData");

    // One device: the group's apikey and entity type, the default entity id.
    let r = send(app.iot(Method::GET, "/iot/devices/gauge-3", &tenant)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["apikey"], apikey.as_str());
    assert_eq!(r.body["entity_type"], "Gauge");
    assert_eq!(r.body["entity_name"], "urn:ngsi-ld:Gauge:gauge-3");
    assert_eq!(r.body["transport"], "MQTT");
    assert_eq!(r.body["service"], tenant.as_str());
    let r = send(app.iot(Method::GET, "/iot/devices/gauge-3", &unique("other"))).await;
    assert_problem(&r, 404, "ResourceNotFound");

    // A device that exists, in the same request as a new one: nothing is created.
    let r = send(
        app.iot(Method::POST, "/iot/devices", &tenant)
            .json(&json!({"devices": [{"device_id": "gauge-9"}, {"device_id": "gauge-0"}]})),
    )
    .await;
    assert_problem(&r, 409, "AlreadyExists");
    let r = send(app.iot(Method::GET, "/iot/devices/gauge-9", &tenant)).await;
    assert_eq!(r.status, 404);

    // Changed: the members given.
    let r = send(
        app.iot(Method::PUT, "/iot/devices/gauge-3", &tenant)
            .json(&json!({"entity_name": "urn:ngsi-ld:WaterObserved:thach-han",
                           "static_attributes": [{"name": "river", "type": "Text", "value": "Thạch Hãn"}]})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.iot(Method::GET, "/iot/devices/gauge-3", &tenant)).await;
    assert_eq!(r.body["entity_name"], "urn:ngsi-ld:WaterObserved:thach-han");
    assert_eq!(r.body["static_attributes"][0]["value"], "Thạch Hãn");
    assert_eq!(r.body["attributes"][0]["name"], "level");
    let r = send(
        app.iot(Method::PUT, "/iot/devices/gauge-3", &tenant)
            .json(&json!({"device_id": "other"})),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(
        app.iot(Method::PUT, "/iot/devices/nope", &tenant)
            .json(&json!({})),
    )
    .await;
    assert_problem(&r, 404, "ResourceNotFound");

    // Deleted.
    let r = send(app.iot(Method::DELETE, "/iot/devices/gauge-3", &tenant)).await;
    assert_eq!(r.status, 204);
    let r = send(app.iot(Method::DELETE, "/iot/devices/gauge-3", &tenant)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.iot(Method::GET, "/iot/devices", &tenant)).await;
    assert_eq!(r.body["count"], 4);
    app.stop().await;
}

#[tokio::test]
async fn bad_provisioning_gets_clear_errors() {
    let app = App::start().await;
    let tenant = unique("bad");
    let post =
        |path: &'static str, body: Value| send(app.iot(Method::POST, path, &tenant).json(&body));
    for (body, part) in [
        (
            json!({"devices": [{"device_id": "d/1", "apikey": "k", "entity_type": "T"}]}),
            "devices[0].device_id",
        ),
        (
            json!({"devices": [{"device_id": "d1", "entity_type": "T"}]}),
            "devices[0].apikey: is required",
        ),
        (
            json!({"devices": [{"device_id": "d1", "apikey": "k"}]}),
            "devices[0].entity_type: is required",
        ),
        (
            json!({"devices": [{"device_id": "d1", "apikey": "k", "entity_type": "T", "entity_name": "not a uri"}]}),
            "entity_name",
        ),
        (
            json!({"devices": [{"device_id": "d1", "apikey": "k", "entity_type": "T",
                             "attributes": [{"object_id": "t", "name": "temperature", "type": "Number", "expression": "t*2"}]}]}),
            "devices[0].attributes[0].expression: is not supported",
        ),
        (json!({"devices": []}), "1 to 1000 items"),
        (json!({"device": []}), "devices: is required"),
        (json!([]), "must be a JSON object"),
    ] {
        let r = post("/iot/devices", body.clone()).await;
        assert_problem(&r, 400, "BadRequestData");
        assert!(
            r.body["detail"].as_str().unwrap().contains(part),
            "{body}: {}",
            r.text
        );
    }
    let r = post(
        "/iot/services",
        json!({"services": [{"apikey": "k", "entity_type": "T", "resource": "/iot/d"}]}),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(
        app.iot(Method::POST, "/iot/services", &tenant)
            .body("{\"services\": ["),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(
        app.client
            .get(app.url("/iot/devices"))
            .header("fiware-service", "a b"),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(
        app.client
            .get(app.url("/iot/devices"))
            .header("fiware-service", "a")
            .header("NGSILD-Tenant", "b"),
    )
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.iot(Method::PATCH, "/iot/devices", &tenant)).await;
    assert_problem(&r, 405, "MethodNotAllowed");
    let r = send(
        app.iot(Method::POST, "/iot/devices", &tenant)
            .body(vec![b' '; 5 * 1024 * 1024]),
    )
    .await;
    assert_problem(&r, 413, "PayloadTooLarge");
    // The hub still answers its own routes, and unknown paths with its 404.
    let r = send(app.client.get(app.url("/iot/nothing"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.client.get(app.url("/health"))).await;
    assert_eq!(r.status, 200);
    app.stop().await;
}

/// API keys live in the registry only: no entity, type or attribute of the NGSI-LD API
/// shows a group or a device, and provisioning alone does not create a tenant there.
#[tokio::test]
async fn the_registry_is_not_on_the_ngsi_ld_api() {
    let app = App::start().await;
    let tenant = unique("secret");
    let apikey = unique("secret-key");
    app.provision_group(&tenant, json!({"apikey": apikey, "entity_type": "Meter"}))
        .await;
    app.provision_device(&tenant, json!({"device_id": "m1"}))
        .await;
    let r = send(
        app.client
            .get(app.url("/ngsi-ld/v1/types"))
            .header("NGSILD-Tenant", &tenant),
    )
    .await;
    assert_problem(&r, 404, "NonexistentTenant");
    for path in [
        "/ngsi-ld/v1/types",
        "/ngsi-ld/v1/attributes",
        "/ngsi-ld/v1/entities?type=Meter",
    ] {
        let r = send(app.client.get(app.url(path))).await;
        assert!(!r.text.contains(&apikey), "{path}: {}", r.text);
    }
    app.stop().await;
}
