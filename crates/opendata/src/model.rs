//! Datasets and organisations: what they hold, the rules they obey, and their form as
//! NGSI-LD entities (types `Dataset` and `Organization`, after the Smart Data Models'
//! DCAT-AP models). Pure: no I/O.

use std::collections::BTreeMap;

use ngsi::query::ast::QExpr;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The entity type of datasets.
pub const DATASET_TYPE: &str = "Dataset";
/// The entity type of the organisations that publish them.
pub const ORGANIZATION_TYPE: &str = "Organization";

/// Longest title, description, keyword and other texts.
const MAX_TITLE: usize = 300;
const MAX_TEXT: usize = 10_000;
const MAX_LIST: usize = 100;
const MAX_NAME: usize = 100;

/// The statement every licence of the portal carries (Law on E-transactions 2023,
/// Article 43: open data is complete and current, online and machine-readable, free,
/// without identification, reusable commercially).
pub const ARTICLE_43: &str = "Dữ liệu mở theo Điều 43 Luật Giao dịch điện tử 2023: \
đầy đủ, cập nhật, trực tuyến, ở định dạng mở máy đọc được; truy cập miễn phí, không cần \
định danh; được tự do sử dụng lại, kể cả cho mục đích thương mại, theo giấy phép ghi kèm. \
Open data under Article 43 of the Law on E-transactions 2023: complete, current, online, \
machine-readable in open formats; free, with no identification needed; reusable, \
commercially too, under the licence given.";

/// An open licence a dataset may carry.
#[derive(Debug, Clone, Copy)]
pub struct Licence {
    pub id: &'static str,
    pub title: &'static str,
    pub url: &'static str,
}

/// The open licences the portal accepts (none other: closed data is not published).
pub const LICENCES: &[Licence] = &[
    Licence {
        id: "cc-by-4.0",
        title: "Creative Commons Attribution 4.0",
        url: "https://creativecommons.org/licenses/by/4.0/",
    },
    Licence {
        id: "cc-by-sa-4.0",
        title: "Creative Commons Attribution Share-Alike 4.0",
        url: "https://creativecommons.org/licenses/by-sa/4.0/",
    },
    Licence {
        id: "cc-zero",
        title: "Creative Commons CCZero 1.0",
        url: "https://creativecommons.org/publicdomain/zero/1.0/",
    },
    Licence {
        id: "odc-by",
        title: "Open Data Commons Attribution License 1.0",
        url: "https://opendatacommons.org/licenses/by/1-0/",
    },
    Licence {
        id: "odc-odbl",
        title: "Open Data Commons Open Database License 1.0",
        url: "https://opendatacommons.org/licenses/odbl/1-0/",
    },
];

pub fn licence(id: &str) -> Option<&'static Licence> {
    LICENCES.iter().find(|l| l.id == id)
}

/// A theme: a code of the EU data-theme vocabulary (which DCAT-AP uses for
/// `dcat:theme`), with the Vietnamese and English labels the portal shows.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub code: &'static str,
    pub vi: &'static str,
    pub en: &'static str,
}

pub const THEMES: &[Theme] = &[
    Theme {
        code: "AGRI",
        vi: "Nông nghiệp, thủy sản, lâm nghiệp và thực phẩm",
        en: "Agriculture, fisheries, forestry and food",
    },
    Theme {
        code: "ECON",
        vi: "Kinh tế và tài chính",
        en: "Economy and finance",
    },
    Theme {
        code: "EDUC",
        vi: "Giáo dục, văn hóa và thể thao",
        en: "Education, culture and sport",
    },
    Theme {
        code: "ENER",
        vi: "Năng lượng",
        en: "Energy",
    },
    Theme {
        code: "ENVI",
        vi: "Môi trường",
        en: "Environment",
    },
    Theme {
        code: "GOVE",
        vi: "Chính phủ và khu vực công",
        en: "Government and public sector",
    },
    Theme {
        code: "HEAL",
        vi: "Y tế",
        en: "Health",
    },
    Theme {
        code: "INTR",
        vi: "Các vấn đề quốc tế",
        en: "International issues",
    },
    Theme {
        code: "JUST",
        vi: "Tư pháp, hệ thống pháp luật và an toàn công cộng",
        en: "Justice, legal system and public safety",
    },
    Theme {
        code: "REGI",
        vi: "Vùng và đô thị",
        en: "Regions and cities",
    },
    Theme {
        code: "SOCI",
        vi: "Dân số và xã hội",
        en: "Population and society",
    },
    Theme {
        code: "TECH",
        vi: "Khoa học và công nghệ",
        en: "Science and technology",
    },
    Theme {
        code: "TRAN",
        vi: "Giao thông vận tải",
        en: "Transport",
    },
];

