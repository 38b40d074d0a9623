//! The CKAN Action API as CKAN clients see it: ckanapi (from PyPI, in the tests'
//! virtual environment) against the server, and the envelope and errors by hand.

use crate::common::{ADMIN_KEY, Server, VIEWER_KEY, run_python, texts};

#[tokio::test]
async fn ckanapi_reads_searches_pages_facets_and_writes() {
    let s = Server::start().await;
    let out = run_python("ckan_client.py", &[&s.base, ADMIN_KEY, VIEWER_KEY]).await;
    assert!(out.starts_with("ok "), "{out}");
}

#[tokio::test]
async fn envelope_errors_and_both_prefixes() {
    let s = Server::start().await;
    let (status, body) = s.action("package_show", "id=muc-nuoc-song").await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert!(body["help"].as_str().unwrap().contains("package_show"));
    assert_eq!(body["result"]["name"], "muc-nuoc-song");
    // The second prefix, as ckanapi uses it.
    let r = s
        .anonymous
        .get(s.url("/api/action/package_list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // facet.field as a JSON list in the query string.
    let (status, body) = s
        .action(
            "package_search",
            "facet.field=%5B%22groups%22%5D&rows=2&start=1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["results"].as_array().unwrap().len(), 2);
    assert!(body["result"]["facets"]["groups"]["envi"].as_u64().unwrap() >= 3);
    for (action, query, status, kind) in [
        ("package_show", "id=khong-co", 404, "Not Found Error"),
        ("package_show", "", 409, "Validation Error"),
        ("package_search", "rows=abc", 409, "Validation Error"),
        (
            "package_search",
            "facet.field=organization",
            409,
            "Validation Error",
        ),
        ("package_search", "fq=secret:1", 409, "Validation Error"),
        (
            "package_search",
            "sort=drop%20table",
            409,
            "Validation Error",
        ),
        (
            "package_delete",
            "id=muc-nuoc-song",
            403,
            "Authorization Error",
        ),
        ("no_such_action", "", 404, "Not Found Error"),
    ] {
        let (got, body) = s.action(action, query).await;
        assert_eq!(got, status, "{action}?{query}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["__type"], kind, "{action}?{query}");
    }
    // A body that is not JSON.
    let r = s
        .anonymous
        .post(s.url("/api/3/action/package_show"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The dataset survived the refused delete.
    assert_eq!(s.action("package_show", "id=muc-nuoc-song").await.0, 200);
}

/// The portal keeps the catalogue between reads; a dataset changed or deleted through
/// the NGSI-LD API (not the portal) shows on the next read all the same.
#[tokio::test]
async fn the_catalogue_follows_writes_made_through_the_hub() {
    let s = Server::start().await;
    fn keywords(body: &serde_json::Value) -> Vec<&str> {
        texts(&body["result"]["tags"], "name")
    }
    let (status, before) = s.action("package_show", "id=muc-nuoc-song").await;
    assert_eq!(status, 200, "{before}");
    assert!(!keywords(&before).contains(&"thu-nghiem-bo-dem"));
    let (_, search) = s.action("package_search", "q=thu-nghiem-bo-dem").await;
    assert_eq!(search["result"]["count"], 0, "{search}");

    let id = "urn:ngsi-ld:Dataset:muc-nuoc-song";
    let r = s
        .admin
        .patch(s.url(&format!("/ngsi-ld/v1/entities/{id}/attrs")))
        .json(&serde_json::json!({
            "keywords": {"type": "Property", "value": ["thu-nghiem-bo-dem"]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let (_, after) = s.action("package_show", "id=muc-nuoc-song").await;
    assert_eq!(keywords(&after), ["thu-nghiem-bo-dem"]);
    let (_, search) = s.action("package_search", "q=thu-nghiem-bo-dem").await;
    assert_eq!(search["result"]["count"], 1, "{search}");

    let r = s
        .admin
        .delete(s.url(&format!("/ngsi-ld/v1/entities/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = s.action("package_show", "id=muc-nuoc-song").await;
    assert_eq!(status, 404);
    let (_, list) = s.action("package_list", "").await;
    let names: Vec<String> = serde_json::from_value(list["result"].clone()).unwrap();
    assert!(!names.contains(&"muc-nuoc-song".to_string()), "{names:?}");
}
