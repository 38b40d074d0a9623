//! The plan as data: its goals (2025, 2030, the 2045 vision), its eight task groups and
//! its KPIs, each an NGSI-LD entity. KPIs follow the Smart Data Models
//! `KeyPerformanceIndicator` (`kpiValue`, `calculationPeriod`, `calculationMethod`,
//! `calculationFormula`, `calculationFrequency`, `organization`, `currentStanding`) with
//! the plan's own additions: `target` (per year), `baseline`, `direction`, `mode`,
//! `status`, `evidence`.
//!
//! Targets and owners here are the defaults an admin edits; the numbers come from the
//! plan (Quảng Trị's plan for digital transformation, targets for 2025 and 2030).

use serde_json::{Map, Value, json};

/// How a KPI gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Computed from the hub's data by a [`crate::sources::KpiSource`].
    Computed,
    /// Computed, then confirmed by an officer.
    Confirmed,
    /// Entered by an agency with evidence, approved by an admin.
    Entered,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Computed => "computed",
            Mode::Confirmed => "confirmed",
            Mode::Entered => "entered",
        }
    }

    /// The Smart Data Models `calculationMethod` of the mode.
    fn calculation_method(self) -> &'static str {
        match self {
            Mode::Computed => "automatic",
            Mode::Confirmed => "semiautomatic",
            Mode::Entered => "manual",
        }
    }
}

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increase,
    Decrease,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
        }
    }
}

/// One KPI of the plan.
#[derive(Debug, Clone)]
pub struct KpiDef {
    /// The id is `urn:ngsi-ld:KeyPerformanceIndicator:plan-<slug>`.
    pub slug: &'static str,
    /// The plan's target it measures (T1…T12 of the indicator notes).
    pub plan_ref: &'static str,
    pub name: (&'static str, &'static str),
    /// `P1` percent, `C62` a count, or none (a score or index).
    pub unit_code: Option<&'static str>,
    /// The largest value the KPI can take (7 sectors, 100 %), for display.
    pub max: Option<f64>,
    pub mode: Mode,
    pub direction: Direction,
    pub targets: &'static [(u16, f64)],
    pub owner: &'static str,
    pub goals: &'static [&'static str],
    pub task_group: u8,
    pub formula: &'static str,
    pub frequency: &'static str,
}

/// One goal of the plan (a horizon).
#[derive(Debug, Clone)]
pub struct GoalDef {
    pub slug: &'static str,
    pub year: u16,
    pub text: (&'static str, &'static str),
}

/// One of the plan's eight groups of tasks and solutions.
#[derive(Debug, Clone)]
pub struct TaskGroupDef {
    pub number: u8,
    pub name: (&'static str, &'static str),
    pub owner: &'static str,
}

/// The agencies that own KPIs and task groups by default (after the 2025 reorganisation
/// the Department of Science and Technology holds the former Information and
/// Communications portfolio).
pub const DEPT_SCIENCE: &str = "Sở Khoa học và Công nghệ tỉnh Quảng Trị";
pub const PROVINCE_OFFICE: &str = "Văn phòng UBND tỉnh Quảng Trị";
pub const DEPT_CONSTRUCTION: &str = "Sở Xây dựng tỉnh Quảng Trị";
pub const DEPT_AGRICULTURE_ENVIRONMENT: &str = "Sở Nông nghiệp và Môi trường tỉnh Quảng Trị";
pub const STATISTICS_OFFICE: &str = "Thống kê tỉnh Quảng Trị";
pub const DEPT_HOME_AFFAIRS: &str = "Sở Nội vụ tỉnh Quảng Trị";
pub const DEPT_FINANCE: &str = "Sở Tài chính tỉnh Quảng Trị";
pub const DEPT_FOREIGN_AFFAIRS: &str = "Sở Ngoại vụ tỉnh Quảng Trị";
pub const PARTY_PROPAGANDA: &str = "Ban Tuyên giáo và Dân vận Tỉnh ủy Quảng Trị";

/// The number of commune-level units of the province since 1 July 2025 (69 communes,
/// 8 wards, the Cồn Cỏ special zone): the denominator of "% of communes".
pub const COMMUNE_UNITS: u64 = 78;

/// The urban wards that replaced Đông Hà city and Quảng Trị town, which the plan's
/// smart-city target names.
pub const SMART_CITY_WARDS: [(&str, &str); 3] = [
    ("19333", "Phường Đông Hà"),
    ("19351", "Phường Nam Đông Hà"),
    ("19360", "Phường Quảng Trị"),
];

