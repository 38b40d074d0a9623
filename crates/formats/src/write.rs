//! Writing entities one after another: a JSON array or JSON Lines of NGSI-LD entities,
//! a GeoJSON FeatureCollection, or CSV with one column per attribute. A writer keeps
//! nothing of the entities it has written, so any number of them can be streamed.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;

use ngsi::render::{self, RenderOptions};
use ngsi::{AttrKind, Context, Entity};
use serde_json::Value;

use crate::csv::{export_cell_into, guard_formula};

/// Writes one entity after another in a format, then closes what the format opens.
pub trait EntityWriter {
    fn entity(&mut self, e: &Entity) -> io::Result<()>;
    /// Writes entities one after another, preparing once what their rendering shares.
    fn entities(&mut self, es: &[Entity]) -> io::Result<()> {
        es.iter().try_for_each(|e| self.entity(e))
    }
    /// Writes entities given in their stored form (`store::Documents`, the serde form
    /// of [`Entity`]): by default each is read into the model and written as above;
    /// a writer that needs little of each reads only that.
    fn documents(&mut self, docs: &mut dyn Iterator<Item = &str>) -> io::Result<()> {
        let es = docs
            .map(|doc| serde_json::from_str::<Entity>(doc).map_err(corrupt))
            .collect::<io::Result<Vec<_>>>()?;
        self.entities(&es)
    }
    /// Passes on what is buffered (a streamed download sends it as one chunk).
    fn flush(&mut self) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

/// A stored document that does not read as an entity.
fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a corrupt stored entity: {e}"),
    )
}

/// How entities are rendered: the @context to compact with, the attributes kept (all
/// when `None`), the representation.
#[derive(Clone)]
pub struct Rendering {
    pub ctx: Arc<Context>,
    pub keep: Option<HashSet<String>>,
    pub format: render::Format,
}

impl Rendering {
    fn options(&self) -> RenderOptions<'_> {
        RenderOptions {
            format: self.format,
            keep_attrs: self.keep.clone(),
            ..RenderOptions::new(&self.ctx)
        }
    }
}

/// NGSI-LD entities as a JSON array, or as JSON Lines.
pub struct JsonWriter<W> {
    out: W,
    rendering: Rendering,
    array: bool,
    written: u64,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W, rendering: Rendering, array: bool) -> Self {
        JsonWriter {
            out,
            rendering,
            array,
            written: 0,
        }
    }
}

impl<W: Write> JsonWriter<W> {
    fn write(&mut self, e: &Entity, opts: &RenderOptions) -> io::Result<()> {
        let v = Value::Object(render::render_entity(e, opts));
        if self.array {
            self.out
                .write_all(if self.written == 0 { b"[\n" } else { b",\n" })?;
        }
        serde_json::to_writer(&mut self.out, &v)?;
        if !self.array {
            self.out.write_all(b"\n")?;
        }
        self.written += 1;
        Ok(())
    }
}

impl<W: Write> EntityWriter for JsonWriter<W> {
    fn entity(&mut self, e: &Entity) -> io::Result<()> {
        self.entities(std::slice::from_ref(e))
    }

