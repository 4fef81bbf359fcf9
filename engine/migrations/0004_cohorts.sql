-- Stitchbook workspace schema, version 4: saved cohorts and saved insights (user data, kept
-- across model rebuilds).

CREATE TABLE cohorts (
    name        VARCHAR PRIMARY KEY,
    -- the cohort definition as JSON (insights::cohort::CohortDef)
    definition  JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE saved_insights (
    name        VARCHAR PRIMARY KEY,
    -- the insight query as JSON (insights::Query)
    query       JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
