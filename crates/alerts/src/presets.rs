//! Preset rules, switched on by `dothi demo`: the province's flood alarm levels on
//! the river gauges (each gauge's own `alarmLevel1..3`), air quality, silent sensors
//! and street lights out; and the inhibitions among the flood levels.

use serde_json::{Value, json};

use crate::policy::InhibitionSpec;
use crate::rule::RuleSpec;

fn flood(level: u8, roman: &str, severity: &str) -> Value {
    json!({
        "id": format!("flood-level-{level}"),
        "name": format!("Báo động lũ cấp {roman} / Flood alarm level {roman}"),
        "scope": {"type": "WaterObserved"},
        // Fires on the first reading at or above the gauge's level; clears 0.1 m below.
        "condition": {"kind": "compare", "attribute": "waterLevel", "op": ">=", "other": format!("alarmLevel{level}")},
        "clear": {"hysteresis": 0.1},
        "severity": severity,
        "category": "naturalDisaster",
        "subCategory": "flood",
        "labels": {"alarmLevel": level.to_string(), "group": "flood"},
        "message": {
            "vi": format!("{{place}}: mực nước {{value}} m, vượt mức báo động {roman} ({{threshold}} m)"),
            "en": format!("{{place}}: water level {{value}} m, above alarm level {roman} ({{threshold}} m)"),
        }
    })
}

fn aqi(above: u32, severity: &str) -> Value {
    json!({
        "id": format!("aqi-above-{above}"),
        "name": format!("AQI trên {above} trong 1 giờ / AQI above {above} for 1 hour"),
        "scope": {"type": "AirQualityObserved"},
        "condition": {"kind": "threshold", "attribute": "airQualityIndex", "op": ">", "value": above},
        "for": "1h",
        "severity": severity,
        "category": "environment",
        "subCategory": "airPollution",
        "labels": {"group": "air"},
        "message": {
            "vi": format!("{{place}}: chỉ số AQI {{value}} trên {above} suốt 1 giờ"),
            "en": format!("{{place}}: AQI {{value}}, above {above} for an hour"),
        }
    })
}

fn silent(entity_type: &str) -> Value {
    json!({
        "id": format!("silent-{}", entity_type.to_lowercase()),
        "name": format!("Thiết bị im lặng 15 phút / Silent for 15 minutes ({entity_type})"),
        "scope": {"type": entity_type},
        "condition": {"kind": "stale", "after": "15m"},
        "severity": "medium",
        "category": "security",
        "subCategory": "deviceSilent",
        "labels": {"group": "devices"},
        "message": {
            "vi": "{place}: không nhận được dữ liệu từ {value}",
            "en": "{place}: no data since {value}",
        }
    })
}

fn street_light_out() -> Value {
    json!({
        "id": "street-light-out",
        "name": "Đèn đường hỏng / Street light out",
        "scope": {"type": "Streetlight"},
        "condition": {"kind": "q", "q": "status!=\"ok\""},
        "severity": "low",
        "category": "security",
        "subCategory": "streetLightOut",
        "labels": {"group": "lighting"},
        "message": {
            "vi": "{place} không sáng",
            "en": "{place} is out",
        }
    })
}

/// The entity type of citizen reports (written by the reports service).
pub const REPORT_TYPE: &str = "Open311_ServiceRequest";

/// A citizen report past a due date while it still waits for the agency: the answer
/// (`expected_datetime`) while the report is open, its acceptance (`dueAcceptAt`)
/// while it is only received. Together they say what the reports service calls
/// overdue; the alert clears when the date moves (an extension) or the report moves
/// on.
fn report_overdue(id: &str, attribute: &str, stages: &str, what: (&str, &str)) -> Value {
    json!({
        "id": id,
        "name": format!("Phản ánh quá hạn {} / Citizen report overdue: {}", what.0, what.1),
        "scope": {"type": REPORT_TYPE, "q": format!("workflowStatus=={stages}")},
        "condition": {"kind": "deadline", "attribute": attribute},
        // An office matter, not an emergency: below the operations centre's banner.
        "severity": "low",
        "category": "administrative",
        "subCategory": "reportOverdue",
        "labels": {"group": "reports"},
        "message": {
            "vi": format!("Phản ánh {{entity}} quá hạn {}: hạn {{value}}", what.0),
            "en": format!("Report {{entity}} is overdue ({}): due {{value}}", what.1),
        }
    })
}

/// The demo's rules: flood levels I–III, AQI above 150 and 200 for an hour, a
/// staleness rule per sensor type (`sensor_types`), street lights out, citizen
/// reports overdue.
pub fn demo(sensor_types: &[&str]) -> Vec<RuleSpec> {
    let mut out = vec![
        flood(1, "I", "medium"),
        flood(2, "II", "high"),
        flood(3, "III", "critical"),
        aqi(150, "high"),
        aqi(200, "critical"),
        street_light_out(),
        report_overdue(
            "report-overdue",
            "expected_datetime",
            "\"received\",\"accepted\",\"assigned\",\"in_progress\"",
            ("trả lời", "answer"),
        ),
        report_overdue(
            "report-acceptance-overdue",
            "dueAcceptAt",
            "\"received\"",
            ("tiếp nhận", "acceptance"),
        ),
    ];
    let mut types: Vec<&str> = sensor_types.to_vec();
    types.sort_unstable();
    types.dedup();
    out.extend(types.into_iter().map(silent));
    out.into_iter()
        .filter_map(|v| RuleSpec::from_json(&v).ok())
        .collect()
}

/// The demo's inhibitions: a gauge's flood level III mutes its levels I and II, and
/// level II its level I, so that a policy tells of the highest level alone.
pub fn demo_inhibitions() -> Vec<InhibitionSpec> {
    let flood = json!({"name": "group", "value": "flood"});
    [
        ("flood-level-3-over-1-2", "3", "1|2"),
        ("flood-level-2-over-1", "2", "1"),
    ]
    .into_iter()
    .filter_map(|(id, source, target)| {
        crate::policy::from_json::<InhibitionSpec>(&json!({
            "id": id,
            "source": [flood, {"name": "alarmLevel", "value": source}],
            "target": [flood, {"name": "alarmLevel", "op": "=~", "value": target}],
            "equal": ["entity"],
            "comment": "Mức cao hơn thay mức thấp hơn / The higher level stands for the lower"
        }))
        .ok()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inhibitions_compile() {
        let list = demo_inhibitions();
        assert_eq!(list.len(), 2);
        for i in list {
            i.compile().unwrap_or_else(|e| panic!("{}: {e}", i.id));
        }
    }

    #[test]
    fn every_preset_compiles() {
        let rules = demo(&["WaterObserved", "AirQualityObserved", "WaterObserved"]);
        assert_eq!(rules.len(), 8 + 2);
        for r in rules {
            let id = r.id.clone();
            r.compile("").unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }
}
