//! The scorecard as a spreadsheet (XLSX), the form agencies report to ministries in:
//! one sheet of KPIs with their targets, status and evidence queries, one of task
//! groups, one of the 766 indicators per agency and month, one of the maturity
//! checklist per ward. Headers are in Vietnamese.

use hub::Scope;
use ngsi::{Error, ErrorKind};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use serde_json::Value;

use crate::engine::Scorecard;

fn xlsx_error(e: XlsxError) -> Error {
    Error::new(
        ErrorKind::InternalError,
        format!("writing the spreadsheet: {e}"),
    )
}

/// A cell from a JSON value: numbers as numbers, the rest as text.
fn cell(sheet: &mut Worksheet, row: u32, col: u16, v: &Value) -> Result<(), XlsxError> {
    match v {
        Value::Null => Ok(()),
        Value::Number(n) => sheet
            .write_number(row, col, n.as_f64().unwrap_or_default())
            .map(|_| ()),
        Value::String(s) => sheet.write_string(row, col, s).map(|_| ()),
        Value::Bool(b) => sheet.write_boolean(row, col, *b).map(|_| ()),
        other => sheet.write_string(row, col, other.to_string()).map(|_| ()),
    }
}

/// Writes a sheet: a bold header row, then one row per item.
fn sheet(
    book: &mut Workbook,
    name: &str,
    headers: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    let s = book.add_worksheet();
    s.set_name(name)?;
    for (c, h) in headers.iter().enumerate() {
        s.write_string_with_format(0, c as u16, *h, &bold)?;
        s.set_column_width(c as u16, if c == 1 { 48 } else { 16 })?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            cell(s, r as u32 + 1, c as u16, v)?;
        }
    }
    s.set_freeze_panes(1, 0)?;
    Ok(())
}

fn vi_name(v: &Value) -> Value {
    match v.get("name") {
        Some(Value::Object(m)) => m.get("vi").cloned().unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// The workbook of a tenant's scorecard.
pub async fn workbook(s: &Scorecard, scope: &Scope) -> Result<Vec<u8>, Error> {
    let kpis = s.kpis(scope, false).await?;
    let (_, tasks) = crate::sources::run_query(s.hub(), scope, "type=PlanTaskGroup", true).await?;
    let mut tasks: Vec<Value> = tasks
        .iter()
        .map(|e| Value::Object(crate::engine::keyvalues(e)))
        .collect();
    tasks.sort_by_key(|t| t["number"].as_u64().unwrap_or(u64::MAX));
    let egov = crate::egov::report(s.hub(), scope).await?;
    let maturity = crate::maturity::report(s.hub(), scope).await?;

    let mut book = Workbook::new();
    let kpi_rows = kpis
        .iter()
        .map(|k| {
            let queries: Vec<String> = k["evidence"]["inputs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| Some(format!("{} ({})", i["href"].as_str()?, i["count"])))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                k["slug"].clone(),
                vi_name(k),
                k["kpiValue"].clone(),
                k["unitCode"].clone(),
                k["target"]["2025"].clone(),
                k["target"]["2030"].clone(),
                k["status"].clone(),
                k["observedAt"].clone(),
                k["mode"].clone(),
                k["organization"]["name"].clone(),
                k["calculationFormula"].clone(),
                Value::String(queries.join("\n")),
                k["evidence"]["url"].clone(),
            ]
        })
        .collect();
    sheet(
        &mut book,
        "Chỉ tiêu",
        &[
            "Mã",
            "Chỉ tiêu",
            "Giá trị",
            "Đơn vị",
            "Mục tiêu 2025",
            "Mục tiêu 2030",
            "Tình trạng",
            "Thời điểm",
            "Cách tính",
            "Cơ quan chủ trì",
            "Công thức",
            "Truy vấn minh chứng",
            "Minh chứng",
        ],
        kpi_rows,
    )
    .map_err(xlsx_error)?;
    let task_rows = tasks
        .iter()
        .map(|t| {
            vec![
                t["number"].clone(),
                vi_name(t),
                t["owner"].clone(),
                t["deadline"].clone(),
                t["taskStatus"].clone(),
                t["progress"].clone(),
                t["progressNotes"]
                    .as_array()
                    .and_then(|n| n.last())
                    .map_or(Value::Null, |n| n["text"].clone()),
            ]
        })
        .collect();
    sheet(
        &mut book,
        "Nhóm nhiệm vụ",
        &[
            "Số",
            "Nhóm nhiệm vụ",
            "Cơ quan chủ trì",
            "Thời hạn",
            "Trạng thái",
            "Tiến độ (%)",
            "Ghi chú mới nhất",
        ],
        task_rows,
    )
    .map_err(xlsx_error)?;
    let egov_rows = egov["indices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    vec![
                        i["month"].clone(),
                        i["agency"].clone(),
                        i["dossiers"].clone(),
                        i["rates"]["2.1"].clone(),
                        i["rates"]["3.3"].clone(),
                        i["rates"]["3.6"].clone(),
                        i["rates"]["4.2"].clone(),
                        i["points"]["TDGQ"].clone(),
                        i["points"]["CLGQ"].clone(),
                        i["points"]["TTTT"].clone(),
                        i["points"]["MDSH"].clone(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    sheet(
        &mut book,
        "Chỉ số 766",
        &[
            "Tháng",
            "Cơ quan",
            "Số hồ sơ",
            "2.1 Đúng hạn",
            "3.3 Trực tuyến",
            "3.6 Thanh toán TT",
            "4.2 Số hóa",
            "TDGQ",
            "CLGQ",
            "TTTT",
            "MDSH",
        ],
        egov_rows,
    )
    .map_err(xlsx_error)?;
    let mut maturity_rows = Vec::new();
    for w in maturity["wards"].as_array().into_iter().flatten() {
        for c in w["criteria"].as_array().into_iter().flatten() {
            maturity_rows.push(vec![
                w["name"].clone(),
                c["text"].clone(),
                c["code"].clone(),
                c["level"].clone(),
                Value::String(
                    if c["result"] == "pass" {
                        "Đạt"
                    } else {
                        "Không đạt"
                    }
                    .into(),
                ),
                Value::String(
                    c["assessment"]["evidence"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("\n")
                        })
                        .unwrap_or_default(),
                ),
            ]);
        }
    }
    sheet(
        &mut book,
        "Đô thị thông minh",
        &[
            "Phường",
            "Tiêu chí",
            "Mã",
            "Cấp độ",
            "Kết quả",
            "Minh chứng",
        ],
        maturity_rows,
    )
    .map_err(xlsx_error)?;
    book.save_to_buffer().map_err(xlsx_error)
}
