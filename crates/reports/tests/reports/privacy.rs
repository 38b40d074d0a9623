//! Personal data: a crawl of every public route (with and without a key) finds no value
//! a reporter gave of themselves; staff see it only with the right, each read audited;
//! the reporter erases it through the tracking code; it is erased after its retention.

use hub::auth::Role;
use serde_json::json;

use crate::common::{ADMIN_KEY, App, DONG_HA, key, send};

const FIRST: &str = "Nguyễn Khải7731";
const LAST: &str = "Vănduy7731";
const EMAIL: &str = "khai.7731@example.vn";
const PHONE: &str = "0912 377 731";
const DEVICE: &str = "device-7731-abcdef";
const ACCOUNT: &str = "account-7731";
/// What must never appear (the phone also without its spaces).
const PERSONAL: &[&str] = &[
    FIRST,
    LAST,
    EMAIL,
    PHONE,
    "0912377731",
    DEVICE,
    ACCOUNT,
    "7731",
    "requestor_name",
];

fn clean(what: &str, text: &str) {
    for p in PERSONAL {
        assert!(!text.contains(p), "{what} shows {p:?}: {text}");
    }
}

#[tokio::test]
async fn no_public_route_shows_personal_data() {
    let app = App::with_categories().await;
    let r = app
        .report_at_dong_ha(
            &app.anonymous,
            "/open311/v2/requests.xml",
            "thoat-nuoc",
            &[
                ("jurisdiction_id", "quangtri"),
                ("description", "Cống tắc trước nhà"),
                ("first_name", FIRST),
                ("last_name", LAST),
                ("email", EMAIL),
                ("phone", PHONE),
                ("device_id", DEVICE),
                ("account_id", ACCOUNT),
                ("attribute[last_name]", LAST),
                ("attribute[email]", EMAIL),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    clean("the answer to the post", &r.text);
    let id = r.xml_first("service_request_id").expect("an id");
    let token = r.xml_first("token").expect("a token");
    // A commenter's update, with their own contact.
    let u = app
        .form(
            &app.anonymous,
            "/open311/v2/servicerequestupdates.json",
            &[
                ("service_request_id", &id),
                ("status", "OPEN"),
                ("description", "Vẫn còn tắc"),
                ("email", EMAIL),
                ("first_name", FIRST),
                ("last_name", LAST),
                ("phone", PHONE),
            ],
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text);

    // Every public GET route, in both formats, anonymous, with the key as api_key and
    // with the key as a bearer header.
    let mut paths = Vec::new();
    for f in ["xml", "json"] {
        for p in [
            format!("/open311/v2/discovery.{f}"),
            format!("/open311/v2/services.{f}"),
            format!("/open311/v2/services/thoat-nuoc.{f}"),
            format!("/open311/v2/requests.{f}"),
            format!("/open311/v2/requests.{f}?service_request_id={id}"),
            format!("/open311/v2/requests/{id}.{f}"),
            format!("/open311/v2/tokens/{token}.{f}"),
            format!("/open311/v2/servicerequestupdates.{f}"),
        ] {
            paths.push(p.clone());
            let sep = if p.contains('?') { '&' } else { '?' };
            paths.push(format!("{p}{sep}api_key={ADMIN_KEY}"));
        }
    }
    paths.push("/reports/v1/public/stats?by=commune".into());
    // The public page's list of reports.
    paths.push("/reports/v1/public/requests".into());
    paths.push("/reports/v1/public/requests?days=365&limit=500".into());
    // The citizen page's categories.
    paths.push("/reports/v1/categories".into());
    paths.push(format!(
        "/reports/v1/nearby?service_code=thoat-nuoc&lat={}&long={}",
        DONG_HA.0, DONG_HA.1
    ));
    let mut seen_report = 0;
    for p in &paths {
        for client in [&app.anonymous, &app.admin] {
            let a = app.get(client, p).await;
            assert_eq!(a.status, 200, "{p}: {}", a.text);
            clean(p, &a.text);
            seen_report += usize::from(a.text.contains(&id));
        }
    }
    assert!(
        seen_report >= 20,
        "the crawl saw the report {seen_report} times"
    );
    // Nor does the entity, through the NGSI-LD API, nor the staff inbox.
    for p in [
        format!("/ngsi-ld/v1/entities/urn:ngsi-ld:Open311_ServiceRequest:{id}"),
        "/ngsi-ld/v1/entities?type=Open311_ServiceRequest".to_string(),
        "/reports/v1/requests".to_string(),
        format!("/reports/v1/requests/{id}"),
    ] {
        let a = app.get(&app.admin, &p).await;
        assert_eq!(a.status, 200, "{p}: {}", a.text);
        clean(&p, &a.text);
    }
    // The tracking page shows the reporter their own contact, and only them.
    let t = app
        .get(&app.anonymous, &format!("/reports/v1/track/{token}"))
        .await;
    assert_eq!(t.status, 200);
    assert!(t.text.contains(EMAIL), "{}", t.text);
    assert_eq!(t.json()["yourContact"]["contact"]["last_name"], LAST);
}

/// The public page's list names its fields one by one: a report there has those and no
/// other (not the description, where a reporter may write about themselves), and its
/// bounds are checked.
#[tokio::test]
async fn the_public_list_has_only_the_pages_fields() {
    let app = App::with_categories().await;
    let r = app
        .report_at_dong_ha(
            &app.anonymous,
            "/open311/v2/requests.json",
            "thoat-nuoc",
            &[
                ("jurisdiction_id", "quangtri"),
                ("description", "Cống tắc, nhà tôi số 7731"),
                ("email", EMAIL),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let list = app.get(&app.anonymous, "/reports/v1/public/requests").await;
    assert_eq!(list.status, 200, "{}", list.text);
    clean("the public list", &list.text);
    let body = list.json();
    let reports = body["requests"].as_array().expect("a list");
    assert_eq!(reports.len(), 1, "{}", list.text);
    let one = reports[0].as_object().expect("an object");
    let mut keys: Vec<&str> = one.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agency_responsible",
            "commune_name",
            "due",
            "lat",
            "long",
            "overdue",
            "rating",
            "requested_datetime",
            "result",
            "service_code",
            "service_name",
            "service_request_id",
            "stage",
            "status",
            "thumbnail",
        ]
    );
    assert_eq!(one["stage"], "received");
    assert_eq!(one["status"], "open");
    assert!(
        one["agency_responsible"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    for bad in ["days=0", "days=366", "limit=0", "limit=501", "days=x"] {
        let a = app
            .get(
                &app.anonymous,
                &format!("/reports/v1/public/requests?{bad}"),
            )
            .await;
        assert_eq!(a.status, 400, "{bad}: {}", a.text);
    }
}

#[tokio::test]
async fn only_staff_with_the_right_see_the_reporter_and_every_read_is_audited() {
    let app = App::with_categories().await;
    const OPERATOR: &str = "reports-test-operator-key-0123456789abcdefgh";
    let operator_actor = key(&app.state, OPERATOR, "ops", Role::Operator).await;
    let operator = crate::common::client(Some(OPERATOR));
    let r = app
        .report_at_dong_ha(
            &app.anonymous,
            "/open311/v2/requests.json",
            "duong-hu-hong",
            &[("email", EMAIL), ("phone", PHONE), ("first_name", FIRST)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.first_id();
    let token = r.json()[0]["token"].as_str().expect("a token").to_string();
    let path = format!("/reports/v1/requests/{id}/reporter");

    assert_eq!(app.get(&app.anonymous, &path).await.status, 401);
    let refused = app.get(&operator, &path).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    clean("a refusal", &refused.text);
    // An admin grants the right for another agency: still refused; for this one: seen.
    let grant = |agencies: serde_json::Value| {
        let app = &app;
        let actor = operator_actor.clone();
        async move {
            send(
                app.admin
                    .put(app.url(&format!("/reports/v1/reporter-access/{actor}")))
                    .json(&json!({"agencies": agencies})),
            )
            .await
        }
    };
    assert_eq!(grant(json!(["Sở Y tế"])).await.status, 204);
    assert_eq!(app.get(&operator, &path).await.status, 403);
    assert_eq!(grant(json!(["Sở Xây dựng"])).await.status, 204);
    let seen = app.get(&operator, &path).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert_eq!(seen.json()["reporter"]["contact"]["email"], EMAIL);
    assert!(seen.json()["reporter"]["consent_version"].is_string());
    // An operator may not grant rights.
    let self_grant = send(
        operator
            .put(app.url(&format!("/reports/v1/reporter-access/{operator_actor}")))
            .json(&json!({"agencies": ["*"]})),
    )
    .await;
    assert_eq!(self_grant.status, 403);

    let caller = hub::auth::Caller::system("test");
    let audit = app
        .state
        .hub
        .audit_list(
            &caller,
            store::AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("the audit log");
    let reads: Vec<store::AuditRecord> = audit
        .iter()
        .filter_map(|a| a.record())
        .filter(|a| a.action.starts_with("read reporter contact"))
        .collect();
    assert_eq!(reads.len(), 3, "two refused, one allowed: {reads:?}");
    assert_eq!(reads.iter().filter(|a| a.outcome == "ok").count(), 1);
    assert!(reads.iter().all(|a| a.actor == operator_actor));

    // The reporter erases their contact through the tracking code; the report stays.
    let erased = send(
        app.anonymous
            .delete(app.url(&format!("/reports/v1/track/{token}/contact"))),
    )
    .await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert_eq!(erased.json()["erased"], true);
    let after = app.get(&operator, &path).await.json();
    assert_eq!(after["reporter"], serde_json::Value::Null);
    let report = app.report(&id).await;
    assert!(!report.has_contact);
    let t = app.public_json(&format!("/reports/v1/track/{token}")).await;
    assert_eq!(t["yourContact"], serde_json::Value::Null);
    let _ = ADMIN_KEY;
}

#[tokio::test]
async fn contacts_are_erased_after_their_retention() {
    let app = App::start_with(reports::ReportsConfig {
        contact_retention: chrono::TimeDelta::days(30),
        ..Default::default()
    })
    .await;
    app.categories().await;
    app.clock.set("2026-06-01T02:00:00Z");
    let r = app
        .report_at_dong_ha(
            &app.anonymous,
            "/open311/v2/requests.json",
            "duong-hu-hong",
            &[("email", EMAIL)],
        )
        .await;
    let id = r.first_id();
    let scope = hub::Scope::system("test", "");
    app.reports
        .act(
            &scope,
            &id,
            &reports::workflow::Action::Reject {
                reason: "Trùng lặp".into(),
            },
        )
        .await
        .expect("rejected");
    app.clock.set("2026-06-30T02:00:00Z");
    assert_eq!(app.reports.sweep().await.expect("sweep").1, 0);
    app.clock.set("2026-07-02T02:00:00Z");
    assert_eq!(app.reports.sweep().await.expect("sweep").1, 1);
    let caller = hub::auth::Caller::system("test");
    assert!(
        app.reports
            .reporter(&caller, &id)
            .await
            .expect("read")
            .is_none()
    );
}
