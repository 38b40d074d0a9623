//! Per-hour statistics of each attribute's numbers (`history_hourly`), kept exact in
//! the transaction of every history change: an instance written adds to its hour; an
//! instance edited, deleted or purged makes its hours be counted again from the
//! instances. Aggregations whose periods start and end on whole hours read these rows.

use rusqlite::{Connection, params};

pub const HOUR_MS: i64 = 3_600_000;

/// The start of the hour holding `t` (ms since 1970 UTC), for times before 1970 too.
pub fn hour_of(t: i64) -> i64 {
    t - t.rem_euclid(HOUR_MS)
}

/// The default instance's key in the table (a datasetId is a URI, never empty).
fn dataset_key(dataset: Option<&str>) -> &str {
    dataset.unwrap_or("")
}

/// Counts one new instance in its hour.
pub fn add(
    conn: &Connection,
    entity: i64,
    name: i64,
    dataset: Option<&str>,
    t: i64,
    num: Option<f64>,
) -> rusqlite::Result<()> {
    let (numbers, sum, sum_sq) = match num {
        Some(n) => (1, n, n * n),
        None => (0, 0.0, 0.0),
    };
    conn.prepare_cached(
        "INSERT INTO history_hourly (entity, name, hour, dataset, total, numbers, sum, sum_sq, min, max)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (entity, name, hour, dataset) DO UPDATE SET
            total = total + 1,
            numbers = numbers + excluded.numbers,
            sum = sum + excluded.sum,
            sum_sq = sum_sq + excluded.sum_sq,
            min = CASE WHEN excluded.min IS NULL THEN min
                       WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END,
            max = CASE WHEN excluded.max IS NULL THEN max
                       WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END",
    )?
    .execute(params![
        entity,
        name,
        hour_of(t),
        dataset_key(dataset),
        numbers,
        sum,
        sum_sq,
        num
    ])?;
    Ok(())
}

/// Counts one hour of one attribute again from its instances (after an edit or a
/// deletion, which a running total cannot undo for min and max).
pub fn recount(conn: &Connection, entity: i64, name: i64, hour: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM history_hourly WHERE entity = ?1 AND name = ?2 AND hour = ?3",
    )?
    .execute(params![entity, name, hour])?;
    conn.prepare_cached(
        "INSERT INTO history_hourly (entity, name, hour, dataset, total, numbers, sum, sum_sq, min, max)
         SELECT ?1, ?2, ?3, coalesce(dataset, ''), count(*), count(num),
                coalesce(sum(num), 0), coalesce(sum(num * num), 0), min(num), max(num)
         FROM attr_history WHERE entity = ?1 AND name = ?2 AND t >= ?3 AND t < ?3 + 3600000
         GROUP BY coalesce(dataset, '')",
    )?
    .execute(params![entity, name, hour])?;
    Ok(())
}

/// Forgets every hour of an entity (its history is deleted with it).
pub fn forget_entity(conn: &Connection, entity: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM history_hourly WHERE entity = ?1")?
        .execute([entity])?;
    Ok(())
}

/// Forgets an attribute's hours: all of them, or one datasetId's (`Some(None)` is the
/// default instance's).
pub fn forget_attribute(
    conn: &Connection,
    entity: i64,
    name: i64,
    dataset: Option<Option<&str>>,
) -> rusqlite::Result<()> {
    match dataset {
        None => conn
            .prepare_cached("DELETE FROM history_hourly WHERE entity = ?1 AND name = ?2")?
            .execute(params![entity, name])?,
        Some(d) => conn
            .prepare_cached(
                "DELETE FROM history_hourly WHERE entity = ?1 AND name = ?2 AND dataset = ?3",
            )?
            .execute(params![entity, name, dataset_key(d)])?,
    };
    Ok(())
}

/// After the instances before `cutoff` are purged: the hours wholly before it go, the
/// hour it falls in is counted again.
pub fn purged_before(
    conn: &Connection,
    entity: i64,
    name: i64,
    cutoff: i64,
) -> rusqlite::Result<()> {
    let partial = hour_of(cutoff);
    conn.prepare_cached(
        "DELETE FROM history_hourly WHERE entity = ?1 AND name = ?2 AND hour < ?3",
    )?
    .execute(params![entity, name, partial])?;
    if partial != cutoff {
        recount(conn, entity, name, partial)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_start_on_the_hour_before_and_after_1970() {
        for (t, hour) in [
            (0, 0),
            (1, 0),
            (HOUR_MS - 1, 0),
            (HOUR_MS, HOUR_MS),
            (-1, -HOUR_MS),
            (-HOUR_MS, -HOUR_MS),
            (1_700_000_123_456, 1_699_999_200_000),
        ] {
            assert_eq!(hour_of(t), hour, "hour of {t}");
        }
    }
}
