//! The reports service: intake, reading, the workflow, the reporter's data and the
//! statistics, over the in-process [`hub::Hub`] (entities) and its registry records
//! (the personal data, tokens, rights and holidays).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use hub::auth::{Caller, Identity, Role};
use hub::grants::AgencyGrant;
use hub::{Hub, Scope};
use ngsi::query::ast::TypeExpr;
use ngsi::{Context, Error, ErrorKind};
use serde_json::{Value, json};
use store::{EntityQuery, RegistryPut, RegistryWrite};

use crate::calendar::{Calendar, Holiday};
use crate::catalog::{CalendarCache, CategoryCache, Lookup};
use crate::facts::{FactCache, FactTable, each_report};
use crate::model::{
    self, Category, Point, Report, SERVICE_REQUEST, SERVICE_TYPE, Stage, category_id, report_id,
};
use crate::open311;
use crate::places::{Outside, Places};
use crate::private::{
    ACCESS, CONSENT_VERSION, Contact, ContactRecord, HOLIDAYS, PRIVATE, contact_key, is_token,
    link_key, secret, token_key,
};
use crate::stats::{self, By, Fact, Figures, Tested};
use crate::workflow::{self, Action};

/// The jurisdiction of the province (Open311 `jurisdiction_id`).
pub const JURISDICTION: &str = "quangtri";
/// The tenant reports live in.
pub const TENANT: &str = "";
const PAGE: usize = 1_000;
/// Reports of a page read by one query: a page of 1,000 is read in four parts at once.
const READ_PART: usize = 250;
const MAX_DESCRIPTION: usize = 4_000;
const MAX_MEDIA: usize = 5;
const MAX_ATTRIBUTES: usize = 40;

/// A clock (tests control it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// Contact data is erased this long after a report closes (24 months).
    pub contact_retention: TimeDelta,
    /// Reports per client address per hour, and per contact (email or phone), from
    /// callers other than staff (0: no limit).
    pub per_address_per_hour: u32,
    pub per_contact_per_hour: u32,
    /// The public base URL of this server, for `media_url` and discovery links.
    pub base_url: String,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            contact_retention: TimeDelta::days(730),
            per_address_per_hour: 30,
            per_contact_per_hour: 10,
            base_url: String::new(),
        }
    }
}

/// A report as submitted (already parsed from its wire form).
#[derive(Debug, Clone, Default)]
pub struct NewReport {
    pub jurisdiction_id: Option<String>,
    pub service_code: String,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub address_string: Option<String>,
    pub address_id: Option<String>,
    pub description: String,
    pub media_urls: Vec<String>,
    /// `attribute[CODE]` values in the order sent (repeated codes kept).
    pub attributes: Vec<(String, String)>,
    pub contact: Contact,
    /// The consent version the client showed, if any.
    pub consent: Option<String>,
    /// A field people never fill and robots do.
    pub honeypot: bool,
    /// Photos sent with the report, already checked and re-encoded.
    pub photos: Vec<crate::media::Photo>,
}

/// What a submission returns.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub service_request_id: String,
    /// The reporter's tracking token (shown once).
    pub token: String,
    pub service_notice: String,
    pub report: Report,
}

/// Filters of a list of reports.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub ids: Vec<String>,
    pub service_codes: Vec<String>,
    pub status: Option<String>,
    pub stages: Vec<Stage>,
    pub agency: Option<String>,
    pub commune: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// (min lon, min lat, max lon, max lat)
    pub bbox: Option<[f64; 4]>,
    pub overdue: Option<bool>,
    pub urgent: Option<bool>,
    pub limit: usize,
}

impl ReportFilter {
    /// Whether a report (what its fact keeps for the filters) passes every filter, at
    /// `now` for deadlines. The tests of values kept inline come first: a list scans
    /// every fact, and most fail the box or the period.
    fn admits(&self, r: &Tested, now: DateTime<Utc>) -> bool {
        self.bbox.is_none_or(|[x0, y0, x1, y1]| {
            r.location
                .is_some_and(|(lon, lat)| lon >= x0 && lon <= x1 && lat >= y0 && lat <= y1)
        }) && self.start.is_none_or(|s| r.requested >= s)
            && self.end.is_none_or(|e| r.requested <= e)
            && self.urgent.is_none_or(|u| r.urgent == u)
            && (self.stages.is_empty() || self.stages.contains(&r.stage))
            && self.overdue.is_none_or(|o| r.is_overdue(now) == o)
            && self.status.as_ref().is_none_or(|s| &r.status == s)
            && (self.service_codes.is_empty() || self.service_codes.contains(&r.service_code))
            && self.agency.as_ref().is_none_or(|a| &r.agency == a)
            && self
                .commune
                .as_ref()
                .is_none_or(|c| r.commune_code.as_ref() == Some(c))
    }
}

/// A page of a list of reports, newest first: the reports, how many match in all,
/// and where the next page starts when there is one.
#[derive(Debug, Clone)]
pub struct ReportPage {
    pub reports: Vec<Report>,
    pub total: usize,
    pub next: Option<PageMark>,
}

/// The facts of the page of reports matching `f` after `after`, newest first (ties by
/// id, the newer id first), with how many match in all and where the page ends when
/// more follow. A box looks only at the facts of the grid cells it touches.
fn choose<'a>(
    facts: &'a FactTable,
    f: &ReportFilter,
    after: Option<&PageMark>,
    now: DateTime<Utc>,
) -> (Vec<&'a Fact>, usize, Option<PageMark>) {
    let candidates = match f.bbox {
        Some(bbox) => facts.near(bbox),
        None => Box::new(facts.values()),
    };
    let mut chosen: Vec<&Fact> = candidates.filter(|x| f.admits(&x.tested, now)).collect();
    let total = chosen.len();
    if let Some(mark) = after {
        chosen.retain(|x| {
            (x.tested.requested, x.service_request_id.as_str()) < (mark.at, mark.id.as_str())
        });
    }
    let newest_first = |a: &&Fact, b: &&Fact| {
        (b.tested.requested, &b.service_request_id)
            .cmp(&(a.tested.requested, &a.service_request_id))
    };
    let more = f.limit > 0 && chosen.len() > f.limit;
    if more {
        chosen.select_nth_unstable_by(f.limit, newest_first);
        chosen.truncate(f.limit);
    }
    chosen.sort_unstable_by(newest_first);
    let next = chosen.last().filter(|_| more).map(|x| PageMark {
        at: x.tested.requested,
        id: x.service_request_id.clone(),
    });
    (chosen, total, next)
}

