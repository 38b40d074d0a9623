//! Entered values and their four-eyes approval, task groups, and who may read what.

use serde_json::{Value, json};

use crate::common::{ADMIN, ADMIN2, App, OPERATOR, OTHER_OPERATOR, OUTSIDER, VIEWER};

/// The entered KPI most tests submit to.
const GRDP: &str = "digital-economy-grdp";

/// A submission of the GRDP share, with its evidence.
fn grdp(value: f64) -> Value {
    json!({
        "value": value,
        "periodEnd": "2025-12-31",
        "evidenceUrl": "https://thongke.quangtri.gov.vn/bao-cao-2025.pdf",
        "note": "Cục Thống kê, số liệu sơ bộ"
    })
}

/// The audit records naming a target.
pub async fn audited(app: &App, target: &str) -> Vec<Value> {
    app.hub.audit_seal().await.expect("seal");
    let (status, v) = app.get("/auth/v1/audit?limit=1000", Some(ADMIN)).await;
    assert_eq!(status, 200, "{v}");
    let records = v
        .get("records")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    records
        .into_iter()
        .filter(|r| {
            r["targets"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == target))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entered_value_counts_once_a_second_person_approves_it() {
    let app = App::start().await;
    // Computed KPIs take no entered value; a viewer enters nothing.
    let (status, _) = app
        .submit("broadband-communes", OPERATOR, &grdp(50.0))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.submit(GRDP, VIEWER, &grdp(12.0)).await;
    assert_eq!(status, 403);
    // Bad values and evidence are refused.
    for bad in [
        json!({"value": 120.0, "periodEnd": "2025-12-31", "evidenceUrl": "https://x.vn/a.pdf"}),
        json!({"value": 12.0, "periodEnd": "2025-12-31", "evidenceUrl": "file:///etc/passwd"}),
        json!({"value": 12.0, "periodEnd": "2025-12-31"}),
        json!({"value": 12.0, "periodEnd": "31/12/2025", "evidenceUrl": "https://x.vn/a.pdf"}),
    ] {
        let (status, v) = app.submit(GRDP, OPERATOR, &bad).await;
        assert_eq!(status, 400, "{bad} → {v}");
        assert!(v["detail"].is_string(), "a ProblemDetails: {v}");
    }

    // An operator of the statistics office enters the 2025 share.
    let (status, sub) = app.submit(GRDP, OPERATOR, &grdp(12.4)).await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().expect("an id").to_string();
    assert!(
        app.kpi("digital-economy-grdp")
            .await
            .get("kpiValue")
            .is_none(),
        "pending"
    );

    // Operators do not approve; approving is for an admin.
    let approve = format!("/scorecard/v1/submissions/{id}/approve");
    let (status, _) = app.post(&approve, Some(OPERATOR), &json!({})).await;
    assert_eq!(status, 403);
    let (status, done) = app.post(&approve, Some(ADMIN), &json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["decision"], "approved");
    let (status, _) = app.post(&approve, Some(ADMIN2), &json!({})).await;
    assert_eq!(status, 409, "decided once");

    let kpi = app.kpi("digital-economy-grdp").await;
    assert_eq!(kpi["kpiValue"], json!(12.4));
    assert_eq!(kpi["observedAt"], "2025-12-31T23:59:59Z");
    assert_eq!(
        kpi["evidence"]["url"],
        "https://thongke.quangtri.gov.vn/bao-cao-2025.pdf"
    );
    assert_eq!(kpi["evidence"]["submission"], json!(id));
    // 12.4 % against 30 % by 2030, no baseline: off track.
    assert_eq!(kpi["status"], "offTrack");

    // An admin does not approve their own submission.
    let (_, own) = app
        .post(
            "/scorecard/v1/kpis/dti/submissions",
            Some(ADMIN),
            &json!({
                "value": 0.55, "rank": 61, "periodEnd": "2024-12-31",
                "evidenceUrl": "https://dti.gov.vn/xep-hang-2024"
            }),
        )
        .await;
    let own_id = own["id"].as_str().expect("an id").to_string();
    let (status, v) = decide(&app, &own_id, "approve", ADMIN, json!({})).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = decide(
        &app,
        &own_id,
        "reject",
        ADMIN2,
        json!({"reason": "rank to check"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"], "rejected");
    assert!(app.kpi("dti").await.get("kpiValue").is_none());

    // Both steps are in the audit log, each under its actor.
    let kpi_id = "urn:ngsi-ld:KeyPerformanceIndicator:plan-digital-economy-grdp";
    let steps = audited(&app, &id).await;
    let roles: Vec<&str> = steps.iter().filter_map(|r| r["role"].as_str()).collect();
    assert!(
        roles.contains(&"operator") && roles.contains(&"admin"),
        "{steps:?}"
    );
    assert_ne!(steps[0]["actor"], steps[steps.len() - 1]["actor"]);
    let value = audited(&app, kpi_id).await;
    assert!(
        value
            .iter()
            .any(|r| r["role"] == "admin"
                && r["action"].as_str().is_some_and(|a| a.contains("approve"))),
        "the approved value is written by the approver: {value:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_summary_is_anonymous_and_names_no_one() {
    let app = App::start().await;
    let (_, sub) = app.submit(GRDP, OPERATOR, &grdp(12.4)).await;
    approve(&app, &sub).await;

    let (status, public) = app.get("/scorecard/v1/public", None).await;
    assert_eq!(status, 200, "{public}");
    let kpis = public["kpis"].as_array().expect("kpis");
    assert_eq!(kpis.len(), scorecard::plan::KPIS.len());
    assert_eq!(kpis[0]["slug"], "broadband-communes");
    let text = public.to_string();
    for personal in [
        "key:",
        "user:",
        "enteredBy",
        "approvedBy",
        "test-operator",
        "test-admin",
    ] {
        assert!(!text.contains(personal), "{personal} in the public summary");
    }
    let grdp = kpis
        .iter()
        .find(|k| k["slug"] == "digital-economy-grdp")
        .expect("grdp");
    assert_eq!(grdp["kpiValue"], json!(12.4));

    // The rest needs a signed-in role of the tenant.
    let (status, _) = app.get("/scorecard/v1/kpis", None).await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/scorecard/v1/kpis", Some(OUTSIDER)).await;
    assert_eq!(status, 403);
    let (status, v) = app.get("/scorecard/v1/submissions", Some(VIEWER)).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = app
        .post("/scorecard/v1/recompute", Some(VIEWER), &json!({}))
        .await;
    assert_eq!(status, 403);

    // The spreadsheet: a zip holding the four sheets.
    let response = app
        .get_response("/scorecard/v1/export.xlsx", Some(VIEWER))
        .await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("a body");
    assert!(bytes.starts_with(b"PK\x03\x04"));
    let names = String::from_utf8_lossy(&bytes);
    assert!(names.contains("xl/worksheets/sheet4.xml"));
    let (status, _) = app.get("/scorecard/v1/export.xlsx", None).await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_groups_carry_their_owners_progress_and_evidence() {
    let app = App::start().await;
    let task = "/scorecard/v1/tasks/3";
    let update = json!({
        "status": "inProgress", "progress": 40, "note": "Đã phủ cáp quang 70/78 xã",
        "evidence": ["https://stttt.quangtri.gov.vn/bao-cao-ha-tang.pdf"]
    });
    let (status, t) = app.patch(task, Some(OPERATOR), &update).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["progress"], 40);
    assert_eq!(t["progressNotes"][0]["text"], "Đã phủ cáp quang 70/78 xã");
    assert_eq!(
        t["evidence"][0]["url"],
        "https://stttt.quangtri.gov.vn/bao-cao-ha-tang.pdf"
    );
    for bad in [
        json!({"progress": 140}),
        json!({"status": "finished"}),
        json!({}),
        json!({"evidence": ["javascript:alert(1)"]}),
    ] {
        let (status, v) = app.patch(task, Some(OPERATOR), &bad).await;
        assert_eq!(status, 400, "{bad} → {v}");
    }
    let (status, _) = app
        .patch(
            "/scorecard/v1/tasks/9",
            Some(OPERATOR),
            &json!({"progress": 1}),
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_agency_edits_its_task_groups_and_enters_its_values() {
    let app = App::start().await;
    let send = |method: reqwest::Method, path: &str, key: &str, body: Value| {
        crate::common::send(app.req(method, path, Some(key)).json(&body))
    };
    let task = |number: u8, key: &str, body: Value| {
        let path = format!("/scorecard/v1/tasks/{number}");
        send(reqwest::Method::PATCH, &path, key, body)
    };
    let grdp_path = "/scorecard/v1/kpis/digital-economy-grdp/submissions";
    // An operator acting for no agency edits nothing and enters nothing.
    let (status, v) = task(3, OTHER_OPERATOR, json!({"progress": 10})).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = send(reqwest::Method::POST, grdp_path, OTHER_OPERATOR, grdp(18.0)).await;
    assert_eq!(status, 403, "{v}");
    // Memberships are an admin's to grant, and bounded.
    let actor = other_operator_actor(&app).await;
    let path = format!("/scorecard/v1/members/{actor}");
    let grant = |key: &str, body: Value| send(reqwest::Method::PUT, &path, key, body);
    let science = scorecard::plan::DEPT_SCIENCE;
    let (status, _) = grant(OPERATOR, json!({"agencies": [science]})).await;
    assert_eq!(status, 403);
    for bad in [
        json!({"agencies": [""]}),
        json!({"agencies": ["x".repeat(201)]}),
        json!({"agencies": vec!["a"; 101]}),
        json!({"agency": science}),
    ] {
        let (status, v) = grant(ADMIN, bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {v}");
    }
    let (status, v) = send(
        reqwest::Method::PUT,
        "/scorecard/v1/members/nobody",
        ADMIN,
        json!({"agencies": [science]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = grant(ADMIN, json!({"agencies": [science]})).await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = app.get("/scorecard/v1/members", Some(ADMIN)).await;
    assert_eq!(status, 200, "{v}");
    let listed = v["members"].as_array().expect("members");
    assert!(
        listed
            .iter()
            .any(|m| m["actor"] == actor.as_str() && m["agencies"] == json!([science])),
        "{v}"
    );
    assert_eq!(
        app.get("/scorecard/v1/members", Some(OPERATOR)).await.0,
        403
    );
    // Each caller reads what they act for, so that the page offers only that.
    let (status, me) = app
        .get("/scorecard/v1/members/me", Some(OTHER_OPERATOR))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"actor": actor, "all": false, "agencies": [science]})
    );
    assert_eq!(
        app.get("/scorecard/v1/members/me", Some(ADMIN)).await.1["all"],
        true
    );
    let (_, viewer) = app.get("/scorecard/v1/members/me", Some(VIEWER)).await;
    assert_eq!(viewer["agencies"], json!([]));
    assert_eq!(app.get("/scorecard/v1/members/me", None).await.0, 401);
    assert!(
        audited(&app, &actor).await.iter().any(|r| r["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("grant owner-agency membership"))),
        "the grant is audited"
    );
    // Task group 3 belongs to the Department of Science and Technology, group 1 to
    // another agency.
    let (status, t) = task(3, OTHER_OPERATOR, json!({"progress": 10})).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["progress"], 10);
    let (status, _) = task(1, OTHER_OPERATOR, json!({"progress": 10})).await;
    assert_eq!(status, 403);
    // The owner itself is changed by admins only.
    let (status, _) = task(
        3,
        OTHER_OPERATOR,
        json!({"owner": "Sở Tài chính tỉnh Quảng Trị"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, t) = task(3, ADMIN, json!({"owner": "Sở Tài chính tỉnh Quảng Trị"})).await;
    assert_eq!(status, 200, "{t}");
    let (status, _) = task(3, OTHER_OPERATOR, json!({"progress": 20})).await;
    assert_eq!(status, 403, "the group has moved to another agency");
    // The digital economy share is the statistics office's: still refused; an empty list
    // takes the membership back.
    let (status, _) = send(reqwest::Method::POST, grdp_path, OTHER_OPERATOR, grdp(18.0)).await;
    assert_eq!(status, 403);
    let (status, _) = grant(ADMIN, json!({"agencies": []})).await;
    assert_eq!(status, 204);
    let (status, v) = app.get("/scorecard/v1/members", Some(ADMIN)).await;
    assert!(
        status == 200
            && !v["members"]
                .as_array()
                .expect("members")
                .iter()
                .any(|m| m["actor"] == actor.as_str()),
        "{v}"
    );
    app.stop().await;
}

/// The actor the audit log names for `OTHER_OPERATOR`.
async fn other_operator_actor(app: &App) -> String {
    let (status, v) =
        crate::common::send(app.req(reqwest::Method::GET, "/auth/v1/me", Some(OTHER_OPERATOR)))
            .await;
    assert_eq!(status, 200, "{v}");
    v["actor"].as_str().expect("an actor").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_766_export_becomes_a_submission_with_its_group_scores() {
    let app = App::start().await;
    let export = json!({"data": {"evaluation": [
        {"departmentCode": "44", "totalScore": 71.5, "groupScores": {
            "CKMB": 17.0, "TDGQ": 15.5, "CLGQ": 9.0, "TTTT": 6.0, "MDSH": 12.0, "MDHL": 12.0}}
    ]}});
    let scores = "/scorecard/v1/egov/portal-scores";
    let body = |department: &str| {
        json!({"export": export, "department": department, "periodEnd": "2025-12-31",
               "evidenceUrl": "https://dichvucong.gov.vn/p/home/dvc-danh-gia-chat-luong.html"})
    };
    let (status, v) = app.post(scores, Some(OPERATOR), &body("45")).await;
    assert_eq!(status, 400, "{v}");
    let (status, sub) = app.post(scores, Some(OPERATOR), &body("44")).await;
    assert_eq!(status, 201, "{sub}");
    approve(&app, &sub).await;
    let kpi = app.kpi("egov-766").await;
    assert_eq!(kpi["kpiValue"], json!(71.5));
    assert_eq!(kpi["evidence"]["groupScores"]["TDGQ"], json!(15.5));
    // Group scores that do not add up are refused.
    let unbalanced = json!({"value": 90.0, "periodEnd": "2025-12-31", "evidenceUrl": "https://x.vn/a",
                            "groupScores": {"CKMB": 18.0}});
    let (status, _) = app.submit("egov-766", OPERATOR, &unbalanced).await;
    assert_eq!(status, 400);
    app.stop().await;
}

/// A PDF of one empty page.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n";

async fn upload(app: &App, key: &str, bytes: Vec<u8>, declared: &str) -> (u16, Value) {
    crate::common::send(
        app.req(
            reqwest::Method::POST,
            "/scorecard/v1/evidence?name=bao-cao.pdf",
            Some(key),
        )
        .header("content-type", declared)
        .body(bytes),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_file_is_the_evidence_of_an_entered_value() {
    let app = App::start().await;
    // Checked by content, not by the declared type; bounded in size.
    for (bytes, declared) in [
        (
            b"<html><script>alert(1)</script></html>".to_vec(),
            "application/pdf",
        ),
        (b"%PDF-1.4\n1 0 obj".to_vec(), "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), "image/png"),
        (b"GIF89a\x01\x00\x01\x00".to_vec(), "image/gif"),
    ] {
        let (status, v) = upload(&app, OPERATOR, bytes, declared).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["detail"].is_string(), "{v}");
    }
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(scorecard::evidence::MAX_BYTES + 1, b' ');
    let (status, _) = upload(&app, OPERATOR, big, "application/pdf").await;
    assert_eq!(status, 413);
    let (status, _) = upload(&app, VIEWER, PDF.to_vec(), "application/pdf").await;
    assert_eq!(status, 403);

    let (status, file) = upload(&app, OPERATOR, PDF.to_vec(), "text/plain").await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["mediaType"], "application/pdf");
    assert_eq!(file["size"], json!(PDF.len()));
    assert!(
        file["uploadedBy"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:")),
        "the uploader's key: {file}"
    );
    let href = file["href"].as_str().expect("href").to_string();
    let key = href.rsplit('/').next().expect("a key").to_string();

    // Downloaded as uploaded by readers of the tenant, not by others.
    let response = app
        .req(reqwest::Method::GET, &href, Some(VIEWER))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/pdf")
    );
    assert_eq!(
        response.headers()["x-content-type-options"].to_str().ok(),
        Some("nosniff")
    );
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), PDF);
    let (status, _) = app.get(&href, Some(OUTSIDER)).await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&href, None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .get(
            "/scorecard/v1/evidence/00000000-0000-4000-8000-000000000000",
            Some(VIEWER),
        )
        .await;
    assert_eq!(status, 404);

    // A value entered with the file alone, then approved: the file is its evidence.
    let with_file = |file: Option<&str>| {
        let mut body = json!({"value": 13.1, "periodEnd": "2025-12-31"});
        if let Some(file) = file {
            body["evidenceFile"] = json!(file);
        }
        body
    };
    let (status, v) = app
        .submit(GRDP, OPERATOR, &with_file(Some("not-a-file")))
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = app.submit(GRDP, OPERATOR, &with_file(None)).await;
    assert_eq!(status, 400, "no evidence: {v}");
    let (status, sub) = app
        .submit(GRDP, OPERATOR, &with_file(Some(key.as_str())))
        .await;
    assert_eq!(status, 201, "{sub}");
    approve(&app, &sub).await;
    let kpi = app.kpi("digital-economy-grdp").await;
    assert_eq!(kpi["kpiValue"], json!(13.1));
    assert_eq!(kpi["evidence"]["evidenceFile"]["href"], json!(href));
    assert_eq!(kpi["evidence"]["evidenceFile"]["sha256"], file["sha256"]);
    // The public summary does not link to it.
    let (_, public) = app.get("/scorecard/v1/public", None).await;
    assert!(!public.to_string().contains(&key), "{public}");

    // The upload and each download are in the audit log under their actors.
    let records = audited(&app, &format!("urn:ngsi-ld:KpiEvidenceFile:{key}")).await;
    assert!(
        records.iter().any(|r| r["role"] == "operator"),
        "the upload: {records:?}"
    );
    assert!(
        records.iter().any(|r| r["role"] == "viewer"
            && r["action"]
                .as_str()
                .is_some_and(|a| a.contains("download evidence"))),
        "the download: {records:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_766_csv_becomes_a_submission_or_is_refused_whole() {
    let app = App::start().await;
    let post = |csv: &'static str, query: &'static str| {
        crate::common::send(
            app.req(
                reqwest::Method::POST,
                &format!("/scorecard/v1/egov/portal-scores.csv?{query}"),
                Some(OPERATOR),
            )
            .header("content-type", "text/csv")
            .body(csv),
        )
    };
    let query =
        "department=44&periodEnd=2025-12-31&evidenceUrl=https%3A%2F%2Fdichvucong.gov.vn%2Fp%2Fhome";
    let bad = "departmentCode,departmentName,totalScore,CKMB,TDGQ,CLGQ,TTTT,MDSH,MDHL
01,Hà Nội,90.5,18,19,11.5,10,17,15
44,Quảng Trị,80,17,15.5,9,6,12,12
45,Huế,70,17,25,9,6,1,12
";
    let (status, v) = post(bad, query).await;
    assert_eq!(status, 400, "{v}");
    let detail = v["detail"].as_str().expect("detail");
    assert!(
        detail.contains("line 3:") && detail.contains("line 4:"),
        "{detail}"
    );
    let (_, subs) = app.get("/scorecard/v1/submissions", Some(ADMIN)).await;
    assert_eq!(subs["submissions"], json!([]), "nothing stored");

    let good = "departmentCode,departmentName,totalScore,CKMB,TDGQ,CLGQ,TTTT,MDSH,MDHL
01,Hà Nội,90.5,18,19,11.5,10,17,15
44,Quảng Trị,71.5,17,15.5,9,6,12,12
";
    let (status, v) = post(good, "department=44&evidenceUrl=https%3A%2F%2Fx.vn").await;
    assert_eq!(status, 400, "no period: {v}");
    let (status, sub) = post(good, query).await;
    assert_eq!(status, 201, "{sub}");
    approve(&app, &sub).await;
    let kpi = app.kpi("egov-766").await;
    assert_eq!(kpi["kpiValue"], json!(71.5));
    assert_eq!(kpi["evidence"]["groupScores"]["MDSH"], json!(12.0));
    app.stop().await;
}

/// Approves a created submission as the first admin.
async fn approve(app: &App, submission: &Value) {
    let id = submission["id"].as_str().expect("an id");
    let (status, v) = decide(app, id, "approve", ADMIN, json!({})).await;
    assert_eq!(status, 200, "{v}");
}

/// Approves or rejects (`action`) a submission with `key`.
async fn decide(app: &App, id: &str, action: &str, key: &str, body: Value) -> (u16, Value) {
    let path = format!("/scorecard/v1/submissions/{id}/{action}");
    app.post(&path, Some(key), &body).await
}
