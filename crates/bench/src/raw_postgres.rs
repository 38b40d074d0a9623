//! Figure 1's baseline on PostgreSQL: the rows the hub writes for each entity — its
//! document, its index rows and its history rows — written by plain SQL into a fresh
//! database with the store's schema, with binary COPY, one transaction per batch.

use std::pin::{Pin, pin};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// One entity's rows, built before the clock starts.
pub struct RawRows {
    pub id: String,
    pub doc: String,
    pub modified_at: DateTime<Utc>,
    pub types: Vec<String>,
    /// Per attribute: the kind of each instance, the (num, txt) values q compares with.
    pub attrs: Vec<store::sqlite::BaselineAttr>,
    /// (attribute name, GeoJSON) of each geometry.
    pub geometries: Vec<(String, String)>,
    /// (name, datasetId, (t, written, num, txt, unit, doc)) of each history row.
    pub history: Vec<store::sqlite::BaselineInstance>,
}

impl RawRows {
    pub fn of(e: &ngsi::Entity, doc: &str) -> RawRows {
        let rows = store::sqlite::baseline_rows(e);
        let geometries = e
            .attrs
            .iter()
            .flat_map(|(name, instances)| {
                instances.iter().filter_map(move |i| {
                    i.geometry()
                        .map(|g| (name.clone(), g.to_geojson().to_string()))
                })
            })
            .collect();
        RawRows {
            id: e.id.clone(),
            doc: doc.to_string(),
            modified_at: e.modified_at,
            types: rows.types,
            attrs: rows.attrs,
            geometries,
            history: rows.history,
        }
    }
}

/// A JSON text sent as jsonb in binary form (a version byte, then the text), as
/// the hub sends its documents as text: no parsing on the client's side.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The binary COPY writer one table's rows are written with.
type Writer<'w> = Pin<&'w mut BinaryCopyInWriter>;

/// The entities of one transaction, whose rows are copied table by table.
struct Copy<'a> {
    tx: &'a Transaction<'a>,
    chunk: &'a [RawRows],
    /// The rowid of the chunk's first entity.
    first: i64,
}

impl Copy<'_> {
    /// Runs `statement` (a `COPY … FROM STDIN BINARY` of columns of `types`), in which
    /// `rows` writes each entity's rows given its rowid.
    async fn rows(
        &self,
        statement: &str,
        types: &[Type],
        rows: impl AsyncFn(Writer<'_>, i64, &RawRows) -> Result<(), tokio_postgres::Error>,
    ) -> Result<u64, tokio_postgres::Error> {
        let sink = self.tx.copy_in(statement).await?;
        let mut w = pin!(BinaryCopyInWriter::new(sink, types));
        for (rowid, e) in (self.first..).zip(self.chunk) {
            rows(w.as_mut(), rowid, e).await?;
        }
        w.finish().await
    }
}

/// Writes `entities` into the empty store database at `url`, `per` to a
/// transaction; returns the time taken and the entities it then counts.
pub async fn same_rows(
    url: &str,
    entities: &[RawRows],
    per: usize,
) -> anyhow::Result<(Duration, u64)> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let connection = tokio::spawn(connection);
    let start = Instant::now();
    let mut rowid = 0i64;
    for chunk in entities.chunks(per.max(1)) {
        let tx = client.transaction().await?;
        let first = rowid + 1;
        let copy = Copy {
            tx: &tx,
            chunk,
            first,
        };
        copy.rows(
            "COPY entities (rowid, tenant, id, doc, modified_at) FROM STDIN BINARY",
            &[
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::JSONB,
                Type::TIMESTAMPTZ,
            ],
            async |mut w: Writer<'_>, r: i64, e: &RawRows| {
                w.as_mut()
                    .write(&[&r, &"", &e.id, &JsonText(&e.doc), &e.modified_at])
                    .await
            },
        )
        .await?;
        copy.rows(
            "COPY entity_types (tenant, type, entity) FROM STDIN BINARY",
            &[Type::TEXT, Type::TEXT, Type::INT8],
            async |mut w: Writer<'_>, r: i64, e: &RawRows| {
                for t in &e.types {
                    w.as_mut().write(&[&"", t, &r]).await?;
                }
                Ok(())
            },
        )
        .await?;
        copy.rows(
            "COPY attr_index (entity, name, seq, kind) FROM STDIN BINARY",
            &[Type::INT8, Type::TEXT, Type::INT4, Type::TEXT],
            async |mut w: Writer<'_>, r: i64, e: &RawRows| {
                for a in &e.attrs {
                    for (seq, kind) in a.kinds.iter().enumerate() {
                        w.as_mut()
                            .write(&[&r, &a.name, &(seq as i32), kind])
                            .await?;
                    }
                }
                Ok(())
            },
        )
        .await?;
        copy.rows(
            "COPY attr_values (entity, name, k, num, txt) FROM STDIN BINARY",
            &[Type::INT8, Type::TEXT, Type::INT4, Type::FLOAT8, Type::TEXT],
            async |mut w: Writer<'_>, r: i64, e: &RawRows| {
                for a in &e.attrs {
                    for (k, (num, txt)) in a.values.iter().enumerate() {
                        w.as_mut()
                            .write(&[&r, &a.name, &(k as i32), num, txt])
                            .await?;
                    }
                }
                Ok(())
            },
        )
        .await?;
        // Geometry has no binary form the client can make: the GeoJSON goes in as
        // text, turned into geometry by PostGIS, as the hub's statement does.
        let (mut g_entity, mut g_name, mut g_json) = (Vec::new(), Vec::new(), Vec::new());
        for (r, e) in (first..).zip(chunk) {
            for (name, json) in &e.geometries {
                g_entity.push(r);
                g_name.push(name.as_str());
                g_json.push(json.as_str());
            }
        }
        tx.execute(
            "INSERT INTO geo_attr (entity, name, geom)
             SELECT entity, name, ST_SetSRID(ST_GeomFromGeoJSON(g), 4326)
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(entity, name, g)",
            &[&g_entity, &g_name, &g_json],
        )
        .await?;
        copy.rows(
            "COPY attr_history (entity, name, dataset, t, written, num, txt, unit, doc) FROM STDIN BINARY",
            &[
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::FLOAT8,
                Type::TEXT,
                Type::TEXT,
                Type::JSONB,
            ],
            async |mut w: Writer<'_>, r: i64, e: &RawRows| {
                for (name, dataset, (t, written, num, txt, unit, doc)) in &e.history {
                    let doc = doc.as_deref().map(JsonText);
                    w.as_mut()
                        .write(&[
                            &r,
                            name,
                            dataset,
                            &time(*t),
                            &time(*written),
                            num,
                            txt,
                            unit,
                            &doc,
                        ])
                        .await?;
                }
                Ok(())
            },
        )
        .await?;
        tx.commit().await?;
        rowid += chunk.len() as i64;
    }
    let took = start.elapsed();
    let counted: i64 = client
        .query_one("SELECT count(*) FROM entities", &[])
        .await?
        .get(0);
    drop(client);
    connection.abort();
    Ok((took, counted.max(0) as u64))
}
