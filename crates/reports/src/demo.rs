//! Demo data: the category list (in Vietnamese, in groups, each with the provincial
//! department responsible after the 2025 reorganisation) and about 2,000 reports of
//! the past 12 months across the 78 communes, more in the wards, in every stage, with
//! their histories made by the real workflow. Every demo report is marked `demo`.
//! The same seed gives the same reports, so loading again replaces them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use hub::{Hub, Scope};
use ngsi::Error;

use crate::calendar::{Calendar, Sla};
use crate::model::{
    self, AttributeDef, Category, ListValue, Point, Report, SERVICE_REQUEST, report_id,
};
use crate::places::Places;
use crate::service::{Reports, TENANT};
use crate::workflow::{self, Action};

/// Reports the demo makes.
pub const REPORTS: usize = 2_000;

const SO_XAY_DUNG: &str = "Sở Xây dựng";
const SO_NN_MT: &str = "Sở Nông nghiệp và Môi trường";
const SO_Y_TE: &str = "Sở Y tế";
const CONG_AN: &str = "Công an tỉnh";
const PCCC: &str = "Công an tỉnh (Phòng Cảnh sát PCCC và CNCH)";
const PHONG_THU: &str = "Bộ Chỉ huy Quân sự tỉnh (Ban Chỉ huy Phòng thủ dân sự)";
const HCC: &str = "Trung tâm Phục vụ hành chính công tỉnh";
const SO_CONG_THUONG: &str = "Sở Công Thương";
const XA: &str = "UBND cấp xã";

struct Spec {
    code: &'static str,
    name: &'static str,
    name_en: &'static str,
    group: &'static str,
    group_en: &'static str,
    agency: &'static str,
    communal: bool,
    urgent: bool,
    icon: &'static str,
    /// Relative frequency among reports.
    weight: u32,
    texts: &'static [&'static str],
}

