//! `dothi export`: writes the entities a query selects to a file or standard output,
//! page by page (memory stays bounded whatever the number of entities).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use hub::http::params::QuerySpec;
use ngsi::render::{self, RenderOptions};
use ngsi::{AttrKind, Entity};
use serde_json::Value;

use crate::formats::Format;
use crate::formats::csv::export_cell;
use crate::local::HubArgs;

/// Entities read from the hub at a time.
const PAGE: usize = 1000;

#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    /// Where to write; `-` or none: standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The format; by default from the output's extension, else a JSON array.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub hub: HubArgs,
    /// Entity types (an NGSI-LD type expression, e.g. `Streetlight` or `A,B`).
    #[arg(long = "type")]
    pub entity_type: Option<String>,
    /// An NGSI-LD `q` filter, e.g. `power>100;status=="ok"`.
    #[arg(long)]
    pub q: Option<String>,
    /// The attributes to write, comma-separated (CSV: the columns; required there).
    #[arg(long, value_delimiter = ',')]
    pub attrs: Vec<String>,
    /// NGSI-LD JSON in the concise representation (default: normalized).
    #[arg(long)]
    pub concise: bool,
}

/// Writes one entity after another in a format.
trait Sink {
    fn entity(&mut self, e: &Entity) -> anyhow::Result<()>;
    fn finish(&mut self) -> anyhow::Result<()>;
}

struct Options {
    ctx: std::sync::Arc<ngsi::Context>,
    keep: Option<HashSet<String>>,
    format: render::Format,
}

impl Options {
    fn render(&self) -> RenderOptions<'_> {
        RenderOptions {
            format: self.format,
            keep_attrs: self.keep.clone(),
            ..RenderOptions::new(&self.ctx)
        }
    }
}

struct JsonSink<W> {
    out: W,
    opts: Options,
    /// A JSON array (else JSON Lines).
    array: bool,
    written: u64,
}

impl<W: Write> Sink for JsonSink<W> {
    fn entity(&mut self, e: &Entity) -> anyhow::Result<()> {
        let v = Value::Object(render::render_entity(e, &self.opts.render()));
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

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.array {
            self.out
                .write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()?;
        Ok(())
    }
}

struct GeoJsonSink<W> {
    out: W,
    opts: Options,
    location: String,
    written: u64,
}

impl<W: Write> Sink for GeoJsonSink<W> {
    fn entity(&mut self, e: &Entity) -> anyhow::Result<()> {
        let mut opts = self.opts.render();
        // The geometry is the feature's, not a property.
        opts.omit_attrs.insert(self.location.clone());
        let feature = render::render_feature(e, &opts, &self.location);
        self.out.write_all(if self.written == 0 {
            b"{\"type\": \"FeatureCollection\", \"features\": [\n"
        } else {
            b",\n"
        })?;
        serde_json::to_writer(&mut self.out, &feature)?;
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.write_all(if self.written == 0 {
            b"{\"type\": \"FeatureCollection\", \"features\": []}\n"
        } else {
            b"\n]}\n"
        })?;
        self.out.flush()?;
        Ok(())
    }
}

struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    ctx: std::sync::Arc<ngsi::Context>,
    /// Expanded names of the attribute columns; `location` gives two (lat, lon).
    columns: Vec<String>,
    location: String,
}

