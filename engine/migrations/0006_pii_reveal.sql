-- Stitchbook workspace schema, version 6: the PII reveal (access) log. Every time the app
-- shows a detected value in full, who did it, why, when, and which event and path. Never the
-- value itself.

CREATE SEQUENCE pii_reveal_seq START 1;
CREATE TABLE pii_reveal_log (
    seq         BIGINT PRIMARY KEY DEFAULT nextval('pii_reveal_seq'),
    revealed_at TIMESTAMPTZ NOT NULL,
    reviewer    VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    finding_id  VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,
    detector    VARCHAR NOT NULL,
    event_seq   BIGINT NOT NULL,
    event_uuid  VARCHAR NOT NULL
);