const SPECS: &[Spec] = &[
    Spec {
        code: "duong-hu-hong",
        name: "Mặt đường hư hỏng, ổ gà",
        name_en: "Damaged road, pothole",
        group: "Hạ tầng giao thông",
        group_en: "Roads",
        agency: SO_XAY_DUNG,
        communal: false,
        urgent: false,
        icon: "road",
        weight: 16,
        texts: &[
            "Ổ gà lớn giữa đường, xe máy dễ ngã",
            "Mặt đường lún sụt sau mưa",
            "Nắp hố ga bị vỡ trên đường",
        ],
    },
    Spec {
        code: "den-chieu-sang",
        name: "Đèn chiếu sáng công cộng hỏng",
        name_en: "Street light out",
        group: "Điện, chiếu sáng",
        group_en: "Lighting",
        agency: SO_XAY_DUNG,
        communal: false,
        urgent: false,
        icon: "light",
        weight: 12,
        texts: &[
            "Cả dãy đèn đường không sáng",
            "Đèn đường chập chờn cả đêm",
            "Cột đèn nghiêng, dây điện lòi ra",
        ],
    },
    Spec {
        code: "thoat-nuoc",
        name: "Tắc cống, thoát nước",
        name_en: "Blocked drain",
        group: "Thoát nước, ngập úng",
        group_en: "Drainage and flooding",
        agency: XA,
        communal: true,
        urgent: false,
        icon: "drain",
        weight: 11,
        texts: &[
            "Cống bị tắc, nước thải tràn ra đường",
            "Mương thoát nước đầy rác",
            "Hố ga bốc mùi hôi",
        ],
    },
    Spec {
        code: "ngap-ung",
        name: "Ngập úng đường phố",
        name_en: "Flooded street",
        group: "Thoát nước, ngập úng",
        group_en: "Drainage and flooding",
        agency: SO_XAY_DUNG,
        communal: false,
        urgent: false,
        icon: "flood",
        weight: 7,
        texts: &[
            "Đường ngập sâu sau mưa lớn",
            "Nước không thoát, ngập trước cổng trường",
        ],
    },
    Spec {
        code: "rac-thai",
        name: "Rác thải, vệ sinh môi trường",
        name_en: "Rubbish",
        group: "Môi trường",
        group_en: "Environment",
        agency: XA,
        communal: true,
        urgent: false,
        icon: "trash",
        weight: 15,
        texts: &[
            "Bãi rác tự phát ven đường",
            "Rác không được thu gom nhiều ngày",
            "Đổ trộm xà bần bên bờ sông",
        ],
    },
    Spec {
        code: "o-nhiem",
        name: "Ô nhiễm môi trường",
        name_en: "Pollution",
        group: "Môi trường",
        group_en: "Environment",
        agency: SO_NN_MT,
        communal: false,
        urgent: false,
        icon: "smoke",
        weight: 5,
        texts: &[
            "Khói đốt rác gây khó thở",
            "Nước thải xả thẳng ra sông",
            "Mùi hôi từ cơ sở chăn nuôi",
        ],
    },
    Spec {
        code: "cay-xanh",
        name: "Cây xanh cần cắt tỉa, gãy cành",
        name_en: "Tree needs care",
        group: "Cây xanh, công viên",
        group_en: "Trees and parks",
        agency: XA,
        communal: true,
        urgent: false,
        icon: "tree",
        weight: 6,
        texts: &[
            "Cành cây lớn sắp gãy trên vỉa hè",
            "Cây che khuất đèn tín hiệu",
        ],
    },
    Spec {
        code: "cay-do-chan-duong",
        name: "Cây đổ chắn đường",
        name_en: "Fallen tree blocking a road",
        group: "Khẩn cấp",
        group_en: "Emergencies",
        agency: XA,
        communal: true,
        urgent: true,
        icon: "tree-fallen",
        weight: 2,
        texts: &[
            "Cây đổ chắn ngang đường sau bão",
            "Cây bật gốc đè lên dây điện",
        ],
    },
    Spec {
        code: "lu-lut-cuu-ho",
        name: "Lũ lụt, sạt lở, cần cứu hộ",
        name_en: "Flood, landslide, rescue",
        group: "Khẩn cấp",
        group_en: "Emergencies",
        agency: PHONG_THU,
        communal: false,
        urgent: true,
        icon: "rescue",
        weight: 2,
        texts: &[
            "Nước lũ dâng cao, nhiều hộ bị cô lập",
            "Sạt lở taluy dương chắn đường",
            "Cần hỗ trợ di dời người già khỏi vùng ngập",
        ],
    },
    Spec {
        code: "chay-no",
        name: "Cháy, nổ",
        name_en: "Fire, explosion",
        group: "Khẩn cấp",
        group_en: "Emergencies",
        agency: PCCC,
        communal: false,
        urgent: true,
        icon: "fire",
        weight: 1,
        texts: &[
            "Cháy rừng tràm gần khu dân cư",
            "Khói lửa bốc ra từ kho hàng",
        ],
    },
    Spec {
        code: "lan-chiem-via-he",
        name: "Lấn chiếm vỉa hè, lòng đường",
        name_en: "Pavement obstruction",
        group: "Trật tự đô thị, xây dựng",
        group_en: "Urban order and building",
        agency: XA,
        communal: true,
        urgent: false,
        icon: "sidewalk",
        weight: 8,
        texts: &[
            "Quán xá lấn chiếm hết vỉa hè",
            "Vật liệu xây dựng đổ tràn lòng đường",
        ],
    },
    Spec {
        code: "xay-dung-trai-phep",
        name: "Xây dựng trái phép, sai phép",
        name_en: "Unlawful building",
        group: "Trật tự đô thị, xây dựng",
        group_en: "Urban order and building",
        agency: SO_XAY_DUNG,
        communal: false,
        urgent: false,
        icon: "crane",
        weight: 4,
        texts: &[
            "Công trình xây thêm tầng không có phép",
            "Xây dựng lấn hành lang an toàn đường bộ",
        ],
    },
    Spec {
        code: "an-toan-thuc-pham",
        name: "An toàn thực phẩm",
        name_en: "Food safety",
        group: "Y tế, an toàn thực phẩm",
        group_en: "Health and food safety",
        agency: SO_Y_TE,
        communal: false,
        urgent: false,
        icon: "food",
        weight: 3,
        texts: &[
            "Cơ sở bán đồ ăn mất vệ sinh",
            "Thực phẩm không rõ nguồn gốc bày bán ở chợ",
        ],
    },
    Spec {
        code: "an-ninh-trat-tu",
        name: "An ninh trật tự, tiếng ồn",
        name_en: "Public order, noise",
        group: "An ninh, trật tự",
        group_en: "Public order",
        agency: CONG_AN,
        communal: false,
        urgent: false,
        icon: "shield",
        weight: 4,
        texts: &["Hát karaoke gây ồn sau 22 giờ", "Tụ tập đua xe ban đêm"],
    },
    Spec {
        code: "dien-luoi",
        name: "Sự cố lưới điện, mất điện",
        name_en: "Power outage",
        group: "Điện, chiếu sáng",
        group_en: "Lighting",
        agency: SO_CONG_THUONG,
        communal: false,
        urgent: false,
        icon: "power",
        weight: 2,
        texts: &[
            "Mất điện cả khu phố từ chiều",
            "Dây điện võng thấp qua đường",
        ],
    },
    Spec {
        code: "thu-tuc-hanh-chinh",
        name: "Thủ tục hành chính",
        name_en: "Administrative procedures",
        group: "Hành chính công",
        group_en: "Public administration",
        agency: HCC,
        communal: false,
        urgent: false,
        icon: "file",
        weight: 2,
        texts: &[
            "Hồ sơ nộp trực tuyến quá hạn chưa trả kết quả",
            "Cán bộ hướng dẫn thủ tục chưa rõ ràng",
        ],
    },
];

