-- Person properties when no merges are replayed (warehouse stitch): per key the latest value
-- set ($set, vendor person properties such as Segment traits), else the earliest $set_once.
INSERT INTO model_props
WITH ev0 AS (
    SELECT pm.person_id, e.ts_utc, e.event_seq, e.person_properties,
        CASE WHEN contains(e.properties::VARCHAR, '"$set') THEN json_extract(e.properties, ['$."$set"', '$."$set_once"']) END AS so
    FROM events e JOIN person_map pm ON pm.distinct_id = coalesce(e.anon_id, e.distinct_id)
    WHERE contains(e.properties::VARCHAR, '"$set') OR (e.person_properties IS NOT NULL AND e.person_properties::VARCHAR <> '{}')
), ev AS (
    SELECT person_id, ts_utc, event_seq,
        CASE WHEN json_type(so[1]) = 'OBJECT' THEN so[1] END AS set_props,
        CASE WHEN json_type(so[2]) = 'OBJECT' THEN so[2] END AS once_props,
        CASE WHEN json_type(person_properties) = 'OBJECT' THEN person_properties END AS person_properties
    FROM ev0
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
)
SELECT person_id, to_json(map_from_entries(list({'k': k, 'v': v} ORDER BY k))) FROM latest GROUP BY person_id
