//! The parts of turning an [`crate::EntityQuery`] into SQL that every backend shares:
//! SQL text with its parameters built together (bound, never interpolated), the `q`
//! comparisons an index of values decides exactly, and type selection. The tables
//! they name (`attr_values`, `entity_types`, `entities` as `e` keyed by `rowid`) have
//! the same columns in every backend; names are interned ids in SQLite, text in
//! PostgreSQL.

use std::collections::BTreeSet;

use ngsi::context::NGSI_LD;
use ngsi::query::ast::{AttrPath, CompareOp, QExpr, QTerm, QValue, TypeExpr};

use crate::rows::{observed_name, observed_text};

/// PostgreSQL's value index holds at most this many bytes of a text (a B-tree entry
/// must fit a third of a page); a longer text is kept as its prefix.
pub(crate) const INDEXED_TEXT_BYTES: usize = 1000;

/// The longest text constant PostgreSQL's value index compares exactly: for a
/// shorter constant, comparing (in byte order) with a text's kept prefix of at least
/// `INDEXED_TEXT_BYTES - 3` bytes gives the same answer as with the whole text.
const EXACT_TEXT_BYTES: usize = 512;

/// The SQL a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(v)
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Param {
        Param::Real(v)
    }
}
impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Text(v.to_string())
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => v.to_sql(),
            Param::Real(v) => v.to_sql(),
            Param::Text(v) => v.to_sql(),
        }
    }
}

/// SQL text and its parameters, built together.
#[derive(Clone)]
pub(crate) struct Sql {
    pub dialect: Dialect,
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            text: String::new(),
            params: Vec::new(),
        }
    }
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }
    /// A parameter, written `?` until [`Sql::numbered`] renders it for PostgreSQL
    /// (the text this module builds holds no other `?`).
    pub fn bind(&mut self, v: impl Into<Param>) {
        self.text.push('?');
        self.params.push(v.into());
    }
    /// A name (attribute, type) as the indexes hold it: its interned id in SQLite,
    /// itself in PostgreSQL.
    pub fn bind_name(&mut self, name: impl Into<String>) {
        match self.dialect {
            Dialect::Sqlite => {
                self.push("(SELECT id FROM names WHERE name = ");
                self.bind(name.into());
                self.push(")");
            }
            Dialect::Postgres => self.bind(name.into()),
        }
    }
    /// The text with PostgreSQL's numbered parameters (`$1`, `$2`...).
    pub fn numbered(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut n = 0;
        for ch in self.text.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    }
    pub fn bind_list<T: Into<Param> + Clone>(&mut self, items: &[T]) {
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(item.clone());
        }
        self.push(")");
    }
    /// `column IN (…)` over `items`, or false when there are none (`IN ()` is no SQL).
    pub fn bind_in<T: Into<Param> + Clone>(&mut self, column: &str, items: &[T]) {
        if items.is_empty() {
            self.push("1 = 0");
        } else {
            self.push(column);
            self.push(" IN ");
            self.bind_list(items);
        }
    }
    /// The same SQL on another entity column: probes name the entity whose row they
    /// test `e.rowid`.
    pub fn on_entity(&self, column: &str) -> Sql {
        Sql {
            text: self.text.replace("e.rowid", column),
            ..self.clone()
        }
    }
    pub fn append(&mut self, other: Sql) {
        self.text.push_str(&other.text);
        self.params.extend(other.params);
    }
    pub fn joined(dialect: Dialect, parts: Vec<Sql>, joiner: &str) -> Sql {
        let mut out = Sql::new(dialect);
        out.push("(");
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(joiner);
            }
            out.append(p);
        }
        out.push(")");
        out
    }
}

/// A condition on one attribute's indexed values (`attr_values`), as SQL on alias `a`.
#[derive(Clone)]
pub(crate) struct ValueCondition {
    name: String,
    sql: Sql,
}

