-- domain_userid / network_userid -> user_id by co-occurrence (first pair per file).
SELECT * FROM (
    SELECT DISTINCT ON (from_id, to_id) from_id, to_id, 'device_user_pair' AS link_kind, ts_utc, line, event_uuid FROM (
        SELECT nullif(trim(properties ->> '$.domain_userid'), '') AS from_id, user_id AS to_id, ts_utc, line, event_uuid FROM stg_loaded
        UNION ALL
        SELECT nullif(trim(properties ->> '$.network_userid'), ''), user_id, ts_utc, line, event_uuid FROM stg_loaded)
    WHERE from_id IS NOT NULL AND to_id IS NOT NULL AND from_id <> to_id
    ORDER BY from_id, to_id, ts_utc, line)