impl<W: Write> Sink for CsvSink<W> {
    fn entity(&mut self, e: &Entity) -> anyhow::Result<()> {
        let types = render::render_types(&e.types, &self.ctx);
        let mut row = vec![e.id.clone(), export_cell(&types)];
        for name in &self.columns {
            // The default instance (without datasetId), else the first.
            let attr = e.attrs.get(name).and_then(|v| {
                v.iter()
                    .find(|a| a.dataset_id.is_none())
                    .or_else(|| v.first())
            });
            if *name == self.location {
                let point = attr
                    .filter(|a| a.kind == AttrKind::GeoProperty)
                    .and_then(|a| a.value.get("coordinates"))
                    .filter(|_| attr.is_some_and(|a| a.value["type"] == "Point"));
                match point.and_then(|c| Some((c.get(1)?, c.get(0)?))) {
                    Some((lat, lon)) => row.extend([lat.to_string(), lon.to_string()]),
                    None => row.extend([String::new(), String::new()]),
                }
                continue;
            }
            row.push(match attr {
                None => String::new(),
                Some(a)
                    if a.kind == AttrKind::Relationship || a.kind == AttrKind::VocabProperty =>
                {
                    match &a.value {
                        Value::String(iri) if a.kind == AttrKind::VocabProperty => {
                            self.ctx.compact(iri)
                        }
                        v => export_cell(v),
                    }
                }
                Some(a) => export_cell(&a.value),
            });
        }
        self.out.write_record(&row)?;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let to_stdout = args.output.as_ref().is_none_or(|p| p.as_os_str() == "-");
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(p)) if !to_stdout => Format::of_path(p).unwrap_or(Format::Json),
        _ => Format::Json,
    };
    if format == Format::Csv && args.attrs.is_empty() {
        bail!("CSV needs its columns: --attrs name,name...");
    }
    if args.concise && !matches!(format, Format::Json | Format::Jsonl) {
        bail!("--concise is for NGSI-LD JSON");
    }
    let (state, scope) = crate::local::open(&args.hub).await?;
    let spec = QuerySpec {
        types: args.entity_type.clone(),
        q: args.q.clone(),
        ..QuerySpec::default()
    };
    // Checked before the output is created.
    spec.build(&scope.ctx, PAGE, 0, false)
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let attrs: Vec<String> = args
        .attrs
        .iter()
        .map(|a| ngsi::entity::expand_attr(a, &scope.ctx))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--attrs: {}", e.detail))?;
    // An unknown tenant is refused before the output is created.
    state
        .hub
        .require_tenant(&scope)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let path = args.output.as_ref().context("no output")?;
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    let out = BufWriter::with_capacity(256 * 1024, out);
    let opts = Options {
        ctx: scope.ctx.clone(),
        keep: (!attrs.is_empty()).then(|| attrs.iter().cloned().collect()),
        format: if args.concise {
            render::Format::Concise
        } else {
            render::Format::Normalized
        },
    };
    let location = scope.ctx.expand("location");
    let mut sink: Box<dyn Sink> = match format {
        Format::Json | Format::Jsonl => Box::new(JsonSink {
            out,
            opts,
            array: format == Format::Json,
            written: 0,
        }),
        Format::Geojson => Box::new(GeoJsonSink {
            out,
            opts: Options {
                format: render::Format::KeyValues,
                ..opts
            },
            location,
            written: 0,
        }),
        Format::Csv => {
            let mut out = csv::Writer::from_writer(out);
            let mut header = vec!["id".to_string(), "type".to_string()];
            for (name, iri) in args.attrs.iter().zip(&attrs) {
                if *iri == location {
                    header.extend(["lat".to_string(), "lon".to_string()]);
                } else {
                    header.push(name.clone());
                }
            }
            out.write_record(&header)?;
            Box::new(CsvSink {
                out,
                ctx: scope.ctx.clone(),
                columns: attrs,
                location,
            })
        }
    };
    let mut offset = 0;
    let mut written = 0u64;
    loop {
        let query = spec
            .build(&scope.ctx, PAGE, offset, false)
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        let page = state
            .hub
            .query(&scope, query)
            .await
            .map_err(|e| anyhow::anyhow!("querying the hub: {}", e.detail))?;
        for e in &page.entities {
            sink.entity(e).context("writing the export")?;
        }
        written += page.entities.len() as u64;
        if page.entities.len() < PAGE {
            break;
        }
        offset += PAGE;
    }
    sink.finish().context("writing the export")?;
    eprintln!("dothi export: {written} entities");
    Ok(ExitCode::SUCCESS)
}
