//! Notification policies, silences and inhibitions as data: what clients send
//! (JSON), checked before it is stored, and how each matches an alert.
//!
//! An alert is matched through its *labels*: the rule's labels, plus `rule`,
//! `severity`, `category`, `subCategory` and `entity` (the alert's source). A
//! policy routes the alerts it matches (by severity, labels and area) to channels;
//! the policy `default` takes those no other policy matched. A silence mutes the
//! alerts its matchers select for a period. An inhibition mutes the alerts its
//! `target` selects while an open alert its `source` selects shares the `equal`
//! labels with them (level III mutes levels I and II of the same gauge).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ngsi::{Context, Entity, Error};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rule::{Area, Severity, check_text, parse_duration, valid_id};

/// Registry collections, by (tenant, id).
pub const POLICIES: &str = "alerts.policies";
pub const SILENCES: &str = "alerts.silences";
pub const INHIBITIONS: &str = "alerts.inhibitions";
/// The policy that takes the alerts no other policy matched.
pub const DEFAULT_POLICY: &str = "default";
/// Most records of each kind in one tenant.
pub const MAX_RECORDS: u64 = 1_000;
/// Most matchers in one list, channels in one policy or step, escalation steps,
/// e-mail recipients, `groupBy` or `equal` labels.
pub const MAX_MATCHERS: usize = 32;
pub const MAX_CHANNELS: usize = 16;
pub const MAX_STEPS: usize = 8;
pub const MAX_RECIPIENTS: usize = 20;
pub const MAX_GROUP_LABELS: usize = 16;
/// Longest URL, matcher value or regular expression.
pub const MAX_URL: usize = 2_000;
pub const MAX_VALUE: usize = 256;
/// Largest compiled regular expression of a matcher.
const REGEX_SIZE: usize = 64 * 1024;
/// Longest silence.
pub const MAX_SILENCE: Duration = Duration::from_secs(400 * 86_400);

fn bad(detail: impl Into<String>) -> Error {
    Error::bad_data(detail)
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MatchOp {
    #[default]
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

/// `name op value` over an alert's labels; a missing label reads as "".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    pub name: String,
    #[serde(default)]
    pub op: MatchOp,
    pub value: String,
}

/// A matcher ready to run (its expression compiled, anchored).
#[derive(Debug, Clone)]
pub struct CompiledMatcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<regex::Regex>,
}

impl CompiledMatcher {
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => self.regex.as_ref().is_some_and(|r| !r.is_match(v)),
        }
    }
}

/// The labels of an alert, by name.
pub type Labels = BTreeMap<String, String>;

fn compile_matchers(what: &str, list: &[Matcher]) -> Result<Vec<CompiledMatcher>, Error> {
    if list.len() > MAX_MATCHERS {
        return Err(bad(format!("{what} has more than {MAX_MATCHERS} matchers")));
    }
    list.iter()
        .map(|m| {
            if !valid_id(&m.name) {
                return Err(bad(format!(
                    "{what}: label name {:?} must be 1 to 64 letters, digits, - or _",
                    m.name
                )));
            }
            if m.value.chars().count() > MAX_VALUE {
                return Err(bad(format!(
                    "{what}: the value of {} is longer than {MAX_VALUE} characters",
                    m.name
                )));
            }
            let regex = match m.op {
                MatchOp::Regex | MatchOp::NotRegex => Some(
                    regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
                        .size_limit(REGEX_SIZE)
                        .build()
                        .map_err(|e| {
                            bad(format!(
                                "{what}: {:?} is not a regular expression: {e}",
                                m.value
                            ))
                        })?,
                ),
                _ => None,
            };
            Ok(CompiledMatcher {
                name: m.name.clone(),
                op: m.op,
                value: m.value.clone(),
                regex,
            })
        })
        .collect()
}

fn all_match(list: &[CompiledMatcher], labels: &Labels) -> bool {
    list.iter().all(|m| m.matches(labels))
}

fn duration(what: &str, text: &Option<String>, default: Duration) -> Result<Duration, Error> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t).map_err(|e| bad(format!("{what}: {}", e.detail))),
    }
}

