//! CSV with a column mapping: which column holds the id, the type, the coordinates
//! and the observation time, and which columns become which attributes.

use std::fmt::Write as _;
use std::io::{self, Read};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Fatal, MAX_RECORD_BYTES, Position, Record, Records};

/// What a column's cells are.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Number,
    #[default]
    Text,
    Boolean,
    Datetime,
}

impl ValueKind {
    fn parse(name: &str) -> Option<ValueKind> {
        match name {
            "number" => Some(ValueKind::Number),
            "text" => Some(ValueKind::Text),
            "boolean" => Some(ValueKind::Boolean),
            "datetime" => Some(ValueKind::Datetime),
            _ => None,
        }
    }
}

/// One column that becomes an attribute.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttributeColumn {
    pub column: String,
    /// The attribute's name (default: the column's).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: ValueKind,
    #[serde(default)]
    pub unit_code: Option<String>,
}

impl AttributeColumn {
    /// Reads `COLUMN[=NAME][:KIND[:UNITCODE]]`, e.g. `temp=temperature:number:CEL`.
    pub fn parse_flag(text: &str) -> Result<AttributeColumn, String> {
        let mut parts = text.splitn(3, ':');
        let target = parts.next().unwrap_or_default();
        let (column, name) = match target.split_once('=') {
            Some((c, n)) => (c, Some(n.to_string())),
            None => (target, None),
        };
        let kind = match parts.next() {
            None => ValueKind::Text,
            Some(k) => ValueKind::parse(k).ok_or_else(|| {
                format!("--attr {text:?}: unknown type {k:?} (number, text, boolean, datetime)")
            })?,
        };
        if column.is_empty() {
            return Err(format!("--attr {text:?} names no column"));
        }
        Ok(AttributeColumn {
            column: column.to_string(),
            name,
            kind,
            unit_code: parts.next().map(str::to_string),
        })
    }

    fn attribute_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.column)
    }
}

/// The column mapping of a CSV file (the mapping file's JSON, or flags).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mapping {
    /// The column of the entity id.
    pub id: Option<String>,
    /// Put before each id (e.g. `urn:ngsi-ld:Streetlight:`).
    pub id_prefix: Option<String>,
    /// The type of every entity.
    #[serde(rename = "type")]
    pub entity_type: Option<String>,
    /// Or the column of each entity's type.
    pub type_column: Option<String>,
    /// Columns of the latitude and longitude (WGS 84 degrees) → `location`.
    pub lat: Option<String>,
    pub lon: Option<String>,
    /// The column of every attribute's `observedAt` (ISO 8601).
    pub observed_at: Option<String>,
    /// Columns that become attributes; none: every other column, as text.
    #[serde(default)]
    pub attributes: Vec<AttributeColumn>,
    /// The field delimiter (default `,`).
    pub delimiter: Option<char>,
}

/// A mapping checked against a header: column numbers.
#[derive(Debug)]
struct Columns {
    id: usize,
    id_prefix: String,
    entity_type: Result<String, usize>,
    location: Option<(usize, usize)>,
    observed_at: Option<usize>,
    attributes: Vec<(usize, AttributeColumn)>,
}

impl Mapping {
    /// The delimiter as one byte.
    pub fn delimiter(&self) -> Result<u8, String> {
        match self.delimiter {
            None => Ok(b','),
            Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => Ok(c as u8),
            Some(c) => Err(format!("the delimiter {c:?} must be one ASCII character")),
        }
    }