pub const GOALS: &[GoalDef] = &[
    GoalDef {
        slug: "2025",
        year: 2025,
        text: (
            "Đến năm 2025: cơ bản hoàn thành chuyển đổi số trong các cơ quan Đảng, Nhà nước, Mặt trận Tổ quốc và các tổ chức chính trị - xã hội; xây dựng chính quyền điện tử; Đông Hà và Quảng Trị cơ bản đáp ứng tiêu chí đô thị thông minh; Internet băng thông rộng phủ 100% các xã; kinh tế số khoảng 20% GRDP",
            "By 2025: digital transformation basically complete in Party, State, Front and socio-political bodies; e-government built; Đông Hà and Quảng Trị basically meet the smart-city criteria; broadband reaches 100% of communes; digital economy about 20% of GRDP",
        ),
    },
    GoalDef {
        slug: "2030",
        year: 2030,
        text: (
            "Đến năm 2030: phủ sóng 5G; mọi người dân truy cập băng rộng chi phí thấp; hoàn thành chính quyền điện tử; dịch vụ thiết yếu thông minh qua cơ sở dữ liệu lớn của đô thị thông minh; các đô thị lớn đạt hoặc tiệm cận tiêu chí đô thị thông minh; kinh tế số khoảng 30% GRDP",
            "By 2030: 5G coverage; every resident reaches low-cost broadband; e-government complete; essential smart services through the smart city's big database; major urban areas meet or approach the smart-city criteria; digital economy about 30% of GRDP",
        ),
    },
    GoalDef {
        slug: "2045",
        year: 2045,
        text: (
            "Tầm nhìn đến năm 2045: trình độ công nghệ, chất lượng nguồn nhân lực và năng suất lao động đạt mức khá của cả nước",
            "Vision to 2045: technology, human resources and labour productivity rank fairly high nationally",
        ),
    },
];

pub const TASK_GROUPS: &[TaskGroupDef] = &[
    TaskGroupDef {
        number: 1,
        name: (
            "Đổi mới tư duy, thống nhất nhận thức, tăng cường vai trò lãnh đạo của Đảng, quản lý của Nhà nước, phát huy sự tham gia của Mặt trận Tổ quốc Việt Nam và các tổ chức chính trị - xã hội",
            "Renew thinking and unify awareness; strengthen the Party's leadership and the State's management; engage the Fatherland Front and socio-political organisations",
        ),
        owner: PARTY_PROPAGANDA,
    },
    TaskGroupDef {
        number: 2,
        name: (
            "Cụ thể hóa chủ trương của Đảng, pháp luật của Nhà nước phù hợp với thực tiễn của tỉnh để hoàn thiện cơ chế, chính sách, chủ động tham gia chuyển đổi số và cuộc CMCN 4.0",
            "Turn national policy and law into provincial mechanisms and policies for digital transformation and the Fourth Industrial Revolution",
        ),
        owner: PROVINCE_OFFICE,
    },
    TaskGroupDef {
        number: 3,
        name: (
            "Phát triển cơ sở hạ tầng thông tin thiết yếu hiện đại, đồng bộ",
            "Develop modern, synchronised essential information infrastructure",
        ),
        owner: DEPT_SCIENCE,
    },
    TaskGroupDef {
        number: 4,
        name: (
            "Triển khai mạnh mẽ các chính sách phát triển và nâng cao năng lực đổi mới sáng tạo",
            "Implement policies that develop innovation capacity",
        ),
        owner: DEPT_SCIENCE,
    },
    TaskGroupDef {
        number: 5,
        name: (
            "Triển khai thực hiện chính sách phát triển nguồn nhân lực",
            "Implement the human-resources development policy",
        ),
        owner: DEPT_HOME_AFFAIRS,
    },
    TaskGroupDef {
        number: 6,
        name: (
            "Phát triển các ngành công nghệ ưu tiên",
            "Develop priority technology industries",
        ),
        owner: DEPT_FINANCE,
    },
    TaskGroupDef {
        number: 7,
        name: (
            "Chính sách hợp tác, hội nhập quốc tế",
            "International cooperation and integration",
        ),
        owner: DEPT_FOREIGN_AFFAIRS,
    },
    TaskGroupDef {
        number: 8,
        name: (
            "Thúc đẩy chuyển đổi số trong các cơ quan Đảng, Nhà nước, Mặt trận Tổ quốc Việt Nam và các tổ chức chính trị - xã hội",
            "Promote digital transformation in the agencies of the Party, the State, the Fatherland Front and the socio-political organisations",
        ),
        owner: PROVINCE_OFFICE,
    },
];

