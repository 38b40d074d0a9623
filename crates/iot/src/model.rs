//! Service groups and devices: read from the provisioning API's JSON (the field names
//! of the FIWARE IoT Agent), checked, stored as registry records, and rendered back.

use std::collections::HashSet;

use chrono::Utc;
use ngsi::{Context, Error};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The only resource served: measures come to `POST /iot/json` (and over MQTT).
pub const RESOURCE: &str = "/iot/json";
/// Longest API key, device id or measure name (`object_id`), in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Most attributes, and most static attributes, of one group or device.
pub const MAX_ATTRIBUTES: usize = 200;
/// Most groups or devices in one request.
pub const MAX_PER_REQUEST: usize = 1_000;
/// Longest attribute type, unit code, protocol or transport name.
const MAX_WORD_LEN: usize = 64;

/// How one measure becomes an attribute: the measure's name in payloads (`object_id`,
/// by default the attribute's name), the attribute's name and IoT-Agent type, and its
/// unit (UN/CEFACT code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
}

/// An attribute written on the entity whatever the device sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
}

/// A service group (a "config group"): the devices sharing an API key, the entity
/// type they map to and the attributes they have in common.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceGroup {
    pub apikey: String,
    pub resource: String,
    pub entity_type: String,
    #[serde(default)]
    pub attributes: Vec<AttributeMapping>,
    #[serde(default)]
    pub static_attributes: Vec<StaticAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_attrs: Option<bool>,
    /// Whether a measure from an unknown device of this group provisions it.
    pub autoprovision: bool,
}

/// A device: its id, the API key it sends with, and the entity its measures update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub device_id: String,
    pub apikey: String,
    pub entity_name: String,
    pub entity_type: String,
    #[serde(default)]
    pub attributes: Vec<AttributeMapping>,
    #[serde(default)]
    pub static_attributes: Vec<StaticAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_attrs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Provisioned by its first measure rather than by the API.
    #[serde(default)]
    pub autoprovisioned: bool,
}

/// The entity id of a device that names none: `urn:ngsi-ld:{entity_type}:{device_id}`.
pub fn default_entity_name(entity_type: &str, device_id: &str) -> String {
    format!("urn:ngsi-ld:{entity_type}:{device_id}")
}

fn bad(at: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad_data(format!("{at}: {msg}"))
}

/// A JSON object being read, with the path used in error messages.
struct Obj<'a> {
    at: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(at: String, value: &'a Value) -> Result<Obj<'a>, Error> {
        match value {
            Value::Object(map) => Ok(Obj { at, map }),
            _ => Err(bad(&at, "must be a JSON object")),
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, Error> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(bad(&self.at(key), "must be a string")),
        }
    }

    /// A string member, checked by `check` (given the member's path for its errors).
    fn checked(
        &self,
        key: &str,
        check: fn(&str, &str) -> Result<String, Error>,
    ) -> Result<Option<String>, Error> {
        self.str(key)?.map(|s| check(&self.at(key), s)).transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(&self.at(key), "must be true or false")),
        }
    }

    fn list(&self, key: &str) -> Result<Option<&'a [Value]>, Error> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.as_slice())),
            Some(_) => Err(bad(&self.at(key), "must be an array")),
        }
    }

    /// Members this agent does not implement, refused rather than ignored because
    /// ignoring them would write something else than the client asked for.
    fn refuse(&self, keys: &[&str]) -> Result<(), Error> {
        for key in keys {
            if self.map.contains_key(*key) {
                return Err(bad(&self.at(key), "is not supported by this agent"));
            }
        }
        Ok(())
    }
}

/// An API key, device id or measure name: also a level of an MQTT topic.
fn key(at: &str, s: &str) -> Result<String, Error> {
    if s.is_empty() || s.len() > MAX_KEY_LEN {
        return Err(bad(at, format!("must have 1 to {MAX_KEY_LEN} bytes")));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '+' | '#'))
    {
        return Err(bad(
            at,
            "must not hold spaces, control characters, '/', '+' or '#'",
        ));
    }
    Ok(s.to_string())
}

