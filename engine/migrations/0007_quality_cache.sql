-- Stitchbook workspace schema, version 7: the last data-quality checks, remembered with the
-- fingerprint of what they read (events, quarantine, imports, model build), so that opening
-- a big workspace again does not redo seconds of checks before the first chart.

CREATE TABLE quality_cache (
    fingerprint VARCHAR NOT NULL,
    issues      JSON NOT NULL
);
