//! The PostgreSQL schema, applied in order under an advisory lock and recorded in
//! table `schema_version`. See docs/storage.md (PostgreSQL) for why each table and
//! index exists.

/// The advisory lock key that serializes migrations between nodes starting at once.
pub const MIGRATION_LOCK: i64 = 0x646f_7468_695f_6d69; // "dothi_mi"

pub const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite schema holds at its version 6, in PostgreSQL's terms.
    r#"
    CREATE EXTENSION IF NOT EXISTS postgis;

    CREATE TABLE tenants (
        name text PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        -- Bumped by every change of the tenant's subscriptions: a node reloads its
        -- compiled subscriptions when the version it holds is not this one.
        subscriptions_version bigint NOT NULL DEFAULT 0
    );

    -- One row per entity; `doc` is the whole entity, expanded.
    CREATE TABLE entities (
        rowid bigserial PRIMARY KEY,
        tenant text NOT NULL,
        id text NOT NULL,
        doc jsonb NOT NULL,
        modified_at timestamptz NOT NULL,
        UNIQUE (tenant, id)
    );

    -- Type selection: every type of every entity.
    CREATE TABLE entity_types (
        tenant text NOT NULL,
        type text NOT NULL,
        entity bigint NOT NULL,
        PRIMARY KEY (tenant, type, entity)
    );
    CREATE INDEX entity_types_by_entity ON entity_types (entity);

    -- One row per top-level attribute instance: its name and kind.
    CREATE TABLE attr_index (
        entity bigint NOT NULL,
        name text NOT NULL,
        seq integer NOT NULL,
        kind text NOT NULL,
        PRIMARY KEY (entity, name, seq)
    );

    -- The scalars `q` compares with: a number (num) or a string, boolean or
    -- relationship target (txt), compared in byte order as SQLite and the model do
    -- (collation "C"); a text over 1,000 bytes is kept as its prefix.
    CREATE TABLE attr_values (
        entity bigint NOT NULL,
        name text NOT NULL,
        k integer NOT NULL,
        num double precision,
        txt text COLLATE "C",
        PRIMARY KEY (entity, name, k)
    );
    CREATE INDEX attr_by_num ON attr_values (name, num, entity) WHERE num IS NOT NULL;
    CREATE INDEX attr_by_txt ON attr_values (name, txt, entity) WHERE txt IS NOT NULL;

    -- GeoProperties, one row per geometry, in WGS 84.
    CREATE TABLE geo_attr (
        id bigserial PRIMARY KEY,
        entity bigint NOT NULL,
        name text NOT NULL,
        geom geometry(Geometry, 4326) NOT NULL
    );
    CREATE INDEX geo_attr_by_entity ON geo_attr (entity, name);
    CREATE INDEX geo_attr_by_geom ON geo_attr USING gist (geom);

    -- Remote @context documents, fetched once.
    CREATE TABLE contexts (
        url text PRIMARY KEY,
        body text NOT NULL,
        fetched_at timestamptz NOT NULL DEFAULT now()
    );

    -- The temporal history, one row per attribute instance written, partitioned by
    -- month of `t`; the default partition takes what no month partition holds.
    CREATE SEQUENCE attr_history_id AS bigint;
    CREATE TABLE attr_history (
        id bigint NOT NULL DEFAULT nextval('attr_history_id'), -- the instanceId
        entity bigint NOT NULL,     -- entities.rowid
        name text NOT NULL,
        dataset text,               -- datasetId, NULL for the default instance
        t timestamptz NOT NULL,     -- observedAt, else when written
        written timestamptz NOT NULL,
        num double precision,       -- the value when it is a number
        txt text,                   -- else the value as text
        unit text,                  -- unitCode
        doc jsonb                   -- the whole instance; NULL for a plain numeric
                                    -- Property, rebuilt from the columns
    ) PARTITION BY RANGE (t);
    CREATE TABLE attr_history_default PARTITION OF attr_history DEFAULT;
    CREATE INDEX history_by_time ON attr_history (entity, name, t) INCLUDE (num, dataset);
    CREATE INDEX history_by_id ON attr_history (id);

    -- Components' own records (the IoT agent's service groups and devices).
    CREATE TABLE registry (
        collection text NOT NULL,
        tenant text NOT NULL,
        key text NOT NULL,
        value jsonb NOT NULL,
        modified_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (collection, tenant, key)
    );
    CREATE INDEX registry_by_key ON registry (collection, key);

    CREATE TABLE subscriptions (
        tenant text NOT NULL,
        id text NOT NULL,
        doc jsonb NOT NULL,
        times_sent bigint NOT NULL DEFAULT 0,
        times_failed bigint NOT NULL DEFAULT 0,
        last_notification timestamptz,
        last_success timestamptz,
        last_failure timestamptz,
        PRIMARY KEY (tenant, id)
    );

    -- A notification per row, written with the change that fired it; `id` is the
    -- commit order (writers that may add rows hold an advisory lock until they
    -- commit) and never reused. A node taking due rows claims them (`claimed_by`,
    -- until `claimed_until`) so that no other node sends them.
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        tenant text NOT NULL,
        subscription text NOT NULL,
        entity text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        claimed_by text,
        claimed_until timestamptz
    );
    CREATE INDEX outbox_by_subscription ON outbox (tenant, subscription, id);

    INSERT INTO tenants (name) VALUES ('') ON CONFLICT DO NOTHING;
    "#,
    // 2: the audit log (`store::audit`), as SQLite's version 7. `record` is text,
    // not jsonb: the chain hashes the exact bytes.
    r#"
    CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        time timestamptz NOT NULL,
        actor text NOT NULL,
        tenant text,
        action text NOT NULL,
        record text NOT NULL,
        seq bigint UNIQUE,
        hash text
    );
    CREATE INDEX audit_by_time ON audit_log (time);
    CREATE INDEX audit_unsealed ON audit_log (id) WHERE seq IS NULL;
    CREATE TABLE audit_checkpoint (
        id integer PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL
    );
    "#,
    // 3: observation times in the value index, as SQLite's version 8.
    r#"
    INSERT INTO attr_values (entity, name, k, num, txt)
        SELECT e.rowid, a.key || ' observedAt', (i.ord - 1)::integer, NULL,
               CASE WHEN length(i.value->>'o') = 20
                    THEN substr(i.value->>'o', 1, 19) || '.000000000Z'
               ELSE substr(i.value->>'o', 1, 20)
                    || substr(substr(i.value->>'o', 21, length(i.value->>'o') - 21) || '000000000', 1, 9)
                    || 'Z'
               END
        FROM entities e, jsonb_each(e.doc->'a') a,
             jsonb_array_elements(a.value) WITH ORDINALITY i(value, ord)
        WHERE jsonb_typeof(i.value->'o') = 'string';
    "#,
    // 4: deletions of attribute instances, as SQLite's version 9.
    r#"
    CREATE TABLE attr_deletions (
        id bigserial PRIMARY KEY,
        entity bigint NOT NULL,
        name text NOT NULL,
        dataset text,
        at timestamptz NOT NULL,
        doc jsonb NOT NULL
    );
    CREATE INDEX deletions_by_time ON attr_deletions (entity, name, at);
    "#,
    // 5: the by-key index of the registry holds the records of named tenants only,
    // as SQLite's version 10: in the default tenant the primary key finds a key.
    r#"
    DROP INDEX registry_by_key;
    CREATE INDEX registry_by_key ON registry (collection, key) WHERE tenant <> '';
    "#,
    // 6: the attributes whose values the value index leaves out, as SQLite's
    // version 11.
    r#"
    CREATE TABLE unindexed_values (
        name text PRIMARY KEY
    );
    "#,
];
