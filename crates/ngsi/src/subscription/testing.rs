//! Fixtures shared by the tests of the subscription modules.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Subscription;
use crate::context::Context;
use crate::entity::{Entity, Reader, parse_time};
use crate::error::Result;

pub const SUB_ID: &str = "urn:ngsi-ld:Subscription:test";

pub fn t(text: &str) -> DateTime<Utc> {
    parse_time(text).expect("a test time")
}

/// The time every test runs at.
pub fn now() -> DateTime<Utc> {
    t("2024-05-01T00:00:00Z")
}

/// A user @context, to see names expanded and compacted by something else than the
/// default vocabulary.
pub fn user_ctx() -> Context {
    Context::build(
        &json!({
            "ex": "https://example.org/",
            "Gauge": "ex:Gauge",
            "level": "ex:level",
        }),
        &|_| None,
    )
    .expect("a valid test context")
}

/// The smallest valid subscription body.
pub fn minimal() -> Value {
    json!({
        "type": "Subscription",
        "entities": [{"type": "Gauge"}],
        "notification": {"endpoint": {"uri": "http://example.org/notify"}}
    })
}

/// `base` with `patch` merged in (objects member by member, null removes).
pub fn with(base: Value, patch: Value) -> Value {
    match (base, patch) {
        (Value::Object(mut b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                let merged = match b.remove(&k) {
                    Some(old) => with(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (_, p) => p,
    }
}

pub fn try_parse(body: &Value, ctx: &Context) -> Result<Subscription> {
    Subscription::parse(body, ctx, || SUB_ID.to_string(), now())
}

/// A subscription from `minimal()` with `patch` merged in, under the core context.
pub fn sub(patch: Value) -> Subscription {
    try_parse(&with(minimal(), patch), &Context::core()).expect("a valid test subscription")
}

/// An entity under the core context, its system times `at`.
pub fn entity(body: Value, at: DateTime<Utc>) -> Entity {
    Reader {
        ctx: &Context::core(),
        now: at,
    }
    .entity(&body, None)
    .expect("a valid test entity")
}