fn lv(key: &str, name: &str) -> ListValue {
    ListValue {
        key: key.into(),
        name: name.into(),
    }
}

/// The demo categories.
pub fn categories() -> Vec<Category> {
    SPECS
        .iter()
        .map(|s| {
            let attributes = match s.code {
                // The one with a required attribute.
                "o-nhiem" => vec![AttributeDef {
                    code: "loai_o_nhiem".into(),
                    variable: true,
                    datatype: "singlevaluelist".into(),
                    required: true,
                    datatype_description: String::new(),
                    order: 1,
                    description: "Loại ô nhiễm (kind of pollution)".into(),
                    values: vec![
                        lv("khong_khi", "Không khí, khói bụi"),
                        lv("nuoc", "Nước thải"),
                        lv("mui", "Mùi hôi"),
                        lv("tieng_on", "Tiếng ồn"),
                    ],
                }],
                "rac-thai" => vec![AttributeDef {
                    code: "loai_rac".into(),
                    variable: true,
                    datatype: "multivaluelist".into(),
                    required: false,
                    datatype_description: String::new(),
                    order: 1,
                    description: "Loại rác (kinds of rubbish)".into(),
                    values: vec![
                        lv("sinh_hoat", "Rác sinh hoạt"),
                        lv("xa_ban", "Xà bần, phế thải xây dựng"),
                        lv("nguy_hai", "Chất thải nguy hại"),
                    ],
                }],
                "den-chieu-sang" => vec![AttributeDef {
                    code: "ma_cot".into(),
                    variable: true,
                    datatype: "string".into(),
                    required: false,
                    datatype_description: "Số hiệu ghi trên cột đèn".into(),
                    order: 1,
                    description: "Số hiệu cột đèn (pole number)".into(),
                    values: Vec::new(),
                }],
                _ => Vec::new(),
            };
            Category {
                service_code: s.code.into(),
                service_name: s.name.into(),
                service_name_en: s.name_en.into(),
                description: format!("{} — {}", s.name, s.name_en),
                group: s.group.into(),
                group_en: s.group_en.into(),
                keywords: vec![s.group.to_lowercase()],
                metadata: !attributes.is_empty(),
                agency_responsible: s.agency.into(),
                communal: s.communal,
                urgent: s.urgent,
                icon: s.icon.into(),
                attributes,
                sla: Sla::default(),
                demo: true,
            }
        })
        .collect()
}

