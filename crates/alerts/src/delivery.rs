//! Delivery rules as pure functions over a group's state: when a group's message is
//! due (group wait, group interval, repeat interval), which alerts an escalation
//! step concerns, and the messages themselves, in Vietnamese and English.
//!
//! A *group* gathers the open alerts one policy routes, by the values of its
//! `groupBy` labels (the rule, by default): twenty gauges rising past the same level
//! make one group, and so one message. Its state (who was told what, when) is kept in
//! the registry so that a restart neither repeats nor forgets a message.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::policy::{Channel, Labels, Policy};

/// An alert in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The alert's concise form, as last read.
    pub alert: Value,
    pub labels: Labels,
    /// `firing`, `acknowledged` or `resolved`.
    pub status: String,
    /// When it was first in a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<DateTime<Utc>>,
    /// Escalation steps done.
    #[serde(default)]
    pub escalated: usize,
}

impl Member {
    pub fn open(&self) -> bool {
        self.status != "resolved"
    }
}

/// A group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub policy: String,
    /// The values of the policy's `groupBy` labels, by label.
    pub labels: BTreeMap<String, String>,
    /// By alert id.
    pub members: BTreeMap<String, Member>,
    /// When alerts not yet told began to wait (group wait runs from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<DateTime<Utc>>,
    /// The open alerts of the last message.
    #[serde(default)]
    pub sent: Vec<String>,
}

/// The key of a group: its policy and a digest of its label values.
pub fn group_key(policy: &str, values: &[String]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.as_bytes());
        h.update([0x1f]);
    }
    let digest = h.finalize();
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{policy} {short}")
}

fn plus(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What one message says: the open alerts and those that resolved since the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub policy: String,
    pub group: BTreeMap<String, String>,
    pub firing: Vec<Value>,
    pub resolved: Vec<Value>,
    /// For an escalation: the step (from 1) and how long the alerts went
    /// unacknowledged.
    pub escalation: Option<(usize, String)>,
    pub channels: Vec<Channel>,
}

/// Moves a group at `now`: the message it is due to send, if any. `muted` says which
/// alerts a silence or an inhibition keeps quiet: they are neither told nor counted.
/// Resolved alerts that were never told, or that are told now, leave the group.
pub fn flush(
    group: &mut Group,
    policy: &Policy,
    now: DateTime<Utc>,
    muted: &dyn Fn(&Member) -> bool,
) -> Option<Notice> {
    let active: Vec<String> = group
        .members
        .iter()
        .filter(|(_, m)| m.open() && !muted(m))
        .map(|(id, _)| id.clone())
        .collect();
    let resolved: Vec<String> = group
        .members
        .iter()
        .filter(|(_, m)| {
            !m.open() && m.notified_at.is_some() && policy.spec.send_resolved && !muted(m)
        })
        .map(|(id, _)| id.clone())
        .collect();
    if active.is_empty() && resolved.is_empty() {
        group.members.retain(|_, m| m.open());
        group.since = None;
        return None;
    }
    let changed = active != group.sent || !resolved.is_empty();
    let due = match group.last_sent {
        None => plus(*group.since.get_or_insert(now), policy.group_wait),
        Some(t) if changed => plus(t, policy.group_interval),
        Some(t) => {
            let unacknowledged = active
                .iter()
                .any(|id| group.members.get(id).is_some_and(|m| m.status == "firing"));
            if !unacknowledged {
                return None;
            }
            plus(t, policy.repeat_interval)
        }
    };
    if now < due {
        return None;
    }
    let view = |ids: &[String]| -> Vec<Value> {
        ids.iter()
            .filter_map(|id| group.members.get(id))
            .map(|m| m.alert.clone())
            .collect()
    };
    let notice = Notice {
        policy: policy.spec.id.clone(),
        group: group.labels.clone(),
        firing: view(&active),
        resolved: view(&resolved),
        escalation: None,
        channels: policy.spec.channels.clone(),
    };
    for id in &active {
        if let Some(m) = group.members.get_mut(id) {
            m.notified_at.get_or_insert(now);
        }
    }
    group.members.retain(|_, m| m.open());
    group.last_sent = Some(now);
    group.sent = active;
    group.since = None;
    Some(notice)
}

