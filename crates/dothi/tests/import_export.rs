//! `dothi import` and `dothi export`, run as the real binary on real SQLite files:
//! round trips of every format, CSV mappings, rejected records with their lines and
//! counts, selection by type and q, tenants, and a kill -9 in the middle of a large
//! import followed by a rerun.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A store in a temporary directory, and the files of a test beside it.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("dothi.db")
    }

    fn store(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `dothi` with `args` and `--store` of this place.
    fn dothi(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dothi"))
            .args(args)
            .args(["--store", &self.store()])
            .env_remove("DOTHI_STORE")
            .env_remove("DOTHI_TENANT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `dothi import`, its counts and its standard error.
    fn import(&self, file: &Path, extra: &[&str]) -> (Option<i32>, Counts, String) {
        let mut args = vec!["import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.dothi(&args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        (out.status.code(), Counts::parse(&stdout), stderr)
    }

    /// `dothi export` to standard output; its text.
    fn export(&self, extra: &[&str]) -> String {
        let mut args = vec!["export"];
        args.extend_from_slice(extra);
        let out = self.dothi(&args);
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn export_json(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.export(&args)).unwrap()
    }

    fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    fn history_instances(&self) -> i64 {
        self.sql()
            .query_row("SELECT count(*) FROM attr_history", [], |r| r.get(0))
            .unwrap()
    }

    fn entity_count(&self) -> i64 {
        self.sql()
            .query_row("SELECT count(*) FROM entities", [], |r| r.get(0))
            .unwrap()
    }
}

/// The summary line of an import.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    read: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: u64,
}

impl Counts {
    fn parse(stdout: &str) -> Counts {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("read "))
            .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
        let mut n = BTreeMap::new();
        for part in line.split(" in ").next().unwrap().split(", ") {
            let (name, value) = part.split_once(' ').unwrap();
            n.insert(name.to_string(), value.parse::<u64>().unwrap());
        }
        let c = Counts {
            read: n["read"],
            created: n["created"],
            updated: n["updated"],
            unchanged: n["unchanged"],
            rejected: n["rejected"],
        };
        assert_eq!(
            c.read,
            c.created + c.updated + c.unchanged + c.rejected,
            "the counts must add up: {line}"
        );
        c
    }

    fn new(read: u64, created: u64, updated: u64, unchanged: u64, rejected: u64) -> Counts {
        Counts {
            read,
            created,
            updated,
            unchanged,
            rejected,
        }
    }
}

fn by_id(entities: Vec<Value>) -> BTreeMap<String, Value> {
    entities
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e))
        .collect()
}

/// Entities in the normalized form the hub renders.
fn gauges() -> Vec<Value> {
    vec![
        json!({
            "id": "urn:ngsi-ld:WaterObserved:thach-han-1",
            "type": "WaterObserved",
            "height": {"type": "Property", "value": 2.35, "unitCode": "MTR",
                       "observedAt": "2026-11-27T01:00:00Z"},
            "river": {"type": "Property", "value": "Thạch Hãn"},
            "alarm": {"type": "Property", "value": true},
            "refCommune": {"type": "Relationship", "object": "urn:ngsi-ld:AdministrativeArea:19267"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.19, 16.75]}},
        }),
        json!({
            "id": "urn:ngsi-ld:WaterObserved:ben-hai-2",
            "type": "WaterObserved",
            "height": {"type": "Property", "value": 0.8, "unitCode": "MTR"},
            "name": {"type": "LanguageProperty", "languageMap": {"vi": "Bến Hải", "en": "Ben Hai"}},
        }),
        json!({
            "id": "urn:ngsi-ld:Streetlight:dong-ha-7",
            "type": "Streetlight",
            "power": {"type": "Property", "value": 150},
            "status": {"type": "Property", "value": "ok",
                       "reason": {"type": "Property", "value": "checked"}},
        }),
    ]
}