/// Where a page ends: its last report's time and id. Reports are listed newest
/// first and, at the same time, by id, so the next page starts strictly after the
/// mark and neither skips nor repeats a report when new ones arrive meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMark {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl PageMark {
    fn of(r: &Report) -> PageMark {
        PageMark {
            at: r.requested_datetime,
            id: r.service_request_id.clone(),
        }
    }

    /// `<time, RFC 3339 with nanoseconds>~<id>`: what the `after` parameter takes.
    pub fn encode(&self) -> String {
        format!(
            "{}~{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.id
        )
    }

    pub fn parse(s: &str) -> Option<PageMark> {
        let (at, id) = s.split_once('~')?;
        if !model::valid_code(id) {
            return None;
        }
        let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
        Some(PageMark {
            at,
            id: id.to_string(),
        })
    }

    /// Whether `r` comes after the mark in the list's order.
    fn precedes(&self, r: &Report) -> bool {
        (r.requested_datetime, r.service_request_id.as_str()) < (self.at, self.id.as_str())
    }
}

/// The service.
pub struct Reports {
    hub: Arc<Hub>,
    identity: Arc<Identity>,
    pub config: ReportsConfig,
    clock: Clock,
    places: Arc<Places>,
    limits: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
    facts: Arc<FactCache>,
    kept_categories: CategoryCache,
    kept_calendar: CalendarCache,
}

fn store_err(e: store::StoreError) -> Error {
    match e {
        store::StoreError::Rejected(e) => e,
        other => {
            tracing::error!(error = %other, "reports: store fault");
            Error::new(
                ErrorKind::ServiceUnavailable,
                "the store is unavailable, retry later",
            )
        }
    }
}

/// The "see reporter" right: actor → the agencies (`agency_responsible` values) whose
/// reporters they may see, or `*` for all.
const REPORTER_ACCESS: AgencyGrant = AgencyGrant {
    collection: ACCESS,
    audit_action: "grant see-reporter",
    admins_only: "rights are granted by admins",
    check: |actor, agencies| {
        if actor.is_empty() || actor.len() > 200 || agencies.len() > 100 {
            return Err(Error::bad_data(
                "an actor (user:NAME or key:ID) and at most 100 agencies",
            ));
        }
        Ok(())
    },
    store_error: store_err,
};

/// The attributes of a report that no query compares: the service's filters compare
/// the status, stage, category, agency, commune and time of request, and the
/// scorecard's the stage, times of request and update, and rating. Their values stay
/// out of the store's value index, so that a report's writes add few rows to it
/// (`docs/storage.md`); a `q` on them still answers, from the entities.
pub const UNCOMPARED_ATTRIBUTES: &[&str] = &[
    // What a report has from its receipt.
    "service_request_id",
    "service_name",
    "description",
    "service_notice",
    "expected_datetime",
    "jurisdiction_id",
    "urgent",
    "address_string",
    "address_id",
    "media_url",
    "communeName",
    "refAdministrativeArea",
    "refServiceType",
    "dueAcceptAt",
    "hasContact",
    "supporters",
    // What the workflow adds.
    "status_notes",
    "assignedOfficer",
    "resolution",
    "rejectionReason",
    "mergedInto",
    "firstResponseAt",
    "resolvedAt",
    "closedAt",
];

impl Reports {
    pub fn new(
        hub: Arc<Hub>,
        identity: Arc<Identity>,
        places: Arc<Places>,
        config: ReportsConfig,
    ) -> Reports {
        let facts = FactCache::new(hub.clone(), Self::reader());
        let categories = CategoryCache::new(&hub, TENANT);
        Reports {
            hub,
            identity,
            config,
            clock: Arc::new(Utc::now),
            places,
            limits: Mutex::new(HashMap::new()),
            facts,
            kept_categories: categories,
            kept_calendar: CalendarCache::default(),
        }
    }

    /// Leaves [`UNCOMPARED_ATTRIBUTES`] out of the store's value index (once per
    /// database; again is a no-op). Called before the service takes reports.
    pub async fn leave_uncompared_out_of_the_index(&self) -> Result<(), Error> {
        let ctx = Context::core();
        let names: Vec<String> = UNCOMPARED_ATTRIBUTES
            .iter()
            .map(|n| ctx.expand(n))
            .collect();
        self.hub.leave_out_of_value_index(&names).await
    }

    /// Starts reading the reports' facts (and following the change feed) in the
    /// background, so that the first list or statistics find them known.
    pub fn read_facts_in_background(&self) {
        let facts = self.facts.clone();
        tokio::spawn(async move {
            if let Err(e) = facts.current().await {
                tracing::warn!(error = %e, "reports: the facts could not be read");
            }
        });
    }

