//! The Quảng Trị data set against its sources, and loaded into a real hub over a real
//! SQLite file: units and names as the sources say, valid and small display
//! boundaries, and every demo entity inside the commune it names, as the hub's own
//! geo-query sees it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use city::geom::{Shape, area_km2};
use city::{DataSet, UnitKind};
use hub::{Hub, Scope};
use ngsi::filter::{GeoFilter, QFilter};
use ngsi::query::ast::{GeoQuery, GeoRel};
use ngsi::query::{parse_q, parse_type_expr};
use ngsi::{Context, Geometry};
use serde_json::Value;
use store::EntityQuery;

/// The stated bound on the 78 simplified boundaries together, as compact GeoJSON.
const DISPLAY_BYTES_MAX: usize = 400_000;

fn data() -> &'static DataSet {
    static DATA: OnceLock<DataSet> = OnceLock::new();
    DATA.get_or_init(|| {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
        DataSet::build(at).unwrap()
    })
}

fn source(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/data/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn positions(mp: &city::geom::MultiPolygon) -> usize {
    mp.iter().flatten().map(Vec::len).sum()
}

#[test]
fn the_province_and_its_78_units_match_the_sources() {
    let d = data();
    let list = source("vn-units-44.json");
    let province = &list[0];
    assert_eq!(d.province.code, "44");
    assert_eq!(d.province.full_name, province["FullName"]);
    assert_eq!(d.province.kind, UnitKind::Province);
    assert_eq!(d.province.area_km2, 12_700.0);

    let wards = province["Wards"].as_array().unwrap();
    assert_eq!(wards.len(), 78);
    assert_eq!(d.units.len(), 78);
    let by_code: BTreeMap<&str, &Value> = wards
        .iter()
        .map(|w| (w["Code"].as_str().unwrap(), w))
        .collect();
    for u in &d.units {
        let w = by_code
            .get(u.code.as_str())
            .unwrap_or_else(|| panic!("{} not in the list", u.code));
        assert_eq!(u.name, w["Name"], "{}", u.code);
        assert_eq!(u.name_en, w["NameEn"], "{}", u.code);
        assert_eq!(u.full_name, w["FullName"], "{}", u.code);
        assert_eq!(u.full_name_en, w["FullNameEn"], "{}", u.code);
        // The boundary file agrees, and its ring count and area are kept as they are.
        let dir = format!("{}/data/quang-tri-wards", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|f| f.starts_with(&format!("{}_", u.code)))
            .unwrap();
        let feature = &source(&format!("quang-tri-wards/{file}"))["features"][0];
        assert_eq!(u.full_name, feature["properties"]["fullName"]);
        assert_eq!(Some(u.area_km2), feature["properties"]["areaKm2"].as_f64());
        let full = Geometry::from_geojson(&feature["geometry"]).unwrap();
        assert_eq!(
            Geometry::MultiPolygon(u.shape.polygons().clone()),
            full,
            "{} boundary kept as is",
            u.code
        );
    }
    let kinds = |k| d.units.iter().filter(|u| u.kind == k).count();
    assert_eq!(
        (
            kinds(UnitKind::Commune),
            kinds(UnitKind::Ward),
            kinds(UnitKind::SpecialZone)
        ),
        (69, 8, 1)
    );
    let named = |code: &str| d.units.iter().find(|u| u.code == code).unwrap();
    assert_eq!(named("19333").full_name, "Phường Đông Hà");
    assert_eq!(named("19351").full_name, "Phường Nam Đông Hà");
    assert_eq!(named("19360").full_name, "Phường Quảng Trị");
    assert_eq!(named("19742").full_name, "Đặc khu Cồn Cỏ");
    // The units' own areas add up to about the province's.
    let total: f64 = d.units.iter().map(|u| u.area_km2).sum();
    assert!((total - 12_700.0).abs() < 200.0, "{total}");
}

#[test]
fn formed_from_follows_the_merge_list() {
    let d = data();
    let merges = &source("quang-tri-merges-2025.json")[0];
    let names: Vec<&str> = d
        .province
        .formed_from
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["Tỉnh Quảng Bình", "Tỉnh Quảng Trị"]);
    let mut former = 0;
    let mut partial = BTreeSet::new();
    for l in merges["level2s"].as_array().unwrap() {
        let code = l["level2_id"].as_str().unwrap();
        let u = d.units.iter().find(|u| u.code == code).unwrap();
        let codes: Vec<&str> = l["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["old_id"].as_str().unwrap())
            .collect();
        let ours: Vec<&str> = u.formed_from.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(ours, codes, "{code}");
        former += ours.len();
        partial.extend(
            u.formed_from
                .iter()
                .filter(|f| !f.whole)
                .map(|f| (code, f.name.clone())),
        );
    }
    assert_eq!(former, 266);
    // Xã Quảng Tiến was split between Trung Thuần and Nam Ba Đồn.
    assert_eq!(
        partial,
        BTreeSet::from([
            ("19030", "Xã Quảng Tiến".to_string()),
            ("19075", "Xã Quảng Tiến".to_string())
        ])
    );
    let dong_ha = d.units.iter().find(|u| u.code == "19333").unwrap();
    assert!(
        dong_ha
            .formed_from
            .iter()
            .any(|f| f.name == "Phường Đông Giang" && f.whole)
    );
    // Names come tidied: the source has "Xã  A Dơi" with two spaces.
    assert!(
        d.units
            .iter()
            .flat_map(|u| &u.formed_from)
            .any(|f| f.name == "Xã A Dơi")
    );
}

#[test]
fn display_boundaries_are_valid_shared_and_much_smaller() {
    let d = data();
    let (mut full_positions, mut display_positions) = (0, 0);
    for u in d.units.iter().chain([&d.province]) {
        let problems = city::simplify::problems(&u.display);
        assert!(problems.is_empty(), "{}: {problems:?}", u.code);
        // Also valid for the hub, ring by ring.
        let geojson = city::admin::geometry_json(&u.display);
        Geometry::from_geojson(&geojson).unwrap();
        assert_eq!(u.display.len(), u.shape.polygons().len(), "{}", u.code);
        let (full, display) = (positions(u.shape.polygons()), positions(&u.display));
        assert!(
            display * 10 <= full * 3,
            "{}: {display} of {full} positions",
            u.code
        );
        // Simplifying at 50 m keeps the area within 3%.
        let a = |mp: &city::geom::MultiPolygon| mp.iter().map(area_km2).sum::<f64>();
        let (af, ad) = (a(u.shape.polygons()), a(&u.display));
        assert!(
            (ad - af).abs() <= 0.03 * af,
            "{}: {af} km² → {ad} km²",
            u.code
        );
        if u.code != "44" {
            full_positions += full;
            display_positions += display;
        }
    }
    assert!(
        display_positions * 10 <= full_positions,
        "{display_positions} of {full_positions}"
    );
    let bytes = d.display_boundary_bytes();
    assert!(
        (100_000..=DISPLAY_BYTES_MAX).contains(&bytes),
        "{bytes} bytes"
    );
    // The full boundaries are valid too; the only flaws of the source are slight
    // overlaps between neighbours where the Gianh reaches the sea.
    for u in d.units.iter().chain([&d.province]) {
        let problems = city::simplify::problems(u.shape.polygons());
        assert!(problems.is_empty(), "{}: {problems:?}", u.code);
    }
    let overlaps: BTreeSet<(&str, &str)> = d
        .source_overlaps
        .iter()
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        overlaps,
        BTreeSet::from([
            ("19009", "19066"),
            ("19009", "19093"),
            ("19057", "19066"),
            ("19066", "19093")
        ])
    );
    // Neighbours meet without overlapping: no display vertex of a unit lies inside
    // another unit's display shape by more than a metre (the source itself has
    // sub-metre slivers where a vertex of one unit sits off its neighbour's line).
    let shapes: Vec<Shape> = d
        .units
        .iter()
        .map(|u| Shape::new(u.display.clone()))
        .collect();
    for (i, a) in d.units.iter().enumerate() {
        for (j, b) in d.units.iter().enumerate() {
            if i == j {
                continue;
            }
            for p in a.display.iter().flatten().flatten() {
                assert!(
                    !shapes[j].holds(*p, 1.0),
                    "{} vertex {p:?} inside {}",
                    a.code,
                    b.code
                );
            }
        }
    }
    // Đông Hà and Nam Đông Hà share their simplified border.
    let vertices = |code: &str| -> BTreeSet<(u64, u64)> {
        let u = d.units.iter().find(|u| u.code == code).unwrap();
        u.display
            .iter()
            .flatten()
            .flatten()
            .map(|p| (p[0].to_bits(), p[1].to_bits()))
            .collect()
    };
    let shared = vertices("19333").intersection(&vertices("19351")).count();
    assert!(shared >= 5, "{shared} shared vertices");
}

