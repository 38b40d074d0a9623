//! A small sample of Quảng Trị, loaded by `dothi demo`: enough to try every kind of
//! query. Marked as demo data in each entity (`dataProvider`).

use hub::{Hub, Scope};
use ngsi::Context;
use ngsi::entity::Reader;

const SAMPLE: &str = include_str!("../sample/quang-tri-sample.json");

/// Upserts the sample entities; returns how many.
pub async fn load(hub: &Hub) -> anyhow::Result<usize> {
    let items: Vec<serde_json::Value> = serde_json::from_str(SAMPLE)?;
    let ctx = Context::core();
    let reader = Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let entities = items
        .iter()
        .map(|v| reader.entity(v, None).map_err(|e| (String::new(), e)))
        .collect::<Vec<_>>();
    let n = entities.len();
    let scope = Scope {
        tenant: String::new(),
        ctx,
    };
    let results = hub.batch_upsert(&scope, entities, true).await?;
    for (id, r) in results {
        if let Err(e) = r {
            anyhow::bail!("sample entity {id}: {e}");
        }
    }
    Ok(n)
}
