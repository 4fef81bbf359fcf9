-- Person rows (semantics.md §1.5), for persons with at least one event: created_at = the earliest event, last_seen = the latest;
-- properties = per key the latest value set ($set, vendor person properties such as Segment
-- traits or Amplitude user_properties), else the earliest $set_once value; display name and
-- email from the usual keys. Expects temp table model_identified(person_id, is_identified).
INSERT INTO persons
WITH ev0 AS (
    -- only events whose text mentions $set are parsed for it
    SELECT pm.person_id, e.ts_utc, e.event_seq, e.person_properties,
        CASE WHEN contains(e.properties::VARCHAR, '"$set') THEN json_extract(e.properties, ['$."$set"', '$."$set_once"']) END AS so
    FROM events e JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
), ev AS (
    SELECT person_id, ts_utc, event_seq,
        CASE WHEN json_type(so[1]) = 'OBJECT' THEN so[1] END AS set_props,
        CASE WHEN json_type(so[2]) = 'OBJECT' THEN so[2] END AS once_props,
        CASE WHEN json_type(person_properties) = 'OBJECT' AND person_properties::VARCHAR <> '{}' THEN person_properties END AS person_properties
    FROM ev0
), span AS (
    SELECT person_id, min(ts_utc) AS created_at, max(ts_utc) AS last_seen FROM ev GROUP BY person_id
), kv AS (
    SELECT person_id, ts_utc, event_seq, 0 AS once,
        unnest(map_entries(json_transform(json_merge_patch(coalesce(person_properties, '{}'), coalesce(set_props, '{}')), '"MAP(VARCHAR, JSON)"'))) AS e
    FROM ev WHERE set_props IS NOT NULL OR person_properties IS NOT NULL
    UNION ALL
    SELECT person_id, ts_utc, event_seq, 1 AS once, unnest(map_entries(json_transform(once_props, '"MAP(VARCHAR, JSON)"')))
    FROM ev WHERE once_props IS NOT NULL
), latest AS (
    SELECT person_id, e.key AS k,
        CASE WHEN bool_or(once = 0) THEN arg_max(e.value, (ts_utc, event_seq)) FILTER (WHERE once = 0)
             ELSE arg_min(e.value, (ts_utc, event_seq)) END AS v
    FROM kv
    WHERE e.key IS NOT NULL AND e.value IS NOT NULL AND json_type(e.value) <> 'NULL' AND e.value::VARCHAR <> '"EMPTY"'
    GROUP BY person_id, e.key
), props AS (
    SELECT person_id, to_json(map_from_entries(list({'k': k, 'v': v} ORDER BY k))) AS properties FROM latest GROUP BY person_id
), ids AS (
    SELECT person_id, count(*) AS n, min(distinct_id) AS first_id FROM person_map GROUP BY person_id
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
LEFT JOIN props p USING (person_id)
LEFT JOIN model_identified mi USING (person_id)
LEFT JOIN shared USING (person_id)
