//! The distributions of a dataset, streamed: the view's entities are read from the
//! hub a page at a time, the next page read while one is written, so memory stays
//! flat however many entities there are.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use chrono::{DateTime, TimeDelta, Utc};
use formats::csv::export_cell;
use formats::write::{
    CsvRecords, CsvStyle, CsvWriter, EntityWriter, GeoJsonWriter, JsonWriter, Rendering,
};
use hub::http::params::QuerySpec;
use hub::temporal::{MAX_INSTANCES, TemporalAnswer, TemporalRequest};
use hub::{Hub, Scope};
use ngsi::temporal::TemporalParams;
use ngsi::{Context, Error, ErrorKind, render};
use store::EntityQuery;
use tokio::sync::mpsc;

use crate::model::View;

/// Entities read and written at a time.
const PAGE: usize = 1_000;
/// Entities read and written at a time as CSV, whose rows are small (about half a
/// megabyte for the benchmark's stations: the chunks sent are that large).
const CSV_PAGE: usize = 5_000;
/// Entities whose history is read at a time.
const HISTORY_PAGE: usize = 50;
/// The longest period of one history download.
pub const MAX_HISTORY_DAYS: i64 = 366;
/// Chunks in flight between the reader of the hub and the client.
const IN_FLIGHT: usize = 4;

/// A distribution's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Csv,
    GeoJson,
    NgsiLd,
}

impl Kind {
    /// How many entities a page of the download reads.
    fn page(self) -> usize {
        match self {
            Kind::Csv => CSV_PAGE,
            Kind::GeoJson | Kind::NgsiLd => PAGE,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Csv => "text/csv; charset=utf-8",
            Kind::GeoJson => "application/geo+json",
            Kind::NgsiLd => "application/json",
        }
    }
}

/// A `Write` into a buffer shared with the task that sends its chunks.
#[derive(Clone, Default)]
struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a view reads: the query (without paging), the scope, the public attributes.
pub struct Selection {
    pub scope: Scope,
    spec: QuerySpec,
    /// Expanded names of the public attributes, in the view's order.
    pub attrs: Vec<String>,
}

impl Selection {
    /// The view as a query of the hub, read with the portal's rights but showing
    /// the public attributes only.
    pub fn of(view: &View) -> Result<Selection, Error> {
        let scope = Scope::system("opendata", view.tenant.clone());
        let spec = QuerySpec {
            types: Some(view.types.join(",")),
            q: view.q.clone(),
            ..QuerySpec::default()
        };
        spec.build(&scope.ctx, PAGE, 0, false)?;
        let attrs = view
            .attrs
            .iter()
            .map(|a| ngsi::entity::expand_attr(a, &scope.ctx))
            .collect::<Result<_, _>>()?;
        Ok(Selection { scope, spec, attrs })
    }

    pub fn query(&self, limit: usize, offset: usize, count: bool) -> Result<EntityQuery, Error> {
        self.spec.build(&self.scope.ctx, limit, offset, count)
    }

    /// A page of the view read on after a position of the last page (keyset paging:
    /// each page costs the same however deep the download is).
    /// Only the public attributes are read: the store leaves the others unparsed.
    pub fn page_after(&self, limit: usize, after: Option<i64>) -> Result<EntityQuery, Error> {
        let mut query = self.query(limit, 0, false)?;
        query.after = after;
        query.only_attrs = Some(self.attrs.clone());
        Ok(query)
    }

    /// [`Selection::page_after`] answered with the entities' stored documents. Cut,
    /// each holds the public attributes alone, for a writer that reads the whole
    /// document. Uncut, the documents are whole (the store copies them without
    /// reading them), for the CSV writer, which reads of each document the public
    /// columns alone: the document is scanned once, not once to cut and again to write.
    pub fn documents_after(
        &self,
        limit: usize,
        after: Option<i64>,
        cut: bool,
    ) -> Result<EntityQuery, Error> {
        let mut query = self.page_after(limit, after)?;
        query.as_documents = true;
        if !cut {
            query.only_attrs = None;
        }
        Ok(query)
    }

    fn rendering(&self) -> Rendering {
        Rendering {
            ctx: self.scope.ctx.clone(),
            keep: Some(self.attrs.iter().cloned().collect::<HashSet<_>>()),
            format: render::Format::Normalized,
        }
    }

    /// How many entities the view holds.
    pub async fn count(&self, hub: &Hub) -> Result<u64, Error> {
        let page = hub.query(&self.scope, self.query(0, 0, true)?).await?;
        Ok(page.count.unwrap_or(0))
    }
}

/// The body of a distribution: entities written as they are read.
pub fn entities(hub: Arc<Hub>, view: &View, kind: Kind) -> Result<Body, Error> {
    let sel = Selection::of(view)?;
    let chunks = Chunks::default();
    let location = Context::core().expand("location");
    let names: Vec<String> = view.attrs.clone();
    let mut writer: Box<dyn EntityWriter + Send> = match kind {
        Kind::Csv => Box::new(
            CsvWriter::new(
                chunks.clone(),
                CsvStyle::SPREADSHEET,
                sel.scope.ctx.clone(),
                &names,
                sel.attrs.clone(),
                location,
            )
            .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?,
        ),
        Kind::GeoJson => {
            // The geometry is shown only when `location` is public.
            let geometry = if sel.attrs.contains(&location) {
                location
            } else {
                String::new()
            };
            Box::new(GeoJsonWriter::new(
                chunks.clone(),
                sel.rendering(),
                geometry,
            ))
        }
        Kind::NgsiLd => Box::new(JsonWriter::new(chunks.clone(), sel.rendering(), true)),
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    let size = kind.page();
    let sel = Arc::new(sel);
    tokio::spawn(async move {
        let mut reading = Some(read_page(&hub, &sel, kind, None));
        while let Some(next) = reading.take() {
            let page = match next.await {
                Ok(read) => read,
                Err(e) => Err(Error::new(ErrorKind::InternalError, e.to_string())),
            };
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    // The answer has begun: the download is cut short, which the
                    // client sees as a broken transfer, not as a complete file.
                    tracing::warn!(error = %e.detail, "open data download stopped");
                    let _ = tx.send(Err(io::Error::other(e.detail))).await;
                    return;
                }
            };
            let after = page.next(size);
            // The next page is read while this one is written: the store's reader
            // and the writer each keep a core busy.
            reading = after.map(|after| read_page(&hub, &sel, kind, Some(after)));
            let written = writer.documents(&mut page.documents.iter()).and_then(|()| {
                if after.is_none() {
                    writer.finish()
                } else {
                    writer.flush()
                }
            });
            if let Err(e) = written {
                let _ = tx.send(Err(e)).await;
                return;
            }
            if tx.send(Ok(chunks.take())).await.is_err() {
                // The client has gone.
                return;
            }
        }
    });
    Ok(body(rx))
}