#[test]
fn json_array_round_trip_and_a_rerun_changes_nothing() {
    let place = Place::new();
    let input = place.file(
        "gauges.json",
        &serde_json::to_string_pretty(&gauges()).unwrap(),
    );
    let (code, counts, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // No progress bar and no log when standard error is not a terminal.
    assert_eq!(stderr, "");
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));
    let history = place.history_instances();
    assert!(history > 0);

    let exported = place.export_json(&[]);
    assert_eq!(by_id(exported), by_id(gauges()));

    // The same file again: nothing written, no history added.
    let (code, counts, _) = place.import(&input, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(counts, Counts::new(3, 0, 0, 3, 0));
    assert_eq!(place.history_instances(), history);

    // One attribute changed: one entity updated, one instance added.
    let mut changed = gauges();
    changed[2]["power"]["value"] = json!(200);
    let input = place.file("changed.json", &serde_json::to_string(&changed).unwrap());
    let (_, counts, _) = place.import(&input, &[]);
    assert_eq!(counts, Counts::new(3, 0, 1, 2, 0));
    assert_eq!(place.history_instances(), history + 1);
    assert_eq!(by_id(place.export_json(&[])), by_id(changed));
}

#[test]
fn json_lines_round_trip_normalized_and_concise() {
    let place = Place::new();
    let lines: String = gauges().iter().map(|e| format!("{e}\n")).collect();
    let input = place.file("gauges.jsonl", &lines);
    let (code, counts, _) = place.import(&input, &["--batch-size", "2"]);
    assert_eq!(code, Some(0));
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));

    let exported = place.export(&["--format", "jsonl"]);
    let back: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(by_id(back), by_id(gauges()));

    // The concise export imports into another store as the same entities.
    let concise = place.export(&["--format", "jsonl", "--concise"]);
    assert!(concise.contains("\"height\":{\"value\":2.35"), "{concise}");
    let other = Place::new();
    let file = other.file("concise.jsonl", &concise);
    let (code, counts, _) = other.import(&file, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));
    assert_eq!(by_id(other.export_json(&[])), by_id(gauges()));
}

#[test]
fn an_entity_with_its_own_context_is_read_with_it() {
    let place = Place::new();
    let input = place.file(
        "ctx.jsonl",
        &format!(
            "{}\n{}\n",
            json!({"@context": {"mucNuoc": "https://example.org/ns/waterLevel"},
                   "id": "urn:x:ctx:1", "type": "WaterObserved",
                   "mucNuoc": {"type": "Property", "value": 1.5}}),
            json!({"@context": 42, "id": "urn:x:ctx:2", "type": "T"})
        ),
    );
    let (code, counts, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(2));
    assert_eq!(counts, Counts::new(2, 1, 0, 0, 1));
    assert!(
        stderr.contains("rejected line 2: urn:x:ctx:2: its @context:"),
        "{stderr}"
    );
    let e = place.export_json(&[]).remove(0);
    assert_eq!(
        e["https://example.org/ns/waterLevel"],
        json!({"type": "Property", "value": 1.5})
    );
}