/// SplitMix64, seeded: the same demo on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn hours(&mut self, lo: f64, hi: f64) -> TimeDelta {
        TimeDelta::seconds(((lo + (hi - lo) * self.unit()) * 3600.0) as i64)
    }
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = (rng.next() % u64::from(total.max(1))) as u32;
    for i in items {
        let w = weight(i);
        if x < w {
            return i;
        }
        x -= w;
    }
    &items[items.len() - 1]
}

/// A point inside `commune` and inside the province's own boundary (the two sources
/// differ by a few metres along the border), rounded to 6 decimals.
fn point_in(
    places: &Places,
    commune: &crate::places::Commune,
    shape: &city::geom::Shape,
    rng: &mut Rng,
) -> Option<[f64; 2]> {
    let [x0, y0, x1, y1] = shape.bbox();
    for _ in 0..200 {
        let lon = ((x0 + (x1 - x0) * rng.unit()) * 1e6).round() / 1e6;
        let lat = ((y0 + (y1 - y0) * rng.unit()) * 1e6).round() / 1e6;
        if shape.contains([lon, lat])
            && places
                .locate(lon, lat)
                .is_ok_and(|c| c.is_some_and(|c| c.code == commune.code))
        {
            return Some([lon, lat]);
        }
    }
    None
}

/// `n` points (longitude, latitude) where residents report, spread as the demo's are
/// (wards weigh five times a rural commune), for benchmarks.
pub fn points(places: &Places, n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Rng(seed);
    let communes: Vec<_> = places.communes().collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (commune, shape) = *pick(&mut rng, &communes, |(c, _)| if c.ward { 5 } else { 1 });
        if let Some([lon, lat]) = point_in(places, commune, shape, &mut rng) {
            out.push((lon, lat));
        }
    }
    out
}

/// The demo reports at `now`: each made at its time, then taken through the workflow
/// as far as its age and chance say.
pub fn reports(places: &Places, calendar: &Calendar, now: DateTime<Utc>) -> Vec<Report> {
    let mut rng = Rng(0x5eed_0015);
    let cats = categories();
    let communes: Vec<_> = places.communes().collect();
    let mut out: Vec<Report> = Vec::with_capacity(REPORTS);
    let actor = "system:demo";
    // More reports lately (adoption grows), at daytime hours.
    let when = |rng: &mut Rng| {
        let age_days = 365.0 * rng.unit().powf(1.4);
        let mut at = now - TimeDelta::seconds((age_days * 86_400.0) as i64);
        let local_hour = (at.hour() + 7) % 24;
        if !(6..22).contains(&local_hour) {
            at -= TimeDelta::hours(10);
        }
        at.with_nanosecond(0).unwrap_or(at)
    };
    for n in 0..REPORTS {
        let id = format!("DEMO{n:06}");
        let mut r = received(&mut rng, &cats, places, &communes, calendar, when, id);
        walk(&mut r, &mut rng, calendar, now, actor, &out);
        out.push(r);
    }
    out
}

