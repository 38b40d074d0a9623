//! Tenant isolation, as a property: for random entities in two tenants A and B (the
//! same id may be in both), a key granted only A never sees an id, a value, a type,
//! an attribute name or a count of B in any answer of the server (entity lists and
//! their counts, retrieval, types, attributes, history, batch operations,
//! subscriptions, the web app's `/ioc/api/*`, its export and its live stream), gets
//! 403 for anything asked in B, and changes nothing there. A key of A limited to one
//! entity type sees, counts and writes only entities of that type alone (one also of
//! another type is out of its reach). Runs on SQLite, or
//! on PostgreSQL with `DOTHI_TEST_STORE=postgres`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::server::{Server, client, ensure_key};
use hub::auth::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// The types of A's entities; B has them and one of its own.
const ALPHA: &str = "Alpha";
const BETA: &str = "Beta";
const B_ONLY_TYPE: &str = "BinhTriThienOnly";
/// An attribute only B's entities have.
const B_ONLY_ATTR: &str = "secretOfB";
const TENANT: &str = "NGSILD-Tenant";
const COUNT: &str = "NGSILD-Results-Count";

/// One generated entity: its name (ids are `urn:ngsi-ld:{type}:{name}`, so the same
/// id may be drawn in both tenants), its type, a level.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    kind: usize,
    level: i32,
}

fn specs(kinds: usize) -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        ("[a-c][0-2]", 0..kinds, -50i32..50).prop_map(|(name, kind, level)| Spec {
            name,
            kind,
            level,
        }),
        1..7,
    )
}

/// The entities of one tenant by id; an entity of several types has an id naming
/// them all (`urn:ngsi-ld:Alpha-Beta:a0`).
fn entities(specs: &[Spec], types: &[&[&str]], marker: Option<&str>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        let t = types[s.kind];
        let id = format!("urn:ngsi-ld:{}:{}", t.join("-"), s.name);
        let mut e = json!({"id": id, "type": t, "level": {"type": "Property", "value": s.level}});
        if let Some(m) = marker {
            e[B_ONLY_ATTR] = json!(format!("{m}-{i}"));
        }
        out.insert(id, e);
    }
    out
}

/// The types of an entity as written.
fn types_of(e: &Value) -> Vec<&str> {
    e["type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// A response read whole.
struct Got {
    status: u16,
    count: Option<u64>,
    text: String,
    body: Value,
}

struct Caller<'a> {
    s: &'a Server,
    http: reqwest::Client,
}

impl Caller<'_> {
    async fn send(&self, rb: reqwest::RequestBuilder) -> Got {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let count = r
            .headers()
            .get(COUNT)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Got {
            status,
            count,
            text,
            body,
        }
    }

    async fn get(&self, tenant: &str, path: &str) -> Got {
        self.send(
            self.http
                .get(self.s.url(path))
                .header(TENANT, tenant)
                .header("accept", "application/json"),
        )
        .await
    }

    async fn write(&self, method: &str, tenant: &str, path: &str, body: Option<Value>) -> Got {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), self.s.url(path))
            .header(TENANT, tenant);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }
}

fn ids_of(body: &Value) -> BTreeSet<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("an array: {body}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Fails the case when `text` holds any of `forbidden`.
fn clean(what: &str, got: &Got, forbidden: &[String]) -> Result<(), TestCaseError> {
    clean_but(what, got, forbidden, "")
}

/// The same, but an error may repeat the id `asked` (what the caller asked for).
fn clean_but(
    what: &str,
    got: &Got,
    forbidden: &[String],
    asked: &str,
) -> Result<(), TestCaseError> {
    let text = if asked.is_empty() || got.status < 400 {
        got.text.clone()
    } else {
        got.text.replace(asked, "(asked)")
    };
    for f in forbidden {
        prop_assert!(
            !text.contains(f.as_str()),
            "{} shows {:?} of the other side: {}",
            what,
            f,
            got.text
        );
    }
    Ok(())
}

fn status(what: &str, got: &Got, want: u16) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.status, want, "{}: {}", what, got.text);
    Ok(())
}

/// Fails the case unless `got`, the answer to `what`, is a 200 listing exactly the
/// entities `ids`, with none of `hidden` in it.
fn lists_exactly(
    what: &str,
    got: &Got,
    ids: &BTreeSet<String>,
    hidden: &[String],
) -> Result<(), TestCaseError> {
    status(what, got, 200)?;
    clean(what, got, hidden)?;
    prop_assert_eq!(&ids_of(&got.body), ids, "{}", what);
    Ok(())
}