#[test]
fn standard_input_needs_a_format_and_is_read() {
    let place = Place::new();
    let out = place.dothi(&["import", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --format"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_dothi"))
        .args([
            "import",
            "-",
            "--format",
            "jsonl",
            "--store",
            &place.store(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for e in gauges() {
        writeln!(stdin, "{e}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let counts = Counts::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));
    assert_eq!(by_id(place.export_json(&[])), by_id(gauges()));
}

#[test]
fn geojson_round_trip() {
    let place = Place::new();
    let collection = json!({
        "type": "FeatureCollection",
        "name": "trường học",
        "features": [
            {"type": "Feature", "id": "urn:ngsi-ld:School:1",
             "geometry": {"type": "Point", "coordinates": [107.1, 16.81]},
             "properties": {"type": "School", "name": "THPT Lê Lợi", "pupils": 1200, "public": true}},
            {"type": "Feature", "id": "urn:ngsi-ld:AgriParcel:2",
             "geometry": {"type": "Polygon", "coordinates": [[[107.0, 16.7], [107.01, 16.7], [107.01, 16.71], [107.0, 16.7]]]},
             "properties": {"type": "AgriParcel", "crop": "lúa"}}
        ]
    });
    let input = place.file("places.geojson", &collection.to_string());
    let (code, counts, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(counts, Counts::new(2, 2, 0, 0, 0));

    let entity = by_id(place.export_json(&["--type", "School"]))
        .remove("urn:ngsi-ld:School:1")
        .unwrap();
    assert_eq!(entity["pupils"], json!({"type": "Property", "value": 1200}));
    assert_eq!(entity["location"]["type"], "GeoProperty");

    // The format follows the output's extension.
    let file = place.path("out.geojson");
    let out = place.dothi(&["export", "-o", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "dothi export: 2 entities\n"
    );
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported["type"], "FeatureCollection");
    let by_feature = |v: &Value| -> BTreeMap<String, Value> {
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["id"].as_str().unwrap().to_string(), f.clone()))
            .collect()
    };
    assert_eq!(by_feature(&exported), by_feature(&collection));

    // The export imports again, unchanged.
    let again = place.file("again.geojson", &exported.to_string());
    let (_, counts, _) = place.import(&again, &[]);
    assert_eq!(counts, Counts::new(2, 0, 0, 2, 0));
}

const LIGHTS_CSV: &str = "\
code,lat,lon,watts,on,street,checked,at
dh-1,16.8163,107.1003,150,true,\"Lê Duẩn, Đông Hà\",2026-11-01T00:00:00Z,2026-11-27T08:00:00+07:00
dh-2,16.82,107.09,90.5,false,Hùng Vương,,2026-11-27T08:05:00+07:00
qt-3,,,60,true,Trần Hưng Đạo,,
";

const LIGHTS_MAPPING: &str = r#"{
  "id": "code", "idPrefix": "urn:ngsi-ld:Streetlight:", "type": "Streetlight",
  "lat": "lat", "lon": "lon", "observedAt": "at",
  "attributes": [
    {"column": "watts", "name": "power", "type": "number", "unitCode": "WTT"},
    {"column": "on", "type": "boolean"},
    {"column": "street"},
    {"column": "checked", "name": "lastChecked", "type": "datetime"}
  ]
}"#;

#[test]
fn csv_with_a_mapping_file_round_trip() {
    let place = Place::new();
    let input = place.file("lights.csv", LIGHTS_CSV);
    let mapping = place.file("lights.mapping.json", LIGHTS_MAPPING);
    let (code, counts, stderr) = place.import(&input, &["--mapping", mapping.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));

    let lights = by_id(place.export_json(&[]));
    let dh1 = &lights["urn:ngsi-ld:Streetlight:dh-1"];
    assert_eq!(
        dh1["power"],
        json!({"type": "Property", "value": 150, "unitCode": "WTT", "observedAt": "2026-11-27T01:00:00Z"})
    );
    assert_eq!(dh1["street"]["value"], "Lê Duẩn, Đông Hà");
    assert_eq!(dh1["on"]["value"], true);
    assert_eq!(
        dh1["lastChecked"]["value"],
        json!({"@type": "DateTime", "@value": "2026-11-01T00:00:00Z"})
    );
    assert_eq!(
        dh1["location"]["value"],
        json!({"type": "Point", "coordinates": [107.1003, 16.8163]})
    );
    let qt3 = &lights["urn:ngsi-ld:Streetlight:qt-3"];
    assert!(qt3.get("location").is_none() && qt3.get("lastChecked").is_none());
    assert!(qt3["power"].get("observedAt").is_none());

    let csv = place.export(&[
        "--format",
        "csv",
        "--attrs",
        "location,power,on,street,lastChecked",
    ]);
    let expected = "\
id,type,lat,lon,power,on,street,lastChecked
urn:ngsi-ld:Streetlight:dh-1,Streetlight,16.8163,107.1003,150,true,\"Lê Duẩn, Đông Hà\",2026-11-01T00:00:00Z
urn:ngsi-ld:Streetlight:dh-2,Streetlight,16.82,107.09,90.5,false,Hùng Vương,
urn:ngsi-ld:Streetlight:qt-3,Streetlight,,,60,true,Trần Hưng Đạo,
";
    assert_eq!(csv, expected);

    // The exported CSV imports into another store with flags, and exports the same.
    let other = Place::new();
    let file = other.file("export.csv", &csv);
    let (code, counts, stderr) = other.import(
        &file,
        &[
            "--id-column",
            "id",
            "--type-column",
            "type",
            "--lat-column",
            "lat",
            "--lon-column",
            "lon",
            "--attr",
            "power:number",
            "--attr",
            "on:boolean",
            "--attr",
            "street",
            "--attr",
            "lastChecked:datetime",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(counts, Counts::new(3, 3, 0, 0, 0));
    let again = other.export(&[
        "--format",
        "csv",
        "--attrs",
        "location,power,on,street,lastChecked",
    ]);
    assert_eq!(again, expected);
}

#[test]
fn rejected_rows_are_reported_with_their_line_and_counted() {
    let place = Place::new();
    let input = place.file(
        "lights.csv",
        "code,lat,lon,watts,on,street,checked,at\n\
         urn:ok:1,16.8,107.1,100,true,A,,\n\
         urn:ok:2,95,107.1,100,true,B,,\n\
         urn:ok:3,16.8,107.1,lots,true,C,,\n\
         \"bad id\",16.8,107.1,1,true,D,,\n\
         urn:ok:5,16.8,107.1,1,true\n\
         urn:ok:6,16.8,107.1,1,maybe,F,,\n\
         urn:ok:7,,,1,true,G,,not-a-time\n\
         urn:ok:8,16.8,200,1,true,H,,\n\
         urn:ok:9,16.8,107.1,7,false,I,,\n",
    );
    let mapping = place.file("m.json", LIGHTS_MAPPING);
    let mapping = mapping.to_str().unwrap();
    // Ids without the mapping's prefix: "bad id" is no URI.
    let rejects = place.path("rejects.jsonl");
    let (code, counts, stderr) = place.import(
        &input,
        &[
            "--mapping",
            mapping,
            "--id-prefix",
            "",
            "--rejects",
            rejects.to_str().unwrap(),
            "--batch-size",
            "3",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(counts, Counts::new(9, 2, 0, 0, 7));
    let expected = [
        (3, "latitude 95 is out of range [-90, 90]"),
        (4, "column \"watts\": \"lots\" is not a number"),
        (5, "\"bad id\" is not a URI"),
        (6, "the row has 5 fields, the header 8"),
        (7, "column \"on\": \"maybe\" is not a boolean"),
        (8, "observedAt \"not-a-time\" is not a date and time"),
        (9, "longitude 200 is out of range [-180, 180]"),
    ];
    let reported: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("dothi import: rejected"))
        .collect();
    assert_eq!(reported.len(), expected.len(), "{stderr}");
    for ((line, reason), got) in expected.iter().zip(&reported) {
        assert!(
            got.starts_with(&format!("dothi import: rejected line {line}:"))
                && got.contains(reason),
            "line {line}: want {reason:?}, got {got:?}"
        );
    }
    let rows: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), expected.len());
    for (row, (line, reason)) in rows.iter().zip(expected) {
        assert_eq!(row["line"], line);
        assert!(row["reason"].as_str().unwrap().contains(reason), "{row}");
    }
    let ids: Vec<String> = by_id(place.export_json(&[])).into_keys().collect();
    assert_eq!(ids, ["urn:ok:1", "urn:ok:9"]);
}

#[test]
fn malformed_json_lines_and_features_are_rejected_one_by_one() {
    let place = Place::new();
    let long = format!(
        "{{\"id\": \"urn:x:long\", \"type\": \"T\", \"p\": \"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let input = place.file(
        "mixed.jsonl",
        &format!(
            "{{\"id\": \"urn:x:1\", \"type\": \"T\"}}\n\
             {{\"id\": \"urn:x:2\", \"type\": \n\
             \n\
             {{\"id\": \"no uri\", \"type\": \"T\"}}\n\
             {long}\n\
             [1, 2]\n\
             {{\"id\": \"urn:x:3\", \"type\": \"T\", \"location\": {{\"type\": \"GeoProperty\", \"value\": {{\"type\": \"Point\", \"coordinates\": [500, 1]}}}}}}\n\
             {{\"id\": \"urn:x:4\", \"type\": \"T\", \"n\": 4}}\n"
        ),
    );
    let (code, counts, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(2));
    assert_eq!(counts, Counts::new(7, 2, 0, 0, 5));
    for want in [
        "rejected line 2: malformed JSON",
        "rejected line 4: no uri: the entity id \"no uri\" is not a URI",
        "rejected line 5: line longer than 1048576 bytes",
        "rejected line 6: an entity must be a JSON object",
        "rejected line 7: urn:x:3:",
    ] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }

    let features = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "urn:f:1", "geometry": null, "properties": {"type": "T"}},
        {"type": "Feature", "geometry": null, "properties": {"type": "T"}},
        {"type": "Feature", "id": "urn:f:3", "geometry": {"type": "Point", "coordinates": [1, 100]}, "properties": {"type": "T"}},
        {"type": "Feature", "id": "urn:f:4", "geometry": null, "properties": {}}
    ]});
    let input = place.file(
        "f.geojson",
        &serde_json::to_string_pretty(&features).unwrap(),
    );
    let (code, counts, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(2));
    assert_eq!(counts, Counts::new(4, 1, 0, 0, 3));
    assert!(stderr.contains("rejected feature 2 (line "), "{stderr}");
    assert!(stderr.contains("the feature has no id"), "{stderr}");
    assert!(stderr.contains("rejected feature 3 (line "), "{stderr}");
    assert!(stderr.contains("rejected feature 4 (line "), "{stderr}");
}