    fn columns(&self, header: &csv::StringRecord) -> Result<Columns, String> {
        let names: Vec<&str> = header.iter().collect();
        let find = |what: &str, col: &str| {
            names.iter().position(|n| *n == col).ok_or_else(|| {
                format!(
                    "the mapping's {what} column {col:?} is not in the header (columns: {})",
                    names.join(", ")
                )
            })
        };
        let id = find(
            "id",
            self.id.as_deref().ok_or("the mapping names no id column")?,
        )?;
        let entity_type = match (&self.entity_type, &self.type_column) {
            (Some(t), None) => Ok(t.clone()),
            (None, Some(c)) => Err(find("type", c)?),
            (Some(_), Some(_)) => {
                return Err("give either a type or a type column, not both".into());
            }
            (None, None) => return Err("the mapping gives no type nor type column".into()),
        };
        if let Ok(t) = &entity_type
            && !ngsi::entity::is_valid_name(t)
        {
            return Err(format!("{t:?} is not a valid type name"));
        }
        let location = match (&self.lat, &self.lon) {
            (Some(lat), Some(lon)) => Some((find("lat", lat)?, find("lon", lon)?)),
            (None, None) => None,
            _ => return Err("give both the lat and the lon columns, or neither".into()),
        };
        let observed_at = self
            .observed_at
            .as_deref()
            .map(|c| find("observedAt", c))
            .transpose()?;
        let mut used: Vec<usize> = [Some(id), entity_type.as_ref().err().copied(), observed_at]
            .into_iter()
            .flatten()
            .collect();
        if let Some((lat, lon)) = location {
            used.extend([lat, lon]);
        }
        let attributes: Vec<(usize, AttributeColumn)> = if self.attributes.is_empty() {
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| !used.contains(i))
                .map(|(i, n)| {
                    (
                        i,
                        AttributeColumn {
                            column: n.to_string(),
                            name: None,
                            kind: ValueKind::Text,
                            unit_code: None,
                        },
                    )
                })
                .collect()
        } else {
            self.attributes
                .iter()
                .map(|a| Ok((find("attribute", &a.column)?, a.clone())))
                .collect::<Result<_, String>>()?
        };
        for (_, a) in &attributes {
            let name = a.attribute_name();
            if !ngsi::entity::is_valid_name(name)
                || matches!(
                    name,
                    "id" | "type" | "scope" | "@context" | "createdAt" | "modifiedAt"
                )
            {
                return Err(format!(
                    "column {:?}: {name:?} cannot name an attribute (map it to another name)",
                    a.column
                ));
            }
            if location.is_some() && name == "location" {
                return Err(format!(
                    "column {:?} and the lat/lon columns both make \"location\"",
                    a.column
                ));
            }
        }
        Ok(Columns {
            id,
            id_prefix: self.id_prefix.clone().unwrap_or_default(),
            entity_type,
            location,
            observed_at,
            attributes,
        })
    }
}

/// A cell's text as a message shows it: at most 60 characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// A cell's text, or None when empty.
fn cell(row: &csv::StringRecord, i: usize) -> Option<&str> {
    row.get(i).map(str::trim).filter(|c| !c.is_empty())
}

fn coordinate(text: &str, what: &str, bound: f64) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{what} {} is not a number", shown(text)))?;
    if !v.is_finite() || v.abs() > bound {
        return Err(format!("{what} {v} is out of range [-{bound}, {bound}]"));
    }
    Ok(v)
}

/// A cell's value as the attribute's type.
fn value(text: &str, a: &AttributeColumn) -> Result<Value, String> {
    let bad = |what: &str| format!("column {:?}: {} is not {what}", a.column, shown(text));
    Ok(match a.kind {
        ValueKind::Text => Value::String(text.to_string()),
        ValueKind::Number => {
            let n: f64 = text.parse().map_err(|_| bad("a number"))?;
            if !n.is_finite() {
                return Err(bad("a finite number"));
            }
            // Integers stay integers.
            match text.parse::<i64>() {
                Ok(i) => json!(i),
                Err(_) => json!(n),
            }
        }
        ValueKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad("a boolean (true or false)")),
        },
        ValueKind::Datetime => {
            let t = ngsi::entity::parse_time(text)
                .ok_or_else(|| bad("a date and time (ISO 8601 with its offset)"))?;
            json!({"@type": "DateTime", "@value": ngsi::entity::format_time(&t)})
        }
    })
}