/// Whether `s` may be an API key, a device id or a measure name.
pub fn is_key(s: &str) -> bool {
    key("", s).is_ok()
}

fn word(at: &str, s: &str) -> Result<String, Error> {
    if s.is_empty() || s.len() > MAX_WORD_LEN || s.chars().any(char::is_control) {
        return Err(bad(at, format!("must have 1 to {MAX_WORD_LEN} bytes")));
    }
    Ok(s.to_string())
}

fn entity_type(at: &str, s: &str) -> Result<String, Error> {
    if s.len() > MAX_KEY_LEN {
        return Err(bad(at, format!("must have at most {MAX_KEY_LEN} bytes")));
    }
    ngsi::entity::expand_type(s, &Context::core()).map_err(|e| bad(at, e.detail))?;
    Ok(s.to_string())
}

fn entity_name(at: &str, s: &str) -> Result<String, Error> {
    if !ngsi::entity::is_uri(s) {
        return Err(bad(
            at,
            format!("{s:?} is not a URI (an entity id such as urn:ngsi-ld:Type:id)"),
        ));
    }
    Ok(s.to_string())
}

fn attr_name(at: &str, s: &str) -> Result<String, Error> {
    ngsi::entity::expand_attr(s, &Context::core()).map_err(|e| bad(at, e.detail))?;
    Ok(s.to_string())
}

/// The unit of an attribute: `unitCode`, or the IoT Agent's `metadata.unitCode`
/// (a string, or an object whose `value` is one). Other metadata is not kept.
fn unit_code(obj: &Obj) -> Result<Option<String>, Error> {
    let from_metadata = match obj.map.get("metadata") {
        None => None,
        Some(Value::Object(meta)) => match meta.get("unitCode") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(u)) => match u.get("value") {
                Some(Value::String(s)) => Some(s.as_str()),
                _ => return Err(bad(&obj.at("metadata.unitCode.value"), "must be a string")),
            },
            Some(_) => return Err(bad(&obj.at("metadata.unitCode"), "must be a string")),
        },
        Some(_) => return Err(bad(&obj.at("metadata"), "must be a JSON object")),
    };
    match obj.str("unitCode")?.or(from_metadata) {
        Some(u) => word(&obj.at("unitCode"), u).map(Some),
        None => Ok(None),
    }
}

fn mapping(at: String, value: &Value) -> Result<AttributeMapping, Error> {
    let obj = Obj::new(at, value)?;
    obj.refuse(&[
        "expression",
        "entity_name",
        "entity_type",
        "reverse",
        "skipValue",
    ])?;
    let name = obj
        .str("name")?
        .ok_or_else(|| bad(&obj.at("name"), "is required"))?;
    Ok(AttributeMapping {
        object_id: obj.checked("object_id", key)?,
        name: attr_name(&obj.at("name"), name)?,
        attr_type: word(&obj.at("type"), obj.str("type")?.unwrap_or("Property"))?,
        unit_code: unit_code(&obj)?,
    })
}

fn static_attribute(at: String, value: &Value) -> Result<StaticAttribute, Error> {
    let obj = Obj::new(at, value)?;
    obj.refuse(&["expression", "link"])?;
    let name = obj
        .str("name")?
        .ok_or_else(|| bad(&obj.at("name"), "is required"))?;
    let value = match obj.map.get("value") {
        None | Some(Value::Null) => return Err(bad(&obj.at("value"), "is required")),
        Some(v) => v.clone(),
    };
    let s = StaticAttribute {
        name: attr_name(&obj.at("name"), name)?,
        attr_type: word(&obj.at("type"), obj.str("type")?.unwrap_or("Property"))?,
        value,
        unit_code: unit_code(&obj)?,
    };
    // Checked now, so that every later measure can write it.
    crate::measure::attribute(
        &s.name,
        &s.attr_type,
        &s.value,
        s.unit_code.as_deref(),
        None,
        Utc::now(),
    )
    .map_err(|reason| bad(&obj.at("value"), reason))?;
    Ok(s)
}

