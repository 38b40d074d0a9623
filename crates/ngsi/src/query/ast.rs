//! The syntax trees of the NGSI-LD query languages (ETSI GS CIM 009, clause 4.9 `q`,
//! 4.10 `geoQ`, 4.19 `scopeQ`, and the entity type selection language of 4.17).
//!
//! Attribute names and types are kept exactly as written: expanding them against an
//! @context is the caller's job, so that these trees stay pure syntax.

use crate::geometry::Geometry;

/// A `q` expression: terms joined by `;` (and) and `|` (or), with parentheses.
#[derive(Debug, Clone, PartialEq)]
pub enum QExpr {
    And(Vec<QExpr>),
    Or(Vec<QExpr>),
    Term(QTerm),
}

/// One condition of a `q` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum QTerm {
    /// `attr` alone: the attribute (or sub-attribute, or compound member) exists.
    Exists(AttrPath),
    /// `!attr`: it does not exist.
    NotExists(AttrPath),
    /// `attr op value`.
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: QValue,
    },
}

/// `attr.subAttr.subSubAttr[member.inner]`: an attribute, an optional chain of
/// sub-attributes, and an optional path into its compound (JSON object) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub attr: String,
    pub sub_attrs: Vec<String>,
    pub compound: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~=`: the value matches a regular expression.
    Matches,
    /// `!~=`: it does not.
    NotMatches,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum QValue {
    Number(f64),
    /// A quoted string, unescaped.
    Text(String),
    Bool(bool),
    /// `null` (compare against a JSON null value).
    Null,
    /// An ISO 8601 datetime, normalised to UTC, e.g. `2024-05-01T10:00:00Z`.
    DateTime(chrono::DateTime<chrono::Utc>),
    /// An ISO 8601 date, e.g. `2024-05-01`.
    Date(chrono::NaiveDate),
    /// An ISO 8601 time, e.g. `10:00:00`.
    Time(chrono::NaiveTime),
    /// An unquoted URI, e.g. the target of a Relationship `urn:ngsi-ld:Building:1`.
    Uri(String),
    /// `a..b` (inclusive at both ends).
    Range(Box<QValue>, Box<QValue>),
    /// `a,b,c`: equal to any of them (with `==`), to none of them (with `!=`).
    List(Vec<QValue>),
}

/// A `geoQ`: a geo-relationship, a reference geometry and the GeoProperty it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    pub georel: GeoRel,
    pub geometry: Geometry,
    /// The GeoProperty compared (as written; default `location`).
    pub geoproperty: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoRel {
    /// `near;maxDistance==d` and/or `near;minDistance==d`, distances in metres.
    Near {
        max_distance: Option<f64>,
        min_distance: Option<f64>,
    },
    Within,
    Contains,
    Intersects,
    Disjoint,
    Equals,
    Overlaps,
}

/// A `scopeQ` expression: scopes joined by `;` (and), `,` or `|` (or), with parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeExpr {
    And(Vec<ScopeExpr>),
    Or(Vec<ScopeExpr>),
    Scope(ScopePattern),
}

/// A scope pattern such as `/Madrid/Gardens`, `/Madrid/+/Roses` or `/Madrid/#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    pub segments: Vec<ScopeSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeSegment {
    Name(String),
    /// `+`: exactly one level, any name.
    AnyOne,
    /// `#`: this level and all below (only last).
    AnyBelow,
}

/// An entity type selection: `A`, `A,B` (or), `A;B` (the entity has both), `(A;B)|C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeExpr {
    And(Vec<TypeExpr>),
    Or(Vec<TypeExpr>),
    Type(String),
}
