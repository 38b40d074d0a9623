//! The scorecard service: seeds the plan in a tenant, recomputes the computed KPIs on
//! a schedule and when their inputs change, takes entered values through a four-eyes
//! approval, and judges each KPI against its target ([`standing`]).
//!
//! Every write goes through [`Hub`]: the scorecard's own as `system:scorecard`, a
//! person's (a submission, an approval, a task group's progress) in that person's
//! scope, so the hub's audit log names them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use hub::{Hub, Scope};
use ngsi::render::{Format, RenderOptions, render_entity};
use ngsi::{Context, Entity, Error, ErrorKind};
use serde_json::{Map, Value, json};

use crate::plan::{self, KPIS, Mode};
use crate::sources::{KpiSource, Measurement};

/// The scorecard's name in the audit log (`system:scorecard`).
pub const COMPONENT: &str = "scorecard";
/// Changes of watched types are gathered this long before one recomputation.
const SETTLE: Duration = Duration::from_secs(2);
/// How many queries one KPI of many feeds runs at once.
pub(crate) const QUERIES_AT_ONCE: usize = 4;

/// What a recomputation did to one KPI.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recomputed {
    pub kpi: String,
    pub value: Option<f64>,
    /// Whether a new value was written (an unchanged value adds no history).
    pub written: bool,
    /// How long computing (and writing) it took.
    pub ms: u64,
}

/// The scorecard: the hub, and the sources of the computed KPIs.
pub struct Scorecard {
    hub: Arc<Hub>,
    sources: Vec<Arc<dyn KpiSource>>,
    /// Tenants whose plan is recomputed on schedule.
    tenants: Mutex<BTreeSet<String>>,
    /// One recomputation at a time in this process (the schedule, a change, a
    /// request), so that two never both write the same new value.
    recomputing: tokio::sync::Mutex<()>,
    /// Where reads worth recording (evidence downloads) are audited.
    audit: Option<Arc<hub::auth::Identity>>,
}

impl Scorecard {
    /// The scorecard with the sources the hub's data allows today.
    pub fn new(hub: Arc<Hub>) -> Scorecard {
        let mut sources = crate::sources::plan_sources();
        sources.push(Arc::new(crate::maturity::WardsAtLevel));
        sources.extend(crate::services::service_sources());
        Scorecard {
            hub,
            sources,
            tenants: Mutex::new(BTreeSet::from([String::new()])),
            recomputing: tokio::sync::Mutex::new(()),
            audit: None,
        }
    }

    /// Records the agencies `actor` acts for in the scope's tenant (admins), audited.
    pub async fn set_membership(
        &self,
        scope: &Scope,
        actor: &str,
        agencies: Vec<String>,
    ) -> Result<(), Error> {
        crate::owners::MEMBERS
            .set(
                &self.hub.records(),
                self.audit.as_deref(),
                &scope.caller,
                &scope.tenant,
                actor,
                agencies,
            )
            .await
    }

    /// Records evidence downloads in the audit log of `identity`.
    pub fn with_audit(mut self, identity: Arc<hub::auth::Identity>) -> Scorecard {
        self.audit = Some(identity);
        self
    }

    /// Records `action` on `target` by the scope's caller, for the reads and registry
    /// writes the hub does not audit itself (its entity writes are).
    pub(crate) async fn audit_action(&self, scope: &Scope, action: &str, target: String) {
        if let Some(identity) = &self.audit {
            let mut record = scope.caller.audit(Some(&scope.tenant), vec![target]);
            record.action = format!("{action} ({})", record.action);
            identity.audit(vec![record]).await;
        }
    }

    /// Adds (or replaces) the source of a KPI: services that own other data plug in.
    pub fn with_source(mut self, source: Arc<dyn KpiSource>) -> Scorecard {
        self.sources.retain(|s| s.kpi() != source.kpi());
        self.sources.push(source);
        self
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The slugs of the KPIs that have a source.
    pub fn computed(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.kpi().to_string()).collect()
    }

    fn remember(&self, tenant: &str) {
        if let Ok(mut t) = self.tenants.lock() {
            t.insert(tenant.to_string());
        }
    }

