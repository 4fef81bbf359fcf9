-- Stitchbook workspace schema, version 7: results of slow overview reads (the data-quality
-- checks, the events' summary) remembered with the fingerprint of what they read, so that
-- opening a big workspace again does not redo seconds of work before the first chart.

CREATE TABLE remembered (
    what        VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    value       JSON NOT NULL
);
