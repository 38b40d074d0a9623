//! The file formats of dothi: NGSI-LD JSON (an array, or JSON Lines), GeoJSON
//! FeatureCollections and CSV (read with a column mapping). `dothi import` reads them,
//! `dothi export` and the open data downloads write them.
//!
//! Reading turns a file into *records*, one per entity it holds, each with where it
//! is in the file and either the entity as NGSI-LD JSON or why it cannot be one. A
//! record never needs the whole file in memory: each reader streams, and every record
//! is bounded in size. A fault of the file's structure that leaves no way to find the
//! next record (a broken JSON array, a CSV record over the limit) is a [`Fatal`].
//!
//! Writing ([`write`]) takes one entity at a time and keeps nothing of it: a writer's
//! memory does not grow with the number of entities. CSV cells go through one policy
//! against formula injection ([`csv::guard_formula`]), wherever CSV is made for people
//! to open in a spreadsheet.
//!
//! **Invariant:** no I/O but the reader or writer it is given; no panic on any input.

pub mod csv;
pub mod geojson;
pub mod json;
pub mod write;

use std::fmt;
use std::path::Path;

use clap::ValueEnum;
use serde_json::Value;

/// The largest record (a JSON element or line, a GeoJSON feature, a CSV record).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A JSON array of NGSI-LD entities (normalized or concise).
    Json,
    /// JSON Lines: one NGSI-LD entity per line.
    Jsonl,
    /// A GeoJSON FeatureCollection.
    Geojson,
    /// CSV with a header row and a column mapping.
    Csv,
}

impl Format {
    /// The format a file name implies; `.json` is an array or JSON Lines, told apart
    /// by the file's first character.
    pub fn of_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" | "jsonld" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "geojson" => Some(Format::Geojson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Where a record is in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// A line (JSON Lines), or the line where a record starts (JSON array, CSV).
    Line(u64),
    /// A GeoJSON feature: its number (from 1) and the line where it starts.
    Feature { index: u64, line: u64 },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Feature { index, line } => write!(f, "feature {index} (line {line})"),
        }
    }
}

/// One entity of a file, or why it cannot be one.
#[derive(Debug)]
pub struct Record {
    pub at: Position,
    /// The entity as NGSI-LD JSON (normalized or concise), or the reason it is refused.
    pub entity: Result<Value, String>,
}

/// A fault that stops reading: nothing after it can be found.
#[derive(Debug)]
pub struct Fatal {
    pub at: Position,
    pub message: String,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for Fatal {}

/// A stream of records.
pub type Records = Box<dyn Iterator<Item = Result<Record, Fatal>> + Send>;

/// The `id` of a JSON entity, when it has one that is a string (for reports).
pub fn entity_id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}