/// A demo report just received at the time `when` draws: a category and its words by
/// the demo's weights, in a commune (wards weigh five times a rural one), routed as
/// the service routes. (The draws keep their order, so the seed gives the same demo.)
fn received(
    rng: &mut Rng,
    cats: &[Category],
    places: &Places,
    communes: &[(&crate::places::Commune, &city::geom::Shape)],
    calendar: &Calendar,
    when: impl FnOnce(&mut Rng) -> DateTime<Utc>,
    id: String,
) -> Report {
    let spec = pick(rng, SPECS, |s| s.weight);
    let cat = cats
        .iter()
        .find(|c| c.service_code == spec.code)
        .unwrap_or(&cats[0]);
    let (commune, shape) = *pick(rng, communes, |(c, _)| if c.ward { 5 } else { 1 });
    let point = point_in(places, commune, shape, rng);
    let at = when(rng);
    let agency = if cat.communal {
        format!("UBND {}", commune.name)
    } else {
        cat.agency_responsible.clone()
    };
    let description = spec.texts[rng.below(spec.texts.len())].to_string();
    let location = point.map(|p| Point::new(p[0], p[1]));
    let dues = cat.sla.due(calendar, at, cat.urgent);
    let mut r = Report::received(
        id,
        cat,
        description,
        agency,
        at,
        dues,
        (location, Some(commune)),
    );
    if cat.service_code == "o-nhiem" {
        let kind = ["khong_khi", "nuoc", "mui", "tieng_on"][rng.below(4)];
        r.attributes = [("loai_o_nhiem".to_string(), serde_json::json!(kind))].into();
    }
    r.supporters = u32::from(rng.chance(0.1)) * (1 + rng.below(4) as u32);
    r.demo = true;
    r
}

/// How long the demo's simulator waits between two new reports: a few an hour, at
/// random between these bounds.
pub const NEW_REPORT_EVERY: (Duration, Duration) =
    (Duration::from_secs(4 * 60), Duration::from_secs(16 * 60));

/// The demo's simulator of residents: a new report (marked `demo`, received now, with
/// an id of its own: `DEMO-` and 12 letters or digits) every few minutes, until `stop`
/// turns true. The operations centre sees them arrive as it would real ones, urgent
/// ones with their notice.
pub fn spawn_new_reports(
    reports: Arc<Reports>,
    every: (Duration, Duration),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let seed = reports.now().timestamp_nanos_opt().unwrap_or_default() as u64;
        let mut rng = Rng(seed);
        loop {
            let (lo, hi) = every;
            let wait = lo + (hi.saturating_sub(lo)).mul_f64(rng.unit());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match new_report(&reports, &mut rng).await {
                Ok(id) => tracing::debug!(id, "demo: a new report"),
                Err(e) => tracing::warn!(error = %e, "demo: a new report could not be written"),
            }
        }
    })
}

async fn new_report(reports: &Reports, rng: &mut Rng) -> Result<String, Error> {
    let cats = categories();
    let places = reports.places();
    let communes: Vec<_> = places.communes().collect();
    let calendar = reports.calendar().await?;
    let id = format!("DEMO-{}", crate::service::new_request_id());
    let now = reports.now();
    let r = received(rng, &cats, places, &communes, &calendar, |_| now, id);
    let entity = model::entity(&report_id(&r.service_request_id), SERVICE_REQUEST, &r)?;
    reports
        .hub()
        .create_entity(&Scope::system("demo", TENANT), entity)
        .await?;
    Ok(r.service_request_id)
}