    /// Writes the plan's entities that a tenant lacks (existing ones, edited by their
    /// owners, are kept). Returns how many were created.
    pub async fn seed(&self, tenant: &str) -> Result<usize, Error> {
        let scope = Scope::system(COMPONENT, tenant);
        let ctx = Context::core();
        let reader = ngsi::entity::Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        };
        let batch = plan::entities()
            .into_iter()
            .map(|e| {
                let id = e.get("id").and_then(Value::as_str).unwrap_or_default();
                reader
                    .entity(&Value::Object(e.clone()), None)
                    .map_err(|err| (id.to_string(), err))
            })
            .collect();
        let mut created = 0;
        for (id, outcome) in self.hub.batch_create(&scope, batch).await? {
            match outcome {
                Ok(_) => created += 1,
                Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(Error::new(e.kind, format!("{id}: {}", e.detail)));
                }
            }
        }
        self.remember(tenant);
        Ok(created)
    }

    /// Recomputes every computed KPI of a tenant whose plan is seeded.
    pub async fn recompute(&self, tenant: &str) -> Result<Vec<Recomputed>, Error> {
        let _one = self.recomputing.lock().await;
        let now = Utc::now();
        // One KPI after the other, in the plan's order: a KPI may read what the
        // ones before it wrote (KPIs are entities too).
        let mut out = Vec::new();
        for source in &self.sources {
            if let Some(r) = self.recompute_timed(tenant, source.as_ref(), now).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// [`Engine::recompute_one`], with the time it took.
    async fn recompute_timed(
        &self,
        tenant: &str,
        source: &dyn KpiSource,
        now: DateTime<Utc>,
    ) -> Result<Option<Recomputed>, Error> {
        let started = std::time::Instant::now();
        let r = self.recompute_one(tenant, source, now).await?;
        Ok(r.map(|r| Recomputed {
            ms: started.elapsed().as_millis() as u64,
            ..r
        }))
    }

    /// Recomputes one KPI; None when the tenant has no such KPI entity.
    async fn recompute_one(
        &self,
        tenant: &str,
        source: &dyn KpiSource,
        now: DateTime<Utc>,
    ) -> Result<Option<Recomputed>, Error> {
        let scope = Scope::system(COMPONENT, tenant);
        let id = plan::kpi_id(source.kpi());
        let current = match self.hub.get_entity(&scope, &id).await {
            Ok(e) => e,
            Err(e) if e.kind == ErrorKind::ResourceNotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let measured = source.measure(&self.hub, &scope, now).await?;
        let Some(m) = measured else {
            return Ok(Some(Recomputed {
                kpi: source.kpi().into(),
                value: None,
                written: false,
                ms: 0,
            }));
        };
        let kpi = keyvalues(&current);
        let unchanged = kpi.get("kpiValue").and_then(Value::as_f64) == Some(m.value)
            && stored_inputs(&kpi)
                == m.inputs
                    .iter()
                    .map(|i| (i.name.clone(), i.count))
                    .collect::<Vec<_>>();
        if !unchanged {
            let body = computed_attrs(&kpi, &m, now);
            self.hub.append_attrs(&scope, &id, body, true).await?;
        }
        Ok(Some(Recomputed {
            kpi: source.kpi().into(),
            value: Some(m.value),
            written: !unchanged,
            ms: 0,
        }))
    }

    /// Recomputes the known tenants every `every`, and a tenant's KPIs shortly after a
    /// change of an entity type one of them watches. Stops when the returned task is
    /// aborted.
    pub fn spawn(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let watched: BTreeSet<String> = self
            .sources
            .iter()
            .flat_map(|s| s.watches())
            .map(|t| Context::core().expand(&t))
            .collect();
        let mut changes = self.hub.subscribe_changes();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut dirty: BTreeSet<String> = BTreeSet::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let tenants: Vec<String> = self
                            .tenants
                            .lock()
                            .map(|t| t.iter().cloned().collect())
                            .unwrap_or_default();
                        for t in tenants {
                            self.recompute_logged(&t).await;
                        }
                    }
                    change = changes.recv() => match change {
                        Ok(c) => {
                            // The scorecard's own KPI writes are not inputs.
                            let own = c.id.starts_with("urn:ngsi-ld:KeyPerformanceIndicator:plan-");
                            if !own && c.types.iter().any(|t| watched.contains(t)) {
                                dirty.insert(c.tenant.clone());
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            dirty.extend(self.tenants.lock().map(|t| t.clone()).unwrap_or_default());
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tokio::time::sleep(SETTLE), if !dirty.is_empty() => {
                        for t in std::mem::take(&mut dirty) {
                            self.recompute_logged(&t).await;
                        }
                    }
                }
            }
        })
    }

    async fn recompute_logged(&self, tenant: &str) {
        match self.recompute(tenant).await {
            Ok(r) => {
                let written = r.iter().filter(|r| r.written).count();
                if written > 0 {
                    tracing::info!(tenant, written, "scorecard KPIs recomputed");
                }
            }
            Err(e) => tracing::warn!(tenant, error = %e, "scorecard recomputation failed"),
        }
    }

    /// Every KPI of the plan in a tenant, simplified, with status; `public` leaves out
    /// who entered or approved values.
    pub async fn kpis(&self, scope: &Scope, public: bool) -> Result<Vec<Value>, Error> {
        let (_, entities) = crate::sources::run_query(
            &self.hub,
            scope,
            "type=KeyPerformanceIndicator&idPattern=%5Eurn%3Angsi-ld%3AKeyPerformanceIndicator%3Aplan-",
            true,
        )
        .await?;
        let now = Utc::now();
        let mut out: Vec<Value> = entities
            .iter()
            .map(|e| {
                let mut kpi = keyvalues(e);
                let standing = standing_of(&kpi, now);
                kpi.insert("status".into(), json!(standing.as_str()));
                kpi.insert(
                    "slug".into(),
                    json!(e.id.trim_start_matches("urn:ngsi-ld:KeyPerformanceIndicator:plan-")),
                );
                let observed = observed_at(e, "kpiValue");
                if kpi.get("mode").and_then(Value::as_str) == Some(Mode::Confirmed.as_str()) {
                    kpi.insert(
                        "confirmed".into(),
                        json!(is_confirmed(&kpi, observed.as_deref())),
                    );
                }
                if let Some(at) = observed {
                    kpi.insert("observedAt".into(), json!(at));
                }
                if public {
                    // Who confirmed is not for the public; that it is confirmed is.
                    kpi.remove("confirmation");
                }
                if public && let Some(Value::Object(ev)) = kpi.get_mut("evidence") {
                    ev.remove("enteredBy");
                    ev.remove("approvedBy");
                    // Files are for signed-in readers of the tenant.
                    ev.remove("evidenceFile");
                }
                Value::Object(kpi)
            })
            .collect();
        let order = |v: &Value| {
            let slug = v.get("slug").and_then(Value::as_str).unwrap_or_default();
            KPIS.iter()
                .position(|k| k.slug == slug)
                .unwrap_or(usize::MAX)
        };
        out.sort_by_key(order);
        Ok(out)
    }

    /// Submits an entered value for a KPI (entered or confirmed mode) with evidence.
    pub async fn submit(
        &self,
        scope: &Scope,
        slug: &str,
        submission: Submission,
    ) -> Result<Value, Error> {
        let def = planned(slug)?;
        if def.mode == Mode::Computed {
            return Err(Error::bad_data(format!(
                "{slug} is computed from the hub's data; it takes no entered value"
            )));
        }
        submission.check(def)?;
        // The KPI must exist in this tenant, its owner agency submits its values, and
        // the file named must be one of the tenant's files.
        let kpi = keyvalues(&self.hub.get_entity(scope, &plan::kpi_id(slug)).await?);
        let owner = kpi
            .get("organization")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        crate::owners::require(&self.hub, scope, owner, "entering this KPI's value").await?;
        let file = match &submission.evidence_file {
            Some(key) => Some(crate::evidence::describe(&self.hub, scope, key).await?),
            None => None,
        };
        let id = format!("urn:ngsi-ld:KpiSubmission:{}", uuid::Uuid::new_v4());
        let now = ngsi::entity::format_time(&Utc::now());
        let mut e = json!({
            "id": id,
            "type": "KpiSubmission",
            "refKpi": {"type": "Relationship", "object": plan::kpi_id(slug)},
            "value": plan::prop(submission.value),
            "periodEnd": plan::prop(submission.period_end.to_string()),
            "submittedBy": plan::prop(scope.caller.actor.clone()),
            "submittedAt": plan::prop(now),
            "decision": plan::prop("pending"),
        });
        if let Some(obj) = e.as_object_mut() {
            if let Some(url) = &submission.evidence_url {
                obj.insert("evidenceUrl".into(), plan::prop(url.clone()));
            }
            if let Some(file) = &file {
                obj.insert("evidenceFile".into(), plan::prop(file.clone()));
            }
            if let Some(note) = &submission.note {
                obj.insert("note".into(), plan::prop(note.clone()));
            }
            if let Some(rank) = submission.rank {
                obj.insert("rank".into(), plan::prop(rank));
            }
            if let Some(groups) = &submission.group_scores {
                obj.insert("groupScores".into(), plan::prop(json!(groups)));
            }
        }
        let ctx = Context::core();
        let entity = ngsi::entity::Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        }
        .entity(&e, None)?;
        self.hub.create_entity(scope, entity).await?;
        Ok(e)
    }

    /// Approves or rejects a pending submission. The approver is an admin other than
    /// the submitter (four eyes); an approved value becomes the KPI's value at the end
    /// of its period, with the submission as its evidence.
    pub async fn decide(
        &self,
        scope: &Scope,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Value, Error> {
        if !id.starts_with("urn:ngsi-ld:KpiSubmission:") {
            return Err(Error::not_found(format!("no submission {id}")));
        }
        if !scope.caller.is_admin() {
            return Err(Error::forbidden("submissions are decided by admins"));
        }
        let s = keyvalues(&self.hub.get_entity(scope, id).await?);
        if s.get("decision").and_then(Value::as_str) != Some("pending") {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "this submission is already decided",
            ));
        }
        let submitter = s.get("submittedBy").and_then(Value::as_str);
        if submitter == Some(scope.caller.actor.as_str()) {
            return Err(Error::forbidden(
                "four eyes: a submission is decided by someone other than its submitter",
            ));
        }
        let now = Utc::now();
        let mut patch = Map::new();
        patch.insert(
            "decision".into(),
            plan::prop(if approve { "approved" } else { "rejected" }),
        );
        patch.insert("decidedBy".into(), plan::prop(scope.caller.actor.clone()));
        patch.insert(
            "decidedAt".into(),
            plan::prop(ngsi::entity::format_time(&now)),
        );
        if let Some(r) = reason {
            patch.insert("reason".into(), plan::prop(r));
        }
        self.hub.append_attrs(scope, id, patch, true).await?;
        if approve {
            let kpi_id = s
                .get("refKpi")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let value = s.get("value").and_then(Value::as_f64).unwrap_or_default();
            let period_end = s
                .get("periodEnd")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .unwrap_or_else(|| now.date_naive());
            let at = Utc.from_utc_datetime(&period_end.and_hms_opt(23, 59, 59).unwrap_or_default());
            let mut evidence = json!({
                "submission": id,
                "url": s.get("evidenceUrl"),
                "enteredBy": submitter,
                "approvedBy": scope.caller.actor,
                "approvedAt": ngsi::entity::format_time(&now),
            });
            if let Some(obj) = evidence.as_object_mut() {
                for key in ["rank", "groupScores", "evidenceFile"] {
                    if let Some(v) = s.get(key) {
                        obj.insert(key.into(), v.clone());
                    }
                }
            }
            let kpi = keyvalues(&self.hub.get_entity(scope, &kpi_id).await?);
            let mut body = Map::new();
            body.insert(
                "kpiValue".into(),
                value_attr(value, &at, kpi.get("unitCode").and_then(Value::as_str)),
            );
            body.insert("evidence".into(), plan::prop(evidence));
            body.insert(
                "calculationPeriod".into(),
                plan::prop(json!({"from": format!("{}-01-01", period_end.year()), "to": period_end.to_string()})),
            );
            self.hub.append_attrs(scope, &kpi_id, body, true).await?;
        }
        Ok(Value::Object(keyvalues(
            &self.hub.get_entity(scope, id).await?,
        )))
    }

    /// An officer confirms the value a confirmed-mode KPI has now: the value they
    /// looked at must still be the KPI's (409 when it has changed since). The sign-off
    /// is written in the officer's scope, so the audit log names them; a later value
    /// is unconfirmed until confirmed again.
    pub async fn confirm(
        &self,
        scope: &Scope,
        slug: &str,
        confirmation: Confirmation,
    ) -> Result<Value, Error> {
        let def = planned(slug)?;
        if def.mode != Mode::Confirmed {
            return Err(Error::bad_data(format!(
                "{slug} is {}: only KPIs in confirmed mode are confirmed",
                def.mode.as_str()
            )));
        }
        if confirmation
            .note
            .as_ref()
            .is_some_and(|n| n.len() > MAX_TEXT)
        {
            return Err(Error::bad_data(format!(
                "note is longer than {MAX_TEXT} bytes"
            )));
        }
        let id = plan::kpi_id(slug);
        let entity = self.hub.get_entity(scope, &id).await?;
        let kpi = keyvalues(&entity);
        let (Some(value), Some(observed)) = (
            kpi.get("kpiValue").and_then(Value::as_f64),
            observed_at(&entity, "kpiValue"),
        ) else {
            return Err(Error::bad_data(format!(
                "{slug} has no value to confirm yet"
            )));
        };
        if value != confirmation.value {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{slug} is now {value}, not {}: look at it again before confirming",
                    confirmation.value
                ),
            ));
        }
        let mut signed = json!({
            "value": value,
            "valueObservedAt": observed,
            "confirmedBy": scope.caller.actor,
            "confirmedAt": ngsi::entity::format_time(&Utc::now()),
        });
        if let (Some(note), Some(obj)) = (confirmation.note, signed.as_object_mut()) {
            obj.insert("note".into(), json!(note));
        }
        let mut patch = Map::new();
        patch.insert("confirmation".into(), plan::prop(signed));
        self.hub.append_attrs(scope, &id, patch, true).await?;
        self.kpis(scope, false)
            .await?
            .into_iter()
            .find(|k| k.get("slug").and_then(Value::as_str) == Some(slug))
            .ok_or_else(|| Error::not_found(format!("no KPI {slug:?}")))
    }

    /// Updates a task group's status, progress, deadline, owner, with a note and
    /// evidence links appended.
    pub async fn update_task_group(
        &self,
        scope: &Scope,
        number: u8,
        update: TaskUpdate,
    ) -> Result<Value, Error> {
        let id = plan::task_group_id(number);
        let current = keyvalues(&self.hub.get_entity(scope, &id).await?);
        update.check()?;
        let owner = current.get("owner").and_then(Value::as_str).unwrap_or("");
        crate::owners::require(&self.hub, scope, owner, "editing a task group").await?;
        if update.owner.as_deref().is_some_and(|o| o != owner) && !scope.caller.is_admin() {
            return Err(Error::forbidden(
                "a task group's owner is changed by admins",
            ));
        }
        let mut patch = Map::new();
        if let Some(s) = &update.status {
            patch.insert("taskStatus".into(), plan::prop(s.clone()));
        }
        if let Some(p) = update.progress {
            patch.insert("progress".into(), plan::prop(p));
        }
        if let Some(d) = update.deadline {
            patch.insert("deadline".into(), plan::prop(d.to_string()));
        }
        if let Some(o) = &update.owner {
            patch.insert("owner".into(), plan::prop(o.clone()));
        }
        let now = ngsi::entity::format_time(&Utc::now());
        if let Some(note) = &update.note {
            let mut notes = current
                .get("progressNotes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            notes.push(json!({"at": now, "by": scope.caller.actor, "text": note}));
            let keep = notes.len().saturating_sub(MAX_NOTES);
            patch.insert(
                "progressNotes".into(),
                plan::prop(Value::Array(notes.split_off(keep))),
            );
        }
        if !update.evidence.is_empty() {
            let mut ev = current
                .get("evidence")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            ev.extend(
                update
                    .evidence
                    .iter()
                    .map(|u| json!({"url": u, "at": now, "by": scope.caller.actor})),
            );
            let keep = ev.len().saturating_sub(MAX_NOTES);
            patch.insert(
                "evidence".into(),
                plan::prop(Value::Array(ev.split_off(keep))),
            );
        }
        if patch.is_empty() {
            return Err(Error::bad_data("nothing to change"));
        }
        self.hub.append_attrs(scope, &id, patch, true).await?;
        Ok(Value::Object(keyvalues(
            &self.hub.get_entity(scope, &id).await?,
        )))
    }
}

