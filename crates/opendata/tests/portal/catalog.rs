//! The DCAT-AP 3 catalogue: every page, in Turtle and in JSON-LD, conforms to the
//! DCAT-AP 3.0.1 SHACL shapes (pySHACL, zero violations); paging and modified_since.

use crate::common::{Server, run_python};

#[tokio::test]
async fn the_catalogue_conforms_to_the_dcat_ap_3_shapes() {
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shapes = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/shapes.ttl");
    let (_, list) = s.action("package_list", "").await;
    let total = list["result"].as_array().unwrap().len();
    let pages = total.div_ceil(10);
    assert!(pages >= 2, "{total} datasets");
    let mut ttl = Vec::new();
    let mut jsonld = Vec::new();
    let mut datasets = 0;
    for page in 1..=pages {
        let (status, body) = s.get_text(&format!("/catalog.ttl?page={page}")).await;
        assert_eq!(status, 200);
        datasets += body.matches("\n    a dcat:Dataset").count();
        if page < pages {
            assert!(body.contains("hydra:nextPage"), "page {page}");
        }
        let path = dir.path().join(format!("catalog-{page}.ttl"));
        std::fs::write(&path, body).unwrap();
        ttl.push(path.display().to_string());
        let (status, body) = s.get_text(&format!("/catalog.jsonld?page={page}")).await;
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(doc["@context"].is_object(), "the @context is embedded");
        let path = dir.path().join(format!("catalog-{page}.jsonld"));
        std::fs::write(&path, body).unwrap();
        jsonld.push(path.display().to_string());
    }
    assert_eq!(datasets, total, "every dataset on one page");
    let (status, body) = s.get_text("/dataset/muc-nuoc-song.ttl").await;
    assert_eq!(status, 200);
    let path = dir.path().join("dataset.ttl");
    std::fs::write(&path, body).unwrap();
    ttl.push(path.display().to_string());

    let mut args = vec![shapes, "turtle"];
    args.extend(ttl.iter().map(String::as_str));
    let triples: usize = run_python("shacl.py", &args).await.trim().parse().unwrap();
    assert!(triples > 500, "{triples} triples");
    let mut args = vec![shapes, "json-ld"];
    args.extend(jsonld.iter().map(String::as_str));
    run_python("shacl.py", &args).await;

    // RDF/XML parses too, and past the last page there are no datasets.
    let (status, rdf) = s.get_text("/catalog.rdf").await;
    assert_eq!(status, 200);
    assert!(rdf.contains("<rdf:RDF"));
    let (_, empty) = s
        .get_text(&format!("/catalog.ttl?page={}", pages + 1))
        .await;
    assert!(!empty.contains("a dcat:Dataset"));
    let (_, later) = s.get_text("/catalog.ttl?modified_since=2999-01-01").await;
    assert!(!later.contains("a dcat:Dataset"));
    assert_eq!(s.get_text("/catalog.ttl?page=0").await.0, 400);
    assert_eq!(s.get_text("/catalog.ttl?modified_since=soon").await.0, 400);
}
