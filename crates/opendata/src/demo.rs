//! The demo catalogue of `dothi demo`: the Quảng Trị demo data published as datasets
//! of the province's departments. Datasets of types other services write (citizen
//! reports, the plan's KPIs) are published only when the hub holds such entities.

use std::collections::BTreeSet;

use hub::Scope;
use ngsi::Error;

use crate::download::Selection;
use crate::model::{Contact, Dataset, Organization, Text, View};
use crate::portal::{Fault, Portal};

/// What the demo published.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub organizations: usize,
    pub datasets: Vec<String>,
    /// Datasets left out, with why.
    pub skipped: Vec<(String, String)>,
}

fn text(vi: &str, en: &str) -> Text {
    Text {
        vi: vi.into(),
        en: en.into(),
    }
}

const ORGS: &[(&str, &str, &str)] = &[
    (
        "so-noi-vu",
        "Sở Nội vụ tỉnh Quảng Trị",
        "Quảng Trị Department of Home Affairs",
    ),
    (
        "so-nong-nghiep-moi-truong",
        "Sở Nông nghiệp và Môi trường tỉnh Quảng Trị",
        "Quảng Trị Department of Agriculture and Environment",
    ),
    (
        "so-xay-dung",
        "Sở Xây dựng tỉnh Quảng Trị",
        "Quảng Trị Department of Construction",
    ),
    (
        "so-khoa-hoc-cong-nghe",
        "Sở Khoa học và Công nghệ tỉnh Quảng Trị",
        "Quảng Trị Department of Science and Technology",
    ),
    (
        "so-y-te",
        "Sở Y tế tỉnh Quảng Trị",
        "Quảng Trị Department of Health",
    ),
    (
        "so-giao-duc-dao-tao",
        "Sở Giáo dục và Đào tạo tỉnh Quảng Trị",
        "Quảng Trị Department of Education and Training",
    ),
    (
        "so-van-hoa-the-thao-du-lich",
        "Sở Văn hóa, Thể thao và Du lịch tỉnh Quảng Trị",
        "Quảng Trị Department of Culture, Sports and Tourism",
    ),
    (
        "van-phong-ubnd-tinh",
        "Văn phòng Ủy ban nhân dân tỉnh Quảng Trị",
        "Office of the Quảng Trị Provincial People's Committee",
    ),
];

/// One demo dataset: name, titles, organisation, theme, frequency, tags, types, q,
/// public attributes (after those of a place), and whether it waits for its type to exist.
struct Spec {
    name: &'static str,
    title: (&'static str, &'static str),
    org: &'static str,
    theme: &'static str,
    frequency: &'static str,
    tags: &'static [&'static str],
    types: &'static [&'static str],
    q: Option<&'static str>,
    /// Its entities are places: the view shows their [`PLACE`] attributes before
    /// `attrs`.
    placed: bool,
    attrs: &'static [&'static str],
    /// Published only when the hub holds entities it selects.
    when_present: bool,
}

/// The attributes that place an entity: its name, location and commune.
const PLACE: [&str; 3] = ["name", "location", "refAdministrativeArea"];