#[test]
fn demo_entities_are_marked_placed_and_deterministic() {
    let d = data();
    let n = d.entities.len();
    assert!((300..=3_000).contains(&n), "{n} entities");
    let ids: BTreeSet<&str> = d
        .entities
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), n, "ids are unique");
    let units: BTreeMap<String, &city::AdminUnit> = d.units.iter().map(|u| (u.id(), u)).collect();
    let mut types = BTreeSet::new();
    for e in &d.entities {
        let kind = e["type"].as_str().unwrap();
        if kind == "AdministrativeArea" {
            continue;
        }
        types.insert(kind);
        let id = e["id"].as_str().unwrap();
        assert!(id.contains(":demo-"), "{id}");
        assert_eq!(e["dataProvider"]["value"], city::DEMO_PROVIDER, "{id}");
        if kind == "AgriCrop" {
            continue;
        }
        // Every located demo entity names its commune and lies inside it, away from
        // the border, inside the display boundary too.
        let commune = e["refAdministrativeArea"]["object"].as_str().unwrap();
        let unit = units
            .get(commune)
            .unwrap_or_else(|| panic!("{id}: {commune}"));
        assert_eq!(
            e["address"]["value"]["addressLocality"],
            unit.full_name.as_str()
        );
        let geometry = Geometry::from_geojson(&e["location"]["value"]).unwrap();
        let display = Shape::new(unit.display.clone());
        for p in geometry.positions() {
            assert!(
                unit.shape.holds(p, 50.0),
                "{id} at {p:?} not inside {}",
                unit.code
            );
            assert!(display.contains(p), "{id} outside the display boundary");
        }
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "ACMeasurement",
            "AgriCrop",
            "AgriParcel",
            "AirQualityObserved",
            "BuildingPermit",
            "Hospital",
            "KeyPerformanceIndicator",
            "MedicalClinic",
            "PointOfInterest",
            "School",
            "Streetlight",
            "TrafficFlowObserved",
            "UrbanPlanningZone",
            "WaterConsumptionObserved",
            "WaterObserved",
            "WeatherObserved"
        ]
    );
    // Well-known places stay close to their real coordinates.
    for p in &d.placements {
        assert!(
            p.distance_m() < 1_500.0,
            "{} moved {} m",
            p.id,
            p.distance_m()
        );
    }
    // Alarm levels of the facts sheet.
    let gauge = |id: &str| {
        d.entities
            .iter()
            .find(|e| e["id"] == format!("urn:ngsi-ld:WaterObserved:demo-{id}"))
            .unwrap()
    };
    let thach_han = gauge("thach-han");
    assert_eq!(
        [
            &thach_han["alarmLevel1"]["value"],
            &thach_han["alarmLevel2"]["value"],
            &thach_han["alarmLevel3"]["value"]
        ],
        [3.0, 4.5, 6.0]
    );
    assert!(gauge("dong-ha").get("alarmLevel2").is_none());
    assert_eq!(gauge("hien-luong")["alarmLevel3"]["value"], 2.5);
    assert_eq!(gauge("hai-tan")["alarmLevel1"]["value"], 1.8);
    // Same time, same data set.
    let again = DataSet::build(Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap()).unwrap();
    assert!(again.entities == d.entities, "the build is deterministic");
}

