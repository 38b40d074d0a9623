//! `dothi import`: loads entities from a file into the hub, in batches.
//!
//! A reader thread turns the file into records and entities (streaming, bounded);
//! this task upserts them batch by batch through [`hub::Hub::import_batch`], each
//! batch one store transaction. An entity already stored with the same content is
//! left as it is, so a rerun after an interruption writes only what is missing and
//! adds no history. Every record is counted once: read = created + updated +
//! unchanged + rejected.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use hub::Imported;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ngsi::Entity;
use ngsi::entity::Reader;
use serde_json::{Value, json};

use crate::local::HubArgs;
use formats::csv::{AttributeColumn, Mapping};
use formats::geojson::FeatureMapping;
use formats::{self, Fatal, Format, Position, Records};

/// Exit status when some records were rejected (the others are imported).
pub const EXIT_REJECTED: u8 = 2;

/// Most entities in one batch (as in a batch request of the HTTP API).
const MAX_BATCH: usize = 10_000;

#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    /// The file to import; `-` reads standard input (then give --format).
    pub file: PathBuf,
    /// The file's format; by default from its extension (.json: an array, or JSON
    /// Lines when it starts with `{`; .jsonl, .ndjson, .geojson, .csv).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub hub: HubArgs,
    /// Entities per batch; each batch is committed whole, in one transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Also write each rejected record to this file (JSON Lines: where, id, reason).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// CSV: a mapping file (JSON; see docs/import-export.md). Flags below override it.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// CSV: the column of the entity id.
    #[arg(long)]
    pub id_column: Option<String>,
    /// CSV and GeoJSON: text put before every id, e.g. urn:ngsi-ld:Streetlight:
    #[arg(long)]
    pub id_prefix: Option<String>,
    /// CSV and GeoJSON: the type of every entity.
    #[arg(long = "type")]
    pub entity_type: Option<String>,
    /// CSV: the column of each entity's type.
    #[arg(long)]
    pub type_column: Option<String>,
    /// CSV: the latitude column (with --lon-column: the `location` Point).
    #[arg(long)]
    pub lat_column: Option<String>,
    /// CSV: the longitude column.
    #[arg(long)]
    pub lon_column: Option<String>,
    /// CSV: the column of the observation time (ISO 8601) of every attribute.
    #[arg(long)]
    pub observed_at_column: Option<String>,
    /// CSV: a column that becomes an attribute, `COLUMN[=NAME][:TYPE[:UNITCODE]]` with
    /// TYPE number, text (default), boolean or datetime; repeat it. Without any, every
    /// column not otherwise mapped becomes a text attribute of its name.
    #[arg(long = "attr")]
    pub attrs: Vec<String>,
    /// CSV: the field delimiter.
    #[arg(long)]
    pub delimiter: Option<char>,
    /// GeoJSON: the property of the entity id (default: the feature's id).
    #[arg(long)]
    pub id_property: Option<String>,
    /// GeoJSON: the property of the entity type (when --type is not given); it does
    /// not become an attribute.
    #[arg(long, default_value = "type")]
    pub type_property: String,
}

/// How to read the file, checked before anything is opened.
enum Reading {
    Json,
    Jsonl,
    Geojson(FeatureMapping),
    Csv(Mapping),
}

impl ImportArgs {
    fn reading(&self) -> anyhow::Result<Reading> {
        let format = match self.format {
            Some(f) => f,
            None if self.file.as_os_str() == "-" => {
                bail!("reading standard input needs --format")
            }
            None => Format::of_path(&self.file).with_context(|| {
                format!(
                    "cannot tell the format of {} from its name: give --format",
                    self.file.display()
                )
            })?,
        };
        let csv_flags = self.mapping.is_some()
            || self.id_column.is_some()
            || self.type_column.is_some()
            || self.lat_column.is_some()
            || self.lon_column.is_some()
            || self.observed_at_column.is_some()
            || !self.attrs.is_empty()
            || self.delimiter.is_some();
        if csv_flags && format != Format::Csv {
            bail!("column mappings (--mapping, --id-column, --attr...) are for CSV only");
        }
        if self.id_property.is_some() && format != Format::Geojson {
            bail!("--id-property is for GeoJSON only");
        }
        if matches!(format, Format::Json | Format::Jsonl)
            && (self.entity_type.is_some() || self.id_prefix.is_some())
        {
            bail!(
                "--type and --id-prefix are for CSV and GeoJSON (NGSI-LD entities name their own)"
            );
        }
        Ok(match format {
            Format::Json => Reading::Json,
            Format::Jsonl => Reading::Jsonl,
            Format::Geojson => Reading::Geojson(FeatureMapping {
                id_property: self.id_property.clone(),
                id_prefix: self.id_prefix.clone(),
                entity_type: self.entity_type.clone(),
                type_property: self.type_property.clone(),
            }),
            Format::Csv => Reading::Csv(self.csv_mapping()?),
        })
    }