impl ValueCondition {
    /// `EXISTS` probe from entity row `e`, through the primary key (entity, name).
    pub fn probe(&self) -> Sql {
        let mut s = Sql::new(self.sql.dialect);
        s.push("EXISTS (SELECT 1 FROM attr_values a WHERE a.entity = e.rowid AND a.name = ");
        s.bind_name(self.name.clone());
        s.push(" AND ");
        // A unary `+` keeps SQLite from using the value indexes here: a probe must
        // look up this entity's rows, not scan every row in the value range.
        // (PostgreSQL's planner needs no such hint.)
        let mut cond = self.sql.clone();
        if cond.dialect == Dialect::Sqlite {
            cond.text = cond
                .text
                .replace("a.num", "+a.num")
                .replace("a.txt", "+a.txt");
        }
        s.append(cond);
        s.push(")");
        s
    }

    /// The entities meeting it, as a subquery.
    pub fn entities(&self) -> Sql {
        let mut s = Sql::new(self.sql.dialect);
        s.push("SELECT a.entity FROM attr_values a WHERE a.name = ");
        s.bind_name(self.name.clone());
        s.push(" AND ");
        s.append(self.sql.clone());
        s
    }
}

/// Whether a constant holds a text too long for the PostgreSQL index to decide.
fn has_long_text(value: &QValue) -> bool {
    match value {
        QValue::Text(t) | QValue::Uri(t) => t.len() > EXACT_TEXT_BYTES,
        QValue::Range(lo, hi) => has_long_text(lo) || has_long_text(hi),
        QValue::List(items) => items.iter().any(has_long_text),
        _ => false,
    }
}

fn is_plain(path: &AttrPath) -> bool {
    path.sub_attrs.is_empty() && path.compound.is_empty()
}

/// Whether a path reads an attribute's `observedAt`.
fn is_observed_at(path: &AttrPath) -> bool {
    path.compound.is_empty()
        && matches!(path.sub_attrs.as_slice(),
            [sub] if sub.strip_prefix(NGSI_LD) == Some("observedAt"))
}

/// The SQL operator of an ordering comparison.
fn comparison(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        _ => return None,
    })
}

/// `attr.observedAt` compared with a datetime (or a range of them), decided exactly
/// by the observation times indexed under [`observed_name`]. The model reads a
/// quoted text as a text, not a time: only unquoted datetimes are decided here.
fn observed_condition(
    dialect: Dialect,
    path: &AttrPath,
    op: CompareOp,
    value: &QValue,
) -> Option<ValueCondition> {
    let mut sql = Sql::new(dialect);
    match (op, value) {
        (_, QValue::DateTime(t)) => {
            sql.push(&format!("a.txt {} ", comparison(op)?));
            sql.bind(observed_text(t));
        }
        (CompareOp::Eq, QValue::Range(lo, hi)) => match (lo.as_ref(), hi.as_ref()) {
            (QValue::DateTime(lo), QValue::DateTime(hi)) => {
                sql.push("a.txt BETWEEN ");
                sql.bind(observed_text(lo));
                sql.push(" AND ");
                sql.bind(observed_text(hi));
            }
            _ => return None,
        },
        _ => return None,
    }
    Some(ValueCondition {
        name: observed_name(&path.attr),
        sql,
    })
}