impl Columns {
    /// The entity (normalized NGSI-LD JSON) of a row.
    fn entity(&self, row: &csv::StringRecord) -> Result<Value, String> {
        let mut e = Map::new();
        let id = cell(row, self.id).ok_or("the id cell is empty")?;
        e.insert(
            "id".into(),
            Value::String(format!("{}{id}", self.id_prefix)),
        );
        let entity_type = match &self.entity_type {
            Ok(t) => t.clone(),
            Err(col) => cell(row, *col).ok_or("the type cell is empty")?.to_string(),
        };
        e.insert("type".into(), Value::String(entity_type));
        let observed_at = match self.observed_at.and_then(|i| cell(row, i)) {
            Some(text) => Some(ngsi::entity::format_time(
                &ngsi::entity::parse_time(text).ok_or_else(|| {
                    format!(
                        "observedAt {} is not a date and time (ISO 8601 with its offset)",
                        shown(text)
                    )
                })?,
            )),
            None => None,
        };
        if let Some((lat, lon)) = self.location {
            match (cell(row, lat), cell(row, lon)) {
                (None, None) => {}
                (Some(lat), Some(lon)) => {
                    let lat = coordinate(lat, "latitude", 90.0)?;
                    let lon = coordinate(lon, "longitude", 180.0)?;
                    let mut loc = json!({"type": "GeoProperty",
                        "value": {"type": "Point", "coordinates": [lon, lat]}});
                    if let Some(t) = &observed_at {
                        loc["observedAt"] = json!(t);
                    }
                    e.insert("location".into(), loc);
                }
                _ => {
                    return Err(
                        "a row needs both its latitude and its longitude, or neither".into(),
                    );
                }
            }
        }
        for (i, a) in &self.attributes {
            let Some(text) = cell(row, *i) else { continue };
            let mut attr = json!({"type": "Property", "value": value(text, a)?});
            if let Some(u) = &a.unit_code {
                attr["unitCode"] = json!(u);
            }
            if let Some(t) = &observed_at {
                attr["observedAt"] = json!(t);
            }
            e.insert(a.attribute_name().to_string(), attr);
        }
        Ok(Value::Object(e))
    }
}

/// Passes the input through, failing once one CSV record (up to a line break outside
/// quotes) grows beyond [`MAX_RECORD_BYTES`].
struct RecordLimit<R> {
    inner: R,
    quoted: bool,
    since_break: usize,
    /// Set once the limit is passed: every later read fails.
    over: bool,
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.over {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a record is longer than {MAX_RECORD_BYTES} bytes"),
            ));
        }
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.since_break = 0,
                _ => {}
            }
            self.since_break += 1;
            if self.since_break > MAX_RECORD_BYTES {
                // The records before this one are passed on; the next read fails
                // (an empty read would mean the end of the input).
                self.over = true;
                if i > 0 {
                    return Ok(i);
                }
                return self.read(buf);
            }
        }
        Ok(n)
    }
}

/// The entities of a CSV input; a mapping that does not fit the header is refused
/// before any row is read.
pub fn records(input: impl Read + Send + 'static, mapping: &Mapping) -> Result<Records, Fatal> {
    let header_fault = |message: String| Fatal {
        at: Position::Line(1),
        message,
    };
    let delimiter = mapping.delimiter().map_err(header_fault)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(RecordLimit {
            inner: input,
            quoted: false,
            since_break: 0,
            over: false,
        });
    let header = reader
        .headers()
        .map_err(|e| header_fault(format!("cannot read the header: {e}")))?
        .clone();
    let columns = mapping.columns(&header).map_err(header_fault)?;
    let mut row = csv::StringRecord::new();
    let mut done = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(false) => {
                done = true;
                None
            }
            Ok(true) => Some(Ok(Record {
                at: Position::Line(row.position().map_or(line, |p| p.line())),
                entity: columns.entity(&row),
            })),
            Err(e) => {
                let at = Position::Line(e.position().map_or(line, |p| p.line()));
                match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => Some(Ok(Record {
                        at,
                        entity: Err("the row is not valid UTF-8".into()),
                    })),
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => Some(Ok(Record {
                        at,
                        entity: Err(format!(
                            "the row has {len} fields, the header {expected_len}"
                        )),
                    })),
                    _ => {
                        done = true;
                        Some(Err(Fatal {
                            at,
                            message: format!("cannot read the CSV: {e}"),
                        }))
                    }
                }
            }
        }
    })))
}

