//! Open311 conversations: FixMyStreet's exact parameter set in XML, and a JSON client.

use crate::common::{ADMIN_KEY, App, DONG_HA, places, send};

/// A point inside the province's bounding box but outside its boundary.
fn outside_point() -> (String, String) {
    let p = places();
    let [x0, y0, x1, y1] = p.province().bbox();
    for i in 0..50 {
        for j in 0..50 {
            let lon = x0 + (x1 - x0) * f64::from(i) / 50.0;
            let lat = y0 + (y1 - y0) * f64::from(j) / 50.0;
            if !p.province().contains([lon, lat]) {
                return (format!("{lat}"), format!("{lon}"));
            }
        }
    }
    panic!("no point of the bounding box is outside the province")
}

#[tokio::test]
async fn fixmystreet_talks_to_us_in_xml() {
    let app = App::with_categories().await;
    let fms = &app.anonymous;

    let d = app.get(fms, "/open311/v2/discovery.xml").await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert!(d.ctype.starts_with("text/xml"), "{}", d.ctype);
    assert!(
        d.text
            .contains("<specification>http://wiki.open311.org/GeoReport_v2</specification>")
    );

    let s = app
        .get(fms, "/open311/v2/services.xml?jurisdiction_id=quangtri")
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(s.text.starts_with("<?xml"));
    assert!(s.xml_count("service") >= 12, "{}", s.text);
    assert!(s.text.contains("<service_code>o-nhiem</service_code>"));

    let def = app
        .get(
            fms,
            "/open311/v2/services/o-nhiem.xml?jurisdiction_id=quangtri",
        )
        .await;
    def.assert_says(200, "<service_definition><service_code>o-nhiem</service_code><attributes><attribute><variable>true</variable><code>loai_o_nhiem</code><datatype>singlevaluelist</datatype><required>true</required>");
    assert_eq!(def.xml_count("value"), 4);

    // FixMyStreet's parameters (Open311.pm, _populate_service_request_params), with
    // its api_key in the body, extra attributes it adds and one repeated.
    let detail = "Bãi rác tự phát\n\nRác đổ ra lòng đường\n\nhttps://fms.example/report/123\n";
    let post = app
        .form(
            fms,
            "/open311/v2/requests.xml",
            &[
                ("jurisdiction_id", "quangtri"),
                ("api_key", ADMIN_KEY),
                ("service_code", "rac-thai"),
                ("description", detail),
                ("first_name", "Trần"),
                ("last_name", "Thị Bích"),
                ("email", "tran.bich@example.vn"),
                ("phone", "0905 111 222"),
                ("lat", DONG_HA.0),
                ("long", DONG_HA.1),
                ("media_url", "https://fms.example/photo/123.0.full.jpeg"),
                ("attribute[loai_rac]", "sinh_hoat"),
                ("attribute[loai_rac]", "xa_ban"),
                ("attribute[fixmystreet_id]", "123"),
                ("attribute[title]", "Bãi rác tự phát"),
                ("attribute[report_url]", "https://fms.example/report/123"),
                ("attribute[easting]", "0"),
                ("attribute[northing]", "0"),
                ("attribute[last_name]", "Thị Bích"),
            ],
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.text);
    let id = post.xml_first("service_request_id").expect("an id");
    let token = post.xml_first("token").expect("a token");

    let got = app
        .get(fms, &format!("/open311/v2/requests/{id}.xml"))
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.xml_count("request"), 1);
    assert_eq!(got.xml_first("status").as_deref(), Some("open"));
    assert_eq!(got.xml_first("service_code").as_deref(), Some("rac-thai"));
    assert_eq!(got.xml_first("lat").as_deref(), Some(DONG_HA.0));
    assert_eq!(
        got.xml_first("media_url").as_deref(),
        Some("https://fms.example/photo/123.0.full.jpeg")
    );
    // A communal category goes to the People's Committee of the commune of the point.
    let agency = got.xml_first("agency_responsible").expect("an agency");
    assert!(agency.starts_with("UBND Phường"), "{agency}");
    for personal in ["tran.bich", "0905", "Bích", "Trần"] {
        assert!(!got.text.contains(personal), "{personal} in {}", got.text);
    }
    // The repeated attribute is a list; unknown ones are kept; the name is not.
    let report = app.report(&id).await;
    assert_eq!(
        report.attributes["loai_rac"],
        serde_json::json!(["sinh_hoat", "xa_ban"])
    );
    assert_eq!(
        report.attributes["fixmystreet_id"],
        serde_json::json!("123")
    );
    assert!(!report.attributes.contains_key("last_name"));
    assert!(report.has_contact);

    let t = app
        .get(fms, &format!("/open311/v2/tokens/{token}.xml"))
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(
        t.xml_first("service_request_id").as_deref(),
        Some(id.as_str())
    );

    // Refusals, as the spec's error documents.
    let missing = app
        .form(
            fms,
            "/open311/v2/requests.xml",
            &[
                ("api_key", ADMIN_KEY),
                ("service_code", "o-nhiem"),
                ("lat", DONG_HA.0),
                ("long", DONG_HA.1),
                ("description", "Khói"),
            ],
        )
        .await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert_eq!(missing.xml_first("code").as_deref(), Some("400"));
    assert!(
        missing
            .xml_first("description")
            .unwrap_or_default()
            .contains("loai_o_nhiem")
    );
    let bad_key = app
        .form(
            fms,
            "/open311/v2/requests.xml",
            &[
                ("api_key", "not-a-key-0123456789abcdef0123456789"),
                ("service_code", "rac-thai"),
                ("lat", DONG_HA.0),
                ("long", DONG_HA.1),
            ],
        )
        .await;
    assert_eq!(bad_key.status, 403, "{}", bad_key.text);
    assert_eq!(bad_key.xml_first("code").as_deref(), Some("403"));
    let (lat, long) = outside_point();
    let outside = app
        .form(
            fms,
            "/open311/v2/requests.xml",
            &[
                ("api_key", ADMIN_KEY),
                ("service_code", "rac-thai"),
                ("lat", &lat),
                ("long", &long),
            ],
        )
        .await;
    outside.assert_says(400, "outside the province");
    for path in [
        "/open311/v2/services/khong-co.xml",
        "/open311/v2/requests/KHONGCO.xml",
        "/open311/v2/tokens/0123456789abcdef0123456789abcdef.xml",
        "/open311/v2/services.xml?jurisdiction_id=hanoi",
    ] {
        let r = app.get(fms, path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.xml_first("code").as_deref(), Some("404"), "{path}");
    }
    // Nothing was stored by the refused posts.
    assert_eq!(app.reports.all().await.expect("all").len(), 1);

    // An address without coordinates is kept for staff to place.
    let addr = app
        .form(
            fms,
            "/open311/v2/requests.xml",
            &[
                ("api_key", ADMIN_KEY),
                ("service_code", "duong-hu-hong"),
                ("address_string", "Số 5 Lê Duẩn, Đông Hà"),
                ("description", "Ổ gà"),
            ],
        )
        .await;
    assert_eq!(addr.status, 201, "{}", addr.text);
    let addr_id = addr.xml_first("service_request_id").expect("an id");
    let got = app
        .get(fms, &format!("/open311/v2/requests/{addr_id}.xml"))
        .await;
    assert_eq!(
        got.xml_first("address").as_deref(),
        Some("Số 5 Lê Duẩn, Đông Hà")
    );
    assert!(got.text.contains("<lat/>"), "{}", got.text);

    // The agency resolves; FixMyStreet fetches updates, then posts its user's update.
    let start = (chrono::Utc::now() - chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for action in [
        serde_json::json!({"action": "accept"}),
        serde_json::json!({"action": "resolve", "result": "Đã thu gom xong"}),
    ] {
        let r = crate::common::send(
            app.admin
                .post(app.url(&format!("/reports/v1/requests/{id}/actions")))
                .json(&action),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let end = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let feed_path = format!(
        "/open311/v2/servicerequestupdates.xml?jurisdiction_id=quangtri&api_key={ADMIN_KEY}&start_date={}&end_date={}",
        start.replace('+', "%2B"),
        end.replace('+', "%2B")
    );
    let feed = app.get(fms, &feed_path).await;
    feed.assert_says(200, "<status>FIXED</status>");
    assert!(
        feed.text
            .contains("<description>Đã thu gom xong</description>")
    );

    let app = &app;
    let update = |status: &'static str, update_id: &'static str| {
        let id = id.clone();
        async move {
            app.form(
                fms,
                "/open311/v2/servicerequestupdates.xml",
                &[
                    ("jurisdiction_id", "quangtri"),
                    ("api_key", ADMIN_KEY),
                    ("updated_datetime", "2026-03-01T10:00:00+07:00"),
                    ("service_request_id", &id),
                    ("status", status),
                    ("description", "Rác vẫn còn nguyên"),
                    ("last_name", "Bích"),
                    ("first_name", "Trần"),
                    ("email", "tran.bich@example.vn"),
                    ("update_id", update_id),
                ],
            )
            .await
        }
    };
    let reopened = update("OPEN", "fms-comment-7").await;
    assert_eq!(reopened.status, 201, "{}", reopened.text);
    let update_id = reopened.xml_first("update_id").expect("an update id");
    let again = update("OPEN", "fms-comment-7").await;
    assert_eq!(
        again.xml_first("update_id"),
        Some(update_id.clone()),
        "a repeated post is one update"
    );
    let report = app.report(&id).await;
    assert_eq!(
        report.stage,
        reports::Stage::InProgress,
        "OPEN reopens a resolved report"
    );
    assert_eq!(report.status, "open");
    let feed = app.get(fms, &feed_path).await;
    assert!(feed.text.contains(&format!("<update_id>{update_id}</update_id><service_request_id>{id}</service_request_id><status>OPEN</status>")), "{}", feed.text);
    assert!(
        !feed.text.contains("tran.bich") && !feed.text.contains("Trần"),
        "{}",
        feed.text
    );
    let bad = update("MAYBE", "fms-comment-8").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn a_json_client_gets_bare_arrays() {
    let app = App::with_categories().await;
    let s = app.get(&app.anonymous, "/open311/v2/services.json").await;
    assert_eq!(s.status, 200);
    assert!(s.ctype.starts_with("application/json"));
    let services = s.json();
    assert!(
        services.as_array().is_some_and(|a| a.len() >= 12),
        "{services}"
    );
    assert!(services[0].get("service_code").is_some());
    let def = app.public_json("/open311/v2/services/o-nhiem.json").await;
    assert_eq!(def["attributes"][0]["required"], true);
    assert_eq!(
        def["attributes"][0]["values"].as_array().map(Vec::len),
        Some(4)
    );

    // The key as a bearer header this time, JSON answers.
    let mut ids = Vec::new();
    for kind in ["khong_khi", "nuoc"] {
        let r = app
            .report_at_dong_ha(
                &app.admin,
                "/open311/v2/requests.json",
                "o-nhiem",
                &[
                    ("description", "Khói đen"),
                    ("attribute[loai_o_nhiem]", kind),
                ],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        assert!(v.is_array(), "{v}");
        ids.push(
            v[0]["service_request_id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
    }
    let list = app
        .get(
            &app.anonymous,
            &format!(
                "/open311/v2/requests.json?service_request_id={},{}",
                ids[0], ids[1]
            ),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let v = list.json();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v[0]["status"], "open");
    assert!(v[0]["lat"].is_number());
    let listed = app
        .public_json("/open311/v2/requests.json?status=open&service_code=o-nhiem")
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let boxed = app
        .public_json("/open311/v2/requests.json?bbox=107.09,16.81,107.11,16.82")
        .await;
    assert_eq!(boxed.as_array().map(Vec::len), Some(2), "{boxed}");
    let elsewhere = app
        .public_json("/open311/v2/requests.json?bbox=106.5,17.4,106.7,17.5")
        .await;
    assert_eq!(elsewhere, serde_json::json!([]));
    // A period: the listed time is in whole seconds, the stored one finer; a report
    // made within the second the period starts or ends in is in it.
    let listed_at = v[0]["requested_datetime"].as_str().expect("a time");
    let at = chrono::DateTime::parse_from_rfc3339(listed_at).expect("W3C");
    let w3c = |t: chrono::DateTime<chrono::FixedOffset>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let in_period = |start: String, end: String| {
        let app = &app;
        async move {
            let q = format!(
                "/open311/v2/requests.json?service_code=o-nhiem&start_date={start}&end_date={end}"
            );
            let v = app.public_json(&q).await;
            v.as_array()
                .expect("a list")
                .iter()
                .filter_map(|r| r["service_request_id"].as_str().map(String::from))
                .collect::<Vec<_>>()
        }
    };
    let second = chrono::TimeDelta::seconds(1);
    let found = in_period(w3c(at), w3c(at + second)).await;
    assert!(
        found.contains(
            &v[0]["service_request_id"]
                .as_str()
                .expect("an id")
                .to_string()
        ),
        "{found:?}"
    );
    let before = in_period(w3c(at - second * 60), w3c(at - second)).await;
    assert!(before.is_empty(), "{before:?}");
    let inbox = crate::common::send(app.admin.get(app.url("/reports/v1/requests?stage=received,accepted&agency=S%E1%BB%9F%20N%C3%B4ng%20nghi%E1%BB%87p%20v%C3%A0%20M%C3%B4i%20tr%C6%B0%E1%BB%9Dng"))).await;
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    assert_eq!(
        inbox.json().as_array().map(Vec::len),
        Some(2),
        "{}",
        inbox.text
    );
    let near = app
        .public_json(&format!(
            "/reports/v1/nearby?service_code=o-nhiem&lat={}&long={}",
            DONG_HA.0, DONG_HA.1
        ))
        .await;
    assert_eq!(near.as_array().map(Vec::len), Some(2), "{near}");
    let far = app
        .public_json("/reports/v1/nearby?service_code=o-nhiem&lat=16.8175&long=107.1003")
        .await;
    assert_eq!(far, serde_json::json!([]), "130 m away is not a duplicate");
    let none = app
        .public_json("/open311/v2/requests.json?status=closed")
        .await;
    assert_eq!(none, serde_json::json!([]));
    let err = app
        .get(&app.anonymous, "/open311/v2/requests.json?status=maybe")
        .await;
    assert_eq!(err.status, 400);
    assert_eq!(err.json()[0]["code"], 400);
    let wrong_value = app
        .report_at_dong_ha(
            &app.admin,
            "/open311/v2/requests.json",
            "o-nhiem",
            &[("attribute[loai_o_nhiem]", "lua")],
        )
        .await;
    assert_eq!(wrong_value.status, 400, "{}", wrong_value.text);
    let not_form = crate::common::send(
        app.admin
            .post(app.url("/open311/v2/requests.json"))
            .json(&serde_json::json!({"service_code": "o-nhiem"})),
    )
    .await;
    assert_eq!(not_form.status, 400, "{}", not_form.text);
    let unknown = app.get(&app.anonymous, "/open311/v2/requests.csv").await;
    assert_eq!(unknown.status, 404);
}

/// Open311 posts carry their key in the form, which the front door does not read: the
/// door does not count them as anonymous traffic, the reports service limits citizens
/// by address (reports and updates alike), and a staff key in `api_key` is not limited.
#[tokio::test]
async fn limits_count_citizens_not_the_key_in_the_form() {
    let mut door = hub::HubConfig::default();
    door.gate.limits.anonymous_per_minute = 3;
    let config = reports::ReportsConfig {
        per_address_per_hour: 4,
        ..reports::ReportsConfig::default()
    };
    let app = App::start_behind(config, door).await;
    app.categories().await;
    let (lat, long) = DONG_HA;
    let report = |key: Option<&'static str>| {
        let mut pairs = vec![
            ("service_code", "den-chieu-sang"),
            ("lat", lat),
            ("long", long),
            ("description", "Đèn đường hỏng"),
        ];
        if let Some(k) = key {
            pairs.push(("api_key", k));
        }
        pairs
    };
    // The admin key in the form, more often than the door lets anonymous traffic in.
    let mut first = String::new();
    for i in 0..6 {
        let r = app
            .form(
                &app.anonymous,
                "/open311/v2/requests.json",
                &report(Some(ADMIN_KEY)),
            )
            .await;
        assert_eq!(r.status, 201, "staff post {i}: {}", r.text);
        if i == 0 {
            first = r.first_id();
        }
    }
    // A citizen: four reports and updates an hour from one address, then 429.
    for i in 0..3 {
        let r = app
            .form(&app.anonymous, "/open311/v2/requests.json", &report(None))
            .await;
        assert_eq!(r.status, 201, "citizen post {i}: {}", r.text);
    }
    let update = [
        ("service_request_id", first.as_str()),
        ("status", "OPEN"),
        ("description", "Vẫn chưa sửa"),
    ];
    for expected in [201, 429] {
        let r = app
            .form(
                &app.anonymous,
                "/open311/v2/servicerequestupdates.json",
                &update,
            )
            .await;
        assert_eq!(r.status, expected, "{}", r.text);
    }
    let r = app
        .form(&app.anonymous, "/open311/v2/requests.json", &report(None))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json()[0]["code"], 429, "{}", r.text);
    // Anonymous reads are still counted at the door.
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                app.get(&app.anonymous, "/open311/v2/services.json")
                    .await
                    .status,
            );
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
}

/// Submits a report of `code` at Đông Hà as staff: its agency, or the refusal's status.
async fn agency_given(app: &App, code: &str) -> Result<String, u16> {
    let answer = app.staff_report(code, "Đèn tắt cả tuần").await;
    if answer.status != 201 {
        return Err(answer.status);
    }
    let id = answer.first_id();
    let r = app
        .get(&app.admin, &format!("/open311/v2/requests/{id}.json"))
        .await
        .json();
    Ok(r[0]["agency_responsible"]
        .as_str()
        .expect("an agency")
        .to_string())
}

/// The intake keeps the categories between submissions: one changed through the
/// NGSI-LD API, created or deleted is what the very next submission sees.
#[tokio::test]
async fn the_next_submission_sees_a_category_changed_through_the_hub() {
    let app = App::with_categories().await;
    assert_eq!(
        agency_given(&app, "den-chieu-sang").await,
        Ok("Sở Xây dựng".into())
    );
    let entity = "/ngsi-ld/v1/entities/urn:ngsi-ld:Open311_ServiceType:den-chieu-sang";
    let patched = send(
        app.admin
            .patch(app.url(&format!("{entity}/attrs")))
            .header("content-type", "application/json")
            .body(r#"{"agency_responsible": {"type": "Property", "value": "Sở Công Thương"}}"#),
    )
    .await;
    assert_eq!(patched.status, 204, "{}", patched.text);
    assert_eq!(
        agency_given(&app, "den-chieu-sang").await,
        Ok("Sở Công Thương".into())
    );

    // A code refused as unknown is taken once the category exists.
    assert_eq!(agency_given(&app, "cot-dien-nghieng").await, Err(400));
    let mut new = reports::demo::categories()
        .into_iter()
        .find(|c| c.service_code == "den-chieu-sang")
        .expect("the street lights");
    new.service_code = "cot-dien-nghieng".into();
    new.agency_responsible = "Công ty Điện lực Quảng Trị".into();
    app.reports
        .put_categories(&hub::Scope::system("test", ""), vec![new])
        .await
        .expect("a new category");
    assert_eq!(
        agency_given(&app, "cot-dien-nghieng").await,
        Ok("Công ty Điện lực Quảng Trị".into())
    );
    // And refused again once deleted.
    let deleted =
        send(app.admin.delete(
            app.url("/ngsi-ld/v1/entities/urn:ngsi-ld:Open311_ServiceType:cot-dien-nghieng"),
        ))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(agency_given(&app, "cot-dien-nghieng").await, Err(400));
}