/// Takes a demo report through the workflow, each step at a plausible time, never
/// past `now`.
fn walk(
    r: &mut Report,
    rng: &mut Rng,
    calendar: &Calendar,
    now: DateTime<Utc>,
    actor: &str,
    earlier: &[Report],
) {
    let scale = if r.urgent { 0.1 } else { 1.0 };
    let mut t = r.requested_datetime;
    let mut step = |r: &mut Report, rng: &mut Rng, lo: f64, hi: f64, a: Action| -> bool {
        let next = t + rng.hours(lo * scale, hi * scale);
        if next > now {
            return false;
        }
        t = next;
        workflow::apply(r, &a, actor, next, calendar).is_ok()
    };
    // Acceptance: most within a working day or two; a few rejected or merged.
    let roll = rng.unit();
    if roll < 0.06 {
        step(
            r,
            rng,
            2.0,
            40.0,
            Action::Reject {
                reason: "Không thuộc thẩm quyền giải quyết; đã hướng dẫn người phản ánh".into(),
            },
        );
        return;
    }
    if roll < 0.10 && !earlier.is_empty() {
        let into = earlier[rng.below(earlier.len())].service_request_id.clone();
        step(r, rng, 2.0, 30.0, Action::Merge { into });
        return;
    }
    let slow = rng.chance(0.12);
    if !step(
        r,
        rng,
        1.0,
        if slow { 80.0 } else { 30.0 },
        Action::Accept { note: None },
    ) {
        return;
    }
    let officer = Some(format!("Tổ xử lý {}", 1 + rng.below(9)));
    if !step(
        r,
        rng,
        1.0,
        24.0,
        Action::Assign {
            agency: None,
            officer,
        },
    ) {
        return;
    }
    if !step(r, rng, 2.0, 48.0, Action::Start { note: None }) {
        return;
    }
    if slow && rng.chance(0.5) {
        let working_days = 5 + rng.below(6) as u32;
        let _ = step(
            r,
            rng,
            24.0,
            200.0,
            Action::Extend {
                working_days,
                reason: "Cần phối hợp nhiều đơn vị, chờ vật tư".into(),
            },
        );
    }
    let hi = if slow { 600.0 } else { 250.0 };
    if !step(
        r,
        rng,
        4.0,
        hi,
        Action::Resolve {
            result: "Đã kiểm tra và xử lý xong; mời người dân đánh giá".into(),
        },
    ) {
        return;
    }
    // The reporter rates it (most do), or it closes by itself after 7 days.
    if rng.chance(0.7) {
        let rating = *pick(rng, &[(5u8, 55u32), (4, 30), (3, 7), (2, 5), (1, 3)], |x| {
            x.1
        });
        if !step(
            r,
            rng,
            2.0,
            100.0,
            Action::Rate {
                rating: rating.0,
                comment: None,
            },
        ) {
            return;
        }
        if rating.0 <= workflow::BAD_RATING {
            let _ = step(
                r,
                rng,
                24.0,
                200.0,
                Action::Resolve {
                    result: "Đã xử lý lại theo phản hồi của người dân".into(),
                },
            );
        }
    } else if let Some(resolved) = r.resolved_at
        && resolved + TimeDelta::days(workflow::CLOSE_AFTER_DAYS) <= now
    {
        let at = resolved + TimeDelta::days(workflow::CLOSE_AFTER_DAYS);
        let _ = workflow::apply(
            r,
            &Action::Close {
                note: Some("Tự đóng sau 7 ngày không đánh giá".into()),
            },
            actor,
            at,
            calendar,
        );
    }
}

/// What [`load`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub categories: usize,
    pub reports: usize,
}

/// Writes the demo categories and reports into the default tenant.
pub async fn load(reports: &Arc<Reports>) -> Result<Loaded, Error> {
    let hub: &Hub = reports.hub();
    let scope = Scope::system("demo", TENANT);
    let cats = categories();
    let n_cats = cats.len();
    reports.put_categories(&scope, cats).await?;
    let calendar = reports.calendar().await?;
    let list = self::reports(reports.places(), &calendar, reports.now());
    let n = list.len();
    for chunk in list.chunks(250) {
        let mut batch = Vec::with_capacity(chunk.len());
        for r in chunk {
            batch.push(Ok(model::entity(
                &report_id(&r.service_request_id),
                SERVICE_REQUEST,
                r,
            )?));
        }
        for (id, result) in hub.batch_upsert(&scope, batch, false).await? {
            result.map_err(|e| Error::new(e.kind, format!("{id}: {}", e.detail)))?;
        }
    }
    Ok(Loaded {
        categories: n_cats,
        reports: n,
    })
}