fn mappings(obj: &Obj, key_name: &str) -> Result<Option<Vec<AttributeMapping>>, Error> {
    let Some(items) = obj.list(key_name)? else {
        return Ok(None);
    };
    let at = obj.at(key_name);
    if items.len() > MAX_ATTRIBUTES {
        return Err(bad(&at, format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    let mut measures = HashSet::new();
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let m = mapping(format!("{at}[{i}]"), item)?;
        let measure = m.object_id.clone().unwrap_or_else(|| m.name.clone());
        if !measures.insert(measure.clone()) {
            return Err(bad(&at, format!("two attributes read measure {measure:?}")));
        }
        if !names.insert(m.name.clone()) {
            return Err(bad(&at, format!("two attributes are named {:?}", m.name)));
        }
        out.push(m);
    }
    Ok(Some(out))
}

fn statics(obj: &Obj) -> Result<Option<Vec<StaticAttribute>>, Error> {
    let Some(items) = obj.list("static_attributes")? else {
        return Ok(None);
    };
    let at = obj.at("static_attributes");
    if items.len() > MAX_ATTRIBUTES {
        return Err(bad(&at, format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = static_attribute(format!("{at}[{i}]"), item)?;
        if !names.insert(s.name.clone()) {
            return Err(bad(&at, format!("two attributes are named {:?}", s.name)));
        }
        out.push(s);
    }
    Ok(Some(out))
}

/// The items of a creation body: `{"services": [...]}` or `{"devices": [...]}`.
pub fn items<'a>(body: &'a Value, member: &str) -> Result<&'a [Value], Error> {
    let obj = Obj::new("the body".into(), body)?;
    let items = obj
        .list(member)?
        .ok_or_else(|| bad(&obj.at(member), "is required"))?;
    if items.is_empty() || items.len() > MAX_PER_REQUEST {
        return Err(bad(
            &obj.at(member),
            format!("must hold 1 to {MAX_PER_REQUEST} items"),
        ));
    }
    Ok(items)
}

/// Puts what an update gives in `slot`; leaves it as it is when the update omits it.
fn set<T>(slot: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *slot = v;
    }
}

/// What names the thing an update is for (`what`): an update may repeat it, not
/// change it.
fn unchanged(given: Option<String>, current: &str, what: &str) -> Result<(), Error> {
    match given {
        Some(v) if v != current => Err(Error::bad_data(format!("{what} cannot be changed"))),
        _ => Ok(()),
    }
}

/// A service group as a request gives it: every member optional (an update names only
/// what it changes).
#[derive(Debug, Default)]
pub struct GroupInput {
    pub apikey: Option<String>,
    pub entity_type: Option<String>,
    pub attributes: Option<Vec<AttributeMapping>>,
    pub static_attributes: Option<Vec<StaticAttribute>>,
    pub explicit_attrs: Option<bool>,
    pub autoprovision: Option<bool>,
}

/// Reads a service group. `cbroker`, `cbHost`, `trust`, `lazy`, `commands`,
/// `timestamp` and other members of the IoT Agent are accepted and not kept.
pub fn parse_group(at: String, value: &Value) -> Result<GroupInput, Error> {
    let obj = Obj::new(at, value)?;
    obj.refuse(&["entityNameExp", "expressionLanguage"])?;
    let resource = obj.str("resource")?;
    if let Some(r) = resource
        && r != RESOURCE
    {
        return Err(bad(
            &obj.at("resource"),
            format!("only {RESOURCE} is served, not {r:?}"),
        ));
    }
    let entity_type_value = match obj.str("entity_type")? {
        Some(t) => Some(t),
        None => obj.str("type")?,
    };
    Ok(GroupInput {
        apikey: obj.checked("apikey", key)?,
        entity_type: entity_type_value
            .map(|t| entity_type(&obj.at("entity_type"), t))
            .transpose()?,
        attributes: mappings(&obj, "attributes")?,
        static_attributes: statics(&obj)?,
        explicit_attrs: obj.bool("explicitAttrs")?,
        autoprovision: obj.bool("autoprovision")?,
    })
}

impl GroupInput {
    /// A new group: an API key and an entity type are required.
    pub fn into_group(self, at: &str) -> Result<ServiceGroup, Error> {
        Ok(ServiceGroup {
            apikey: self
                .apikey
                .ok_or_else(|| bad(&format!("{at}.apikey"), "is required"))?,
            resource: RESOURCE.to_string(),
            entity_type: self
                .entity_type
                .ok_or_else(|| bad(&format!("{at}.entity_type"), "is required"))?,
            attributes: self.attributes.unwrap_or_default(),
            static_attributes: self.static_attributes.unwrap_or_default(),
            explicit_attrs: self.explicit_attrs,
            autoprovision: self.autoprovision.unwrap_or(true),
        })
    }

    /// Applies an update: the members given replace the group's. The API key cannot
    /// change (it names the group).
    pub fn apply_to(self, group: &mut ServiceGroup) -> Result<(), Error> {
        unchanged(self.apikey, &group.apikey, "the apikey of a service group")?;
        set(&mut group.entity_type, self.entity_type);
        set(&mut group.attributes, self.attributes);
        set(&mut group.static_attributes, self.static_attributes);
        set(&mut group.explicit_attrs, self.explicit_attrs.map(Some));
        set(&mut group.autoprovision, self.autoprovision);
        Ok(())
    }
}

/// A device as a request gives it: every member optional.
#[derive(Debug, Default)]
pub struct DeviceInput {
    pub device_id: Option<String>,
    pub apikey: Option<String>,
    pub entity_name: Option<String>,
    pub entity_type: Option<String>,
    pub attributes: Option<Vec<AttributeMapping>>,
    pub static_attributes: Option<Vec<StaticAttribute>>,
    pub explicit_attrs: Option<bool>,
    pub protocol: Option<String>,
    pub transport: Option<String>,
}

/// Reads a device. `lazy`, `commands`, `timezone`, `endpoint` and other members of the
/// IoT Agent are accepted and not kept; `protocol` and `transport` are kept for
/// display only.
pub fn parse_device(at: String, value: &Value) -> Result<DeviceInput, Error> {
    let obj = Obj::new(at, value)?;
    Ok(DeviceInput {
        device_id: obj.checked("device_id", key)?,
        apikey: obj.checked("apikey", key)?,
        entity_name: obj.checked("entity_name", entity_name)?,
        entity_type: obj.checked("entity_type", entity_type)?,
        attributes: mappings(&obj, "attributes")?,
        static_attributes: statics(&obj)?,
        explicit_attrs: obj.bool("explicitAttrs")?,
        protocol: obj.checked("protocol", word)?,
        transport: obj.checked("transport", word)?,
    })
}

impl DeviceInput {
    /// A new device. Its API key is the one given, else that of the tenant's only
    /// service group (`group`); its entity type the one given, else the group's.
    pub fn into_device(self, at: &str, group: Option<&ServiceGroup>) -> Result<Device, Error> {
        let device_id = self
            .device_id
            .ok_or_else(|| bad(&format!("{at}.device_id"), "is required"))?;
        let apikey = self
            .apikey
            .or_else(|| group.map(|g| g.apikey.clone()))
            .ok_or_else(|| {
                bad(
                    &format!("{at}.apikey"),
                    "is required (the tenant has not exactly one service group to take it from)",
                )
            })?;
        let entity_type = self
            .entity_type
            .or_else(|| {
                group
                    .filter(|g| g.apikey == apikey)
                    .map(|g| g.entity_type.clone())
            })
            .ok_or_else(|| {
                bad(
                    &format!("{at}.entity_type"),
                    "is required (no service group of this apikey gives one)",
                )
            })?;
        let entity_name = match self.entity_name {
            Some(n) => n,
            None => entity_name(
                &format!("{at}.entity_name"),
                &default_entity_name(&entity_type, &device_id),
            )?,
        };
        Ok(Device {
            device_id,
            apikey,
            entity_name,
            entity_type,
            attributes: self.attributes.unwrap_or_default(),
            static_attributes: self.static_attributes.unwrap_or_default(),
            explicit_attrs: self.explicit_attrs,
            protocol: self.protocol,
            transport: self.transport,
            autoprovisioned: false,
        })
    }

    /// Applies an update: the members given replace the device's. The device id
    /// cannot change (it names the device).
    pub fn apply_to(self, device: &mut Device) -> Result<(), Error> {
        unchanged(
            self.device_id,
            &device.device_id,
            "the device_id of a device",
        )?;
        set(&mut device.apikey, self.apikey);
        set(&mut device.entity_name, self.entity_name);
        set(&mut device.entity_type, self.entity_type);
        set(&mut device.attributes, self.attributes);
        set(&mut device.static_attributes, self.static_attributes);
        set(&mut device.explicit_attrs, self.explicit_attrs.map(Some));
        set(&mut device.protocol, self.protocol.map(Some));
        set(&mut device.transport, self.transport.map(Some));
        Ok(())
    }
}

fn render_mapping(m: &AttributeMapping) -> Value {
    let mut out = Map::new();
    if let Some(o) = &m.object_id {
        out.insert("object_id".into(), json!(o));
    }
    out.insert("name".into(), json!(m.name));
    out.insert("type".into(), json!(m.attr_type));
    if let Some(u) = &m.unit_code {
        out.insert(
            "metadata".into(),
            json!({"unitCode": {"type": "Text", "value": u}}),
        );
    }
    Value::Object(out)
}

fn render_static(s: &StaticAttribute) -> Value {
    let mut out = json!({"name": s.name, "type": s.attr_type, "value": s.value});
    if let (Some(u), Some(obj)) = (&s.unit_code, out.as_object_mut()) {
        obj.insert(
            "metadata".into(),
            json!({"unitCode": {"type": "Text", "value": u}}),
        );
    }
    out
}

impl ServiceGroup {
    /// The group as the provisioning API shows it.
    pub fn render(&self, tenant: &str) -> Value {
        let mut out = json!({
            "apikey": self.apikey,
            "resource": self.resource,
            "entity_type": self.entity_type,
            "service": tenant,
            "subservice": "/",
            "autoprovision": self.autoprovision,
            "attributes": self.attributes.iter().map(render_mapping).collect::<Vec<_>>(),
            "static_attributes": self.static_attributes.iter().map(render_static).collect::<Vec<_>>(),
        });
        if let (Some(e), Some(obj)) = (self.explicit_attrs, out.as_object_mut()) {
            obj.insert("explicitAttrs".into(), json!(e));
        }
        out
    }
}

impl Device {
    /// The device as the provisioning API shows it.
    pub fn render(&self, tenant: &str) -> Value {
        let mut out = json!({
            "device_id": self.device_id,
            "service": tenant,
            "service_path": "/",
            "apikey": self.apikey,
            "entity_name": self.entity_name,
            "entity_type": self.entity_type,
            "attributes": self.attributes.iter().map(render_mapping).collect::<Vec<_>>(),
            "static_attributes": self.static_attributes.iter().map(render_static).collect::<Vec<_>>(),
            "autoprovisioned": self.autoprovisioned,
        });
        if let Some(obj) = out.as_object_mut() {
            if let Some(e) = self.explicit_attrs {
                obj.insert("explicitAttrs".into(), json!(e));
            }
            if let Some(p) = &self.protocol {
                obj.insert("protocol".into(), json!(p));
            }
            if let Some(t) = &self.transport {
                obj.insert("transport".into(), json!(t));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A device body: the error's detail must contain `expected` (Ok: parses).
    fn check_device(body: Value, expected: Result<(), &str>) {
        let got = parse_device("devices[0]".into(), &body)
            .and_then(|d| d.into_device("devices[0]", None));
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(part)) => assert!(e.detail.contains(part), "{body}: {}", e.detail),
            (got, expected) => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn devices_are_checked() {
        let ok = json!({"device_id": "d1", "apikey": "k", "entity_type": "Thermometer"});
        check_device(ok.clone(), Ok(()));
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        check_device(with("device_id", json!("a/b")), Err("devices[0].device_id"));
        check_device(with("device_id", json!("")), Err("1 to 256"));
        check_device(with("device_id", json!(7)), Err("must be a string"));
        check_device(with("apikey", json!("a+b")), Err("'+'"));
        check_device(with("entity_type", json!("Bad Type")), Err("entity_type"));
        check_device(with("entity_name", json!("Thermometer1")), Err("not a URI"));
        check_device(
            with(
                "attributes",
                json!([{"object_id": "t", "name": "temperature", "type": "Number"}, {"object_id": "t", "name": "t2"}]),
            ),
            Err("two attributes read measure \"t\""),
        );
        check_device(
            with("attributes", json!([{"object_id": "t", "type": "Number"}])),
            Err("attributes[0].name: is required"),
        );
        check_device(
            with("attributes", json!([{"name": "id"}])),
            Err("attributes[0].name"),
        );
        check_device(
            with("attributes", json!([{"name": "v", "expression": "v*2"}])),
            Err("attributes[0].expression: is not supported"),
        );
        check_device(
            with(
                "static_attributes",
                json!([{"name": "category", "type": "Number", "value": "abc"}]),
            ),
            Err("static_attributes[0].value: \"abc\" is not a number"),
        );
        check_device(
            with("static_attributes", json!([{"name": "category"}])),
            Err("value: is required"),
        );
        check_device(
            with(
                "attributes",
                Value::Array(vec![json!({"name": "a"}); MAX_ATTRIBUTES + 1]),
            ),
            Err("at most"),
        );
        check_device(
            json!({"device_id": "d1", "entity_type": "T"}),
            Err("apikey: is required"),
        );
        check_device(
            json!({"device_id": "d1", "apikey": "k"}),
            Err("entity_type: is required"),
        );
        check_device(json!([1]), Err("must be a JSON object"));
    }

    #[test]
    fn a_device_takes_what_it_lacks_from_its_group() {
        let group = parse_group(
            "services[0]".into(),
            &json!({"apikey": "k", "entity_type": "Gauge", "resource": "/iot/json"}),
        )
        .unwrap()
        .into_group("services[0]")
        .unwrap();
        assert!(group.autoprovision);
        let device = parse_device(
            "devices[0]".into(),
            &json!({"device_id": "g1", "attributes": [{"object_id": "l", "name": "level", "type": "Number", "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}}]}),
        )
        .unwrap()
        .into_device("devices[0]", Some(&group))
        .unwrap();
        assert_eq!(device.apikey, "k");
        assert_eq!(device.entity_type, "Gauge");
        assert_eq!(device.entity_name, "urn:ngsi-ld:Gauge:g1");
        assert_eq!(device.attributes[0].unit_code.as_deref(), Some("MTR"));
        let shown = device.render("t");
        assert_eq!(
            shown["attributes"][0]["metadata"]["unitCode"]["value"],
            "MTR"
        );
        // Stored and read back unchanged.
        let stored = serde_json::to_value(&device).unwrap();
        assert_eq!(serde_json::from_value::<Device>(stored).unwrap(), device);
    }

    #[test]
    fn groups_are_checked() {
        for (body, part) in [
            (json!({"apikey": "k"}), "entity_type: is required"),
            (json!({"entity_type": "T"}), "apikey: is required"),
            (
                json!({"apikey": "k", "entity_type": "T", "resource": "/iot/d"}),
                "only /iot/json",
            ),
            (
                json!({"apikey": "k", "entity_type": "T", "autoprovision": "yes"}),
                "true or false",
            ),
            (
                json!({"apikey": "k", "entity_type": "T", "explicitAttrs": "['a']"}),
                "true or false",
            ),
        ] {
            let e = parse_group("services[0]".into(), &body)
                .and_then(|g| g.into_group("services[0]"))
                .unwrap_err();
            assert!(e.detail.contains(part), "{body}: {}", e.detail);
        }
        // The IoT Agent's `type` for the entity type, and members it has that are not kept.
        let g = parse_group(
            "s".into(),
            &json!({"apikey": "k", "type": "T", "cbroker": "http://orion:1026", "lazy": [], "autoprovision": false}),
        )
        .unwrap()
        .into_group("s")
        .unwrap();
        assert_eq!(g.entity_type, "T");
        assert!(!g.autoprovision);
    }
}