/// The demo entities of `kind`.
fn all_of(kind: &str) -> impl Iterator<Item = &'static Value> {
    data().entities.iter().filter(move |e| e["type"] == kind)
}

/// The demo entities of `kind` whose `attr` value (or its first element) is `value`.
fn of<'a>(kind: &str, attr: &str, value: &str) -> Vec<&'a Value> {
    all_of(kind)
        .filter(|e| {
            let v = &e[attr]["value"];
            v == value || v.get(0).is_some_and(|first| first == value)
        })
        .collect()
}

fn commune_code(e: &Value) -> &str {
    e["refAdministrativeArea"]["object"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
}

#[test]
fn every_essential_service_has_its_layer() {
    let d = data();
    let wards: BTreeSet<&str> = d
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Ward)
        .map(|u| u.code.as_str())
        .collect();
    let smart = BTreeSet::from(["19333", "19351", "19360"]);

    // Banking: 48 offices, 27 of them in the 8 wards, with 3 ATMs each there and 2
    // elsewhere; one cashless-payment indicator per unit.
    let banks = of("PointOfInterest", "category", "bank");
    let atms = of("PointOfInterest", "category", "atm");
    assert_eq!(banks.len(), 48);
    assert_eq!(atms.len(), 123);
    let in_wards = banks
        .iter()
        .filter(|e| wards.contains(commune_code(e)))
        .count();
    assert_eq!(in_wards, 27);
    assert!(atms.iter().all(|a| a["status"]["observedAt"].is_string()));
    // An ATM stands in the unit of its office, within a few km of it.
    for a in &atms {
        let id = a["id"].as_str().unwrap();
        let office = id.replace(":demo-atm-", ":demo-bank-");
        let office = &office[..office.rfind('-').unwrap()];
        let b = banks.iter().find(|b| b["id"] == office).unwrap();
        assert_eq!(commune_code(a), commune_code(b), "{id}");
    }
    let cashless = of("KeyPerformanceIndicator", "indicator", "cashless");
    assert_eq!(cashless.len(), 78);

    // Commerce: a market in every unit but Cồn Cỏ, 11 supermarkets and centres.
    let markets = of("PointOfInterest", "category", "market");
    assert_eq!(markets.len(), 77);
    let with_market: BTreeSet<&str> = markets.iter().map(|e| commune_code(e)).collect();
    assert_eq!(with_market.len(), 77);
    assert!(!with_market.contains("19742"));
    let shops: usize = ["supermarket", "shoppingCentre", "tradeCentre"]
        .iter()
        .map(|c| of("PointOfInterest", "category", c).len())
        .sum();
    assert_eq!(shops, 11);
    let dong_ha_market = markets
        .iter()
        .find(|e| e["name"]["languageMap"]["vi"] == "Chợ Đông Hà")
        .unwrap();
    assert_eq!(commune_code(dong_ha_market), "19333");

    // E-commerce: three indicators per unit, shares in % and parcels as a count.
    for (indicator, unit_code) in [
        ("online-buying", "P1"),
        ("online-selling", "P1"),
        ("parcels", "C62"),
    ] {
        let list = of("KeyPerformanceIndicator", "indicator", indicator);
        assert_eq!(list.len(), 78, "{indicator}");
        for e in &list {
            assert_eq!(e["process"]["value"], "eCommerce");
            assert_eq!(e["kpiValue"]["unitCode"], unit_code);
            let v = e["kpiValue"]["value"].as_f64().unwrap();
            assert!(v >= 0.0 && (unit_code != "P1" || v <= 100.0), "{v}");
        }
    }
    // Every point of interest belongs to one sector, by its first category.
    for e in all_of("PointOfInterest") {
        let categories = e["category"]["value"].as_array().unwrap();
        let sector = city::demo::poi_sector(categories.iter().filter_map(Value::as_str));
        assert!(sector.is_some(), "{}", e["id"]);
    }

    // Urban planning: 20 zones in the smart-city wards that do not overlap, and 200
    // permits there, each linked to the zone it lies in, if any.
    let zones: Vec<&Value> = all_of("UrbanPlanningZone").collect();
    assert_eq!(zones.len(), 20);
    let shapes: Vec<(String, Shape)> = zones
        .iter()
        .map(|z| {
            assert!(smart.contains(commune_code(z)));
            let g = Geometry::from_geojson(&z["location"]["value"]).unwrap();
            let Geometry::Polygon(p) = g else {
                panic!("{} is not a polygon", z["id"])
            };
            (z["id"].as_str().unwrap().to_string(), Shape::new(vec![p]))
        })
        .collect();
    for (i, (a, sa)) in shapes.iter().enumerate() {
        for (b, sb) in shapes.iter().skip(i + 1) {
            let touching = sa.polygons()[0][0].iter().any(|p| sb.contains(*p))
                || sb.polygons()[0][0].iter().any(|p| sa.contains(*p));
            assert!(!touching, "{a} overlaps {b}");
        }
    }
    assert_eq!(
        zones
            .iter()
            .filter(|z| z["approvalDate"].is_object())
            .count(),
        17
    );
    let permits: Vec<&Value> = all_of("BuildingPermit").collect();
    assert_eq!(permits.len(), 200);
    let mut linked = 0;
    let today = "2026-11-27";
    for p in &permits {
        let id = p["id"].as_str().unwrap();
        assert!(smart.contains(commune_code(p)), "{id}");
        let at = Geometry::from_geojson(&p["location"]["value"])
            .unwrap()
            .positions()[0];
        let inside: Vec<&String> = shapes
            .iter()
            .filter(|(_, s)| s.contains(at))
            .map(|(z, _)| z)
            .collect();
        for z in &inside {
            let zone = zones.iter().find(|e| e["id"] == z.as_str()).unwrap();
            assert_ne!(zone["landUse"]["value"], "greenSpace", "{id} is in a park");
        }
        match p.get("refUrbanPlanningZone") {
            Some(r) => {
                assert_eq!(inside, [r["object"].as_str().unwrap()], "{id}");
                linked += 1;
            }
            None => assert!(inside.is_empty(), "{id} is in {inside:?}"),
        }
        let applied = p["dateApplied"]["value"].as_str().unwrap();
        assert!(applied <= today, "{id}");
        match p["status"]["value"].as_str().unwrap() {
            "issued" => {
                let decided = p["dateDecided"]["value"].as_str().unwrap();
                assert!(applied < decided && decided <= today, "{id}");
                assert!(p["validUntil"]["value"].as_str().unwrap() > decided);
            }
            "refused" => assert!(p.get("validUntil").is_none(), "{id}"),
            "submitted" | "underReview" => assert!(p.get("dateDecided").is_none(), "{id}"),
            other => panic!("{id}: status {other}"),
        }
    }
    assert!(linked > 20, "{linked} permits in a zone");
}

