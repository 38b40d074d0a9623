//! The alerts service: rules kept as registry records, incidents evaluated from the
//! hub's change feed and a timer, alerts written as `Alert` entities, all through
//! [`hub::Hub`].
//!
//! Rules and incidents live in the store's registry (collections [`RULES`],
//! [`INCIDENTS`]), so every node sees them; the evaluator runs on the node holding
//! the duties ([`Alerts::spawn`]). An incident's phase is written before the alert it
//! raises, and the alert's id is a function of the incident, so an evaluator killed
//! between the two raises the same alert on its next start: none is lost, none doubled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use hub::auth::Access;
use hub::{Hub, Scope};
use ngsi::temporal::TimeRel;
use ngsi::{Entity, Error, ErrorKind};
use serde_json::{Map, json};
use store::RegistryWrite;
use tokio::sync::{Mutex, Notify};

use crate::alert::{self, Status};
use crate::backlog::{Backlog, Batch, Dirty, EntityKey, Latest};
use crate::eval::{self, Action, Incident, Phase};
use crate::rule::{Condition, Rule, RuleSpec};

/// Registry collections: rules by (tenant, id); the tenants that have rules (under
/// the default tenant, by name); incidents by (tenant, "rule entity").
pub const RULES: &str = "alerts.rules";
pub const TENANTS: &str = "alerts.tenants";
pub const INCIDENTS: &str = "alerts.incidents";
/// Most rules of one tenant.
pub const MAX_RULES: u64 = 20_000;
/// Entities read per page when a rule is evaluated over its whole scope.
const PAGE: usize = 1_000;
/// Changed entities evaluated together, at most.
const BATCH: usize = 1_000;
/// Entities read by id in one query.
const READ_AT_ONCE: usize = 500;
/// Transitions applied at once (their writes share the store's commits).
const APPLY_AT_ONCE: usize = 64;
/// The component name in the audit log.
pub const COMPONENT: &str = "alerts";

/// Where the time comes from: the system clock, or a controlled one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        ngsi::entity::now()
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(std::sync::Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t = t
                .checked_add_signed(TimeDelta::from_std(by).unwrap_or(TimeDelta::zero()))
                .unwrap_or(*t);
        }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map_or_else(|_| ngsi::entity::now(), |t| *t)
    }
}

/// How often the evaluator wakes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timers (for-durations, keep-firing) are checked this often.
    pub tick: Duration,
    /// Staleness rules are evaluated over their scope this often.
    pub sweep: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick: Duration::from_secs(1),
            sweep: Duration::from_secs(30),
        }
    }
}

type Key = (String, String, String);

/// The enabled rules of one entity type: those scoped by entity ids, by id, and the
/// others.
#[derive(Default)]
struct TypeRules {
    any: Vec<Arc<Rule>>,
    by_id: HashMap<String, Vec<Arc<Rule>>>,
}

impl TypeRules {
    fn build(
        rules: &HashMap<String, BTreeMap<String, Arc<Rule>>>,
    ) -> HashMap<(String, String), TypeRules> {
        let mut out: HashMap<(String, String), TypeRules> = HashMap::new();
        for rule in rules
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.spec.enabled)
        {
            let slot = out
                .entry((rule.tenant.clone(), rule.entity_type.clone()))
                .or_default();
            if rule.query.ids.is_empty() {
                slot.any.push(rule.clone());
            } else {
                for id in &rule.query.ids {
                    slot.by_id.entry(id.clone()).or_default().push(rule.clone());
                }
            }
        }
        out
    }

    /// The rules that may concern entity `id`.
    fn of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Arc<Rule>> {
        self.any
            .iter()
            .chain(self.by_id.get(id).into_iter().flatten())
    }
}

/// A changed entity's id, the rules it may concern and what it is evaluated on.
type Concerned<'a> = (&'a str, Vec<Arc<Rule>>, &'a Latest);

/// What one rule made of one entity: the incident's next state and the alerts to
/// raise or resolve, to be written by [`Alerts::apply_all`].
struct Transition {
    key: Key,
    rule: Arc<Rule>,
    before: Phase,
    inc: Incident,
    actions: Vec<Action>,
    /// The entity, when an alert is raised from it (read again when absent).
    source: Option<Entity>,
}

/// An in-scope entity of a timed rule (staleness, deadline), as last read: the time
/// its condition counts from, and whether the condition held then (its incident
/// then follows it, and the sweep has nothing to do until the entity changes).
struct Timed {
    at: DateTime<Utc>,
    held: bool,
}

/// What the evaluator holds while it runs.
#[derive(Default)]
struct Engine {
    loaded: bool,
    /// The registry generation and local version the rules were read at.
    generation: u64,
    version: u64,
    rules: HashMap<String, BTreeMap<String, Arc<Rule>>>,
    /// The enabled rules by (tenant, expanded type): what a change of an entity of
    /// that type may concern.
    index: HashMap<(String, String), TypeRules>,
    /// By (tenant, rule, entity).
    incidents: HashMap<Key, Incident>,
    /// By (tenant, timed rule), then entity: kept from every read of an entity in
    /// scope (the change feed, and each full pass: at start, on `Missed` or lag, when
    /// the rule changes), so that the sweep scans memory instead of querying.
    timed: HashMap<(String, String), HashMap<String, Timed>>,
    /// Timed rules whose last full pass did not finish (the store failed): their
    /// memory is incomplete, so their next sweep is a full pass.
    partial: std::collections::HashSet<(String, String)>,
    last_sweep: Option<DateTime<Utc>>,
}