    /// The mapping file, if any, with the flags over it.
    fn csv_mapping(&self) -> anyhow::Result<Mapping> {
        let mut m = match &self.mapping {
            Some(path) => {
                let file = File::open(path)
                    .with_context(|| format!("opening the mapping {}", path.display()))?;
                // A mapping is small; refuse a large file rather than read it.
                let mut text = String::new();
                file.take(1024 * 1024 + 1)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading the mapping {}", path.display()))?;
                if text.len() > 1024 * 1024 {
                    bail!("the mapping {} is larger than 1 MiB", path.display());
                }
                serde_json::from_str::<Mapping>(&text)
                    .with_context(|| format!("the mapping {} is not valid", path.display()))?
            }
            None => Mapping::default(),
        };
        let set = |field: &mut Option<String>, flag: &Option<String>| {
            if flag.is_some() {
                field.clone_from(flag);
            }
        };
        set(&mut m.id, &self.id_column);
        set(&mut m.id_prefix, &self.id_prefix);
        if self.entity_type.is_some() {
            m.entity_type.clone_from(&self.entity_type);
            m.type_column = None;
        }
        if self.type_column.is_some() {
            m.type_column.clone_from(&self.type_column);
            m.entity_type = None;
        }
        set(&mut m.lat, &self.lat_column);
        set(&mut m.lon, &self.lon_column);
        set(&mut m.observed_at, &self.observed_at_column);
        if self.delimiter.is_some() {
            m.delimiter = self.delimiter;
        }
        for a in &self.attrs {
            m.attributes
                .push(AttributeColumn::parse_flag(a).map_err(anyhow::Error::msg)?);
        }
        if m.id.is_none() {
            bail!("CSV needs the id column: --id-column or \"id\" in the mapping");
        }
        m.delimiter().map_err(anyhow::Error::msg)?;
        Ok(m)
    }
}

/// The counts of an import; read = created + updated + unchanged + rejected.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    read: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: u64,
}

/// A record read: an entity, or why it is refused (with its id when known).
enum Parsed {
    Entity(Position, Entity),
    Rejected(Position, Option<String>, String),
}

/// A record on its way to the hub.
enum Item {
    Parsed(Parsed),
    /// An entity with an @context of its own, resolved by the hub before parsing.
    WithContext(Position, Value),
}

/// What the reader thread sends.
enum Message {
    Batch(Vec<Item>),
    Fatal(Fatal),
}

/// Counts the bytes read, for the progress bar.
struct Counted<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where rejections are reported: standard error, and the rejects file if asked.
struct Rejections {
    file: Option<std::io::BufWriter<File>>,
    bar: ProgressBar,
}

impl Rejections {
    fn report(&mut self, at: Position, id: Option<&str>, reason: &str) -> anyhow::Result<()> {
        let id_text = id.map(|i| format!(" {i}:")).unwrap_or_default();
        self.bar
            .suspend(|| eprintln!("dothi import: rejected {at}:{id_text} {reason}"));
        if let Some(f) = &mut self.file {
            let (line, feature) = match at {
                Position::Line(l) => (l, None),
                Position::Feature { index, line } => (line, Some(index)),
            };
            let mut row = json!({"line": line, "id": id, "reason": reason});
            if let Some(i) = feature {
                row["feature"] = json!(i);
            }
            writeln!(f, "{row}").context("writing the rejects file")?;
        }
        Ok(())
    }
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let reading = args.reading()?;
    if !(1..=MAX_BATCH).contains(&args.batch_size) {
        bail!("--batch-size must be between 1 and {MAX_BATCH}");
    }
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f =
            File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let rejects_file = args
        .rejects
        .as_ref()
        .map(|p| {
            File::create(p)
                .map(std::io::BufWriter::new)
                .with_context(|| format!("creating {}", p.display()))
        })
        .transpose()?;
    let (state, scope) = crate::local::open(&args.hub).await?;
    let hub = state.hub.clone();