async fn hub_over_sqlite(dir: &tempfile::TempDir) -> Arc<Hub> {
    let store = store::open(&format!(
        "sqlite://{}",
        dir.path().join("dothi.db").display()
    ))
    .await
    .unwrap();
    hub::state(store, &hub::HubConfig::default()).unwrap().hub
}

fn scope() -> Scope {
    Scope::system("test", "")
}

#[tokio::test]
async fn loading_twice_leaves_the_same_entities() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_over_sqlite(&dir).await;
    let first = city::load(&hub).await.unwrap();
    assert_eq!(first.created, first.entities());
    assert_eq!(first.by_type["AdministrativeArea"], 79);
    let second = city::load(&hub).await.unwrap();
    assert_eq!(second.created, 0);
    assert_eq!(second.by_type, first.by_type);

    let ctx = Context::core();
    let types = hub.types(&scope()).await.unwrap();
    let in_hub: BTreeMap<String, u64> = types
        .iter()
        .map(|t| (ctx.compact(&t.type_iri), t.entity_count))
        .collect();
    let loaded: BTreeMap<String, u64> = first
        .by_type
        .iter()
        .map(|(k, v)| (k.clone(), *v as u64))
        .collect();
    assert_eq!(in_hub, loaded);

    // The stored unit reads back with its boundaries and relationship.
    let e = hub
        .get_entity(&scope(), "urn:ngsi-ld:AdministrativeArea:VN-44-19333")
        .await
        .unwrap();
    let attr = |name: &str| e.attrs.get(&ctx.expand(name)).map(|v| v[0].clone());
    assert_eq!(
        attr("containedInPlace").unwrap().value,
        "urn:ngsi-ld:AdministrativeArea:VN-44"
    );
    assert_eq!(
        attr("location").unwrap().geometry().unwrap().type_name(),
        "MultiPolygon"
    );
    assert!(attr("displayBoundary").unwrap().geometry().is_some());
    assert_eq!(attr("name").unwrap().value["vi"], "Phường Đông Hà");
}