/// The escalation messages a group owes at `now`: for each step, the firing
/// (unacknowledged, not muted) alerts told at least that long ago that have not
/// reached it yet. One step per alert per call.
pub fn escalate(
    group: &mut Group,
    policy: &Policy,
    now: DateTime<Utc>,
    muted: &dyn Fn(&Member) -> bool,
) -> Vec<Notice> {
    let mut by_step: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for m in group.members.values_mut() {
        let Some(told) = m.notified_at else { continue };
        if m.status != "firing" || muted(m) {
            continue;
        }
        let Some((after, _)) = policy.steps.get(m.escalated) else {
            continue;
        };
        if now >= plus(told, *after) {
            by_step
                .entry(m.escalated)
                .or_default()
                .push(m.alert.clone());
            m.escalated += 1;
        }
    }
    by_step
        .into_iter()
        .filter_map(|(step, alerts)| {
            let spec = policy.spec.escalation.get(step)?;
            Some(Notice {
                policy: policy.spec.id.clone(),
                group: group.labels.clone(),
                firing: alerts,
                resolved: vec![],
                escalation: Some((step + 1, spec.after.clone())),
                channels: spec.channels.clone(),
            })
        })
        .collect()
}

// Messages.

fn text(alert: &Value, lang: &str) -> String {
    let d = &alert["description"];
    d.get(lang)
        .or_else(|| d.get("vi"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| d.as_str().map(str::to_string))
        .unwrap_or_else(|| alert["id"].as_str().unwrap_or_default().to_string())
}

fn group_name(notice: &Notice) -> String {
    notice
        .group
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The title of a message in `lang`.
pub fn title(notice: &Notice, lang: &str) -> String {
    let n = notice.firing.len();
    let r = notice.resolved.len();
    let group = group_name(notice);
    match (lang, &notice.escalation) {
        ("vi", Some((_, after))) => {
            format!("[dothi] {n} cảnh báo chưa được xác nhận sau {after} ({group})")
        }
        (_, Some((_, after))) => {
            format!("[dothi] {n} alert(s) unacknowledged after {after} ({group})")
        }
        ("vi", None) if n == 0 => format!("[dothi] Đã hết {r} cảnh báo ({group})"),
        (_, None) if n == 0 => format!("[dothi] {r} alert(s) resolved ({group})"),
        ("vi", None) => format!("[dothi] {n} cảnh báo đang hoạt động ({group})"),
        (_, None) => format!("[dothi] {n} alert(s) firing ({group})"),
    }
}

/// The text of a message in `lang`: one line an alert.
pub fn body(notice: &Notice, lang: &str) -> String {
    let mut out = String::new();
    for a in &notice.firing {
        let severity = a["severity"].as_str().unwrap_or_default();
        let since = a["validFrom"].as_str().unwrap_or_default();
        let since_word = if lang == "vi" { "từ" } else { "since" };
        out.push_str(&format!(
            "• [{severity}] {} ({since_word} {since})\n",
            text(a, lang)
        ));
    }
    if !notice.resolved.is_empty() {
        out.push_str(if lang == "vi" {
            "Đã hết:\n"
        } else {
            "Resolved:\n"
        });
        for a in &notice.resolved {
            out.push_str(&format!("✓ {}\n", text(a, lang)));
        }
    }
    out
}

/// The JSON document a webhook or an MQTT topic receives.
pub fn payload(tenant: &str, notice: &Notice, langs: &[&str], at: DateTime<Utc>) -> Value {
    let alert = |a: &Value| {
        json!({
            "id": a["id"],
            "rule": a["rule"],
            "status": a["status"],
            "severity": a["severity"],
            "entity": a["alertSource"],
            "labels": a.get("labels").cloned().unwrap_or_else(|| json!({})),
            "description": a["description"],
            "startsAt": a["validFrom"],
            "endsAt": a.get("validTo").cloned().unwrap_or(Value::Null),
        })
    };
    let per_lang = |f: &dyn Fn(&str) -> String| -> Value {
        Value::Object(
            langs
                .iter()
                .map(|l| (l.to_string(), Value::String(f(l))))
                .collect(),
        )
    };
    json!({
        "version": "1",
        "tenant": tenant,
        "policy": notice.policy,
        "groupLabels": notice.group,
        "status": if notice.firing.is_empty() { "resolved" } else { "firing" },
        "escalation": notice.escalation.as_ref().map(|(step, after)| json!({"step": step, "after": after})),
        "title": per_lang(&|l| title(notice, l)),
        "text": per_lang(&|l| body(notice, l)),
        "alerts": notice.firing.iter().chain(&notice.resolved).map(alert).collect::<Vec<_>>(),
        "sentAt": ngsi::entity::format_time(&at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicySpec, from_json};

    fn policy(extra: Value) -> Policy {
        let mut body = json!({"id": "p", "channels": [{"kind": "mqtt", "url": "mqtt://h/t"}],
                              "groupWait": "10s", "groupInterval": "1m", "repeatInterval": "1h"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        from_json::<PolicySpec>(&body)
            .and_then(|p| p.compile())
            .expect("policy")
    }

    fn member(id: &str, status: &str) -> Member {
        Member {
            alert: json!({"id": id, "status": status, "severity": "high",
                          "description": {"vi": format!("{id} vi"), "en": format!("{id} en")}}),
            labels: Labels::new(),
            status: status.into(),
            notified_at: None,
            escalated: 0,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    #[test]
    fn a_group_waits_then_tells_once_then_repeats() {
        let p = policy(json!({}));
        let mut g = Group::default();
        let quiet = |_: &Member| false;
        for i in 0..20 {
            g.members
                .insert(format!("a{i:02}"), member(&format!("a{i:02}"), "firing"));
        }
        assert!(flush(&mut g, &p, at(0), &quiet).is_none(), "group wait");
        assert!(flush(&mut g, &p, at(9), &quiet).is_none());
        let n = flush(&mut g, &p, at(10), &quiet).expect("one message");
        assert_eq!(n.firing.len(), 20);
        assert!(flush(&mut g, &p, at(11), &quiet).is_none(), "told already");
        assert!(flush(&mut g, &p, at(3_609), &quiet).is_none());
        let again = flush(&mut g, &p, at(3_610), &quiet).expect("repeat");
        assert_eq!(again.firing.len(), 20);
        // One resolves: told at the group interval.
        g.members.get_mut("a00").expect("a00").status = "resolved".into();
        assert!(flush(&mut g, &p, at(3_650), &quiet).is_none());
        let r = flush(&mut g, &p, at(3_670), &quiet).expect("resolution");
        assert_eq!((r.firing.len(), r.resolved.len()), (19, 1));
        assert!(!g.members.contains_key("a00"));
        assert!(
            title(&r, "vi").contains("19 cảnh báo"),
            "{}",
            title(&r, "vi")
        );
    }

    #[test]
    fn acknowledged_alerts_are_not_repeated_nor_escalated() {
        let p = policy(
            json!({"escalation": [{"after": "15m", "channels": [{"kind": "mqtt", "url": "mqtt://h/boss"}]}]}),
        );
        let mut g = Group::default();
        let quiet = |_: &Member| false;
        g.members.insert("a".into(), member("a", "firing"));
        g.members.insert("b".into(), member("b", "firing"));
        assert!(flush(&mut g, &p, at(0), &quiet).is_none());
        flush(&mut g, &p, at(10), &quiet).expect("told");
        g.members.get_mut("b").expect("b").status = "acknowledged".into();
        assert!(escalate(&mut g, &p, at(10 + 899), &quiet).is_empty());
        let e = escalate(&mut g, &p, at(10 + 900), &quiet);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].firing.len(), 1);
        assert_eq!(e[0].firing[0]["id"], "a");
        assert!(
            escalate(&mut g, &p, at(10 + 2_000), &quiet).is_empty(),
            "one step only"
        );
        g.members.get_mut("a").expect("a").status = "acknowledged".into();
        assert!(
            flush(&mut g, &p, at(10 + 7_200), &quiet).is_none(),
            "nothing to repeat"
        );
    }

    #[test]
    fn muted_alerts_wait_until_they_are_not() {
        let p = policy(json!({}));
        let mut g = Group::default();
        g.members.insert("a".into(), member("a", "firing"));
        let all = |_: &Member| true;
        let none = |_: &Member| false;
        assert!(flush(&mut g, &p, at(100), &all).is_none());
        assert!(g.since.is_none());
        assert!(
            flush(&mut g, &p, at(200), &none).is_none(),
            "group wait from the unmuting"
        );
        assert!(flush(&mut g, &p, at(210), &none).is_some());
    }
}