// Channels.

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Channel {
    /// A JSON POST to `url` (under the hub's outbound policy).
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
    /// An e-mail to `to`, through the node's SMTP relay.
    Email {
        to: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
    /// A JSON message published on the topic of `url`
    /// (`mqtt://host:port/topic`).
    Mqtt {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qos: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
}

/// An MQTT channel's broker and topic.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttTopic {
    pub host: String,
    pub port: u16,
    pub topic: String,
}

impl Channel {
    /// Its kind, for logs (which never hold addresses or URLs: they may carry
    /// tokens).
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Email { .. } => "email",
            Channel::Mqtt { .. } => "mqtt",
        }
    }

    /// The languages a message on this channel speaks (`vi` first).
    pub fn languages(&self) -> Vec<&'static str> {
        let lang = match self {
            Channel::Webhook { lang, .. }
            | Channel::Email { lang, .. }
            | Channel::Mqtt { lang, .. } => lang.as_deref(),
        };
        match lang {
            Some("vi") => vec!["vi"],
            Some("en") => vec!["en"],
            _ => vec!["vi", "en"],
        }
    }

    fn check(&self, what: &str, outbound: &hub::outbound::OutboundPolicy) -> Result<(), Error> {
        let lang = match self {
            Channel::Webhook { url, lang } => {
                if url.len() > MAX_URL {
                    return Err(bad(format!("{what}.url is longer than {MAX_URL} bytes")));
                }
                let parsed = url::Url::parse(url)
                    .map_err(|e| bad(format!("{what}.url {url:?} is not a URL: {e}")))?;
                outbound
                    .check_url(&parsed)
                    .map_err(|e| bad(format!("{what}.url is refused: {e}")))?;
                lang
            }
            Channel::Email { to, lang } => {
                if to.is_empty() || to.len() > MAX_RECIPIENTS {
                    return Err(bad(format!(
                        "{what}.to holds 1 to {MAX_RECIPIENTS} addresses"
                    )));
                }
                for address in to {
                    if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
                        return Err(bad(format!(
                            "{what}.to: {address:?} is not an e-mail address"
                        )));
                    }
                }
                lang
            }
            Channel::Mqtt { url, qos, lang } => {
                if url.len() > MAX_URL {
                    return Err(bad(format!("{what}.url is longer than {MAX_URL} bytes")));
                }
                let target =
                    Channel::mqtt_topic(url).map_err(|e| bad(format!("{what}.url: {e}")))?;
                // What can be judged before connecting (a literal address, a metadata
                // host), as for a webhook; host names are judged when resolved.
                let host = url::Url::parse(&format!("http://{}:{}/", target.host, target.port))
                    .map_err(|e| bad(format!("{what}.url: {e}")))?;
                outbound
                    .check_url(&host)
                    .map_err(|e| bad(format!("{what}.url is refused: {e}")))?;
                if qos.is_some_and(|q| q > 1) {
                    return Err(bad(format!("{what}.qos is 0 or 1")));
                }
                lang
            }
        };
        match lang.as_deref() {
            None | Some("vi" | "en") => Ok(()),
            Some(other) => Err(bad(format!(
                "{what}.lang is vi or en (both when left out), not {other:?}"
            ))),
        }
    }

    /// Reads `mqtt://host[:port]/topic`.
    pub fn mqtt_topic(url: &str) -> Result<MqttTopic, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if parsed.scheme() != "mqtt" {
            return Err(format!(
                "{url:?}: the scheme is mqtt (mqtts is not supported)"
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("the URL holds no user name or password".into());
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?
            .to_string();
        let topic = parsed.path().trim_start_matches('/').to_string();
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("the topic has no wildcard (#, +), query or fragment".into());
        }
        if topic.is_empty() || topic.contains(['+', '#']) || topic.len() > 512 {
            return Err("the path is the topic: not empty, no wildcard, at most 512 bytes".into());
        }
        Ok(MqttTopic {
            host,
            port: parsed.port().unwrap_or(1883),
            topic,
        })
    }
}

// Records.

/// A kind of record kept in the registry and managed over `/alerts/v1/{plural}`.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync {
    const COLLECTION: &'static str;
    /// The record's name in messages ("policy").
    const NOUN: &'static str;
    /// The last segment of its routes (`/alerts/v1/policies`) and its list's member.
    const PLURAL: &'static str;
    fn id(&self) -> &str;
    fn set_id(&mut self, id: String);
    /// Checks what needs no data; `now` for times, `outbound` for URLs.
    fn check(
        &self,
        now: DateTime<Utc>,
        outbound: &hub::outbound::OutboundPolicy,
    ) -> Result<(), Error>;
    /// Sets what the server decides (a silence's author and start).
    fn stamp(&mut self, _actor: &str, _now: DateTime<Utc>) {}
    /// The channels it sends to.
    fn channels(&self) -> Vec<&Channel> {
        vec![]
    }
}

