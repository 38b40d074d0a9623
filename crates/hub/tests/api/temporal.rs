//! /temporal/entities and /temporalOperations/query: history recorded by every change,
//! provided by clients, read in each representation, aggregated, paged and edited.

use serde_json::{Value, json};

use crate::common::*;

const GAUGE: &str = "urn:ngsi-ld:WaterObserved:thach-han-1";

fn hour(h: u32) -> String {
    format!("2026-10-{:02}T{:02}:00:00Z", 17 + h / 24, h % 24)
}

/// A gauge whose level was read every hour for `hours` hours: (value, time) pairs.
fn readings(hours: u32) -> Vec<(f64, String)> {
    (0..hours)
        .map(|h| (((h * 37) % 61) as f64 / 10.0, hour(h)))
        .collect()
}

/// `n` readings of the values 0, 1, 2… at the times `time` gives each.
fn counting(n: u32, time: impl Fn(u32) -> String) -> Vec<(f64, String)> {
    (0..n).map(|i| (i as f64, time(i))).collect()
}

async fn provide(app: &App, id: &str, readings: &[(f64, String)]) -> u16 {
    let instances: Vec<Value> = readings
        .iter()
        .map(|(v, t)| json!({"type": "Property", "value": v, "observedAt": t, "unitCode": "MTR"}))
        .collect();
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": id, "type": "WaterObserved", "waterLevel": instances}),
    ))
    .await;
    assert!(r.status == 201 || r.status == 204, "{}", r.text);
    r.status
}

/// The query of an aggregation by `methods` over periods of `period`, with `more`.
fn aggregation<'a>(
    methods: &'a str,
    period: &'a str,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut query = vec![
        ("options", "aggregatedValues"),
        ("aggrMethods", methods),
        ("aggrPeriodDuration", period),
    ];
    query.extend_from_slice(more);
    query
}

/// `timerel=between` from `start` to `end`.
fn between<'a>(start: &'a str, end: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("timerel", "between"),
        ("timeAt", start),
        ("endTimeAt", end),
    ]
}

/// `timerel=after` `time`.
fn after(time: &str) -> [(&str, &str); 2] {
    [("timerel", "after"), ("timeAt", time)]
}