const SPECS: &[Spec] = &[
    Spec {
        name: "don-vi-hanh-chinh",
        title: (
            "Đơn vị hành chính cấp xã và ranh giới",
            "Commune-level administrative units and boundaries",
        ),
        org: "so-noi-vu",
        theme: "REGI",
        frequency: "IRREG",
        tags: &["đơn vị hành chính", "ranh giới", "xã phường"],
        types: &["AdministrativeArea"],
        q: None,
        placed: false,
        attrs: &[
            "code",
            "name",
            "alternateName",
            "kind",
            "areaKm2",
            "location",
        ],
        when_present: false,
    },
    Spec {
        name: "muc-nuoc-song",
        title: (
            "Mực nước sông và cảnh báo lũ",
            "River levels and flood alarms",
        ),
        org: "so-nong-nghiep-moi-truong",
        theme: "ENVI",
        frequency: "CONT",
        tags: &["mực nước", "lũ lụt", "thủy văn"],
        types: &["WaterObserved"],
        q: None,
        placed: true,
        attrs: &[
            "river",
            "stationName",
            "waterLevel",
            "alarmLevelReached",
            "dateObserved",
        ],
        when_present: false,
    },
    Spec {
        name: "chat-luong-khong-khi",
        title: ("Chất lượng không khí", "Air quality"),
        org: "so-nong-nghiep-moi-truong",
        theme: "ENVI",
        frequency: "CONT",
        tags: &["không khí", "AQI", "môi trường"],
        types: &["AirQualityObserved"],
        q: None,
        placed: true,
        attrs: &["airQualityIndex", "airQualityLevel", "co", "dateObserved"],
        when_present: false,
    },
    Spec {
        name: "thoi-tiet",
        title: ("Quan trắc thời tiết", "Weather observations"),
        org: "so-nong-nghiep-moi-truong",
        theme: "ENVI",
        frequency: "CONT",
        tags: &["thời tiết", "khí tượng", "mưa"],
        types: &["WeatherObserved"],
        q: None,
        placed: true,
        attrs: &[
            "temperature",
            "relativeHumidity",
            "precipitation",
            "windSpeed",
            "windDirection",
            "atmosphericPressure",
            "dateObserved",
        ],
        when_present: false,
    },
    Spec {
        name: "luu-luong-giao-thong",
        title: ("Lưu lượng giao thông", "Traffic flow"),
        org: "so-xay-dung",
        theme: "TRAN",
        frequency: "CONT",
        tags: &["giao thông", "lưu lượng", "ùn tắc"],
        types: &["TrafficFlowObserved"],
        q: None,
        placed: true,
        attrs: &[
            "intensity",
            "occupancy",
            "averageVehicleSpeed",
            "congested",
            "laneDirection",
            "vehicleType",
            "dateObserved",
        ],
        when_present: false,
    },
    Spec {
        name: "diem-du-lich",
        title: (
            "Điểm du lịch và địa điểm công cộng",
            "Points of interest and tourism",
        ),
        org: "so-van-hoa-the-thao-du-lich",
        theme: "EDUC",
        frequency: "IRREG",
        tags: &["du lịch", "di tích", "địa điểm"],
        types: &["PointOfInterest"],
        q: None,
        placed: true,
        attrs: &["category", "address"],
        when_present: false,
    },
    Spec {
        name: "co-so-y-te",
        title: ("Bệnh viện và trạm y tế", "Hospitals and health stations"),
        org: "so-y-te",
        theme: "HEAL",
        frequency: "MONTHLY",
        tags: &["y tế", "bệnh viện", "trạm y tế"],
        types: &["Hospital", "MedicalClinic"],
        q: None,
        placed: true,
        attrs: &["category", "bedCapacity", "address"],
        when_present: false,
    },
    Spec {
        name: "truong-hoc",
        title: ("Trường học", "Schools"),
        org: "so-giao-duc-dao-tao",
        theme: "EDUC",
        frequency: "ANNUAL",
        tags: &["giáo dục", "trường học"],
        types: &["School"],
        q: None,
        placed: true,
        attrs: &["educationLevel", "numberOfStudents", "address"],
        when_present: false,
    },
    Spec {
        name: "phu-song-bang-rong-5g",
        title: (
            "Phủ sóng băng rộng cố định và 5G",
            "Fixed broadband and 5G coverage",
        ),
        org: "so-khoa-hoc-cong-nghe",
        theme: "TECH",
        frequency: "QUARTERLY",
        tags: &["băng rộng", "5G", "chuyển đổi số"],
        types: &["KeyPerformanceIndicator"],
        q: Some("process==\"digitalInfrastructure\""),
        placed: true,
        attrs: &["process", "indicator", "kpiValue", "calculationPeriod"],
        when_present: false,
    },
    Spec {
        name: "den-duong",
        title: ("Đèn chiếu sáng công cộng", "Street lights"),
        org: "so-xay-dung",
        theme: "ENER",
        frequency: "CONT",
        tags: &["chiếu sáng", "đèn đường", "năng lượng"],
        types: &["Streetlight"],
        q: None,
        placed: true,
        attrs: &["powerState", "status", "illuminanceLevel", "lanternHeight"],
        when_present: false,
    },
    Spec {
        name: "tieu-thu-nuoc",
        title: ("Tiêu thụ nước sạch", "Water consumption"),
        org: "so-xay-dung",
        theme: "ENVI",
        frequency: "CONT",
        tags: &["nước sạch", "cấp nước"],
        types: &["WaterConsumptionObserved"],
        q: None,
        placed: true,
        attrs: &["waterConsumption", "dateObserved"],
        when_present: false,
    },
    Spec {
        name: "thua-dat-nong-nghiep",
        title: (
            "Thửa đất nông nghiệp và cây trồng",
            "Agricultural parcels and crops",
        ),
        org: "so-nong-nghiep-moi-truong",
        theme: "AGRI",
        frequency: "MONTHLY",
        tags: &["nông nghiệp", "cây trồng", "thửa đất"],
        types: &["AgriParcel"],
        q: None,
        placed: true,
        attrs: &["category", "area", "cropStatus", "irrigationSystemType"],
        when_present: false,
    },
    Spec {
        name: "phan-anh-hien-truong",
        title: (
            "Phản ánh hiện trường của người dân (không có dữ liệu cá nhân)",
            "Citizen field reports (without personal data)",
        ),
        org: "van-phong-ubnd-tinh",
        theme: "GOVE",
        frequency: "CONT",
        tags: &["phản ánh", "dịch vụ công", "Open311"],
        types: &["Open311_ServiceRequest"],
        q: None,
        placed: false,
        // What Open311 shows anyone of a report; never the reporter or the officer.
        attrs: &[
            "location",
            "refAdministrativeArea",
            "communeName",
            "service_code",
            "service_name",
            "status",
            "workflowStatus",
            "agency_responsible",
            "requested_datetime",
            "updated_datetime",
            "expected_datetime",
            "rating",
        ],
        when_present: true,
    },
    Spec {
        name: "chi-tieu-ke-hoach",
        title: (
            "Chỉ tiêu kế hoạch đô thị thông minh",
            "The smart-city plan's KPIs",
        ),
        org: "van-phong-ubnd-tinh",
        theme: "GOVE",
        frequency: "QUARTERLY",
        tags: &["chỉ tiêu", "KPI", "đô thị thông minh"],
        types: &["KeyPerformanceIndicator"],
        q: Some("process==\"digitalTransformationPlan\""),
        placed: false,
        attrs: &[
            "name",
            "process",
            "indicator",
            "kpiValue",
            "calculationPeriod",
            "calculationFrequency",
        ],
        when_present: true,
    },
];

