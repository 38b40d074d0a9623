//! Categories and reports, as the NGSI-LD entities they are kept as: `Open311_ServiceType`
//! and `Open311_ServiceRequest` of the Smart Data Models (IssueTracking), whose attribute
//! names are used where they have one (`service_code`, `service_request_id`, `status`,
//! `requested_datetime`…); the workflow's own attributes are in camelCase.
//!
//! **Invariant:** no field of [`Report`] holds the reporter's personal data (name,
//! phone, email, account, device): that is kept apart ([`crate::private`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ngsi::{Context, Entity, Error};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::calendar::Sla;

pub const SERVICE_TYPE: &str = "Open311_ServiceType";
pub const SERVICE_REQUEST: &str = "Open311_ServiceRequest";

pub fn category_id(code: &str) -> String {
    format!("urn:ngsi-ld:{SERVICE_TYPE}:{code}")
}

pub fn report_id(service_request_id: &str) -> String {
    format!("urn:ngsi-ld:{SERVICE_REQUEST}:{service_request_id}")
}

/// An attribute of a service definition (Open311 `services/{code}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeDef {
    pub code: String,
    /// Whether the citizen gives a value (false: information only).
    #[serde(default = "yes")]
    pub variable: bool,
    /// `string`, `number`, `datetime`, `text`, `singlevaluelist` or `multivaluelist`.
    pub datatype: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub datatype_description: String,
    #[serde(default)]
    pub order: u32,
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ListValue>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListValue {
    pub key: String,
    pub name: String,
}

/// A category of report (an Open311 service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub service_code: String,
    /// Vietnamese name, and English.
    pub service_name: String,
    #[serde(rename = "serviceNameEn", default)]
    pub service_name_en: String,
    pub description: String,
    pub group: String,
    #[serde(rename = "groupEn", default)]
    pub group_en: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Whether the category has attributes to fill (Open311 `metadata`).
    #[serde(default)]
    pub metadata: bool,
    /// The provincial department that handles it.
    pub agency_responsible: String,
    /// Handled by the People's Committee of the report's commune instead.
    #[serde(default)]
    pub communal: bool,
    /// Flood, rescue, fire, a road blocked: counted in hours, flagged at once.
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub attributes: Vec<AttributeDef>,
    #[serde(default)]
    pub sla: Sla,
    #[serde(default, skip_serializing_if = "is_false")]
    pub demo: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Limits of a category's text.
const MAX_CODE: usize = 64;
const MAX_TEXT: usize = 2_000;

impl Category {
    /// Checks what an admin sends; fills `metadata`.
    pub fn check(&mut self) -> Result<(), Error> {
        if !valid_code(&self.service_code) {
            return Err(Error::bad_data(format!(
                "service_code: 1–{MAX_CODE} letters, digits, '-' or '_'"
            )));
        }
        for (what, text) in [
            ("service_name", &self.service_name),
            ("group", &self.group),
            ("agency_responsible", &self.agency_responsible),
        ] {
            if text.trim().is_empty() || text.len() > 200 {
                return Err(Error::bad_data(format!("{what}: 1–200 bytes")));
            }
        }
        if self.description.len() > MAX_TEXT || self.keywords.len() > 20 {
            return Err(Error::bad_data("description or keywords too long"));
        }
        if self.attributes.len() > 20 {
            return Err(Error::bad_data("at most 20 attributes"));
        }
        for a in &self.attributes {
            if !valid_code(&a.code) {
                return Err(Error::bad_data(format!("attribute code {:?}", a.code)));
            }
            let lists = matches!(a.datatype.as_str(), "singlevaluelist" | "multivaluelist");
            if !lists
                && !matches!(
                    a.datatype.as_str(),
                    "string" | "number" | "datetime" | "text"
                )
            {
                return Err(Error::bad_data(format!(
                    "attribute {}: unknown datatype {:?}",
                    a.code, a.datatype
                )));
            }
            if lists == a.values.is_empty() || a.values.len() > 50 {
                return Err(Error::bad_data(format!(
                    "attribute {}: lists have 1–50 values, other types none",
                    a.code
                )));
            }
        }
        self.sla.check().map_err(Error::bad_data)?;
        self.metadata = self.attributes.iter().any(|a| a.variable);
        Ok(())
    }
}

pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The stage of a report in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Received,
    Accepted,
    Rejected,
    Merged,
    Assigned,
    InProgress,
    Resolved,
    Closed,
}

