//! `pick` and `omit` reaching into linked entities (NGSI-LD v1.8, clause 4.21 with
//! joins): `pick=id,locatedAt{id,name}` keeps `locatedAt` and, of the entity it links
//! to, its id and name; `omit=name,locatedAt{name}` leaves out `name` and the linked
//! entity's name, keeping `locatedAt` itself. Braces nest as deep as `joinLevel` goes.

use std::collections::HashSet;

use ngsi::Error;
use ngsi::render::RenderOptions;

/// The deepest nesting of braces read.
const MAX_DEPTH: usize = 5;
/// The longest `pick` or `omit` read.
const MAX_LEN: usize = 4_096;

/// A member named in a projection, with the projection of the entities it links to.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub inner: Option<Vec<Item>>,
}

/// A projection at one level: `pick` (true) or `omit` of these items.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub pick: bool,
    pub items: Vec<Item>,
}

/// Reads a `pick` or `omit` value: names separated by commas, each optionally
/// followed by a braced list of its own.
pub fn parse(text: &str) -> Result<Vec<Item>, Error> {
    if text.len() > MAX_LEN {
        return Err(Error::bad_data(format!(
            "pick and omit hold at most {MAX_LEN} characters"
        )));
    }
    let mut rest = text;
    let items = list(&mut rest, 0)?;
    if !rest.is_empty() {
        return Err(Error::bad_data(format!("unbalanced braces in {text:?}")));
    }
    Ok(items)
}

fn list(rest: &mut &str, depth: usize) -> Result<Vec<Item>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::bad_data(format!(
            "pick and omit nest at most {MAX_DEPTH} levels"
        )));
    }
    let mut items = Vec::new();
    loop {
        let end = rest.find([',', '{', '}']).unwrap_or(rest.len());
        let name = rest[..end].trim().to_string();
        if name.is_empty() {
            return Err(Error::bad_data("pick and omit name no empty member"));
        }
        *rest = &rest[end..];
        let inner = if let Some(after) = rest.strip_prefix('{') {
            *rest = after;
            let inner = list(rest, depth + 1)?;
            *rest = rest
                .strip_prefix('}')
                .ok_or_else(|| Error::bad_data("a { in pick or omit is never closed"))?;
            Some(inner)
        } else {
            None
        };
        items.push(Item { name, inner });
        match rest.strip_prefix(',') {
            Some(after) => *rest = after,
            // The end of the text, or the `}` closing this list.
            None if rest.is_empty() || (depth > 0 && rest.starts_with('}')) => {
                return Ok(items);
            }
            None => return Err(Error::bad_data("unbalanced braces in pick or omit")),
        }
    }
}

impl Projection {
    /// The top-level names as a flat `pick` or `omit` list: a pick keeps the members
    /// it reaches through; an omit leaves them, and only their braced members go.
    pub fn names(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| self.pick || i.inner.is_none())
            .map(|i| i.name.clone())
            .collect()
    }

    /// The projection of the entities the Relationship `rel` (expanded) links to.
    pub fn child(&self, rel: &str, opts: &RenderOptions) -> Option<Projection> {
        self.items.iter().find_map(|i| {
            let inner = i.inner.as_ref()?;
            (ngsi::entity::expand_attr(&i.name, opts.ctx).ok()? == rel).then(|| Projection {
                pick: self.pick,
                items: inner.clone(),
            })
        })
    }

    /// Whether an entity rendered with this projection shows its attribute `name`
    /// (expanded): only a link it shows is followed.
    pub fn shows(&self, name: &str, opts: &RenderOptions) -> bool {
        let named = self
            .names()
            .iter()
            .any(|n| ngsi::entity::expand_attr(n, opts.ctx).is_ok_and(|iri| iri == name));
        named == self.pick
    }

    /// `opts` with this projection in place of its own.
    pub fn apply<'a>(&self, mut opts: RenderOptions<'a>) -> Result<RenderOptions<'a>, Error> {
        let names = self.names();
        let has = |m: &str| names.iter().any(|n| n == m);
        let attrs: HashSet<String> = names
            .iter()
            .filter(|n| !matches!(n.as_str(), "id" | "type"))
            .map(|n| match n.as_str() {
                "scope" => Ok(opts.ctx.expand("scope")),
                n => ngsi::entity::expand_attr(n, opts.ctx),
            })
            .collect::<Result<_, _>>()?;
        if self.pick {
            opts.keep_id = has("id");
            opts.keep_type = has("type");
            opts.keep_attrs = Some(attrs);
        } else {
            opts.keep_id = !has("id");
            opts.keep_type = !has("type");
            opts.omit_attrs = attrs;
        }
        Ok(opts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(name: &str, inner: Option<Vec<Item>>) -> Item {
        Item {
            name: name.into(),
            inner,
        }
    }

    #[test]
    fn reads_nested_lists() {
        assert_eq!(
            parse("id, locatedAt{id,name,isInCountry{description}}").unwrap(),
            vec![
                item("id", None),
                item(
                    "locatedAt",
                    Some(vec![
                        item("id", None),
                        item("name", None),
                        item("isInCountry", Some(vec![item("description", None)])),
                    ])
                ),
            ]
        );
        let omit = Projection {
            pick: false,
            items: parse("name,locatedAt{name}").unwrap(),
        };
        assert_eq!(omit.names(), ["name"]);
        let pick = Projection { pick: true, ..omit };
        assert_eq!(pick.names(), ["name", "locatedAt"]);
    }

    #[test]
    fn refuses_what_does_not_balance() {
        for bad in [
            "",
            "a,,b",
            "a,",
            "a{b",
            "a}b",
            "a{b}}",
            "{b}",
            "a{}",
            "a{b}c",
            "a{b{c{d{e{f{g}}}}}}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