/// Notes and evidence links kept per task group.
const MAX_NOTES: usize = 200;
const MAX_TEXT: usize = 2_000;

/// A value entered for a KPI.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Submission {
    pub value: f64,
    /// The last day of the period the value measures (31/12 for a yearly figure).
    pub period_end: NaiveDate,
    /// A link to the evidence (the statistics bulletin, the portal's export).
    #[serde(default)]
    pub evidence_url: Option<String>,
    /// An uploaded evidence file (its id, from `POST /scorecard/v1/evidence`).
    #[serde(default)]
    pub evidence_file: Option<String>,
    pub note: Option<String>,
    /// The rank, for the DTI.
    pub rank: Option<u32>,
    /// The six group scores of a Decision 766 total (CKMB, TDGQ, CLGQ, TTTT, MDSH,
    /// MDHL), for `egov-766` only; they add up to the value.
    pub group_scores: Option<std::collections::BTreeMap<String, f64>>,
}

impl Submission {
    fn check(&self, def: &plan::KpiDef) -> Result<(), Error> {
        if !self.value.is_finite() || self.value < 0.0 {
            return Err(Error::bad_data("value must be a number of 0 or more"));
        }
        if let Some(groups) = &self.group_scores {
            crate::egov::check_group_scores(def.slug, groups, self.value)?;
        }
        if let Some(max) = def.max
            && self.value > max
        {
            return Err(Error::bad_data(format!("value must be at most {max}")));
        }
        match (&self.evidence_url, &self.evidence_file) {
            (None, None) => {
                return Err(Error::bad_data(
                    "evidence is required: evidenceUrl (a link), evidenceFile (an uploaded file) or both",
                ));
            }
            (Some(u), _) => check_url(u)?,
            (None, Some(_)) => {}
        }
        if self.note.as_ref().is_some_and(|n| n.len() > MAX_TEXT) {
            return Err(Error::bad_data(format!(
                "note is longer than {MAX_TEXT} bytes"
            )));
        }
        if !(2000..=2100).contains(&self.period_end.year()) {
            return Err(Error::bad_data(
                "periodEnd must be a date from 2000 to 2100",
            ));
        }
        Ok(())
    }
}