/// Entity ids the hub returns for a query of type `types`, `q` and geo-query `geo`.
async fn ids(
    hub: &Hub,
    types: Option<&str>,
    q: Option<&str>,
    geo: Option<GeoQuery>,
) -> BTreeSet<String> {
    let ctx = Context::core();
    let query = EntityQuery {
        types: types.map(|t| parse_type_expr(t).unwrap().map_names(&|n| ctx.expand(n))),
        q: q.map(|q| QFilter::new(parse_q(q).unwrap().map_attrs(&|n| ctx.expand(n))).unwrap()),
        geo: geo.map(|g| GeoFilter::new(g).unwrap()),
        limit: 10_000,
        ..EntityQuery::default()
    };
    let page = hub.query(&scope(), query).await.unwrap();
    page.entities.into_iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn every_demo_entity_is_within_its_commune_by_the_hubs_geo_query() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_over_sqlite(&dir).await;
    let report = city::load(&hub).await.unwrap();
    let ctx = Context::core();
    let location = ctx.expand("location");
    let mut checked = 0;
    for u in &data().units {
        let naming = ids(
            &hub,
            None,
            Some(&format!("refAdministrativeArea=={}", u.id())),
            None,
        )
        .await;
        let within = ids(
            &hub,
            None,
            Some(&format!("refAdministrativeArea=={}", u.id())),
            Some(GeoQuery {
                georel: GeoRel::Within,
                geometry: Geometry::MultiPolygon(u.shape.polygons().clone()),
                geoproperty: location.clone(),
            }),
        )
        .await;
        assert!(!naming.is_empty(), "{}: no demo entity names it", u.code);
        let outside: Vec<_> = naming.difference(&within).collect();
        assert!(outside.is_empty(), "{}: not within: {outside:?}", u.code);
        checked += naming.len();
    }
    // Everything located but the AgriCrop entities names a commune.
    let located =
        report.entities() - report.by_type["AdministrativeArea"] - report.by_type["AgriCrop"];
    assert_eq!(checked, located);

    // And the other way round: the unit that contains Thành Cổ Quảng Trị.
    let thanh_co = data()
        .placements
        .iter()
        .find(|p| p.id.ends_with(":demo-thanh-co-quang-tri"))
        .unwrap();
    let containing = ids(
        &hub,
        Some("AdministrativeArea"),
        None,
        Some(GeoQuery {
            georel: GeoRel::Contains,
            geometry: Geometry::Point(thanh_co.placed),
            geoproperty: location,
        }),
    )
    .await;
    assert_eq!(
        containing,
        BTreeSet::from([
            "urn:ngsi-ld:AdministrativeArea:VN-44".to_string(),
            "urn:ngsi-ld:AdministrativeArea:VN-44-19360".to_string()
        ])
    );
}
