-- Identity assertions in loaded PostHog events (formats.md §1.5). Illegal ids are kept here
-- and refused, visibly, by identity resolution.
SELECT
    CASE WHEN event_name = '$identify' THEN properties ->> '$."$anon_distinct_id"' ELSE properties ->> '$.alias' END AS from_id,
    distinct_id AS to_id,
    CASE event_name WHEN '$identify' THEN 'identify' WHEN '$create_alias' THEN 'alias' ELSE 'merge' END AS link_kind,
    ts_utc,
    line,
    event_uuid
FROM stg_loaded
WHERE event_name IN ('$identify', '$create_alias', '$merge_dangerously')
  AND distinct_id IS NOT NULL
  AND nullif(trim(CASE WHEN event_name = '$identify' THEN properties ->> '$."$anon_distinct_id"' ELSE properties ->> '$.alias' END), '') IS NOT NULL
  AND CASE WHEN event_name = '$identify' THEN properties ->> '$."$anon_distinct_id"' ELSE properties ->> '$.alias' END <> distinct_id
