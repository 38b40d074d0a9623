//! The IOC app's endpoints over a real SQLite store holding the real Quảng Trị data
//! set, served on 127.0.0.1:0 beside the hub as `dothi` serves them, spoken to over
//! HTTP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hub::test_support::{TestHub, TestStore, ensure_key};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const GAUGE: &str = "urn:ngsi-ld:WaterObserved:demo-thach-han";
const DONG_HA: &str = "urn:ngsi-ld:AdministrativeArea:VN-44-19333";

/// The tests' client: an operator of the tenants the tests use.
const OPERATOR_KEY: &str = "web-test-operator-key-0123456789abcdefghijklmn";
/// An admin of every tenant, for writing in other tenants.
const ADMIN_KEY: &str = "web-test-admin-key-0123456789abcdefghijklmnopq";

struct App {
    base: String,
    client: Client,
    _hub: TestHub,
}

/// A hub with the data set loaded and the web routes beside it, on SQLite.
async fn start() -> App {
    let mut config = hub::HubConfig::default();
    config.http.openapi_extra.push(web::OPENAPI);
    let mut hub = TestHub::new(TestStore::sqlite(), &config, ADMIN_KEY).await;
    let state = hub.state.clone();
    // The tenants the tests write in, and no other.
    ensure_key(
        &state,
        OPERATOR_KEY,
        "test-operator",
        hub::auth::Role::Operator,
        &["", "so-xay-dung", "so-nn", "nobody-here"],
        None,
    )
    .await;
    city::load(&state.hub).await.unwrap();
    hub.serve(vec![web::component(
        state.hub.clone(),
        web::WebConfig::default(),
    )]);
    App {
        base: hub.base.clone(),
        client: hub::test_support::client(Some(OPERATOR_KEY), Duration::from_secs(30)),
        _hub: hub,
    }
}

