//! Open311 documents, built once and written as XML or JSON: a list is a bare JSON
//! array (as in the spec's examples) and, in XML, a root element holding one element
//! per item.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A node of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// Fields in order.
    Obj(Vec<(&'static str, Doc)>),
    /// Items, each an element named `item` in XML.
    List(&'static str, Vec<Doc>),
    Text(String),
    Num(f64),
    Int(i64),
    Bool(bool),
    Null,
}

impl Doc {
    pub fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }

    pub fn opt(s: Option<impl Into<String>>) -> Doc {
        s.map_or(Doc::Null, |s| Doc::Text(s.into()))
    }

    /// The XML document with `root` as its root element.
    pub fn xml(&self, root: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        self.write(root, &mut out);
        out
    }

    fn write(&self, name: &str, out: &mut String) {
        match self {
            Doc::Null => {
                out.push('<');
                out.push_str(name);
                out.push_str("/>");
                return;
            }
            _ => {
                out.push('<');
                out.push_str(name);
                out.push('>');
            }
        }
        match self {
            Doc::Obj(fields) => {
                for (k, v) in fields {
                    v.write(k, out);
                }
            }
            Doc::List(item, items) => {
                for i in items {
                    i.write(item, out);
                }
            }
            Doc::Text(s) => escape(s, out),
            Doc::Num(n) => out.push_str(&n.to_string()),
            Doc::Int(n) => out.push_str(&n.to_string()),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Null => {}
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

/// The JSON form, written straight from the document (no JSON tree built first).
impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Obj(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Doc::List(_, items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Doc::Text(t) => s.serialize_str(t),
            // JSON has no NaN nor infinity: such a number is null, as serde_json's own
            // numbers make it.
            Doc::Num(n) if n.is_finite() => s.serialize_f64(*n),
            Doc::Num(_) | Doc::Null => s.serialize_unit(),
            Doc::Int(n) => s.serialize_i64(*n),
            Doc::Bool(b) => s.serialize_bool(*b),
        }
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold are left out.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_bare_arrays_and_repeated_elements() {
        let d = Doc::List(
            "request",
            vec![Doc::Obj(vec![
                ("service_request_id", Doc::text("A<1>&")),
                ("lat", Doc::Num(16.8)),
                ("media_url", Doc::Null),
            ])],
        );
        assert_eq!(
            serde_json::to_string(&d).unwrap_or_default(),
            r#"[{"service_request_id":"A<1>&","lat":16.8,"media_url":null}]"#
        );
        assert_eq!(
            serde_json::to_string(&Doc::List("n", vec![Doc::Num(f64::NAN), Doc::Int(3)]))
                .unwrap_or_default(),
            "[null,3]"
        );
        assert_eq!(
            d.xml("service_requests"),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request>\
             <service_request_id>A&lt;1&gt;&amp;</service_request_id><lat>16.8</lat>\
             <media_url/></request></service_requests>"
        );
    }
}