/// Evidence is a link: http(s), of bounded length.
pub(crate) fn check_url(u: &str) -> Result<(), Error> {
    let ok = u.len() <= MAX_TEXT
        && url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
    if !ok {
        return Err(Error::bad_data(format!(
            "evidence must be an http(s) link of at most {MAX_TEXT} bytes"
        )));
    }
    Ok(())
}

/// An officer's confirmation of a computed value.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The value the officer confirms, as they saw it.
    pub value: f64,
    pub note: Option<String>,
}

/// Whether a KPI's current value (observed at `observed`) is the one last confirmed.
fn is_confirmed(kpi: &Map<String, Value>, observed: Option<&str>) -> bool {
    let Some(c) = kpi.get("confirmation") else {
        return false;
    };
    observed.is_some()
        && c.get("value").and_then(Value::as_f64) == kpi.get("kpiValue").and_then(Value::as_f64)
        && c.get("valueObservedAt").and_then(Value::as_str) == observed
}

/// A change of a task group by its owner.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskUpdate {
    pub status: Option<String>,
    pub progress: Option<u8>,
    pub deadline: Option<NaiveDate>,
    pub owner: Option<String>,
    pub note: Option<String>,
    #[serde(default)]
    pub evidence: Vec<String>,
}

pub const TASK_STATUSES: [&str; 4] = ["notStarted", "inProgress", "done", "blocked"];