impl App {
    /// A request to `path` on the hub with the operator's key.
    fn at(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A request with the admin key in `tenant`, for the tenants the operator is not
    /// granted.
    fn as_admin_in(&self, tenant: &str, method: Method, path: &str) -> RequestBuilder {
        self.at(method, path)
            .bearer_auth(ADMIN_KEY)
            .header("NGSILD-Tenant", tenant)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.at(Method::GET, path).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A GET without credentials, as a visitor's browser sends it.
    async fn get_anonymously(&self, path: &str) -> reqwest::Response {
        Client::new()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn patch(&self, id: &str, attrs: Value) {
        let r = self
            .at(Method::PATCH, &format!("/ngsi-ld/v1/entities/{id}/attrs"))
            .json(&attrs)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }

    async fn ngsi_count(&self, query: &str) -> u64 {
        let r = self
            .at(
                Method::GET,
                &format!("/ngsi-ld/v1/entities?{query}&count=true&limit=0"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["NGSILD-Results-Count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Đông Hà in a communes answer, checked to hold the 78 communes and to give Đông Hà
/// its name and boundary.
fn dong_ha_of(communes: &Value) -> &Value {
    let features = communes["features"].as_array().unwrap();
    assert_eq!(features.len(), 78);
    let dong_ha = features.iter().find(|f| f["id"] == DONG_HA).unwrap();
    assert_eq!(dong_ha["properties"]["name"], "Phường Đông Hà");
    assert_eq!(dong_ha["geometry"]["type"], "MultiPolygon");
    dong_ha
}

fn tile<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
}

/// The text under `key` of each member of the array `list`.
fn texts<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m[key].as_str().unwrap())
        .collect()
}

fn tile_ids(summary: &Value, id: &str) -> Vec<String> {
    texts(&tile(summary, id)["entities"], "id")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_data_tiles_and_explorer_over_the_quang_tri_data_set() {
    let app = start().await;

    // 78 communes with boundaries, names with their diacritics and indicators.
    let (status, communes) = app.get("/ioc/api/communes").await;
    assert_eq!(status, 200);
    let dong_ha = dong_ha_of(&communes);
    let broadband = dong_ha["properties"]["broadband"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&broadband));
    assert!(dong_ha["properties"]["entities"].as_u64().unwrap() > 100);
    let features = communes["features"].as_array().unwrap();
    assert!(features.iter().all(|f| f["properties"]["5g"].is_number()));

    // Markers: every located entity of the layers, the water layer alone on request.
    let (_, all) = app.get("/ioc/api/markers").await;
    let (_, water) = app.get("/ioc/api/markers?layers=water").await;
    let water_expected = app
        .ngsi_count("type=WaterObserved,WaterConsumptionObserved")
        .await;
    assert_eq!(water["count"].as_u64().unwrap(), water_expected);
    assert!(all["count"].as_u64().unwrap() > 1000);
    let markers = all["markers"].as_array().unwrap();
    assert!(
        markers
            .iter()
            .all(|m| m["position"].is_array() && m["demo"] == true)
    );
    // Points of interest are split by category between banking, commerce and tourism;
    // planning zones and building permits have a layer of their own.
    let mut split = 0;
    for (layer, query) in [
        (
            "banking",
            "type=PointOfInterest&q=category==%22bank%22,%22atm%22",
        ),
        (
            "commerce",
            "type=PointOfInterest&q=category==%22market%22,%22supermarket%22,%22shoppingCentre%22,%22tradeCentre%22",
        ),
        ("planning", "type=UrbanPlanningZone,BuildingPermit"),
    ] {
        let (_, on) = app.get(&format!("/ioc/api/markers?layers={layer}")).await;
        let expected = app.ngsi_count(query).await;
        assert!(expected > 0, "{layer}");
        assert_eq!(on["count"].as_u64().unwrap(), expected, "{layer}");
        if layer != "planning" {
            split += expected;
        }
    }
    let (_, tourism) = app.get("/ioc/api/markers?layers=tourism").await;
    let poi = app.ngsi_count("type=PointOfInterest").await;
    assert_eq!(tourism["count"].as_u64().unwrap(), poi - split);
    assert!(
        tourism["markers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] == "PointOfInterest")
    );
    let (status, bad) = app.get("/ioc/api/markers?layers=water,sewers").await;
    assert_eq!(status, 400);
    assert!(bad["detail"].as_str().unwrap().contains("sewers"));

    // Tiles count what the entities say: street lights out as the hub counts them.
    let (_, summary) = app.get("/ioc/api/summary").await;
    let out = app.ngsi_count("type=Streetlight&q=status!=%22ok%22").await;
    assert_eq!(
        tile(&summary, "streetlightsOut")["count"].as_u64().unwrap(),
        out
    );
    assert!(!tile_ids(&summary, "gaugesAlarm3").contains(&GAUGE.to_string()));

    // The Thạch Hãn above level III (7.40 m is its record), and a station's PM2.5 at
    // 200 µg/m³ (AQI 250), count at once.
    let at = ngsi::entity::format_time(&chrono::Utc::now());
    app.patch(
        GAUGE,
        json!({"waterLevel": {"type": "Property", "value": 7.2, "observedAt": at}}),
    )
    .await;
    let (_, stations) = app
        .get("/ioc/api/entities?type=AirQualityObserved&limit=1")
        .await;
    let station = stations["items"][0]["id"].as_str().unwrap().to_string();
    app.patch(
        &station,
        json!({"pm25": {"type": "Property", "value": 200, "observedAt": at}}),
    )
    .await;
    let (_, summary) = app.get("/ioc/api/summary").await;
    for level in ["gaugesAlarm1", "gaugesAlarm2", "gaugesAlarm3"] {
        assert!(
            tile_ids(&summary, level).contains(&GAUGE.to_string()),
            "{level}"
        );
    }
    assert!(tile_ids(&summary, "airAqiOver150").contains(&station));
    // A gauge whose last reading is an hour old is silent; the fresh ones are not.
    let hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let r = app
        .at(Method::POST, "/ngsi-ld/v1/entities")
        .json(
            &json!({"id": "urn:ngsi-ld:WaterObserved:quiet", "type": "WaterObserved",
            "waterLevel": {"type": "Property", "value": 1.0,
                           "observedAt": ngsi::entity::format_time(&hour_ago)}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, summary) = app.get("/ioc/api/summary").await;
    let silent = tile_ids(&summary, "devicesSilent");
    assert!(silent.contains(&"urn:ngsi-ld:WaterObserved:quiet".to_string()));
    assert!(!silent.contains(&GAUGE.to_string()) && !silent.contains(&station));
    // A deleted entity leaves the tiles and the markers at once.
    let r = app
        .at(
            Method::DELETE,
            "/ngsi-ld/v1/entities/urn:ngsi-ld:WaterObserved:quiet",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, summary) = app.get("/ioc/api/summary").await;
    let silent = tile_ids(&summary, "devicesSilent");
    assert!(!silent.contains(&"urn:ngsi-ld:WaterObserved:quiet".to_string()));
    let (_, water) = app.get("/ioc/api/markers?layers=water").await;
    assert_eq!(water["count"].as_u64().unwrap(), water_expected);

    // Explorer: tones and case ignored, paging, filters, communes included.
    let (_, found) = app
        .get("/ioc/api/entities?q=thach%20han&type=WaterObserved")
        .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"], GAUGE);
    assert_eq!(found["items"][0]["state"], "alarm3");
    let (_, page) = app
        .get("/ioc/api/entities?type=Streetlight&limit=20&offset=20")
        .await;
    assert_eq!(
        page["total"].as_u64().unwrap(),
        app.ngsi_count("type=Streetlight").await
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    let (_, here) = app
        .get(&format!(
            "/ioc/api/entities?commune={DONG_HA}&layer=energy&limit=0"
        ))
        .await;
    let energy_expected = app
        .ngsi_count(&format!(
            "type=Streetlight,ACMeasurement&q=refAdministrativeArea==%22{DONG_HA}%22"
        ))
        .await;
    assert_eq!(here["total"].as_u64().unwrap(), energy_expected);
    let (_, units) = app
        .get("/ioc/api/entities?type=AdministrativeArea&q=dong%20ha")
        .await;
    let names = texts(&units["items"], "name");
    assert!(names.contains(&"Phường Đông Hà") && names.contains(&"Phường Nam Đông Hà"));

    for bad in [
        "limit=201",
        "limit=-1",
        "offset=x",
        "layer=moon",
        "state=sleepy",
        &format!("q={}", "x".repeat(201)),
    ] {
        let (status, body) = app.get(&format!("/ioc/api/entities?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            body["type"],
            "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        );
    }
    let (status, _) = app.get("/ioc/api/entities?limit=5").await;
    assert_eq!(status, 200);
    let r = app
        .at(Method::GET, "/ioc/api/summary")
        .header("NGSILD-Tenant", "bad tenant!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_as_csv_and_geojson_and_tenants_apart() {
    let app = start().await;
    let (_, found) = app.get("/ioc/api/entities?type=WaterObserved").await;
    assert_eq!(found["total"], 4);

    let r = app
        .at(Method::GET, "/ioc/api/export?type=WaterObserved&format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert!(
        lines[0]
            .trim_start_matches('\u{feff}')
            .starts_with("id,type,name,")
    );
    assert_eq!(lines.len(), 5);
    assert!(csv.contains(GAUGE) && csv.contains("Thạch Hãn"));

    let (status, geo) = app
        .get("/ioc/api/export?type=WaterObserved&format=geojson")
        .await;
    assert_eq!(status, 200);
    let features = geo["features"].as_array().unwrap();
    assert_eq!(features.len(), 4);
    let gauge = features.iter().find(|f| f["id"] == GAUGE).unwrap();
    assert_eq!(gauge["geometry"]["type"], "Point");
    assert_eq!(gauge["properties"]["type"], "WaterObserved");

    let (status, _) = app.get("/ioc/api/export?format=xlsx").await;
    assert_eq!(status, 400);
    // More than the export's bound is refused, not cut silently.
    let r = app
        .at(Method::POST, "/ngsi-ld/v1/entityOperations/upsert")
        .json(
            &(0..web::api::MAX_EXPORT)
                .map(|i| json!({"id": format!("urn:ngsi-ld:Streetlight:x{i}"), "type": "Streetlight"}))
                .collect::<Vec<_>>(),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (status, body) = app.get("/ioc/api/export").await;
    assert_eq!(status, 403, "{body}");

    // Another tenant sees only its own entities (written and read by an admin: the
    // operator is granted the default tenant only).
    let r = app
        .as_admin_in("so-xay-dung", Method::POST, "/ngsi-ld/v1/entities")
        .json(&json!({"id": "urn:ngsi-ld:Streetlight:other", "type": "Streetlight",
            "status": {"type": "Property", "value": "brokenLantern"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .as_admin_in("so-xay-dung", Method::GET, "/ioc/api/markers")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["count"], 1);
    assert_eq!(body["markers"][0]["state"], "warning");
    let (_, default) = app.get("/ioc/api/entities?q=other&type=Streetlight").await;
    assert_eq!(default["total"], 0);
    let r = app
        .as_admin_in("nobody-here", Method::GET, "/ioc/api/communes")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["features"].as_array().unwrap().len(), 0);
}

/// Reads the event stream until `found` says it has what it waits for.
async fn read_events(response: &mut reqwest::Response, found: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let wait = async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if found(&text) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the event arrives");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_each_tenant_its_own_changes() {
    let app = start().await;
    let mut stream = app.at(Method::GET, "/ioc/api/stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    read_events(&mut stream, |t| t.contains("event: hello")).await;

    // A change in another tenant first, then one in the default tenant.
    let r = app
        .as_admin_in("so-nn", Method::POST, "/ngsi-ld/v1/entities")
        .json(&json!({"id": "urn:ngsi-ld:WaterObserved:secret", "type": "WaterObserved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.patch(
        GAUGE,
        json!({"waterLevel": {"type": "Property", "value": 6.5}}),
    )
    .await;
    let text = read_events(&mut stream, |t| t.contains(GAUGE)).await;
    let data = text
        .lines()
        .skip_while(|l| *l != "event: items")
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    let item = &event["items"][0];
    assert_eq!(item["id"], GAUGE);
    assert_eq!(item["reading"], 6.5);
    // The Thạch Hãn's level II is 5.5 m and level III 6.5 m.
    assert_eq!(item["state"], "alarm3");
    assert_eq!(event["attrs"][GAUGE], json!(["waterLevel"]));
    assert!(!text.contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_with_types_etags_gzip_and_documented() {
    if !web::FRONT_END_BUILT {
        use std::io::Write as _;
        // Past the harness's capture: a build without npm embeds a placeholder page.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_app_is_served_with_types_etags_gzip_and_documented: the web app \
             was not built (npm ci in web/; scripts/test.sh refuses this case)"
        );
        return;
    }
    let app = start().await;
    let anonymous = Client::new();
    // The public page at /, the operations centre at /ioc/ (and /ioc), the citizen's
    // report page at /report/ (and /report, /report/track), each revalidated by ETag
    // and under the pages' Content-Security-Policy.
    let mut pages = Vec::new();
    for (path, words) in [
        ("/", "Thông tin đô thị thông minh"),
        ("/ioc/", "Trung tâm giám sát, điều hành đô thị thông minh"),
        ("/ioc", "Trung tâm giám sát, điều hành đô thị thông minh"),
        ("/report/", "Phản ánh hiện trường"),
        ("/report", "Phản ánh hiện trường"),
        ("/report/track", "Phản ánh hiện trường"),
    ] {
        let r = app.get_anonymously(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self';",
            "img-src 'self' data:;",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let html = r.text().await.unwrap();
        assert!(html.contains(words), "{path}");
        let r = anonymous
            .get(format!("{}{path}", app.base))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{path}");
        pages.push(html);
    }
    assert_ne!(pages[0], pages[1]);
    assert_eq!(pages[1], pages[2]);
    assert_ne!(pages[0], pages[3]);
    assert_eq!(pages[3], pages[4]);
    assert_eq!(pages[3], pages[5]);
    // Only the pages carry the pages' policy; the assets keep the front door's.
    let r = app.get_anonymously("/assets/favicon.svg").await;
    assert_eq!(
        r.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );

    let script_of = |html: &str| {
        html.split("<script type=\"module\" src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string()
    };
    assert!(script_of(&pages[0]).starts_with("/assets/public-"));
    // The report page's service worker keeps its name, so it is revalidated, and it
    // lists the page's script among the files it keeps.
    let r = app.get_anonymously("/report/sw.js").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let worker = r.text().await.unwrap();
    let report_script = script_of(&pages[3]);
    assert!(
        worker.contains(&format!("\"{report_script}\"")),
        "{report_script} in {worker}"
    );
    let script = script_of(&pages[1]);
    assert!(script.starts_with("/assets/main-") && script.ends_with(".js"));
    let r = app
        .at(Method::GET, &script)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let gzipped = r.bytes().await.unwrap().len();
    let plain = web::assets::find(&script).unwrap().body.len();
    assert!(gzipped * 2 < plain, "{gzipped} of {plain}");

    let (status, missing) = app.get("/assets/nothing.js").await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["type"],
        "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
    );

    // Every route of the app is in /openapi.json, beside the hub's.
    let (_, doc) = app.get("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/ngsi-ld/v1/entities"));
    let source = include_str!("../src/lib.rs");
    let mut seen = 0;
    let declared = source
        .split(".route(\"")
        .skip(1)
        .map(|piece| piece.split('"').next().unwrap());
    for route in declared.chain(web::assets::PAGES.iter().map(|(route, _)| *route)) {
        assert!(paths.contains_key(route), "{route} is not in openapi.json");
        seen += 1;
    }
    assert!(seen >= 13, "{seen}");
    assert!(doc["components"]["parameters"]["IocTenant"].is_object());
}

/// The app's data is behind login: anonymous callers get 401 (the page then asks for
/// a login), while the page itself and its configuration are public.
#[tokio::test]
async fn the_data_needs_a_login_and_the_page_does_not() {
    let app = start().await;
    for path in [
        "/ioc/api/markers",
        "/ioc/api/summary",
        "/ioc/api/communes",
        "/ioc/api/entities",
        "/ioc/api/stream",
    ] {
        let r = app.get_anonymously(path).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.headers().contains_key("www-authenticate"), "{path}");
    }
    for path in [
        "/",
        "/ioc/",
        "/ioc",
        "/ioc/api/config",
        "/public/api/config",
        "/public/api/communes",
        "/public/api/markers",
    ] {
        let r = app.get_anonymously(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // A tenant the key is not granted is refused, not shown empty.
    let r = app
        .at(Method::GET, "/ioc/api/markers")
        .header("NGSILD-Tenant", "another")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The public page's data: anonymous, the default tenant's communes and its stations of
/// the open layers (gauges, air, weather) only, whatever tenant or layer is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_data_is_open_and_only_the_public_layers() {
    let app = start().await;
    let anonymous = Client::new();
    let get = |path: &str, tenant: Option<&str>| {
        let mut request = anonymous.get(format!("{}{path}", app.base));
        if let Some(t) = tenant {
            request = request.header("NGSILD-Tenant", t);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    let (status, communes) = get("/public/api/communes", None).await;
    assert_eq!(status, 200);
    let dong_ha = dong_ha_of(&communes);
    // Names and area only: nothing counted from the other layers.
    let mut keys: Vec<&str> = dong_ha["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["areaKm2", "code", "id", "kind", "name", "nameEn"]);

    // Every station of the three layers, as the hub counts them, and nothing else.
    let (status, all) = get("/public/api/markers", None).await;
    assert_eq!(status, 200, "{all}");
    let markers = all["markers"].as_array().unwrap();
    let of = |t: &str| markers.iter().filter(|m| m["type"] == t).count() as u64;
    assert_eq!(
        of("WaterObserved"),
        app.ngsi_count("type=WaterObserved").await
    );
    assert_eq!(
        of("AirQualityObserved"),
        app.ngsi_count("type=AirQualityObserved").await
    );
    assert_eq!(
        of("WeatherObserved"),
        app.ngsi_count("type=WeatherObserved").await
    );
    assert_eq!(of("WaterObserved"), 4);
    assert_eq!(all["count"].as_u64().unwrap(), markers.len() as u64);
    assert_eq!(markers.len(), 4 + 13 + 12);
    for m in markers {
        let layer = m["layer"].as_str().unwrap();
        let expected = match m["type"].as_str().unwrap() {
            "WaterObserved" => "water",
            "AirQualityObserved" => "air",
            "WeatherObserved" => "weather",
            other => panic!("{other} is not public"),
        };
        assert_eq!(layer, expected);
        assert!(m["position"].is_array() && m.get("commune").is_none());
    }
    // A gauge carries its reading, its alarm level and the levels I–III.
    let gauge = markers.iter().find(|m| m["id"] == GAUGE).unwrap();
    assert!(gauge["reading"].is_number());
    assert!(gauge["alarmLevel"].is_number());
    assert_eq!(gauge["alarmLevels"].as_array().unwrap().len(), 3);

    // One layer on request; a layer that is not public is refused, not served.
    let (_, water) = get("/public/api/markers?layers=water", None).await;
    assert_eq!(water["count"], 4);
    for layer in ["energy", "transport", "environment", "water,health"] {
        let (status, body) = get(&format!("/public/api/markers?layers={layer}"), None).await;
        assert_eq!(status, 400, "{layer}: {body}");
        assert_eq!(
            body["type"],
            "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        );
    }

    // A gauge in another tenant, and a street light in the default one, never show;
    // asking for another tenant still gives the default tenant's stations.
    let admin = Client::new();
    let r = admin
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(ADMIN_KEY)
        .header("NGSILD-Tenant", "so-nong-nghiep")
        .json(&json!({"id": "urn:ngsi-ld:WaterObserved:private-gauge", "type": "WaterObserved",
            "waterLevel": {"type": "Property", "value": 2.0},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.8]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (status, other) = get("/public/api/markers", Some("so-nong-nghiep")).await;
    assert_eq!(status, 200);
    assert_eq!(other["count"], all["count"]);
    let (_, communes_other) = get("/public/api/communes", Some("so-nong-nghiep")).await;
    assert_eq!(communes_other["features"].as_array().unwrap().len(), 78);
    let text = other.to_string();
    assert!(!text.contains("private-gauge"));
    assert!(!text.contains("Streetlight") && !text.contains("WaterConsumptionObserved"));
    let (_, again) = get("/public/api/markers", None).await;
    assert!(!again.to_string().contains("private-gauge"));

    // The same data that the operations centre's markers endpoint refuses to anonymous
    // callers.
    let (status, _) = get("/ioc/api/markers?layers=water", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