/// Reads a record from a request body, with errors naming what is wrong.
pub fn from_json<T: Record>(body: &Value) -> Result<T, Error> {
    if !body.is_object() {
        return Err(bad(format!("a {} is a JSON object", T::NOUN)));
    }
    serde_json::from_value(body.clone()).map_err(|e| bad(format!("invalid {}: {e}", T::NOUN)))
}

fn check_id(noun: &str, id: &str) -> Result<(), Error> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(bad(format!(
            "{noun} id {id:?} must be 1 to 64 letters, digits, - or _"
        )))
    }
}

/// What a policy matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMatch {
    /// Any of these severities (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Matcher>,
    /// The alerts of a commune, or within a polygon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Area>,
}

/// One step of an escalation: who is told once an alert has gone unacknowledged for
/// `after` since it was first notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalationStep {
    pub after: String,
    pub channels: Vec<Channel>,
}

/// A notification policy (`/alerts/v1/policies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Policies are tried by `order`, then id; the first that matches takes the
    /// alert, unless it says `continue`.
    #[serde(default)]
    pub order: i32,
    #[serde(default, rename = "match")]
    pub matches: PolicyMatch,
    pub channels: Vec<Channel>,
    /// The labels whose values make a group (default: the rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, rename = "continue")]
    pub go_on: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<EscalationStep>,
}

fn yes() -> bool {
    true
}

/// Defaults of a policy's timers.
pub const GROUP_WAIT: Duration = Duration::from_secs(10);
pub const GROUP_INTERVAL: Duration = Duration::from_secs(60);
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3_600);

/// A policy checked for routing.
#[derive(Debug, Clone)]
pub struct Policy {
    pub spec: PolicySpec,
    severity: Vec<Severity>,
    labels: Vec<CompiledMatcher>,
    area: Option<store::EntityQuery>,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// Escalation steps, `after` read.
    pub steps: Vec<(Duration, Vec<Channel>)>,
}

impl PolicySpec {
    pub fn compile(&self) -> Result<Policy, Error> {
        check_id("policy", &self.id)?;
        if let Some(n) = &self.name {
            check_text("name", n)?;
        }
        let labels = compile_matchers("match.labels", &self.matches.labels)?;
        let area = match &self.matches.area {
            None => None,
            Some(area) => {
                let ctx = Context::core();
                let mut spec = hub::http::params::QuerySpec {
                    types: Some(crate::alert::ALERT_TYPE.into()),
                    ..Default::default()
                };
                area.restrict(&mut spec, "match.area")?;
                Some(
                    spec.build(&ctx, hub::http::params::MAX_LIMIT, 0, false)
                        .map_err(|e| bad(format!("match.area: {}", e.detail)))?,
                )
            }
        };
        if self.id == DEFAULT_POLICY && self.matches != PolicyMatch::default() {
            return Err(bad(
                "the default policy takes what no other policy matched: it has no match",
            ));
        }
        let group_by = self.group_by.clone().unwrap_or_else(|| vec!["rule".into()]);
        if group_by.len() > MAX_GROUP_LABELS || group_by.iter().any(|l| !valid_id(l)) {
            return Err(bad(format!(
                "groupBy names at most {MAX_GROUP_LABELS} labels, each 1 to 64 letters, digits, - or _"
            )));
        }
        if self.escalation.len() > MAX_STEPS {
            return Err(bad(format!("at most {MAX_STEPS} escalation steps")));
        }
        let mut steps = Vec::new();
        let mut last = Duration::ZERO;
        for (i, step) in self.escalation.iter().enumerate() {
            let after = parse_duration(&step.after)
                .map_err(|e| bad(format!("escalation[{i}].after: {}", e.detail)))?;
            if after.is_zero() || after <= last {
                return Err(bad(format!(
                    "escalation[{i}].after must be longer than the step before it, and not 0"
                )));
            }
            last = after;
            if step.channels.is_empty() || step.channels.len() > MAX_CHANNELS {
                return Err(bad(format!(
                    "escalation[{i}].channels holds 1 to {MAX_CHANNELS} channels"
                )));
            }
            steps.push((after, step.channels.clone()));
        }
        Ok(Policy {
            spec: self.clone(),
            severity: self.matches.severity.clone(),
            labels,
            area,
            group_by,
            group_wait: duration("groupWait", &self.group_wait, GROUP_WAIT)?,
            group_interval: duration("groupInterval", &self.group_interval, GROUP_INTERVAL)?,
            repeat_interval: duration("repeatInterval", &self.repeat_interval, REPEAT_INTERVAL)?,
            steps,
        })
    }
}

