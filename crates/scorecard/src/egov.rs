//! E-government service indicators of Decision 766/QĐ-TTg computed from dossiers of
//! administrative procedures, per agency and month: on-time rate (2.1), online dossier
//! rate (3.3), online payment rate (3.6), digitised dossier rate (4.2), and the points
//! they earn under the Decision's thresholds.
//!
//! Dossiers are imported as CSV whose columns carry the national public-service
//! portal's meanings (`NgayTiepNhan`, `NgayHenTra`, `NgayKetThucXuLy`, `KenhThucHien`,
//! `DuocThanhToanTrucTuyen`, `DuocSoHoa`). A file with any bad row is refused whole,
//! each bad row named by its line and reason; nothing partial is stored.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Utc};
use hub::{Hub, Scope};
use ngsi::{Context, Error};
use serde::Serialize;
use serde_json::{Value, json};

/// The six groups the portal publishes per province, with their points (total 100).
pub const GROUPS: [(&str, &str, u32); 6] = [
    ("CKMB", "Công khai, minh bạch", 18),
    ("TDGQ", "Tiến độ, kết quả giải quyết", 20),
    ("CLGQ", "Dịch vụ công trực tuyến", 12),
    ("TTTT", "Thanh toán trực tuyến", 10),
    ("MDSH", "Số hóa hồ sơ", 22),
    ("MDHL", "Mức độ hài lòng", 18),
];

/// The indicators computed from dossiers: code, group, the rate at which full points
/// are earned (below it, points in proportion).
pub const INDICATORS: [(&str, &str, f64); 4] = [
    ("2.1", "TDGQ", 1.0),
    ("3.3", "CLGQ", 0.5),
    ("3.6", "TTTT", 1.0),
    ("4.2", "MDSH", 0.8),
];

const MAX_ROWS: usize = 200_000;

/// Checks the group scores of a Decision 766 total: known groups, each within its
/// points, adding up to the total.
pub fn check_group_scores(
    kpi: &str,
    groups: &BTreeMap<String, f64>,
    total: f64,
) -> Result<(), Error> {
    if kpi != "egov-766" {
        return Err(Error::bad_data(
            "groupScores belong to the egov-766 KPI only",
        ));
    }
    for (code, v) in groups {
        let max = GROUPS
            .iter()
            .find(|g| g.0 == code)
            .map(|g| f64::from(g.2))
            .ok_or_else(|| Error::bad_data(format!("{code:?} is not a group of Decision 766")))?;
        if !v.is_finite() || *v < 0.0 || *v > max {
            return Err(Error::bad_data(format!("{code} is scored from 0 to {max}")));
        }
    }
    let sum: f64 = groups.values().sum();
    if (sum - total).abs() > 0.05 {
        return Err(Error::bad_data(format!(
            "the group scores add up to {sum:.2}, not to the value {total}"
        )));
    }
    Ok(())
}

