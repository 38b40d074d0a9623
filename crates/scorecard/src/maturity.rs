//! Smart-city maturity self-assessment (Decree 269/2025/NĐ-CP, Circular 03/2026/TT-BXD):
//! three ascending levels, each criterion passed or failed, and **no evidence means
//! fail**. The criteria are data: [`DRAFT_CRITERIA`] is a draft, marked as such, until
//! an admin loads the Circular's annex in its place. Also the DTI's pillars and main
//! indicators (Decision 405/QĐ-BKHCN) and the Decision 766 groups, as data.
//!
//! Assessments are kept per urban ward as a `SmartCityAssessment` entity whose
//! `assessments` maps a criterion's code to its result, evidence links and the
//! assessor's sign-off.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hub::{Hub, Scope};
use ngsi::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::plan::{self, SMART_CITY_WARDS};
use crate::sources::{Input, KpiSource, Measured, Measurement, run_query};

/// One criterion of the maturity checklist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criterion {
    /// `B1.1`, `B2.3`…
    pub code: String,
    /// `B1`, `B2`, or a local group.
    pub group: String,
    /// 1 foundation building, 2 system linkage, 3 governance innovation.
    pub level: u8,
    /// The text in Vietnamese (and English).
    pub text: String,
    #[serde(default)]
    pub text_en: String,
    /// The evidence the criterion requires.
    pub evidence_required: String,
    /// What the platform can show for it (`ioc`, `hub`, `coverage`, `sensor-feeds`,
    /// `citizen-reports`, `open-data`), if anything.
    #[serde(default)]
    pub platform_evidence: Option<String>,
}

/// The checklist in force: the draft, or the list an admin loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checklist {
    pub draft: bool,
    pub source: String,
    pub criteria: Vec<Criterion>,
}

const DRAFT_SOURCE: &str = "DRAFT assembled from the summary of Circular 03/2026/TT-BXD (3 levels, pass/fail, no evidence means fail; 19 basic indicators in groups B1, B2): the annex's indicator names are not transcribed yet — replace this list with the annex";

fn c(
    code: &str,
    level: u8,
    text: &str,
    text_en: &str,
    evidence: &str,
    hook: Option<&str>,
) -> Criterion {
    Criterion {
        code: code.into(),
        group: code.split('.').next().unwrap_or_default().into(),
        level,
        text: text.into(),
        text_en: text_en.into(),
        evidence_required: evidence.into(),
        platform_evidence: hook.map(String::from),
    }
}

