-- Stitchbook workspace schema, version 5: the PII audit (issue 7). Findings are replaced by
-- each scan; review decisions are user data, keyed by the finding's stable id, and survive
-- re-scans. No table here holds a raw value: samples are masked.

CREATE TABLE pii_scans (
    scanned_at     TIMESTAMPTZ NOT NULL,
    events         BIGINT NOT NULL,
    persons        BIGINT NOT NULL,
    person_rows    BIGINT NOT NULL,
    snapshot_rows  BIGINT NOT NULL,
    values_checked BIGINT NOT NULL,
    findings       BIGINT NOT NULL,
    secs           DOUBLE NOT NULL
);

CREATE TABLE pii_findings (
    finding_id   VARCHAR PRIMARY KEY,
    -- events | persons | person_snapshots | group_snapshots
    source       VARCHAR NOT NULL,
    path         VARCHAR NOT NULL,
    -- a built-in detector name or custom:<rule>
    detector     VARCHAR NOT NULL,
    severity     VARCHAR NOT NULL,
    hits         BIGINT NOT NULL,
    rows         BIGINT NOT NULL,
    persons      BIGINT NOT NULL,
    event_share  DOUBLE NOT NULL,
    person_share DOUBLE NOT NULL,
    -- [{name, count}]
    event_names  JSON NOT NULL,
    -- [{file, vendor}]
    files        JSON NOT NULL,
    first_seen   TIMESTAMPTZ,
    last_seen    TIMESTAMPTZ,
    -- masked samples only
    samples      JSON NOT NULL
);

-- The current decision per finding; hits_at_review is the finding's hit count when it was
-- reviewed (a different count now means the finding needs review again).
CREATE TABLE pii_reviews (
    finding_id     VARCHAR PRIMARY KEY,
    -- expected | needs_redaction | false_positive
    status         VARCHAR NOT NULL,
    note           VARCHAR NOT NULL,
    reviewer       VARCHAR NOT NULL,
    reviewed_at    TIMESTAMPTZ NOT NULL,
    hits_at_review BIGINT NOT NULL,
    -- what the finding was, for decisions whose finding is gone from the latest scan
    source         VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    detector       VARCHAR NOT NULL
);

-- Every decision ever made, in order: the review trail.
CREATE SEQUENCE pii_review_seq START 1;
CREATE TABLE pii_review_log (
    seq            BIGINT PRIMARY KEY DEFAULT nextval('pii_review_seq'),
    finding_id     VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,
    note           VARCHAR NOT NULL,
    reviewer       VARCHAR NOT NULL,
    reviewed_at    TIMESTAMPTZ NOT NULL,
    hits_at_review BIGINT NOT NULL
);

-- Custom detectors: a regular expression (RE2 syntax, evaluated by DuckDB).
CREATE TABLE pii_rules (
    name       VARCHAR PRIMARY KEY,
    pattern    VARCHAR NOT NULL,
    severity   VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Redacted exports written from this workspace (never the salt).
CREATE SEQUENCE pii_export_seq START 1;
CREATE TABLE pii_exports (
    export_id    BIGINT PRIMARY KEY DEFAULT nextval('pii_export_seq'),
    created_at   TIMESTAMPTZ NOT NULL,
    out_path     VARCHAR NOT NULL,
    format       VARCHAR NOT NULL,
    -- complete | failed
    status       VARCHAR NOT NULL,
    rows_source  BIGINT NOT NULL,
    rows_written BIGINT NOT NULL,
    -- the whole ExportReport as JSON (rules, checks, counts)
    report       JSON NOT NULL
);