/// The one policy against formula injection (CWE-1236) of CSV made for spreadsheets:
/// a cell a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return) gets a leading `'`, so that it shows as text and never
/// runs. Numbers (`-3.5`, `+1e3`) are left as they are.
pub fn guard_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    if risky {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// A cell of an exported attribute: strings as they are, numbers and booleans as
/// JSON writes them, a DateTime its value, anything else as JSON text.
pub fn export_cell(value: &Value) -> String {
    let mut cell = String::new();
    export_cell_into(value, &mut cell);
    cell
}

/// Writes the cell [`export_cell`] makes into `out`, reusing its allocation (a writer
/// of many rows keeps one buffer for all its cells).
pub fn export_cell_into(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        Value::Object(o) if o.get("@type").and_then(Value::as_str) == Some("DateTime") => {
            out.push_str(o.get("@value").and_then(Value::as_str).unwrap_or_default());
        }
        // JSON's own text of the value (formatting into a String does not fail).
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Each row's line and entity (or reason).
    type Rows = Vec<(u64, Result<Value, String>)>;

    fn rows(mapping: &Mapping, input: &str) -> Result<Rows, String> {
        let recs =
            records(std::io::Cursor::new(input.to_string()), mapping).map_err(|f| f.to_string())?;
        recs.map(|r| {
            r.map(|r| {
                let Position::Line(l) = r.at else {
                    panic!("a CSV row has a line")
                };
                (l, r.entity)
            })
            .map_err(|f| f.to_string())
        })
        .collect()
    }

    /// Ids from the column `id`, every entity of type `T`.
    fn ids_of_type_t() -> Mapping {
        Mapping {
            id: Some("id".into()),
            entity_type: Some("T".into()),
            ..Mapping::default()
        }
    }

    fn lights() -> Mapping {
        Mapping {
            id: Some("code".into()),
            id_prefix: Some("urn:ngsi-ld:Streetlight:".into()),
            entity_type: Some("Streetlight".into()),
            lat: Some("lat".into()),
            lon: Some("lon".into()),
            observed_at: Some("at".into()),
            attributes: vec![
                AttributeColumn::parse_flag("w=power:number:WTT").unwrap(),
                AttributeColumn::parse_flag("on:boolean").unwrap(),
                AttributeColumn::parse_flag("street").unwrap(),
            ],
            ..Mapping::default()
        }
    }

    #[test]
    fn a_row_becomes_an_entity() {
        let input = "code,lat,lon,w,on,street,at\n\
                     dh-1,16.81,107.1,150,true,\"Lê Duẩn, Đông Hà\",2026-11-27T08:00:00+07:00\n\
                     dh-2,,,,,,\n";
        let got = rows(&lights(), input).unwrap();
        assert_eq!(got.len(), 2);
        let t = "2026-11-27T01:00:00Z";
        assert_eq!(
            got[0],
            (
                2,
                Ok(
                    json!({"id": "urn:ngsi-ld:Streetlight:dh-1", "type": "Streetlight",
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [107.1, 16.81]}, "observedAt": t},
                    "power": {"type": "Property", "value": 150, "unitCode": "WTT", "observedAt": t},
                    "on": {"type": "Property", "value": true, "observedAt": t},
                    "street": {"type": "Property", "value": "Lê Duẩn, Đông Hà", "observedAt": t}})
                )
            )
        );
        assert_eq!(
            got[1],
            (
                3,
                Ok(json!({"id": "urn:ngsi-ld:Streetlight:dh-2", "type": "Streetlight"}))
            )
        );
    }

    #[test]
    fn bad_cells_are_refused_with_a_reason() {
        let header = "code,lat,lon,w,on,street,at\n";
        let cases = [
            (",1,1,,,,", "the id cell is empty"),
            ("a,91,1,,,,", "latitude 91 is out of range [-90, 90]"),
            ("a,1,-181,,,,", "longitude -181 is out of range [-180, 180]"),
            ("a,1,,,,,", "both its latitude and its longitude"),
            ("a,x,1,,,,", "latitude \"x\" is not a number"),
            ("a,,,12kW,,,", "column \"w\": \"12kW\" is not a number"),
            ("a,,,NaN,,,", "is not a finite number"),
            ("a,,,,maybe,,", "is not a boolean"),
            ("a,,,,,,yesterday", "observedAt \"yesterday\" is not a date"),
            ("a,1,1", "the row has 3 fields, the header 7"),
        ];
        for (row, want) in cases {
            let got = rows(&lights(), &format!("{header}{row}\n")).unwrap();
            let reason = got[0].1.clone().unwrap_err();
            assert!(reason.contains(want), "{row}: {reason}");
            assert_eq!(got[0].0, 2);
        }
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_no_part_of_it() {
        let m = ids_of_type_t();
        let got = rows(&m, "\u{feff}id,name\nurn:x:1,a\n").unwrap();
        assert_eq!(got[0].1.as_ref().unwrap()["id"], "urn:x:1");
    }

    #[test]
    fn a_reason_shows_a_long_cell_cut_short() {
        let input = format!("code,lat,lon,w,on,street,at\na,,,{}x,,,\n", "9".repeat(400));
        let got = rows(&lights(), &input).unwrap();
        let reason = got[0].1.clone().unwrap_err();
        assert!(reason.starts_with("column \"w\": \"999"), "{reason}");
        assert!(reason.ends_with("\"… is not a number"), "{reason}");
        assert!(reason.len() < 120, "{reason}");
    }

    #[test]
    fn a_mapping_that_does_not_fit_the_header_is_refused() {
        let mut m = lights();
        m.attributes
            .push(AttributeColumn::parse_flag("colour").unwrap());
        let err = rows(&m, "code,lat,lon,w,on,street,at\n").unwrap_err();
        assert!(
            err.contains("attribute column \"colour\" is not in the header"),
            "{err}"
        );
        let m = Mapping {
            id: Some("id".into()),
            ..Mapping::default()
        };
        assert!(rows(&m, "id\n").unwrap_err().contains("no type"));
        let m = ids_of_type_t();
        let err = rows(&m, "id,type\n").unwrap_err();
        assert!(err.contains("\"type\" cannot name an attribute"), "{err}");
    }

    #[test]
    fn without_attributes_every_other_column_is_text() {
        let m = Mapping {
            id: Some("id".into()),
            type_column: Some("kind".into()),
            ..Mapping::default()
        };
        let got = rows(&m, "id,kind,name\nurn:x:1,School,Trường A\n").unwrap();
        assert_eq!(
            got[0].1,
            Ok(
                json!({"id": "urn:x:1", "type": "School", "name": {"type": "Property", "value": "Trường A"}})
            )
        );
    }

    #[test]
    fn an_overlong_record_stops_reading() {
        let m = ids_of_type_t();
        let big = "z".repeat(MAX_RECORD_BYTES + 1);
        let err = rows(&m, &format!("id,name\nurn:a,b\nurn:b,\"{big}\"\n")).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn formulas_are_guarded_and_numbers_are_not() {
        for (cell, shown) in [
            ("=1+2", "'=1+2"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("-3.5", "-3.5"),
            ("+1e3", "+1e3"),
            ("Đông Hà", "Đông Hà"),
            ("", ""),
        ] {
            assert_eq!(guard_formula(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn flags_of_attribute_columns() {
        assert_eq!(
            AttributeColumn::parse_flag("t=temperature:number:CEL").unwrap(),
            AttributeColumn {
                column: "t".into(),
                name: Some("temperature".into()),
                kind: ValueKind::Number,
                unit_code: Some("CEL".into()),
            }
        );
        assert!(
            AttributeColumn::parse_flag("t:float")
                .unwrap_err()
                .contains("unknown type")
        );
        assert!(AttributeColumn::parse_flag(":text").is_err());
    }
}
