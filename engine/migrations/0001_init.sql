-- Stitchbook workspace schema, version 1.
-- Raw facts only: every imported event, identity assertion, quarantined record and the
-- import log. Derived tables (persons, sessions, ...) are projections built by later
-- migrations or rebuilt on demand.

CREATE SEQUENCE import_id_seq START 1;

CREATE TABLE imports (
    import_id        BIGINT PRIMARY KEY DEFAULT nextval('import_id_seq'),
    path             VARCHAR NOT NULL,
    size_bytes       BIGINT NOT NULL,
    content_sha256   VARCHAR NOT NULL,
    vendor           VARCHAR,
    container        VARCHAR,
    compression      VARCHAR,
    format_override  VARCHAR,
    rows_read        BIGINT NOT NULL DEFAULT 0,
    rows_loaded      BIGINT NOT NULL DEFAULT 0,
    rows_duplicate   BIGINT NOT NULL DEFAULT 0,
    rows_quarantined BIGINT NOT NULL DEFAULT 0,
    links_added      BIGINT NOT NULL DEFAULT 0,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    -- complete | failed | cancelled. A failed or cancelled import wrote nothing but this row.
    status           VARCHAR NOT NULL,
    message          VARCHAR
);

CREATE TABLE events (
    source_vendor     VARCHAR NOT NULL,
    source_file       VARCHAR NOT NULL,
    source_line       BIGINT NOT NULL,
    import_id         BIGINT NOT NULL,
    event_uuid        VARCHAR NOT NULL,
    dedupe_key        VARCHAR,
    event_name        VARCHAR NOT NULL,
    event_kind        VARCHAR NOT NULL,
    ts_utc            TIMESTAMPTZ NOT NULL,
    received_at_utc   TIMESTAMPTZ,
    distinct_id       VARCHAR,
    user_id           VARCHAR,
    anon_id           VARCHAR,
    session_id        VARCHAR,
    vendor_person_id  VARCHAR,
    properties        JSON NOT NULL,
    person_properties JSON,
    groups            JSON,
    raw               JSON
);

CREATE TABLE identity_links (
    source_vendor VARCHAR NOT NULL,
    from_id       VARCHAR NOT NULL,
    to_id         VARCHAR NOT NULL,
    -- identify | alias | merge | device_user_pair | migration | person_map | merged_vendor_id
    link_kind     VARCHAR NOT NULL,
    ts_utc        TIMESTAMPTZ,
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    import_id     BIGINT NOT NULL,
    event_uuid    VARCHAR
);

-- Person property snapshots as a vendor exported them (e.g. PostHog persons model).
CREATE TABLE person_snapshots (
    source_vendor VARCHAR NOT NULL,
    person_key    VARCHAR,
    distinct_id   VARCHAR,
    properties    JSON,
    as_of         TIMESTAMPTZ,
    is_deleted    BOOLEAN NOT NULL DEFAULT false,
    dedupe_key    VARCHAR,
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    import_id     BIGINT NOT NULL
);

-- Group (account) property snapshots, e.g. PostHog $groupidentify.
CREATE TABLE group_snapshots (
    source_vendor VARCHAR NOT NULL,
    group_type    VARCHAR NOT NULL,
    group_key     VARCHAR NOT NULL,
    properties    JSON,
    as_of         TIMESTAMPTZ,
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    import_id     BIGINT NOT NULL
);

-- Every record that could not be loaded, with why. raw is truncated; raw_length is the full
-- length in bytes.
CREATE TABLE quarantine (
    import_id   BIGINT NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    reason      VARCHAR NOT NULL,
    raw         VARCHAR,
    raw_length  BIGINT NOT NULL
);

CREATE TABLE workspace_settings (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