pub const STAGES: [Stage; 8] = [
    Stage::Received,
    Stage::Accepted,
    Stage::Rejected,
    Stage::Merged,
    Stage::Assigned,
    Stage::InProgress,
    Stage::Resolved,
    Stage::Closed,
];

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Accepted => "accepted",
            Stage::Rejected => "rejected",
            Stage::Merged => "merged",
            Stage::Assigned => "assigned",
            Stage::InProgress => "in_progress",
            Stage::Resolved => "resolved",
            Stage::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        STAGES.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the report still waits for the agency (Open311 `open`).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Stage::Received | Stage::Accepted | Stage::Assigned | Stage::InProgress
        )
    }

    /// Whether the agency has answered (resolved, or refused with a reason).
    pub fn is_handled(self) -> bool {
        !self.is_open()
    }
}

/// A point, as GeoJSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    #[serde(rename = "type")]
    pub kind: PointType,
    /// Longitude, latitude.
    pub coordinates: [f64; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PointType {
    Point,
}

impl Point {
    pub fn new(lon: f64, lat: f64) -> Point {
        Point {
            kind: PointType::Point,
            coordinates: [lon, lat],
        }
    }
    pub fn lon(&self) -> f64 {
        self.coordinates[0]
    }
    pub fn lat(&self) -> f64 {
        self.coordinates[1]
    }
}

/// One step of the workflow, kept with its actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub from: Stage,
    pub to: Stage,
    /// Who did it, as the audit log names them (`user:…`, `key:…`, `system:…`), or
    /// `reporter` for the citizen who filed the report (never their identity).
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A deadline extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    pub working_days: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A public update of a report (FixMyStreet's `servicerequestupdates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub update_id: String,
    /// `OPEN`, `CLOSED`, `IN_PROGRESS`, `FIXED`, `DUPLICATE`, `NOT_COUNCILS_RESPONSIBILITY`…
    pub status: String,
    pub updated_datetime: DateTime<Utc>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// `agency` or `citizen`: never a person.
    pub by: String,
    /// The id the client gave its update (FixMyStreet's comment id), to answer a
    /// repeated post with the same update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A citizen's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub service_request_id: String,
    pub service_code: String,
    pub service_name: String,
    pub description: String,
    /// Open311: `open` or `closed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_notes: Option<String>,
    pub agency_responsible: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_notice: Option<String>,
    pub requested_datetime: DateTime<Utc>,
    pub updated_datetime: DateTime<Utc>,
    /// When the answer is due.
    pub expected_datetime: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_id: Option<String>,
    /// None when only an address was given (staff place it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Point>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(rename = "mediaUrls", default, skip_serializing_if = "Vec::is_empty")]
    pub media_urls: Vec<String>,
    /// Answers to the category's attributes (a list for multiple choices), and the
    /// client's other `attribute[…]` keys as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
    pub jurisdiction_id: String,
    #[serde(rename = "workflowStatus")]
    pub stage: Stage,
    #[serde(default)]
    pub urgent: bool,
    /// The commune the point falls in (its code and name), and its entity.
    #[serde(
        rename = "communeCode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub commune_code: Option<String>,
    #[serde(
        rename = "communeName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub commune_name: Option<String>,
    #[serde(
        rename = "refAdministrativeArea",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub area: Option<String>,
    #[serde(rename = "refServiceType")]
    pub service_type: String,
    /// When it must be accepted or rejected.
    #[serde(rename = "dueAcceptAt")]
    pub due_accept: DateTime<Utc>,
    #[serde(
        rename = "firstResponseAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub first_response_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "resolvedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(rename = "closedAt", default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "assignedOfficer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub officer: Option<String>,
    #[serde(
        rename = "resolution",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub result: Option<String>,
    #[serde(
        rename = "rejectionReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    #[serde(
        rename = "mergedInto",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub merged_into: Option<String>,
    #[serde(rename = "rating", default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    #[serde(rename = "supporters", default)]
    pub supporters: u32,
    #[serde(rename = "extensions", default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
    #[serde(rename = "workflowHistory", default)]
    pub history: Vec<Transition>,
    #[serde(rename = "updates", default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<Update>,
    /// The reporter gave a contact, kept apart (never the contact itself).
    #[serde(rename = "hasContact", default)]
    pub has_contact: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub demo: bool,
}

impl Report {
    /// A report just received at `at`: of `category`, routed to `agency`, due to be
    /// accepted and answered by `dues`, at `place` (the point and the commune it lies
    /// in), with nothing of the workflow yet. The intake sets what it knows besides
    /// (address, photos, notice, attributes, contact, demo).
    pub fn received(
        id: String,
        category: &Category,
        description: String,
        agency: String,
        at: DateTime<Utc>,
        (due_accept, due): (DateTime<Utc>, DateTime<Utc>),
        (location, commune): (Option<Point>, Option<&crate::places::Commune>),
    ) -> Report {
        Report {
            service_request_id: id,
            service_code: category.service_code.clone(),
            service_name: category.service_name.clone(),
            description,
            status: "open".into(),
            status_notes: None,
            agency_responsible: agency,
            service_notice: None,
            requested_datetime: at,
            updated_datetime: at,
            expected_datetime: due,
            address_string: None,
            address_id: None,
            location,
            media_url: None,
            media_urls: Vec::new(),
            attributes: BTreeMap::new(),
            jurisdiction_id: crate::service::JURISDICTION.into(),
            stage: Stage::Received,
            urgent: category.urgent,
            commune_code: commune.map(|c| c.code.clone()),
            commune_name: commune.map(|c| c.name.clone()),
            area: commune.map(|c| c.id.clone()),
            service_type: category_id(&category.service_code),
            due_accept,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            officer: None,
            result: None,
            reason: None,
            merged_into: None,
            rating: None,
            supporters: 0,
            extensions: Vec::new(),
            history: Vec::new(),
            updates: Vec::new(),
            has_contact: false,
            demo: false,
        }
    }

    /// When the next step is due: acceptance while received, the answer after.
    pub fn due(&self) -> DateTime<Utc> {
        if self.stage == Stage::Received {
            self.due_accept.min(self.expected_datetime)
        } else {
            self.expected_datetime
        }
    }

    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.stage.is_open() && now > self.due()
    }

    /// Whether it was answered (resolved, rejected or merged) by its deadline.
    pub fn on_time(&self) -> Option<bool> {
        if self.stage.is_open() {
            return None;
        }
        let answered = self
            .resolved_at
            .or(self.first_response_at)
            .unwrap_or(self.updated_datetime);
        let due = match self.stage {
            Stage::Rejected | Stage::Merged => self.due_accept,
            _ => self.expected_datetime,
        };
        Some(answered <= due)
    }
}

/// Relationship attributes (their values are entity ids).
const RELATIONSHIPS: &[&str] = &["refAdministrativeArea", "refServiceType"];
const GEO: &[&str] = &["location"];

/// The NGSI-LD normalized entity of a record: each field a Property (a
/// Relationship or GeoProperty for those named so).
pub fn to_entity(id: &str, kind: &str, record: &impl Serialize) -> Result<Value, Error> {
    let fields = serde_json::to_value(record)
        .map_err(|e| Error::bad_data(format!("unserialisable record: {e}")))?;
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("type".into(), json!(kind));
    if let Value::Object(fields) = fields {
        for (k, v) in fields {
            if v.is_null() {
                continue;
            }
            let attr = if RELATIONSHIPS.contains(&k.as_str()) {
                json!({"type": "Relationship", "object": v})
            } else if GEO.contains(&k.as_str()) {
                json!({"type": "GeoProperty", "value": v})
            } else {
                json!({"type": "Property", "value": v})
            };
            out.insert(k, attr);
        }
    }
    Ok(Value::Object(out))
}

/// The entity of a record: what [`parse_entity`] reads from [`to_entity`], built
/// straight from the record's fields (the JSON in between, written and read again,
/// was a quarter of a submission's CPU in the service).
pub fn entity(id: &str, kind: &str, record: &impl Serialize) -> Result<Entity, Error> {
    let fields = serde_json::to_value(record)
        .map_err(|e| Error::bad_data(format!("unserialisable record: {e}")))?;
    if !ngsi::entity::is_uri(id) {
        return Err(Error::bad_data(format!(
            "the entity id {id:?} is not a URI"
        )));
    }
    let ctx = Context::core();
    let now = ngsi::entity::now();
    let mut attrs = BTreeMap::new();
    if let Value::Object(fields) = fields {
        for (name, value) in fields {
            if value.is_null() {
                continue;
            }
            let bad = |msg: &str| Error::bad_data(format!("attribute {name}: {msg}"));
            let (kind, value) = if RELATIONSHIPS.contains(&name.as_str()) {
                match &value {
                    Value::String(s) if ngsi::entity::is_uri(s) => {}
                    _ => return Err(bad("the object of a Relationship must be a URI")),
                }
                (ngsi::AttrKind::Relationship, value)
            } else if GEO.contains(&name.as_str()) {
                let g = ngsi::Geometry::from_geojson(&value).map_err(|e| bad(&e.0))?;
                (ngsi::AttrKind::GeoProperty, g.to_geojson())
            } else {
                (ngsi::AttrKind::Property, value)
            };
            let iri = ngsi::entity::expand_attr(&name, &ctx)?;
            attrs.insert(
                iri,
                vec![ngsi::Attribute {
                    kind,
                    value,
                    dataset_id: None,
                    observed_at: None,
                    unit_code: None,
                    object_type: None,
                    created_at: now,
                    modified_at: now,
                    sub_attrs: BTreeMap::new(),
                }],
            );
        }
    }
    Ok(Entity {
        id: id.to_string(),
        types: vec![ngsi::entity::expand_type(kind, &ctx)?],
        scopes: Vec::new(),
        attrs,
        created_at: now,
        modified_at: now,
    })
}

/// Reads an entity (core @context) back into its record.
pub fn from_entity<T: DeserializeOwned>(e: &Entity) -> Result<T, Error> {
    let ctx = Context::core();
    let opts = ngsi::render::RenderOptions {
        format: ngsi::render::Format::KeyValues,
        keep_id: false,
        keep_type: false,
        ..ngsi::render::RenderOptions::new(&ctx)
    };
    let map = ngsi::render::render_entity(e, &opts);
    serde_json::from_value(Value::Object(map))
        .map_err(|err| Error::bad_data(format!("entity {} is not a valid record: {err}", e.id)))
}

/// Parses the normalized JSON of [`to_entity`] into an entity.
pub fn parse_entity(v: &Value) -> Result<Entity, Error> {
    let ctx = Context::core();
    ngsi::entity::Reader {
        ctx: &ctx,
        now: ngsi::entity::now(),
    }
    .entity(v, None)
}

/// The report of an entity; None (and a warning) when it is not a readable report.
pub(crate) fn readable_report(e: &Entity) -> Option<Report> {
    from_entity::<Report>(e)
        .inspect_err(
            |err| tracing::warn!(error = %err, id = %e.id, "an unreadable report is left out"),
        )
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The same entity as the normalized JSON read back, times apart (each build
    /// takes the time it runs).
    fn same_as_read_back(id: &str, kind: &str, record: &impl Serialize) {
        let mut built = entity(id, kind, record).unwrap();
        let read = parse_entity(&to_entity(id, kind, record).unwrap()).unwrap();
        built.created_at = read.created_at;
        built.modified_at = read.modified_at;
        for instances in built.attrs.values_mut() {
            for i in instances {
                i.created_at = read.created_at;
                i.modified_at = read.modified_at;
            }
        }
        assert_eq!(
            serde_json::to_value(&built).unwrap(),
            serde_json::to_value(&read).unwrap(),
            "{id}"
        );
        assert!(!built.attrs.is_empty());
    }

    #[test]
    fn an_entity_is_what_its_normalized_json_reads_as() {
        for c in crate::demo::categories() {
            same_as_read_back(&category_id(&c.service_code), SERVICE_TYPE, &c);
        }
        let places = crate::places::Places::load().unwrap();
        let calendar = crate::calendar::Calendar::shipped();
        let now = "2026-06-01T08:00:00Z".parse().unwrap();
        let reports = crate::demo::reports(&places, &calendar, now);
        assert!(reports.len() > 100);
        // Every stage, with and without a place, photos, attributes and history.
        for r in &reports {
            same_as_read_back(&report_id(&r.service_request_id), SERVICE_REQUEST, r);
        }
        let mut unplaced = reports[0].clone();
        unplaced.location = None;
        unplaced.commune_code = None;
        unplaced.area = None;
        same_as_read_back(
            "urn:ngsi-ld:Open311_ServiceRequest:X",
            SERVICE_REQUEST,
            &unplaced,
        );
    }

    #[test]
    fn an_entity_refuses_what_reading_refuses() {
        let c = &crate::demo::categories()[0];
        assert!(entity("not a uri", SERVICE_TYPE, c).is_err());
        assert!(parse_entity(&to_entity("not a uri", SERVICE_TYPE, c).unwrap()).is_err());
        let mut r = crate::demo::reports(
            &crate::places::Places::load().unwrap(),
            &crate::calendar::Calendar::shipped(),
            "2026-06-01T08:00:00Z".parse().unwrap(),
        )
        .remove(0);
        r.service_type = "no uri".into();
        assert!(entity("urn:x:1", SERVICE_REQUEST, &r).is_err());
        assert!(parse_entity(&to_entity("urn:x:1", SERVICE_REQUEST, &r).unwrap()).is_err());
    }
}