    fn entities(&mut self, es: &[Entity]) -> io::Result<()> {
        let rendering = self.rendering.clone();
        let opts = rendering.options();
        es.iter().try_for_each(|e| self.write(e, &opts))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.array {
            self.out
                .write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

/// A GeoJSON FeatureCollection: each entity a feature whose geometry is the
/// `location` given (an expanded name) and whose properties are the other attributes
/// as key-values.
pub struct GeoJsonWriter<W> {
    out: W,
    rendering: Rendering,
    location: String,
    written: u64,
}

impl<W: Write> GeoJsonWriter<W> {
    pub fn new(out: W, rendering: Rendering, location: String) -> Self {
        GeoJsonWriter {
            out,
            rendering: Rendering {
                format: render::Format::KeyValues,
                ..rendering
            },
            location,
            written: 0,
        }
    }
}

impl<W: Write> GeoJsonWriter<W> {
    fn write(&mut self, e: &Entity, opts: &RenderOptions) -> io::Result<()> {
        let feature = render::render_feature(e, opts, &self.location);
        self.out.write_all(if self.written == 0 {
            b"{\"type\": \"FeatureCollection\", \"features\": [\n"
        } else {
            b",\n"
        })?;
        serde_json::to_writer(&mut self.out, &feature)?;
        self.written += 1;
        Ok(())
    }
}

impl<W: Write> EntityWriter for GeoJsonWriter<W> {
    fn entity(&mut self, e: &Entity) -> io::Result<()> {
        self.entities(std::slice::from_ref(e))
    }

    fn entities(&mut self, es: &[Entity]) -> io::Result<()> {
        let rendering = self.rendering.clone();
        let mut opts = rendering.options();
        // The geometry is the feature's, not a property.
        opts.omit_attrs.insert(self.location.clone());
        es.iter().try_for_each(|e| self.write(e, &opts))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(if self.written == 0 {
            b"{\"type\": \"FeatureCollection\", \"features\": []}\n"
        } else {
            b"\n]}\n"
        })?;
        self.out.flush()
    }
}

/// How a CSV file is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsvStyle {
    /// Starts with a UTF-8 byte-order mark, so that spreadsheets read the diacritics.
    pub bom: bool,
    /// Every cell passes [`guard_formula`] (files made for people to open; an export
    /// made to be imported again keeps its cells as they are).
    pub guard_formulas: bool,
    /// Records end with CRLF (RFC 4180), else with LF.
    pub crlf: bool,
}

impl CsvStyle {
    /// CSV for spreadsheets: byte-order mark, formulas guarded.
    pub const SPREADSHEET: CsvStyle = CsvStyle {
        bom: true,
        guard_formulas: true,
        crlf: true,
    };
}

/// Writes CSV records in a [`CsvStyle`]: the one CSV writer of dothi.
pub struct CsvRecords<W: Write> {
    out: ::csv::Writer<W>,
    style: CsvStyle,
}

impl<W: Write> CsvRecords<W> {
    pub fn new(mut out: W, style: CsvStyle) -> io::Result<Self> {
        if style.bom {
            out.write_all("\u{feff}".as_bytes())?;
        }
        Ok(CsvRecords {
            out: ::csv::WriterBuilder::new()
                .terminator(if style.crlf {
                    ::csv::Terminator::CRLF
                } else {
                    ::csv::Terminator::Any(b'\n')
                })
                .from_writer(out),
            style,
        })
    }

    /// Writes one record.
    pub fn record<S: AsRef<str>>(&mut self, cells: &[S]) -> io::Result<()> {
        if self.style.guard_formulas {
            self.out
                .write_record(cells.iter().map(|c| match guard_formula(c.as_ref()) {
                    Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                    Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                }))?;
        } else {
            self.out.write_record(cells.iter().map(AsRef::as_ref))?;
        }
        Ok(())
    }

    /// Writes one cell of the record being written, which [`CsvRecords::end`] ends:
    /// a row written cell by cell is never built.
    pub fn cell(&mut self, cell: &str) -> io::Result<()> {
        if self.style.guard_formulas {
            self.out.write_field(guard_formula(cell).as_bytes())?;
        } else {
            self.out.write_field(cell)?;
        }
        Ok(())
    }

    /// Ends the record whose cells [`CsvRecords::cell`] wrote.
    pub fn end(&mut self) -> io::Result<()> {
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Entities as CSV: `id`, `type`, then one column per attribute (the `location`
/// attribute as two, `lat` and `lon`, when it is a point). Rows are written cell by
/// cell through one reused buffer, so a row allocates nothing of its own.
pub struct CsvWriter<W: Write> {
    out: CsvRecords<W>,
    ctx: Arc<Context>,
    /// Expanded names of the attribute columns.
    columns: Vec<String>,
    location: String,
    /// The text of the cell being written.
    cell: String,
    /// The last types written and their cell: entities of one type follow each other.
    types: (Vec<String>, String),
    /// The same for documents: the last types as stored, and their cell.
    stored_types: (String, String),
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header: `names` are the columns as they are shown, `columns` their
    /// expanded names, `location` the expanded name of the attribute written as
    /// `lat` and `lon`.
    pub fn new(
        out: W,
        style: CsvStyle,
        ctx: Arc<Context>,
        names: &[String],
        columns: Vec<String>,
        location: String,
    ) -> io::Result<Self> {
        let mut out = CsvRecords::new(out, style)?;
        let mut header = vec!["id".to_string(), "type".to_string()];
        for (name, iri) in names.iter().zip(&columns) {
            if *iri == location {
                header.extend(["lat".to_string(), "lon".to_string()]);
            } else {
                header.push(name.clone());
            }
        }
        out.record(&header)?;
        Ok(CsvWriter {
            out,
            ctx,
            columns,
            location,
            cell: String::new(),
            types: (Vec::new(), String::new()),
            stored_types: (String::new(), String::new()),
        })
    }

    /// Writes `value` as a cell.
    fn value_cell(&mut self, value: &Value) -> io::Result<()> {
        self.cell.clear();
        export_cell_into(value, &mut self.cell);
        self.out.cell(&self.cell)
    }

    /// Writes a point's latitude and longitude as two cells (empty when there is none).
    fn point_cells(&mut self, point: Option<(&Value, &Value)>) -> io::Result<()> {
        match point {
            Some((lat, lon)) => {
                // Coordinates as JSON writes them, whatever their kind.
                self.cell.clear();
                let _ = write!(self.cell, "{lat}");
                self.out.cell(&self.cell)?;
                self.cell.clear();
                let _ = write!(self.cell, "{lon}");
                self.out.cell(&self.cell)
            }
            None => {
                self.out.cell("")?;
                self.out.cell("")
            }
        }
    }

    /// Writes a stored value (its JSON text) as JSON writes it: a number as it reads
    /// (`1.50` as `1.5`), built only when it is not a number.
    fn json_cell(&mut self, text: &str) -> io::Result<()> {
        if written_as_read(text) {
            return self.out.cell(text);
        }
        self.cell.clear();
        if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
            let n: serde_json::Number = text.parse().map_err(corrupt)?;
            let _ = write!(self.cell, "{n}");
        } else {
            let v: Value = serde_json::from_str(text).map_err(corrupt)?;
            let _ = write!(self.cell, "{v}");
        }
        self.out.cell(&self.cell)
    }

    /// Writes one stored entity as a row, reading of it only its id, its types and
    /// the instance shown of each column's attribute, as text borrowed from the
    /// document: no attribute is built. The row is the one [`EntityWriter::entity`]
    /// writes of the same entity.
    fn document(&mut self, doc: &str) -> io::Result<()> {
        let lean = ngsi::stored::read_lean(doc, &self.columns).map_err(corrupt)?;
        self.out.cell(&lean.id)?;
        if self.stored_types.0 != lean.types {
            let types: Vec<String> = serde_json::from_str(lean.types).map_err(corrupt)?;
            let types = render::render_types(&types, &self.ctx);
            self.stored_types.1.clear();
            export_cell_into(&types, &mut self.stored_types.1);
            self.stored_types.0.clear();
            self.stored_types.0.push_str(lean.types);
        }
        self.out.cell(&self.stored_types.1)?;
        for (i, attr) in lean.attrs.iter().enumerate() {
            if self.columns[i] == self.location {
                let point = attr
                    .filter(|a| a.kind == AttrKind::GeoProperty)
                    .and_then(|a| ngsi::stored::point_coordinates(a.value));
                match point {
                    Some((lon, lat)) => {
                        self.json_cell(lat)?;
                        self.json_cell(lon)?;
                    }
                    None => self.point_cells(None)?,
                }
                continue;
            }
            let Some(a) = attr else {
                self.out.cell("")?;
                continue;
            };
            self.stored_value_cell(a.kind, a.value)?;
        }
        self.out.end()
    }

    /// Writes a stored value (its JSON text) as the cell [`CsvWriter::value_cell`]
    /// writes of it built: strings, numbers and the three words are written from
    /// the text; objects and arrays, rare in a table, are built.
    fn stored_value_cell(&mut self, kind: AttrKind, text: &str) -> io::Result<()> {
        match text.as_bytes().first() {
            Some(b'"') => {
                let s = ngsi::stored::string_text(text).map_err(corrupt)?;
                if kind == AttrKind::VocabProperty {
                    let short = self.ctx.compact(&s);
                    self.out.cell(&short)
                } else {
                    self.out.cell(&s)
                }
            }
            Some(b'-' | b'0'..=b'9') => self.json_cell(text),
            _ if text == "null" => self.out.cell(""),
            _ if text == "true" || text == "false" => self.out.cell(text),
            _ => {
                let v: Value = serde_json::from_str(text).map_err(corrupt)?;
                self.value_cell(&v)
            }
        }
    }
}

/// Whether JSON writes the number `text` reads as `text` itself, so that it need not
/// be read: an integer of up to 18 digits, or a decimal of up to 15 significant digits
/// (which a float holds exactly enough that its shortest form gives them back), not
/// below 0.001 (smaller ones are written with an exponent), whose fraction does not end
/// in a zero unless it is that zero alone (`1.0`).
fn written_as_read(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return false;
    }
    match fraction {
        // `-0` reads as a float, written `-0.0`.
        None => whole.len() <= 18 && text != "-0",
        Some(f) => {
            let significant = whole.trim_start_matches('0').len() + f.len();
            plain(f)
                && significant <= 15
                && (f == "0" || !f.ends_with('0'))
                && (whole != "0"
                    || f.starts_with(['1', '2', '3', '4', '5', '6', '7', '8', '9'])
                    || f.get(1..2).is_some_and(|d| d != "0"))
        }
    }
}

impl<W: Write> EntityWriter for CsvWriter<W> {
    fn entity(&mut self, e: &Entity) -> io::Result<()> {
        self.out.cell(&e.id)?;
        if self.types.0 != e.types {
            let types = render::render_types(&e.types, &self.ctx);
            self.types.1.clear();
            export_cell_into(&types, &mut self.types.1);
            self.types.0.clone_from(&e.types);
        }
        self.out.cell(&self.types.1)?;
        for i in 0..self.columns.len() {
            let name = &self.columns[i];
            // The default instance (without datasetId), else the first.
            let attr = e.attrs.get(name).and_then(|v| {
                v.iter()
                    .find(|a| a.dataset_id.is_none())
                    .or_else(|| v.first())
            });
            if *name == self.location {
                let point = attr
                    .filter(|a| a.kind == AttrKind::GeoProperty && a.value["type"] == "Point")
                    .and_then(|a| a.value.get("coordinates"))
                    .and_then(|c| Some((c.get(1)?, c.get(0)?)));
                self.point_cells(point)?;
                continue;
            }
            match attr {
                None => self.out.cell("")?,
                Some(a) => match &a.value {
                    Value::String(iri) if a.kind == AttrKind::VocabProperty => {
                        let short = self.ctx.compact(iri);
                        self.out.cell(&short)?;
                    }
                    v => self.value_cell(v)?,
                },
            }
        }
        self.out.end()
    }

    fn documents(&mut self, docs: &mut dyn Iterator<Item = &str>) -> io::Result<()> {
        for doc in docs {
            self.document(doc)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EX: &str = "https://example.org/";

    /// Stored entities with what a table has to take care of: several instances,
    /// vocabulary, points and other geometries, strings with escapes, formulas,
    /// objects, absent attributes, and a private attribute.
    fn stored() -> Vec<Entity> {
        let t = r#""c": "2026-01-01T00:00:00Z", "m": "2026-01-02T00:00:00Z""#;
        let loc = Context::core().expand("location");
        [
            format!(
                r#"{{"id": "urn:ngsi-ld:S:\"1\",x", "t": ["{EX}S", "{EX}T"], "a": {{
                "{EX}p": [{{"k": "Property", "v": 1.5, "d": "urn:d", {t}}}, {{"k": "Property", "v": "=cmd()", {t}}}],
                "{EX}q": [{{"k": "VocabProperty", "v": "{EX}v\u00e9", {t}}}],
                "{EX}r": [{{"k": "Relationship", "v": "urn:x", "d": "urn:a", {t}}}, {{"k": "Relationship", "v": "urn:y", "d": "urn:b", {t}}}],
                "{loc}": [{{"k": "GeoProperty", "v": {{"type": "Point", "coordinates": [106.7, -16.75, 3]}}, {t}}}],
                "{EX}j": [{{"k": "JsonProperty", "v": {{"z": 1, "a": [true, null]}}, {t}}}],
                "{EX}w": [{{"k": "Property", "v": {{"@type": "DateTime", "@value": "2026-01-01T00:00:00Z"}}, {t}}}],
                "{EX}secret": [{{"k": "Property", "v": "never shown", {t}}}]}}, {t}}}"#
            ),
            format!(
                r#"{{"id": "urn:ngsi-ld:S:2", "t": ["{EX}S", "{EX}T"], "a": {{
                "{EX}p": [{{"k": "Property", "v": "a\"b\nc\t\\", {t}}}],
                "{loc}": [{{"k": "GeoProperty", "v": {{"type": "Polygon", "coordinates": [[[1, 2], [3, 4], [5, 6], [1, 2]]]}}, {t}}}]}}, {t}}}"#
            ),
            format!(
                r#"{{"id": "urn:ngsi-ld:U:3", "t": ["{EX}U"], "a": {{
                "{EX}p": [{{"k": "Property", "v": -3, "sub": {{"{EX}x": [{{"k": "Property", "v": 1, {t}}}]}}, {t}}}],
                "{EX}q": [{{"k": "Property", "v": false, {t}}}],
                "{EX}j": [{{"k": "ListProperty", "v": [1, "two", 3.25e-7], {t}}}],
                "{loc}": [{{"k": "Property", "v": {{"type": "Point", "coordinates": [1, 2]}}, {t}}}]}}, {t}}}"#
            ),
            format!(
                r#"{{"id": "urn:ngsi-ld:U:4", "t": ["{EX}U"], "a": {{
                "{EX}p": [{{"k": "Property", "v": 12345678901234567890, {t}}}],
                "{EX}w": [{{"k": "Property", "v": "+1 @ \u0041", {t}}}],
                "{loc}": [{{"k": "GeoProperty", "v": {{"coordinates": ["a", "b"], "type": "Poi\u006et"}}, {t}}}]}}, {t}}}"#
            ),
        ]
        .iter()
        .map(|doc| serde_json::from_str(doc).unwrap())
        .collect()
    }

    fn csv(write: impl FnOnce(&mut CsvWriter<&mut Vec<u8>>)) -> String {
        let names: Vec<String> = ["p", "q", "r", "location", "j", "w", "absent"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let ctx = Context::core();
        let columns = names
            .iter()
            .map(|n| {
                if n == "location" {
                    ctx.expand(n)
                } else {
                    format!("{EX}{n}")
                }
            })
            .collect();
        let mut out = Vec::new();
        let mut w = CsvWriter::new(
            &mut out,
            CsvStyle::SPREADSHEET,
            ctx.clone(),
            &names,
            columns,
            ctx.expand("location"),
        )
        .unwrap();
        write(&mut w);
        w.finish().unwrap();
        drop(w);
        String::from_utf8(out).unwrap()
    }

    /// A row read from the stored document is the row written of the built entity,
    /// whatever the spacing of the document (PostgreSQL gives its own).
    #[test]
    fn csv_of_documents_is_csv_of_entities() {
        let es = stored();
        let of_entities = csv(|w| w.entities(&es).unwrap());
        assert!(of_entities.contains("'=cmd()"), "{of_entities}");
        assert!(of_entities.contains("-16.75,106.7"), "{of_entities}");
        assert!(!of_entities.contains("never shown"));
        for pretty in [false, true] {
            let docs: Vec<String> = es
                .iter()
                .map(|e| {
                    if pretty {
                        serde_json::to_string_pretty(e).unwrap()
                    } else {
                        serde_json::to_string(e).unwrap()
                    }
                })
                .collect();
            let of_docs = csv(|w| {
                w.documents(&mut docs.iter().map(String::as_str)).unwrap();
            });
            assert_eq!(of_docs, of_entities);
        }
    }

    #[test]
    fn a_corrupt_document_is_an_error_not_a_row() {
        for bad in [r#"{"id": "x"}"#, "[1]", "{"] {
            let mut err = None;
            let written = csv(|w| err = w.documents(&mut std::iter::once(bad)).err());
            assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData, "{bad}");
            assert_eq!(written.lines().count(), 1, "{bad}: the header alone");
        }
    }

    #[test]
    fn a_number_is_copied_only_when_json_writes_it_as_it_is() {
        for text in ["21.5", "-16.75", "106.7", "0.05", "1.0", "0", "-12", "150"] {
            assert!(written_as_read(text), "{text}");
        }
        for text in [
            "1.50", "1e5", "-0", "0.0001", "01", "1.", ".5", "-", "1.2.3",
        ] {
            assert!(!written_as_read(text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_number_copied_is_the_number_json_writes(text in "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,17})?") {
            if written_as_read(&text) {
                let n: serde_json::Number = text.parse().unwrap();
                proptest::prop_assert_eq!(n.to_string(), text);
            }
        }
    }

    /// The other writers read documents into the model: the same output.
    #[test]
    fn json_and_geojson_of_documents_are_those_of_entities() {
        let es = stored();
        let docs: Vec<String> = es
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let rendering = Rendering {
            ctx: Context::core(),
            keep: None,
            format: render::Format::Normalized,
        };
        let location = Context::core().expand("location");
        let run = |of_docs: bool, geo: bool| {
            let mut out = Vec::new();
            let mut w: Box<dyn EntityWriter> = if geo {
                Box::new(GeoJsonWriter::new(
                    &mut out,
                    rendering.clone(),
                    location.clone(),
                ))
            } else {
                Box::new(JsonWriter::new(&mut out, rendering.clone(), true))
            };
            if of_docs {
                w.documents(&mut docs.iter().map(String::as_str)).unwrap();
            } else {
                w.entities(&es).unwrap();
            }
            w.finish().unwrap();
            drop(w);
            String::from_utf8(out).unwrap()
        };
        for geo in [false, true] {
            assert_eq!(run(true, geo), run(false, geo));
        }
    }
}