/// Not a KPI: the members that most computed KPIs share (a percentage, the higher the
/// better, computed daily, with no target year), to complete them with `..`.
const COMPUTED_PERCENT: KpiDef = KpiDef {
    slug: "",
    plan_ref: "",
    name: ("", ""),
    unit_code: Some("P1"),
    max: Some(100.0),
    mode: Mode::Computed,
    direction: Direction::Increase,
    targets: &[],
    owner: DEPT_SCIENCE,
    goals: &[],
    task_group: 0,
    formula: "",
    frequency: "daily",
};

pub const KPIS: &[KpiDef] = &[
    KpiDef {
        slug: "broadband-communes",
        plan_ref: "T5",
        name: (
            "Tỷ lệ xã, phường, đặc khu có Internet băng thông rộng cố định",
            "Commune-level units reached by fixed broadband",
        ),
        targets: &[(2025, 100.0), (2030, 100.0)],
        owner: DEPT_SCIENCE,
        goals: &["2025"],
        task_group: 3,
        formula: "units whose KeyPerformanceIndicator 'broadband' (households with fixed broadband, %) is above 0, over the 78 commune-level units, × 100",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "5g-communes",
        plan_ref: "T7",
        name: (
            "Tỷ lệ xã, phường, đặc khu được phủ sóng 5G",
            "Commune-level units covered by 5G",
        ),
        targets: &[(2030, 100.0)],
        owner: DEPT_SCIENCE,
        goals: &["2030"],
        task_group: 3,
        formula: "units whose KeyPerformanceIndicator '5g' (population covered by 5G, %) is above 0, over the 78 commune-level units, × 100",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "priority-sectors-live",
        plan_ref: "T4",
        name: (
            "Số lĩnh vực ưu tiên có dịch vụ thông minh đang hoạt động",
            "Priority sectors with a live smart service",
        ),
        unit_code: Some("C62"),
        max: Some(7.0),
        mode: Mode::Computed,
        direction: Direction::Increase,
        targets: &[(2025, 7.0)],
        owner: DEPT_SCIENCE,
        goals: &["2025"],
        task_group: 8,
        formula: "sectors (health, education, tourism, transport, natural resources and environment, agriculture, e-government) with at least one entity of their types whose live attribute was observed or modified in the last 7 days",
        frequency: "daily",
    },
    KpiDef {
        slug: "essential-services-live",
        plan_ref: "T9",
        name: (
            "Số dịch vụ thiết yếu thông minh có dữ liệu trực tiếp trong cơ sở dữ liệu lớn",
            "Essential smart services with live data in the hub",
        ),
        unit_code: Some("C62"),
        max: Some(8.0),
        mode: Mode::Computed,
        direction: Direction::Increase,
        targets: &[(2030, 8.0)],
        owner: DEPT_SCIENCE,
        goals: &["2030"],
        task_group: 3,
        formula: "domains (electricity, water, banking, commerce, e-commerce, tourism, environment, urban planning and housing) with at least one entity of their types whose live attribute was observed or modified in the last 7 days",
        frequency: "daily",
    },
    KpiDef {
        slug: "digital-economy-grdp",
        plan_ref: "T6, T11",
        name: (
            "Tỷ trọng kinh tế số trong GRDP",
            "Digital economy share of GRDP",
        ),
        unit_code: Some("P1"),
        max: Some(100.0),
        mode: Mode::Entered,
        direction: Direction::Increase,
        targets: &[(2025, 20.0), (2030, 30.0)],
        owner: STATISTICS_OFFICE,
        goals: &["2025", "2030"],
        task_group: 6,
        formula: "value added of the digital economy ÷ GRDP × 100 (statistics office, annual)",
        frequency: "yearly",
    },
    KpiDef {
        slug: "egov-766",
        plan_ref: "T2",
        name: (
            "Chỉ số phục vụ người dân, doanh nghiệp (Quyết định 766/QĐ-TTg)",
            "Service to citizens and businesses (Decision 766/QĐ-TTg)",
        ),
        unit_code: None,
        max: Some(100.0),
        mode: Mode::Entered,
        direction: Direction::Increase,
        targets: &[],
        owner: PROVINCE_OFFICE,
        goals: &["2025", "2030"],
        task_group: 8,
        formula: "sum of the six group scores published on the national public-service portal (18 + 20 + 12 + 10 + 22 + 18 = 100 points)",
        frequency: "monthly",
    },
    KpiDef {
        slug: "dti",
        plan_ref: "T1",
        name: (
            "Chỉ số chuyển đổi số cấp tỉnh (DTI)",
            "Provincial digital transformation index (DTI)",
        ),
        unit_code: None,
        max: Some(1.0),
        mode: Mode::Entered,
        direction: Direction::Increase,
        targets: &[],
        owner: DEPT_SCIENCE,
        goals: &["2025"],
        task_group: 8,
        formula: "the province's DTI (0–1) as published on dti.gov.vn under Decision 405/QĐ-BKHCN; the rank is kept beside it",
        frequency: "yearly",
    },
    KpiDef {
        slug: "smart-city-wards",
        plan_ref: "T3",
        name: (
            "Số phường đô thị (Đông Hà, Nam Đông Hà, Quảng Trị) đạt cấp độ 1 đô thị thông minh",
            "Urban wards (Đông Hà, Nam Đông Hà, Quảng Trị) meeting smart-city level 1",
        ),
        unit_code: Some("C62"),
        max: Some(3.0),
        mode: Mode::Confirmed,
        direction: Direction::Increase,
        targets: &[(2025, 3.0)],
        owner: DEPT_CONSTRUCTION,
        goals: &["2025", "2030"],
        task_group: 3,
        formula: "wards 19333, 19351, 19360 whose every level-1 criterion is assessed as passed with evidence (no evidence means fail)",
        frequency: "quarterly",
    },
    KpiDef {
        slug: "reports-on-time",
        plan_ref: "T2",
        name: (
            "Tỷ lệ phản ánh hiện trường được xử lý đúng hạn",
            "Citizen reports answered by their deadline",
        ),
        owner: PROVINCE_OFFICE,
        goals: &["2025", "2030"],
        task_group: 8,
        formula: "citizen reports (Open311_ServiceRequest) received in the last 12 months and answered (resolved, closed, rejected or merged) by their deadline, over those answered, × 100",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "reports-satisfaction",
        plan_ref: "T2",
        name: (
            "Tỷ lệ người dân hài lòng với xử lý phản ánh",
            "Citizens satisfied with the handling of their reports",
        ),
        owner: PROVINCE_OFFICE,
        goals: &["2025", "2030"],
        task_group: 8,
        formula: "citizen reports received in the last 12 months rated 4 or 5, over those rated (1 to 5), × 100",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "open-datasets",
        plan_ref: "T9",
        name: ("Số bộ dữ liệu mở được công bố", "Open datasets published"),
        unit_code: Some("C62"),
        max: None,
        mode: Mode::Computed,
        direction: Direction::Increase,
        targets: &[],
        owner: DEPT_SCIENCE,
        goals: &["2030"],
        task_group: 3,
        formula: "datasets (Dataset entities) of the open data catalogue",
        frequency: "daily",
    },
    KpiDef {
        slug: "open-datasets-updated",
        plan_ref: "T9",
        name: (
            "Tỷ lệ bộ dữ liệu mở được cập nhật trong 3 tháng",
            "Open datasets updated within 3 months",
        ),
        owner: DEPT_SCIENCE,
        goals: &["2030"],
        task_group: 3,
        formula: "datasets whose 'modified' (CKAN metadata_modified, DCAT dct:modified) is within the last 3 months (92 days), over the datasets published, × 100",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "good-air-days",
        plan_ref: "T9",
        name: (
            "Tỷ lệ ngày có chất lượng không khí tốt",
            "Days with good air quality",
        ),
        owner: DEPT_AGRICULTURE_ENVIRONMENT,
        goals: &["2030"],
        task_group: 3,
        formula: "station-days of the last 30 days (Asia/Ho_Chi_Minh) whose daily mean PM2.5 is at most 25 µg/m³ (AQI ≤ 50, good), over the station-days with readings, × 100, from the daily aggregation of the stations' history",
        ..COMPUTED_PERCENT
    },
    KpiDef {
        slug: "device-uptime",
        plan_ref: "T9",
        name: (
            "Tỷ lệ thiết bị cảm biến đang hoạt động",
            "Sensor devices reporting",
        ),
        owner: DEPT_SCIENCE,
        goals: &["2030"],
        task_group: 3,
        formula: "sensors (river gauges, air-quality and weather stations, traffic counters) whose reading was observed in the last 15 minutes, over the sensors, × 100",
        frequency: "every 5 minutes",
        ..COMPUTED_PERCENT
    },
];

