-- Profiles and accounts. Expects the persons, person_map and sessions of this rebuild, and
-- temp table model_params(time_zone, week_start) holding the settings. {DAY}: the event's
-- local date in the workspace time zone (an expression over e.ts_utc); {PERSON_KEY}: the
-- identity mode's person key. The events' accounts are read from event_groups (one row per
-- event, group type and key: the groups JSON parsed once, when the event is first modelled).
-- Scopes, all TRUE in a full rebuild: {SCOPE_EVENTS} the events (e) whose persons' profiles
-- are written, {SCOPE_PERSONS} those persons (person_id), {SCOPE_ACCOUNTS} the accounts
-- (eg.group_type, eg.group_key) written.
CREATE OR REPLACE TEMP TABLE prof_ev AS
SELECT pm.person_id, e.ts_utc, e.event_name, {DAY} AS day
FROM events e JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
WHERE {SCOPE_EVENTS};

-- Every event's accounts, with the event's person: one row per (event, group type, group key).
CREATE OR REPLACE TEMP TABLE acct_ev AS
SELECT eg.group_type, eg.group_key, pm.person_id, e.ts_utc, e.event_name, {DAY} AS day
FROM event_groups eg
JOIN events e ON e.event_seq = eg.event_seq
JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
WHERE {SCOPE_ACCOUNTS};

INSERT INTO profiles
WITH base AS (
    SELECT person_id, min(ts_utc) AS first_seen, max(ts_utc) AS last_seen, count(*) AS events,
        count(DISTINCT day) AS active_days
    FROM prof_ev GROUP BY person_id
), names AS (
    SELECT person_id, event_name, count(*) AS n FROM prof_ev GROUP BY ALL
), top AS (
    SELECT person_id, to_json(list({'event': event_name, 'count': n} ORDER BY n DESC, event_name)[1:5]) AS top_events
    FROM names GROUP BY person_id
), g AS (
    SELECT DISTINCT person_id, group_type, group_key FROM acct_ev WHERE {SCOPE_PERSONS}
), groups AS (
    SELECT person_id, to_json(map_from_entries(list({'k': group_type, 'v': keys} ORDER BY group_type))) AS groups FROM (
        SELECT person_id, group_type, list(DISTINCT group_key ORDER BY group_key) AS keys FROM g
        WHERE group_key IS NOT NULL GROUP BY ALL)
    GROUP BY person_id
), s AS (
    SELECT person_id, count(*) AS n FROM sessions WHERE person_id IS NOT NULL AND {SCOPE_PERSONS} GROUP BY person_id
)
SELECT b.person_id, b.first_seen, b.last_seen, b.events, coalesce(s.n, 0), b.active_days,
    top.top_events, p.properties, groups.groups
FROM base b
LEFT JOIN top USING (person_id)
LEFT JOIN groups USING (person_id)
LEFT JOIN s USING (person_id)
LEFT JOIN persons p USING (person_id);

INSERT INTO accounts
WITH a AS (
    SELECT group_type, group_key, count(DISTINCT person_id) AS members, count(*) AS events,
        min(ts_utc) AS first_seen, max(ts_utc) AS last_seen, count(DISTINCT day) AS active_days,
        count(DISTINCT event_name) FILTER (WHERE NOT starts_with(event_name, '$')) AS features_used,
        count(*) FILTER (WHERE regexp_matches(lower(event_name), 'error|exception|fail')) AS error_events
    FROM acct_ev WHERE group_key IS NOT NULL GROUP BY ALL
), dau AS (
    SELECT group_type, group_key, avg(n) AS avg_dau FROM (
        SELECT group_type, group_key, day, count(DISTINCT person_id) AS n FROM acct_ev
        WHERE group_key IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
), snap AS (
    SELECT group_type, group_key, arg_max(properties, (as_of, import_id, source_line)) AS properties
    FROM group_snapshots GROUP BY ALL
)
SELECT a.group_type, a.group_key,
    coalesce(snap.properties ->> '$.name', snap.properties ->> '$.company_name', snap.properties ->> '$.title'),
    snap.properties, a.members, a.events, a.first_seen, a.last_seen, a.active_days, dau.avg_dau,
    a.features_used, a.error_events
FROM a
LEFT JOIN dau USING (group_type, group_key)
LEFT JOIN snap USING (group_type, group_key);

INSERT INTO account_activity
SELECT group_type, group_key,
    CASE WHEN (SELECT week_start FROM model_params) = 'sunday' THEN CAST(date_trunc('week', day + 1) AS DATE) - 1 ELSE CAST(date_trunc('week', day) AS DATE) END AS week_start,
    count(DISTINCT person_id), count(*)
FROM acct_ev WHERE group_key IS NOT NULL
GROUP BY ALL;

DROP TABLE prof_ev;
DROP TABLE acct_ev;