/// The SQL of a comparison that the value index decides exactly, if it can: not for
/// an attribute whose values it leaves out (`left_out`).
fn value_condition(
    dialect: Dialect,
    left_out: &BTreeSet<String>,
    path: &AttrPath,
    op: CompareOp,
    value: &QValue,
) -> Option<ValueCondition> {
    if is_observed_at(path) {
        return observed_condition(dialect, path, op, value);
    }
    if !is_plain(path)
        || (dialect == Dialect::Postgres && has_long_text(value))
        || left_out.contains(&path.attr)
    {
        return None;
    }
    let mut sql = Sql::new(dialect);
    let sym = comparison(op)?;
    match (op, value) {
        (_, QValue::Number(n)) => {
            sql.push(&format!("a.num {sym} "));
            sql.bind(*n);
        }
        (_, QValue::Text(t) | QValue::Uri(t)) => {
            sql.push(&format!("a.txt {sym} "));
            sql.bind(t.clone());
        }
        (CompareOp::Eq, QValue::Range(lo, hi)) => match (lo.as_ref(), hi.as_ref()) {
            (QValue::Number(lo), QValue::Number(hi)) => {
                sql.push("a.num BETWEEN ");
                sql.bind(*lo);
                sql.push(" AND ");
                sql.bind(*hi);
            }
            (QValue::Text(lo), QValue::Text(hi)) => {
                sql.push("a.txt BETWEEN ");
                sql.bind(lo.clone());
                sql.push(" AND ");
                sql.bind(hi.clone());
            }
            _ => return None,
        },
        (CompareOp::Eq, QValue::List(items)) => {
            let mut nums = Vec::new();
            let mut txts = Vec::new();
            for item in items {
                match item {
                    QValue::Number(n) => nums.push(*n),
                    QValue::Text(t) | QValue::Uri(t) => txts.push(t.clone()),
                    _ => return None,
                }
            }
            sql.push("(");
            sql.bind_in("a.num", &nums);
            sql.push(" OR ");
            sql.bind_in("a.txt", &txts);
            sql.push(")");
        }
        _ => return None,
    }
    Some(ValueCondition {
        name: path.attr.clone(),
        sql,
    })
}

/// A `q` expression as SQL probes: `(sql, exact)`. None when SQL cannot narrow it.
/// `left_out`: the attributes whose values the value index leaves out.
pub(crate) fn q_probe(
    dialect: Dialect,
    left_out: &BTreeSet<String>,
    expr: &QExpr,
) -> Option<(Sql, bool)> {
    match expr {
        QExpr::And(items) => {
            let mut exact = true;
            let mut parts = Vec::new();
            for item in items {
                match q_probe(dialect, left_out, item) {
                    Some((sql, e)) => {
                        exact &= e;
                        parts.push(sql);
                    }
                    None => exact = false,
                }
            }
            (!parts.is_empty()).then(|| (Sql::joined(dialect, parts, " AND "), exact))
        }
        QExpr::Or(items) => {
            let mut exact = true;
            let mut parts = Vec::new();
            for item in items {
                let (sql, e) = q_probe(dialect, left_out, item)?;
                exact &= e;
                parts.push(sql);
            }
            Some((Sql::joined(dialect, parts, " OR "), exact))
        }
        QExpr::Term(QTerm::Compare { path, op, value }) => {
            value_condition(dialect, left_out, path, *op, value).map(|c| (c.probe(), true))
        }
        QExpr::Term(_) => None,
    }
}

/// The top-level conjuncts of a `q` that could drive the query.
pub(crate) fn driver_candidates(
    dialect: Dialect,
    left_out: &BTreeSet<String>,
    expr: &QExpr,
) -> Vec<(usize, ValueCondition)> {
    let items: Vec<&QExpr> = match expr {
        QExpr::And(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            QExpr::Term(QTerm::Compare { path, op, value }) => {
                value_condition(dialect, left_out, path, *op, value).map(|c| (i, c))
            }
            _ => None,
        })
        .collect()
}

/// Type selection as an `EXISTS` probe from entity row `e`.
pub(crate) fn type_probe(dialect: Dialect, tenant: &str, expr: &TypeExpr) -> Sql {
    let mut sql = Sql::new(dialect);
    match expr {
        TypeExpr::Type(t) => {
            sql.push("EXISTS (SELECT 1 FROM entity_types WHERE tenant = ");
            sql.bind(tenant.to_string());
            sql.push(" AND type = ");
            sql.bind_name(t.clone());
            sql.push(" AND entity = e.rowid)");
        }
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            let joiner = if matches!(expr, TypeExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            return Sql::joined(
                dialect,
                items
                    .iter()
                    .map(|i| type_probe(dialect, tenant, i))
                    .collect(),
                joiner,
            );
        }
    }
    sql
}