/// Reads the national portal's yearly evaluation export (`data.evaluation[]` of
/// `departmentCode`, `totalScore`, `groupScores`) for one department: its total and
/// group scores.
pub fn portal_scores(
    export: &Value,
    department: &str,
) -> Result<(f64, BTreeMap<String, f64>), Error> {
    let list = export
        .pointer("/data/evaluation")
        .or_else(|| export.get("evaluation"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::bad_data("the export has no data.evaluation list"))?;
    let item = list
        .iter()
        .find(|e| {
            e.get("departmentCode").and_then(Value::as_str) == Some(department)
                || e.get("departmentId")
                    .map(|v| v.to_string().trim_matches('"') == department)
                    == Some(true)
        })
        .ok_or_else(|| Error::bad_data(format!("no department {department:?} in the export")))?;
    let total = item
        .get("totalScore")
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::bad_data("the department has no totalScore"))?;
    let groups: BTreeMap<String, f64> = item
        .get("groupScores")
        .and_then(Value::as_object)
        .map(|g| {
            g.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok((total, groups))
}

/// The columns of the portal's CSV export of the 766 scores that are read: the
/// department's code, its total and the six group scores (by their codes). Other
/// columns (the department's name, its rank) are left alone.
pub const PORTAL_CSV_COLUMNS: [&str; 8] = [
    "departmentCode",
    "totalScore",
    "CKMB",
    "TDGQ",
    "CLGQ",
    "TTTT",
    "MDSH",
    "MDHL",
];

/// Reads the portal's CSV export of the 766 scores (one department a row) and gives
/// one department's total and group scores. Every row is checked — a department code,
/// numbers, each group within its points, groups adding up to the total, no
/// department twice — and a file with any bad row is refused whole, each bad row
/// named by its line and reason.
pub fn portal_scores_csv(
    bytes: &[u8],
    department: &str,
) -> Result<(f64, BTreeMap<String, f64>), Error> {
    let rows = parse_portal_csv(bytes).map_err(|errors| bad_rows(&errors))?;
    rows.into_iter()
        .find(|(code, _, _)| code == department)
        .map(|(_, total, groups)| (total, groups))
        .ok_or_else(|| Error::bad_data(format!("no department {department:?} in the file")))
}

/// A CSV file's reader (lines starting with `#` are comments, cells trimmed) and its
/// header.
#[allow(clippy::type_complexity)]
fn csv_reader(bytes: &[u8]) -> Result<(csv::Reader<&[u8]>, csv::StringRecord), Vec<(u64, String)>> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    match reader.headers() {
        Ok(h) => {
            let h = h.clone();
            Ok((reader, h))
        }
        Err(e) => Err(vec![(1, format!("unreadable header: {e}"))]),
    }
}

/// A department's row of the portal's CSV: code, total, group scores.
type PortalRow = (String, f64, BTreeMap<String, f64>);

fn parse_portal_csv(bytes: &[u8]) -> Result<Vec<PortalRow>, Vec<(u64, String)>> {
    // A spreadsheet's export may start with a byte-order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (mut reader, headers) = csv_reader(bytes)?;
    let mut index = Vec::new();
    for name in PORTAL_CSV_COLUMNS {
        match headers.iter().position(|h| h == name) {
            Some(i) => index.push(i),
            None => {
                return Err(vec![(
                    1,
                    format!(
                        "the header has no column {name} (it needs {})",
                        PORTAL_CSV_COLUMNS.join(",")
                    ),
                )]);
            }
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in reader.records() {
        let r = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = r.position().map_or(0, |p| p.line());
        let cell = |i: usize| r.get(index[i]).unwrap_or_default();
        let row = || -> Result<PortalRow, String> {
            let dept = code(cell(0), "departmentCode")?;
            let number = |i: usize| {
                let text = cell(i).replace(',', ".");
                text.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        format!(
                            "{} must be a number, not {:?}",
                            PORTAL_CSV_COLUMNS[i],
                            cell(i)
                        )
                    })
            };
            let total = number(1)?;
            let mut groups = BTreeMap::new();
            for (i, group) in PORTAL_CSV_COLUMNS.iter().enumerate().skip(2) {
                groups.insert(group.to_string(), number(i)?);
            }
            check_group_scores("egov-766", &groups, total).map_err(|e| e.detail)?;
            if !(0.0..=100.0).contains(&total) {
                return Err("totalScore is from 0 to 100".into());
            }
            Ok((dept, total, groups))
        };
        match row() {
            Ok(d) if !seen.insert(d.0.clone()) => {
                errors.push((line, format!("department {} appears twice", d.0)));
            }
            Ok(d) => out.push(d),
            Err(reason) => errors.push((line, reason)),
        }
        if out.len() + errors.len() > MAX_ROWS {
            errors.push((0, format!("more than {MAX_ROWS} rows")));
            break;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![(1, "the file holds no department".into())]);
    }
    Ok(out)
}

/// The error of a file refused for its bad rows: the first of them by line.
fn bad_rows(errors: &[(u64, String)]) -> Error {
    let shown: Vec<String> = errors
        .iter()
        .take(MAX_ERRORS_SHOWN)
        .map(|(line, why)| format!("line {line}: {why}"))
        .collect();
    Error::bad_data(format!(
        "{} bad row(s), nothing stored: {}",
        errors.len(),
        shown.join("; ")
    ))
}

const MAX_ERRORS_SHOWN: usize = 20;

/// One dossier, as read from a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dossier {
    pub id: String,
    pub agency: String,
    pub received: NaiveDate,
    pub due: NaiveDate,
    pub finished: Option<NaiveDate>,
    /// 1 in person, 2 online, 3 public postal service.
    pub channel: u8,
    /// The procedure carries a fee or charge.
    pub fee: bool,
    /// 0 not paid online, 1 paid on the national portal, 2 on the local payment portal.
    pub online_payment: u8,
    /// Inputs digitised and result issued electronically.
    pub digitised: bool,
    /// Requests to the citizen for more documents.
    pub supplements: u32,
    /// Days spent waiting for the citizen's supplements (not counted against the due
    /// date).
    pub supplement_days: u32,
}

