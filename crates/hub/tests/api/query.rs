//! GET /entities and POST /entityOperations/query: type selection, ids, q, geoQ,
//! scopeQ, lang, paging and counting, GeoJSON.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::*;

fn stations() -> Vec<Value> {
    vec![
        json!({
            "id": "urn:ngsi-ld:Station:s1", "type": "Station",
            "level": {"type": "Property", "value": 3.2, "unitCode": "MTR", "observedAt": "2024-05-01T10:00:00Z",
                      "accuracy": {"type": "Property", "value": 0.1}},
            "status": "ok", "active": true, "name": "Thạch Hãn",
            "address": {"type": "Property", "value": {"city": "Đông Hà", "street": "Lê Duẩn"}},
            "dateObserved": "2024-05-01T10:00:00Z",
            "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"},
            "tags": ["flood", "river"]
        }),
        json!({
            "id": "urn:ngsi-ld:Station:s2", "type": "Station",
            "level": {"type": "Property", "value": 5.0, "unitCode": "MTR", "observedAt": "2024-04-01T10:00:00Z",
                      "accuracy": {"type": "Property", "value": 0.5}},
            "status": "alarm", "active": false, "name": "Sông Hiếu",
            "address": {"type": "Property", "value": {"city": "Quảng Trị"}},
            "dateObserved": "2024-06-01T00:00:00Z",
            "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:hieu"},
            "label": {"type": "LanguageProperty", "languageMap": {"vi": "Trạm Hiếu", "en": "Hieu station"}},
            "readings": {"type": "ListProperty", "valueList": [1.5, 2.5, 7.5]}
        }),
        json!({
            "id": "urn:ngsi-ld:Station:s3", "type": "Station",
            "level": {"type": "Property", "value": 1.0, "unitCode": "MTR"},
            "status": "ok", "active": true, "name": "Bến Hải",
            "address": {"type": "Property", "value": {"city": "Vĩnh Linh"}},
            "dateObserved": "2023-12-31T23:00:00Z",
            "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:ben-hai"}
        }),
        json!({
            "id": "urn:ngsi-ld:Station:s4", "type": "Station",
            "status": "offline", "name": "Ô Lâu \"cũ\""
        }),
        // Another type with the same attributes: never in a type=Station answer.
        json!({"id": "urn:ngsi-ld:Other:o1", "type": "Other", "level": 3.2, "status": "ok"}),
    ]
}

