//! Banking: bank offices and ATMs as points of interest, and the share of businesses
//! that accept cashless payment in each commune-level unit, as key performance
//! indicators.
//!
//! The banks are the national ones; which of them has an office in which unit, every
//! position and every figure is demo. Offices stand in the wards and in the communes
//! that were district towns before 2025, ATMs around the offices.

use serde_json::json;

use super::connectivity::REMOTE;
use super::{Demo, prop};
use crate::Result;
use crate::admin::{AdminUnit, UnitKind};
use crate::geom::Position;
use crate::rng::Rng;

/// The banks an office may belong to. Agribank comes first: it is the one with an
/// office in every former district town.
const BANKS: [&str; 7] = [
    "Agribank",
    "Vietcombank",
    "VietinBank",
    "BIDV",
    "Sacombank",
    "MB",
    "Techcombank",
];

/// (unit, the centre its offices gather around, offices, ATMs per office)
#[rustfmt::skip]
const OFFICES: [(&str, Position, usize, usize); 26] = [
    // The wards.
    ("19333", [107.1003, 16.8163], 6, 3),
    ("18880", [106.6200, 17.4700], 6, 3),
    ("19351", [107.1130, 16.8000], 3, 3),
    ("19360", [107.1890, 16.7470], 3, 3),
    ("19009", [106.4210, 17.7550], 3, 3),
    ("18871", [106.6000, 17.4550], 2, 3),
    ("18859", [106.5900, 17.4900], 2, 3),
    ("19066", [106.4400, 17.7450], 2, 3),
    // Former district towns and the border gate.
    ("19429", [106.7300, 16.6250], 2, 2),
    ("19432", [106.5980, 16.6190], 2, 2),
    ("19363", [107.0150, 17.0650], 2, 2),
    ("19495", [107.0680, 16.9150], 1, 2),
    ("19597", [106.9920, 16.8000], 1, 2),
    ("19624", [107.1650, 16.7720], 1, 2),
    ("19702", [107.2450, 16.6600], 1, 2),
    ("19555", [106.9000, 16.6800], 1, 2),
    ("19249", [106.7900, 17.2200], 1, 2),
    ("19207", [106.6330, 17.4010], 1, 2),
    ("19111", [106.5300, 17.5870], 1, 2),
    ("18949", [106.0200, 17.8850], 1, 2),
    ("18901", [105.9800, 17.7800], 1, 2),
    ("19057", [106.4000, 17.8050], 1, 2),
    ("19138", [106.2900, 17.6000], 1, 2),
    ("19496", [107.1900, 16.9060], 1, 2),
    ("19414", [107.1080, 17.0170], 1, 2),
    ("19681", [107.2600, 16.6300], 1, 2),
];

/// How far from the centre offices are drawn, in metres (normal spread).
const OFFICE_SPREAD_M: f64 = 900.0;
/// How far from its office an ATM is drawn.
const ATM_SPREAD_M: f64 = 400.0;

/// A position around `centre` inside `unit`, or anywhere inside it if the centre is
/// too far out.
fn near(
    d: &Demo,
    id: &str,
    unit: &AdminUnit,
    rng: &mut Rng,
    centre: Position,
    spread: f64,
) -> Result<Position> {
    match d.around(id, unit, rng, centre, spread) {
        Ok(p) => Ok(p),
        Err(_) => d.anywhere(id, unit, rng),
    }
}

pub(super) fn offices(d: &mut Demo) -> Result<()> {
    for (code, centre, offices, atms) in OFFICES {
        let unit = d.unit(code)?;
        let mut rng = Rng::new(&format!("banks-{code}"));
        // Wards get a mix of banks; elsewhere Agribank first.
        let first = if unit.kind == UnitKind::Ward {
            rng.below(BANKS.len())
        } else {
            0
        };
        for n in 1..=offices {
            let bank = BANKS[(first + n - 1) % BANKS.len()];
            let id = format!("urn:ngsi-ld:PointOfInterest:demo-bank-{code}-{n}");
            let at = near(d, &id, unit, &mut rng, centre, OFFICE_SPREAD_M)?;
            let e = d.base(
                &id,
                "PointOfInterest",
                (
                    &format!("{bank} – Phòng giao dịch {}", unit.name),
                    &format!("{bank} – {} transaction office", unit.name_en),
                ),
                unit,
                at,
            );
            d.push(
                e,
                json!({
                    "category": prop(json!(["bank"])),
                    "description": prop(format!("Phòng giao dịch của {bank}")),
                    "openingHours": prop("Mo-Fr 07:30-11:30,13:30-17:00; Sa 07:30-11:30"),
                }),
            );
            for k in 1..=atms {
                let atm = format!("urn:ngsi-ld:PointOfInterest:demo-atm-{code}-{n}-{k}");
                // The first ATM is at the office; the others nearby.
                let spot = if k == 1 { 25.0 } else { ATM_SPREAD_M };
                let p = near(d, &atm, unit, &mut rng, at, spot)?;
                let status = match rng.below(40) {
                    0 => "outOfService",
                    1 => "outOfCash",
                    _ => "inService",
                };
                let e = d.base_in_unit(
                    &atm,
                    "PointOfInterest",
                    (
                        &format!("ATM {bank} {n}.{k}"),
                        &format!("{bank} ATM {n}.{k}"),
                    ),
                    unit,
                    p,
                );
                let attrs = json!({
                    "category": prop(json!(["atm"])),
                    "description": prop(format!("Máy rút tiền tự động của {bank}")),
                    "openingHours": prop("Mo-Su 00:00-24:00"),
                    "status": d.measured(status, None),
                });
                d.push(e, attrs);
            }
        }
    }
    Ok(())
}

pub(super) fn cashless(d: &mut Demo) -> Result<()> {
    for unit in d.all {
        let mut rng = Rng::new(&format!("cashless-{}", unit.code));
        let range = match unit.kind {
            UnitKind::Ward => (72.0, 95.0),
            UnitKind::SpecialZone => (30.0, 55.0),
            _ if REMOTE.contains(&unit.code.as_str()) => (8.0, 35.0),
            _ => (35.0, 70.0),
        };
        let at = d.label("cashless payment", unit)?;
        let e = d.unit_kpi(
            "cashless",
            (
                "Tỷ lệ cơ sở kinh doanh chấp nhận thanh toán không dùng tiền mặt",
                "Businesses accepting cashless payment",
            ),
            unit,
            at,
        );
        let percent = rng.value(range.0, range.1, 1);
        let attrs = d.surveyed_percent("cashlessPayment", "cashless", percent);
        d.push(e, attrs);
    }
    Ok(())
}