impl TaskUpdate {
    fn check(&self) -> Result<(), Error> {
        if let Some(s) = &self.status
            && !TASK_STATUSES.contains(&s.as_str())
        {
            return Err(Error::bad_data(format!(
                "status must be one of {}",
                TASK_STATUSES.join(", ")
            )));
        }
        if self.progress.is_some_and(|p| p > 100) {
            return Err(Error::bad_data("progress is a percentage from 0 to 100"));
        }
        for t in [&self.owner, &self.note].into_iter().flatten() {
            if t.len() > MAX_TEXT || t.trim().is_empty() {
                return Err(Error::bad_data(format!(
                    "owner and note are 1 to {MAX_TEXT} bytes"
                )));
            }
        }
        if self.evidence.len() > 20 {
            return Err(Error::bad_data("at most 20 evidence links at once"));
        }
        self.evidence.iter().try_for_each(|u| check_url(u))
    }
}

/// How a KPI stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    OnTrack,
    AtRisk,
    OffTrack,
    NoData,
    NoTarget,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::OnTrack => "onTrack",
            Standing::AtRisk => "atRisk",
            Standing::OffTrack => "offTrack",
            Standing::NoData => "noData",
            Standing::NoTarget => "noTarget",
        }
    }

    /// The Smart Data Models `currentStanding` of it.
    pub fn current_standing(self, met: bool) -> Option<&'static str> {
        match self {
            Standing::OnTrack if met => Some("veryGood"),
            Standing::OnTrack => Some("good"),
            Standing::AtRisk => Some("fair"),
            Standing::OffTrack => Some("bad"),
            Standing::NoData | Standing::NoTarget => None,
        }
    }
}