/// The entity id of a KPI of the plan.
pub fn kpi_id(slug: &str) -> String {
    format!("urn:ngsi-ld:KeyPerformanceIndicator:plan-{slug}")
}

pub fn goal_id(slug: &str) -> String {
    format!("urn:ngsi-ld:PlanGoal:plan-{slug}")
}

pub fn task_group_id(number: u8) -> String {
    format!("urn:ngsi-ld:PlanTaskGroup:plan-{number}")
}

/// The KPI of this slug.
pub fn kpi(slug: &str) -> Option<&'static KpiDef> {
    KPIS.iter().find(|k| k.slug == slug)
}

pub(crate) fn prop(v: impl Into<Value>) -> Value {
    json!({"type": "Property", "value": v.into()})
}

pub(crate) fn text(vi: &str, en: &str) -> Value {
    json!({"type": "LanguageProperty", "languageMap": {"vi": vi, "en": en}})
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The targets as a JSON object keyed by year.
pub fn targets_json(targets: &[(u16, f64)]) -> Value {
    Value::Object(
        targets
            .iter()
            .map(|(y, v)| (y.to_string(), json!(v)))
            .collect(),
    )
}

/// The KPI's entity as first written: definition, no value yet.
pub fn kpi_entity(k: &KpiDef) -> Map<String, Value> {
    let mut e = object(json!({
        "id": kpi_id(k.slug),
        "type": "KeyPerformanceIndicator",
        "name": text(k.name.0, k.name.1),
        "category": prop(json!(["quantitative"])),
        "process": prop("digitalTransformationPlan"),
        "planReference": prop(k.plan_ref),
        "calculationMethod": prop(k.mode.calculation_method()),
        "calculationFormula": prop(k.formula),
        "calculationFrequency": prop(k.frequency),
        "organization": prop(json!({"name": k.owner})),
        "mode": prop(k.mode.as_str()),
        "direction": prop(k.direction.as_str()),
        "target": prop(targets_json(k.targets)),
        "status": prop("noData"),
        "refPlanTaskGroup": {"type": "Relationship", "object": task_group_id(k.task_group)},
        "refPlanGoal": {"type": "Relationship", "object": k.goals.iter().map(|g| goal_id(g)).collect::<Vec<_>>()},
    }));
    if let Some(max) = k.max {
        e.insert("maximumValue".into(), prop(max));
    }
    if let Some(u) = k.unit_code {
        e.insert("unitCode".into(), prop(u));
    }
    e
}

pub fn goal_entity(g: &GoalDef) -> Map<String, Value> {
    object(json!({
        "id": goal_id(g.slug),
        "type": "PlanGoal",
        "name": text(&format!("Mục tiêu {}", g.year), &format!("Goal {}", g.year)),
        "description": text(g.text.0, g.text.1),
        "targetYear": prop(g.year),
        "deadline": prop(format!("{}-12-31", g.year)),
    }))
}

pub fn task_group_entity(t: &TaskGroupDef) -> Map<String, Value> {
    object(json!({
        "id": task_group_id(t.number),
        "type": "PlanTaskGroup",
        "name": text(t.name.0, t.name.1),
        "number": prop(t.number),
        "owner": prop(t.owner),
        "deadline": prop("2030-12-31"),
        "taskStatus": prop("inProgress"),
        "progress": prop(0),
        "progressNotes": prop(json!([])),
        "evidence": prop(json!([])),
    }))
}

/// Every entity of the plan, in normalized NGSI-LD form.
pub fn entities() -> Vec<Map<String, Value>> {
    GOALS
        .iter()
        .map(goal_entity)
        .chain(TASK_GROUPS.iter().map(task_group_entity))
        .chain(KPIS.iter().map(kpi_entity))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_its_eight_task_groups_and_named_kpis() {
        assert_eq!(TASK_GROUPS.len(), 8);
        for slug in [
            "broadband-communes",
            "5g-communes",
            "priority-sectors-live",
            "essential-services-live",
            "digital-economy-grdp",
            "egov-766",
            "dti",
            "smart-city-wards",
        ] {
            assert!(kpi(slug).is_some(), "{slug}");
        }
        assert_eq!(
            kpi_id("dti"),
            "urn:ngsi-ld:KeyPerformanceIndicator:plan-dti"
        );
        let grdp = kpi("digital-economy-grdp").map(|k| k.targets);
        assert_eq!(grdp, Some(&[(2025, 20.0), (2030, 30.0)][..]));
    }

    #[test]
    fn every_entity_reads_as_ngsi_ld() {
        let ctx = ngsi::Context::core();
        let reader = ngsi::entity::Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        };
        for e in entities() {
            let v = Value::Object(e);
            assert!(reader.entity(&v, None).is_ok(), "{v}");
        }
    }
}