#[test]
fn faults_that_stop_an_import_are_clear_and_write_nothing_after_them() {
    let place = Place::new();
    // A mapping naming a column the header lacks: nothing is imported.
    let input = place.file("l.csv", LIGHTS_CSV);
    let (code, _, stderr) = place.import(
        &input,
        &["--id-column", "code", "--type", "T", "--attr", "colour"],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the mapping's attribute column \"colour\" is not in the header"),
        "{stderr}"
    );
    assert_eq!(place.entity_count(), 0);

    // A broken array: the batches before the fault are in, the summary says so.
    let mut text = String::from("[\n");
    for i in 0..5 {
        text.push_str(&format!("{{\"id\": \"urn:x:{i}\", \"type\": \"T\"}},\n"));
    }
    text.push_str("{\"id\": \"urn:x:5\", \"type\": \"T\"} {\"id\": \"urn:x:6\"}\n]");
    let input = place.file("broken.json", &text);
    let (code, counts, stderr) = place.import(&input, &["--batch-size", "2"]);
    assert_eq!(code, Some(1));
    assert_eq!(counts, Counts::new(6, 6, 0, 0, 0));
    assert!(
        stderr.contains("stopped at line 7: malformed JSON: expected ',' or ']' after an element"),
        "{stderr}"
    );
    assert_eq!(place.entity_count(), 6);

    // Flags that do not fit the format: refused before anything is read.
    for (flags, want) in [
        (&["--attr", "x"][..], "for CSV only"),
        (
            &["--batch-size", "0"][..],
            "--batch-size must be between 1 and 10000",
        ),
        (
            &["--type", "T"][..],
            "--type and --id-prefix are for CSV and GeoJSON",
        ),
    ] {
        let mut args = vec!["import", input.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = place.dothi(&args);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(place.entity_count(), 6);
}

#[test]
fn export_selects_by_type_q_and_attrs_and_tenants_are_apart() {
    let place = Place::new();
    let mut lines = String::new();
    for i in 0..2500 {
        let kind = if i % 2 == 0 {
            "Streetlight"
        } else {
            "WaterObserved"
        };
        lines.push_str(&format!(
            "{}\n",
            json!({"id": format!("urn:x:{kind}:{i}"), "type": kind,
                   "power": {"type": "Property", "value": i},
                   "status": {"type": "Property", "value": if i % 5 == 0 { "broken" } else { "ok" }}})
        ));
    }
    let input = place.file("many.jsonl", &lines);
    let (code, counts, _) = place.import(&input, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(counts.created, 2500);

    // All of them, over several pages.
    assert_eq!(place.export_json(&[]).len(), 2500);
    let lights = place.export_json(&["--type", "Streetlight"]);
    assert_eq!(lights.len(), 1250);
    assert!(lights.iter().all(|e| e["type"] == "Streetlight"));

    let chosen = place.export_json(&[
        "--type",
        "Streetlight",
        "--q",
        "power>2000;status==\"broken\"",
        "--attrs",
        "power",
    ]);
    let mut ids: Vec<&str> = chosen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<String> = (2001..2500)
        .filter(|i| i % 2 == 0 && i % 5 == 0)
        .map(|i| format!("urn:x:Streetlight:{i}"))
        .collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        chosen
            .iter()
            .all(|e| e.get("status").is_none() && e.get("power").is_some())
    );

    // A bad q is refused before anything is written.
    let out = place.dothi(&["export", "--q", "power>>1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("q"));

    // Another tenant sees none of it, and its own entity only.
    let one = place.file("one.jsonl", "{\"id\": \"urn:x:t:1\", \"type\": \"T\"}\n");
    let (code, _, _) = place.import(&one, &["--tenant", "so-xay-dung"]);
    assert_eq!(code, Some(0));
    let theirs = place.export_json(&["--tenant", "so-xay-dung"]);
    assert_eq!(theirs.len(), 1);
    assert_eq!(place.export_json(&[]).len(), 2500);
    let out = place.dothi(&["import", one.to_str().unwrap(), "--tenant", "bad tenant!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant names are"));
    // An unknown tenant is refused before the output file is made.
    let file = place.path("nobody.json");
    let out = place.dothi(&["export", "--tenant", "nobody", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!file.exists());
}

/// The entity of row `i` of the large file.
fn reading(i: usize) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:AirQualityObserved:{i:06}"),
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": (i % 500) as f64 / 10.0, "unitCode": "GQ",
                 "observedAt": "2026-11-27T01:00:00Z"},
        "station": {"type": "Property", "value": format!("Trạm {}", i % 97)},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [107.0 + (i % 100) as f64 / 1000.0, 16.7]}}
    })
}