impl Spec {
    fn view(&self) -> View {
        let place: &[&str] = if self.placed { &PLACE } else { &[] };
        View {
            tenant: String::new(),
            types: self.types.iter().map(|t| t.to_string()).collect(),
            q: self.q.map(str::to_string),
            attrs: place
                .iter()
                .chain(self.attrs)
                .map(|a| a.to_string())
                .collect(),
        }
    }

    fn dataset(&self, spatial: Vec<String>) -> Dataset {
        let org = ORGS.iter().find(|o| o.0 == self.org).map_or("", |o| o.1);
        Dataset {
            name: self.name.into(),
            title: text(self.title.0, self.title.1),
            description: text(
                &format!(
                    "{} trên địa bàn tỉnh Quảng Trị, luôn cập nhật từ nền tảng dữ liệu đô thị thông minh. Dữ liệu mẫu.",
                    self.title.0
                ),
                &format!(
                    "{} in Quảng Trị province, always current from the smart-city data hub. Demo data.",
                    self.title.1
                ),
            ),
            organization: self.org.into(),
            contact: Contact {
                name: org.into(),
                email: "dulieumo@quangtri.gov.vn".into(),
            },
            theme: self.theme.into(),
            keywords: self.tags.iter().map(|t| t.to_string()).collect(),
            spatial,
            licence: "cc-by-4.0".into(),
            frequency: self.frequency.into(),
            issued: String::new(),
            modified: String::new(),
            view: self.view(),
        }
    }
}

/// The communes the view's entities are in (their `refAdministrativeArea`), for the
/// spatial coverage; at most 500.
async fn communes(portal: &Portal, view: &View) -> Result<(u64, Vec<String>), Error> {
    let sel = Selection::of(view)?;
    let total = sel.count(portal.hub()).await?;
    let area = sel.scope.ctx.expand("refAdministrativeArea");
    let mut found = BTreeSet::new();
    let mut after = None;
    loop {
        let mut query = sel.page_after(1_000, after)?;
        // The commune link places the dataset whether it is public or not; nothing
        // of it is shown.
        query.only_attrs = Some(vec![area.clone()]);
        let page = portal.hub().query(&sel.scope, query).await?;
        after = page.next(1_000);
        for e in &page.entities {
            if e.types.iter().any(|t| t.ends_with("AdministrativeArea")) {
                found.insert(e.id.clone());
            }
            for a in e.attrs.get(&area).into_iter().flatten() {
                if let Some(id) = a.value.as_str() {
                    found.insert(id.to_string());
                }
            }
        }
        if after.is_none() || found.len() >= 500 {
            break;
        }
    }
    Ok((total, found.into_iter().take(500).collect()))
}

/// Publishes the demo organisations and datasets (again: loading twice replaces them).
pub async fn load_demo(portal: &Portal) -> Result<DemoReport, Fault> {
    let scope = Scope::system("demo", crate::portal::CATALOGUE_TENANT);
    let mut report = DemoReport::default();
    for (name, vi, en) in ORGS {
        portal
            .put_organization(
                &scope,
                Organization {
                    name: (*name).into(),
                    title: text(vi, en),
                    description: text(
                        &format!("{vi}: cơ quan công bố dữ liệu mở."),
                        &format!("{en}: publisher of open data."),
                    ),
                    email: String::new(),
                    homepage: "https://quangtri.gov.vn/".into(),
                },
            )
            .await?;
        report.organizations += 1;
    }
    for s in SPECS {
        let (count, spatial) = communes(portal, &s.view()).await?;
        if s.when_present && count == 0 {
            report.skipped.push((
                s.name.into(),
                format!("no {} entities yet", s.types.join(", ")),
            ));
            continue;
        }
        let d = s.dataset(spatial);
        let exists = portal.dataset(s.name).await?.is_some();
        portal.put_dataset(&scope, d, !exists).await?;
        report.datasets.push(s.name.into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_dataset_is_valid_and_publishes_no_personal_data() {
        for s in SPECS {
            let d = s.dataset(vec![]);
            assert_eq!(d.check(), Ok(()), "{}", s.name);
            assert!(ORGS.iter().any(|o| o.0 == s.org), "{}", s.name);
        }
        assert!(SPECS.iter().filter(|s| !s.when_present).count() >= 10);
    }
}