/// The draft checklist shipped until the annex is loaded.
pub fn draft_checklist() -> Checklist {
    Checklist {
        draft: true,
        source: DRAFT_SOURCE.into(),
        criteria: vec![
            c(
                "B1.1",
                1,
                "Trung tâm giám sát, điều hành đô thị thông minh đi vào vận hành",
                "The smart-city monitoring and operations centre is in operation",
                "Quyết định đưa vào vận hành; thời gian hoạt động; các nguồn dữ liệu kết nối",
                Some("ioc"),
            ),
            c(
                "B1.2",
                1,
                "Cơ sở dữ liệu đô thị dùng chung, chia sẻ qua giao diện chuẩn mở",
                "A shared urban database, shared through open-standard interfaces",
                "Danh mục dữ liệu; giao diện NGSI-LD/DCAT đang phục vụ",
                Some("hub"),
            ),
            c(
                "B1.3",
                1,
                "Hạ tầng băng rộng cố định và di động phủ toàn địa bàn",
                "Fixed and mobile broadband cover the whole area",
                "Số liệu phủ sóng của doanh nghiệp viễn thông theo đơn vị hành chính",
                Some("coverage"),
            ),
            c(
                "B1.4",
                1,
                "Hệ thống tiếp nhận, xử lý phản ánh hiện trường hoạt động, có thống kê thời hạn xử lý",
                "Citizen field reports are received and handled, with deadline statistics",
                "Thống kê phản ánh: đã tiếp nhận, đúng hạn, quá hạn",
                Some("citizen-reports"),
            ),
            c(
                "B1.5",
                1,
                "Quan trắc tự động môi trường (không khí, nước) có dữ liệu trực tiếp",
                "Automatic environmental monitoring (air, water) with live data",
                "Danh sách trạm, dữ liệu cập nhật trong 7 ngày",
                Some("sensor-feeds"),
            ),
            c(
                "B2.1",
                2,
                "Dữ liệu mở được công bố và cập nhật trong vòng 3 tháng",
                "Open data is published and updated within 3 months",
                "Danh mục dữ liệu mở; ngày cập nhật từng bộ dữ liệu",
                Some("open-data"),
            ),
            c(
                "B2.2",
                2,
                "Các hệ thống chuyên ngành (giao thông, điện, nước) liên thông qua nền tảng dữ liệu",
                "Sector systems (transport, electricity, water) linked through the data platform",
                "Nguồn dữ liệu chuyên ngành kết nối; thời điểm cập nhật gần nhất",
                Some("sensor-feeds"),
            ),
            c(
                "B2.3",
                2,
                "Hệ thống thông tin được bảo đảm an toàn theo cấp độ (Nghị định 85/2016/NĐ-CP)",
                "Information systems secured by level (Decree 85/2016/NĐ-CP)",
                "Hồ sơ đề xuất cấp độ được phê duyệt",
                None,
            ),
            c(
                "B2.4",
                3,
                "Điều hành dựa trên dữ liệu: báo cáo điều hành lấy từ dữ liệu thời gian thực",
                "Data-driven management: operational reports drawn from live data",
                "Báo cáo điều hành có trích dẫn nguồn dữ liệu",
                Some("hub"),
            ),
            c(
                "B2.5",
                3,
                "Người dân tham gia quản trị đô thị qua nền tảng số (đánh giá mức độ hài lòng)",
                "Residents take part in urban governance through digital channels (satisfaction ratings)",
                "Tỷ lệ phản ánh được người dân đánh giá; mức độ hài lòng",
                Some("citizen-reports"),
            ),
        ],
    }
}

/// The registry collection of the checklist an admin loaded.
const CHECKLIST: &str = "scorecard-checklist";
const MAX_CRITERIA: usize = 200;

/// The checklist in force in a tenant.
pub async fn checklist(hub: &Hub, tenant: &str) -> Result<Checklist, Error> {
    let stored = hub
        .records()
        .registry_get(CHECKLIST, tenant, "current")
        .await
        .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
    Ok(stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(draft_checklist))
}

/// Replaces the checklist (an admin loading the annex).
pub async fn replace_checklist(hub: &Hub, tenant: &str, list: Checklist) -> Result<(), Error> {
    if list.criteria.is_empty() || list.criteria.len() > MAX_CRITERIA {
        return Err(Error::bad_data(format!(
            "a checklist has 1 to {MAX_CRITERIA} criteria"
        )));
    }
    let mut codes = std::collections::BTreeSet::new();
    for c in &list.criteria {
        if !(1..=3).contains(&c.level) {
            return Err(Error::bad_data(format!("{}: level is 1, 2 or 3", c.code)));
        }
        if c.code.is_empty() || c.code.len() > 20 || !codes.insert(c.code.clone()) {
            return Err(Error::bad_data(format!(
                "criterion codes are 1 to 20 characters and unique ({:?})",
                c.code
            )));
        }
        if c.text.trim().is_empty() || c.text.len() > 2_000 {
            return Err(Error::bad_data(format!(
                "{}: text is 1 to 2000 bytes",
                c.code
            )));
        }
    }
    let value = serde_json::to_value(&list)
        .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
    hub.records()
        .registry_put(
            CHECKLIST,
            tenant,
            vec![("current".into(), value)],
            store::RegistryWrite::Upsert,
        )
        .await
        .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))
}

/// A criterion's assessment in a ward.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assessment {
    /// `pass` or `fail`.
    pub result: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// Filled by the service: who signed off, and when.
    #[serde(default)]
    pub assessor: Option<String>,
    #[serde(default)]
    pub assessed_at: Option<String>,
}