pub fn theme(code: &str) -> Option<&'static Theme> {
    THEMES.iter().find(|t| t.code.eq_ignore_ascii_case(code))
}

pub const THEME_BASE: &str = "http://publications.europa.eu/resource/authority/data-theme/";
pub const FREQUENCY_BASE: &str = "http://publications.europa.eu/resource/authority/frequency/";

/// Update frequencies: codes of the EU frequency vocabulary (`dct:accrualPeriodicity`).
pub const FREQUENCIES: &[&str] = &[
    "CONT",
    "HOURLY",
    "DAILY",
    "WEEKLY",
    "MONTHLY",
    "QUARTERLY",
    "ANNUAL",
    "IRREG",
];

/// Attribute names that hold personal data, never published whatever a view says
/// (compared without case, `_` or `-`): a citizen's contact and identity, a report's
/// reporter, accounts and devices that identify a person.
const PERSONAL: &[&str] = &[
    "reporter",
    "reportedby",
    "submitter",
    "author",
    "contact",
    "contactpoint",
    "email",
    "emailaddress",
    "phone",
    "phonenumber",
    "telephone",
    "mobile",
    "firstname",
    "lastname",
    "familyname",
    "givenname",
    "fullname",
    "personname",
    "citizen",
    "citizenid",
    "nationalid",
    "identitycard",
    "idcard",
    "passport",
    "dateofbirth",
    "birthdate",
    "accountid",
    "userid",
    "username",
    "deviceid",
    "ipaddress",
    "homeaddress",
    "password",
    "personaldata",
];
/// Name parts that mark personal data wherever they appear in a name.
const PERSONAL_PARTS: &[&str] = &[
    "reporter", "email", "phone", "personal", "citizen", "password",
];
/// Entity types that are people or their accounts: never published.
const PERSONAL_TYPES: &[&str] = &[
    "person", "user", "account", "citizen", "reporter", "contact",
];

fn folded(name: &str) -> String {
    // The name itself, not its prefix: `ex:email` is an email.
    let local = name.rsplit(['/', '#', ':']).next().unwrap_or(name);
    local
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether an attribute name holds personal data.
pub fn is_personal_attr(name: &str) -> bool {
    let f = folded(name);
    PERSONAL.contains(&f.as_str()) || PERSONAL_PARTS.iter().any(|p| f.contains(p))
}

/// Whether an entity type is of people or their accounts.
pub fn is_personal_type(name: &str) -> bool {
    PERSONAL_TYPES.contains(&folded(name).as_str())
}

/// A published view of the hub: what a dataset's distributions hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// The tenant read (empty: the default tenant).
    #[serde(default)]
    pub tenant: String,
    /// Entity types (short names of the core @context).
    pub types: Vec<String>,
    /// An NGSI-LD `q` that narrows the entities; it may name public attributes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// The public attributes: the only ones any distribution shows.
    pub attrs: Vec<String>,
}

/// Vietnamese and English forms of a text (Vietnamese required).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub vi: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub en: String,
}

/// How to reach the publisher about a dataset: a service's name and address, never a
/// person's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub email: String,
}

/// A dataset: metadata and the view it publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// The URL name (CKAN's `name`): lowercase letters, digits, `-` and `_`.
    pub name: String,
    pub title: Text,
    pub description: Text,
    /// The publishing organisation (its name).
    pub organization: String,
    pub contact: Contact,
    /// A theme code ([`THEMES`]).
    pub theme: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Communes covered (their entity ids, `urn:ngsi-ld:AdministrativeArea:…`).
    #[serde(default)]
    pub spatial: Vec<String>,
    /// A licence id ([`LICENCES`]).
    pub licence: String,
    /// An update frequency code ([`FREQUENCIES`]).
    pub frequency: String,
    /// When first published and last changed (ISO 8601, UTC).
    #[serde(default)]
    pub issued: String,
    #[serde(default)]
    pub modified: String,
    pub view: View,
}

/// An organisation (a department of the province) that publishes datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    pub title: Text,
    #[serde(default)]
    pub description: Text,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
}

/// Why a dataset or organisation is refused, by field (CKAN's validation errors).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invalid(pub BTreeMap<String, Vec<String>>);

impl Invalid {
    fn add(&mut self, field: &str, why: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(why.into());
    }

