-- Amplitude group_properties {group_type: {group_value: {prop: val}}} (formats.md §2.2): one
-- group snapshot per distinct state, at the first event that carried it. Only records whose
-- text holds a non-empty group_properties object are parsed again.
WITH g AS (
    SELECT l.line, l.ts_utc, json_extract(j.raw, '$.group_properties') AS gp
    FROM stg_loaded l JOIN stg_json j ON j.line = l.line
    WHERE contains(j.raw, '"group_properties":{"') AND json_valid(j.raw)
), t AS (
    SELECT line, ts_utc, unnest(map_entries(json_transform(gp, '"MAP(VARCHAR, JSON)"'))) AS e
    FROM g WHERE json_type(gp) = 'OBJECT'
), k AS (
    SELECT line, ts_utc, e.key AS group_type,
        unnest(map_entries(json_transform(e.value, '"MAP(VARCHAR, JSON)"'))) AS kv
    FROM t WHERE json_type(e.value) = 'OBJECT'
)
SELECT DISTINCT ON (group_type, kv.key, kv.value::VARCHAR)
    group_type, kv.key AS group_key, kv.value AS props, ts_utc AS as_of, line
FROM k
WHERE json_type(kv.value) = 'OBJECT' AND nullif(trim(kv.key), '') IS NOT NULL
ORDER BY group_type, kv.key, kv.value::VARCHAR, ts_utc, line