impl Dossier {
    /// On time (2.1): finished, or still open on `today`, no later than the due date
    /// plus the days waiting for the citizen; more than one supplement request makes it
    /// late.
    pub fn on_time(&self, today: NaiveDate) -> bool {
        let end = self.finished.unwrap_or(today);
        let due = self.due + chrono::Days::new(u64::from(self.supplement_days));
        self.supplements <= 1 && end <= due
    }
}

/// The columns of a dossier file, in order.
pub const COLUMNS: [&str; 11] = [
    "dossier_id",
    "agency",
    "received",
    "due",
    "finished",
    "channel",
    "fee",
    "online_payment",
    "digitised",
    "supplements",
    "supplement_days",
];

fn date(s: &str, name: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{name} must be a date YYYY-MM-DD, not {s:?}"))
}

fn flag(s: &str, name: &str, max: u8) -> Result<u8, String> {
    s.trim()
        .parse::<u8>()
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| format!("{name} must be a whole number from 0 to {max}, not {s:?}"))
}

fn code(s: &str, name: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{name} must be 1 to 64 letters, digits, '-', '_' or '.', not {s:?}"
        ))
    }
}

fn row(r: &csv::StringRecord) -> Result<Dossier, String> {
    if r.len() != COLUMNS.len() {
        return Err(format!(
            "{} fields where {} are expected",
            r.len(),
            COLUMNS.len()
        ));
    }
    let f = |i: usize| r.get(i).unwrap_or_default();
    let received = date(f(2), "received")?;
    let due = date(f(3), "due")?;
    if due < received {
        return Err("due is before received".into());
    }
    let finished = match f(4).trim() {
        "" => None,
        s => Some(date(s, "finished")?),
    };
    if finished.is_some_and(|d| d < received) {
        return Err("finished is before received".into());
    }
    let channel = flag(f(5), "channel", 3)?;
    if channel == 0 {
        return Err("channel must be 1 (in person), 2 (online) or 3 (post)".into());
    }
    let fee = flag(f(6), "fee", 1)? == 1;
    let online_payment = flag(f(7), "online_payment", 2)?;
    if online_payment > 0 && !fee {
        return Err("online_payment is set for a procedure without fee".into());
    }
    let number = |i: usize, name: &str| {
        f(i).trim()
            .parse::<u32>()
            .ok()
            .filter(|v| *v <= 3650)
            .ok_or_else(|| format!("{name} must be a whole number from 0 to 3650"))
    };
    Ok(Dossier {
        id: code(f(0), "dossier_id")?,
        agency: code(f(1), "agency")?,
        received,
        due,
        finished,
        channel,
        fee,
        online_payment,
        digitised: flag(f(8), "digitised", 1)? == 1,
        supplements: number(9, "supplements")?,
        supplement_days: number(10, "supplement_days")?,
    })
}

