//! The SQLite schema, applied in order and recorded in `PRAGMA user_version`.
//! See docs/storage.md for why each table and index exists.

pub const MIGRATIONS: &[&str] = &[
    // 1: entities and their indexes.
    r#"
    CREATE TABLE tenants (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;

    -- One row per entity; `doc` is the whole entity, expanded, as JSON.
    CREATE TABLE entities (
        rowid INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        types TEXT NOT NULL,
        doc TEXT NOT NULL,
        modified_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX entities_by_id ON entities (tenant, id);
    CREATE INDEX entities_by_tenant ON entities (tenant);

    -- Type selection: every type of every entity.
    CREATE TABLE entity_types (
        tenant TEXT NOT NULL,
        type TEXT NOT NULL,
        entity INTEGER NOT NULL,
        PRIMARY KEY (tenant, type, entity)
    ) WITHOUT ROWID;

    -- One row per top-level attribute instance: its name and kind (for `attrs` and
    -- discovery).
    CREATE TABLE attr_index (
        entity INTEGER NOT NULL,
        name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (entity, name, seq)
    ) WITHOUT ROWID;

    -- The scalar values `q` compares with, one row each: a number (num) or a string,
    -- boolean or relationship target (txt). Arrays and language maps give a row per
    -- element, as q matches any of them.
    CREATE TABLE attr_values (
        entity INTEGER NOT NULL,
        name TEXT NOT NULL,
        k INTEGER NOT NULL,
        num REAL,
        txt TEXT,
        PRIMARY KEY (entity, name, k)
    ) WITHOUT ROWID;
    CREATE INDEX attr_by_num ON attr_values (name, num, entity) WHERE num IS NOT NULL;
    CREATE INDEX attr_by_txt ON attr_values (name, txt, entity) WHERE txt IS NOT NULL;

    -- GeoProperties: bounding boxes in an R*Tree, the entity and name beside.
    CREATE VIRTUAL TABLE geo_rtree USING rtree (id, min_x, max_x, min_y, max_y);
    CREATE TABLE geo_attr (
        id INTEGER PRIMARY KEY,
        entity INTEGER NOT NULL,
        name TEXT NOT NULL
    );
    CREATE INDEX geo_attr_by_entity ON geo_attr (entity, name);

    -- Remote @context documents, fetched once.
    CREATE TABLE contexts (
        url TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        fetched_at TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
];
