//! Commerce and e-commerce: markets, supermarkets and trade centres as points of
//! interest, and three e-commerce indicators per commune-level unit.
//!
//! The named markets and shopping centres are real places (approximate positions);
//! every other unit but Cồn Cỏ has a demo market of its own, drawn inside it. All
//! figures are demo.

use serde_json::json;

use super::connectivity::REMOTE;
use super::{Demo, Landmark, kpi_figure, prop};
use crate::Result;
use crate::admin::UnitKind;
use crate::geom::Position;
use crate::rng::Rng;

/// The main market of these units, by name: (Vietnamese name, English name, unit,
/// near).
#[rustfmt::skip]
const NAMED_MARKETS: [(&str, &str, &str, Position); 7] = [
    ("Chợ Đông Hà", "Đông Hà Market", "19333", [107.0990, 16.8190]),
    ("Chợ Quảng Trị", "Quảng Trị Market", "19360", [107.1900, 16.7480]),
    ("Chợ Đồng Hới", "Đồng Hới Market", "18880", [106.6230, 17.4740]),
    ("Chợ Ba Đồn", "Ba Đồn Market", "19009", [106.4220, 17.7550]),
    ("Chợ Khe Sanh", "Khe Sanh Market", "19429", [106.7310, 16.6240]),
    ("Chợ Lao Bảo", "Lao Bảo Market", "19432", [106.5980, 16.6200]),
    ("Chợ Hồ Xá", "Hồ Xá Market", "19363", [107.0120, 17.0640]),
];

/// Supermarkets and trade centres: the real ones by name, and demo supermarkets
/// (named after their unit) in four more wards and towns.
#[rustfmt::skip]
const SHOPS: [Landmark; 11] = [
    ("Siêu thị Co.opmart Đông Hà", "Co.opmart Đông Hà", "19333", [107.0960, 16.8160], &["supermarket"]),
    ("Vincom Plaza Đông Hà", "Vincom Plaza Đông Hà", "19333", [107.1000, 16.8200], &["shoppingCentre"]),
    ("Siêu thị Co.opmart Đồng Hới", "Co.opmart Đồng Hới", "18880", [106.6200, 17.4700], &["supermarket"]),
    ("Vincom Plaza Quảng Bình", "Vincom Plaza Quảng Bình", "18880", [106.6180, 17.4720], &["shoppingCentre"]),
    ("Trung tâm Thương mại Lao Bảo", "Lao Bảo Trade Centre", "19432", [106.6000, 16.6180], &["tradeCentre"]),
    ("Siêu thị Nam Đông Hà", "Nam Đông Hà Supermarket", "19351", [107.1130, 16.8000], &["supermarket"]),
    ("Siêu thị Quảng Trị", "Quảng Trị Supermarket", "19360", [107.1890, 16.7470], &["supermarket"]),
    ("Siêu thị Ba Đồn", "Ba Đồn Supermarket", "19009", [106.4210, 17.7550], &["supermarket"]),
    ("Siêu thị Đồng Sơn", "Đồng Sơn Supermarket", "18871", [106.6000, 17.4550], &["supermarket"]),
    ("Siêu thị Khe Sanh", "Khe Sanh Supermarket", "19429", [106.7300, 16.6250], &["supermarket"]),
    ("Siêu thị Vĩnh Linh", "Vĩnh Linh Supermarket", "19363", [107.0150, 17.0650], &["supermarket"]),
];

/// The shops whose names are real places (the first five of [`SHOPS`]).
const REAL_SHOPS: usize = 5;

pub(super) fn markets(d: &mut Demo) -> Result<()> {
    for (vi, en, code, near) in NAMED_MARKETS {
        let e = d.landmark("PointOfInterest", (vi, en), code, near)?;
        d.push(
            e,
            json!({
                "category": prop(json!(["market"])),
                "openingHours": prop("Mo-Su 05:00-18:00"),
            }),
        );
    }
    // Every other unit's own market, but on Cồn Cỏ.
    for unit in d.all {
        if unit.kind == UnitKind::SpecialZone || NAMED_MARKETS.iter().any(|m| m.2 == unit.code) {
            continue;
        }
        let (e, mut rng) = d.commune_place(
            "PointOfInterest",
            &format!("market-{}", unit.code),
            (
                &format!("Chợ {}", unit.name),
                &format!("{} Market", unit.name_en),
            ),
            unit,
        )?;
        d.push(
            e,
            json!({
                "category": prop(json!(["market"])),
                "openingHours": prop(if rng.chance(0.3) { "Mo-Su 05:00-11:00" } else { "Mo-Su 05:00-17:00" }),
            }),
        );
    }
    let mut rng = Rng::new("shops");
    for (n, (vi, en, code, near, categories)) in SHOPS.into_iter().enumerate() {
        let id = format!("urn:ngsi-ld:PointOfInterest:demo-{}", super::slug(vi));
        let unit = d.unit(code)?;
        let at = if n < REAL_SHOPS {
            d.known(&id, unit, near)?
        } else {
            d.around(&id, unit, &mut rng, near, 800.0)?
        };
        let e = d.base(&id, "PointOfInterest", (vi, en), unit, at);
        d.push(
            e,
            json!({
                "category": prop(categories),
                "openingHours": prop("Mo-Su 08:00-22:00"),
            }),
        );
    }
    Ok(())
}

pub(super) fn ecommerce(d: &mut Demo) -> Result<()> {
    let period_end = d.at.format("%Y-%m-%d").to_string();
    let quarter_start = d.at.format("%Y-01-01").to_string();
    let month_start = d.at.format("%Y-%m-01").to_string();
    for unit in d.all {
        let mut rng = Rng::new(&format!("ecommerce-{}", unit.code));
        let remote = REMOTE.contains(&unit.code.as_str());
        // (households buying online %, businesses selling online %, parcels a month)
        let (buying, selling, parcels) = match unit.kind {
            UnitKind::Ward => ((55.0, 80.0), (30.0, 55.0), (9_000.0, 30_000.0)),
            UnitKind::SpecialZone => ((15.0, 30.0), (5.0, 15.0), (20.0, 90.0)),
            _ if remote => ((8.0, 25.0), (2.0, 10.0), (150.0, 900.0)),
            _ => ((25.0, 50.0), (10.0, 28.0), (900.0, 4_500.0)),
        };
        let at = d.label("e-commerce", unit)?;
        for (slug, range, unit_code, decimals, frequency, from, vi, en) in [
            (
                "online-buying",
                buying,
                "P1",
                1,
                "quarterly",
                &quarter_start,
                "Tỷ lệ hộ gia đình mua hàng trực tuyến",
                "Households buying online",
            ),
            (
                "online-selling",
                selling,
                "P1",
                1,
                "quarterly",
                &quarter_start,
                "Tỷ lệ cơ sở kinh doanh bán hàng trực tuyến",
                "Businesses selling online",
            ),
            (
                "parcels",
                parcels,
                "C62",
                0,
                "monthly",
                &month_start,
                "Số bưu kiện thương mại điện tử được giao",
                "E-commerce parcels delivered",
            ),
        ] {
            let e = d.unit_kpi(slug, (vi, en), unit, at);
            let value = rng.value(range.0, range.1, decimals);
            // Counts are whole numbers.
            let value = if decimals == 0 {
                json!(value as u64)
            } else {
                json!(value)
            };
            let attrs = kpi_figure(
                "eCommerce",
                slug,
                value,
                unit_code,
                (from, &period_end),
                frequency,
                "automatic",
            );
            d.push(e, attrs);
        }
    }
    Ok(())
}
