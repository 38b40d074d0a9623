//! Points of interest, hospitals and commune health stations, schools.
//!
//! The named places are real; their positions are approximate and their figures
//! (beds, pupils) are demo. The per-commune health stations and schools stand for the
//! ones every commune has; their positions are drawn inside the commune.

use serde_json::json;

use super::{Demo, Landmark, prop};
use crate::Result;
use crate::admin::UnitKind;
use crate::geom::Position;
use crate::rng::Rng;

#[rustfmt::skip]
const POINTS_OF_INTEREST: [Landmark; 24] = [
    ("Thành Cổ Quảng Trị", "Quảng Trị Citadel", "19360", [107.1893, 16.7519], &["historicSite", "monument"]),
    ("Địa đạo Vịnh Mốc", "Vịnh Mốc Tunnels", "19414", [107.1068, 17.0596], &["historicSite"]),
    ("Bãi biển Cửa Tùng", "Cửa Tùng Beach", "19414", [107.1080, 17.0170], &["beach"]),
    ("Đảo Cồn Cỏ", "Cồn Cỏ Island", "19742", [107.3390, 17.1580], &["island", "nature"]),
    ("Vườn quốc gia Phong Nha – Kẻ Bàng", "Phong Nha – Kẻ Bàng National Park", "19138", [106.3000, 17.6000], &["nationalPark", "worldHeritageSite"]),
    ("Động Phong Nha", "Phong Nha Cave", "19138", [106.2836, 17.5903], &["cave", "nature"]),
    ("Động Thiên Đường", "Paradise Cave", "19138", [106.2220, 17.5210], &["cave", "nature"]),
    ("Hang Sơn Đoòng", "Sơn Đoòng Cave", "19147", [106.2879, 17.4567], &["cave", "nature"]),
    ("Suối Moọc", "Moọc Spring", "19138", [106.3100, 17.5700], &["nature"]),
    ("Di tích Đôi bờ Hiền Lương – Bến Hải", "Hiền Lương – Bến Hải Relic", "19501", [107.0535, 17.0005], &["historicSite", "monument"]),
    ("Nghĩa trang Liệt sĩ Quốc gia Trường Sơn", "Trường Sơn National Martyrs' Cemetery", "19537", [106.9630, 16.8700], &["cemetery", "historicSite"]),
    ("Nghĩa trang Liệt sĩ Quốc gia Đường 9", "Road 9 National Martyrs' Cemetery", "19333", [107.0720, 16.8120], &["cemetery", "historicSite"]),
    ("Trung tâm Hành hương Đức Mẹ La Vang", "Our Lady of La Vang Sanctuary", "19702", [107.1958, 16.7033], &["placeOfWorship"]),
    ("Di tích Sân bay Tà Cơn", "Tà Cơn Airfield Relic", "19429", [106.7352, 16.6428], &["historicSite", "museum"]),
    ("Cầu treo Đakrông", "Đakrông Bridge", "19564", [106.8776, 16.6137], &["historicSite", "bridge"]),
    ("Cửa khẩu Quốc tế Lao Bảo", "Lao Bảo International Border Gate", "19432", [106.5944, 16.6178], &["borderCrossing"]),
    ("Bãi biển Cửa Việt", "Cửa Việt Beach", "19496", [107.1900, 16.9060], &["beach"]),
    ("Bãi biển Mỹ Thủy", "Mỹ Thủy Beach", "19741", [107.3300, 16.7650], &["beach"]),
    ("Bãi biển Nhật Lệ", "Nhật Lệ Beach", "18880", [106.6290, 17.4900], &["beach"]),
    ("Bãi biển Bảo Ninh", "Bảo Ninh Beach", "18880", [106.6450, 17.4650], &["beach"]),
    ("Quảng Bình Quan", "Quảng Bình Gate", "18880", [106.6230, 17.4690], &["historicSite"]),
    ("Di tích Nhà thờ Tam Tòa", "Tam Tòa Church Ruins", "18880", [106.6270, 17.4740], &["historicSite"]),
    ("Vũng Chùa – Đảo Yến", "Vũng Chùa – Yến Island", "19021", [106.4640, 17.8930], &["memorial", "historicSite"]),
    ("Bãi Đá Nhảy", "Đá Nhảy Beach", "19126", [106.5080, 17.6700], &["beach"]),
];

pub(super) fn points_of_interest(d: &mut Demo) -> Result<()> {
    for (vi, en, code, near, categories) in POINTS_OF_INTEREST {
        let e = d.landmark("PointOfInterest", (vi, en), code, near)?;
        d.push(e, json!({"category": prop(categories)}));
    }
    Ok(())
}