    /// The same service reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Reports {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    pub fn places(&self) -> &Places {
        &self.places
    }

    /// The service writing for a caller: as itself, with the caller's request (id,
    /// address) in the audit log.
    fn writer(&self, caller: &Caller) -> Scope {
        let mut c = Caller::system("reports");
        c.request = caller.request.clone();
        Scope::new(TENANT, Context::core(), Arc::new(c))
    }

    fn reader() -> Scope {
        Scope::system("reports", TENANT)
    }

    // ---- categories

    pub async fn categories(&self) -> Result<Vec<Category>, Error> {
        let mut out: Vec<Category> = Vec::new();
        for e in self.all_of(SERVICE_TYPE).await? {
            match model::from_entity::<Category>(&e) {
                Ok(c) => out.push(c),
                Err(err) => tracing::warn!(error = %err, "an unreadable category is left out"),
            }
        }
        out.sort_by(|a, b| (&a.group, &a.service_code).cmp(&(&b.group, &b.service_code)));
        Ok(out)
    }

    /// The category of a code, as last read (`catalog`: read again after a change).
    pub async fn category(&self, code: &str) -> Result<Option<Category>, Error> {
        if !model::valid_code(code) {
            return Ok(None);
        }
        let generation = match self.kept_categories.lookup(code) {
            Lookup::Kept(c) => return Ok(c),
            Lookup::Missing(generation) => generation,
        };
        let found = match self
            .hub
            .get_entity(&Self::reader(), &category_id(code))
            .await
        {
            Ok(e) => Some(model::from_entity(&e)?),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => None,
            Err(e) => return Err(e),
        };
        self.kept_categories.keep(code, found.clone(), generation);
        Ok(found)
    }

    /// Creates or replaces categories (the caller needs write access).
    pub async fn put_categories(&self, scope: &Scope, cats: Vec<Category>) -> Result<(), Error> {
        let mut batch = Vec::new();
        for mut c in cats {
            c.check()?;
            batch.push(Ok(model::entity(
                &category_id(&c.service_code),
                SERVICE_TYPE,
                &c,
            )?));
        }
        for (id, r) in self.hub.batch_upsert(scope, batch, false).await? {
            r.map_err(|e| Error::new(e.kind, format!("{id}: {}", e.detail)))?;
        }
        Ok(())
    }

    async fn all_of(&self, kind: &str) -> Result<Vec<ngsi::Entity>, Error> {
        let expr = TypeExpr::Type(Context::core().expand(kind));
        self.query_all(EntityQuery {
            types: Some(expr),
            ..Default::default()
        })
        .await
    }

    /// Every entity a query matches, page by page.
    async fn query_all(&self, query: EntityQuery) -> Result<Vec<ngsi::Entity>, Error> {
        self.hub.query_all(&Self::reader(), query, PAGE).await
    }

    // ---- intake

    /// Counts a submission of a caller other than staff against its address (or its
    /// key). The door does not count Open311 posts (their key may be in the form), so
    /// this limit is what bounds anonymous submissions and updates.
    fn limit_address(&self, caller: &Caller) -> Result<(), Error> {
        let who = if caller.is_anonymous() {
            caller.request.client.clone().unwrap_or_default()
        } else {
            caller.actor.clone()
        };
        self.limited("address", &who, self.config.per_address_per_hour)
    }

    fn limited(&self, what: &str, who: &str, limit: u32) -> Result<(), Error> {
        if limit == 0 {
            return Ok(());
        }
        let now = self.now();
        let Ok(mut m) = self.limits.lock() else {
            return Ok(());
        };
        if m.len() > 100_000 {
            m.retain(|_, (start, _)| now - *start < TimeDelta::hours(1));
        }
        let e = m.entry(format!("{what}:{who}")).or_insert((now, 0));
        if now - e.0 >= TimeDelta::hours(1) {
            *e = (now, 0);
        }
        e.1 += 1;
        if e.1 > limit {
            return Err(Error::new(
                ErrorKind::TooManyRequests,
                format!("too many reports from this {what}: try again later"),
            ));
        }
        Ok(())
    }

    /// Checks and stores a new report; its contact is kept apart.
    pub async fn submit(&self, caller: &Caller, new: NewReport) -> Result<Submitted, Error> {
        if !caller.is_anonymous()
            && !matches!(
                caller.role,
                Some(Role::Admin | Role::Operator | Role::Citizen)
            )
        {
            return Err(Error::forbidden("this key may not submit reports"));
        }
        if let Some(j) = &new.jurisdiction_id
            && !j.is_empty()
            && j != JURISDICTION
        {
            return Err(Error::not_found(format!(
                "jurisdiction_id {j:?} is not served here (use {JURISDICTION:?})"
            )));
        }
        if new.honeypot {
            return Err(Error::bad_data("the report was refused"));
        }
        let category = self.category(&new.service_code).await?.ok_or_else(|| {
            Error::bad_data(format!("service_code {:?} not found", new.service_code))
        })?;
        let description = new.description.trim().to_string();
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::bad_data(format!(
                "description: at most {MAX_DESCRIPTION} bytes"
            )));
        }
        let address_string = bounded("address_string", new.address_string, 500)?;
        let address_id = bounded("address_id", new.address_id, 200)?;
        let (location, commune) = match (new.lat, new.long) {
            (Some(lat), Some(lon)) => {
                let commune = self.places.locate(lon, lat).map_err(|e| match e {
                    Outside::Invalid => Error::bad_data(e.to_string()),
                    Outside::Province => Error::bad_data(e.to_string()),
                })?;
                (Some(Point::new(lon, lat)), commune.cloned())
            }
            (None, None) => {
                if address_string.is_none() && address_id.is_none() {
                    return Err(Error::bad_data(
                        "a location is required: lat and long, or address_string, or address_id",
                    ));
                }
                (None, None)
            }
            _ => return Err(Error::bad_data("lat and long go together")),
        };
        if new.media_urls.len() + new.photos.len() > MAX_MEDIA {
            return Err(Error::bad_data(format!(
                "at most {MAX_MEDIA} photos and media_url in all"
            )));
        }
        for u in &new.media_urls {
            if u.len() > 1_000 || !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(Error::bad_data(
                    "media_url: an http(s) URL of 1000 bytes at most",
                ));
            }
        }
        let attributes = check_attributes(&category, &new.attributes)?;
        let contact = new.contact.check().map_err(Error::bad_data)?;
        if !is_staff(caller) {
            self.limit_address(caller)?;
            if let Some(k) = contact.key() {
                self.limited("contact", &k, self.config.per_contact_per_hour)?;
            }
        }

        let now = self.now();
        let calendar = self.calendar().await?;
        let (due_accept, due) = category.sla.due(&calendar, now, category.urgent);
        let photo_ids: Vec<String> = new.photos.iter().map(|_| secret()).collect();
        let mut media_urls: Vec<String> = photo_ids
            .iter()
            .map(|id| format!("{}/reports/v1/media/{id}.jpg", self.config.base_url))
            .collect();
        media_urls.extend(new.media_urls);
        let agency = match (&commune, category.communal) {
            (Some(c), true) => format!("UBND {}", c.name),
            _ => category.agency_responsible.clone(),
        };
        let service_notice = if category.urgent {
            "Phản ánh khẩn cấp: đã chuyển ngay đến đơn vị trực. Urgent: sent at once to the duty officer."
        } else {
            "Đã tiếp nhận phản ánh. Received."
        };
        let mut report = Report::received(
            String::new(),
            &category,
            description,
            agency,
            now,
            (due_accept, due),
            (location, commune.as_ref()),
        );
        report.service_notice = Some(service_notice.into());
        report.address_string = address_string;
        report.address_id = address_id;
        report.media_url = media_urls.first().cloned();
        report.media_urls = media_urls;
        report.attributes = attributes;
        report.has_contact = !contact.is_empty();
        let scope = self.writer(caller);
        let token = secret();
        let consent_version = new
            .consent
            .filter(|c| !c.is_empty() && c.len() <= 40)
            .unwrap_or_else(|| match caller.is_anonymous() {
                true => CONSENT_VERSION.to_string(),
                false => format!("given to the client {}", caller.actor),
            });
        // The report, its photos, its token and the contact with its link: one
        // commit, so that none stands without the others. A fresh id, again on the
        // rare clash.
        let mut tries = 0;
        loop {
            report.service_request_id = new_request_id();
            let id = &report.service_request_id;
            let entity = model::entity(&report_id(id), SERVICE_REQUEST, &report)?;
            let mut records = Vec::new();
            if !new.photos.is_empty() {
                let stored = photo_ids
                    .iter()
                    .zip(&new.photos)
                    .map(|(photo, p)| (photo.clone(), json!(crate::media::Stored::new(id, p))))
                    .collect();
                records.push(RegistryPut::new(
                    crate::media::MEDIA,
                    TENANT,
                    stored,
                    RegistryWrite::Create,
                ));
            }
            let mut private = vec![(token_key(&token), json!({"id": id}))];
            if !contact.is_empty() {
                let reference = secret();
                let record = ContactRecord {
                    service_request_id: id.clone(),
                    contact: contact.clone(),
                    consent_version: consent_version.clone(),
                    consent_at: now,
                };
                let value = serde_json::to_value(&record)
                    .map_err(|e| Error::bad_data(format!("contact: {e}")))?;
                private.push((contact_key(&reference), value));
                private.push((link_key(id), json!({"ref": reference})));
            }
            records.push(RegistryPut::new(
                PRIVATE,
                TENANT,
                private,
                RegistryWrite::Upsert,
            ));
            match self
                .hub
                .create_entity_with_records(&scope, entity, records)
                .await
            {
                Ok(()) => break,
                Err(e) if e.kind == ErrorKind::AlreadyExists && tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(Submitted {
            service_request_id: report.service_request_id.clone(),
            token,
            service_notice: service_notice.into(),
            report,
        })
    }

    // ---- reading

    pub async fn get(&self, service_request_id: &str) -> Result<Option<Report>, Error> {
        if !model::valid_code(service_request_id) {
            return Ok(None);
        }
        match self
            .hub
            .get_entity(&Self::reader(), &report_id(service_request_id))
            .await
        {
            Ok(e) => model::from_entity(&e).map(Some),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every report (for lists and statistics).
    pub async fn all(&self) -> Result<Vec<Report>, Error> {
        each_report(&self.hub, &Self::reader(), Some).await
    }

    /// Figures per group of the reports received in `[from, to]`, now.
    pub async fn stats(
        &self,
        by: By,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<Figures>, Error> {
        let facts = self.facts.current().await?;
        Ok(stats::compute(facts.values(), by, from, to, self.now()))
    }

    /// Reports matching a filter, newest first (at most `f.limit`, or all with 0).
    pub async fn list(&self, f: &ReportFilter) -> Result<Vec<Report>, Error> {
        Ok(self.page(f, None).await?.reports)
    }

    /// [`Reports::list`] as Open311 shows it: from the facts in memory when they are
    /// known and no ids are asked (no report is read), else from the reports.
    pub async fn open311_requests(
        &self,
        f: &ReportFilter,
    ) -> Result<Vec<Arc<open311::Request>>, Error> {
        if f.ids.is_empty()
            && let Some(facts) = self.facts.current_if_warm().await?
        {
            let (chosen, _, _) = choose(&facts, f, None, self.now());
            return Ok(chosen.iter().map(|x| x.open311.clone()).collect());
        }
        let reports = self.list(f).await?;
        Ok(reports
            .iter()
            .map(|r| Arc::new(open311::Request::of(r)))
            .collect())
    }

    /// A page of the reports matching `f` (at most `f.limit`, or all with 0), after
    /// `after` when given: chosen by the facts in memory when they are known (after a
    /// start, or missed changes, they are read again meanwhile), else by the store.
    pub async fn page(
        &self,
        f: &ReportFilter,
        after: Option<&PageMark>,
    ) -> Result<ReportPage, Error> {
        match self.page_from_facts(f, after).await? {
            Some(page) => Ok(page),
            None => self.page_from_store(f, after).await,
        }
    }

    /// [`Reports::page`] as the store chooses it: the store narrows the reports by type,
    /// attribute values (`q`) and bounding box (its geo index), reads them all, and the
    /// rest of the filter is tested here.
    pub async fn page_from_store(
        &self,
        f: &ReportFilter,
        after: Option<&PageMark>,
    ) -> Result<ReportPage, Error> {
        let all = self.matching(f).await?;
        let total = all.len();
        let mut rest: Vec<Report> = match after {
            None => all,
            Some(mark) => all.into_iter().filter(|r| mark.precedes(r)).collect(),
        };
        let more = f.limit > 0 && rest.len() > f.limit;
        if more {
            rest.truncate(f.limit);
        }
        let next = rest.last().filter(|_| more).map(PageMark::of);
        Ok(ReportPage {
            reports: rest,
            total,
            next,
        })
    }

    /// [`Reports::page`] as the facts in memory choose it, or None while they are not
    /// known (or ids are asked). Only the page's reports are read, and tested again: a
    /// fact behind the store may shorten a page but never shows a report that does not
    /// match.
    pub async fn page_from_facts(
        &self,
        f: &ReportFilter,
        after: Option<&PageMark>,
    ) -> Result<Option<ReportPage>, Error> {
        if !f.ids.is_empty() {
            return Ok(None);
        }
        let Some(facts) = self.facts.current_if_warm().await? else {
            return Ok(None);
        };
        let now = self.now();
        let (ids, total, next) = {
            let (chosen, total, next) = choose(&facts, f, after, now);
            let ids: Vec<String> = chosen
                .iter()
                .map(|x| x.service_request_id.clone())
                .collect();
            (ids, total, next)
        };
        // Let go of the facts before reading: a change meanwhile need not copy them.
        drop(facts);
        // Read in parts side by side (each part a query by ids, the store's unique
        // index driving it, then turned into reports).
        let mut parts = tokio::task::JoinSet::new();
        let entity_ids: Vec<String> = ids.iter().map(|id| report_id(id)).collect();
        for part in entity_ids.chunks(READ_PART) {
            let hub = self.hub.clone();
            let query = EntityQuery {
                ids: part.to_vec(),
                types: Some(TypeExpr::Type(Context::core().expand(SERVICE_REQUEST))),
                ..Default::default()
            };
            parts.spawn(async move {
                let entities = hub.query_all(&Self::reader(), query, PAGE).await?;
                Ok::<_, Error>(
                    entities
                        .iter()
                        .filter_map(model::readable_report)
                        .collect::<Vec<_>>(),
                )
            });
        }
        let mut read: HashMap<String, Report> = HashMap::with_capacity(ids.len());
        while let Some(part) = parts.join_next().await {
            let part = part.map_err(|e| {
                Error::new(ErrorKind::InternalError, format!("reading a page: {e}"))
            })??;
            for r in part {
                if f.admits(&Tested::of(&r), now) {
                    read.insert(r.service_request_id.clone(), r);
                }
            }
        }
        let reports = ids.iter().filter_map(|id| read.remove(id)).collect();
        Ok(Some(ReportPage {
            reports,
            total,
            next,
        }))
    }

    /// Every report matching `f`, newest first (ties by id, the newer id first), as the
    /// store finds them: it narrows them by type, attribute values (`q`) and bounding
    /// box (its geo index); dates and deadlines are checked here.
    async fn matching(&self, f: &ReportFilter) -> Result<Vec<Report>, Error> {
        let now = self.now();
        let mut out: Vec<Report> = if f.ids.is_empty() {
            let query = narrowing(f, &Self::reader().ctx)?;
            let found = self.query_all(query).await?;
            found.iter().filter_map(model::readable_report).collect()
        } else {
            let mut v = Vec::new();
            for id in &f.ids {
                if let Some(r) = self.get(id).await? {
                    v.push(r);
                }
            }
            v
        };
        out.retain(|r| f.admits(&Tested::of(r), now));
        out.sort_by(|a, b| {
            (b.requested_datetime, &b.service_request_id)
                .cmp(&(a.requested_datetime, &a.service_request_id))
        });
        Ok(out)
    }

    /// The report of a tracking token.
    /// A photo (or its thumbnail), as JPEG bytes.
    pub async fn photo(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>, Error> {
        if !crate::media::is_id(id) {
            return Ok(None);
        }
        let v = self
            .hub
            .records()
            .registry_get(crate::media::MEDIA, TENANT, id)
            .await
            .map_err(store_err)?;
        Ok(
            v.and_then(|v| serde_json::from_value::<crate::media::Stored>(v).ok())
                .and_then(|s| s.bytes(thumb)),
        )
    }

    pub async fn by_token(&self, token: &str) -> Result<Option<String>, Error> {
        if !is_token(token) {
            return Ok(None);
        }
        let found = self
            .hub
            .records()
            .registry_get(PRIVATE, TENANT, &token_key(token))
            .await
            .map_err(store_err)?;
        Ok(found.and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string)))
    }

    // ---- workflow

    async fn save(&self, scope: &Scope, report: &Report) -> Result<(), Error> {
        let entity = model::entity(
            &report_id(&report.service_request_id),
            SERVICE_REQUEST,
            report,
        )?;
        self.hub.replace_entity(scope, entity).await
    }

    /// An action of staff (their own scope: the audit log names them) or of the
    /// service itself.
    pub async fn act(&self, scope: &Scope, id: &str, action: &Action) -> Result<Report, Error> {
        let mut report = self
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no report {id}")))?;
        if let Action::Merge { into } = action
            && self.get(into).await?.is_none()
        {
            return Err(Error::bad_data(format!("no report {into} to merge into")));
        }
        let calendar = self.calendar().await?;
        let actor = if matches!(action, Action::Rate { .. } | Action::Reopen { .. })
            && scope.caller.actor.starts_with("system:")
        {
            "reporter".to_string()
        } else {
            scope.caller.actor.clone()
        };
        workflow::apply(&mut report, action, &actor, self.now(), &calendar).map_err(
            |e| match e {
                workflow::Refused::NotNow { .. } => {
                    Error::new(ErrorKind::OperationNotSupported, e.to_string())
                }
                workflow::Refused::Invalid(_) => Error::bad_data(e.to_string()),
            },
        )?;
        self.save(scope, &report).await?;
        if let Action::Merge { into } = action
            && let Some(mut target) = self.get(into).await?
        {
            target.supporters += 1;
            self.save(scope, &target).await?;
        }
        Ok(report)
    }

    /// A citizen's update (FixMyStreet's POST servicerequestupdates): `OPEN` on a
    /// resolved report reopens it, `CLOSED` on a resolved one closes it; any other
    /// case is kept as a comment. Returns the update's id; a repeated post of the
    /// same client update id returns the first one's.
    pub async fn citizen_update(
        &self,
        caller: &Caller,
        id: &str,
        status: &str,
        description: String,
        media_url: Option<String>,
        external_id: Option<String>,
    ) -> Result<String, Error> {
        let status = status.to_ascii_uppercase();
        if !matches!(status.as_str(), "OPEN" | "CLOSED") {
            return Err(Error::bad_data("status is OPEN or CLOSED"));
        }
        if !is_staff(caller) {
            self.limit_address(caller)?;
        }
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::bad_data("description too long"));
        }
        if let Some(u) = &media_url
            && (u.len() > 1_000 || !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(Error::bad_data("media_url: an http(s) URL"));
        }
        let external_id = bounded("update_id", external_id, 100)?;
        let mut report = self
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("service_request_id {id} not found")))?;
        if let Some(x) = &external_id
            && let Some(u) = report
                .updates
                .iter()
                .find(|u| u.external_id.as_ref() == Some(x))
        {
            return Ok(u.update_id.clone());
        }
        let now = self.now();
        let calendar = self.calendar().await?;
        let description = description.trim().to_string();
        let action = match (status.as_str(), report.stage) {
            ("OPEN", Stage::Resolved | Stage::Closed) => Some(Action::Reopen {
                reason: if description.is_empty() {
                    "the reporter says the problem is still there".into()
                } else {
                    description.clone()
                },
            }),
            ("CLOSED", Stage::Resolved) => Some(Action::Close {
                note: Some(description.clone()),
            }),
            _ => None,
        };
        let update_id = match action {
            Some(a) => {
                workflow::apply(&mut report, &a, "reporter", now, &calendar)
                    .map_err(|e| Error::bad_data(e.to_string()))?;
                let last = report.updates.last_mut();
                match last {
                    Some(u) => {
                        u.status = status.clone();
                        u.media_url = media_url;
                        u.external_id = external_id;
                        u.by = "citizen".into();
                        u.update_id.clone()
                    }
                    None => String::new(),
                }
            }
            None => workflow::push_update(
                &mut report,
                &status,
                description,
                "citizen",
                now,
                media_url,
                external_id,
            ),
        };
        self.save(&self.writer(caller), &report).await?;
        Ok(update_id)
    }

    /// Public updates made between two instants, oldest first.
    pub async fn updates_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(String, model::Update)>, Error> {
        let found = each_report(&self.hub, &Self::reader(), |r| {
            (r.updated_datetime >= start).then(|| {
                let id = r.service_request_id;
                r.updates
                    .into_iter()
                    .filter(|u| u.updated_datetime >= start && u.updated_datetime <= end)
                    .map(|u| (id.clone(), u))
                    .collect::<Vec<_>>()
            })
        })
        .await?;
        let mut out: Vec<(String, model::Update)> = found.into_iter().flatten().collect();
        out.sort_by_key(|u| u.1.updated_datetime);
        Ok(out)
    }

    /// Open reports of the category within `meters` of a point (duplicates).
    pub async fn nearby(
        &self,
        code: &str,
        lon: f64,
        lat: f64,
        meters: f64,
    ) -> Result<Vec<Report>, Error> {
        let here = [lon, lat];
        Ok(self
            .list(&ReportFilter {
                service_codes: vec![code.to_string()],
                status: Some("open".into()),
                bbox: Some({
                    // A box a little larger than the circle, for the geo index.
                    let dlat = meters * 1.5 / 111_000.0;
                    let dlon = dlat / lat.to_radians().cos().max(0.1);
                    [lon - dlon, lat - dlat, lon + dlon, lat + dlat]
                }),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|r| {
                r.location
                    .is_some_and(|p| city::geom::distance_m(here, p.coordinates) <= meters)
            })
            .collect())
    }

    /// A resident supports an open report instead of filing the same one.
    pub async fn support(&self, caller: &Caller, id: &str) -> Result<u32, Error> {
        let mut report = self
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no report {id}")))?;
        if !report.stage.is_open() {
            return Err(Error::new(
                ErrorKind::OperationNotSupported,
                "the report is no longer open",
            ));
        }
        self.limited(
            "address",
            &format!(
                "support:{}:{id}",
                caller.request.client.clone().unwrap_or_default()
            ),
            1,
        )?;
        report.supporters += 1;
        report.updated_datetime = self.now();
        self.save(&self.writer(caller), &report).await?;
        Ok(report.supporters)
    }

    // ---- personal data

    async fn contact_ref(&self, id: &str) -> Result<Option<String>, Error> {
        Ok(self
            .hub
            .records()
            .registry_get(PRIVATE, TENANT, &link_key(id))
            .await
            .map_err(store_err)?
            .and_then(|v| v.get("ref").and_then(Value::as_str).map(str::to_string)))
    }

    async fn contact_of(&self, id: &str) -> Result<Option<ContactRecord>, Error> {
        let Some(reference) = self.contact_ref(id).await? else {
            return Ok(None);
        };
        let v = self
            .hub
            .records()
            .registry_get(PRIVATE, TENANT, &contact_key(&reference))
            .await
            .map_err(store_err)?;
        Ok(v.and_then(|v| serde_json::from_value(v).ok()))
    }

    async fn audit(&self, caller: &Caller, action: &str, target: &str, outcome: &str) {
        let mut record = caller.audit(Some(TENANT), vec![report_id(target)]);
        record.action = format!("{action} ({})", record.action);
        record.outcome = outcome.into();
        self.identity.audit(vec![record]).await;
    }

    /// Whether the caller holds the "see reporter" right for this agency.
    pub async fn may_see_reporter(&self, caller: &Caller, agency: &str) -> Result<bool, Error> {
        if caller.is_admin() {
            return Ok(true);
        }
        if caller.role != Some(Role::Operator) || !caller.has_tenant(TENANT) {
            return Ok(false);
        }
        let agencies = REPORTER_ACCESS
            .agencies(&self.hub.records(), TENANT, &caller.actor)
            .await?;
        Ok(agencies.iter().any(|a| a == "*" || a == agency))
    }

    /// The reporter's contact, for staff holding the right; every read (and every
    /// refusal) is audited.
    pub async fn reporter(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<ContactRecord>, Error> {
        let report = self
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no report {id}")))?;
        if !self
            .may_see_reporter(caller, &report.agency_responsible)
            .await?
        {
            self.audit(caller, "read reporter contact", id, "refused")
                .await;
            return Err(Error::forbidden(
                "seeing the reporter needs the see-reporter right for this agency",
            ));
        }
        let found = self.contact_of(id).await?;
        self.audit(caller, "read reporter contact", id, "ok").await;
        Ok(found)
    }

    /// Grants (or, with no agencies, takes back) the "see reporter" right (admins).
    pub async fn set_reporter_access(
        &self,
        caller: &Caller,
        actor: &str,
        agencies: Vec<String>,
    ) -> Result<(), Error> {
        REPORTER_ACCESS
            .set(
                &self.hub.records(),
                Some(&*self.identity),
                caller,
                TENANT,
                actor,
                agencies,
            )
            .await
    }

    /// What the holder of a tracking token sees: the report and their own contact.
    pub async fn track(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<(Report, Option<ContactRecord>), Error> {
        let id = self
            .by_token(token)
            .await?
            .ok_or_else(|| Error::not_found("no report has this tracking code"))?;
        let report = self
            .get(&id)
            .await?
            .ok_or_else(|| Error::not_found("no report has this tracking code"))?;
        let contact = self.contact_of(&id).await?;
        if contact.is_some() {
            self.audit(caller, "reporter reads own contact", &id, "ok")
                .await;
        }
        Ok((report, contact))
    }

    /// Erases the contact of a report (the reporter through the tracking token, or
    /// the retention sweep); the report stays, without anything personal.
    pub async fn erase_contact(&self, caller: &Caller, id: &str, why: &str) -> Result<bool, Error> {
        let records = self.hub.records();
        let Some(reference) = self.contact_ref(id).await? else {
            return Ok(false);
        };
        records
            .registry_delete(PRIVATE, TENANT, &contact_key(&reference))
            .await
            .map_err(store_err)?;
        records
            .registry_delete(PRIVATE, TENANT, &link_key(id))
            .await
            .map_err(store_err)?;
        if let Some(mut report) = self.get(id).await?
            && report.has_contact
        {
            report.has_contact = false;
            report.updated_datetime = self.now();
            self.save(&self.writer(caller), &report).await?;
        }
        self.audit(caller, why, id, "ok").await;
        Ok(true)
    }

    /// Erasure by the reporter, through their token.
    pub async fn erase_by_token(&self, caller: &Caller, token: &str) -> Result<bool, Error> {
        let id = self
            .by_token(token)
            .await?
            .ok_or_else(|| Error::not_found("no report has this tracking code"))?;
        self.erase_contact(caller, &id, "reporter erases own contact")
            .await
    }

    /// The reporter's rating through their token.
    pub async fn rate_by_token(
        &self,
        caller: &Caller,
        token: &str,
        rating: u8,
        comment: Option<String>,
    ) -> Result<Report, Error> {
        let id = self
            .by_token(token)
            .await?
            .ok_or_else(|| Error::not_found("no report has this tracking code"))?;
        self.act(&self.writer(caller), &id, &Action::Rate { rating, comment })
            .await
    }

    // ---- upkeep

    /// Closes resolved reports left unrated for 7 days, and erases contacts of reports
    /// closed longer ago than the retention. Returns (closed, erased).
    pub async fn sweep(&self) -> Result<(usize, usize), Error> {
        let now = self.now();
        let system = Caller::system("reports");
        let scope = Scope::system("reports", TENANT);
        let retention = self.config.contact_retention;
        // What is due, read a page at a time; then done.
        let due = each_report(&self.hub, &Self::reader(), |r| {
            let close = workflow::closes_by_itself(&r, now);
            let ended = match r.stage {
                Stage::Closed | Stage::Rejected | Stage::Merged => {
                    Some(r.closed_at.unwrap_or(r.updated_datetime))
                }
                _ => None,
            };
            let erase = r.has_contact && ended.is_some_and(|t| now - t >= retention);
            (close || erase).then_some((r.service_request_id, close, erase))
        })
        .await?;
        let mut closed = 0;
        let mut erased = 0;
        for (id, close, erase) in due {
            if close {
                let note = Some("closed: no rating within 7 days".to_string());
                if self.act(&scope, &id, &Action::Close { note }).await.is_ok() {
                    closed += 1;
                }
            }
            if erase
                && self
                    .erase_contact(&system, &id, "contact erased after its retention")
                    .await?
            {
                erased += 1;
            }
        }
        Ok((closed, erased))
    }

    // ---- calendar

    /// The holiday calendar: the shipped one, with the years an admin set replacing
    /// it.
    /// Kept between calls (`catalog`): read again after a year is replaced here, or
    /// when the store says the registry may have changed elsewhere.
    pub async fn calendar(&self) -> Result<Arc<Calendar>, Error> {
        let records = self.hub.records();
        let registry = records.registry_generation();
        let local = match self.kept_calendar.lookup(registry) {
            Lookup::Kept(c) => return Ok(c),
            Lookup::Missing(local) => local,
        };
        let mut c = Calendar::shipped();
        let page = records
            .registry_list(HOLIDAYS, TENANT, 0, 200)
            .await
            .map_err(store_err)?;
        for r in page.records {
            if let (Ok(year), Ok(days)) = (
                r.key.parse::<i32>(),
                serde_json::from_value::<Vec<Holiday>>(r.value),
            ) {
                let _ = c.set_year(year, days);
            }
        }
        let c = Arc::new(c);
        self.kept_calendar.keep(c.clone(), registry, local);
        Ok(c)
    }

    /// Replaces the holidays of a year (admins).
    pub async fn set_holidays(
        &self,
        caller: &Caller,
        year: i32,
        days: Vec<Holiday>,
    ) -> Result<(), Error> {
        if !caller.is_admin() {
            return Err(Error::forbidden("the holiday calendar is set by admins"));
        }
        let mut check = Calendar::default();
        check
            .set_year(year, days.clone())
            .map_err(Error::bad_data)?;
        self.hub
            .records()
            .registry_put(
                HOLIDAYS,
                TENANT,
                vec![(year.to_string(), json!(check.year(year)))],
                RegistryWrite::Upsert,
            )
            .await
            .map_err(store_err)?;
        self.kept_calendar.changed();
        let mut record = caller.audit(Some(TENANT), vec![format!("holidays:{year}")]);
        record.action = format!("set holidays ({})", record.action);
        self.identity.audit(vec![record]).await;
        Ok(())
    }
}

/// A quoted `q` literal; values with quotes or backslashes are refused.
fn literal(v: &str) -> Result<String, Error> {
    if v.is_empty() || v.len() > 200 || v.contains(['"', '\\']) || v.chars().any(char::is_control) {
        return Err(Error::bad_data(format!(
            "{v:?} is not a valid filter value"
        )));
    }
    Ok(format!("\"{v}\""))
}

/// The store's part of a filter: type, attribute values, bounding box.
fn narrowing(f: &ReportFilter, ctx: &Context) -> Result<EntityQuery, Error> {
    let mut terms = Vec::new();
    let list = |attr: &str, values: &[String]| -> Result<String, Error> {
        let vs: Vec<String> = values
            .iter()
            .map(|v| literal(v))
            .collect::<Result<_, _>>()?;
        Ok(format!("{attr}=={}", vs.join(",")))
    };
    if let Some(s) = &f.status {
        terms.push(list("status", std::slice::from_ref(s))?);
    }
    if !f.stages.is_empty() {
        let names: Vec<String> = f.stages.iter().map(|s| s.as_str().to_string()).collect();
        terms.push(list("workflowStatus", &names)?);
    }
    if !f.service_codes.is_empty() {
        terms.push(list("service_code", &f.service_codes)?);
    }
    if let Some(a) = &f.agency {
        terms.push(list("agency_responsible", std::slice::from_ref(a))?);
    }
    if let Some(c) = &f.commune {
        terms.push(list("communeCode", std::slice::from_ref(c))?);
    }
    // The period, as text the value index compares: a stored time is RFC 3339 in UTC
    // whose first 19 characters are its whole seconds, so bounds a second wider on
    // each side keep every report of the period (the exact test follows in memory).
    let seconds = |t: DateTime<Utc>| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S"));
    if let Some(start) = f.start {
        let bound = seconds(start - TimeDelta::seconds(1));
        terms.push(format!("requested_datetime>={}", literal(&bound)?));
    }
    if let Some(end) = f.end {
        let bound = seconds(end + TimeDelta::seconds(1));
        terms.push(format!("requested_datetime<={}", literal(&bound)?));
    }
    let q = if terms.is_empty() {
        None
    } else {
        let expr = ngsi::query::parse_q(&terms.join(";"))
            .map_err(|e| Error::bad_data(format!("filter: {e}")))?;
        Some(ngsi::filter::QFilter::new(
            expr.map_attrs(&|n| ctx.expand(n)),
        )?)
    };
    let geo = match f.bbox {
        None => None,
        Some([x0, y0, x1, y1]) => {
            let ring = format!("[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]");
            let mut gq = ngsi::query::parse_geoq("within", "Polygon", &ring, Some("location"))
                .map_err(|e| Error::bad_data(format!("bbox: {e}")))?;
            gq.geoproperty = ngsi::entity::expand_attr(&gq.geoproperty, ctx)?;
            Some(ngsi::filter::GeoFilter::new(gq)?)
        }
    };
    Ok(EntityQuery {
        types: Some(TypeExpr::Type(ctx.expand(SERVICE_REQUEST))),
        q,
        geo,
        ..Default::default()
    })
}

fn bounded(what: &str, v: Option<String>, max: usize) -> Result<Option<String>, Error> {
    match v.map(|s| s.trim().to_string()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.len() > max || s.chars().any(char::is_control) => Err(Error::bad_data(
            format!("{what}: at most {max} bytes, no control characters"),
        )),
        Some(s) => Ok(Some(s)),
    }
}

/// A new public id: 12 characters, digits and capitals.
pub(crate) fn new_request_id() -> String {
    let u = uuid::Uuid::new_v4().as_u128();
    const DIGITS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut n = u;
    let mut s = String::with_capacity(12);
    for _ in 0..12 {
        s.push(DIGITS[(n % DIGITS.len() as u128) as usize] as char);
        n /= DIGITS.len() as u128;
    }
    s
}

/// The category's attributes from the `attribute[CODE]` pairs: required ones present,
/// list values among the keys, numbers numeric; repeated codes make a list; codes the
/// category does not define are kept as sent (bounded).
fn check_attributes(
    category: &Category,
    given: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Error> {
    if given.len() > MAX_ATTRIBUTES {
        return Err(Error::bad_data(format!(
            "at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in given {
        if k.is_empty()
            || k.len() > 64
            || v.len() > 2_000
            || v.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(Error::bad_data(format!(
                "attribute[{}]: a code of 64 bytes and a value of 2000 at most",
                k.chars().take(64).collect::<String>()
            )));
        }
        grouped
            .entry(k.clone())
            .or_default()
            .push(v.trim().to_string());
    }
    let mut out = BTreeMap::new();
    for def in &category.attributes {
        let values: Vec<String> = grouped
            .remove(&def.code)
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            if def.required && def.variable {
                return Err(Error::bad_data(format!(
                    "attribute[{}] is required: {}",
                    def.code, def.description
                )));
            }
            continue;
        }
        let keys: Vec<&str> = def.values.iter().map(|v| v.key.as_str()).collect();
        match def.datatype.as_str() {
            "singlevaluelist" | "multivaluelist" => {
                if let Some(bad) = values.iter().find(|v| !keys.contains(&v.as_str())) {
                    return Err(Error::bad_data(format!(
                        "attribute[{}]: {bad:?} is not one of {keys:?}",
                        def.code
                    )));
                }
                if def.datatype == "singlevaluelist" {
                    if values.len() > 1 {
                        return Err(Error::bad_data(format!(
                            "attribute[{}] takes one value",
                            def.code
                        )));
                    }
                    out.insert(def.code.clone(), json!(values[0]));
                } else {
                    out.insert(def.code.clone(), json!(values));
                }
            }
            "number" => {
                let n: Vec<f64> = values
                    .iter()
                    .map(|v| v.parse::<f64>().ok().filter(|f| f.is_finite()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        Error::bad_data(format!("attribute[{}] is a number", def.code))
                    })?;
                out.insert(def.code.clone(), json!(n[0]));
            }
            _ => {
                out.insert(def.code.clone(), json!(values.join("\n")));
            }
        }
    }
    // What the category does not define (FixMyStreet sends its own: title,
    // easting, northing, report_url…), kept as sent.
    for (k, mut v) in grouped {
        let key: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.insert(
            key,
            if v.len() == 1 {
                json!(v.remove(0))
            } else {
                json!(v)
            },
        );
    }
    Ok(out)
}

/// Staff submit and update without limits: an agency's system may file for many.
fn is_staff(caller: &Caller) -> bool {
    matches!(caller.role, Some(Role::Admin | Role::Operator))
}