/// Reads a dossier file: every dossier, or every bad row with its line and reason.
/// Lines starting with `#` are comments.
pub fn parse(bytes: &[u8]) -> Result<Vec<Dossier>, Vec<(u64, String)>> {
    let (mut reader, headers) = csv_reader(bytes)?;
    let names: Vec<&str> = headers.iter().collect();
    if names != COLUMNS {
        return Err(vec![(
            1,
            format!("the header must be {}", COLUMNS.join(",")),
        )]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in reader.records() {
        match record {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push((line, format!("unreadable row: {e}")));
            }
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                match row(&r) {
                    Ok(d) if !seen.insert(d.id.clone()) => {
                        errors.push((line, format!("dossier {} appears twice", d.id)));
                    }
                    Ok(d) => out.push(d),
                    Err(reason) => errors.push((line, reason)),
                }
            }
        }
        if out.len() + errors.len() > MAX_ROWS {
            errors.push((0, format!("more than {MAX_ROWS} rows")));
            break;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The indicators of one agency in one month.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthIndex {
    pub agency: String,
    /// `YYYY-MM`, the month the dossiers were received.
    pub month: String,
    pub dossiers: u64,
    pub on_time: u64,
    pub online: u64,
    pub fee_bearing: u64,
    pub paid_online: u64,
    pub digitised: u64,
    /// Indicator code → rate (0–1), absent when it has no denominator.
    pub rates: BTreeMap<String, f64>,
    /// Group code → points earned by the indicator computed for it.
    pub points: BTreeMap<String, f64>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The points an indicator earns: full at or above its threshold, else in proportion.
pub fn points(rate: f64, full_at: f64, max: u32) -> f64 {
    let share = (rate / full_at).min(1.0);
    crate::sources::round(share * f64::from(max), 2)
}

/// Computes the indicators per agency and month of reception.
pub fn compute(dossiers: &[Dossier], today: NaiveDate) -> Vec<MonthIndex> {
    let mut by: BTreeMap<(String, String), Vec<&Dossier>> = BTreeMap::new();
    for d in dossiers {
        let month = format!("{:04}-{:02}", d.received.year(), d.received.month());
        by.entry((d.agency.clone(), month)).or_default().push(d);
    }
    by.into_iter()
        .map(|((agency, month), ds)| {
            let n = ds.len() as u64;
            let count = |f: &dyn Fn(&Dossier) -> bool| ds.iter().filter(|d| f(d)).count() as u64;
            let on_time = count(&|d| d.on_time(today));
            let online = count(&|d| d.channel == 2);
            let fee_bearing = count(&|d| d.fee);
            let paid_online = count(&|d| d.fee && d.online_payment > 0);
            let digitised = count(&|d| d.digitised);
            let mut rates = BTreeMap::new();
            for (code, r) in [
                ("2.1", ratio(on_time, n)),
                ("3.3", ratio(online, n)),
                ("3.6", ratio(paid_online, fee_bearing)),
                ("4.2", ratio(digitised, n)),
            ] {
                if let Some(r) = r {
                    rates.insert(code.to_string(), crate::sources::round(r, 4));
                }
            }
            let mut pts = BTreeMap::new();
            for (code, group, full_at) in INDICATORS {
                let max = GROUPS.iter().find(|g| g.0 == group).map_or(0, |g| g.2);
                if let Some(r) = rates.get(code) {
                    pts.insert(group.to_string(), points(*r, full_at, max));
                }
            }
            MonthIndex {
                agency,
                month,
                dossiers: n,
                on_time,
                online,
                fee_bearing,
                paid_online,
                digitised,
                rates,
                points: pts,
            }
        })
        .collect()
}

fn index_id(agency: &str, month: &str) -> String {
    format!("urn:ngsi-ld:EgovServiceIndex:{agency}-{month}")
}

/// Imports a dossier file: checks every row, then writes one `EgovServiceIndex`
/// entity per agency and month (replacing those of the same agency and month).
pub async fn import(hub: &Hub, scope: &Scope, bytes: &[u8]) -> Result<Value, Error> {
    let dossiers = parse(bytes).map_err(|errors| bad_rows(&errors))?;
    if dossiers.is_empty() {
        return Err(Error::bad_data("the file holds no dossier"));
    }
    let today = Utc::now().date_naive();
    let computed = compute(&dossiers, today);
    // A file that says it is a synthetic sample is marked so wherever it shows.
    let sample = bytes.starts_with(b"# SYNTHETIC SAMPLE");
    let ctx = Context::core();
    let reader = ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let mut batch = Vec::new();
    for m in &computed {
        let v = json!({
            "id": index_id(&m.agency, &m.month),
            "type": "EgovServiceIndex",
            "agency": {"type": "Property", "value": m.agency},
            "month": {"type": "Property", "value": m.month},
            "indicators": {"type": "Property", "value": serde_json::to_value(m).unwrap_or(Value::Null)},
            "computedAt": {"type": "Property", "value": ngsi::entity::format_time(&Utc::now())},
            "syntheticSample": {"type": "Property", "value": sample},
        });
        batch.push(reader.entity(&v, None).map_err(|e| (String::new(), e)));
    }
    for (id, r) in hub.batch_upsert(scope, batch, true).await? {
        r.map_err(|e| Error::new(e.kind, format!("{id}: {}", e.detail)))?;
    }
    Ok(json!({"dossiers": dossiers.len(), "indices": computed}))
}

/// The stored indices, and the province's per month (counts summed over agencies).
pub async fn report(hub: &Hub, scope: &Scope) -> Result<Value, Error> {
    let (_, entities) =
        crate::sources::run_query(hub, scope, "type=EgovServiceIndex", true).await?;
    let kv: Vec<_> = entities.iter().map(crate::engine::keyvalues).collect();
    let sample = kv
        .iter()
        .any(|e| e.get("syntheticSample") == Some(&Value::Bool(true)));
    let mut indices: Vec<Value> = kv
        .iter()
        .filter_map(|e| e.get("indicators").cloned())
        .collect();
    indices.sort_by_key(|v| (v["month"].to_string(), v["agency"].to_string()));
    let mut province: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    for v in &indices {
        let month = v["month"].as_str().unwrap_or_default().to_string();
        let t = province.entry(month).or_default();
        for (i, key) in [
            "dossiers",
            "onTime",
            "online",
            "feeBearing",
            "paidOnline",
            "digitised",
        ]
        .iter()
        .enumerate()
        {
            t[i] += v[key].as_u64().unwrap_or(0);
        }
    }
    let province: Vec<Value> = province
        .into_iter()
        .map(|(month, t)| {
            let rate = |n: u64, d: u64| ratio(n, d).map(|r| crate::sources::round(r, 4));
            json!({
                "month": month,
                "dossiers": t[0],
                "rates": {"2.1": rate(t[1], t[0]), "3.3": rate(t[2], t[0]), "3.6": rate(t[4], t[3]), "4.2": rate(t[5], t[0])},
            })
        })
        .collect();
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(c, n, p)| json!({"code": c, "name": n, "points": p}))
        .collect();
    Ok(json!({"groups": groups, "indices": indices, "province": province, "sample": sample}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    const FILE: &str = "\
# a small file computed by hand
dossier_id,agency,procedure,received,due,finished,channel,fee,online_payment,digitised,supplements,supplement_days
";

    #[test]
    fn the_formulas_match_values_computed_by_hand() {
        let csv = "\
dossier_id,agency,received,due,finished,channel,fee,online_payment,digitised,supplements,supplement_days
d1,SXD,2026-10-01,2026-10-10,2026-10-09,2,1,1,1,0,0
d2,SXD,2026-10-02,2026-10-10,2026-10-12,1,1,0,0,0,0
d3,SXD,2026-10-03,2026-10-10,2026-10-13,2,0,0,1,1,3
d4,SXD,2026-10-04,2026-10-10,2026-10-08,2,1,2,1,2,0
d5,SXD,2026-10-05,2026-10-20,,3,0,0,0,0,0
d6,STC,2026-11-01,2026-11-05,2026-11-05,1,0,0,0,0,0
";
        let ds = parse(csv.as_bytes()).expect("a good file");
        let out = compute(&ds, day("2026-10-15"));
        assert_eq!(out.len(), 2);
        let sxd = out.iter().find(|m| m.agency == "SXD").expect("SXD");
        // d1 on time; d2 late by two days; d3 three days late but waited three days
        // for the citizen's supplement: on time; d4 early but asked twice: late; d5
        // still open before its due date: on time.
        assert_eq!((sxd.dossiers, sxd.on_time), (5, 3));
        assert_eq!(sxd.rates["2.1"], 0.6);
        assert_eq!(sxd.points["TDGQ"], 12.0);
        // Online: d1, d3, d4 → 3/5 = 60 % ≥ 50 %: full 12 points.
        assert_eq!(sxd.rates["3.3"], 0.6);
        assert_eq!(sxd.points["CLGQ"], 12.0);
        // Fee-bearing d1, d2, d4; paid online d1, d4 → 2/3.
        assert_eq!(sxd.rates["3.6"], 0.6667);
        assert_eq!(sxd.points["TTTT"], 6.67);
        // Digitised d1, d3, d4 → 60 % of the 80 % threshold → 0.75 × 22.
        assert_eq!(sxd.points["MDSH"], 16.5);
        let stc = out.iter().find(|m| m.agency == "STC").expect("STC");
        assert_eq!(stc.month, "2026-11");
        assert_eq!(stc.rates.get("3.6"), None, "no fee-bearing dossier");
        // An open dossier past its due date is late.
        let late = compute(&ds[4..5], day("2026-10-21"));
        assert_eq!(late[0].on_time, 0);
    }

    #[test]
    fn the_portal_export_gives_a_department_total_and_groups() {
        let export = serde_json::json!({"data": {"evaluation": [
            {"departmentCode": "01", "totalScore": 90.0, "groupScores": {"CKMB": 18.0}},
            {"departmentCode": "44", "totalScore": 71.5, "groupScores": {
                "CKMB": 17.0, "TDGQ": 15.5, "CLGQ": 9.0, "TTTT": 6.0, "MDSH": 12.0, "MDHL": 12.0}}
        ]}});
        let (total, groups) = portal_scores(&export, "44").expect("province 44");
        assert_eq!(total, 71.5);
        assert!(check_group_scores("egov-766", &groups, total).is_ok());
        assert!(
            check_group_scores("egov-766", &groups, 80.0).is_err(),
            "sum differs"
        );
        assert!(check_group_scores("dti", &groups, total).is_err());
        let mut over = groups.clone();
        over.insert("TTTT".into(), 11.0);
        assert!(check_group_scores("egov-766", &over, total + 5.0).is_err());
        assert!(portal_scores(&export, "99").is_err());
    }

    #[test]
    fn the_portal_csv_gives_a_department_and_names_bad_rows() {
        let csv = "\u{feff}departmentCode,departmentName,totalScore,CKMB,TDGQ,CLGQ,TTTT,MDSH,MDHL
01,Hà Nội,90.5,18,19,11.5,10,17,15
44,Quảng Trị,\"71,5\",17,15.5,9,6,12,12
";
        let (total, groups) = portal_scores_csv(csv.as_bytes(), "44").expect("province 44");
        assert_eq!(total, 71.5);
        assert_eq!(groups["TDGQ"], 15.5);
        assert_eq!(groups.len(), 6);
        assert!(portal_scores_csv(csv.as_bytes(), "45").is_err());

        let bad = "departmentCode,totalScore,CKMB,TDGQ,CLGQ,TTTT,MDSH,MDHL
01,90.5,18,19,11.5,10,17,15
44,80,17,15.5,9,6,12,12
45,71.5,17,25,9,6,2.5,12
46,x,17,15.5,9,6,12,12
01,90.5,18,19,11.5,10,17,15
";
        let errors = parse_portal_csv(bad.as_bytes()).expect_err("bad rows");
        let lines: Vec<u64> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![3, 4, 5, 6], "{errors:?}");
        assert!(errors[0].1.contains("add up"), "{errors:?}");
        assert!(errors[1].1.contains("TDGQ"), "{errors:?}");
        assert!(errors[2].1.contains("totalScore"), "{errors:?}");
        assert!(errors[3].1.contains("twice"), "{errors:?}");
        let detail = portal_scores_csv(bad.as_bytes(), "01")
            .expect_err("refused whole")
            .detail;
        assert!(
            detail.starts_with("4 bad row(s), nothing stored: line 3:"),
            "{detail}"
        );
        assert!(
            parse_portal_csv(b"departmentCode,totalScore\n44,71.5\n").is_err(),
            "columns"
        );
    }

    #[test]
    fn bad_rows_are_named_by_line_and_nothing_is_kept() {
        assert!(parse(FILE.as_bytes()).is_err(), "wrong header");
        let csv = "\
dossier_id,agency,received,due,finished,channel,fee,online_payment,digitised,supplements,supplement_days
d1,SXD,2026-10-01,2026-10-10,2026-10-09,2,1,1,1,0,0
d2,SXD,2026-10-12,2026-10-10,,1,1,0,0,0,0
d3,SXD,2026-10-03,2026-10-10,,7,0,0,1,1,3
d1,SXD,2026-10-01,2026-10-10,2026-10-09,2,1,1,1,0,0
";
        let errors = parse(csv.as_bytes()).expect_err("bad rows");
        let lines: Vec<u64> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![3, 4, 5], "{errors:?}");
        assert!(errors[0].1.contains("due is before received"));
        assert!(errors[1].1.contains("channel"));
        assert!(errors[2].1.contains("twice"));
    }
}