    let bytes = Arc::new(AtomicU64::new(0));
    let input = BufReader::with_capacity(
        256 * 1024,
        Counted {
            inner: input,
            bytes: bytes.clone(),
        },
    );
    let bar = progress_bar(size);
    let mut rejections = Rejections {
        file: rejects_file,
        bar: bar.clone(),
    };

    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2);
    let batch_size = args.batch_size;
    let reader = std::thread::Builder::new()
        .name("dothi-import-reader".into())
        .spawn(move || read_batches(input, reading, batch_size, &tx))
        .context("starting the reader thread")?;

    let mut counts = Counts::default();
    let mut fatal: Option<anyhow::Error> = None;
    while let Some(message) = rx.recv().await {
        let items = match message {
            Message::Batch(items) => items,
            Message::Fatal(f) => {
                fatal = Some(anyhow::anyhow!("stopped at {f}"));
                break;
            }
        };
        if let Err(e) = import_batch(&hub, &scope, items, &mut counts, &mut rejections).await {
            fatal = Some(e);
            break;
        }
        // What a batch rejected is on disk once the batch is.
        if let Some(f) = &mut rejections.file
            && let Err(e) = f.flush()
        {
            fatal = Some(anyhow::Error::new(e).context("writing the rejects file"));
            break;
        }
        bar.set_position(bytes.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} entities: {} created, {} updated, {} unchanged, {} rejected",
            counts.read, counts.created, counts.updated, counts.unchanged, counts.rejected
        ));
    }
    drop(rx);
    // After a fault the reader is left behind: it may be waiting on standard input.
    // Without one, the channel closed because the reader is done, or failed.
    if fatal.is_none() && reader.join().is_err() {
        fatal = Some(anyhow::anyhow!("the reader of the file failed"));
    }
    bar.finish_and_clear();
    if let Some(f) = &mut rejections.file {
        f.flush().context("writing the rejects file")?;
    }
    let elapsed = started.elapsed();
    print_summary(&counts, elapsed);
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(if counts.rejected > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    // Drawn on standard error, and only on a terminal.
    let target = ProgressDrawTarget::stderr_with_hz(4);
    match size {
        Some(len) => {
            let bar = ProgressBar::with_draw_target(Some(len), target);
            if let Ok(style) =
                ProgressStyle::with_template("{wide_bar} {bytes}/{total_bytes} ({eta})\n{msg}")
            {
                bar.set_style(style);
            }
            bar
        }
        None => ProgressBar::with_draw_target(None, target),
    }
}

fn print_summary(c: &Counts, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        c.read as f64 / secs
    } else {
        0.0
    };
    println!(
        "read {}, created {}, updated {}, unchanged {}, rejected {} in {:.2} s ({:.0} entities/s)",
        c.read, c.created, c.updated, c.unchanged, c.rejected, secs, rate
    );
}