/// Reads the page of stored documents after `after`, on a task of its own.
fn read_page(
    hub: &Arc<Hub>,
    sel: &Arc<Selection>,
    kind: Kind,
    after: Option<i64>,
) -> tokio::task::JoinHandle<Result<store::QueryPage, Error>> {
    let (hub, sel, size) = (hub.clone(), sel.clone(), kind.page());
    tokio::spawn(async move {
        // The CSV writer reads the public columns alone (above).
        let query = sel.documents_after(size, after, kind != Kind::Csv)?;
        hub.query(&sel.scope, query).await
    })
}

/// A response body of the chunks a task sends.
fn body(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// A period of history, checked.
pub fn period(from: &str, to: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let parse = |name: &str, text: &str| {
        ngsi::entity::parse_time(text)
            .ok_or_else(|| Error::bad_data(format!("{name} is an ISO 8601 date and time")))
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    if to <= from {
        return Err(Error::bad_data("to comes after from"));
    }
    if to - from > TimeDelta::days(MAX_HISTORY_DAYS) {
        return Err(Error::bad_data(format!(
            "a period of at most {MAX_HISTORY_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// The body of a history download: CSV of time, entity, attribute, value, one row per
/// recorded value of a public attribute within the period, entity by entity.
pub fn history(
    hub: Arc<Hub>,
    view: &View,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Body, Error> {
    let sel = Selection::of(view)?;
    let chunks = Chunks::default();
    let mut csv = CsvRecords::new(chunks.clone(), CsvStyle::SPREADSHEET)
        .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
    csv.record(&["time", "entity", "attribute", "value"])
        .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    tokio::spawn(async move {
        let mut after = None;
        loop {
            // The entities' ids alone: their values come from the history.
            let page = match sel.page_after(HISTORY_PAGE, after) {
                Ok(q) => {
                    let q = EntityQuery {
                        only_attrs: Some(Vec::new()),
                        ..q
                    };
                    hub.query(&sel.scope, q).await
                }
                Err(e) => Err(e),
            };
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.detail))).await;
                    return;
                }
            };
            after = page.next(HISTORY_PAGE);
            for e in &page.entities {
                for attr in &sel.attrs {
                    if let Err(err) =
                        attribute_history(&hub, &sel, &e.id, attr, from, to, &mut csv).await
                    {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
            let done = after.is_none();
            if let Err(e) = csv.flush() {
                let _ = tx.send(Err(e)).await;
                return;
            }
            if tx.send(Ok(chunks.take())).await.is_err() || done {
                return;
            }
        }
    });
    Ok(body(rx))
}

/// Writes one attribute's history in the period, reading it in pages that continue
/// after the last time read.
async fn attribute_history(
    hub: &Hub,
    sel: &Selection,
    id: &str,
    attr: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    csv: &mut CsvRecords<Chunks>,
) -> io::Result<()> {
    let name = sel.scope.ctx.compact(attr);
    let mut start = from;
    loop {
        let (a, b) = (
            ngsi::entity::format_time(&start),
            ngsi::entity::format_time(&to),
        );
        let params = TemporalParams::parse(
            Some("between"),
            Some(&a),
            Some(&b),
            None,
            None,
            &[],
            None,
            None,
        )
        .map_err(|e| io::Error::other(e.detail))?;
        let req = TemporalRequest {
            params,
            attrs: vec![attr.to_string()],
            limit: MAX_INSTANCES,
        };
        let answer = hub
            .temporal_entity(&sel.scope, id, &req)
            .await
            .map_err(|e| io::Error::other(e.detail))?;
        let TemporalAnswer::Instances {
            entity, partial, ..
        } = answer
        else {
            return Ok(());
        };
        let instances = entity.attrs.get(attr).map(Vec::as_slice).unwrap_or(&[]);
        let mut last = None;
        for i in instances {
            let at = i.attribute.observed_at.unwrap_or(i.attribute.modified_at);
            let value = match i.attribute.kind {
                ngsi::AttrKind::VocabProperty => match &i.attribute.value {
                    serde_json::Value::String(iri) => sel.scope.ctx.compact(iri),
                    v => export_cell(v),
                },
                _ => export_cell(&i.attribute.value),
            };
            csv.record(&[
                ngsi::entity::format_time(&at),
                id.to_string(),
                name.clone(),
                value,
            ])?;
            last = Some(at);
        }
        match last {
            // A partial answer ends between two times: the next starts past it.
            Some(t) if !partial.is_empty() && t < to => {
                start = t + TimeDelta::milliseconds(1);
            }
            _ => return Ok(()),
        }
    }
}