fn st(names: &[&str]) -> BTreeSet<String> {
    urns("Station", names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_operators() {
    let app = App::start().await;
    app.create_all(stations()).await;
    let cases: &[(&str, &[&str])] = &[
        ("level==3.2", &["s1"]),
        ("level!=3.2", &["s2", "s3"]),
        ("level<3.2", &["s3"]),
        ("level<=3.2", &["s1", "s3"]),
        ("level>3.2", &["s2"]),
        ("level>=3.2", &["s1", "s2"]),
        ("level==1..3.2", &["s1", "s3"]),
        ("level==1,5", &["s2", "s3"]),
        ("level!=1,5", &["s1"]),
        ("level", &["s1", "s2", "s3"]),
        ("!level", &["s4"]),
        ("status==\"ok\"", &["s1", "s3"]),
        ("status!=\"ok\"", &["s2", "s4"]),
        ("status==\"ok\",\"alarm\"", &["s1", "s2", "s3"]),
        ("name~=\"^Sông\"", &["s2"]),
        ("name!~=\"^Sông\"", &["s1", "s3", "s4"]),
        ("name~=\"(?i)^bến\"", &["s3"]),
        ("name==\"Thạch Hãn\"", &["s1"]),
        ("name==\"Ô Lâu \\\"cũ\\\"\"", &["s4"]),
        ("status==\"ok\";level>2", &["s1"]),
        ("status==\"alarm\"|level<2", &["s2", "s3"]),
        ("(status==\"ok\"|status==\"offline\");!level", &["s4"]),
        ("(level>4|level<2);status==\"ok\"", &["s3"]),
        ("level.accuracy<0.3", &["s1"]),
        ("level.accuracy", &["s1", "s2"]),
        ("level.observedAt>=2024-05-01T00:00:00Z", &["s1"]),
        ("level.unitCode==\"MTR\"", &["s1", "s2", "s3"]),
        ("address[city]==\"Đông Hà\"", &["s1"]),
        ("address[street]", &["s1"]),
        ("dateObserved>2024-01-01T00:00:00Z", &["s1", "s2"]),
        ("dateObserved<2024-01-01T07:00:00+07:00", &["s3"]),
        (
            "dateObserved==2024-05-01T10:00:00Z..2024-12-31T00:00:00Z",
            &["s1", "s2"],
        ),
        ("active==true", &["s1", "s3"]),
        ("active==false", &["s2"]),
        ("refRiver==urn:ngsi-ld:River:ben-hai", &["s3"]),
        ("refRiver==\"urn:ngsi-ld:River:hieu\"", &["s2"]),
        ("tags==\"river\"", &["s1"]),
        ("tags==\"flood\";tags==\"river\"", &["s1"]),
        ("label==\"Hieu station\"", &["s2"]),
        ("label~=\"^Trạm\"", &["s2"]),
        ("readings>7", &["s2"]),
        ("readings==2.5", &["s2"]),
    ];
    for (q, want) in cases {
        let got = app.query_ids(&[("type", "Station"), ("q", q)]).await;
        assert_eq!(got, st(want), "q={q}");
    }
    // The same through POST /entityOperations/query.
    for (q, want) in cases {
        let r = send(app.post(
            "/entityOperations/query",
            &json!({"type": "Query", "entities": [{"type": "Station"}], "q": q}),
        ))
        .await;
        assert_eq!(r.status, 200, "q={q}: {}", r.text);
        assert_eq!(ids(&r.body), st(want), "POST q={q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_without_type_spans_types() {
    let app = App::start().await;
    app.create_all(stations()).await;
    let got = app.query_ids(&[("q", "level==3.2")]).await;
    assert_eq!(
        got,
        set(&["urn:ngsi-ld:Station:s1", "urn:ngsi-ld:Other:o1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_selection_expressions() {
    let app = App::start().await;
    app.create_all(vec![
        json!({"id": "urn:ngsi-ld:M:1", "type": ["Sensor", "Device"], "n": 1}),
        json!({"id": "urn:ngsi-ld:M:2", "type": "Sensor", "n": 2}),
        json!({"id": "urn:ngsi-ld:M:3", "type": "Device", "n": 3}),
        json!({"id": "urn:ngsi-ld:M:4", "type": "Gateway", "n": 4}),
    ])
    .await;
    let cases: &[(&str, &[&str])] = &[
        ("Sensor", &["1", "2"]),
        ("Device", &["1", "3"]),
        ("Sensor,Device", &["1", "2", "3"]),
        ("Sensor;Device", &["1"]),
        ("(Sensor;Device)|Gateway", &["1", "4"]),
        ("Sensor|Gateway", &["1", "2", "4"]),
        ("Nothing", &[]),
    ];
    for (t, want) in cases {
        let r = app.get_with("/entities", &[("type", *t)]).await;
        assert_eq!(r.status, 200, "type={t}: {}", r.text);
        let list = id_list(&r.body);
        let unique: BTreeSet<String> = list.iter().cloned().collect();
        assert_eq!(unique.len(), list.len(), "each entity once: type={t}");
        assert_eq!(unique, urns("M", want), "type={t}");
    }
    // A multi-typed entity renders its types as a list.
    let e = app.entity("urn:ngsi-ld:M:1").await;
    assert_eq!(e["type"], json!(["Sensor", "Device"]));
    // The query body's entities list is an "or".
    let r = send(app.post(
        "/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "Gateway"}, {"type": "Device"}]}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body), urns("M", &["1", "3", "4"]));
    let r = send(app.get("/entities").query(&[("type", "Sensor;(")])).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_id_pattern_and_attrs() {
    let app = App::start().await;
    app.create_all(stations()).await;
    let got = app
        .query_ids(&[
            (
                "id",
                "urn:ngsi-ld:Station:s1,urn:ngsi-ld:Station:s3,urn:ngsi-ld:Station:nope",
            ),
            ("type", "Station"),
        ])
        .await;
    assert_eq!(got, st(&["s1", "s3"]));
    // Ids alone select nothing to page through: a type, attrs, q or geo-query is needed
    // (clause 6.4.3.2).
    app.get_refused("/entities", &[("id", "urn:ngsi-ld:Station:s1")])
        .await;
    let got = app
        .query_ids(&[
            ("type", "Station"),
            ("idPattern", "^urn:ngsi-ld:Station:s[23]$"),
        ])
        .await;
    assert_eq!(got, st(&["s2", "s3"]));
    let got = app
        .query_ids(&[("idPattern", "o1$"), ("type", "Other")])
        .await;
    assert_eq!(got, set(&["urn:ngsi-ld:Other:o1"]));

    // attrs: entities with at least one of them, projected to them.
    let r = app
        .get_ok(
            "/entities",
            &[("type", "Station"), ("attrs", "level,refRiver")],
        )
        .await;
    assert_eq!(ids(&r.body), st(&["s1", "s2", "s3"]));
    for e in r.body.as_array().unwrap() {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["id", "type", "level", "refRiver"].into_iter().collect(),
            "{e}"
        );
    }
    app.get_refused("/entities", &[("id", "not-a-uri"), ("type", "Station")])
        .await;
    for pattern in ["(unclosed", "station**", "s+*"] {
        app.get_refused("/entities", &[("idPattern", pattern), ("type", "Station")])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_representations_and_lang() {
    let app = App::start().await;
    app.create(json!({"id": "urn:ngsi-ld:River:thach-han", "type": "River",
        "name": {"type": "LanguageProperty", "languageMap": {"vi": "Sông Thạch Hãn", "en": "Thach Han river"}},
        "length": {"type": "Property", "value": 155.5, "unitCode": "KMT"}}))
        .await;
    let r = app
        .get_ok("/entities", &[("type", "River"), ("lang", "vi")])
        .await;
    assert_eq!(
        r.body[0]["name"],
        json!({"type": "Property", "value": "Sông Thạch Hãn", "lang": "vi"})
    );
    let r = app
        .get_with(
            "/entities",
            &[("type", "River"), ("options", "keyValues"), ("lang", "en")],
        )
        .await;
    assert_eq!(
        r.body,
        json!([{"id": "urn:ngsi-ld:River:thach-han", "type": "River", "name": "Thach Han river", "length": 155.5}])
    );
    let r = send(app.post(
        "/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "River"}], "lang": "en"}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["name"]["value"], "Thach Han river");
    let r = app
        .get_with("/entities", &[("type", "River"), ("options", "concise")])
        .await;
    assert_eq!(
        r.body[0]["length"],
        json!({"value": 155.5, "unitCode": "KMT"})
    );
    app.get_refused("/entities", &[("type", "River"), ("lang", "not a tag!")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_q() {
    let app = App::start().await;
    app.create_all(vec![
        json!({"id": "urn:ngsi-ld:P:dong-ha", "type": "P", "scope": "/QuangTri/DongHa", "n": 1}),
        json!({"id": "urn:ngsi-ld:P:khe-sanh", "type": "P", "scope": ["/QuangTri/HuongHoa/KheSanh", "/Border"], "n": 2}),
        json!({"id": "urn:ngsi-ld:P:hue", "type": "P", "scope": "/Hue", "n": 3}),
        json!({"id": "urn:ngsi-ld:P:none", "type": "P", "n": 4}),
    ])
    .await;
    let cases: &[(&str, &[&str])] = &[
        ("/QuangTri/DongHa", &["dong-ha"]),
        ("/QuangTri/#", &["dong-ha", "khe-sanh"]),
        ("/QuangTri/+", &["dong-ha"]),
        ("/QuangTri/+/KheSanh", &["khe-sanh"]),
        ("/Hue,/Border", &["khe-sanh", "hue"]),
        ("/QuangTri/#;/Border", &["khe-sanh"]),
        ("/Nowhere", &[]),
    ];
    for (q, want) in cases {
        let got = app.query_ids(&[("type", "P"), ("scopeQ", q)]).await;
        assert_eq!(got, urns("P", want), "scopeQ={q}");
    }
    assert_eq!(
        app.entity("urn:ngsi-ld:P:khe-sanh").await["scope"],
        json!(["/QuangTri/HuongHoa/KheSanh", "/Border"])
    );
    app.get_refused("/entities", &[("type", "P"), ("scopeQ", "QuangTri")])
        .await;
}

/// Places around Đông Hà, Quảng Trị.
fn places() -> Vec<Value> {
    let point = |name: &str, lon: f64, lat: f64| {
        json!({"id": format!("urn:ngsi-ld:City:{name}"), "type": "City",
               "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}})
    };
    vec![
        point("dong-ha", 107.099, 16.819),
        point("quang-tri", 107.1905, 16.753),
        point("hue", 107.585, 16.4637),
        point("khe-sanh", 106.733, 16.624),
        json!({"id": "urn:ngsi-ld:Road:ql9", "type": "Road",
               "location": {"type": "GeoProperty", "value": {"type": "LineString", "coordinates": [[106.75, 16.65], [107.05, 16.81]]}}}),
        json!({"id": "urn:ngsi-ld:Area:dong-ha", "type": "Area",
               "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [[[107.05, 16.78], [107.15, 16.78], [107.15, 16.86], [107.05, 16.86], [107.05, 16.78]]]}}}),
        // Located in Huế, but its `area` is next to Đông Hà.
        json!({"id": "urn:ngsi-ld:Park:p1", "type": "Park",
               "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.58, 16.46]}},
               "area": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [[[107.1, 16.81], [107.11, 16.81], [107.11, 16.82], [107.1, 16.81]]]}}}),
    ]
}

/// Query parameters of a case.
type Params<'a> = Vec<(&'a str, &'a str)>;

/// The parameters of a geo-query: `georel` to a `geometry` at `coordinates`, and `more`.
fn geo<'a>(
    georel: &'a str,
    geometry: &'a str,
    coordinates: &'a str,
    more: &[(&'a str, &'a str)],
) -> Params<'a> {
    let mut params = vec![
        ("georel", georel),
        ("geometry", geometry),
        ("coordinates", coordinates),
    ];
    params.extend_from_slice(more);
    params
}

const BOX: &str = "[[[107.0,16.7],[107.3,16.7],[107.3,16.9],[107.0,16.9],[107.0,16.7]]]";
const WEST_BOX: &str = "[[[106.9,16.7],[107.0,16.7],[107.0,16.8],[106.9,16.8],[106.9,16.7]]]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_queries() {
    let app = App::start().await;
    app.create_all(places()).await;
    let all = |names: &[&str]| -> BTreeSet<String> { set(names) };
    // Cities by their distance from Đông Hà.
    let cities_near = |georel| geo(georel, "Point", "[107.099,16.819]", &[("type", "City")]);
    let cases: Vec<(Params, BTreeSet<String>)> = vec![
        (
            cities_near("near;maxDistance==15000"),
            urns("City", &["dong-ha", "quang-tri"]),
        ),
        (
            cities_near("near;maxDistance==5000"),
            urns("City", &["dong-ha"]),
        ),
        (
            cities_near("near;minDistance==50000"),
            urns("City", &["hue"]),
        ),
        (
            cities_near("near;minDistance==10000;maxDistance==50000"),
            urns("City", &["quang-tri", "khe-sanh"]),
        ),
        (
            geo("within", "Polygon", BOX, &[]),
            all(&[
                "urn:ngsi-ld:City:dong-ha",
                "urn:ngsi-ld:City:quang-tri",
                "urn:ngsi-ld:Area:dong-ha",
            ]),
        ),
        (
            geo("intersects", "Polygon", WEST_BOX, &[]),
            all(&["urn:ngsi-ld:Road:ql9"]),
        ),
        (
            geo(
                "disjoint",
                "Polygon",
                WEST_BOX,
                &[("type", "City,Road,Area")],
            ),
            all(&[
                "urn:ngsi-ld:City:dong-ha",
                "urn:ngsi-ld:City:quang-tri",
                "urn:ngsi-ld:City:hue",
                "urn:ngsi-ld:City:khe-sanh",
                "urn:ngsi-ld:Area:dong-ha",
            ]),
        ),
        (
            geo("contains", "Point", "[107.1,16.82]", &[]),
            all(&["urn:ngsi-ld:Area:dong-ha"]),
        ),
        (
            geo("equals", "Point", "[107.1905,16.753]", &[]),
            all(&["urn:ngsi-ld:City:quang-tri"]),
        ),
        (
            geo(
                "overlaps",
                "Polygon",
                "[[[107.1,16.8],[107.2,16.8],[107.2,16.9],[107.1,16.9],[107.1,16.8]]]",
                &[],
            ),
            all(&["urn:ngsi-ld:Area:dong-ha"]),
        ),
        (
            geo(
                "intersects",
                "LineString",
                "[[106.9,16.6],[106.9,16.9]]",
                &[],
            ),
            all(&["urn:ngsi-ld:Road:ql9"]),
        ),
        // geoproperty other than location.
        (
            geo(
                "near;maxDistance==3000",
                "Point",
                "[107.099,16.819]",
                &[("geoproperty", "area")],
            ),
            all(&["urn:ngsi-ld:Park:p1"]),
        ),
        (
            geo("within", "Polygon", BOX, &[("geoproperty", "area")]),
            all(&["urn:ngsi-ld:Park:p1"]),
        ),
    ];
    for (params, want) in &cases {
        let got = app.query_ids(params).await;
        assert_eq!(&got, want, "{params:?}");
    }
    // The park is not near Đông Hà by its location.
    let got = app
        .query_ids(&[
            ("type", "Park"),
            ("georel", "near;maxDistance==3000"),
            ("geometry", "Point"),
            ("coordinates", "[107.099,16.819]"),
        ])
        .await;
    assert!(got.is_empty(), "{got:?}");

    // geoQ in a POST query, coordinates as JSON.
    let r = send(app.post(
        "/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "City"}],
                "geoQ": {"georel": "near;maxDistance==15000", "geometry": "Point", "coordinates": [107.099, 16.819]}}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body), urns("City", &["dong-ha", "quang-tri"]));
    // Combined with q and count.
    let r = app
        .get_ok(
            "/entities",
            &[
                ("georel", "within"),
                ("geometry", "Polygon"),
                ("coordinates", BOX),
                ("q", "location"),
                ("type", "City"),
                ("count", "true"),
            ],
        )
        .await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geojson_query_gives_a_feature_collection() {
    let app = App::start().await;
    app.create_all(places()).await;
    let r = send(
        app.get("/entities")
            .query(&[("type", "City,Area")])
            .header("accept", GEO_JSON),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), GEO_JSON);
    assert_eq!(r.body["type"], "FeatureCollection");
    // The collection names its @context (here the core one, as a URL).
    assert!(
        r.body["@context"]
            .to_string()
            .contains("ngsi-ld-core-context"),
        "{}",
        r.body["@context"]
    );
    let features = r.body["features"].as_array().expect("features");
    assert_eq!(features.len(), 5);
    for f in features {
        assert_eq!(f["type"], "Feature", "{f}");
        assert!(f["id"].is_string(), "{f}");
        assert!(f["properties"]["type"].is_string(), "{f}");
        assert_eq!(f["geometry"], f["properties"]["location"]["value"], "{f}");
    }
    let dong_ha = features
        .iter()
        .find(|f| f["id"] == "urn:ngsi-ld:City:dong-ha")
        .expect("Đông Hà");
    assert_eq!(
        dong_ha["geometry"],
        json!({"type": "Point", "coordinates": [107.099, 16.819]})
    );
    let area = features
        .iter()
        .find(|f| f["id"] == "urn:ngsi-ld:Area:dong-ha")
        .expect("the area");
    assert_eq!(area["geometry"]["type"], "Polygon");
    // geometryProperty picks another GeoProperty.
    let r = send(
        app.get("/entities")
            .query(&[("type", "Park"), ("geometryProperty", "area")])
            .header("accept", GEO_JSON),
    )
    .await;
    assert_eq!(
        r.body["features"][0]["geometry"]["type"], "Polygon",
        "{}",
        r.text
    );
}

async fn pages() -> App {
    let app = App::start().await;
    let entities = (0..25)
        .map(|i| json!({"id": format!("urn:ngsi-ld:Page:{i:02}"), "type": "Page", "idx": i}))
        .collect();
    app.create_all(entities).await;
    app
}

async fn page(app: &App, extra: &[(&str, &str)], offset: usize) -> Vec<String> {
    let offset = offset.to_string();
    let mut params = vec![
        ("type", "Page"),
        ("limit", "10"),
        ("offset", offset.as_str()),
    ];
    params.extend_from_slice(extra);
    let r = app.get_ok("/entities", &params).await;
    id_list(&r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_and_pages_do_not_overlap() {
    let app = pages().await;
    for extra in [vec![], vec![("q", "idx>=0")]] {
        let p0 = page(&app, &extra, 0).await;
        let p1 = page(&app, &extra, 10).await;
        let p2 = page(&app, &extra, 20).await;
        let p3 = page(&app, &extra, 30).await;
        assert_eq!(
            (p0.len(), p1.len(), p2.len(), p3.len()),
            (10, 10, 5, 0),
            "{extra:?}"
        );
        let mut all: Vec<String> = [p0.clone(), p1.clone(), p2.clone()].concat();
        assert_eq!(all.len(), 25);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 25, "pages overlap: {extra:?}");
        // The same query gives the same pages.
        assert_eq!(page(&app, &extra, 0).await, p0);
        assert_eq!(page(&app, &extra, 10).await, p1);
    }
    // q filtering + paging: only matches are counted in the offset.
    let q = [("q", "idx>=20")];
    let first = page(&app, &q, 0).await;
    assert_eq!(first.len(), 5);
    let r = app
        .get_with(
            "/entities",
            &[
                ("type", "Page"),
                ("q", "idx>=20"),
                ("limit", "2"),
                ("offset", "2"),
            ],
        )
        .await;
    assert_eq!(id_list(&r.body), first[2..4].to_vec());
    // Updating entities does not move them between pages.
    let p0 = page(&app, &[], 0).await;
    let p1 = page(&app, &[], 10).await;
    for id in p0.iter().take(3) {
        let r = send(app.patch(&format!("/entities/{id}/attrs"), &json!({"idx": 100}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    assert_eq!(page(&app, &[], 0).await, p0);
    assert_eq!(page(&app, &[], 10).await, p1);
    // The default limit is 20.
    let r = app.get_with("/entities", &[("type", "Page")]).await;
    assert_eq!(r.body.as_array().unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_and_limits() {
    let app = pages().await;
    let r = app
        .get_ok(
            "/entities",
            &[("type", "Page"), ("count", "true"), ("limit", "5")],
        )
        .await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("25"));
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    let r = app
        .get_with(
            "/entities",
            &[
                ("type", "Page"),
                ("count", "true"),
                ("q", "idx<7"),
                ("limit", "2"),
            ],
        )
        .await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("7"));
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    // limit=0&count=true: the count alone.
    let r = app
        .get_ok(
            "/entities",
            &[("type", "Page"), ("count", "true"), ("limit", "0")],
        )
        .await;
    assert_eq!(r.body, json!([]));
    assert_eq!(r.header("NGSILD-Results-Count"), Some("25"));
    // limit=0 alone asks for nothing.
    app.get_refused("/entities", &[("type", "Page"), ("limit", "0")])
        .await;
    // Without count, no header.
    let r = app.get_with("/entities", &[("type", "Page")]).await;
    assert!(r.header("NGSILD-Results-Count").is_none());
    // Count on POST query.
    let r = send(
        app.post(
            "/entityOperations/query",
            &json!({"type": "Query", "entities": [{"type": "Page"}]}),
        )
        .query(&[("count", "true"), ("limit", "1")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("NGSILD-Results-Count"), Some("25"));
    // Limits.
    let r = app
        .get_with("/entities", &[("type", "Page"), ("limit", "1001")])
        .await;
    assert_problem(&r, 403, "TooManyResults");
    let r = app
        .get_ok("/entities", &[("type", "Page"), ("limit", "1000")])
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 25);
    app.get_refused("/entities", &[("type", "Page"), ("limit", "-1")])
        .await;
    app.get_refused("/entities", &[("type", "Page"), ("count", "maybe")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_responses_link_to_neighbouring_pages() {
    let app = pages().await;
    let get = |offset: &str| {
        app.get("/entities").query(&[
            ("type", "Page"),
            ("q", "idx>=0"),
            ("limit", "10"),
            ("offset", offset),
        ])
    };
    let first = send(get("0")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.link_rel("prev").is_none(), "{:?}", first.headers);
    let next = first.link_rel("next").expect("a next link");
    assert!(next.starts_with("/ngsi-ld/v1/entities?"), "{next}");
    // Following the links walks the pages, which do not overlap.
    let second = send(app.client.get(format!("{}{next}", app.base))).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(
        id_list(&second.body),
        page(&app, &[("q", "idx>=0")], 10).await
    );
    let back = second.link_rel("prev").expect("a prev link");
    let again = send(app.client.get(format!("{}{back}", app.base))).await;
    assert_eq!(id_list(&again.body), id_list(&first.body));
    let next = second.link_rel("next").expect("a next link");
    let third = send(app.client.get(format!("{}{next}", app.base))).await;
    assert_eq!(third.body.as_array().unwrap().len(), 5);
    assert!(
        third.link_rel("next").is_none(),
        "the last page has no next: {:?}",
        third.headers
    );
    assert!(third.link_rel("prev").is_some());
    // The @context link is still there.
    assert!(
        third
            .header_all("link")
            .iter()
            .any(|l| l.contains(CONTEXT_REL)),
        "{:?}",
        third.headers
    );
    // With count, a full last page has no next either.
    let r = app
        .get_with(
            "/entities",
            &[
                ("type", "Page"),
                ("limit", "5"),
                ("offset", "20"),
                ("count", "true"),
            ],
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    assert!(r.link_rel("next").is_none(), "{:?}", r.headers);
    assert!(
        r.link_rel("prev").is_some_and(|p| p.contains("offset=15")),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_of_attributes_answers_the_entities_it_leaves_something_of() {
    let app = App::start().await;
    app.create_all(stations()).await;
    // Only s2 has a label: nothing of the others would be left, so they are neither
    // answered nor counted.
    let r = app
        .get_ok(
            "/entities",
            &[("type", "Station"), ("pick", "label"), ("count", "true")],
        )
        .await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("1"));
    assert_eq!(
        r.body,
        json!([{"label": {"type": "LanguageProperty", "languageMap": {"vi": "Trạm Hiếu", "en": "Hieu station"}}}])
    );
    let r = app
        .get_with("/entities", &[("type", "Station"), ("pick", "level,label")])
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3), "{}", r.body);
    // With the id picked, every entity keeps something.
    let r = app
        .get_with("/entities", &[("type", "Station"), ("pick", "id,label")])
        .await;
    assert_eq!(ids(&r.body), st(&["s1", "s2", "s3", "s4"]));
    let s4 = r
        .body
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == "urn:ngsi-ld:Station:s4"));
    assert_eq!(s4, Some(&json!({"id": "urn:ngsi-ld:Station:s4"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equals_finds_a_polygon_by_its_own_coordinates_even_one_that_crosses_itself() {
    let app = App::start().await;
    // The last edge crosses the second: not a valid polygon, but stored as given.
    let crossed = json!([[
        [107.10, 16.90],
        [107.11, 16.90],
        [107.09, 16.80],
        [107.30, 16.78],
        [107.32, 16.85],
        [107.10, 16.90]
    ]]);
    let square = json!([[
        [107.0, 16.7],
        [107.2, 16.7],
        [107.2, 16.9],
        [107.0, 16.9],
        [107.0, 16.7]
    ]]);
    for (name, coordinates) in [("crossed", &crossed), ("square", &square)] {
        app.create(json!({"id": format!("urn:ngsi-ld:Zone:{name}"), "type": "Zone",
            "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": coordinates}}}))
            .await;
    }
    for (coordinates, expected) in [(&crossed, "crossed"), (&square, "square")] {
        let r = app
            .get_ok(
                "/entities",
                &[
                    ("type", "Zone"),
                    ("georel", "equals"),
                    ("geometry", "Polygon"),
                    ("coordinates", &coordinates.to_string()),
                ],
            )
            .await;
        assert_eq!(ids(&r.body), urns("Zone", &[expected]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_sorts_the_answer_and_pages_in_that_order() {
    let app = App::start().await;
    app.create_all(stations()).await;
    let order = |by: &'static str| {
        let app = &app;
        async move {
            let r = app
                .get_with("/entities", &[("type", "Station"), ("orderBy", by)])
                .await;
            assert_eq!(r.status, 200, "orderBy={by}: {}", r.text);
            id_list(&r.body)
        }
    };
    let st = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("urn:ngsi-ld:Station:{n}"))
            .collect()
    };
    // s4 has no level: last, ascending or descending.
    assert_eq!(order("level").await, st(&["s3", "s1", "s2", "s4"]));
    assert_eq!(order("level;desc").await, st(&["s2", "s1", "s3", "s4"]));
    assert_eq!(order("id;desc").await, st(&["s4", "s3", "s2", "s1"]));
    // A sub-attribute, an attribute's metadata, a key of a JSON value.
    assert_eq!(
        order("level.accuracy;desc").await,
        st(&["s2", "s1", "s3", "s4"])
    );
    assert_eq!(
        order("level.observedAt").await,
        st(&["s2", "s1", "s3", "s4"])
    );
    // Texts compare by code point: "Quảng Trị" < "Vĩnh Linh" < "Đông Hà".
    assert_eq!(order("address[city]").await, st(&["s2", "s3", "s1", "s4"]));
    // Equal keys fall to the next one.
    assert_eq!(
        order("status,name;desc").await,
        st(&["s2", "s4", "s1", "s3"])
    );
    assert_eq!(order("type,level").await, st(&["s3", "s1", "s2", "s4"]));

    // Pages follow the order, and the count is of every match.
    let r = app
        .get_with(
            "/entities",
            &[
                ("type", "Station"),
                ("orderBy", "level;desc"),
                ("limit", "2"),
                ("offset", "1"),
                ("count", "true"),
            ],
        )
        .await;
    assert_eq!(id_list(&r.body), st(&["s1", "s3"]));
    assert_eq!(r.header("NGSILD-Results-Count"), Some("4"));
    // The same in a POST query, where every filter is exact SQL but the order is not.
    let r = send(app.post(
        "/entityOperations/query",
        &json!({"type": "Query", "entities": [{"type": "Station"}], "q": "active==true", "orderBy": "name"}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(id_list(&r.body), st(&["s3", "s1"]));

    for bad in ["level;up", "level,,id", "level==1", "level;desc;asc"] {
        app.get_refused("/entities", &[("type", "Station"), ("orderBy", bad)])
            .await;
    }
}
