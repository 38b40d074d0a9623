//! What a query asks of a store, with every name already expanded.

use ngsi::Entity;

use crate::{Documents, QueryPage, StoreResult};
use ngsi::filter::{GeoFilter, QFilter};
use ngsi::order::OrderBy;
use ngsi::query::ast::{ScopeExpr, TypeExpr};
use regex::Regex;

/// An entity query (GET /entities, POST /entityOperations/query).
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// Entity ids (any of them).
    pub ids: Vec<String>,
    pub id_pattern: Option<Regex>,
    /// Type selection over expanded type IRIs.
    pub types: Option<TypeExpr>,
    /// Expanded attribute names: the entity has at least one of them.
    pub attrs: Vec<String>,
    pub q: Option<QFilter>,
    pub geo: Option<GeoFilter>,
    pub scope: Option<ScopeExpr>,
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
    /// Keyset paging: only entities stored after this position (a value of
    /// [`QueryPage::positions`]). Unlike `offset`, reading on from a position costs
    /// the same at any depth, and a write between two pages neither repeats nor skips
    /// an entity that stays.
    pub after: Option<i64>,
    /// `orderBy`: the order of the answer (names expanded). Without it, entities come
    /// in the order they were stored.
    pub order: Option<OrderBy>,
    /// Reads only these attributes of each entity (expanded names); the others are
    /// left unread, as if the entity had none. The conditions above still see the
    /// whole entity. `None` reads every attribute.
    pub only_attrs: Option<Vec<String>>,
    /// Answers with the entities' stored documents ([`QueryPage::documents`]), each
    /// with only the attributes `only_attrs` names, rather than with built entities:
    /// for a reader of many entities that needs little of each.
    pub as_documents: bool,
}

impl EntityQuery {
    /// The attributes a candidate is read with when the model tests it: with a
    /// projection ([`EntityQuery::only_attrs`]), those it shows and those the
    /// conditions and the order read (the others are scanned past, never built);
    /// `None` (the whole entity) without one.
    pub(crate) fn attributes_read(&self) -> Option<Vec<String>> {
        let mut names = self.only_attrs.clone()?;
        let mut add = |name: &str| {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        };
        self.attrs.iter().for_each(|a| add(a));
        if let Some(q) = &self.q {
            q.expr().attributes().into_iter().for_each(&mut add);
        }
        if let Some(g) = &self.geo {
            add(&g.query.geoproperty);
        }
        if let Some(order) = &self.order {
            order.attributes().for_each(&mut add);
        }
        Some(names)
    }

    /// Whether an entity matches every condition: the final word on a candidate.
    pub fn matches(&self, e: &Entity) -> bool {
        (self.ids.is_empty() || self.ids.contains(&e.id))
            && self.id_pattern.as_ref().is_none_or(|re| re.is_match(&e.id))
            && self.types.as_ref().is_none_or(|t| {
                let types: Vec<&str> = e.types.iter().map(String::as_str).collect();
                t.matches(&types)
            })
            && (self.attrs.is_empty() || self.attrs.iter().any(|a| e.attrs.contains_key(a)))
            && self.q.as_ref().is_none_or(|q| q.matches(e))
            && self.geo.as_ref().is_none_or(|g| g.matches_entity(e))
            && self.scope.as_ref().is_none_or(|s| {
                let scopes: Vec<&str> = e.scopes.iter().map(String::as_str).collect();
                ngsi::query::scope_expr_matches(s, &scopes)
            })
    }
}

/// The page of a query whose candidates the model tests one by one, in order.
pub(crate) struct Filtered<'q> {
    query: &'q EntityQuery,
    entities: Vec<Entity>,
    positions: Vec<i64>,
    matched: usize,
    /// With an `orderBy`: the first matches in that order so far, with their positions.
    ordered: Vec<(Entity, i64)>,
}

impl<'q> Filtered<'q> {
    pub fn new(query: &'q EntityQuery) -> Filtered<'q> {
        Filtered {
            query,
            entities: Vec::new(),
            positions: Vec::new(),
            matched: 0,
            ordered: Vec::new(),
        }
    }

    /// Tests the next candidate, stored at `position`; false once the page is full and
    /// nothing more needs reading (no count asked).
    pub fn offer(&mut self, mut entity: Entity, position: i64) -> bool {
        let q = self.query;
        if !q.matches(&entity) {
            return true;
        }
        self.matched += 1;
        if let Some(order) = &q.order {
            // Every match is read; only the first `offset + limit` in the order are
            // kept, so memory stays within twice that.
            let keep = q.offset.saturating_add(q.limit);
            self.ordered.push((entity, position));
            if self.ordered.len() > keep.saturating_mul(2).max(64) {
                self.ordered.sort_by(|a, b| order.compare(&a.0, &b.0));
                self.ordered.truncate(keep);
            }
            return true;
        }
        if self.matched > q.offset && self.entities.len() < q.limit {
            crate::project::keep(&mut entity, q.only_attrs.as_deref());
            self.entities.push(entity);
            self.positions.push(position);
            true
        } else {
            q.count || self.entities.len() < q.limit
        }
    }

    pub fn page(mut self) -> StoreResult<QueryPage> {
        if let Some(order) = &self.query.order {
            self.ordered.sort_by(|a, b| order.compare(&a.0, &b.0));
            for (mut e, position) in self
                .ordered
                .into_iter()
                .skip(self.query.offset)
                .take(self.query.limit)
            {
                // Ordered on the whole entity; the projection applies to the answer.
                crate::project::keep(&mut e, self.query.only_attrs.as_deref());
                self.entities.push(e);
                self.positions.push(position);
            }
        }
        let mut page = QueryPage {
            entities: self.entities,
            positions: self.positions,
            count: self.query.count.then_some(self.matched as u64),
            documents: Documents::default(),
        };
        if self.query.as_documents {
            page.entities_as_documents()?;
        }
        Ok(page)
    }
}