const SELECT_ALL: &str = "type=Alpha,Beta,BinhTriThienOnly";

/// The checks of one case.
async fn case(s: &Server, n: usize, a: Vec<Spec>, b: Vec<Spec>) -> Result<(), TestCaseError> {
    let (ta, tb) = (format!("iso-a-{n}"), format!("iso-b-{n}"));
    let a = entities(&a, &[&[ALPHA], &[BETA], &[ALPHA, BETA]], None);
    let marker = format!("MB{n}x");
    let b = entities(
        &b,
        &[&[ALPHA], &[BETA], &[B_ONLY_TYPE], &[ALPHA, B_ONLY_TYPE]],
        Some(&marker),
    );
    let admin = Caller {
        s,
        http: s.admin.clone(),
    };
    for (tenant, es) in [(&ta, &a), (&tb, &b)] {
        let body = Value::Array(es.values().cloned().collect());
        let r = admin
            .write(
                "POST",
                tenant,
                "/ngsi-ld/v1/entityOperations/upsert",
                Some(body),
            )
            .await;
        prop_assert!(r.status == 201 || r.status == 204, "{}", r.text);
    }
    // B's subscription names one of its entities.
    let first_b = b.keys().next().unwrap().clone();
    let r = admin
        .write(
            "POST",
            &tb,
            "/ngsi-ld/v1/subscriptions",
            Some(json!({
                "type": "Subscription",
                "subscriptionName": format!("{marker}-subscription"),
                "entities": [{"id": first_b, "type": types_of(&b[&first_b])[0]}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}
            })),
        )
        .await;
    status("B's subscription", &r, 201)?;
    let b_sub = admin
        .get(&tb, "/ngsi-ld/v1/subscriptions")
        .await
        .body
        .as_array()
        .unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let a_ids: BTreeSet<String> = a.keys().cloned().collect();
    let b_only: Vec<String> = b
        .keys()
        .filter(|id| !a.contains_key(*id))
        .cloned()
        .collect();
    let mut forbidden: Vec<String> = b_only.clone();
    forbidden.extend([
        marker.clone(),
        B_ONLY_ATTR.to_string(),
        B_ONLY_TYPE.to_string(),
        b_sub.clone(),
    ]);

    // ---- a key of A only
    let secret = format!("isolation-key-of-a-{n}-0123456789abcdefghijklmnop");
    ensure_key(
        &s.state,
        &secret,
        &format!("a-{n}"),
        Role::Operator,
        &[&ta],
        None,
    )
    .await;
    let k = Caller {
        s,
        http: client(Some(&secret)),
    };

    // Entity lists and their counts.
    for path in [
        format!("/ngsi-ld/v1/entities?{SELECT_ALL}&count=true&limit=1000"),
        format!("/ngsi-ld/v1/entities?{SELECT_ALL}&count=true&limit=1000&options=keyValues"),
        format!("/ngsi-ld/v1/entities?idPattern=.*&{SELECT_ALL}&count=true&limit=1000"),
        format!(
            "/ngsi-ld/v1/entities?id={}&{SELECT_ALL}&count=true",
            b.keys().cloned().collect::<Vec<_>>().join(",")
        ),
    ] {
        let r = k.get(&ta, &path).await;
        status(&path, &r, 200)?;
        clean(&path, &r, &forbidden)?;
        let ids = ids_of(&r.body);
        prop_assert!(ids.is_subset(&a_ids), "{}: {:?}", path, ids);
        prop_assert_eq!(r.count, Some(ids.len() as u64), "{}", path);
        if !path.contains("id=urn") {
            prop_assert_eq!(&ids, &a_ids, "{}", path);
        }
    }
    let r = k
        .get(
            &ta,
            &format!("/ngsi-ld/v1/entities?type={B_ONLY_TYPE}&count=true"),
        )
        .await;
    status("B's type in A", &r, 200)?;
    prop_assert_eq!(r.count, Some(0));
    // Retrieval by id: not there in A, refused in B.
    for id in b.keys() {
        let path = format!("/ngsi-ld/v1/entities/{id}");
        let r = k.get(&tb, &path).await;
        status(&format!("{path} in B"), &r, 403)?;
        clean(&path, &r, &forbidden)?;
        let r = k
            .get(&tb, &format!("/ngsi-ld/v1/temporal/entities/{id}"))
            .await;
        status(&format!("history of {id} in B"), &r, 403)?;
        if !a.contains_key(id) {
            let r = k.get(&ta, &path).await;
            status(&format!("{path} in A"), &r, 404)?;
            clean_but(&path, &r, &forbidden, id)?;
            let r = k
                .get(&ta, &format!("/ngsi-ld/v1/temporal/entities/{id}"))
                .await;
            status(&format!("history of {id} in A"), &r, 404)?;
        }
    }
    // Every read route of B is refused.
    for path in [
        format!("/ngsi-ld/v1/entities?{SELECT_ALL}"),
        "/ngsi-ld/v1/types".to_string(),
        "/ngsi-ld/v1/attributes".to_string(),
        format!("/ngsi-ld/v1/temporal/entities?{SELECT_ALL}"),
        "/ngsi-ld/v1/subscriptions".to_string(),
        format!("/ngsi-ld/v1/subscriptions/{b_sub}"),
        "/ioc/api/summary".to_string(),
        "/ioc/api/markers".to_string(),
        "/ioc/api/communes".to_string(),
        "/ioc/api/entities".to_string(),
        "/ioc/api/export?format=csv".to_string(),
        "/ioc/api/stream".to_string(),
    ] {
        let r = k.get(&tb, &path).await;
        status(&format!("{path} in B"), &r, 403)?;
        clean(&path, &r, &forbidden)?;
    }
    // Types and attributes.
    let a_types: BTreeSet<&str> = a.values().flat_map(types_of).collect();
    let r = k.get(&ta, "/ngsi-ld/v1/types").await;
    status("types", &r, 200)?;
    clean("types", &r, &forbidden)?;
    let listed: BTreeSet<&str> = r.body["typeList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    prop_assert_eq!(&listed, &a_types);
    for path in [
        "/ngsi-ld/v1/types?details=true",
        "/ngsi-ld/v1/attributes",
        "/ngsi-ld/v1/attributes?details=true",
    ] {
        let r = k.get(&ta, path).await;
        status(path, &r, 200)?;
        clean(path, &r, &forbidden)?;
    }
    for t in [ALPHA, BETA, B_ONLY_TYPE] {
        let r = k.get(&ta, &format!("/ngsi-ld/v1/types/{t}")).await;
        let count = a.values().filter(|e| types_of(e).contains(&t)).count() as u64;
        if count == 0 {
            status(&format!("type {t}"), &r, 404)?;
        } else {
            status(&format!("type {t}"), &r, 200)?;
            prop_assert_eq!(&r.body["entityCount"], &json!(count), "{}", r.text);
        }
        if t != B_ONLY_TYPE {
            // (A 404 repeats the name asked for.)
            clean("a type", &r, &forbidden)?;
        }
    }
    let r = k.get(&ta, "/ngsi-ld/v1/attributes/level").await;
    status("attribute level", &r, 200)?;
    clean("attribute level", &r, &forbidden)?;
    prop_assert_eq!(&r.body["attributeCount"], &json!(a.len()), "{}", r.text);
    let r = k
        .get(&ta, &format!("/ngsi-ld/v1/attributes/{B_ONLY_ATTR}"))
        .await;
    status("B's attribute in A", &r, 404)?;
    // History.
    for path in [
        format!("/ngsi-ld/v1/temporal/entities?{SELECT_ALL}&count=true"),
        format!("/ngsi-ld/v1/temporal/entities?{SELECT_ALL}&count=true&options=temporalValues"),
    ] {
        let r = k.get(&ta, &path).await;
        lists_exactly(&path, &r, &a_ids, &forbidden)?;
        prop_assert_eq!(r.count, Some(a.len() as u64), "{}", path);
    }
    let every_type = json!([{"type": ALPHA}, {"type": BETA}, {"type": B_ONLY_TYPE}]);
    for (path, body) in [
        (
            "/ngsi-ld/v1/entityOperations/query",
            json!({"type": "Query", "entities": every_type}),
        ),
        (
            "/ngsi-ld/v1/temporalOperations/query",
            json!({"type": "Query", "entities": every_type,
                   "temporalQ": {"timerel": "before", "timeAt": "2100-01-01T00:00:00Z"}}),
        ),
    ] {
        let r = k.write("POST", &ta, path, Some(body)).await;
        lists_exactly(path, &r, &a_ids, &forbidden)?;
    }
    // Subscriptions: its own tenant's only.
    let r = k.get(&ta, "/ngsi-ld/v1/subscriptions").await;
    status("subscriptions of A", &r, 200)?;
    clean("subscriptions of A", &r, &forbidden)?;
    let r = k
        .get(&ta, &format!("/ngsi-ld/v1/subscriptions/{b_sub}"))
        .await;
    status("B's subscription in A", &r, 404)?;
    // The web app.
    for path in [
        "/ioc/api/summary",
        "/ioc/api/markers",
        "/ioc/api/communes",
        "/ioc/api/entities?limit=200",
        "/ioc/api/export?format=csv",
        "/ioc/api/export?format=geojson",
    ] {
        let r = k.get(&ta, path).await;
        status(path, &r, 200)?;
        clean(path, &r, &forbidden)?;
    }
    let r = k.get(&ta, "/ioc/api/entities?limit=200").await;
    prop_assert_eq!(&r.body["total"], &json!(a.len()), "{}", r.text);
    let items: BTreeSet<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    prop_assert_eq!(&items, &a_ids);

    // Writes in B, whatever their form, are refused and change nothing.
    let some_b = b.keys().cloned().collect::<Vec<_>>();
    let tries: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            Some(json!({"id": "urn:ngsi-ld:Alpha:zz", "type": ALPHA})),
        ),
        (
            "PATCH",
            format!("/ngsi-ld/v1/entities/{}/attrs", some_b[0]),
            Some(json!({"level": 999})),
        ),
        (
            "DELETE",
            format!("/ngsi-ld/v1/entities/{}", some_b[0]),
            None,
        ),
        (
            "POST",
            "/ngsi-ld/v1/entityOperations/upsert".into(),
            Some(json!(
                some_b
                    .iter()
                    .map(|id| json!({"id": id, "type": ALPHA, "level": 999}))
                    .collect::<Vec<_>>()
            )),
        ),
        (
            "POST",
            "/ngsi-ld/v1/entityOperations/delete".into(),
            Some(json!(some_b)),
        ),
        (
            "POST",
            "/ngsi-ld/v1/temporal/entities".into(),
            Some(json!({"id": some_b[0], "type": ALPHA,
                "level": [{"type": "Property", "value": 999, "observedAt": "2020-01-01T00:00:00Z"}]})),
        ),
        ("DELETE", format!("/ngsi-ld/v1/subscriptions/{b_sub}"), None),
    ];
    for (method, path, body) in tries {
        let r = k.write(method, &tb, &path, body).await;
        status(&format!("{method} {path} in B"), &r, 403)?;
    }
    // Batch items of A naming B's ids find nothing of B.
    let r = k
        .write(
            "POST",
            &ta,
            "/ngsi-ld/v1/entityOperations/update",
            Some(json!(
                b_only
                    .iter()
                    .map(|id| json!({"id": id, "level": 999}))
                    .collect::<Vec<_>>()
            )),
        )
        .await;
    if !b_only.is_empty() {
        status("batch update in A of B's ids", &r, 207)?;
        prop_assert_eq!(r.body["errors"].as_array().unwrap().len(), b_only.len());
    }
    let stored = admin
        .get(
            &tb,
            &format!("/ngsi-ld/v1/entities?{SELECT_ALL}&limit=1000&options=keyValues"),
        )
        .await;
    let stored: BTreeMap<String, Value> = stored
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e["level"].clone()))
        .collect();
    let expected: BTreeMap<String, Value> = b
        .iter()
        .map(|(id, e)| (id.clone(), e["level"]["value"].clone()))
        .collect();
    prop_assert_eq!(stored, expected, "B is as it was");

    // The live stream of A shows A's changes and none of B's.
    let mut stream = k
        .http
        .get(s.url("/ioc/api/stream"))
        .header(TENANT, &ta)
        .send()
        .await
        .unwrap();
    prop_assert_eq!(stream.status().as_u16(), 200);
    // The stream is open once its first event arrives.
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "hello").await;
    let late = format!("{marker}-late");
    let b_new = format!("urn:ngsi-ld:{B_ONLY_TYPE}:zz");
    let r = admin
        .write(
            "POST",
            &tb,
            "/ngsi-ld/v1/entityOperations/upsert",
            Some(json!([
                {"id": first_b, "type": types_of(&b[&first_b]), "level": 1, B_ONLY_ATTR: late},
                {"id": b_new, "type": B_ONLY_TYPE, "level": 2, B_ONLY_ATTR: late},
            ])),
        )
        .await;
    prop_assert!(r.status < 300, "{}", r.text);
    let sentinel = format!("urn:ngsi-ld:{ALPHA}:zz");
    let r = admin
        .write(
            "POST",
            &ta,
            "/ngsi-ld/v1/entities",
            Some(json!({"id": sentinel, "type": ALPHA, "level": 3})),
        )
        .await;
    status("A's sentinel", &r, 201)?;
    prop_assert!(
        read_until(&mut stream, &mut seen, &sentinel).await,
        "A's stream shows A's write: {}",
        seen
    );
    let mut late_forbidden = forbidden.clone();
    late_forbidden.extend([late, b_new]);
    clean(
        "A's live stream",
        &Got {
            status: 200,
            count: None,
            text: seen,
            body: Value::Null,
        },
        &late_forbidden,
    )?;
    drop(stream);
    let a_ids: BTreeSet<String> = a_ids.into_iter().chain([sentinel.clone()]).collect();

    // ---- a key of A limited to Alpha
    let limited = format!("isolation-alpha-key-of-a-{n}-0123456789abcdefghijk");
    ensure_key(
        &s.state,
        &limited,
        &format!("alpha-{n}"),
        Role::Operator,
        &[&ta],
        Some(&[ALPHA]),
    )
    .await;
    let l = Caller {
        s,
        http: client(Some(&limited)),
    };
    let alpha: BTreeSet<String> = a_ids
        .iter()
        .filter(|id| id.starts_with("urn:ngsi-ld:Alpha:"))
        .cloned()
        .collect();
    let beta: Vec<String> = a_ids.difference(&alpha).cloned().collect();
    // A subscription of A that watches a Beta entity.
    if let Some(beta_id) = beta.first() {
        let r = admin
            .write(
                "POST",
                &ta,
                "/ngsi-ld/v1/subscriptions",
                Some(json!({
                    "type": "Subscription",
                    "entities": [{"id": beta_id, "type": BETA}],
                    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}
                })),
            )
            .await;
        status("A's subscription to a Beta entity", &r, 201)?;
    }
    let mut hidden = forbidden.clone();
    hidden.extend(beta.iter().cloned());
    hidden.push(BETA.to_string());
    for path in [
        format!("/ngsi-ld/v1/entities?{SELECT_ALL}&count=true&limit=1000"),
        format!("/ngsi-ld/v1/temporal/entities?{SELECT_ALL}&count=true"),
    ] {
        let r = l.get(&ta, &path).await;
        lists_exactly(&path, &r, &alpha, &hidden)?;
        prop_assert_eq!(r.count, Some(alpha.len() as u64), "{}", path);
    }
    let r = l
        .get(&ta, &format!("/ngsi-ld/v1/entities?type={BETA}&count=true"))
        .await;
    prop_assert_eq!(r.count, Some(0), "{}", r.text);
    let r = l
        .write(
            "POST",
            &ta,
            "/ngsi-ld/v1/entityOperations/query",
            Some(json!({"type": "Query", "entities": every_type})),
        )
        .await;
    status("query", &r, 200)?;
    prop_assert_eq!(&ids_of(&r.body), &alpha);
    for id in &beta {
        for path in [
            format!("/ngsi-ld/v1/entities/{id}"),
            format!("/ngsi-ld/v1/temporal/entities/{id}"),
        ] {
            let r = l.get(&ta, &path).await;
            status(&path, &r, 404)?;
            clean_but(&path, &r, &hidden, id)?;
        }
    }
    for path in [
        "/ngsi-ld/v1/types",
        "/ngsi-ld/v1/types?details=true",
        "/ngsi-ld/v1/attributes",
        "/ngsi-ld/v1/attributes?details=true",
        "/ngsi-ld/v1/attributes/level",
        "/ngsi-ld/v1/types/Alpha",
        "/ngsi-ld/v1/subscriptions",
    ] {
        let r = l.get(&ta, path).await;
        clean(path, &r, &hidden)?;
    }
    // Subscriptions may name any type: they are not for a type grant.
    for path in [
        "/ngsi-ld/v1/subscriptions".to_string(),
        format!("/ngsi-ld/v1/subscriptions/{b_sub}"),
    ] {
        let r = l.get(&ta, &path).await;
        status(&path, &r, 403)?;
    }
    let r = l.get(&ta, "/ngsi-ld/v1/types/Alpha").await;
    status("type Alpha", &r, 200)?;
    prop_assert_eq!(&r.body["entityCount"], &json!(alpha.len()));
    let r = l.get(&ta, "/ngsi-ld/v1/types/Beta").await;
    status("type Beta", &r, 404)?;
    let r = l.get(&ta, "/ngsi-ld/v1/attributes/level").await;
    status("attribute level", &r, 200)?;
    prop_assert_eq!(&r.body["attributeCount"], &json!(alpha.len()), "{}", r.text);
    let r = l.get(&ta, "/ioc/api/summary").await;
    status("the web app with a type grant", &r, 403)?;
    // It cannot write Beta entities in any way.
    if let Some(beta_id) = beta.first() {
        for (method, path, body, want) in [
            (
                "PATCH",
                format!("/ngsi-ld/v1/entities/{beta_id}/attrs"),
                Some(json!({"level": 999})),
                404,
            ),
            (
                "DELETE",
                format!("/ngsi-ld/v1/entities/{beta_id}"),
                None,
                404,
            ),
            (
                "PUT",
                format!("/ngsi-ld/v1/entities/{beta_id}"),
                Some(json!({"id": beta_id, "type": BETA, "level": 999})),
                404,
            ),
        ] {
            let r = l.write(method, &ta, &path, body).await;
            status(&format!("{method} {path}"), &r, want)?;
        }
        let r = l
            .write(
                "POST",
                &ta,
                "/ngsi-ld/v1/entityOperations/delete",
                Some(json!(beta)),
            )
            .await;
        status("batch delete of Beta", &r, 207)?;
    }
    let r = l
        .write(
            "POST",
            &ta,
            "/ngsi-ld/v1/entities",
            Some(json!({"id": "urn:ngsi-ld:Beta:new", "type": BETA, "level": 1})),
        )
        .await;
    status("creating a Beta entity", &r, 403)?;
    if let Some(alpha_id) = alpha.iter().next() {
        let r = l
            .write(
                "PUT",
                &ta,
                &format!("/ngsi-ld/v1/entities/{alpha_id}"),
                Some(json!({"id": alpha_id, "type": BETA, "level": 999})),
            )
            .await;
        status("turning an Alpha entity into a Beta one", &r, 403)?;
        let r = l
            .write(
                "POST",
                &ta,
                "/ngsi-ld/v1/entityOperations/upsert",
                Some(json!([{"id": alpha_id, "type": BETA, "level": 999}])),
            )
            .await;
        prop_assert!(
            r.status >= 400 || !r.body["errors"].as_array().unwrap().is_empty(),
            "upserting an Alpha entity as Beta: {}",
            r.text
        );
    }
    let stored = admin
        .get(
            &ta,
            &format!("/ngsi-ld/v1/entities?{SELECT_ALL}&limit=1000"),
        )
        .await;
    prop_assert_eq!(&ids_of(&stored.body), &a_ids, "A's entities are all there");
    for e in stored.body.as_array().unwrap() {
        prop_assert!(e["level"]["value"] != 999, "nothing was changed: {}", e);
        prop_assert!(
            !e["id"].as_str().unwrap().starts_with("urn:ngsi-ld:Alpha:") || e["type"] == ALPHA
        );
    }
    // Its own type it writes.
    let r = l
        .write(
            "POST",
            &ta,
            "/ngsi-ld/v1/entities",
            Some(json!({"id": "urn:ngsi-ld:Alpha:new", "type": ALPHA, "level": 1})),
        )
        .await;
    status("creating an Alpha entity", &r, 201)?;
    Ok(())
}

/// Reads the event stream until `needle` shows (true) or 5 s pass (false).
async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return false,
        }
    }
    true
}

#[test]
fn a_tenant_never_sees_another_and_a_type_grant_sees_only_its_types() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start());
    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 16,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(specs(3), specs(4)), |(a, b)| {
            let n = cases.fetch_add(1, Ordering::Relaxed);
            runtime.block_on(case(&server, n, a, b))
        })
        .unwrap();
}