impl Assessment {
    /// Passed: assessed as passed, with evidence. No evidence means fail.
    pub fn passes(&self) -> bool {
        self.result == "pass" && !self.evidence.is_empty()
    }
}

pub fn assessment_id(ward: &str) -> String {
    format!("urn:ngsi-ld:SmartCityAssessment:plan-{ward}")
}

fn ward_name(code: &str) -> Option<&'static str> {
    SMART_CITY_WARDS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

/// The assessments of a ward (empty when none yet).
async fn assessments(
    hub: &Hub,
    scope: &Scope,
    ward: &str,
) -> Result<BTreeMap<String, Assessment>, Error> {
    match hub.get_entity(scope, &assessment_id(ward)).await {
        Ok(e) => Ok(crate::engine::keyvalues(&e)
            .get("assessments")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()),
        Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// Records the assessment of one criterion in one ward, signed by the caller. A pass
/// needs evidence.
pub async fn assess(
    hub: &Hub,
    scope: &Scope,
    ward: &str,
    code: &str,
    mut a: Assessment,
) -> Result<Value, Error> {
    let name = ward_name(ward)
        .ok_or_else(|| Error::not_found(format!("{ward} is not one of the plan's urban wards")))?;
    let list = checklist(hub, &scope.tenant).await?;
    if !list.criteria.iter().any(|c| c.code == code) {
        return Err(Error::not_found(format!(
            "no criterion {code} in the checklist"
        )));
    }
    if a.result != "pass" && a.result != "fail" {
        return Err(Error::bad_data("result is pass or fail"));
    }
    if a.result == "pass" && a.evidence.is_empty() {
        return Err(Error::bad_data(
            "a pass needs evidence: no evidence means fail",
        ));
    }
    if a.evidence.len() > 20 {
        return Err(Error::bad_data("at most 20 evidence links"));
    }
    a.evidence
        .iter()
        .try_for_each(|u| crate::engine::check_url(u))?;
    if a.note.as_ref().is_some_and(|n| n.len() > 2_000) {
        return Err(Error::bad_data("note is at most 2000 bytes"));
    }
    a.assessor = Some(scope.caller.actor.clone());
    a.assessed_at = Some(ngsi::entity::format_time(&Utc::now()));
    let mut all = assessments(hub, scope, ward).await?;
    all.insert(code.to_string(), a);
    let body = json!({
        "id": assessment_id(ward),
        "type": "SmartCityAssessment",
        "name": {"type": "Property", "value": name},
        "wardCode": {"type": "Property", "value": ward},
        "refAdministrativeArea": {"type": "Relationship", "object": format!("urn:ngsi-ld:AdministrativeArea:VN-44-{ward}")},
        "assessments": {"type": "Property", "value": serde_json::to_value(&all).unwrap_or(Value::Null)},
    });
    let ctx = ngsi::Context::core();
    let entity = ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    }
    .entity(&body, None)?;
    for (_, r) in hub.batch_upsert(scope, vec![Ok(entity)], false).await? {
        r?;
    }
    ward_report(hub, scope, ward, &list).await
}

/// The level a ward reaches: the highest level whose criteria, and those of every
/// level below, all pass (0: none).
pub fn level_reached(list: &Checklist, assessed: &BTreeMap<String, Assessment>) -> u8 {
    let mut level = 0;
    for l in 1..=3u8 {
        let of_level: Vec<&Criterion> = list.criteria.iter().filter(|c| c.level == l).collect();
        let all_pass = !of_level.is_empty()
            && of_level
                .iter()
                .all(|c| assessed.get(&c.code).is_some_and(Assessment::passes));
        if !all_pass {
            break;
        }
        level = l;
    }
    level
}

/// One ward's checklist: every criterion with its result (missing or without
/// evidence: fail), the level reached.
pub async fn ward_report(
    hub: &Hub,
    scope: &Scope,
    ward: &str,
    list: &Checklist,
) -> Result<Value, Error> {
    let name = ward_name(ward)
        .ok_or_else(|| Error::not_found(format!("{ward} is not one of the plan's urban wards")))?;
    let assessed = assessments(hub, scope, ward).await?;
    let criteria: Vec<Value> = list
        .criteria
        .iter()
        .map(|c| {
            let a = assessed.get(&c.code);
            let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "result".into(),
                    json!(if a.is_some_and(Assessment::passes) {
                        "pass"
                    } else {
                        "fail"
                    }),
                );
                obj.insert("assessed".into(), json!(a.is_some()));
                obj.insert("assessment".into(), json!(a));
            }
            v
        })
        .collect();
    Ok(json!({
        "ward": ward,
        "name": name,
        "draftChecklist": list.draft,
        "levelReached": level_reached(list, &assessed),
        "passed": criteria.iter().filter(|c| c["result"] == "pass").count(),
        "criteria": criteria,
    }))
}