/// The share of a target's distance within which a KPI is "at risk" rather than "off
/// track".
pub const AT_RISK_TOLERANCE: f64 = 0.10;

/// The plan's KPI of a slug (404 when the plan has none).
fn planned(slug: &str) -> Result<&'static plan::KpiDef, Error> {
    plan::kpi(slug).ok_or_else(|| Error::not_found(format!("no KPI {slug:?} in the plan")))
}

/// Judges a value against the targets (year → value): the target of the first year
/// not yet over (or the last, when all are over). Before that deadline, and given a
/// baseline (value, date), the value is expected on the straight line from the
/// baseline to the target; otherwise the target itself is expected. At or beyond the
/// expected value: on track; short of it by at most 10 % of the target (of the distance
/// from the baseline, when there is one): at risk; further: off track.
pub fn standing(
    value: Option<f64>,
    targets: &[(u16, f64)],
    baseline: Option<(f64, NaiveDate)>,
    increase: bool,
    today: NaiveDate,
) -> (Standing, bool) {
    let Some(v) = value else {
        return (Standing::NoData, false);
    };
    let mut sorted = targets.to_vec();
    sorted.sort_by_key(|t| t.0);
    let deadline = |y: u16| NaiveDate::from_ymd_opt(i32::from(y), 12, 31).unwrap_or(today);
    let Some(&(year, target)) = sorted
        .iter()
        .find(|(y, _)| deadline(*y) >= today)
        .or(sorted.last())
    else {
        return (Standing::NoTarget, false);
    };
    let due = deadline(year);
    let (expected, span) = match baseline {
        Some((b, since)) if since < due && today < due => {
            let done = (today - since).num_days().max(0) as f64 / (due - since).num_days() as f64;
            (b + (target - b) * done.min(1.0), (target - b).abs())
        }
        Some((b, _)) => (target, (target - b).abs()),
        None => (target, target.abs()),
    };
    let sign = if increase { 1.0 } else { -1.0 };
    let gap = (v - expected) * sign;
    let met = (v - target) * sign >= 0.0;
    let s = if gap >= -1e-9 {
        Standing::OnTrack
    } else if -gap <= AT_RISK_TOLERANCE * span.max(1e-9) {
        Standing::AtRisk
    } else {
        Standing::OffTrack
    };
    (s, met)
}

