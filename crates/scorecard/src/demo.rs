//! What `dothi demo` adds for the scorecard, in the default tenant: the plan, the
//! synthetic dossier sample (marked as such), the computed KPIs, and a demo history of
//! the last four quarter ends for each computed KPI the hub has no past of (not those
//! read from the other services' reports, catalogue and history) so that its trend
//! shows. Every demo history instance carries `source: "demo"`; entered KPIs stay
//! empty until an agency enters them.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use hub::Scope;
use ngsi::{Context, Error};
use serde_json::{Map, json};

use crate::engine::{COMPONENT, Scorecard};
use crate::plan;

/// The synthetic dossier file shipped with the demo.
pub const SAMPLE_DOSSIERS: &str = include_str!("../data/dossiers-sample.csv");

/// What the demo loaded.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub created: usize,
    pub dossiers: u64,
    pub computed: usize,
    pub history: usize,
}

/// The last day of each of the four quarters before the one `now` is in, oldest first.
pub fn past_quarter_ends(now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let quarter_start = |y: i32, q: u32| NaiveDate::from_ymd_opt(y, q * 3 - 2, 1);
    let (mut y, mut q) = (now.year(), (now.month() - 1) / 3 + 1);
    let mut ends = Vec::new();
    for _ in 0..4 {
        if let Some(start) = quarter_start(y, q)
            && let Some(end) = start.pred_opt()
            && let Some(t) = end.and_hms_opt(23, 59, 59)
        {
            ends.push(Utc.from_utc_datetime(&t));
        }
        if q == 1 {
            y -= 1;
            q = 4;
        } else {
            q -= 1;
        }
    }
    ends.reverse();
    ends
}

/// A demo value `quarters` quarters before `now_value`: a few percent lower per
/// quarter (whole numbers for counts).
fn earlier(now_value: f64, quarters: usize, count: bool) -> f64 {
    let v = now_value * (1.0 - 0.04 * quarters as f64);
    if count {
        v.floor().max(0.0)
    } else {
        crate::sources::round(v.max(0.0), 1)
    }
}

/// Loads the scorecard's demo data.
pub async fn load(s: &Scorecard) -> Result<DemoReport, Error> {
    let mut report = DemoReport {
        created: s.seed("").await?,
        ..Default::default()
    };
    let scope = Scope::system(COMPONENT, "");
    let imported = crate::egov::import(s.hub(), &scope, SAMPLE_DOSSIERS.as_bytes()).await?;
    report.dossiers = imported["dossiers"].as_u64().unwrap_or(0);
    let computed = s.recompute("").await?;
    report.computed = computed.iter().filter(|r| r.value.is_some()).count();
    let ctx = Context::core();
    let reader = ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    };
    let ends = past_quarter_ends(Utc::now());
    // KPIs read from the other services have a past of their own (reports, the
    // stations' history): no made-up trend for them.
    let measured: Vec<String> = crate::services::service_sources()
        .iter()
        .map(|s| s.kpi().to_string())
        .collect();
    for r in computed {
        let Some(now_value) = r.value else { continue };
        if measured.contains(&r.kpi) {
            continue;
        }
        let id = plan::kpi_id(&r.kpi);
        // Demo history only where the past quarters have none yet (a restarted demo
        // adds nothing). Values recomputed meanwhile, by the recomputation that the
        // changes of the import set off, are observed now, after the quarters.
        let Some(last) = ends.last() else { continue };
        let params = ngsi::temporal::TemporalParams {
            timerel: Some(ngsi::temporal::TimeRel::Before(
                *last + chrono::TimeDelta::milliseconds(1),
            )),
            ..Default::default()
        };
        let history = s
            .hub()
            .temporal_entity(
                &scope,
                &id,
                &hub::temporal::TemporalRequest {
                    params,
                    attrs: vec![ctx.expand("kpiValue")],
                    limit: 1,
                },
            )
            .await;
        if let Ok(hub::temporal::TemporalAnswer::Instances { entity, .. }) = &history
            && entity.attrs.values().any(|instances| !instances.is_empty())
        {
            continue;
        }
        let count = plan::kpi(&r.kpi).is_some_and(|k| k.unit_code == Some("C62"));
        let mut instances = Vec::new();
        for (i, at) in ends.iter().enumerate() {
            let v = earlier(now_value, ends.len() - i, count);
            let mut body = Map::new();
            body.insert(
                "kpiValue".into(),
                json!({"type": "Property", "value": v, "observedAt": ngsi::entity::format_time(at),
                       "source": {"type": "Property", "value": "demo"}}),
            );
            for (name, attrs) in reader.attributes(&body)? {
                instances.extend(attrs.into_iter().map(|a| (name.clone(), a)));
            }
        }
        report.history += instances.len();
        s.hub()
            .add_history(&scope, &id, Vec::new(), instances, true)
            .await?;
    }
    Ok(report)
}

/// Whether the shipped sample says, on its first line, that it is synthetic.
pub fn sample_is_marked() -> bool {
    SAMPLE_DOSSIERS.starts_with("# SYNTHETIC SAMPLE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_past_four_quarters_end_where_quarters_end() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 3, 0, 0)
            .single()
            .expect("a time");
        let ends: Vec<String> = past_quarter_ends(now)
            .iter()
            .map(|t| t.date_naive().to_string())
            .collect();
        assert_eq!(
            ends,
            vec!["2025-12-31", "2026-03-31", "2026-06-30", "2026-09-30"]
        );
        assert!(sample_is_marked());
        assert_eq!(earlier(100.0, 2, false), 92.0);
        assert_eq!(earlier(6.0, 3, true), 5.0);
    }
}