impl Engine {
    /// Keeps an incident in its new state (an idle one is forgotten).
    fn remember(&mut self, key: Key, inc: Incident) {
        if inc.phase == Phase::Idle {
            self.incidents.remove(&key);
        } else {
            self.incidents.insert(key, inc);
        }
    }

    /// The enabled rules that changes `dirty` of entity `id` may concern: those of
    /// its types, scoped to it or to all; a change of attributes a condition does not
    /// read concerns it only if its scope reads the whole entity (`q`, area).
    fn concerned(&self, tenant: &str, id: &str, dirty: &Dirty) -> Vec<Arc<Rule>> {
        let mut rules: Vec<Arc<Rule>> = Vec::new();
        for t in &dirty.types {
            let Some(index) = self.index.get(&(tenant.to_string(), t.clone())) else {
                continue;
            };
            for r in index.of(id) {
                let read = r.attributes();
                let concerned = read.is_empty()
                    || dirty.whole
                    || dirty.attrs.iter().any(|a| read.contains(&a.as_str()))
                    || r.spec.scope.q.is_some()
                    || r.spec.scope.area.is_some();
                // An entity of two watched types meets a rule once.
                if concerned && !rules.iter().any(|x| Arc::ptr_eq(x, r)) {
                    rules.push(r.clone());
                }
            }
        }
        rules
    }
}

/// Aborts a task when dropped (the evaluator's feed drain ends with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The alerts service.
pub struct Alerts {
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    engine: Mutex<Engine>,
    /// The notification half ([`crate::notify`]).
    pub(crate) delivery: Mutex<crate::notify::Delivery>,
    pub(crate) senders: crate::channel::Senders,
    /// Moves whenever this node changes a policy, silence or inhibition.
    pub(crate) config_version: AtomicU64,
    /// Set when an alert changed since delivery last read the open alerts.
    pub(crate) alerts_changed: std::sync::atomic::AtomicBool,
    /// Moves whenever this node changes a rule.
    version: AtomicU64,
    /// Times changes were lost and every rule evaluated again.
    gaps: AtomicU64,
    wake: Notify,
    /// Live streams open at once ([`crate::stream`]).
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
}

pub(crate) fn store_error(e: store::StoreError) -> Error {
    match e {
        store::StoreError::Rejected(e) => e,
        other => {
            tracing::warn!(error = %other, "alerts: registry unavailable");
            Error::new(
                ErrorKind::ServiceUnavailable,
                "the store is unavailable, retry later",
            )
        }
    }
}

fn incident_key(rule: &str, entity: &str) -> String {
    format!("{rule} {entity}")
}

impl Alerts {
    pub fn new(hub: Arc<Hub>) -> Alerts {
        Alerts::with_clock(hub, Arc::new(SystemClock), Settings::default())
    }

    pub fn with_clock(hub: Arc<Hub>, clock: Arc<dyn Clock>, settings: Settings) -> Alerts {
        let senders = crate::channel::Senders::new(hub.outbound());
        Alerts {
            hub,
            clock,
            settings,
            engine: Mutex::default(),
            delivery: Mutex::default(),
            senders,
            config_version: AtomicU64::new(1),
            alerts_changed: std::sync::atomic::AtomicBool::new(true),
            version: AtomicU64::new(1),
            gaps: AtomicU64::new(0),
            wake: Notify::new(),
            streams: Arc::new(tokio::sync::Semaphore::new(crate::stream::MAX_STREAMS)),
        }
    }

