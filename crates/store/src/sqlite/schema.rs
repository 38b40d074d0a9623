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
    // 2: names (attribute names, types, attribute kinds are IRIs or words of up to a
    // few hundred bytes) interned as integers in every index, which made the index
    // rows about a third of their size; the unused `entities.types` column dropped.
    r#"
    CREATE TABLE names (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    INSERT OR IGNORE INTO names (name)
        SELECT type FROM entity_types UNION SELECT name FROM attr_index
        UNION SELECT kind FROM attr_index UNION SELECT name FROM attr_values
        UNION SELECT name FROM geo_attr;

    CREATE TABLE entity_types_v2 (
        tenant TEXT NOT NULL,
        type INTEGER NOT NULL,
        entity INTEGER NOT NULL,
        PRIMARY KEY (tenant, type, entity)
    ) WITHOUT ROWID;
    INSERT INTO entity_types_v2 (tenant, type, entity)
        SELECT t.tenant, n.id, t.entity FROM entity_types t JOIN names n ON n.name = t.type;
    DROP TABLE entity_types;
    ALTER TABLE entity_types_v2 RENAME TO entity_types;

    CREATE TABLE attr_index_v2 (
        entity INTEGER NOT NULL,
        name INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (entity, name, seq)
    ) WITHOUT ROWID;
    INSERT INTO attr_index_v2 (entity, name, seq, kind)
        SELECT a.entity, n.id, a.seq, k.id FROM attr_index a
        JOIN names n ON n.name = a.name JOIN names k ON k.name = a.kind;
    DROP TABLE attr_index;
    ALTER TABLE attr_index_v2 RENAME TO attr_index;

    CREATE TABLE attr_values_v2 (
        entity INTEGER NOT NULL,
        name INTEGER NOT NULL,
        k INTEGER NOT NULL,
        num REAL,
        txt TEXT,
        PRIMARY KEY (entity, name, k)
    ) WITHOUT ROWID;
    INSERT INTO attr_values_v2 (entity, name, k, num, txt)
        SELECT a.entity, n.id, a.k, a.num, a.txt FROM attr_values a JOIN names n ON n.name = a.name;
    DROP TABLE attr_values;
    ALTER TABLE attr_values_v2 RENAME TO attr_values;
    CREATE INDEX attr_by_num ON attr_values (name, num, entity) WHERE num IS NOT NULL;
    CREATE INDEX attr_by_txt ON attr_values (name, txt, entity) WHERE txt IS NOT NULL;

    CREATE TABLE geo_attr_v2 (
        id INTEGER PRIMARY KEY,
        entity INTEGER NOT NULL,
        name INTEGER NOT NULL
    );
    INSERT INTO geo_attr_v2 (id, entity, name)
        SELECT g.id, g.entity, n.id FROM geo_attr g JOIN names n ON n.name = g.name;
    DROP TABLE geo_attr;
    ALTER TABLE geo_attr_v2 RENAME TO geo_attr;
    CREATE INDEX geo_attr_by_entity ON geo_attr (entity, name);

    ALTER TABLE entities DROP COLUMN types;
    "#,
    // 3: the temporal history, one row per attribute instance written.
    r#"
    CREATE TABLE attr_history (
        id INTEGER PRIMARY KEY,   -- the instance's number (its instanceId)
        entity INTEGER NOT NULL,  -- entities.rowid
        name INTEGER NOT NULL,    -- names.id
        dataset TEXT,             -- datasetId, NULL for the default instance
        t INTEGER NOT NULL,       -- observedAt, else when written: ms since 1970 UTC
        written INTEGER NOT NULL, -- when written: ms since 1970 UTC
        num REAL,                 -- the value when it is a number
        txt TEXT,                 -- else the value as text (strings as they are, others as JSON)
        unit TEXT,                -- unitCode
        doc TEXT                  -- the whole instance (store JSON); NULL for a plain
                                  -- numeric Property, rebuilt from the columns
    );
    -- Time ranges of one attribute, covering what aggregation reads.
    -- (A query by write time scans the attribute's rows: writes stay cheaper without
    -- a second index, and for sensors the two times are nearly the same.)
    CREATE INDEX history_by_time ON attr_history (entity, name, t, num, dataset);
    "#,
    // 4: the registry, components' own records beside the entities (the IoT agent's
    // service groups and devices); never exposed as entities.
    r#"
    CREATE TABLE registry (
        collection TEXT NOT NULL,
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,       -- JSON
        modified_at TEXT NOT NULL,
        PRIMARY KEY (collection, tenant, key)
    ) WITHOUT ROWID;
    -- A key looked up in every tenant (a device's API key and id name its tenant).
    CREATE INDEX registry_by_key ON registry (collection, key);
    "#,
    // 5: subscriptions and the outbox of their notifications.
    r#"
    CREATE TABLE subscriptions (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,                  -- the Subscription (store JSON)
        times_sent INTEGER NOT NULL DEFAULT 0,
        times_failed INTEGER NOT NULL DEFAULT 0,
        last_notification INTEGER,          -- ms since 1970 UTC
        last_success INTEGER,
        last_failure INTEGER,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    -- A notification per row, written with the change that fired it; the id is the
    -- commit order (AUTOINCREMENT: an id is never reused, even after the last row
    -- is delivered).
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        subscription TEXT NOT NULL,
        entity TEXT NOT NULL,
        payload TEXT NOT NULL,              -- the Notification (JSON)
        created_at INTEGER NOT NULL,        -- ms since 1970 UTC
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL    -- ms since 1970 UTC
    );
    CREATE INDEX outbox_by_subscription ON outbox (tenant, subscription, id);
    "#,
    // 6: per-hour statistics of each attribute's numbers by observation time, kept in
    // the transaction that writes the instances, so aggregations over long ranges read
    // one row an hour instead of every instance (a year of 5-minute readings: 8,760
    // rows instead of 105,120). Filled here from the history already written.
    r#"
    CREATE TABLE history_hourly (
        entity INTEGER NOT NULL,  -- entities.rowid
        name INTEGER NOT NULL,    -- names.id
        hour INTEGER NOT NULL,    -- start of the hour: ms since 1970 UTC
        dataset TEXT NOT NULL,    -- datasetId, '' for the default instance
        total INTEGER NOT NULL,   -- instances
        numbers INTEGER NOT NULL, -- instances whose value is a number
        sum REAL NOT NULL,
        sum_sq REAL NOT NULL,
        min REAL,
        max REAL,
        PRIMARY KEY (entity, name, hour, dataset)
    ) WITHOUT ROWID;
    INSERT INTO history_hourly
        SELECT entity, name, t - (((t % 3600000) + 3600000) % 3600000), coalesce(dataset, ''),
               count(*), count(num), coalesce(sum(num), 0), coalesce(sum(num * num), 0),
               min(num), max(num)
        FROM attr_history GROUP BY 1, 2, 3, 4;
    "#,
    // 7: the audit log (`store::audit`): appended in the transaction of what it
    // records, sealed into a hash chain later (`seq`, `hash`), purged from the start
    // of the chain with a checkpoint.
    r#"
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,    -- ms since 1970 UTC
        actor TEXT NOT NULL,
        tenant TEXT,
        action TEXT NOT NULL,
        record TEXT NOT NULL,     -- the record's JSON, exactly as hashed
        seq INTEGER UNIQUE,       -- place in the chain, once sealed
        hash TEXT
    );
    CREATE INDEX audit_by_time ON audit_log (time);
    CREATE INDEX audit_unsealed ON audit_log (id) WHERE seq IS NULL;
    CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    "#,
    // 8: observation times in the value index, under "<attribute> observedAt"
    // (`rows::observed_name`), as UTC text with nine fraction digits
    // (`rows::observed_text`). Filled here for the entities already stored; the
    // documents write times as RFC 3339 with 0, 3, 6 or 9 fraction digits and `Z`.
    r#"
    CREATE TEMP TABLE observed_backfill AS
        SELECT e.rowid AS entity, a.key || ' observedAt' AS name, i.key AS k,
               json_extract(i.value, '$.o') AS s
        FROM entities e, json_each(e.doc, '$.a') a, json_each(a.value) i
        WHERE json_type(i.value, '$.o') = 'text';
    INSERT OR IGNORE INTO names (name) SELECT DISTINCT name FROM observed_backfill;
    INSERT INTO attr_values (entity, name, k, num, txt)
        SELECT o.entity, n.id, o.k, NULL,
               CASE WHEN length(o.s) = 20 THEN substr(o.s, 1, 19) || '.000000000Z'
               ELSE substr(o.s, 1, 20) || substr(substr(o.s, 21, length(o.s) - 21) || '000000000', 1, 9) || 'Z'
               END
        FROM observed_backfill o JOIN names n ON n.name = o.name;
    DROP TABLE observed_backfill;
    "#,
    // 9: deletions of attribute instances, kept in the history (clause 4.5.7) and read
    // by `timeproperty=deletedAt`. Apart from `attr_history`, so that its time index
    // and the hourly statistics hold instances only.
    r#"
    CREATE TABLE attr_deletions (
        id INTEGER PRIMARY KEY,   -- numbers the deletion (urn:ngsi-ld:Instance:deleted:N)
        entity INTEGER NOT NULL,  -- entities.rowid
        name INTEGER NOT NULL,    -- names.id
        dataset TEXT,             -- datasetId, NULL for the default instance
        at INTEGER NOT NULL,      -- when deleted: ms since 1970 UTC
        doc TEXT NOT NULL         -- the instance shown (store JSON): kind, NGSI-LD Null
    );
    CREATE INDEX deletions_by_time ON attr_deletions (entity, name, at);
    "#,
    // 10: the by-key index of the registry holds the records of named tenants only.
    // In the default tenant the primary key (collection, '', key) is already in key
    // order, so a lookup by key reads it there; its records (the citizen reports'
    // tokens and contacts among them) are no longer written twice.
    r#"
    DROP INDEX registry_by_key;
    CREATE INDEX registry_by_key ON registry (collection, key) WHERE tenant <> '';
    "#,
    // 11: the attributes whose values the value index leaves out (`store::value_index`),
    // declared by the services that no query of theirs compares them.
    r#"
    CREATE TABLE unindexed_values (
        name TEXT PRIMARY KEY     -- expanded attribute name
    ) WITHOUT ROWID;
    "#,
];