    pub fn field(field: &str, why: impl Into<String>) -> Invalid {
        let mut i = Invalid::default();
        i.add(field, why);
        i
    }

    fn result(self) -> Result<(), Invalid> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// One line naming every field and reason.
    pub fn message(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.join("; ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a name is a valid URL name.
pub fn is_name(name: &str) -> bool {
    (2..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_text(inv: &mut Invalid, field: &str, text: &Text, max: usize, required: bool) {
    if required && text.vi.trim().is_empty() {
        inv.add(field, "a Vietnamese text (vi) is required");
    }
    if text.vi.chars().count() > max || text.en.chars().count() > max {
        inv.add(field, format!("at most {max} characters"));
    }
}

fn is_time(text: &str) -> bool {
    ngsi::entity::parse_time(text).is_some()
}

/// The attribute names a `q` names.
fn q_attrs(expr: &QExpr, out: &mut Vec<String>) {
    match expr {
        QExpr::And(items) | QExpr::Or(items) => items.iter().for_each(|e| q_attrs(e, out)),
        QExpr::Term(t) => out.push(t.path().attr.clone()),
    }
}

impl View {
    /// Checks the view: types and attributes named, none of them personal, and a `q`
    /// that names public attributes only (a filter on another attribute would tell
    /// what it holds).
    pub fn check(&self, inv: &mut Invalid) {
        if let Err(e) = hub::http::negotiate::check_tenant_name(&self.tenant) {
            inv.add("view.tenant", e.detail);
        }
        if self.types.is_empty() || self.types.len() > MAX_LIST {
            inv.add("view.types", format!("1 to {MAX_LIST} entity types"));
        }
        for t in &self.types {
            if !ngsi::entity::is_valid_name(t) {
                inv.add("view.types", format!("{t:?} is not an entity type name"));
            } else if is_personal_type(t) {
                inv.add(
                    "view.types",
                    format!("{t} holds personal data: never published"),
                );
            }
        }
        if self.attrs.is_empty() || self.attrs.len() > MAX_LIST {
            inv.add(
                "view.attrs",
                format!("1 to {MAX_LIST} public attributes, named one by one"),
            );
        }
        for a in &self.attrs {
            if !ngsi::entity::is_valid_name(a) || a == "id" || a == "type" {
                inv.add("view.attrs", format!("{a:?} is not an attribute name"));
            } else if is_personal_attr(a) {
                inv.add(
                    "view.attrs",
                    format!("{a} holds personal data: never published"),
                );
            }
        }
        if let Some(q) = &self.q {
            if q.len() > 2_000 {
                inv.add("view.q", "at most 2000 characters");
            }
            match ngsi::query::parse_q(q) {
                Err(e) => inv.add("view.q", format!("not a valid q: {e}")),
                Ok(expr) => {
                    let mut named = Vec::new();
                    q_attrs(&expr, &mut named);
                    for n in named {
                        if !self.attrs.contains(&n) {
                            inv.add(
                                "view.q",
                                format!("q may name public attributes only, not {n}"),
                            );
                        }
                    }
                }
            }
        }
    }
}

impl Dataset {
    /// Checks every field; all faults at once, by field.
    pub fn check(&self) -> Result<(), Invalid> {
        let mut inv = Invalid::default();
        if !is_name(&self.name) {
            inv.add(
                "name",
                "2 to 100 characters: lowercase letters, digits, - and _",
            );
        }
        check_text(&mut inv, "title", &self.title, MAX_TITLE, true);
        check_text(&mut inv, "notes", &self.description, MAX_TEXT, true);
        if !is_name(&self.organization) {
            inv.add("owner_org", "an organisation's name is required");
        }
        if self.contact.name.chars().count() > MAX_TITLE
            || self.contact.email.chars().count() > MAX_TITLE
        {
            inv.add("maintainer", format!("at most {MAX_TITLE} characters"));
        }
        if !self.contact.email.is_empty() && !self.contact.email.contains('@') {
            inv.add("maintainer_email", "not an email address");
        }
        if theme(&self.theme).is_none() {
            inv.add(
                "theme",
                format!(
                    "one of {}",
                    THEMES.iter().map(|t| t.code).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if self.keywords.len() > MAX_LIST {
            inv.add("tags", format!("at most {MAX_LIST} tags"));
        }
        for k in &self.keywords {
            let n = k.chars().count();
            if !(2..=100).contains(&n) || k.contains([',', '"', '\n']) {
                inv.add(
                    "tags",
                    format!("{k:?}: 2 to 100 characters, no comma or quote"),
                );
            }
        }
        if self.spatial.len() > 500 {
            inv.add("spatial", "at most 500 areas");
        }
        for s in &self.spatial {
            if !ngsi::entity::is_uri(s) {
                inv.add("spatial", format!("{s:?} is not an entity id"));
            }
        }
        if licence(&self.licence).is_none() {
            inv.add(
                "license_id",
                format!(
                    "an open licence: one of {}",
                    LICENCES.iter().map(|l| l.id).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if !FREQUENCIES.contains(&self.frequency.as_str()) {
            inv.add("frequency", format!("one of {}", FREQUENCIES.join(", ")));
        }
        for (field, t) in [("issued", &self.issued), ("modified", &self.modified)] {
            if !t.is_empty() && !is_time(t) {
                inv.add(field, "an ISO 8601 date and time");
            }
        }
        self.view.check(&mut inv);
        inv.result()
    }

    pub fn entity_id(name: &str) -> String {
        format!("urn:ngsi-ld:{DATASET_TYPE}:{name}")
    }

    /// The dataset as a normalized NGSI-LD entity (core @context).
    pub fn to_entity(&self) -> Value {
        as_entity(&Dataset::entity_id(&self.name), DATASET_TYPE, self)
    }

    /// The dataset an entity holds (rendered as key-values, core @context).
    pub fn from_key_values(v: &Value) -> Option<Dataset> {
        from_key_values(v)
    }

    pub fn theme(&self) -> &'static Theme {
        theme(&self.theme).unwrap_or(&THEMES[5])
    }

    pub fn licence(&self) -> &'static Licence {
        licence(&self.licence).unwrap_or(&LICENCES[0])
    }
}

impl Organization {
    pub fn check(&self) -> Result<(), Invalid> {
        let mut inv = Invalid::default();
        if !is_name(&self.name) {
            inv.add(
                "name",
                "2 to 100 characters: lowercase letters, digits, - and _",
            );
        }
        check_text(&mut inv, "title", &self.title, MAX_TITLE, true);
        check_text(&mut inv, "description", &self.description, MAX_TEXT, false);
        if !self.email.is_empty() && !self.email.contains('@') {
            inv.add("email", "not an email address");
        }
        if !self.homepage.is_empty() && url_ok(&self.homepage).is_none() {
            inv.add("homepage", "an http(s) URL");
        }
        inv.result()
    }

    pub fn entity_id(name: &str) -> String {
        format!("urn:ngsi-ld:{ORGANIZATION_TYPE}:{name}")
    }

    pub fn to_entity(&self) -> Value {
        as_entity(
            &Organization::entity_id(&self.name),
            ORGANIZATION_TYPE,
            self,
        )
    }

    pub fn from_key_values(v: &Value) -> Option<Organization> {
        from_key_values(v)
    }
}

/// A record as a normalized NGSI-LD entity: each field a Property.
fn as_entity(id: &str, entity_type: &str, record: &impl Serialize) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(id));
    e.insert("type".into(), json!(entity_type));
    if let Ok(Value::Object(fields)) = serde_json::to_value(record) {
        for (k, v) in fields {
            e.insert(k, json!({"type": "Property", "value": v}));
        }
    }
    Value::Object(e)
}

/// The record an entity holds, from its key-values.
fn from_key_values<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    let mut fields = v.as_object()?.clone();
    fields.remove("id");
    fields.remove("type");
    serde_json::from_value(Value::Object(fields)).ok()
}

/// One distribution of a dataset, as CKAN (a resource) and DCAT show it.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `{dataset}-{key}`: CKAN's resource id.
    pub id: String,
    pub key: &'static str,
    pub name: Text,
    /// CKAN's format label.
    pub format: &'static str,
    pub media_type: &'static str,
    /// The EU file-type code (DCAT's `dct:format`).
    pub file_type: &'static str,
    /// Where it is read (for history: without its period).
    pub url: String,
    /// A file to download as it is (not the NGSI-LD query, not history without a
    /// period).
    pub download: bool,
}

pub const FILE_TYPE_BASE: &str = "http://publications.europa.eu/resource/authority/file-type/";

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Dataset {
    /// The distributions of the dataset, with URLs under `base` (the server's origin).
    pub fn resources(&self, base: &str) -> Vec<Resource> {
        let at = format!("{base}/dataset/{}", self.name);
        let mut query = format!(
            "{base}/ngsi-ld/v1/entities?type={}&attrs={}",
            encode(&self.view.types.join(",")),
            encode(&self.view.attrs.join(","))
        );
        if let Some(q) = &self.view.q {
            query.push_str(&format!("&q={}", encode(q)));
        }
        let text = |vi: &str, en: &str| Text {
            vi: vi.to_string(),
            en: en.to_string(),
        };
        let r = |key: &'static str, name: Text, format, media_type, file_type, url, download| {
            Resource {
                id: format!("{}-{key}", self.name),
                key,
                name,
                format,
                media_type,
                file_type,
                url,
                download,
            }
        };
        vec![
            r(
                "csv",
                text("Dữ liệu hiện tại (CSV)", "Current data (CSV)"),
                "CSV",
                "text/csv",
                "CSV",
                format!("{at}/data.csv"),
                true,
            ),
            r(
                "geojson",
                text("Dữ liệu hiện tại (GeoJSON)", "Current data (GeoJSON)"),
                "GeoJSON",
                "application/geo+json",
                "GEOJSON",
                format!("{at}/data.geojson"),
                true,
            ),
            r(
                "json",
                text("Thực thể NGSI-LD (JSON)", "NGSI-LD entities (JSON)"),
                "JSON",
                "application/json",
                "JSON",
                format!("{at}/data.json"),
                true,
            ),
            r(
                "ngsi-ld",
                text("Truy vấn NGSI-LD trực tiếp", "Live NGSI-LD query"),
                "NGSI-LD",
                "application/ld+json",
                "JSON_LD",
                query,
                false,
            ),
            r(
                "history",
                text(
                    "Lịch sử theo khoảng thời gian (CSV; tham số from, to)",
                    "History by period (CSV; parameters from, to)",
                ),
                "CSV",
                "text/csv",
                "CSV",
                format!("{at}/history.csv"),
                false,
            ),
        ]
    }
}

fn url_ok(text: &str) -> Option<()> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    (!rest.is_empty() && !text.contains([' ', '"', '<', '>'])).then_some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub fn sample() -> Dataset {
        Dataset {
            name: "river-gauges".into(),
            title: Text {
                vi: "Mực nước sông".into(),
                en: "River levels".into(),
            },
            description: Text {
                vi: "Trạm đo mực nước".into(),
                en: String::new(),
            },
            organization: "so-nong-nghiep".into(),
            contact: Contact {
                name: "Phòng dữ liệu".into(),
                email: "data@example.gov.vn".into(),
            },
            theme: "ENVI".into(),
            keywords: vec!["mực nước".into()],
            licence: "cc-by-4.0".into(),
            frequency: "CONT".into(),
            view: View {
                types: vec!["WaterObserved".into()],
                q: Some("waterLevel>0".into()),
                attrs: vec!["waterLevel".into(), "location".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_good_dataset_passes_and_round_trips_as_an_entity() {
        let d = sample();
        assert_eq!(d.check(), Ok(()));
        let e = d.to_entity();
        assert_eq!(e["id"], "urn:ngsi-ld:Dataset:river-gauges");
        let kv: Map<String, Value> = e
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or(v.clone())))
            .collect();
        assert_eq!(Dataset::from_key_values(&Value::Object(kv)), Some(d));
    }

    #[test]
    fn personal_data_is_refused_in_any_spelling() {
        for attr in [
            "reporter",
            "reporterEmail",
            "email",
            "phone_number",
            "first-name",
            "contactPoint",
        ] {
            let mut d = sample();
            d.view.attrs.push(attr.into());
            let err = d.check().unwrap_err();
            assert!(
                err.0["view.attrs"][0].contains("personal"),
                "{attr}: {err:?}"
            );
        }
        let mut d = sample();
        d.view.types = vec!["Person".into()];
        assert!(d.check().unwrap_err().0.contains_key("view.types"));
    }

    #[test]
    fn q_may_name_public_attributes_only() {
        let mut d = sample();
        d.view.q = Some("status==\"closed\"".into());
        let err = d.check().unwrap_err();
        assert!(err.0["view.q"][0].contains("status"), "{err:?}");
        d.view.q = Some("(((".into());
        assert!(d.check().unwrap_err().0.contains_key("view.q"));
    }

    #[test]
    fn bad_fields_are_each_named() {
        let mut d = sample();
        d.name = "Bad Name".into();
        d.licence = "proprietary".into();
        d.theme = "XYZ".into();
        d.frequency = "sometimes".into();
        d.title.vi = String::new();
        d.view.attrs.clear();
        let err = d.check().unwrap_err();
        for field in [
            "name",
            "license_id",
            "theme",
            "frequency",
            "title",
            "view.attrs",
        ] {
            assert!(err.0.contains_key(field), "{field}: {err:?}");
        }
    }
}
