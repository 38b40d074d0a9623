//! `dothi export`: writes the entities a query selects to a file or standard output,
//! page by page (memory stays bounded whatever the number of entities).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use formats::Format;
use formats::write::{CsvStyle, CsvWriter, EntityWriter, GeoJsonWriter, JsonWriter, Rendering};
use hub::http::params::QuerySpec;
use ngsi::render;

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
    let opts = Rendering {
        ctx: scope.ctx.clone(),
        keep: (!attrs.is_empty()).then(|| attrs.iter().cloned().collect()),
        format: if args.concise {
            render::Format::Concise
        } else {
            render::Format::Normalized
        },
    };
    let location = scope.ctx.expand("location");
    let mut sink: Box<dyn EntityWriter> = match format {
        Format::Json | Format::Jsonl => {
            Box::new(JsonWriter::new(out, opts, format == Format::Json))
        }
        Format::Geojson => Box::new(GeoJsonWriter::new(out, opts, location)),
        // As it was read: no byte-order mark, cells as they are (an export is made to
        // be imported again).
        Format::Csv => Box::new(CsvWriter::new(
            out,
            CsvStyle::default(),
            scope.ctx.clone(),
            &args.attrs,
            attrs,
            location,
        )?),
    };
    let mut after = None;
    let mut written = 0u64;
    loop {
        let mut query = spec
            .build(&scope.ctx, PAGE, 0, false)
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        query.after = after;
        let page = state
            .hub
            .query(&scope, query)
            .await
            .map_err(|e| anyhow::anyhow!("querying the hub: {}", e.detail))?;
        for e in &page.entities {
            sink.entity(e).context("writing the export")?;
        }
        written += page.entities.len() as u64;
        after = page.next(PAGE);
        if after.is_none() {
            break;
        }
    }
    sink.finish().context("writing the export")?;
    eprintln!("dothi export: {written} entities");
    Ok(ExitCode::SUCCESS)
}