/// The reader thread: records → parsed entities, sent in batches; a fault ends it.
fn read_batches(
    input: impl std::io::BufRead + Send + 'static,
    reading: Reading,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Message>,
) {
    let records: Records = match reading {
        Reading::Json => {
            let mut input = input;
            // `.json` holds an array, or JSON Lines when it starts with an object.
            match first_byte(&mut input) {
                Some(b'{') => formats::json::line_records(input),
                _ => formats::json::array_records(input),
            }
        }
        Reading::Jsonl => formats::json::line_records(input),
        Reading::Geojson(mapping) => formats::geojson::records(input, mapping),
        Reading::Csv(mapping) => match formats::csv::records(input, &mapping) {
            Ok(r) => r,
            Err(f) => {
                let _ = tx.blocking_send(Message::Fatal(f));
                return;
            }
        },
    };
    let ctx = ngsi::Context::core();
    let mut batch = Vec::with_capacity(batch_size);
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(f) => {
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Message::Batch(std::mem::take(&mut batch)));
                }
                let _ = tx.blocking_send(Message::Fatal(f));
                return;
            }
        };
        let item = match record.entity {
            Err(reason) => Item::Parsed(Parsed::Rejected(record.at, None, reason)),
            Ok(v) if has_own_context(&v) => Item::WithContext(record.at, v),
            Ok(v) => Item::Parsed(parse_entity(record.at, &v, &ctx)),
        };
        batch.push(item);
        if batch.len() >= batch_size
            && tx
                .blocking_send(Message::Batch(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(batch_size),
                )))
                .is_err()
        {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Message::Batch(batch));
    }
}

fn first_byte(input: &mut impl std::io::BufRead) -> Option<u8> {
    loop {
        let buf = input.fill_buf().ok()?;
        let first = buf.first().copied()?;
        if first.is_ascii_whitespace() {
            input.consume(1);
            continue;
        }
        return Some(first);
    }
}

fn has_own_context(v: &Value) -> bool {
    v.get("@context").is_some_and(
        |c| !matches!(c, Value::String(url) if ngsi::context::is_core_context_url(url)),
    )
}

fn parse_entity(at: Position, v: &Value, ctx: &ngsi::Context) -> Parsed {
    let reader = Reader {
        ctx,
        now: ngsi::entity::now(),
    };
    match reader.entity(v, None) {
        Ok(e) => Parsed::Entity(at, e),
        Err(e) => Parsed::Rejected(at, formats::entity_id(v).map(str::to_string), e.detail),
    }
}

/// Writes one batch and counts its outcome; an error stops the import.
async fn import_batch(
    hub: &hub::Hub,
    scope: &hub::Scope,
    items: Vec<Item>,
    counts: &mut Counts,
    rejections: &mut Rejections,
) -> anyhow::Result<()> {
    let mut entities = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for item in items {
        let parsed = match item {
            Item::Parsed(p) => p,
            Item::WithContext(at, v) => match hub.contexts.resolve(&v["@context"]).await {
                Ok(ctx) => parse_entity(at, &v, &ctx),
                Err(e) => Parsed::Rejected(
                    at,
                    formats::entity_id(&v).map(str::to_string),
                    format!("its @context: {}", e.detail),
                ),
            },
        };
        match parsed {
            Parsed::Entity(at, e) => {
                positions.push(at);
                entities.push(e);
            }
            Parsed::Rejected(at, id, reason) => {
                counts.read += 1;
                counts.rejected += 1;
                rejections.report(at, id.as_deref(), &reason)?;
            }
        }
    }
    let Some(&first) = positions.first() else {
        return Ok(());
    };
    let n = entities.len();
    // A fault of the store rolls the whole batch back: none of it is counted.
    let results = hub.import_batch(scope, entities).await.map_err(|e| {
        anyhow::anyhow!(
            "the batch of {n} entities from {first} was not imported: {}",
            e.detail
        )
    })?;
    if let Some((id, Err(e))) = results.iter().find(|(_, r)| {
        r.as_ref().is_err_and(|e| {
            matches!(
                e.kind,
                ngsi::ErrorKind::InternalError | ngsi::ErrorKind::ServiceUnavailable
            )
        })
    }) {
        bail!(
            "the batch of {n} entities from {first} was not imported: {id}: {}",
            e.detail
        );
    }
    for ((id, result), at) in results.into_iter().zip(positions) {
        counts.read += 1;
        match result {
            Ok(Imported::Created) => counts.created += 1,
            Ok(Imported::Updated) => counts.updated += 1,
            Ok(Imported::Unchanged) => counts.unchanged += 1,
            Err(e) => {
                counts.rejected += 1;
                rejections.report(at, Some(&id), &e.detail)?;
            }
        }
    }
    Ok(())
}
