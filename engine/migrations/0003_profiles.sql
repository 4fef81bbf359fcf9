-- Stitchbook workspace schema, version 3: per-person profiles and per-account rollups
-- (derived, rebuilt with the model).

CREATE TABLE profiles (
    person_id     VARCHAR NOT NULL,
    first_seen    TIMESTAMPTZ,
    last_seen     TIMESTAMPTZ,
    events        BIGINT NOT NULL,
    sessions      BIGINT NOT NULL,
    -- distinct calendar days with an event, in the workspace time zone
    active_days   BIGINT NOT NULL,
    -- [{event, count}], the five most frequent event names
    top_events    JSON,
    properties    JSON,
    -- {group_type: [group_key, ...]} over all the person's events
    groups        JSON
);

-- One row per group (account): members, activity and feature-breadth inputs for a health score.
CREATE TABLE accounts (
    group_type     VARCHAR NOT NULL,
    group_key      VARCHAR NOT NULL,
    name           VARCHAR,
    -- the latest group snapshot's properties
    properties     JSON,
    members        BIGINT NOT NULL,
    events         BIGINT NOT NULL,
    first_seen     TIMESTAMPTZ,
    last_seen      TIMESTAMPTZ,
    active_days    BIGINT NOT NULL,
    -- mean daily active members over the account's active days
    avg_dau        DOUBLE,
    -- distinct event names other than $-prefixed system events
    features_used  BIGINT NOT NULL,
    -- events whose name mentions error, exception or fail
    error_events   BIGINT NOT NULL
);

-- Active members and events per account per week (week start from the settings).
CREATE TABLE account_activity (
    group_type   VARCHAR NOT NULL,
    group_key    VARCHAR NOT NULL,
    week_start   DATE NOT NULL,
    active_users BIGINT NOT NULL,
    events       BIGINT NOT NULL
);
