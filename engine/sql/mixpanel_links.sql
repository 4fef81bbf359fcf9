-- $identify ($anon_id -> $identified_id), $create_alias (alias -> distinct_id),
-- $merge ($distinct_ids[0] <-> [1]), $distinct_id_before_identity -> distinct_id, and the
-- first $device_id/$user_id pair of each device and user. Ids written as `$device:<id>`
-- (Simplified ID Merge) are linked by the device id itself, as events' anon_id holds it.
SELECT * REPLACE (CASE WHEN starts_with(from_id, '$device:') THEN substr(from_id, 9) ELSE from_id END AS from_id) FROM (
    SELECT CASE event_name
               WHEN '$identify' THEN properties ->> '$."$anon_id"'
               WHEN '$create_alias' THEN properties ->> '$.alias'
               ELSE properties ->> '$."$distinct_ids"[0]' END AS from_id,
           CASE event_name
               WHEN '$identify' THEN properties ->> '$."$identified_id"'
               WHEN '$create_alias' THEN distinct_id
               ELSE properties ->> '$."$distinct_ids"[1]' END AS to_id,
           event_kind AS link_kind, ts_utc, line, event_uuid
    FROM stg_loaded WHERE event_name IN ('$identify', '$create_alias', '$merge')
    UNION ALL
    SELECT properties ->> '$."$distinct_id_before_identity"', distinct_id, 'merge', ts_utc, line, event_uuid
    FROM stg_loaded WHERE (properties ->> '$."$distinct_id_before_identity"') IS NOT NULL
    UNION ALL
    SELECT * FROM (
        SELECT DISTINCT ON (anon_id, user_id) anon_id, user_id, 'device_user_pair', ts_utc, line, event_uuid
        FROM stg_loaded WHERE anon_id IS NOT NULL AND user_id IS NOT NULL
        ORDER BY anon_id, user_id, ts_utc, line)
)
WHERE nullif(trim(from_id), '') IS NOT NULL AND nullif(trim(to_id), '') IS NOT NULL AND from_id <> to_id