impl Policy {
    /// Whether the policy matches an alert (its labels, and the Alert entity for the
    /// area).
    pub fn matches(&self, labels: &Labels, alert: &Entity) -> bool {
        (self.severity.is_empty()
            || self
                .severity
                .iter()
                .any(|s| labels.get("severity").is_some_and(|v| v == s.as_str())))
            && all_match(&self.labels, labels)
            && self.area.as_ref().is_none_or(|q| q.matches(alert))
    }

    /// The values of the `groupBy` labels: what makes an alert's group.
    pub fn group_values(&self, labels: &Labels) -> Vec<String> {
        self.group_by
            .iter()
            .map(|l| labels.get(l).cloned().unwrap_or_default())
            .collect()
    }
}

/// The policies an alert goes to: by order, the first that matches, and on while
/// those that match say `continue`; `default` when none matched.
pub fn route<'a>(policies: &'a [Policy], labels: &Labels, alert: &Entity) -> Vec<&'a Policy> {
    let mut out = Vec::new();
    for p in policies.iter().filter(|p| p.spec.id != DEFAULT_POLICY) {
        if p.matches(labels, alert) {
            out.push(p);
            if !p.spec.go_on {
                break;
            }
        }
    }
    if out.is_empty()
        && let Some(d) = policies.iter().find(|p| p.spec.id == DEFAULT_POLICY)
    {
        out.push(d);
    }
    out
}

impl Record for PolicySpec {
    const COLLECTION: &'static str = POLICIES;
    const NOUN: &'static str = "policy";
    const PLURAL: &'static str = "policies";

    fn id(&self) -> &str {
        &self.id
    }

    fn set_id(&mut self, id: String) {
        self.id = id;
    }

    fn check(
        &self,
        _now: DateTime<Utc>,
        outbound: &hub::outbound::OutboundPolicy,
    ) -> Result<(), Error> {
        self.compile()?;
        if self.channels.is_empty() || self.channels.len() > MAX_CHANNELS {
            return Err(bad(format!("channels holds 1 to {MAX_CHANNELS} channels")));
        }
        for (i, c) in self.channels.iter().enumerate() {
            c.check(&format!("channels[{i}]"), outbound)?;
        }
        for (i, step) in self.escalation.iter().enumerate() {
            for (j, c) in step.channels.iter().enumerate() {
                c.check(&format!("escalation[{i}].channels[{j}]"), outbound)?;
            }
        }
        Ok(())
    }

    fn channels(&self) -> Vec<&Channel> {
        self.channels
            .iter()
            .chain(self.escalation.iter().flat_map(|s| &s.channels))
            .collect()
    }
}

/// A silence (`/alerts/v1/silences`): the alerts its matchers select are not
/// notified from `startsAt` until `endsAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SilenceSpec {
    #[serde(default)]
    pub id: String,
    pub matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who wrote it (set by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A silence ready to apply.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: String,
    matchers: Vec<CompiledMatcher>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl SilenceSpec {
    pub fn compile(&self) -> Result<Silence, Error> {
        check_id("silence", &self.id)?;
        if self.matchers.is_empty() {
            return Err(bad("a silence has at least one matcher"));
        }
        let matchers = compile_matchers("matchers", &self.matchers)?;
        let starts_at = self.starts_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(Silence {
            id: self.id.clone(),
            matchers,
            starts_at,
            ends_at: self.ends_at,
        })
    }
}

impl Silence {
    /// Whether the silence mutes an alert of these labels at `now`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at && all_match(&self.matchers, labels)
    }

    /// Whether it is over at `now` (and can be forgotten).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.ends_at
    }
}

impl Record for SilenceSpec {
    const COLLECTION: &'static str = SILENCES;
    const NOUN: &'static str = "silence";
    const PLURAL: &'static str = "silences";

    fn id(&self) -> &str {
        &self.id
    }

    fn set_id(&mut self, id: String) {
        self.id = id;
    }