/// What the platform can show for a criterion's `platformEvidence`, as queries with
/// their counts (or links): pre-filled, never a pass by itself.
pub async fn platform_evidence(hub: &Hub, scope: &Scope, hook: &str) -> Result<Vec<Value>, Error> {
    let queries: Vec<(&str, String)> = match hook {
        "coverage" => vec![
            (
                "broadband",
                "type=KeyPerformanceIndicator&q=indicator==%22broadband%22;kpiValue%3E0"
                    .to_string(),
            ),
            (
                "5g",
                "type=KeyPerformanceIndicator&q=indicator==%225g%22;kpiValue%3E0".to_string(),
            ),
        ],
        "sensor-feeds" => vec![
            ("air", "type=AirQualityObserved".to_string()),
            ("water", "type=WaterObserved".to_string()),
            ("traffic", "type=TrafficFlowObserved".to_string()),
            ("weather", "type=WeatherObserved".to_string()),
        ],
        "citizen-reports" => vec![("reports", "type=Open311_ServiceRequest".to_string())],
        "open-data" => vec![("datasets", "type=Dataset".to_string())],
        "hub" => vec![("entity types", "type=AdministrativeArea".to_string())],
        "ioc" => {
            return Ok(vec![
                json!({"name": "operations centre", "href": "/ioc/"}),
                json!({"name": "health", "href": "/health"}),
            ]);
        }
        _ => vec![],
    };
    let mut out = Vec::new();
    for (name, q) in queries {
        let (count, _) = run_query(hub, scope, &q, false).await?;
        let input = Input::counted(name, q, count);
        out.push(json!({"name": input.name, "query": input.query, "count": input.count, "href": input.href()}));
    }
    Ok(out)
}

/// The plan's smart-city KPI: wards at level 1 or above.
pub struct WardsAtLevel;

#[async_trait]
impl KpiSource for WardsAtLevel {
    fn kpi(&self) -> &str {
        "smart-city-wards"
    }

    fn watches(&self) -> Vec<String> {
        vec!["SmartCityAssessment".into()]
    }

    async fn measure(&self, hub: &Hub, scope: &Scope, _now: DateTime<Utc>) -> Measured {
        let query =
            "type=SmartCityAssessment&idPattern=%5Eurn%3Angsi-ld%3ASmartCityAssessment%3Aplan-";
        let (count, _) = run_query(hub, scope, query, false).await?;
        if count == 0 {
            return Ok(None);
        }
        let list = checklist(hub, &scope.tenant).await?;
        let mut at_level = Vec::new();
        for (ward, _) in SMART_CITY_WARDS {
            if level_reached(&list, &assessments(hub, scope, ward).await?) >= 1 {
                at_level.push(ward);
            }
        }
        Ok(Some(Measurement {
            value: at_level.len() as f64,
            formula: format!(
                "wards of {} whose level-1 criteria all pass with evidence{}: [{}]",
                SMART_CITY_WARDS.map(|w| w.0).join(", "),
                if list.draft { " (draft checklist)" } else { "" },
                at_level.join(", ")
            ),
            inputs: vec![Input::counted("assessments", query, count)],
        }))
    }
}

