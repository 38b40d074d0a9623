//! The distributions: every format holds the same entities as the NGSI-LD query, the
//! public attributes only, formulas guarded; history by period.

use serde_json::{Value, json};

use crate::common::{Server, texts};

/// The rows of a CSV download (after its header), and its header.
fn csv_rows(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(body.starts_with('\u{feff}'), "a byte-order mark first");
    let mut r = csv::Reader::from_reader(body.trim_start_matches('\u{feff}').as_bytes());
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

#[tokio::test]
async fn row_counts_agree_across_csv_geojson_json_and_the_ngsi_ld_query() {
    let s = Server::start().await;
    let (status, list) = s.action("package_list", "").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<String> = serde_json::from_value(list["result"].clone()).unwrap();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let (_, pkg) = s.action("package_show", &format!("id={name}")).await;
        let pkg = &pkg["result"];
        let attrs: Vec<String> =
            serde_json::from_value(pkg["ngsi_ld_view"]["attrs"].clone()).unwrap();
        // The NGSI-LD resource: the hub's query, with a key.
        let query = pkg["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["format"] == "NGSI-LD")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        let r = s
            .admin
            .get(format!("{query}&count=true&limit=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{query}");
        let count: usize = r.headers()["NGSILD-Results-Count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(count > 0, "{name}: the demo has entities");

        let (status, csv) = s.get_text(&format!("/dataset/{name}/data.csv")).await;
        assert_eq!(status, 200);
        let (header, rows) = csv_rows(&csv);
        assert_eq!(rows.len(), count, "{name}: CSV rows");
        // id, type, then the public attributes only (location as lat and lon).
        let mut expected = vec!["id".to_string(), "type".to_string()];
        for a in &attrs {
            if a == "location" {
                expected.extend(["lat".to_string(), "lon".to_string()]);
            } else {
                expected.push(a.clone());
            }
        }
        assert_eq!(header, expected, "{name}");

        let (status, geo) = s.get_text(&format!("/dataset/{name}/data.geojson")).await;
        assert_eq!(status, 200);
        let geo: Value = serde_json::from_str(&geo).unwrap();
        let features = geo["features"].as_array().unwrap();
        assert_eq!(features.len(), count, "{name}: GeoJSON features");
        for f in features {
            for k in f["properties"].as_object().unwrap().keys() {
                assert!(
                    k == "id" || k == "type" || attrs.contains(k),
                    "{name}: {k} is not public"
                );
            }
        }

        let (status, json) = s.get_text(&format!("/dataset/{name}/data.json")).await;
        assert_eq!(status, 200);
        let json: Value = serde_json::from_str(&json).unwrap();
        let entities = json.as_array().unwrap();
        assert_eq!(entities.len(), count, "{name}: NGSI-LD entities");
        for e in entities {
            for k in e.as_object().unwrap().keys() {
                assert!(
                    k == "id" || k == "type" || attrs.contains(k),
                    "{name}: {k} is not public"
                );
            }
        }
    }
    // An unknown dataset or file.
    assert_eq!(s.get_text("/dataset/nope/data.csv").await.0, 404);
    assert_eq!(s.get_text("/dataset/truong-hoc/data.xlsx").await.0, 404);
}

/// Creates entities of a type of this test through the NGSI-LD API.
async fn create(s: &Server, entities: Value) {
    let r = s
        .admin
        .post(s.url("/ngsi-ld/v1/entityOperations/upsert"))
        .json(&entities)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn publish(s: &Server, name: &str, types: &str, attrs: Value) -> (u16, Value) {
    let r = s
        .admin
        .post(s.url("/api/action/package_create"))
        .json(&json!({
            "name": name,
            "title": "Phản ánh thử",
            "notes": "Thử nghiệm",
            "owner_org": "van-phong-ubnd-tinh",
            "license_id": "cc-by-4.0",
            "ngsi_ld_view": {"types": [types], "attrs": attrs},
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn personal_data_is_never_published_and_formulas_are_guarded() {
    let s = Server::start().await;
    create(
        &s,
        json!([
            {"id": "urn:ngsi-ld:TestReport:1", "type": "TestReport",
             "status": {"type": "Property", "value": "=HYPERLINK(\"http://evil\")"},
             "reporterEmail": {"type": "Property", "value": "dan@example.vn"},
             "reporter": {"type": "Property", "value": "Nguyễn Văn A"}},
            {"id": "urn:ngsi-ld:TestReport:2", "type": "TestReport",
             "status": {"type": "Property", "value": "-3.5"},
             "reporterEmail": {"type": "Property", "value": "b@example.vn"}}
        ]),
    )
    .await;
    // A view with a reporter's fields is refused, field by field.
    for attrs in [
        json!(["status", "reporter"]),
        json!(["status", "reporterEmail"]),
    ] {
        let (status, body) = publish(&s, "bao-cao-thu", "TestReport", attrs).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["__type"], "Validation Error");
        assert!(
            body["error"]["view.attrs"][0]
                .as_str()
                .unwrap()
                .contains("personal")
        );
    }
    // A filter on an attribute the view does not publish is refused too.
    let r = s
        .admin
        .post(s.url("/api/action/package_create"))
        .json(&json!({
            "name": "bao-cao-loc", "title": "Lọc", "notes": "Lọc", "owner_org": "van-phong-ubnd-tinh",
            "ngsi_ld_view": {"types": ["TestReport"], "attrs": ["status"], "q": "reporterEmail==\"dan@example.vn\""},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let (status, body) = publish(&s, "bao-cao-thu", "TestReport", json!(["status"])).await;
    assert_eq!(status, 200, "{body}");
    for file in ["data.csv", "data.geojson", "data.json"] {
        let (status, text) = s.get_text(&format!("/dataset/bao-cao-thu/{file}")).await;
        assert_eq!(status, 200);
        for secret in ["dan@example.vn", "b@example.vn", "Nguyễn Văn A", "reporter"] {
            assert!(!text.contains(secret), "{file} shows {secret}: {text}");
        }
    }
    let (_, csv) = s.get_text("/dataset/bao-cao-thu/data.csv").await;
    let (_, rows) = csv_rows(&csv);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][2], "'=HYPERLINK(\"http://evil\")",
        "a formula is guarded"
    );
    assert_eq!(rows[1][2], "-3.5", "a number is left alone");
    // The view's geometry is not public here: GeoJSON has none.
    let (_, geo) = s.get_text("/dataset/bao-cao-thu/data.geojson").await;
    let geo: Value = serde_json::from_str(&geo).unwrap();
    assert_eq!(geo["features"][0]["geometry"], Value::Null);
}

#[tokio::test]
async fn history_downloads_by_period() {
    let s = Server::start().await;
    let id = "urn:ngsi-ld:TestGauge:g1";
    for (n, level) in [1.5, 2.0, 2.75].iter().enumerate() {
        create(
            &s,
            json!([{"id": id, "type": "TestGauge",
                "waterLevel": {"type": "Property", "value": level,
                    "observedAt": format!("2026-01-0{}T00:00:00Z", n + 1)},
                "secretNote": {"type": "Property", "value": "internal"}}]),
        )
        .await;
    }
    let (status, body) = publish(&s, "muc-nuoc-thu", "TestGauge", json!(["waterLevel"])).await;
    assert_eq!(status, 200, "{body}");
    let (status, csv) = s
        .get_text(
            "/dataset/muc-nuoc-thu/history.csv?from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z",
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, ["time", "entity", "attribute", "value"]);
    // The period holds the first two observations (its end is exclusive).
    assert_eq!(
        rows,
        vec![
            vec![
                "2026-01-01T00:00:00Z".to_string(),
                id.into(),
                "waterLevel".into(),
                "1.5".into()
            ],
            vec![
                "2026-01-02T00:00:00Z".to_string(),
                id.into(),
                "waterLevel".into(),
                "2".into()
            ],
        ]
    );
    assert!(!csv.contains("internal"));
    // A period is required, ordered and bounded.
    for q in [
        "",
        "?from=2026-01-03T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?from=yesterday&to=2026-01-01T00:00:00Z",
    ] {
        let (status, body) = s
            .get_text(&format!("/dataset/muc-nuoc-thu/history.csv{q}"))
            .await;
        assert_eq!(status, 400, "{q}: {body}");
    }
}

/// Whether the store pages by itself (no `q`) or its model tests each entity (a `q`
/// with a pattern), a download reads the public attributes alone, and the rows are
/// the same.
#[tokio::test]
async fn downloads_with_and_without_a_filter_show_the_same_public_values() {
    let s = Server::start().await;
    let stations: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"id": format!("urn:ngsi-ld:TestStation:{i}"), "type": "TestStation",
                "level": {"type": "Property", "value": i as f64 + 0.5},
                "name": {"type": "Property", "value": format!("Trạm \"{i}\", bờ bắc")},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.125, 16.75]}},
                "secretNote": {"type": "Property", "value": "internal"}})
        })
        .collect();
    create(&s, json!(stations)).await;
    let attrs = json!(["name", "level", "location"]);
    let (status, body) = publish(&s, "tram-thu", "TestStation", attrs.clone()).await;
    assert_eq!(status, 200, "{body}");
    let r = s
        .admin
        .post(s.url("/api/action/package_create"))
        .json(&json!({
            "name": "tram-thu-loc", "title": "Lọc", "notes": "Lọc", "owner_org": "van-phong-ubnd-tinh",
            "license_id": "cc-by-4.0",
            "ngsi_ld_view": {"types": ["TestStation"], "attrs": attrs, "q": "name~=\"Trạm\""},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut downloads = Vec::new();
    for name in ["tram-thu", "tram-thu-loc"] {
        for file in ["data.csv", "data.geojson", "data.json"] {
            let (status, text) = s.get_text(&format!("/dataset/{name}/{file}")).await;
            assert_eq!(status, 200, "{name}/{file}: {text}");
            for secret in ["internal", "secretNote"] {
                assert!(
                    !text.contains(secret),
                    "{name}/{file} shows {secret}: {text}"
                );
            }
            downloads.push(text);
        }
        let (header, rows) = csv_rows(&downloads[downloads.len() - 3]);
        assert_eq!(header, ["id", "type", "name", "level", "lat", "lon"]);
        let expected: Vec<Vec<String>> = (1..=3)
            .map(|i| {
                [
                    format!("urn:ngsi-ld:TestStation:{i}"),
                    "TestStation".into(),
                    format!("Trạm \"{i}\", bờ bắc"),
                    format!("{i}.5"),
                    "16.75".into(),
                    "107.125".into(),
                ]
                .to_vec()
            })
            .collect();
        assert_eq!(rows, expected, "{name}");
    }
    // Each format says the same with or without the filter.
    assert_eq!(downloads[..3], downloads[3..]);
}

/// A download of several pages (the next page is read while one is written) holds
/// every entity once, in the order of the view, in each format.
#[tokio::test]
async fn a_download_of_many_pages_holds_every_entity_once_in_order() {
    let s = Server::start().await;
    // Two CSV pages of 5,000 and a row beyond; ten pages and a row of the others.
    const GAUGES: usize = 10_001;
    let id = |i: usize| format!("urn:ngsi-ld:TestGauge:{i:05}");
    for start in (0..GAUGES).step_by(1_000) {
        let batch: Vec<Value> = (start..(start + 1_000).min(GAUGES))
            .map(|i| {
                json!({"id": id(i), "type": "TestGauge",
                    "level": {"type": "Property", "value": i}})
            })
            .collect();
        create(&s, json!(batch)).await;
    }
    let (status, body) = publish(&s, "muc-nuoc-nhieu", "TestGauge", json!(["level"])).await;
    assert_eq!(status, 200, "{body}");
    let expected: Vec<String> = (0..GAUGES).map(id).collect();

    let (status, csv) = s.get_text("/dataset/muc-nuoc-nhieu/data.csv").await;
    assert_eq!(status, 200);
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, ["id", "type", "level"]);
    let ids: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, expected, "CSV rows");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[2], i.to_string(), "{}", row[0]);
    }

    let (status, json) = s.get_text("/dataset/muc-nuoc-nhieu/data.json").await;
    assert_eq!(status, 200);
    let json: Vec<Value> = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = json.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected, "NGSI-LD entities");

    let (status, geojson) = s.get_text("/dataset/muc-nuoc-nhieu/data.geojson").await;
    assert_eq!(status, 200);
    let geojson: Value = serde_json::from_str(&geojson).unwrap();
    assert_eq!(
        texts(&geojson["features"], "id"),
        expected,
        "GeoJSON features"
    );
}