    fn check(&self, now: DateTime<Utc>, _: &hub::outbound::OutboundPolicy) -> Result<(), Error> {
        self.compile()?;
        let start = self.starts_at.unwrap_or(now);
        if self.ends_at <= start {
            return Err(bad("endsAt comes after startsAt"));
        }
        let longest = TimeDelta::from_std(MAX_SILENCE).unwrap_or(TimeDelta::MAX);
        if self.ends_at.signed_duration_since(start) > longest {
            return Err(bad("a silence lasts at most 400 days"));
        }
        if let Some(c) = &self.comment {
            check_text("comment", c)?;
        }
        Ok(())
    }

    fn stamp(&mut self, actor: &str, now: DateTime<Utc>) {
        self.created_by = Some(actor.to_string());
        if self.starts_at.is_none() {
            self.starts_at = Some(now);
        }
    }
}

/// An inhibition (`/alerts/v1/inhibitions`): while an open alert matches `source`,
/// the alerts matching `target` that have the same values of the `equal` labels are
/// not notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InhibitionSpec {
    #[serde(default)]
    pub id: String,
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    #[serde(default)]
    pub equal: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An inhibition ready to apply.
#[derive(Debug, Clone)]
pub struct Inhibition {
    source: Vec<CompiledMatcher>,
    target: Vec<CompiledMatcher>,
    equal: Vec<String>,
}

impl InhibitionSpec {
    pub fn compile(&self) -> Result<Inhibition, Error> {
        check_id("inhibition", &self.id)?;
        if self.source.is_empty() || self.target.is_empty() {
            return Err(bad("an inhibition has source and target matchers"));
        }
        if self.equal.len() > MAX_GROUP_LABELS || self.equal.iter().any(|l| !valid_id(l)) {
            return Err(bad(format!(
                "equal names at most {MAX_GROUP_LABELS} labels, each 1 to 64 letters, digits, - or _"
            )));
        }
        Ok(Inhibition {
            source: compile_matchers("source", &self.source)?,
            target: compile_matchers("target", &self.target)?,
            equal: self.equal.clone(),
        })
    }
}

impl Inhibition {
    /// Whether an alert of `labels` is muted by one of the open alerts `open`
    /// (an alert never mutes itself).
    pub fn mutes<'a>(&self, labels: &Labels, open: impl IntoIterator<Item = &'a Labels>) -> bool {
        all_match(&self.target, labels)
            && open.into_iter().any(|source| {
                source != labels
                    && all_match(&self.source, source)
                    && self.equal.iter().all(|l| source.get(l) == labels.get(l))
            })
    }
}

impl Record for InhibitionSpec {
    const COLLECTION: &'static str = INHIBITIONS;
    const NOUN: &'static str = "inhibition";
    const PLURAL: &'static str = "inhibitions";

    fn id(&self) -> &str {
        &self.id
    }

    fn set_id(&mut self, id: String) {
        self.id = id;
    }

