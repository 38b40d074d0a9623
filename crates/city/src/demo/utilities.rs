//! Street lights, electricity meters and water meters in the three smart-city wards.

use chrono::{TimeDelta, Timelike};
use serde_json::json;

use super::{Demo, MARGIN_M, SMART_WARDS, prop, prop_in};
use crate::Result;
use crate::geom::offset;
use crate::rng::Rng;

/// Street lights per ward, in the order of [`SMART_WARDS`].
const LIGHTS: [usize; 3] = [180, 140, 130];
/// Metres between lights along a street.
const LIGHT_SPACING_M: f64 = 35.0;
/// Households with a smart electricity meter and a smart water meter, per ward.
const METERS: usize = 60;

pub(super) fn street_lights(d: &mut Demo) -> Result<()> {
    // Lights are on from 18:00 to 06:00 local time (UTC+7), dimmed after midnight.
    let local_hour = (d.at + TimeDelta::hours(7)).hour();
    let (state, level) = match local_hour {
        18..=23 => ("on", 1.0),
        0..=5 => ("low", 0.5),
        _ => ("off", 0.0),
    };
    for ((code, centre), count) in SMART_WARDS.into_iter().zip(LIGHTS) {
        let unit = d.unit(code)?;
        let mut rng = Rng::new(&format!("street-lights-{code}"));
        let mut n = 0;
        let mut street = 0;
        // Lights stand along straight demo streets drawn from around the centre.
        while n < count && street < 500 {
            street += 1;
            let start = d.around(
                &format!("street {street} of {code}"),
                unit,
                &mut rng,
                centre,
                1200.0,
            )?;
            let bearing = rng.range(0.0, std::f64::consts::PI);
            let length = 8 + rng.below(20);
            for i in 0..length {
                if n == count {
                    break;
                }
                let p = crate::geom::round6(offset(start, i as f64 * LIGHT_SPACING_M, bearing));
                if !unit.shape.holds(p, MARGIN_M) {
                    break;
                }
                n += 1;
                let id = format!("urn:ngsi-ld:Streetlight:demo-{code}-{n:04}");
                let status = match rng.below(50) {
                    0..=1 => "defectiveLamp",
                    2 => "columnIssue",
                    3 => "brokenLantern",
                    _ => "ok",
                };
                let (state, level) = if status == "ok" {
                    (state, level)
                } else {
                    ("off", 0.0)
                };
                let e = d.base_in_unit(
                    &id,
                    "Streetlight",
                    (
                        &format!("Đèn đường {n:04}"),
                        &format!("Street light {n:04}"),
                    ),
                    unit,
                    p,
                );
                let attrs = json!({
                    "status": d.measured(status, None),
                    "powerState": d.measured(state, None),
                    "illuminanceLevel": d.measured(level, None),
                    "lanternHeight": prop_in(if rng.chance(0.7) { 9 } else { 7 }, "MTR"),
                    "circuit": prop(format!("{code}-C{street:02}")),
                    "areaServed": prop(unit.full_name.clone()),
                    "dateLastLampChange": prop(format!("202{}-{:02}-{:02}", 3 + rng.below(3), 1 + rng.below(12), 1 + rng.below(28))),
                });
                d.push(e, attrs);
            }
        }
    }
    Ok(())
}

pub(super) fn meters(d: &mut Demo) -> Result<()> {
    for (code, centre) in SMART_WARDS {
        let unit = d.unit(code)?;
        let mut rng = Rng::new(&format!("meters-{code}"));
        for n in 1..=METERS {
            let suffix = format!("{code}-{n:04}");
            let id = format!("urn:ngsi-ld:ACMeasurement:demo-{suffix}");
            let at = d.around(&id, unit, &mut rng, centre, 1500.0)?;
            let power_kw = rng.value(0.1, 3.5, 2);
            let voltage = rng.value(220.0, 232.0, 1);
            let power_factor = rng.value(0.85, 0.99, 2);
            let current = Rng::round(power_kw * 1000.0 / (voltage * power_factor), 2);
            let e = d.base_in_unit(
                &id,
                "ACMeasurement",
                (
                    &format!("Công tơ điện {n:04}"),
                    &format!("Electricity meter {n:04}"),
                ),
                unit,
                at,
            );
            let attrs = json!({
                "phaseType": prop("singlePhase"),
                "dateObserved": prop(d.observed_at.clone()),
                "dateEnergyMeteringStarted": prop(format!("202{}-{:02}-01T00:00:00Z", 2 + rng.below(3), 1 + rng.below(12))),
                "totalActiveEnergyImport": d.measured(rng.value(400.0, 18000.0, 1), Some("KWH")),
                "totalActivePower": d.measured(power_kw, Some("KWT")),
                "phaseVoltage": d.measured(json!({"L": voltage}), Some("VLT")),
                "current": d.measured(json!({"L": current, "N": current}), Some("AMP")),
                "powerFactor": d.measured(json!({"L": power_factor}), None),
                "frequency": d.measured(rng.value(49.9, 50.1, 2), Some("HTZ")),
            });
            d.push(e, attrs);

            let id = format!("urn:ngsi-ld:WaterConsumptionObserved:demo-{suffix}");
            // The water meter is at the same house, a few metres away.
            let at = unit
                .shape
                .place(
                    offset(at, 4.0, rng.range(0.0, std::f64::consts::TAU)),
                    MARGIN_M,
                )
                .unwrap_or(at);
            let leak = rng.chance(0.04);
            let e = d.base_in_unit(
                &id,
                "WaterConsumptionObserved",
                (
                    &format!("Đồng hồ nước {n:04}"),
                    &format!("Water meter {n:04}"),
                ),
                unit,
                at,
            );
            let attrs = json!({
                "dateObserved": prop(d.observed_at.clone()),
                "waterConsumption": d.measured(rng.value(40.0, 1800.0, 3), Some("MTQ")),
                "maxFlow": d.measured(rng.value(200.0, 1500.0, 0), Some("E32")),
                "alarmInProgress": d.measured(leak, None),
                "alarmFlowPersistence": d.measured(if leak { "In progress persistence" } else { "Nothing to report" }, None),
                "alarmStopsLeaks": d.measured(false, None),
                "alarmTamper": d.measured(false, None),
                "alarmWaterQuality": d.measured(false, None),
            });
            d.push(e, attrs);
        }
    }
    Ok(())
}