    /// E-mail channels go through this SMTP relay (none: they are refused).
    pub fn with_smtp(mut self, relay: crate::channel::SmtpRelay) -> Result<Alerts, String> {
        self.senders = crate::channel::Senders::new(self.hub.outbound()).with_smtp(&relay)?;
        Ok(self)
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn system(tenant: &str) -> Scope {
        Scope::system(COMPONENT, tenant)
    }

    // Rules.

    /// Checks a rule against the data: its commune exists, and the attributes it
    /// compares hold numbers where entities in its scope have them.
    async fn check_against_data(&self, scope: &Scope, rule: &Rule) -> Result<(), Error> {
        if let Some(commune) = rule
            .spec
            .scope
            .area
            .as_ref()
            .and_then(|a| a.commune.as_ref())
        {
            match self.hub.get_entity(scope, commune).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                    return Err(Error::bad_data(format!(
                        "scope.area.commune {commune} is not an entity of this tenant"
                    )));
                }
                Err(e) if e.kind == ErrorKind::NonExistentTenant => {}
                Err(e) => return Err(e),
            }
        }
        // What the condition's attributes must hold, where entities have them.
        let (wanted, fits): (&str, fn(&ngsi::Attribute) -> bool) = if rule.numeric() {
            ("compares numbers", |a| eval::number(a).is_some())
        } else if matches!(rule.condition, Condition::Deadline { .. }) {
            ("reads a date-time", |a| eval::date_time(a).is_some())
        } else {
            return Ok(());
        };
        let mut query = rule.query.clone();
        query.limit = 50;
        let page = match self.hub.query(scope, query).await {
            Ok(p) => p,
            Err(e) if e.kind == ErrorKind::NonExistentTenant => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in &page.entities {
            for name in rule.attributes() {
                if let Some(a) = eval::instance(e, name)
                    && !fits(a)
                {
                    return Err(Error::bad_data(format!(
                        "the condition {wanted}, but {} of {} is a {} holding {}",
                        scope.ctx.compact(name),
                        e.id,
                        a.kind.name(),
                        a.value
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks and stores a new rule (`create`) or replaces one.
    pub async fn put_rule(
        &self,
        scope: &Scope,
        spec: RuleSpec,
        mode: RegistryWrite,
    ) -> Result<Rule, Error> {
        scope.check(Access::Write)?;
        let rule = spec.compile(&scope.tenant)?;
        self.check_against_data(scope, &rule).await?;
        let value = serde_json::to_value(&rule.spec)
            .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
        self.store_record(
            scope,
            RULES,
            ("rule", "rules", MAX_RULES),
            &rule.spec.id,
            value,
            mode,
        )
        .await?;
        self.rules_changed();
        Ok(rule)
    }

    /// Stores one record of a tenant's collection (a rule, policy, silence,
    /// inhibition: its `noun` and `plural` in messages): at most `limit` of them, 409 when a new one's id is taken, 404
    /// when a replaced one is missing; the tenant is recorded among those that have
    /// records.
    pub(crate) async fn store_record(
        &self,
        scope: &Scope,
        collection: &str,
        (noun, plural, limit): (&str, &str, u64),
        id: &str,
        value: serde_json::Value,
        mode: RegistryWrite,
    ) -> Result<(), Error> {
        let records = self.hub.records();
        if mode == RegistryWrite::Create {
            let count = records
                .registry_list(collection, &scope.tenant, 0, 1)
                .await
                .map_err(store_error)?
                .count;
            if count >= limit {
                return Err(Error::bad_data(format!(
                    "a tenant has at most {limit} {plural}"
                )));
            }
        }
        records
            .registry_put(
                TENANTS,
                "",
                vec![(scope.tenant.clone(), json!({}))],
                RegistryWrite::Upsert,
            )
            .await
            .map_err(store_error)?;
        records
            .registry_put(
                collection,
                &scope.tenant,
                vec![(id.to_string(), value)],
                mode,
            )
            .await
            .map_err(|e| match e {
                store::StoreError::Rejected(e) if e.kind == ErrorKind::AlreadyExists => Error::new(
                    ErrorKind::AlreadyExists,
                    format!("a {noun} {id} exists already"),
                ),
                store::StoreError::Rejected(e) if e.kind == ErrorKind::ResourceNotFound => {
                    Error::not_found(format!("no {noun} {id}"))
                }
                e => store_error(e),
            })
    }

    /// The stored record `id` of a tenant's collection (a `noun`), 404 when missing.
    pub(crate) async fn stored_record(
        &self,
        scope: &Scope,
        collection: &str,
        noun: &str,
        id: &str,
    ) -> Result<serde_json::Value, Error> {
        scope.check(Access::Read)?;
        self.hub
            .records()
            .registry_get(collection, &scope.tenant, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found(format!("no {noun} {id}")))
    }

    /// A page of a tenant's collection, with the count of all; a record that no longer
    /// reads as a `T` is left out.
    pub(crate) async fn stored_records<T: serde::de::DeserializeOwned>(
        &self,
        scope: &Scope,
        collection: &str,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<T>), Error> {
        scope.check(Access::Read)?;
        let page = self
            .hub
            .records()
            .registry_list(collection, &scope.tenant, offset, limit)
            .await
            .map_err(store_error)?;
        let items = page
            .records
            .into_iter()
            .filter_map(|r| serde_json::from_value(r.value).ok())
            .collect();
        Ok((page.count, items))
    }

    /// Deletes the record `id` of a tenant's collection (a `noun`), 404 when missing.
    pub(crate) async fn delete_stored_record(
        &self,
        scope: &Scope,
        collection: &str,
        noun: &str,
        id: &str,
    ) -> Result<(), Error> {
        scope.check(Access::Write)?;
        let gone = self
            .hub
            .records()
            .registry_delete(collection, &scope.tenant, id)
            .await
            .map_err(store_error)?;
        if !gone {
            return Err(Error::not_found(format!("no {noun} {id}")));
        }
        Ok(())
    }

    pub async fn get_rule(&self, scope: &Scope, id: &str) -> Result<RuleSpec, Error> {
        let value = self.stored_record(scope, RULES, "rule", id).await?;
        serde_json::from_value(value)
            .map_err(|e| Error::new(ErrorKind::InternalError, format!("stored rule {id}: {e}")))
    }

    pub async fn list_rules(
        &self,
        scope: &Scope,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<RuleSpec>), Error> {
        self.stored_records(scope, RULES, offset, limit).await
    }

    pub async fn delete_rule(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        self.delete_stored_record(scope, RULES, "rule", id).await?;
        self.rules_changed();
        Ok(())
    }

    fn rules_changed(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    // Alerts, by hand.

    /// Acknowledges, assigns or resolves an alert for a caller: the write is the
    /// caller's, so the audit log names them; the alert records who and when.
    pub async fn act(
        &self,
        scope: &Scope,
        id: &str,
        action: HandAction,
        comment: Option<String>,
    ) -> Result<Entity, Error> {
        let current = self.hub.get_entity(scope, id).await?;
        if !current.has_type(&scope.ctx.expand(alert::ALERT_TYPE)) {
            return Err(Error::not_found(format!("no alert {id}")));
        }
        let status = alert::status_of(&current);
        let now = self.now();
        let actor = scope.caller.actor.clone();
        let stamp = json!({"type": "Property", "value": ngsi::entity::format_time(&now)});
        let mut body = Map::new();
        match &action {
            HandAction::Acknowledge => {
                if status != Some(Status::Firing) {
                    return Err(Error::new(
                        ErrorKind::OperationNotSupported,
                        format!(
                            "only a firing alert can be acknowledged; this one is {}",
                            status.map_or("unknown", Status::as_str)
                        ),
                    ));
                }
                body.insert(
                    "status".into(),
                    json!({"type": "Property", "value": "acknowledged"}),
                );
                body.insert(
                    "acknowledgedBy".into(),
                    json!({"type": "Property", "value": actor}),
                );
                body.insert("acknowledgedAt".into(), stamp);
            }
            HandAction::Assign(to) => {
                if status == Some(Status::Resolved) {
                    return Err(Error::new(
                        ErrorKind::OperationNotSupported,
                        "the alert is resolved",
                    ));
                }
                body.insert(
                    "assignedTo".into(),
                    json!({"type": "Property", "value": to}),
                );
                body.insert(
                    "assignedBy".into(),
                    json!({"type": "Property", "value": actor}),
                );
            }
            HandAction::Resolve => {
                if status == Some(Status::Resolved) {
                    return Err(Error::new(
                        ErrorKind::OperationNotSupported,
                        "the alert is resolved already",
                    ));
                }
                body = alert::resolution(now, Some(&actor), None);
            }
        }
        if let Some(c) = comment {
            body.insert("comment".into(), json!({"type": "Property", "value": c}));
        }
        let core = Scope::new(
            scope.tenant.clone(),
            ngsi::Context::core(),
            scope.caller.clone(),
        );
        self.hub.merge_entity(&core, id, body).await?;
        self.hub.get_entity(scope, id).await
    }

    // The evaluator.

    /// Runs the evaluator whenever this node holds the duties, until the task is
    /// aborted: it subscribes to the change feed, loads rules and incidents,
    /// reconciles them with the alerts, evaluates every rule once, then follows the
    /// feed and its timer.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut duties = self.hub.duties();
            loop {
                if duties.wait_for(|h| *h).await.is_err() && !*duties.borrow() {
                    return;
                }
                tracing::info!("alerts: this node evaluates the rules and sends notifications");
                tokio::select! {
                    _ = self.run_while_held(&mut duties) => {}
                    _ = self.deliver_forever() => {}
                }
                *self.engine.lock().await = Engine::default();
                self.reset_delivery().await;
                tracing::warn!("alerts: this node stopped evaluating the rules");
            }
        })
    }

    async fn run_while_held(&self, duties: &mut tokio::sync::watch::Receiver<bool>) {
        // The feed is drained into the backlog by a task of its own, so that it does
        // not overflow while the evaluator works on a batch.
        let backlog = Arc::new(std::sync::Mutex::new(Backlog::new(
            crate::backlog::MAX_ENTITIES,
        )));
        let ready = Arc::new(Notify::new());
        let _drain = AbortOnDrop(tokio::spawn(crate::backlog::drain(
            self.hub.subscribe_changes(),
            backlog.clone(),
            ready.clone(),
        )));
        let waiting = || backlog.lock().map(|b| !b.is_empty()).unwrap_or(false);
        let mut timer = tokio::time::interval(self.settings.tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held_for_good = false;
        // A batch failed (the store is unavailable): it is tried again on the next
        // tick, not at once.
        let mut failed = false;
        loop {
            tokio::select! {
                changed = duties.changed(), if !held_for_good => {
                    if changed.is_err() {
                        // The grant can no longer change: held for good.
                        held_for_good = true;
                    } else if !*duties.borrow() {
                        return;
                    }
                }
                // One batch at a time, so that the timer has its turns under load.
                () = ready.notified() => {
                    let r = self.catch_up(&backlog).await;
                    failed = r.is_err();
                    self.log(r);
                }
                _ = timer.tick() => {
                    failed = false;
                    self.log(self.tick().await);
                }
                () = self.wake.notified() => self.log(self.tick().await),
            }
            // What still waits (the rest of a burst) is taken on the next turn.
            if !failed && waiting() {
                ready.notify_one();
            }
        }
    }

    fn log(&self, r: Result<(), Error>) {
        if let Err(e) = r {
            tracing::warn!(error = %e, "alerts: evaluation failed; it is retried on the next tick");
        }
    }

    /// Loads rules and incidents when needed (first, or rules changed on this node or
    /// another), reconciles, and evaluates the rules that are new or changed.
    async fn refresh(&self, engine: &mut Engine) -> Result<(), Error> {
        let generation = self.hub.records().registry_generation();
        let version = self.version.load(Ordering::Relaxed);
        if engine.loaded && engine.generation == generation && engine.version == version {
            return Ok(());
        }
        let first = !engine.loaded;
        let rules = self.load_rules().await?;
        if first {
            engine.incidents = self.load_incidents(&rules).await?;
        }
        // Incidents of rules that are gone or switched off are resolved.
        let orphans: Vec<Key> = engine
            .incidents
            .keys()
            .filter(|(t, r, _)| {
                rules
                    .get(t)
                    .and_then(|m| m.get(r))
                    .is_none_or(|rule| !rule.spec.enabled)
            })
            .cloned()
            .collect();
        for key in orphans {
            if let Some(inc) = engine.incidents.remove(&key) {
                if let Phase::Firing { alert, .. } = &inc.phase {
                    self.resolve_alert(&key.0, alert, self.now()).await?;
                }
                self.forget(&key).await?;
            }
        }
        let changed: Vec<Arc<Rule>> = rules
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.spec.enabled)
            .filter(|r| {
                engine
                    .rules
                    .get(&r.tenant)
                    .and_then(|m| m.get(&r.spec.id))
                    .is_none_or(|old| old.spec != r.spec)
            })
            .cloned()
            .collect();
        let timed = |(t, r): &(String, String)| {
            rules
                .get(t)
                .and_then(|m| m.get(r))
                .is_some_and(|rule| rule.spec.enabled && rule.timed())
        };
        engine.timed.retain(|k, _| timed(k));
        engine.partial.retain(timed);
        engine.index = TypeRules::build(&rules);
        engine.rules = rules;
        engine.generation = generation;
        engine.version = version;
        engine.loaded = true;
        if first {
            self.reconcile(engine).await?;
        }
        for rule in changed {
            self.evaluate_rule(engine, &rule).await?;
        }
        Ok(())
    }

    async fn load_rules(&self) -> Result<HashMap<String, BTreeMap<String, Arc<Rule>>>, Error> {
        let records = self.hub.records();
        let mut out: HashMap<String, BTreeMap<String, Arc<Rule>>> = HashMap::new();
        for tenant in self.list_all(TENANTS, "").await? {
            let tenant = tenant.key;
            for record in self.list_all(RULES, &tenant).await? {
                let compiled = serde_json::from_value::<RuleSpec>(record.value)
                    .map_err(|e| Error::bad_data(e.to_string()))
                    .and_then(|s| s.compile(&tenant));
                match compiled {
                    Ok(rule) => {
                        out.entry(tenant.clone())
                            .or_default()
                            .insert(rule.spec.id.clone(), Arc::new(rule));
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, rule = %record.key, error = %e, "alerts: a stored rule no longer compiles; skipped");
                    }
                }
            }
        }
        drop(records);
        Ok(out)
    }

    pub(crate) async fn list_all(
        &self,
        collection: &str,
        tenant: &str,
    ) -> Result<Vec<store::RegistryRecord>, Error> {
        let records = self.hub.records();
        let mut out = Vec::new();
        loop {
            let page = records
                .registry_list(collection, tenant, out.len() as u64, 1_000)
                .await
                .map_err(store_error)?;
            let n = page.records.len();
            out.extend(page.records);
            if n == 0 || out.len() as u64 >= page.count {
                return Ok(out);
            }
        }
    }

    async fn load_incidents(
        &self,
        rules: &HashMap<String, BTreeMap<String, Arc<Rule>>>,
    ) -> Result<HashMap<Key, Incident>, Error> {
        let mut out = HashMap::new();
        for tenant in rules.keys() {
            for record in self.list_all(INCIDENTS, tenant).await? {
                let Some((rule, entity)) = record.key.split_once(' ') else {
                    continue;
                };
                if let Ok(inc) = serde_json::from_value::<Incident>(record.value) {
                    out.insert((tenant.clone(), rule.to_string(), entity.to_string()), inc);
                }
            }
        }
        Ok(out)
    }

    /// After a start: every firing incident's alert exists and fires (raised again
    /// when the evaluator stopped between the incident and its alert); one resolved
    /// by hand meanwhile latches.
    async fn reconcile(&self, engine: &mut Engine) -> Result<(), Error> {
        let firing: Vec<(Key, String, DateTime<Utc>)> = engine
            .incidents
            .iter()
            .filter_map(|(k, inc)| match &inc.phase {
                Phase::Firing { alert, since, .. } => Some((k.clone(), alert.clone(), *since)),
                _ => None,
            })
            .collect();
        for (key, alert_id, since) in firing {
            let (tenant, rule_id, entity_id) = &key;
            let scope = Alerts::system(tenant);
            match self.hub.get_entity(&scope, &alert_id).await {
                Ok(a) if alert::status_of(&a) == Some(Status::Resolved) => {
                    self.latch(engine, &key).await?;
                }
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                    let Some(rule) = engine
                        .rules
                        .get(tenant)
                        .and_then(|m| m.get(rule_id))
                        .cloned()
                    else {
                        continue;
                    };
                    let last = engine
                        .incidents
                        .get(&key)
                        .map(|i| i.last.clone())
                        .unwrap_or_default();
                    match self.hub.get_entity(&scope, entity_id).await {
                        Ok(source) => {
                            self.raise(&rule, &alert_id, &source, &last, since, self.now())
                                .await?;
                        }
                        Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                            engine.incidents.remove(&key);
                            self.forget(&key).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn latch(&self, engine: &mut Engine, key: &Key) -> Result<(), Error> {
        if let Some(inc) = engine.incidents.get_mut(key) {
            inc.phase = if inc.last.cleared {
                Phase::Idle
            } else {
                Phase::Latched
            };
            let inc = inc.clone();
            self.persist(key, &inc).await?;
            if inc.phase == Phase::Idle {
                engine.incidents.remove(key);
            }
        }
        Ok(())
    }

    async fn persist(&self, key: &Key, inc: &Incident) -> Result<(), Error> {
        let records = self.hub.records();
        let k = incident_key(&key.1, &key.2);
        if inc.phase == Phase::Idle {
            records
                .registry_delete(INCIDENTS, &key.0, &k)
                .await
                .map_err(store_error)?;
        } else {
            let value = serde_json::to_value(inc)
                .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
            records
                .registry_put(INCIDENTS, &key.0, vec![(k, value)], RegistryWrite::Upsert)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn forget(&self, key: &Key) -> Result<(), Error> {
        self.persist(key, &Incident::idle()).await
    }

    async fn raise(
        &self,
        rule: &Rule,
        id: &str,
        source: &Entity,
        obs: &eval::Observation,
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let body = alert::firing(rule, id, source, obs, since, at);
        let entity = alert::entity(&body)?;
        let scope = Alerts::system(&rule.tenant);
        for (_, r) in self
            .hub
            .batch_upsert(&scope, vec![Ok(entity)], false)
            .await?
        {
            r?;
        }
        tracing::info!(tenant = %rule.tenant, rule = %rule.spec.id, entity = %source.id, alert = %id, "alert fired");
        Ok(())
    }

    async fn resolve_alert(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> Result<(), Error> {
        let scope = Alerts::system(tenant);
        match self
            .hub
            .merge_entity(&scope, id, alert::resolution(at, None, None))
            .await
        {
            Ok(()) => {
                tracing::info!(tenant = %tenant, alert = %id, "alert resolved");
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The oldest value of a rate rule's attribute recorded within its window.
    async fn window_start(
        &self,
        rule: &Rule,
        entity: &Entity,
        now: DateTime<Utc>,
    ) -> Result<Option<f64>, Error> {
        let Condition::Rate {
            attribute, window, ..
        } = &rule.condition
        else {
            return Ok(None);
        };
        let from = now
            .checked_sub_signed(TimeDelta::from_std(*window).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let to = now
            .checked_add_signed(TimeDelta::milliseconds(1))
            .unwrap_or(now);
        let req = crate::backtest::observed(attribute, TimeRel::Between(from, to), 1);
        let scope = Alerts::system(&rule.tenant);
        match self.hub.temporal_entity(&scope, &entity.id, &req).await? {
            hub::temporal::TemporalAnswer::Instances { entity, .. } => Ok(entity
                .attrs
                .get(attribute)
                .and_then(|v| v.first())
                .and_then(|i| eval::number(&i.attribute))),
            hub::temporal::TemporalAnswer::Aggregated { .. } => Ok(None),
        }
    }

    /// Decides what one rule makes of one entity (None: the entity is gone) now: the
    /// incident's next state and what it asks for, applied by [`Alerts::apply_all`].
    /// None when there is no incident and the condition does not hold.
    async fn decide(
        &self,
        engine: &mut Engine,
        rule: &Arc<Rule>,
        entity_id: &str,
        entity: Option<&Entity>,
    ) -> Result<Option<Transition>, Error> {
        let now = self.now();
        let key = (
            rule.tenant.clone(),
            rule.spec.id.clone(),
            entity_id.to_string(),
        );
        let in_scope = entity.filter(|e| rule.query.matches(e));
        if rule.timed() {
            let slot = engine
                .timed
                .entry((rule.tenant.clone(), rule.spec.id.clone()))
                .or_default();
            match in_scope.and_then(|e| eval::moment(rule, e)) {
                Some(at) => {
                    let held = eval::holds(rule, at, now);
                    slot.insert(entity_id.to_string(), Timed { at, held });
                }
                None => {
                    slot.remove(entity_id);
                }
            }
        }
        let obs = match in_scope {
            Some(e) => {
                let start = self.window_start(rule, e, now).await?;
                eval::observe(rule, e, now, start)
            }
            None => eval::Observation {
                active: false,
                cleared: true,
                ..Default::default()
            },
        };
        let known = engine.incidents.get(&key);
        if known.is_none() && !obs.active {
            return Ok(None);
        }
        let mut inc = known.cloned().unwrap_or_else(Incident::idle);
        let before = inc.phase.clone();
        let id = |since| alert::alert_id(&rule.spec.id, entity_id, since);
        let actions = eval::step(rule, &mut inc, obs, now, id);
        let fires = actions.iter().any(|a| matches!(a, Action::Fire { .. }));
        Ok(Some(Transition {
            key,
            rule: rule.clone(),
            before,
            inc,
            actions,
            source: in_scope.filter(|_| fires).cloned(),
        }))
    }

    /// Applies transitions of distinct incidents. Each is persisted if its phase
    /// moved, then its alert raised or resolved, in that order; several transitions
    /// run at once, so that their writes share the store's commits. An incident is
    /// remembered in its new state once its own writes are done (one that failed is
    /// decided again on its next evaluation); the first error is returned after the
    /// others are applied.
    async fn apply_all(
        &self,
        engine: &mut Engine,
        transitions: Vec<Transition>,
    ) -> Result<(), Error> {
        let (quiet, moving): (Vec<Transition>, Vec<Transition>) = transitions
            .into_iter()
            .partition(|t| t.inc.phase == t.before && t.actions.is_empty());
        for t in quiet {
            engine.remember(t.key, t.inc);
        }
        let done: Vec<(Transition, Result<(), Error>)> = futures_util::stream::iter(moving)
            .map(|t| async move {
                let r = self.effects(&t).await;
                (t, r)
            })
            .buffer_unordered(APPLY_AT_ONCE)
            .collect()
            .await;
        let mut first = None;
        for (t, r) in done {
            match r {
                Ok(()) => engine.remember(t.key, t.inc),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The writes of one transition: its incident, then its alert.
    async fn effects(&self, t: &Transition) -> Result<(), Error> {
        if t.inc.phase != t.before {
            self.persist(&t.key, &t.inc).await?;
        }
        for action in &t.actions {
            match action {
                Action::Fire { since, at, obs } => {
                    let id = alert::alert_id(&t.rule.spec.id, &t.key.2, *since);
                    let fetched;
                    let source = match &t.source {
                        Some(s) => s,
                        None => {
                            fetched = self
                                .hub
                                .get_entity(&Alerts::system(&t.key.0), &t.key.2)
                                .await?;
                            &fetched
                        }
                    };
                    self.raise(&t.rule, &id, source, obs, *since, *at).await?;
                }
                Action::Resolve { alert, at } => self.resolve_alert(&t.key.0, alert, *at).await?,
            }
        }
        Ok(())
    }

    /// Evaluates a rule over every entity of its scope (and the entities it has
    /// incidents for).
    async fn evaluate_rule(&self, engine: &mut Engine, rule: &Arc<Rule>) -> Result<(), Error> {
        let scope = Alerts::system(&rule.tenant);
        let mut seen = std::collections::HashSet::new();
        let mut after = None;
        // A full pass reads every entity in scope again.
        let key = (rule.tenant.clone(), rule.spec.id.clone());
        engine.timed.remove(&key);
        if rule.timed() {
            engine.partial.insert(key.clone());
        }
        loop {
            let mut query = rule.query.clone();
            query.limit = PAGE;
            query.after = after;
            let page = match self.hub.query(&scope, query).await {
                Ok(p) => p,
                Err(e) if e.kind == ErrorKind::NonExistentTenant => break,
                Err(e) => return Err(e),
            };
            after = page.next(PAGE);
            let mut transitions = Vec::new();
            for e in &page.entities {
                seen.insert(e.id.clone());
                transitions.extend(self.decide(engine, rule, &e.id, Some(e)).await?);
            }
            self.apply_all(engine, transitions).await?;
            if after.is_none() {
                break;
            }
        }
        // Entities with incidents that left the scope (or were deleted).
        let left: Vec<String> = engine
            .incidents
            .keys()
            .filter(|(t, r, e)| t == &rule.tenant && r == &rule.spec.id && !seen.contains(e))
            .map(|k| k.2.clone())
            .collect();
        let found = self.read_entities(&rule.tenant, left.clone()).await?;
        let mut transitions = Vec::new();
        for id in left {
            transitions.extend(self.decide(engine, rule, &id, found.get(&id)).await?);
        }
        self.apply_all(engine, transitions).await?;
        engine.partial.remove(&key);
        Ok(())
    }

    /// The entities of `ids` of a tenant as they are now (those gone are missing),
    /// read [`READ_AT_ONCE`] at a time.
    async fn read_entities(
        &self,
        tenant: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Entity>, Error> {
        let scope = Alerts::system(tenant);
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(READ_AT_ONCE) {
            let query = store::EntityQuery {
                ids: chunk.to_vec(),
                limit: chunk.len(),
                ..Default::default()
            };
            match self.hub.query(&scope, query).await {
                Ok(page) => out.extend(page.entities.into_iter().map(|e| (e.id.clone(), e))),
                Err(e) if e.kind == ErrorKind::NonExistentTenant => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Evaluates every enabled rule over its scope.
    pub async fn evaluate_all(&self) -> Result<(), Error> {
        let mut engine = self.engine.lock().await;
        self.refresh(&mut engine).await?;
        let rules: Vec<Arc<Rule>> = engine
            .rules
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.spec.enabled)
            .cloned()
            .collect();
        for rule in rules {
            self.evaluate_rule(&mut engine, &rule).await?;
        }
        Ok(())
    }

    /// After changes were lost: every rule over its scope, and every firing
    /// incident's alert checked (one may have been resolved by hand meanwhile).
    async fn evaluate_after_gap(&self) -> Result<(), Error> {
        self.gaps.fetch_add(1, Ordering::Relaxed);
        self.evaluate_all().await?;
        let mut engine = self.engine.lock().await;
        self.reconcile(&mut engine).await
    }

    /// How many times changes of the feed were lost, so that every rule was
    /// evaluated again over its scope.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    /// Evaluates the next batch of changed entities waiting in the backlog (or every
    /// rule, when changes were lost); on failure, the batch waits again.
    async fn catch_up(&self, backlog: &std::sync::Mutex<Backlog>) -> Result<(), Error> {
        let Ok(batch) = backlog.lock().map(|mut b| b.take(BATCH)) else {
            return Ok(());
        };
        let r = match &batch {
            Batch::Gap => self.evaluate_after_gap().await,
            Batch::Entities(e) if e.is_empty() => return Ok(()),
            Batch::Entities(e) => self.on_changes(e).await,
        };
        // Whatever was read was read before this.
        let seq = self.hub.change_sequence();
        if let Ok(mut b) = backlog.lock() {
            if r.is_ok() {
                b.evaluated(&batch, seq);
            } else {
                b.restore(batch);
            }
        }
        r
    }

    /// Evaluates changed entities: the rules each change may concern, on the state
    /// their latest change committed, or on the entities as they are now, read
    /// together, when the feed did not carry it.
    async fn on_changes(&self, changed: &[(EntityKey, Dirty)]) -> Result<(), Error> {
        let mut engine = self.engine.lock().await;
        self.refresh(&mut engine).await?;
        let alert_type = ngsi::Context::core().expand(alert::ALERT_TYPE);
        let mut wanted: BTreeMap<&str, Vec<Concerned>> = BTreeMap::new();
        for ((tenant, id), dirty) in changed {
            if dirty.types.contains(&alert_type) {
                // Only this evaluator creates alerts; what people do to them is an
                // update.
                if dirty.updated {
                    self.on_alert_change(&mut engine, tenant, id).await?;
                }
                continue;
            }
            let rules = engine.concerned(tenant, id, dirty);
            if !rules.is_empty() {
                wanted
                    .entry(tenant)
                    .or_default()
                    .push((id, rules, &dirty.latest));
            }
        }
        for (tenant, entities) in wanted {
            let ids = entities
                .iter()
                .filter(|(_, _, latest)| !matches!(latest, Latest::State(..)))
                .map(|(id, _, _)| id.to_string())
                .collect();
            let found = self.read_entities(tenant, ids).await?;
            let mut transitions = Vec::new();
            for (id, rules, latest) in entities {
                let entity = match latest {
                    Latest::State(_, state) => state.as_deref(),
                    Latest::Read | Latest::ReadUnlessLater(_) => found.get(id),
                };
                for rule in rules {
                    transitions.extend(self.decide(&mut engine, &rule, id, entity).await?);
                }
            }
            self.apply_all(&mut engine, transitions).await?;
        }
        Ok(())
    }

    /// An alert resolved by hand latches its incident.
    async fn on_alert_change(
        &self,
        engine: &mut Engine,
        tenant: &str,
        id: &str,
    ) -> Result<(), Error> {
        let key = engine
            .incidents
            .iter()
            .find_map(|(k, inc)| match &inc.phase {
                Phase::Firing { alert, .. } if k.0 == tenant && alert == id => Some(k.clone()),
                _ => None,
            });
        let Some(key) = key else { return Ok(()) };
        let resolved = match self.hub.get_entity(&Alerts::system(tenant), id).await {
            Ok(a) => alert::status_of(&a) == Some(Status::Resolved),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => true,
            Err(e) => return Err(e),
        };
        if resolved {
            self.latch(engine, &key).await?;
        }
        Ok(())
    }

    /// The timer: rules reloaded when changed, timed transitions (for-durations,
    /// keep-firing), and staleness rules swept over their scope every
    /// [`Settings::sweep`].
    pub async fn tick(&self) -> Result<(), Error> {
        let mut engine = self.engine.lock().await;
        self.refresh(&mut engine).await?;
        let now = self.now();
        let due: Vec<Key> = engine
            .incidents
            .iter()
            .filter(|(_, inc)| {
                matches!(
                    inc.phase,
                    Phase::Pending { .. }
                        | Phase::Firing {
                            clearing: Some(_),
                            ..
                        }
                )
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut transitions = Vec::new();
        for key in due {
            let Some(rule) = engine
                .rules
                .get(&key.0)
                .and_then(|m| m.get(&key.1))
                .cloned()
            else {
                continue;
            };
            let Some(mut inc) = engine.incidents.get(&key).cloned() else {
                continue;
            };
            let before = inc.phase.clone();
            let id = |since| alert::alert_id(&rule.spec.id, &key.2, since);
            if let Some(action) = eval::advance(&rule, &mut inc, now, id) {
                transitions.push(Transition {
                    key,
                    rule,
                    before,
                    inc,
                    actions: vec![action],
                    source: None,
                });
            }
        }
        self.apply_all(&mut engine, transitions).await?;
        let sweep = TimeDelta::from_std(self.settings.sweep).unwrap_or(TimeDelta::MAX);
        if engine
            .last_sweep
            .is_none_or(|t| now.signed_duration_since(t) >= sweep || now < t)
        {
            engine.last_sweep = Some(now);
            self.sweep(&mut engine, now).await?;
        }
        Ok(())
    }

    /// Evaluates again the entities of timed rules whose condition has come to hold
    /// since they were last read: a scan of the evaluator's memory, then one read of
    /// such entities.
    async fn sweep(&self, engine: &mut Engine, now: DateTime<Utc>) -> Result<(), Error> {
        let rules: Vec<Arc<Rule>> = engine
            .rules
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.spec.enabled && r.timed())
            .cloned()
            .collect();
        for rule in rules {
            let key = (rule.tenant.clone(), rule.spec.id.clone());
            if engine.partial.contains(&key) {
                self.evaluate_rule(engine, &rule).await?;
                continue;
            }
            let due: Vec<String> = engine
                .timed
                .get(&key)
                .map(|m| {
                    m.iter()
                        .filter(|(_, t)| !t.held && eval::holds(&rule, t.at, now))
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .unwrap_or_default();
            if due.is_empty() {
                continue;
            }
            let found = self.read_entities(&rule.tenant, due.clone()).await?;
            let mut transitions = Vec::new();
            for id in due {
                transitions.extend(self.decide(engine, &rule, &id, found.get(&id)).await?);
            }
            self.apply_all(engine, transitions).await?;
        }
        Ok(())
    }

    /// A (rule, entity)'s incident as stored (what every node sees), if any.
    pub async fn incident(
        &self,
        tenant: &str,
        rule: &str,
        entity: &str,
    ) -> Result<Option<Incident>, Error> {
        let value = self
            .hub
            .records()
            .registry_get(INCIDENTS, tenant, &incident_key(rule, entity))
            .await
            .map_err(store_error)?;
        Ok(value.and_then(|v| serde_json::from_value(v).ok()))
    }
}

/// What a person does to an alert.
#[derive(Debug, Clone)]
pub enum HandAction {
    Acknowledge,
    Assign(String),
    Resolve,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let c = ManualClock::new(t);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now().signed_duration_since(t).num_seconds(), 90);
    }
}
