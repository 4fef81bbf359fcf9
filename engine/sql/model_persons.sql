-- Person rows (semantics.md §1.5), for persons with at least one event: created_at = the
-- earliest event, last_seen = the latest; properties as identity replay folded them
-- (temp table model_props); display name and email from the usual keys. Expects temp table
-- model_identified(person_id, is_identified). {SCOPE_EVENTS}: which events (e) to read,
-- {SCOPE_PERSONS}: which persons (person_id) to write (TRUE and TRUE in a full rebuild; the
-- touched persons and their events in an incremental pass).
INSERT INTO persons
WITH span AS (
    SELECT pm.person_id, min(e.ts_utc) AS created_at, max(e.ts_utc) AS last_seen
    FROM events e JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
    WHERE {SCOPE_EVENTS}
    GROUP BY pm.person_id
), ids AS (
    SELECT person_id, count(*) AS n, min(distinct_id) AS first_id FROM person_map WHERE {SCOPE_PERSONS} GROUP BY person_id
), shared AS (
    SELECT DISTINCT pm.person_id FROM shared_devices s JOIN person_map pm ON pm.distinct_id = s.device_id
)
SELECT ids.person_id,
    coalesce(mi.is_identified, false),
    span.created_at,
    span.last_seen,
    coalesce(p.properties ->> '$.name', p.properties ->> '$."$name"', p.properties ->> '$.full_name',
             nullif(concat_ws(' ', p.properties ->> '$.first_name', p.properties ->> '$.last_name'), '')) AS display_name,
    coalesce(p.properties ->> '$.email', p.properties ->> '$."$email"', p.properties ->> '$.Email') AS email,
    p.properties,
    ids.n,
    shared.person_id IS NOT NULL
FROM ids
JOIN span USING (person_id)
LEFT JOIN model_props p USING (person_id)
LEFT JOIN model_identified mi USING (person_id)
LEFT JOIN shared USING (person_id)