    fn check(&self, _now: DateTime<Utc>, _: &hub::outbound::OutboundPolicy) -> Result<(), Error> {
        self.compile()?;
        if let Some(c) = &self.comment {
            check_text("comment", c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strict() -> hub::outbound::OutboundPolicy {
        hub::outbound::OutboundPolicy::strict()
    }

    #[test]
    fn matchers_compare_and_match_whole_values() {
        let m = compile_matchers(
            "t",
            &serde_json::from_value::<Vec<Matcher>>(json!([
                {"name": "alarmLevel", "op": "=~", "value": "1|2"},
                {"name": "river", "op": "!=", "value": "hieu"},
            ]))
            .expect("matchers"),
        )
        .expect("compile");
        assert!(all_match(
            &m,
            &labels(&[("alarmLevel", "2"), ("river", "thach-han")])
        ));
        assert!(!all_match(&m, &labels(&[("alarmLevel", "12")])));
        assert!(!all_match(
            &m,
            &labels(&[("alarmLevel", "1"), ("river", "hieu")])
        ));
        // A missing label reads as "".
        assert!(all_match(&m, &labels(&[("alarmLevel", "1")])));
    }

    #[test]
    fn bad_records_say_why() {
        let now = ngsi::entity::now();
        for (body, why) in [
            (json!({"id": "p", "channels": []}), "1 to 16 channels"),
            (
                json!({"id": "p", "channels": [{"kind": "webhook", "url": "http://127.0.0.1:9/x"}]}),
                "refused",
            ),
            (
                json!({"id": "p", "channels": [{"kind": "email", "to": ["not an address"]}]}),
                "not an e-mail address",
            ),
            (
                json!({"id": "p", "channels": [{"kind": "mqtt", "url": "mqtt://h/a/#"}]}),
                "wildcard",
            ),
            (
                json!({"id": "p", "channels": [{"kind": "mqtt", "url": "mqtt://169.254.169.254/a"}]}),
                "refused",
            ),
            (
                json!({"id": "p", "channels": [{"kind": "sms", "to": "1"}]}),
                "unknown variant",
            ),
            (
                json!({"id": "default", "match": {"severity": ["high"]},
                       "channels": [{"kind": "mqtt", "url": "mqtt://h/a"}]}),
                "has no match",
            ),
            (
                json!({"id": "p", "channels": [{"kind": "mqtt", "url": "mqtt://h/a"}],
                       "escalation": [{"after": "10m", "channels": [{"kind": "mqtt", "url": "mqtt://h/b"}]},
                                      {"after": "5m", "channels": [{"kind": "mqtt", "url": "mqtt://h/c"}]}]}),
                "longer than the step before",
            ),
            (
                json!({"id": "p", "match": {"labels": [{"name": "a", "op": "=~", "value": "("}]},
                       "channels": [{"kind": "mqtt", "url": "mqtt://h/a"}]}),
                "not a regular expression",
            ),
        ] {
            let e = from_json::<PolicySpec>(&body)
                .and_then(|p| p.check(now, &strict()))
                .expect_err(&body.to_string());
            assert!(e.detail.contains(why), "{body}: {}", e.detail);
        }
        let e = from_json::<SilenceSpec>(
            &json!({"id": "s", "matchers": [{"name": "rule", "value": "x"}],
                                                 "endsAt": "2000-01-01T00:00:00Z"}),
        )
        .and_then(|s| s.check(now, &strict()))
        .expect_err("ends before it starts");
        assert!(e.detail.contains("after startsAt"), "{}", e.detail);
        let e = from_json::<InhibitionSpec>(&json!({"id": "i", "source": [], "target": []}))
            .and_then(|s| s.check(now, &strict()))
            .expect_err("no matchers");
        assert!(e.detail.contains("source and target"), "{}", e.detail);
    }

    #[test]
    fn inhibition_needs_a_source_with_the_equal_labels() {
        let i = from_json::<InhibitionSpec>(&json!({
            "id": "levels",
            "source": [{"name": "alarmLevel", "value": "3"}],
            "target": [{"name": "alarmLevel", "op": "=~", "value": "1|2"}],
            "equal": ["entity"]
        }))
        .and_then(|s| s.compile())
        .expect("inhibition");
        let l1 = labels(&[("alarmLevel", "1"), ("entity", "g1")]);
        let l3 = labels(&[("alarmLevel", "3"), ("entity", "g1")]);
        let other3 = labels(&[("alarmLevel", "3"), ("entity", "g2")]);
        assert!(i.mutes(&l1, [&l3]));
        assert!(!i.mutes(&l1, [&other3]));
        assert!(!i.mutes(&l3, [&l3]));
    }

    #[test]
    fn routes_take_the_first_match_then_the_default() {
        let p = |body: Value| {
            from_json::<PolicySpec>(&body)
                .and_then(|s| s.compile())
                .expect("policy")
        };
        let ch = json!([{"kind": "mqtt", "url": "mqtt://h/a"}]);
        let policies = vec![
            p(
                json!({"id": "critical", "order": 1, "match": {"severity": ["critical"]}, "channels": ch, "continue": true}),
            ),
            p(
                json!({"id": "floods", "order": 2, "match": {"labels": [{"name": "category", "value": "naturalDisaster"}]}, "channels": ch}),
            ),
            p(
                json!({"id": "all-floods", "order": 3, "match": {"labels": [{"name": "category", "value": "naturalDisaster"}]}, "channels": ch}),
            ),
            p(json!({"id": "default", "channels": ch})),
        ];
        let e = crate::alert::entity(&json!({"id": "urn:ngsi-ld:Alert:x", "type": "Alert"}))
            .expect("entity");
        let ids = |l: &Labels| {
            route(&policies, l, &e)
                .iter()
                .map(|p| p.spec.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&labels(&[
                ("severity", "critical"),
                ("category", "naturalDisaster")
            ])),
            ["critical", "floods"]
        );
        assert_eq!(
            ids(&labels(&[
                ("severity", "low"),
                ("category", "naturalDisaster")
            ])),
            ["floods"]
        );
        assert_eq!(ids(&labels(&[("severity", "low")])), ["default"]);
    }
}