/// The provincial DTI under Decision 405/QĐ-BKHCN (2025): 3 pillars, 8 main
/// indicators (47 components), values 0–1. Weights per edition are not known (see the
/// docs), so none are applied.
pub fn dti() -> Value {
    json!({
        "edition": "405/QĐ-BKHCN (2025)",
        "scale": "0-1",
        "pillars": [
            {"code": "CQS", "name": "Chính quyền số", "nameEn": "Digital government"},
            {"code": "KTS", "name": "Kinh tế số", "nameEn": "Digital economy"},
            {"code": "XHS", "name": "Xã hội số", "nameEn": "Digital society"},
        ],
        "indicators": [
            {"number": 1, "name": "Nhận thức số", "nameEn": "Digital awareness"},
            {"number": 2, "name": "Thể chế số", "nameEn": "Digital institutions"},
            {"number": 3, "name": "Hạ tầng số", "nameEn": "Digital infrastructure"},
            {"number": 4, "name": "Nhân lực số", "nameEn": "Digital human resources"},
            {"number": 5, "name": "An toàn thông tin mạng", "nameEn": "Cybersecurity"},
            {"number": 6, "name": "Hoạt động chính quyền số", "nameEn": "Digital-government activity"},
            {"number": 7, "name": "Hoạt động kinh tế số", "nameEn": "Digital-economy activity"},
            {"number": 8, "name": "Hoạt động xã hội số", "nameEn": "Digital-society activity"},
        ],
        "kpi": plan::kpi_id("dti"),
    })
}

/// Every ward's report.
pub async fn report(hub: &Hub, scope: &Scope) -> Result<Value, Error> {
    let list = checklist(hub, &scope.tenant).await?;
    let mut wards = Vec::new();
    for (ward, _) in SMART_CITY_WARDS {
        wards.push(ward_report(hub, scope, ward, &list).await?);
    }
    let mut hooks = Map::new();
    for c in &list.criteria {
        if let Some(h) = &c.platform_evidence
            && !hooks.contains_key(h)
        {
            hooks.insert(h.clone(), json!(platform_evidence(hub, scope, h).await?));
        }
    }
    Ok(json!({
        "draft": list.draft,
        "source": list.source,
        "levels": [
            {"level": 1, "name": "Cấp độ xây dựng nền tảng", "nameEn": "Foundation building"},
            {"level": 2, "name": "Cấp độ liên kết hệ thống", "nameEn": "System linkage"},
            {"level": 3, "name": "Cấp độ đổi mới quản trị", "nameEn": "Governance innovation"},
        ],
        "rule": "each criterion passes or fails; no evidence means fail",
        "wards": wards,
        "platformEvidence": hooks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(evidence: &[&str]) -> Assessment {
        Assessment {
            result: "pass".into(),
            evidence: evidence.iter().map(|s| s.to_string()).collect(),
            note: None,
            assessor: None,
            assessed_at: None,
        }
    }

    #[test]
    fn a_level_is_reached_when_all_its_criteria_pass_with_evidence() {
        let list = draft_checklist();
        let mut a = BTreeMap::new();
        assert_eq!(level_reached(&list, &a), 0);
        for c in list.criteria.iter().filter(|c| c.level == 1) {
            a.insert(c.code.clone(), pass(&["https://example.org/e.pdf"]));
        }
        assert_eq!(level_reached(&list, &a), 1);
        // No evidence means fail, even when marked as passed.
        a.insert("B1.1".into(), pass(&[]));
        assert_eq!(level_reached(&list, &a), 0);
        // Level 3 without level 2 counts for nothing.
        a.insert("B1.1".into(), pass(&["https://example.org/e.pdf"]));
        for c in list.criteria.iter().filter(|c| c.level == 3) {
            a.insert(c.code.clone(), pass(&["https://example.org/e.pdf"]));
        }
        assert_eq!(level_reached(&list, &a), 1);
    }
}