fn values_of(body: &Value, attr: &str) -> Vec<f64> {
    body[attr]
        .as_array()
        .unwrap_or_else(|| panic!("{attr} is not an array: {body}"))
        .iter()
        .map(|i| i["value"].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_and_read_back() {
    let app = App::start().await;
    app.create(json!({"id": GAUGE, "type": "WaterObserved",
        "waterLevel": {"type": "Property", "value": 2.1, "observedAt": hour(0), "unitCode": "MTR"},
        "river": "Thạch Hãn"}))
        .await;
    for (h, v) in [(1, 2.8), (2, 3.4), (3, 4.6)] {
        let r = send(app.patch(
            &format!("/entities/{GAUGE}/attrs"),
            &json!({"waterLevel": {"type": "Property", "value": v, "observedAt": hour(h)}}),
        ))
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    // A batch upsert is recorded too.
    let r = send(app.post(
        "/entityOperations/upsert?options=update",
        &json!([{"id": GAUGE, "type": "WaterObserved",
                 "waterLevel": {"type": "Property", "value": 5.2, "observedAt": hour(4)}}]),
    ))
    .await;
    assert!(r.status == 204 || r.status == 201, "{}", r.text);

    let r = app
        .get_ok(&format!("/temporal/entities/{GAUGE}"), &[])
        .await;
    assert_eq!(r.body["id"], GAUGE);
    assert_eq!(r.body["type"], "WaterObserved");
    assert_eq!(
        values_of(&r.body, "waterLevel"),
        vec![2.1, 2.8, 3.4, 4.6, 5.2]
    );
    // The river never changed: one instance, from the creation.
    assert_eq!(r.body["river"].as_array().unwrap().len(), 1);
    let levels = r.body["waterLevel"].as_array().unwrap();
    assert_eq!(levels[0]["observedAt"], hour(0));
    assert_eq!(levels[0]["unitCode"], "MTR");
    let mut ids: Vec<&str> = levels
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "distinct instanceIds");

    // timerel, lastN and attrs.
    let r = app
        .get_ok(
            &format!("/temporal/entities/{GAUGE}"),
            &[
                ("timerel", "between"),
                ("timeAt", hour(1).as_str()),
                ("endTimeAt", hour(3).as_str()),
                ("attrs", "waterLevel"),
            ],
        )
        .await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![2.8, 3.4]);
    assert!(r.body.get("river").is_none());
    let r = app
        .get_with(
            &format!("/temporal/entities/{GAUGE}"),
            &[("timerel", "after"), ("timeAt", hour(2).as_str())],
        )
        .await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![4.6, 5.2]);
    // A time with an offset is the same instant in UTC (hour(2) is 02:00Z, 09:00 in
    // Vietnam); answers are always in UTC.
    let r = app
        .get_with(
            &format!("/temporal/entities/{GAUGE}"),
            &[
                ("timerel", "after"),
                ("timeAt", "2026-10-17T09:00:00+07:00"),
            ],
        )
        .await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![4.6, 5.2]);
    assert_eq!(r.body["waterLevel"][0]["observedAt"], hour(3));
    let r = app
        .get_with(
            &format!("/temporal/entities/{GAUGE}"),
            &[("lastN", "2"), ("attrs", "waterLevel")],
        )
        .await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![4.6, 5.2]);

    // The simplified temporal representation: [value, time] pairs.
    let r = app
        .get_ok(
            &format!("/temporal/entities/{GAUGE}"),
            &[("options", "temporalValues"), ("attrs", "waterLevel")],
        )
        .await;
    assert_eq!(r.body["waterLevel"]["type"], "Property");
    let pairs = r.body["waterLevel"]["values"].as_array().unwrap();
    assert_eq!(pairs.len(), 5);
    assert_eq!(pairs[1], json!([2.8, hour(1)]));

    // The history goes with the entity.
    app.delete_ok(&format!("/temporal/entities/{GAUGE}")).await;
    let r = send(app.get(&format!("/temporal/entities/{GAUGE}"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.get(&format!("/entities/{GAUGE}"))).await;
    assert_eq!(r.status, 404);
}

/// The sample standard deviation, computed here independently of the hub.
fn stddev(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregations_agree_with_the_instances() {
    let app = App::start().await;
    let data = readings(48);
    assert_eq!(provide(&app, GAUGE, &data).await, 201);
    let methods = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq";
    let days = between("2026-10-17T00:00:00Z", "2026-10-19T00:00:00Z");
    let r = app
        .get_ok(
            &format!("/temporal/entities/{GAUGE}"),
            &aggregation(methods, "P1D", &days),
        )
        .await;
    let attr = &r.body["waterLevel"];
    assert_eq!(attr["type"], "Property");
    for (day, start, end) in [
        (0, "2026-10-17T00:00:00Z", "2026-10-18T00:00:00Z"),
        (1, "2026-10-18T00:00:00Z", "2026-10-19T00:00:00Z"),
    ] {
        let xs: Vec<f64> = data[day * 24..day * 24 + 24]
            .iter()
            .map(|(v, _)| *v)
            .collect();
        let mut distinct = xs.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let close = |method: &str, expected: f64| {
            let got = &attr[method][day];
            assert_eq!(got[1], start, "{method} period start");
            assert_eq!(got[2], end, "{method} period end");
            let v = got[0].as_f64().unwrap();
            assert!(
                (v - expected).abs() < 1e-9,
                "{method} day {day}: {v} != {expected}"
            );
        };
        close("totalCount", 24.0);
        close("distinctCount", distinct.len() as f64);
        close("sum", xs.iter().sum());
        close("avg", xs.iter().sum::<f64>() / 24.0);
        close("min", xs.iter().copied().fold(f64::INFINITY, f64::min));
        close("max", xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        close("stddev", stddev(&xs));
        close("sumsq", xs.iter().map(|x| x * x).sum());
    }

    // Periods of a month follow the calendar (UTC): 31 and 30 days.
    let month_data = vec![
        (1.0, "2026-10-31T23:00:00Z".to_string()),
        (2.0, "2026-11-01T00:00:00Z".to_string()),
        (4.0, "2026-11-30T23:59:59Z".to_string()),
        (8.0, "2026-12-01T00:00:00Z".to_string()),
    ];
    let other = "urn:ngsi-ld:WaterObserved:months";
    provide(&app, other, &month_data).await;
    let months = between("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let r = app
        .get_ok(
            &format!("/temporal/entities/{other}"),
            &aggregation("sum", "P1M", &months),
        )
        .await;
    assert_eq!(
        r.body["waterLevel"]["sum"],
        json!([
            [1, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"],
            [6, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"],
            [8, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"]
        ])
    );

    // A temporal query over several entities, GET and POST.
    let mut query = vec![("type", "WaterObserved"), ("count", "true")];
    query.extend(between("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"));
    let r = app
        .get_ok("/temporal/entities", &aggregation("max", "P1Y", &query))
        .await;
    assert_eq!(r.header("NGSILD-Results-Count"), Some("2"));
    let maxima: Vec<f64> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["waterLevel"]["max"][0][0].as_f64().unwrap())
        .collect();
    let data_max = data
        .iter()
        .map(|(v, _)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(maxima.len(), 2);
    assert!(
        maxima.contains(&data_max) && maxima.contains(&8.0),
        "{maxima:?}"
    );
    let r = send(app.post(
        "/temporalOperations/query",
        &json!({"type": "Query", "entities": [{"type": "WaterObserved"}],
                "attrs": ["waterLevel"],
                "temporalQ": {"timerel": "before", "timeAt": hour(2)}}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == GAUGE)
        .unwrap();
    assert_eq!(values_of(first, "waterLevel"), vec![data[0].0, data[1].0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provided_history_is_added_edited_and_deleted() {
    let app = App::start().await;
    assert_eq!(provide(&app, GAUGE, &readings(3)).await, 201);
    // The current state took the latest instance.
    let current = app.entity(GAUGE).await;
    assert_eq!(current["waterLevel"]["observedAt"], hour(2));
    // Providing more to an existing entity: 204.
    assert_eq!(provide(&app, GAUGE, &readings(5)[3..]).await, 204);
    let r = send(app.post(
        &format!("/temporal/entities/{GAUGE}/attrs"),
        &json!({"waterLevel": [{"type": "Property", "value": 9.9, "observedAt": hour(10)}]}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(app.post(
        "/temporal/entities/urn:ngsi-ld:X:none/attrs",
        &json!({"waterLevel": [{"type": "Property", "value": 1, "observedAt": hour(1)}]}),
    ))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let body = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    let levels = body["waterLevel"].as_array().unwrap().clone();
    assert_eq!(levels.len(), 6);
    assert_eq!(levels[5]["value"], 9.9);
    assert_eq!(app.entity(GAUGE).await["waterLevel"]["value"], 9.9);

    // Replace one instance, then delete it.
    let instance = levels[1]["instanceId"].as_str().unwrap().to_string();
    let path = format!("/temporal/entities/{GAUGE}/attrs/waterLevel/{instance}");
    let r = send(app.patch(
        &path,
        &json!({"waterLevel": {"type": "Property", "value": 0.5, "observedAt": hour(1)}}),
    ))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let body = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    assert_eq!(body["waterLevel"][1]["value"], 0.5);
    assert_eq!(body["waterLevel"][1]["instanceId"], instance.as_str());
    app.delete_ok(&path).await;
    let r = send(app.delete(&path)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = send(app.delete(&format!(
        "/temporal/entities/{GAUGE}/attrs/waterLevel/urn:ngsi-ld:other:1"
    )))
    .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // An instanceId that is not a URI is a bad request, whether deleting or patching.
    let bad = format!("/temporal/entities/{GAUGE}/attrs/waterLevel/invalidId");
    assert_problem(&send(app.delete(&bad)).await, 400, "BadRequestData");
    let r = send(app.patch(
        &bad,
        &json!({"waterLevel": {"type": "Property", "value": 0.5, "observedAt": hour(1)}}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let body = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    assert_eq!(body["waterLevel"].as_array().unwrap().len(), 5);

    // Delete the attribute: its history and its current value.
    app.delete_ok(&format!("/temporal/entities/{GAUGE}/attrs/waterLevel"))
        .await;
    let body = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    assert!(body.get("waterLevel").is_none(), "{body}");
    assert!(app.entity(GAUGE).await.get("waterLevel").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_attributes_are_read_by_their_deletion_time() {
    let app = App::start().await;
    app.create(json!({"id": GAUGE, "type": "WaterObserved",
        "waterLevel": [
            {"type": "Property", "value": 2.1, "observedAt": hour(0)},
            {"type": "Property", "value": 2.4, "observedAt": hour(0), "datasetId": "urn:ngsi-ld:Dataset:backup"}
        ],
        "refRiver": {"type": "Relationship", "object": "urn:ngsi-ld:River:thach-han"},
        "label": {"type": "LanguageProperty", "languageMap": {"vi": "Trạm Thạch Hãn"}}}))
        .await;
    let path = format!("/temporal/entities/{GAUGE}");
    // Nothing deleted yet: no attribute has a deletion time.
    let r = app.get_ok(&path, &[("timeproperty", "deletedAt")]).await;
    assert_eq!(r.body.as_object().unwrap().len(), 2, "{}", r.body);
    for (attr, query) in [
        ("refRiver", ""),
        ("waterLevel", "?datasetId=urn:ngsi-ld:Dataset:backup"),
        ("label", ""),
    ] {
        app.delete_ok(&format!("/entities/{GAUGE}/attrs/{attr}{query}"))
            .await;
    }
    let r = app.get_ok(&path, &[("timeproperty", "deletedAt")]).await;
    let river = r.body["refRiver"].as_array().unwrap();
    assert_eq!(river.len(), 1);
    assert_eq!(river[0]["type"], "Relationship");
    assert_eq!(river[0]["object"], "urn:ngsi-ld:null");
    let deleted_at = river[0]["deletedAt"].as_str().unwrap().to_string();
    assert!(
        river[0]["instanceId"]
            .as_str()
            .unwrap()
            .starts_with("urn:ngsi-ld:Instance:")
    );
    assert_eq!(
        r.body["label"][0]["languageMap"],
        json!({"@none": "urn:ngsi-ld:null"})
    );
    // Only the backup's instance was deleted.
    let level = r.body["waterLevel"].as_array().unwrap();
    assert_eq!(level.len(), 1);
    assert_eq!(level[0]["datasetId"], "urn:ngsi-ld:Dataset:backup");
    assert_eq!(level[0]["value"], "urn:ngsi-ld:null");
    // The simplified representation pairs the null with the deletion time.
    let r = app
        .get_ok(
            &path,
            &[("timeproperty", "deletedAt"), ("options", "temporalValues")],
        )
        .await;
    assert_eq!(
        r.body["refRiver"],
        json!({"type": "Relationship", "objects": [["urn:ngsi-ld:null", deleted_at]]})
    );
    // A time restriction applies to the deletion time.
    let r = app
        .get_ok(
            &path,
            &[
                ("timeproperty", "deletedAt"),
                ("timerel", "before"),
                ("timeAt", "2026-01-01T00:00:00Z"),
            ],
        )
        .await;
    assert!(r.body.get("refRiver").is_none(), "{}", r.body);
    // By observation time, the history shows the instances as they were, no deletion.
    let r = app.get_ok(&path, &[]).await;
    assert_eq!(
        r.body["refRiver"][0]["object"],
        "urn:ngsi-ld:River:thach-han"
    );
    assert!(r.body["refRiver"][0].get("deletedAt").is_none());
    assert_eq!(r.body["waterLevel"].as_array().unwrap().len(), 2);
    // Deleting the attribute's history through the temporal API takes its deletions.
    app.delete_ok(&format!("{path}/attrs/refRiver")).await;
    let r = app.get_ok(&path, &[("timeproperty", "deletedAt")]).await;
    assert!(r.body.get("refRiver").is_none(), "{}", r.body);
    assert!(r.body.get("label").is_some(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_filtered_by_dataset_id() {
    let app = App::start().await;
    let backup = "urn:ngsi-ld:Dataset:backup";
    let instances: Vec<Value> = (0..4)
        .map(|h| {
            let mut i = json!({"type": "Property", "value": h, "observedAt": hour(h)});
            if h % 2 == 1 {
                i["datasetId"] = json!(backup);
            }
            i
        })
        .collect();
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": GAUGE, "type": "WaterObserved", "waterLevel": instances,
                "river": [{"type": "Property", "value": "Thạch Hãn", "observedAt": hour(0)}]}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/temporal/entities/{GAUGE}");
    let r = app.get_ok(&path, &[("datasetId", backup)]).await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![1.0, 3.0]);
    assert!(r.body.get("river").is_none(), "{}", r.body);
    let r = app.get_ok(&path, &[("datasetId", "@none")]).await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![0.0, 2.0]);
    assert_eq!(r.body["river"].as_array().unwrap().len(), 1);
    let both = format!("@none,{backup}");
    let r = app.get_ok(&path, &[("datasetId", both.as_str())]).await;
    assert_eq!(values_of(&r.body, "waterLevel"), vec![0.0, 1.0, 2.0, 3.0]);
    // The simplified representation of one datasetId is one object.
    let r = app
        .get_ok(
            &path,
            &[("datasetId", backup), ("options", "temporalValues")],
        )
        .await;
    assert_eq!(r.body["waterLevel"]["datasetId"], backup);
    // Aggregation counts the datasetIds asked for.
    let r = app
        .get_ok(
            &path,
            &[
                ("datasetId", "@none"),
                ("options", "aggregatedValues"),
                ("aggrMethods", "sum"),
            ],
        )
        .await;
    assert!(
        r.body["waterLevel"].get("datasetId").is_none(),
        "{}",
        r.body
    );
    assert_eq!(r.body["waterLevel"]["sum"][0][0], 2);
    // A query with a time restriction leaves out the entities with nothing left.
    let query = [
        ("type", "WaterObserved"),
        ("attrs", "river"),
        ("datasetId", backup),
        ("timerel", "after"),
        ("timeAt", "2026-01-01T00:00:00Z"),
    ];
    let r = app.get_ok("/temporal/entities", &query).await;
    assert_eq!(r.body, json!([]));
    // A datasetId is a URI or @none.
    let r = app.get_with(&path, &[("datasetId", "backup")]).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_histories_come_in_pages() {
    let app = App::start().await;
    // 1,200 readings a minute apart: more than one answer holds (1,000).
    let data = counting(1200, |m| {
        format!("2026-10-17T{:02}:{:02}:00Z", m / 60, m % 60)
    });
    provide(&app, GAUGE, &data).await;
    let r = send(app.get(&format!("/temporal/entities/{GAUGE}"))).await;
    assert_page(&r, "date-time 2026-10-17T00:00:00Z-2026-10-17T16:39:00Z/*");
    let got = values_of(&r.body, "waterLevel");
    assert_eq!(got.len(), 1000);
    assert_eq!(got[0], 0.0);
    assert_eq!(got[999], 999.0);
    // The next page starts after the range's end.
    let r = app
        .get_ok(
            &format!("/temporal/entities/{GAUGE}"),
            &after("2026-10-17T16:39:00Z"),
        )
        .await;
    let rest = values_of(&r.body, "waterLevel");
    assert_eq!(rest.len(), 200);
    assert_eq!(rest[0], 1000.0);
    // lastN larger than a page: the latest page, and 206.
    let r = app
        .get_with(&format!("/temporal/entities/{GAUGE}"), &[("lastN", "1100")])
        .await;
    // Backwards: from the latest instance down to the earliest returned, of lastN.
    assert_page(
        &r,
        "date-time 2026-10-17T19:59:00Z-2026-10-17T03:20:00Z/1100",
    );
    let got = values_of(&r.body, "waterLevel");
    assert_eq!((got.len(), got[0], got[999]), (1000, 200.0, 1199.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_answer_cuts_every_attribute_to_one_range() {
    let app = App::start().await;
    let minute = |m: u32| format!("2026-10-17T{:02}:{:02}:00Z", m / 60, m % 60);
    let levels: Vec<Value> = (0..1200)
        .map(|m| json!({"type": "Property", "value": m, "observedAt": minute(m)}))
        .collect();
    let flows: Vec<Value> = [600, 1080, 1200]
        .iter()
        .map(|m| json!({"type": "Property", "value": m, "observedAt": minute(*m)}))
        .collect();
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": GAUGE, "type": "WaterObserved", "waterLevel": levels, "flow": flows,
                "alarm": [{"type": "Property", "value": true, "observedAt": minute(1100)}]}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/temporal/entities/{GAUGE}");
    // Forwards from timeAt: waterLevel fills the page up to 16:39; the other
    // attributes stop there too, and one with nothing before is an empty array.
    let r = app.get_with(&path, &after("2026-10-16T00:00:00Z")).await;
    assert_page(&r, "date-time 2026-10-16T00:00:00Z-2026-10-17T16:39:00Z/*");
    assert_eq!(values_of(&r.body, "waterLevel").len(), 1000);
    assert_eq!(values_of(&r.body, "flow"), vec![600.0]);
    assert_eq!(r.body["alarm"], json!([]));
    let mut query = after("2026-10-16T00:00:00Z").to_vec();
    query.push(("options", "temporalValues"));
    let r = app.get_with(&path, &query).await;
    assert_eq!(r.status, 206, "{}", r.text);
    assert_eq!(r.body["alarm"], json!({"type": "Property", "values": []}));
    assert_eq!(r.body["flow"]["values"].as_array().unwrap().len(), 1);
    // The next page, from the range's end, has the rest of each attribute.
    let r = app.get_ok(&path, &after("2026-10-17T16:39:00Z")).await;
    assert_eq!(values_of(&r.body, "waterLevel").len(), 200);
    assert_eq!(values_of(&r.body, "flow"), vec![1080.0, 1200.0]);
    assert_eq!(r.body["alarm"].as_array().unwrap().len(), 1);
    // Backwards from endTimeAt: down to the earliest waterLevel returned (03:20).
    let mut query = vec![("lastN", "1100")];
    query.extend(between("2026-10-17T00:00:00Z", "2026-10-18T00:00:00Z"));
    let r = app.get_with(&path, &query).await;
    assert_page(
        &r,
        "date-time 2026-10-18T00:00:00Z-2026-10-17T03:20:00Z/1100",
    );
    assert_eq!(values_of(&r.body, "flow"), vec![600.0, 1080.0, 1200.0]);
    // A whole answer is 200, without Content-Range.
    let r = app.get_ok(&path, &[("attrs", "flow,alarm")]).await;
    assert!(r.header("content-range").is_none());
    // A query cuts every entity to the same range.
    let other = "urn:ngsi-ld:WaterObserved:thach-han-2";
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": other, "type": "WaterObserved", "flow": [
            {"type": "Property", "value": 1, "observedAt": minute(500)},
            {"type": "Property", "value": 2, "observedAt": minute(1000)}]}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut query = vec![("type", "WaterObserved")];
    query.extend(after("2026-10-16T00:00:00Z"));
    let r = app.get_with("/temporal/entities", &query).await;
    assert_page(&r, "date-time 2026-10-16T00:00:00Z-2026-10-17T16:39:00Z/*");
    let second = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == other)
        .unwrap();
    assert_eq!(values_of(second, "flow"), vec![1.0]);
}

/// A hub whose temporal answers hold at most `n` instances of each attribute.
async fn paged_by(n: usize) -> App {
    let mut config = hub::HubConfig::default();
    config.http.temporal_page_instances = n;
    App::start_with(config).await
}

/// A partial answer (206) of the range `range` (`Content-Range`).
fn assert_page(r: &Resp, range: &str) {
    assert_eq!(r.status, 206, "{}", r.text);
    assert_eq!(r.header("content-range"), Some(range));
}

/// The times of an attribute's instances in a temporal answer.
fn times_of(body: &Value, attr: &str) -> Vec<String> {
    body[attr]
        .as_array()
        .unwrap_or_else(|| panic!("{attr} is not an array: {body}"))
        .iter()
        .map(|i| i["observedAt"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_size_is_configured() {
    // Two attributes of 20 instances a minute apart, the second two minutes later.
    let minute = |m: u32| format!("2020-01-01T01:{m:02}:00Z");
    let series = |first: u32| -> Vec<Value> {
        (first..first + 20)
            .map(|m| json!({"type": "Property", "value": m, "observedAt": minute(m)}))
            .collect()
    };
    let vehicle = json!({"id": "urn:ngsi-ld:Vehicle:bus-1", "type": "Vehicle",
        "speed": series(1), "fuelLevel": series(3)});
    let path = "/temporal/entities/urn:ngsi-ld:Vehicle:bus-1";

    // By default (1,000 instances) the history is one whole answer, lastN=20 too.
    let app = App::start().await;
    assert_eq!(
        send(app.post("/temporal/entities", &vehicle)).await.status,
        201
    );
    for query in [vec![], vec![("lastN", "20")]] {
        let r = app.get_ok(path, &query).await;
        assert!(r.header("content-range").is_none());
        assert_eq!(times_of(&r.body, "speed").len(), 20);
        assert_eq!(times_of(&r.body, "fuelLevel").len(), 20);
    }
    app.stop().await;

    // With pages of 10: forwards up to the 10th speed, fuelLevel cut there too.
    let app = paged_by(10).await;
    assert_eq!(
        send(app.post("/temporal/entities", &vehicle)).await.status,
        201
    );
    let r = send(app.get(path)).await;
    assert_page(&r, "date-time 2020-01-01T01:01:00Z-2020-01-01T01:10:00Z/*");
    assert_eq!(times_of(&r.body, "speed").len(), 10);
    assert_eq!(
        times_of(&r.body, "fuelLevel"),
        (3..=10).map(minute).collect::<Vec<_>>()
    );
    // lastN larger than the page: backwards from the latest, lastN as the size.
    let r = app.get_with(path, &[("lastN", "20")]).await;
    assert_page(&r, "date-time 2020-01-01T01:22:00Z-2020-01-01T01:13:00Z/20");
    assert_eq!(times_of(&r.body, "fuelLevel").len(), 10);
    assert_eq!(
        times_of(&r.body, "speed"),
        (13..=20).map(minute).collect::<Vec<_>>()
    );
    // Following the pages forwards from each range's end reads every instance once.
    let mut seen = Vec::new();
    let mut from = "2019-01-01T00:00:00Z".to_string();
    loop {
        let r = app
            .get_with(path, &[("timerel", "after"), ("timeAt", from.as_str())])
            .await;
        // An attribute with nothing left in the range is not in the answer.
        for attr in ["speed", "fuelLevel"] {
            if r.body.get(attr).is_some() {
                seen.extend(times_of(&r.body, attr).into_iter().map(|t| (attr, t)));
            }
        }
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 206, "{}", r.text);
        // date-time <start>-<end>/*, each time 20 characters.
        let range = r.header("content-range").unwrap().to_string();
        from = range.rsplit_once('/').unwrap().0[31..].to_string();
        assert!(seen.len() < 80, "the pages do not advance: {range}");
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (40, 40));
    // A query is paged alike.
    let r = app
        .get_with(
            "/temporal/entities",
            &[
                ("type", "Vehicle"),
                ("timerel", "before"),
                ("timeAt", "2021-01-01T00:00:00Z"),
            ],
        )
        .await;
    assert_page(&r, "date-time 2020-01-01T01:01:00Z-2020-01-01T01:10:00Z/*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_ends_between_two_times() {
    // Three datasets read at the same two times: six instances of one attribute.
    let app = paged_by(4).await;
    let at = ["2026-10-17T00:00:00Z", "2026-10-17T01:00:00Z"];
    let instances: Vec<Value> = at
        .iter()
        .flat_map(|t| {
            ["a", "b", "c"].map(|d| {
                json!({"type": "Property", "value": 1, "observedAt": t,
                       "datasetId": format!("urn:ngsi-ld:Dataset:{d}")})
            })
        })
        .collect();
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": GAUGE, "type": "WaterObserved", "waterLevel": instances}),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/temporal/entities/{GAUGE}");
    // Four would split the second time: the page stops after the first.
    let r = send(app.get(&path)).await;
    assert_page(&r, "date-time 2026-10-17T00:00:00Z-2026-10-17T00:00:00Z/*");
    assert_eq!(times_of(&r.body, "waterLevel"), vec![at[0]; 3]);
    let r = app
        .get_ok(&path, &[("timerel", "after"), ("timeAt", at[0])])
        .await;
    assert_eq!(times_of(&r.body, "waterLevel"), vec![at[1]; 3]);
    // Backwards alike.
    let r = app.get_with(&path, &[("lastN", "6")]).await;
    assert_page(&r, "date-time 2026-10-17T01:00:00Z-2026-10-17T01:00:00Z/6");
    assert_eq!(times_of(&r.body, "waterLevel"), vec![at[1]; 3]);
    let r = app
        .get_ok(
            &path,
            &[("lastN", "6"), ("timerel", "before"), ("timeAt", at[1])],
        )
        .await;
    assert_eq!(times_of(&r.body, "waterLevel"), vec![at[0]; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_temporal_requests_are_refused() {
    let app = App::start().await;
    provide(&app, GAUGE, &readings(2)).await;
    let path = format!("/temporal/entities/{GAUGE}");
    for query in [
        vec![("timerel", "during"), ("timeAt", "2026-10-17T00:00:00Z")],
        vec![("timerel", "before")],
        vec![("timerel", "before"), ("timeAt", "yesterday")],
        between("2026-10-18T00:00:00Z", "2026-10-17T00:00:00Z").to_vec(),
        vec![("lastN", "0")],
        vec![("lastN", "-3")],
        vec![("options", "aggregatedValues")],
        vec![("options", "aggregatedValues"), ("aggrMethods", "median")],
        aggregation("avg", "1 hour", &[]),
        vec![("aggrMethods", "avg")],
        vec![("timeproperty", "deletedat")],
    ] {
        let r = app.get_with(&path, &query).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    // Too many periods for one answer.
    let year = between("2026-01-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let r = app
        .get_with(&path, &aggregation("avg", "PT1S", &year))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    // A temporal query must select something.
    let r = send(app.get("/temporal/entities")).await;
    assert_problem(&r, 400, "BadRequestData");
    // Bodies without instances or without a type.
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": "urn:ngsi-ld:X:1", "type": "X"}),
    ))
    .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = send(app.post(
        "/temporal/entities",
        &json!({"id": "not a uri", "type": "X", "a": [{"type": "Property", "value": 1}]}),
    ))
    .await;
    app.assert_refused(&r, 400, "BadRequestData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_periods_follow_the_data_and_start_at_time_at() {
    let app = App::start().await;
    // Six readings at midnight and noon of 1–3 March 2020: years before now.
    let days = counting(6, |i| {
        format!("2020-03-{:02}T{:02}:00:00Z", 1 + i / 2, (i % 2) * 12)
    });
    provide(&app, GAUGE, &days).await;
    let path = format!("/temporal/entities/{GAUGE}");
    // An open end is the data's last instance, not now: hourly periods over six years
    // would be refused as too many; these are the periods holding data.
    let r = app.get_ok(&path, &aggregation("sum", "PT1H", &[])).await;
    let periods = r.body["waterLevel"]["sum"].as_array().unwrap();
    assert_eq!(periods.len(), 6, "{}", r.text);
    // The last period is whole, not clipped at the last instance.
    assert_eq!(
        periods[5],
        json!([5, "2020-03-03T12:00:00Z", "2020-03-03T13:00:00Z"])
    );
    // Daily periods from midnight with `after`: they start exactly at timeAt, so each
    // midnight reading opens its own day.
    let from = after("2020-03-01T00:00:00Z");
    let r = app
        .get_ok(&path, &aggregation("sum,totalCount", "P1D", &from))
        .await;
    assert_eq!(
        r.body["waterLevel"]["sum"],
        json!([
            [1, "2020-03-01T00:00:00Z", "2020-03-02T00:00:00Z"],
            [5, "2020-03-02T00:00:00Z", "2020-03-03T00:00:00Z"],
            [9, "2020-03-03T00:00:00Z", "2020-03-04T00:00:00Z"]
        ]),
        "{}",
        r.text
    );
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_answers_are_projected_and_options_checked() {
    let app = App::start().await;
    provide(&app, GAUGE, &readings(3)).await;
    let other = "urn:ngsi-ld:WaterObserved:ben-hai-1";
    provide(&app, other, &[(1.0, "2020-01-01T00:00:00Z".into())]).await;
    let path = format!("/temporal/entities/{GAUGE}");
    // pick and omit select members; neither goes with attrs or with the other.
    let r = app.get_ok(&path, &[("pick", "id,waterLevel")]).await;
    assert!(
        r.body.get("type").is_none() && r.body["waterLevel"].is_array(),
        "{}",
        r.text
    );
    let r = app.get_ok(&path, &[("omit", "waterLevel,type")]).await;
    assert!(
        r.body.get("waterLevel").is_none() && r.body["id"] == GAUGE,
        "{}",
        r.text
    );
    for query in [
        vec![("pick", "id"), ("omit", "type")],
        vec![("pick", "waterLevel"), ("attrs", "waterLevel")],
    ] {
        assert_problem(&app.get_with(&path, &query).await, 400, "BadRequestData");
    }
    // Nothing left, or attributes the entity never had: not found.
    for query in [vec![("pick", "nothing")], vec![("attrs", "nothing")]] {
        assert_problem(&app.get_with(&path, &query).await, 404, "ResourceNotFound");
    }
    // Unknown options and formats are refused; a format overrides the options.
    for query in [
        vec![("options", "temporalValues,sideways")],
        vec![("format", "sideways")],
    ] {
        assert_problem(&app.get_with(&path, &query).await, 400, "InvalidRequest");
    }
    let r = app
        .get_ok(
            &path,
            &[
                ("format", "temporalValues"),
                ("options", "aggregatedValues"),
                ("aggrMethods", "sum"),
            ],
        )
        .await;
    assert_eq!(
        r.body["waterLevel"]["values"].as_array().unwrap().len(),
        3,
        "{}",
        r.text
    );
    // A query needs a selection, which ids alone are not; local=true is one.
    app.get_refused("/temporal/entities", &[("id", GAUGE)])
        .await;
    // With a time restriction, an entity without history in it is left out, over
    // GET and over both paths of the POST query.
    let mut query = vec![("local", "true")];
    query.extend(after("2026-01-01T00:00:00Z"));
    let r = app.get_ok("/temporal/entities", &query).await;
    assert_eq!(id_list(&r.body), vec![GAUGE], "{}", r.text);
    for post in [
        "/temporal/entityOperations/query",
        "/temporalOperations/query",
    ] {
        let r = send(app.post(
            post,
            &json!({"type": "Query", "entities": [{"type": "WaterObserved"}],
                    "temporalQ": {"timerel": "before", "timeAt": "2021-01-01T00:00:00Z"}}),
        ))
        .await;
        assert_eq!(r.status, 200, "{post}: {}", r.text);
        assert_eq!(id_list(&r.body), vec![other], "{post}: {}", r.text);
    }
    app.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart() {
    let app = App::start().await;
    provide(&app, GAUGE, &readings(30)).await;
    let before = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    let dir = app.stop().await.unwrap();
    let app = App::start_at(&dir.path().join("dothi.db"), hub::HubConfig::default()).await;
    let after = send(app.get(&format!("/temporal/entities/{GAUGE}")))
        .await
        .body;
    assert_eq!(values_of(&after, "waterLevel").len(), 30);
    assert_eq!(before, after);
}

/// Instances of `attr` at the given days before now, provided for a new entity.
async fn provide_days_ago(app: &App, tenant: &str, id: &str, entity_type: &str, days: &[i64]) {
    let now = chrono::Utc::now();
    let instances: Vec<Value> = days
        .iter()
        .map(|d| {
            let t = now - chrono::TimeDelta::days(*d);
            json!({"type": "Property", "value": *d, "observedAt": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
        })
        .collect();
    let r = send(
        app.post(
            "/temporal/entities",
            &json!({"id": id, "type": entity_type, "reading": instances}),
        )
        .header("NGSILD-Tenant", tenant),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn days_kept(app: &App, tenant: &str, id: &str) -> Vec<i64> {
    let mut request = app.get(&format!("/temporal/entities/{id}"));
    if !tenant.is_empty() {
        request = request.header("NGSILD-Tenant", tenant);
    }
    let r = send(request).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["reading"]
        .as_array()
        .map(|a| a.iter().map(|i| i["value"].as_i64().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_history_per_tenant_and_type() {
    let rules = ["tenant=/type=WaterObserved:P30D", "tenant=:P1Y"]
        .iter()
        .map(|r| hub::retention::RetentionRule::parse(r).unwrap())
        .collect();
    let config = hub::HubConfig {
        retention: hub::retention::RetentionPolicy {
            rules,
            interval: std::time::Duration::from_millis(100),
        },
        ..Default::default()
    };
    let app = App::start_with(config).await;
    let days = [400, 60, 1];
    provide_days_ago(
        &app,
        "",
        "urn:ngsi-ld:WaterObserved:r1",
        "WaterObserved",
        &days,
    )
    .await;
    provide_days_ago(
        &app,
        "",
        "urn:ngsi-ld:AirQualityObserved:r2",
        "AirQualityObserved",
        &days,
    )
    .await;
    provide_days_ago(
        &app,
        "other",
        "urn:ngsi-ld:WaterObserved:r3",
        "WaterObserved",
        &days,
    )
    .await;
    // The purge runs in the background; wait for it to have passed over both
    // entities of the tenant with rules (a pass may have run between the writes of
    // the two). The type's rule (30 days) for gauges; the tenant's (1 year) for the
    // rest.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let water = days_kept(&app, "", "urn:ngsi-ld:WaterObserved:r1").await;
        let air = days_kept(&app, "", "urn:ngsi-ld:AirQualityObserved:r2").await;
        if water == vec![1] && air == vec![60, 1] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not purged: {water:?} {air:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A tenant without rules keeps everything.
    assert_eq!(
        days_kept(&app, "other", "urn:ngsi-ld:WaterObserved:r3").await,
        vec![400, 60, 1]
    );
    // The current state is not history: it stays.
    assert_eq!(
        app.entity("urn:ngsi-ld:WaterObserved:r1").await["reading"]["value"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporal_query_answers_in_the_order_of_order_by() {
    let app = App::start().await;
    // Created in the order b, a, c; their current levels 2, 1, 3.
    for (name, level) in [("b", 2.0), ("a", 1.0), ("c", 3.0)] {
        let id = format!("urn:ngsi-ld:WaterObserved:{name}");
        provide(&app, &id, &[(level, hour(1))]).await;
    }
    let ids = |body: &Value| -> Vec<String> {
        id_list(body)
            .iter()
            .map(|id| id.rsplit(':').next().unwrap_or_default().to_string())
            .collect()
    };
    for (order, expected) in [
        ("id", ["a", "b", "c"]),
        ("id;desc", ["c", "b", "a"]),
        ("createdAt", ["b", "a", "c"]),
        ("waterLevel;desc", ["c", "b", "a"]),
    ] {
        let r = app
            .get_ok(
                "/temporal/entities",
                &[("type", "WaterObserved"), ("orderBy", order)],
            )
            .await;
        assert_eq!(ids(&r.body), expected, "orderBy={order}");
    }
    let r = send(app.post(
        "/temporalOperations/query",
        &json!({"type": "Query", "entities": [{"type": "WaterObserved"}], "orderBy": "waterLevel"}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body), ["a", "b", "c"]);
}
