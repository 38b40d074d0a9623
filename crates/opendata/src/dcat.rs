//! The DCAT-AP 3 catalogue: datasets, their distributions and publishers as an RDF
//! graph, written as Turtle, JSON-LD (with its @context embedded) or RDF/XML. Paged
//! as ckanext-dcat pages it (Hydra, 10 datasets a page). Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::model::{
    ARTICLE_43, Dataset, FILE_TYPE_BASE, FREQUENCY_BASE, Organization, THEME_BASE, Text,
};

/// Datasets a page of the catalogue holds.
pub const PAGE_SIZE: usize = 10;

const PREFIXES: &[(&str, &str)] = &[
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("hydra", "http://www.w3.org/ns/hydra/core#"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
];

/// A node: an IRI or a blank node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Iri(String),
    Blank(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Node(Node),
    /// A literal: text, and a language tag or a datatype IRI.
    Literal {
        text: String,
        lang: Option<String>,
        datatype: Option<String>,
    },
}

/// An RDF graph, kept in the order it is built, subjects grouped.
#[derive(Debug, Default)]
pub struct Graph {
    subjects: Vec<Node>,
    triples: BTreeMap<Node, Vec<(String, Object)>>,
    blanks: usize,
}

fn expand(term: &str) -> String {
    match term.split_once(':') {
        Some((p, local)) => PREFIXES
            .iter()
            .find(|(q, _)| *q == p)
            .map_or_else(|| term.to_string(), |(_, ns)| format!("{ns}{local}")),
        None => term.to_string(),
    }
}

fn iri(i: impl Into<String>) -> Object {
    Object::Node(Node::Iri(i.into()))
}

fn lit(text: impl Into<String>) -> Object {
    Object::Literal {
        text: text.into(),
        lang: None,
        datatype: None,
    }
}

fn typed(text: impl Into<String>, datatype: &str) -> Object {
    Object::Literal {
        text: text.into(),
        lang: None,
        datatype: Some(expand(datatype)),
    }
}

fn lang(text: impl Into<String>, tag: &str) -> Object {
    Object::Literal {
        text: text.into(),
        lang: Some(tag.into()),
        datatype: None,
    }
}

impl Graph {
    pub fn add(&mut self, s: &Node, p: &str, o: Object) {
        if !self.triples.contains_key(s) {
            self.subjects.push(s.clone());
        }
        let list = self.triples.entry(s.clone()).or_default();
        let t = (expand(p), o);
        // A graph is a set: a node met twice (a publisher, a theme) is said once.
        if !list.contains(&t) {
            list.push(t);
        }
    }

    pub fn blank(&mut self) -> Node {
        self.blanks += 1;
        Node::Blank(format!("b{}", self.blanks))
    }

    fn texts(&mut self, s: &Node, p: &str, t: &Text) {
        self.add(s, p, lang(t.vi.clone(), "vi"));
        if !t.en.is_empty() {
            self.add(s, p, lang(t.en.clone(), "en"));
        }
    }

    /// How many triples.
    pub fn len(&self) -> usize {
        self.triples.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.triples.is_empty()
    }
}

/// What the catalogue says of itself.
#[derive(Debug, Clone)]
pub struct CatalogueInfo {
    pub title: Text,
    pub description: Text,
    pub publisher: Text,
}

impl Default for CatalogueInfo {
    fn default() -> Self {
        CatalogueInfo {
            title: Text {
                vi: "Cổng dữ liệu mở tỉnh Quảng Trị".into(),
                en: "Quảng Trị open data portal".into(),
            },
            description: Text {
                vi: "Dữ liệu mở của tỉnh, luôn cập nhật từ nền tảng dữ liệu đô thị thông minh."
                    .into(),
                en: "The province's open data, always current from the smart-city data hub.".into(),
            },
            publisher: Text {
                vi: "Ủy ban nhân dân tỉnh Quảng Trị".into(),
                en: "Quảng Trị Provincial People's Committee".into(),
            },
        }
    }
}

/// A page of the catalogue: which page, of how many datasets, in which format.
pub struct Paging {
    pub page: usize,
    pub total: usize,
    /// The URL of the catalogue in this format, without `?page=`.
    pub url: String,
    /// Other query parameters to keep in the page links (`modified_since`).
    pub keep: String,
}

fn organization(g: &mut Graph, base: &str, o: &Organization) -> Node {
    let node = Node::Iri(format!("{base}/organization/{}", o.name));
    g.add(&node, "rdf:type", iri(expand("foaf:Agent")));
    g.add(&node, "rdf:type", iri(expand("foaf:Organization")));
    g.texts(&node, "foaf:name", &o.title);
    if !o.homepage.is_empty() {
        g.add(&node, "foaf:homepage", iri(o.homepage.clone()));
    }
    if !o.email.is_empty() {
        g.add(&node, "foaf:mbox", iri(format!("mailto:{}", o.email)));
    }
    node
}

/// Adds a dataset, its distributions and its publisher; returns its node.
pub fn dataset(g: &mut Graph, base: &str, d: &Dataset, org: Option<&Organization>) -> Node {
    let node = Node::Iri(format!("{base}/dataset/{}", d.name));
    g.add(&node, "rdf:type", iri(expand("dcat:Dataset")));
    g.add(&node, "dct:identifier", lit(d.name.clone()));
    g.texts(&node, "dct:title", &d.title);
    g.texts(&node, "dct:description", &d.description);
    let publisher = match org {
        Some(o) => organization(g, base, o),
        None => {
            let n = Node::Iri(format!("{base}/organization/{}", d.organization));
            g.add(&n, "rdf:type", iri(expand("foaf:Agent")));
            g.add(&n, "foaf:name", lit(d.organization.clone()));
            n
        }
    };
    g.add(&node, "dct:publisher", Object::Node(publisher));
    if !d.contact.name.is_empty() || !d.contact.email.is_empty() {
        let c = g.blank();
        g.add(&c, "rdf:type", iri(expand("vcard:Organization")));
        if !d.contact.name.is_empty() {
            g.add(&c, "vcard:fn", lit(d.contact.name.clone()));
        }
        if !d.contact.email.is_empty() {
            g.add(
                &c,
                "vcard:hasEmail",
                iri(format!("mailto:{}", d.contact.email)),
            );
        }
        g.add(&node, "dcat:contactPoint", Object::Node(c));
    }
    let theme = d.theme();
    let theme_node = Node::Iri(format!("{THEME_BASE}{}", theme.code));
    g.add(&node, "dcat:theme", Object::Node(theme_node.clone()));
    g.add(&theme_node, "rdf:type", iri(expand("skos:Concept")));
    g.add(&theme_node, "skos:prefLabel", lang(theme.vi, "vi"));
    g.add(&theme_node, "skos:prefLabel", lang(theme.en, "en"));
    for k in &d.keywords {
        g.add(&node, "dcat:keyword", lang(k.clone(), "vi"));
    }
    for s in &d.spatial {
        let area = Node::Iri(s.clone());
        g.add(&node, "dct:spatial", Object::Node(area.clone()));
        g.add(&area, "rdf:type", iri(expand("dct:Location")));
    }
    g.add(
        &node,
        "dct:accrualPeriodicity",
        iri(format!("{FREQUENCY_BASE}{}", d.frequency)),
    );
    if !d.issued.is_empty() {
        g.add(&node, "dct:issued", typed(d.issued.clone(), "xsd:dateTime"));
    }
    if !d.modified.is_empty() {
        g.add(
            &node,
            "dct:modified",
            typed(d.modified.clone(), "xsd:dateTime"),
        );
    }
    g.add(
        &node,
        "dcat:landingPage",
        iri(format!("{base}/dataset/{}", d.name)),
    );
    g.add(
        &node,
        "dct:accessRights",
        iri("http://publications.europa.eu/resource/authority/access-right/PUBLIC"),
    );
    let licence = d.licence();
    let licence_node = Node::Iri(licence.url.to_string());
    g.add(
        &licence_node,
        "rdf:type",
        iri(expand("dct:LicenseDocument")),
    );
    g.add(&licence_node, "rdfs:label", lit(licence.title));
    for r in d.resources(base) {
        let dist = Node::Iri(format!("{base}/dataset/{}/resource/{}", d.name, r.key));
        g.add(&node, "dcat:distribution", Object::Node(dist.clone()));
        g.add(&dist, "rdf:type", iri(expand("dcat:Distribution")));
        g.texts(&dist, "dct:title", &r.name);
        g.add(&dist, "dcat:accessURL", iri(r.url.clone()));
        if r.download {
            g.add(&dist, "dcat:downloadURL", iri(r.url.clone()));
        }
        g.add(
            &dist,
            "dct:format",
            iri(format!("{FILE_TYPE_BASE}{}", r.file_type)),
        );
        g.add(
            &dist,
            "dcat:mediaType",
            iri(format!(
                "https://www.iana.org/assignments/media-types/{}",
                r.media_type
            )),
        );
        g.add(&dist, "dct:license", Object::Node(licence_node.clone()));
        let rights = Node::Iri(format!("{base}/rights/article-43"));
        g.add(&rights, "rdf:type", iri(expand("dct:RightsStatement")));
        g.add(&rights, "rdfs:label", lit(ARTICLE_43));
        g.add(&dist, "dct:rights", Object::Node(rights));
        if !d.modified.is_empty() {
            g.add(
                &dist,
                "dct:modified",
                typed(d.modified.clone(), "xsd:dateTime"),
            );
        }
    }
    node
}

/// The catalogue: one page of its datasets (all of them when `paging` is None).
pub fn catalogue(
    base: &str,
    info: &CatalogueInfo,
    datasets: &[Dataset],
    orgs: &[Organization],
    paging: Option<&Paging>,
) -> Graph {
    let mut g = Graph::default();
    let cat = Node::Iri(format!("{base}/catalog"));
    g.add(&cat, "rdf:type", iri(expand("dcat:Catalog")));
    g.texts(&cat, "dct:title", &info.title);
    g.texts(&cat, "dct:description", &info.description);
    let publisher = Node::Iri(format!("{base}/organization"));
    g.add(&publisher, "rdf:type", iri(expand("foaf:Agent")));
    g.texts(&publisher, "foaf:name", &info.publisher);
    g.add(&cat, "dct:publisher", Object::Node(publisher));
    g.add(&cat, "foaf:homepage", iri(format!("{base}/")));
    g.add(
        &cat,
        "dct:language",
        iri("http://publications.europa.eu/resource/authority/language/VIE"),
    );
    g.add(
        &cat,
        "dcat:themeTaxonomy",
        iri("http://publications.europa.eu/resource/authority/data-theme"),
    );
    if let Some(m) = datasets.iter().map(|d| d.modified.as_str()).max()
        && !m.is_empty()
    {
        g.add(&cat, "dct:modified", typed(m, "xsd:dateTime"));
    }
    for d in datasets {
        let org = orgs.iter().find(|o| o.name == d.organization);
        let node = dataset(&mut g, base, d, org);
        g.add(&cat, "dcat:dataset", Object::Node(node));
    }
    if let Some(p) = paging {
        let last = p.total.div_ceil(PAGE_SIZE).max(1);
        let link = |n: usize| iri(format!("{}?{}page={n}", p.url, p.keep));
        let page = Node::Iri(format!("{}?{}page={}", p.url, p.keep, p.page));
        g.add(&page, "rdf:type", iri(expand("hydra:PagedCollection")));
        g.add(
            &page,
            "hydra:totalItems",
            typed(p.total.to_string(), "xsd:integer"),
        );
        g.add(
            &page,
            "hydra:itemsPerPage",
            typed(PAGE_SIZE.to_string(), "xsd:integer"),
        );
        g.add(&page, "hydra:firstPage", link(1));
        g.add(&page, "hydra:lastPage", link(last));
        if p.page > 1 {
            g.add(&page, "hydra:previousPage", link(p.page - 1));
        }
        if p.page < last {
            g.add(&page, "hydra:nextPage", link(p.page + 1));
        }
    }
    g
}

// ---- Writing ----

fn compact(i: &str) -> Option<String> {
    PREFIXES.iter().find_map(|(p, ns)| {
        let local = i.strip_prefix(ns)?;
        (!local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then(|| format!("{p}:{local}"))
    })
}

fn turtle_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An IRI in `<...>`, with the characters Turtle forbids there escaped.
fn turtle_iri(i: &str) -> String {
    let mut out = String::from("<");
    for c in i.chars() {
        if c <= ' ' || "<>\"{}|^`\\".contains(c) {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('>');
    out
}

fn turtle_node(n: &Node) -> String {
    match n {
        Node::Iri(i) => compact(i).unwrap_or_else(|| turtle_iri(i)),
        Node::Blank(b) => format!("_:{b}"),
    }
}

impl Graph {
    /// Turtle.
    pub fn to_turtle(&self) -> String {
        let mut out = String::new();
        for (p, ns) in PREFIXES {
            let _ = writeln!(out, "@prefix {p}: <{ns}> .");
        }
        for s in &self.subjects {
            out.push('\n');
            out.push_str(&turtle_node(s));
            let list = &self.triples[s];
            for (n, (p, o)) in list.iter().enumerate() {
                let p = if p == &expand("rdf:type") {
                    "a".to_string()
                } else {
                    compact(p).unwrap_or_else(|| turtle_iri(p))
                };
                let o = match o {
                    Object::Node(node) => turtle_node(node),
                    Object::Literal {
                        text,
                        lang,
                        datatype,
                    } => {
                        let mut l = turtle_string(text);
                        if let Some(t) = lang {
                            let _ = write!(l, "@{t}");
                        } else if let Some(d) = datatype {
                            let _ = write!(l, "^^{}", compact(d).unwrap_or_else(|| turtle_iri(d)));
                        }
                        l
                    }
                };
                let end = if n + 1 == list.len() { " ." } else { " ;" };
                let _ = write!(out, "\n    {p} {o}{end}");
            }
            out.push('\n');
        }
        out
    }

    /// JSON-LD, its @context (the prefixes) embedded.
    pub fn to_json_ld(&self) -> Value {
        let ctx: Map<String, Value> = PREFIXES
            .iter()
            .map(|(p, ns)| (p.to_string(), json!(ns)))
            .collect();
        let node_id = |n: &Node| match n {
            Node::Iri(i) => i.clone(),
            Node::Blank(b) => format!("_:{b}"),
        };
        let graph: Vec<Value> = self
            .subjects
            .iter()
            .map(|s| {
                let mut obj = Map::new();
                obj.insert("@id".into(), json!(node_id(s)));
                let mut types = Vec::new();
                let mut props: Map<String, Value> = Map::new();
                for (p, o) in &self.triples[s] {
                    if *p == expand("rdf:type") {
                        if let Object::Node(Node::Iri(t)) = o {
                            types.push(json!(compact(t).unwrap_or_else(|| t.clone())));
                        }
                        continue;
                    }
                    let v = match o {
                        Object::Node(n) => json!({"@id": node_id(n)}),
                        Object::Literal {
                            text,
                            lang: Some(l),
                            ..
                        } => json!({"@value": text, "@language": l}),
                        Object::Literal {
                            text,
                            datatype: Some(d),
                            ..
                        } => json!({"@value": text, "@type": compact(d).unwrap_or_else(|| d.clone())}),
                        Object::Literal { text, .. } => json!({"@value": text}),
                    };
                    let key = compact(p).unwrap_or_else(|| p.clone());
                    match props.get_mut(&key) {
                        Some(Value::Array(a)) => a.push(v),
                        _ => {
                            props.insert(key, json!([v]));
                        }
                    }
                }
                if !types.is_empty() {
                    obj.insert("@type".into(), Value::Array(types));
                }
                obj.extend(props);
                Value::Object(obj)
            })
            .collect();
        json!({"@context": ctx, "@graph": graph})
    }

    /// RDF/XML.
    pub fn to_rdf_xml(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rdf:RDF");
        for (p, ns) in PREFIXES {
            let _ = write!(out, "\n    xmlns:{p}=\"{ns}\"");
        }
        out.push_str(">\n");
        for s in &self.subjects {
            match s {
                Node::Iri(i) => {
                    let _ = writeln!(out, "  <rdf:Description rdf:about=\"{}\">", esc(i));
                }
                Node::Blank(b) => {
                    let _ = writeln!(out, "  <rdf:Description rdf:nodeID=\"{b}\">");
                }
            }
            for (p, o) in &self.triples[s] {
                // Every predicate here is of a declared prefix.
                let Some(name) = compact(p) else { continue };
                match o {
                    Object::Node(Node::Iri(i)) => {
                        let _ = writeln!(out, "    <{name} rdf:resource=\"{}\"/>", esc(i));
                    }
                    Object::Node(Node::Blank(b)) => {
                        let _ = writeln!(out, "    <{name} rdf:nodeID=\"{b}\"/>");
                    }
                    Object::Literal {
                        text,
                        lang,
                        datatype,
                    } => {
                        let attr = match (lang, datatype) {
                            (Some(l), _) => format!(" xml:lang=\"{}\"", esc(l)),
                            (None, Some(d)) => format!(" rdf:datatype=\"{}\"", esc(d)),
                            _ => String::new(),
                        };
                        let _ = writeln!(out, "    <{name}{attr}>{}</{name}>", esc(text));
                    }
                }
            }
            out.push_str("  </rdf:Description>\n");
        }
        out.push_str("</rdf:RDF>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_iris_are_escaped() {
        assert_eq!(turtle_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(turtle_iri("http://x/a b>"), "<http://x/a%20b%3E>");
        assert_eq!(
            compact("http://purl.org/dc/terms/title").as_deref(),
            Some("dct:title")
        );
        assert_eq!(compact("http://purl.org/dc/terms/a.b"), None);
    }

    #[test]
    fn a_graph_is_written_in_the_three_syntaxes() {
        let mut g = Graph::default();
        let s = Node::Iri("http://x/c".into());
        g.add(&s, "rdf:type", iri(expand("dcat:Catalog")));
        g.add(&s, "dct:title", lang("Đô thị <&>", "vi"));
        let b = g.blank();
        g.add(&s, "dct:publisher", Object::Node(b.clone()));
        g.add(&b, "foaf:name", lit("A"));
        let ttl = g.to_turtle();
        assert!(
            ttl.contains("<http://x/c>\n    a dcat:Catalog ;\n    dct:title \"Đô thị <&>\"@vi ;"),
            "{ttl}"
        );
        assert!(ttl.contains("_:b1\n    foaf:name \"A\" ."), "{ttl}");
        let jl = g.to_json_ld();
        assert_eq!(jl["@graph"][0]["@type"][0], "dcat:Catalog");
        assert_eq!(jl["@graph"][0]["dct:title"][0]["@language"], "vi");
        assert_eq!(jl["@context"]["dct"], "http://purl.org/dc/terms/");
        let xml = g.to_rdf_xml();
        assert!(
            xml.contains("<dct:title xml:lang=\"vi\">Đô thị &lt;&amp;&gt;</dct:title>"),
            "{xml}"
        );
        assert_eq!(g.len(), 4);
    }
}