/// (Vietnamese name, English name, unit, near, beds)
#[rustfmt::skip]
const HOSPITALS: [(&str, &str, &str, Position, u32); 17] = [
    ("Bệnh viện Đa khoa tỉnh Quảng Trị", "Quảng Trị Provincial General Hospital", "19351", [107.1070, 16.8020], 900),
    ("Bệnh viện Hữu nghị Việt Nam – Cu Ba Đồng Hới", "Việt Nam – Cuba Friendship Hospital, Đồng Hới", "18880", [106.5950, 17.4640], 1000),
    ("Bệnh viện Đa khoa khu vực Triệu Hải", "Triệu Hải Regional General Hospital", "19360", [107.1930, 16.7450], 400),
    ("Bệnh viện Đa khoa khu vực Bắc Quảng Bình", "North Quảng Bình Regional General Hospital", "19066", [106.4400, 17.7450], 500),
    ("Trung tâm Y tế Vĩnh Linh", "Vĩnh Linh Health Centre", "19363", [107.0150, 17.0650], 250),
    ("Trung tâm Y tế Gio Linh", "Gio Linh Health Centre", "19495", [107.0680, 16.9150], 180),
    ("Trung tâm Y tế Cam Lộ", "Cam Lộ Health Centre", "19597", [106.9920, 16.8000], 150),
    ("Trung tâm Y tế Triệu Phong", "Triệu Phong Health Centre", "19624", [107.1650, 16.7720], 160),
    ("Trung tâm Y tế Hải Lăng", "Hải Lăng Health Centre", "19681", [107.2450, 16.6600], 180),
    ("Trung tâm Y tế Hướng Hóa", "Hướng Hóa Health Centre", "19429", [106.7300, 16.6250], 220),
    ("Trung tâm Y tế Đakrông", "Đakrông Health Centre", "19555", [106.9000, 16.6800], 120),
    ("Trung tâm Y tế Lệ Thủy", "Lệ Thủy Health Centre", "19249", [106.7900, 17.2200], 250),
    ("Trung tâm Y tế Quảng Ninh", "Quảng Ninh Health Centre", "19207", [106.6330, 17.4010], 180),
    ("Trung tâm Y tế Bố Trạch", "Bố Trạch Health Centre", "19111", [106.5300, 17.5870], 250),
    ("Trung tâm Y tế Tuyên Hóa", "Tuyên Hóa Health Centre", "18949", [106.0200, 17.8850], 150),
    ("Trung tâm Y tế Minh Hóa", "Minh Hóa Health Centre", "18901", [105.9800, 17.7800], 120),
    ("Trung tâm Y tế Quảng Trạch", "Quảng Trạch Health Centre", "19057", [106.4000, 17.8050], 150),
];

pub(super) fn health(d: &mut Demo) -> Result<()> {
    let mut rng = Rng::new("health");
    for (vi, en, code, near, beds) in HOSPITALS {
        let e = d.landmark("Hospital", (vi, en), code, near)?;
        let category = if vi.starts_with("Bệnh viện") {
            "generalHospital"
        } else {
            "healthCentre"
        };
        let attrs = json!({
            "category": prop(json!([category])),
            "bedCapacity": prop(beds),
            "bedOccupancy": d.measured(rng.value(0.6, 1.1, 2), None),
        });
        d.push(e, attrs);
    }
    // Every commune-level unit has a health station (trạm y tế).
    for unit in d.all {
        let (e, mut rng) = d.commune_place(
            "MedicalClinic",
            &unit.code,
            (
                &format!("Trạm Y tế {}", unit.full_name),
                &format!("{} Health Station", unit.full_name_en),
            ),
            unit,
        )?;
        let attrs = json!({
            "category": prop(json!(["communeHealthStation"])),
            "staff": prop(3 + rng.below(6)),
        });
        d.push(e, attrs);
    }
    Ok(())
}

/// (Vietnamese name, English name, unit, near, level)
#[rustfmt::skip]
const NAMED_SCHOOLS: [(&str, &str, &str, Position, &str); 4] = [
    ("Trường THPT chuyên Lê Quý Đôn", "Lê Quý Đôn High School for the Gifted", "19333", [107.0950, 16.8120], "upperSecondary"),
    ("Trường THPT chuyên Võ Nguyên Giáp", "Võ Nguyên Giáp High School for the Gifted", "18880", [106.6100, 17.4720], "upperSecondary"),
    ("Trường Đại học Quảng Bình", "Quảng Bình University", "18859", [106.5880, 17.4960], "university"),
    ("Phân hiệu Đại học Huế tại Quảng Trị", "Huế University, Quảng Trị Campus", "19333", [107.0830, 16.8290], "university"),
];

pub(super) fn schools(d: &mut Demo) -> Result<()> {
    let mut rng = Rng::new("schools");
    for (vi, en, code, near, level) in NAMED_SCHOOLS {
        let e = d.landmark("School", (vi, en), code, near)?;
        let students = if level == "university" {
            2000 + rng.below(4000)
        } else {
            700 + rng.below(500)
        };
        let attrs = json!({"educationLevel": prop(level), "numberOfStudents": prop(students)});
        d.push(e, attrs);
    }
    // A primary and a lower-secondary school in every commune-level unit but the
    // special zone (Cồn Cỏ has a handful of pupils).
    for unit in d.all {
        if unit.kind == UnitKind::SpecialZone {
            continue;
        }
        for (level, vi, en, pupils) in [
            ("primary", "Trường Tiểu học", "Primary School", (250, 700)),
            (
                "lowerSecondary",
                "Trường THCS",
                "Lower Secondary School",
                (300, 800),
            ),
        ] {
            let (e, mut rng) = d.commune_place(
                "School",
                &format!("{}-{level}", unit.code),
                (
                    &format!("{vi} {}", unit.name),
                    &format!("{} {en}", unit.name_en),
                ),
                unit,
            )?;
            let attrs = json!({
                "educationLevel": prop(level),
                "numberOfStudents": prop(pupils.0 + rng.below(pupils.1 - pupils.0)),
            });
            d.push(e, attrs);
        }
    }
    Ok(())
}