#[test]
fn a_killed_import_rerun_neither_duplicates_nor_loses() {
    const N: usize = 50_000;
    const BATCH: i64 = 1000;
    let place = Place::new();
    let path = place.path("large.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..N {
            writeln!(f, "{}", reading(i)).unwrap();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_dothi"))
        .args(["import", path.to_str().unwrap(), "--store", &place.store()])
        .args(["--batch-size", &BATCH.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches are in (a reader of the WAL sees committed ones).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before the kill"
        );
        let count: i64 = place
            .sql()
            .query_row("SELECT count(*) FROM entities", [], |r| r.get(0))
            .unwrap_or(0);
        if count >= 5 * BATCH {
            break;
        }
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let before = place.entity_count();
    assert!(before >= 5 * BATCH && before < N as i64, "{before}");
    assert_eq!(before % BATCH, 0, "whole batches only: {before}");
    // Each entity created: one instance per attribute.
    assert_eq!(place.history_instances(), before * 3);

    let (code, counts, stderr) = place.import(&path, &["--batch-size", &BATCH.to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    let before = before as u64;
    assert_eq!(
        counts,
        Counts::new(N as u64, N as u64 - before, 0, before, 0)
    );
    assert_eq!(place.entity_count(), N as i64);
    assert_eq!(place.history_instances(), N as i64 * 3);
    let exported = place.export(&["--format", "jsonl"]);
    let mut seen = 0;
    for (i, line) in exported.lines().enumerate() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e, reading(i), "entity {i}");
        seen += 1;
    }
    assert_eq!(seen, N);
}

#[test]
fn csv_export_takes_the_default_instance_of_an_attribute() {
    let place = Place::new();
    let entity = json!({"id": "urn:x:m:1", "type": "Meter",
        "reading": [{"type": "Property", "value": 7, "datasetId": "urn:ngsi-ld:Dataset:tay"},
                    {"type": "Property", "value": 9}],
        "backup": [{"type": "Property", "value": 3, "datasetId": "urn:ngsi-ld:Dataset:a"}]});
    let input = place.file("m.jsonl", &format!("{entity}\n"));
    let (code, _, stderr) = place.import(&input, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let csv = place.export(&["--format", "csv", "--attrs", "reading,backup,absent"]);
    assert_eq!(csv, "id,type,reading,backup,absent\nurn:x:m:1,Meter,9,3,\n");
}
