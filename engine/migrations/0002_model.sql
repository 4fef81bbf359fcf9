-- Stitchbook workspace schema, version 2: the model layer (identity, sessions, profiles,
-- accounts). Every table below is derived: `stitchbook rebuild` recomputes it from events and
-- identity_links without re-reading files; model_state says which settings built it.

-- A stable per-event key: the import and the record's number within the import.
ALTER TABLE events ADD COLUMN event_seq BIGINT;
UPDATE events SET event_seq = e.seq FROM (
    SELECT rowid AS rid, import_id * 4294967296 + row_number() OVER (PARTITION BY import_id ORDER BY rowid) AS seq
    FROM events) e
WHERE events.rowid = e.rid;

-- distinct id (any id an event or link carries) -> the person it resolves to.
CREATE TABLE person_map (
    distinct_id VARCHAR NOT NULL,
    person_id   VARCHAR NOT NULL
);

CREATE TABLE persons (
    person_id       VARCHAR NOT NULL,
    is_identified   BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ,
    last_seen       TIMESTAMPTZ,
    display_name    VARCHAR,
    email           VARCHAR,
    properties      JSON,
    distinct_ids    BIGINT NOT NULL,
    -- some device/anonymous id of this person carried events of two or more identified users
    shared_device   BOOLEAN NOT NULL DEFAULT false
);

-- Every identity link considered, in replay order, and what became of it.
CREATE TABLE merge_log (
    seq           BIGINT NOT NULL,
    ts_utc        TIMESTAMPTZ,
    source_vendor VARCHAR,
    source_file   VARCHAR,
    source_line   BIGINT,
    event_uuid    VARCHAR,
    link_kind     VARCHAR NOT NULL,
    from_id       VARCHAR NOT NULL,
    into_id       VARCHAR NOT NULL,
    -- applied | refused | unchanged
    outcome       VARCHAR NOT NULL,
    reason        VARCHAR
);

-- Devices / anonymous ids whose events carried two or more identified users.
CREATE TABLE shared_devices (
    device_id  VARCHAR NOT NULL,
    person_id  VARCHAR,
    users      VARCHAR[] NOT NULL,
    events     BIGINT NOT NULL,
    first_seen TIMESTAMPTZ,
    last_seen  TIMESTAMPTZ
);

CREATE TABLE sessions (
    session_id     VARCHAR NOT NULL,
    person_id      VARCHAR,
    device_id      VARCHAR,
    -- client: the vendor's session id; inferred: split by timeout / max length / options
    source         VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ NOT NULL,
    duration_s     BIGINT NOT NULL,
    events         BIGINT NOT NULL,
    pageviews      BIGINT NOT NULL,
    autocaptures   BIGINT NOT NULL,
    entry_url      VARCHAR,
    exit_url       VARCHAR,
    is_bounce      BOOLEAN,
    referrer       VARCHAR,
    utm_source     VARCHAR,
    utm_medium     VARCHAR,
    utm_campaign   VARCHAR,
    browser        VARCHAR,
    os             VARCHAR,
    device_type    VARCHAR
);

-- Every event's session (event_seq -> session_id); events outside any session are absent.
CREATE TABLE event_sessions (
    event_seq  BIGINT NOT NULL,
    session_id VARCHAR NOT NULL
);

-- What built the derived tables: the derivation version and the settings used.
CREATE TABLE model_state (
    derivation_version INTEGER NOT NULL,
    settings           JSON NOT NULL,
    events_seen        BIGINT NOT NULL,
    links_seen         BIGINT NOT NULL,
    built_at           TIMESTAMPTZ NOT NULL
);