/// The standing of a KPI in key-values form.
fn standing_of(kpi: &Map<String, Value>, now: DateTime<Utc>) -> Standing {
    let (targets, baseline, increase) = judged_by(kpi);
    standing(
        kpi.get("kpiValue").and_then(Value::as_f64),
        &targets,
        baseline,
        increase,
        now.date_naive(),
    )
    .0
}

/// What a KPI is judged by: its targets, baseline, and whether higher is better.
type Yardstick = (Vec<(u16, f64)>, Option<(f64, NaiveDate)>, bool);

fn judged_by(kpi: &Map<String, Value>) -> Yardstick {
    let targets: Vec<(u16, f64)> = kpi
        .get("target")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .filter_map(|(y, v)| Some((y.parse().ok()?, v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let baseline = kpi.get("baseline").and_then(|b| {
        Some((
            b.get("value")?.as_f64()?,
            NaiveDate::parse_from_str(b.get("date")?.as_str()?, "%Y-%m-%d").ok()?,
        ))
    });
    let increase = kpi.get("direction").and_then(Value::as_str) != Some("decrease");
    (targets, baseline, increase)
}

/// The (name, count) pairs of a KPI's stored evidence: a recomputation whose value
/// and counts are the same adds nothing (its queries may differ by their time window).
fn stored_inputs(kpi: &Map<String, Value>) -> Vec<(String, u64)> {
    kpi.get("evidence")
        .and_then(|e| e.get("inputs"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    Some((
                        i.get("name")?.as_str()?.to_string(),
                        i.get("count")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn value_attr(value: f64, at: &DateTime<Utc>, unit: Option<&str>) -> Value {
    let mut v =
        json!({"type": "Property", "value": value, "observedAt": ngsi::entity::format_time(at)});
    if let (Some(u), Some(obj)) = (unit, v.as_object_mut()) {
        obj.insert("unitCode".into(), json!(u));
    }
    v
}

/// The attributes a computation writes: the value (its history is the KPI's time
/// series), the evidence, the period, the standing.
fn computed_attrs(
    kpi: &Map<String, Value>,
    m: &Measurement,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut body = Map::new();
    let stamp = ngsi::entity::format_time(&now);
    body.insert(
        "kpiValue".into(),
        value_attr(m.value, &now, kpi.get("unitCode").and_then(Value::as_str)),
    );
    let inputs: Vec<Value> = m
        .inputs
        .iter()
        .map(|i| {
            let mut v =
                json!({"name": i.name, "query": i.query, "count": i.count, "href": i.href()});
            if let Some(obj) = v.as_object_mut() {
                if i.api != crate::sources::Api::Entities {
                    obj.insert("api".into(), json!(i.api));
                }
                if let Some(rule) = &i.rule {
                    obj.insert("rule".into(), json!(rule));
                }
            }
            v
        })
        .collect();
    body.insert(
        "evidence".into(),
        plan::prop(json!({"formula": m.formula, "inputs": inputs, "computedAt": stamp})),
    );
    let day = now.date_naive().to_string();
    body.insert(
        "calculationPeriod".into(),
        plan::prop(json!({"from": day, "to": day})),
    );
    let (targets, baseline, increase) = judged_by(kpi);
    let (s, met) = standing(
        Some(m.value),
        &targets,
        baseline,
        increase,
        now.date_naive(),
    );
    body.insert("status".into(), plan::prop(s.as_str()));
    if let Some(cs) = s.current_standing(met) {
        body.insert("currentStanding".into(), plan::prop(cs));
    }
    body
}

/// An entity in key-values form under the core @context.
pub fn keyvalues(e: &Entity) -> Map<String, Value> {
    let ctx = Context::core();
    render_entity(
        e,
        &RenderOptions {
            format: Format::KeyValues,
            lang: Some(vec!["*".into()]),
            ..RenderOptions::new(&ctx)
        },
    )
}

fn observed_at(e: &Entity, attr: &str) -> Option<String> {
    let name = Context::core().expand(attr);
    e.attrs
        .get(&name)?
        .first()?
        .observed_at
        .as_ref()
        .map(ngsi::entity::format_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn standing_follows_the_documented_rules() {
        use Standing::{AtRisk, NoData, NoTarget, OffTrack, OnTrack};
        let targets = [(2025, 20.0), (2030, 30.0)];
        let today = day("2026-12-06");
        // With a baseline of 10 at the end of 2025, the line to 30 at the end of 2030
        // expects about 14 at the end of 2026.
        let base = Some((10.0, day("2025-12-31")));
        // (value, targets, baseline, higher is better, standing, judged by the target
        // itself when it says).
        type Case<'a> = (
            Option<f64>,
            &'a [(u16, f64)],
            Option<(f64, NaiveDate)>,
            bool,
            Standing,
            Option<bool>,
        );
        let cases: &[Case] = &[
            // Judged against 2030 (2025 is over): without a baseline the target itself.
            (Some(30.0), &targets, None, true, OnTrack, Some(true)),
            (Some(27.5), &targets, None, true, AtRisk, None),
            (Some(20.0), &targets, None, true, OffTrack, None),
            (Some(14.5), &targets, base, true, OnTrack, Some(false)),
            (Some(13.0), &targets, base, true, AtRisk, None),
            (Some(11.0), &targets, base, true, OffTrack, None),
            // Only a 2025 target, which is over: judged against it.
            (Some(6.0), &[(2025, 7.0)], None, true, OffTrack, None),
            // Lower is better.
            (Some(4.0), &[(2030, 5.0)], None, false, OnTrack, None),
            (None, &targets, None, true, NoData, None),
            (Some(1.0), &[], None, true, NoTarget, None),
        ];
        for (value, targets, baseline, increase, expected, by_target) in cases {
            let (got, judged) = standing(*value, targets, *baseline, *increase, today);
            assert_eq!(
                got, *expected,
                "{value:?} against {targets:?}, {baseline:?}"
            );
            if let Some(by_target) = by_target {
                assert_eq!(judged, *by_target, "{value:?} against {targets:?}");
            }
        }
    }
}
