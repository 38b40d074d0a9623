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
    /// Passes on what is buffered (a streamed download sends it as one chunk).
    fn flush(&mut self) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
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
        })
    }

    /// Writes `value` as a cell.
    fn value_cell(&mut self, value: &Value) -> io::Result<()> {
        self.cell.clear();
        export_cell_into(value, &mut self.cell);
        self.out.cell(&self.cell)
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
                match point {
                    Some((lat, lon)) => {
                        // Coordinates as JSON writes them, whatever their kind.
                        self.cell.clear();
                        let _ = write!(self.cell, "{lat}");
                        self.out.cell(&self.cell)?;
                        self.cell.clear();
                        let _ = write!(self.cell, "{lon}");
                        self.out.cell(&self.cell)?;
                    }
                    None => {
                        self.out.cell("")?;
                        self.out.cell("")?;
                    }
                }
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

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
