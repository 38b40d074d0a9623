//! How long history is kept: rules per tenant and per entity type, and the background
//! purge that enforces them.
//!
//! A rule is written `[tenant=NAME][/type=TYPE]:DURATION` (`P1Y`,
//! `type=AirQualityObserved:P90D`, `tenant=so-tnmt/type=WaterObserved:P10Y`); the
//! duration is ISO 8601. For each entity the most specific rule applies: tenant and
//! type, then type, then tenant, then a rule with neither. An entity with no rule keeps
//! its whole history.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, TimeDelta, Utc};
use ngsi::temporal::IsoDuration;
use ngsi::{Context, Error};
use store::RetentionCutoffs;

use crate::service::Hub;

/// Entities a purge step handles before the writer takes other work.
const ENTITIES_PER_STEP: usize = 500;

/// One retention rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionRule {
    pub tenant: Option<String>,
    /// Expanded type name.
    pub entity_type: Option<String>,
    pub keep: IsoDuration,
}

impl RetentionRule {
    /// Parses `[tenant=NAME][/type=TYPE]:DURATION`; type names are expanded with the
    /// core @context.
    pub fn parse(text: &str) -> Result<RetentionRule, Error> {
        let bad = |why: &str| Error::bad_data(format!("retention rule {text:?}: {why}"));
        if text.len() > 512 {
            return Err(bad("too long"));
        }
        let (selector, duration) = match text.rsplit_once(':') {
            Some((s, d)) if s.contains('=') => (s, d),
            _ => ("", text),
        };
        let keep = IsoDuration::parse(duration.trim())?;
        if keep.is_zero() {
            return Err(bad("the duration must be longer than zero"));
        }
        let mut rule = RetentionRule {
            tenant: None,
            entity_type: None,
            keep,
        };
        for part in selector.split('/').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("tenant", name)) if rule.tenant.is_none() => {
                    rule.tenant = Some(name.trim().to_string());
                }
                Some(("type", name)) if rule.entity_type.is_none() => {
                    let name = name.trim();
                    if !ngsi::entity::is_valid_name(name) && !ngsi::entity::is_uri(name) {
                        return Err(bad("the type is not a valid name"));
                    }
                    rule.entity_type = Some(Context::core().expand(name));
                }
                _ => return Err(bad("expected tenant=NAME and/or type=TYPE before ':'")),
            }
        }
        Ok(rule)
    }

    fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        now.checked_sub_months(Months::new(self.keep.months))?
            .checked_sub_signed(TimeDelta::milliseconds(
                i64::try_from(self.keep.millis).ok()?,
            ))
    }
}

/// Every retention rule, and how often the purge runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    pub rules: Vec<RetentionRule>,
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            rules: Vec::new(),
            interval: Duration::from_secs(600),
        }
    }
}

impl RetentionPolicy {
    /// The cutoffs for one tenant at `now`; None when no rule concerns it.
    pub fn cutoffs(&self, tenant: &str, now: DateTime<Utc>) -> Option<RetentionCutoffs> {
        let for_tenant = |r: &&RetentionRule| r.tenant.as_deref().is_none_or(|t| t == tenant);
        let applicable: Vec<&RetentionRule> = self.rules.iter().filter(for_tenant).collect();
        if applicable.is_empty() {
            return None;
        }
        // The most specific rule without a type is the default; per type, likewise.
        fn most_specific(rules: Vec<&RetentionRule>) -> Option<&RetentionRule> {
            rules
                .iter()
                .find(|r| r.tenant.is_some())
                .or_else(|| rules.first())
                .copied()
        }
        let default = most_specific(
            applicable
                .iter()
                .filter(|r| r.entity_type.is_none())
                .copied()
                .collect(),
        )
        .and_then(|r| r.cutoff(now));
        let mut types: Vec<&String> = applicable
            .iter()
            .filter_map(|r| r.entity_type.as_ref())
            .collect();
        types.sort();
        types.dedup();
        let by_type = types
            .into_iter()
            .filter_map(|t| {
                let rules = applicable
                    .iter()
                    .filter(|r| r.entity_type.as_ref() == Some(t))
                    .copied()
                    .collect();
                Some((t.clone(), most_specific(rules)?.cutoff(now)?))
            })
            .collect();
        Some(RetentionCutoffs { default, by_type })
    }

    /// Runs the purge every `interval` until the task is aborted.
    pub fn spawn(self, hub: Arc<Hub>) -> Option<tokio::task::JoinHandle<()>> {
        if self.rules.is_empty() {
            return None;
        }
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.interval).await;
                match purge(&hub, &self, ngsi::entity::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(instances = n, "history purged"),
                    Err(e) => tracing::warn!(error = %e, "history purge failed; retried later"),
                }
            }
        }))
    }
}

/// One pass over every tenant, in bounded steps; returns the instances deleted.
pub async fn purge(
    hub: &Hub,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<u64, store::StoreError> {
    let mut tenants = hub.store().tenants().await?;
    if !tenants.iter().any(|t| t.is_empty()) {
        tenants.push(String::new());
    }
    let mut deleted = 0;
    for tenant in tenants {
        let Some(cutoffs) = policy.cutoffs(&tenant, now) else {
            continue;
        };
        let mut after = 0;
        loop {
            let step = hub
                .store()
                .purge_history(&tenant, cutoffs.clone(), after, ENTITIES_PER_STEP)
                .await?;
            deleted += step.deleted;
            match step.next {
                Some(next) => after = next,
                None => break,
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        ngsi::entity::parse_time(s).unwrap()
    }

    #[test]
    fn rules_parse_and_refuse() {
        let r = RetentionRule::parse("tenant=so-tnmt/type=WaterObserved:P10Y").unwrap();
        assert_eq!(r.tenant.as_deref(), Some("so-tnmt"));
        assert_eq!(
            r.entity_type.as_deref(),
            Some("https://uri.etsi.org/ngsi-ld/default-context/WaterObserved")
        );
        assert_eq!(r.keep.months, 120);
        assert_eq!(RetentionRule::parse("P90D").unwrap().tenant, None);
        assert_eq!(
            RetentionRule::parse("tenant=:P1D")
                .unwrap()
                .tenant
                .as_deref(),
            Some("")
        );
        for bad in [
            "",
            "P0D",
            "forever",
            "owner=x:P1D",
            "type=a b:P1D",
            "tenant=a/tenant=b:P1D",
        ] {
            assert!(RetentionRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let policy = RetentionPolicy {
            rules: [
                "P1Y",
                "tenant=a:P30D",
                "type=Gauge:P10Y",
                "tenant=a/type=Gauge:P2Y",
            ]
            .iter()
            .map(|r| RetentionRule::parse(r).unwrap())
            .collect(),
            interval: Duration::from_secs(1),
        };
        let now = at("2026-11-27T00:00:00Z");
        let gauge = Context::core().expand("Gauge");
        let a = policy.cutoffs("a", now).unwrap();
        assert_eq!(a.default, Some(at("2026-10-28T00:00:00Z")));
        assert_eq!(a.by_type, vec![(gauge.clone(), at("2024-11-27T00:00:00Z"))]);
        let b = policy.cutoffs("b", now).unwrap();
        assert_eq!(b.default, Some(at("2025-11-27T00:00:00Z")));
        assert_eq!(b.by_type, vec![(gauge, at("2016-11-27T00:00:00Z"))]);
        let none = RetentionPolicy {
            rules: vec![RetentionRule::parse("tenant=a:P1D").unwrap()],
            interval: Duration::from_secs(1),
        };
        assert!(none.cutoffs("b", now).is_none());
    }
}
