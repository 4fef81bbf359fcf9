-- alias: previousId -> userId; identify with both ids; any other call carrying both ids
-- (first occurrence of each pair per file). Raw JSON is read under a json_valid guard: the
-- optimizer may push the filter below the join, onto rows that were quarantined.
SELECT a.from_id, a.to_id, 'alias' AS link_kind, a.ts_utc, a.line, a.event_uuid
FROM (SELECT nullif(trim(CASE WHEN json_valid(j.raw) THEN json_extract_string(j.raw, '$.previousId') END), '') AS from_id, l.user_id AS to_id, l.ts_utc, l.line, l.event_uuid
      FROM stg_loaded l JOIN stg_json j USING (line) WHERE l.event_kind = 'alias') a
WHERE a.from_id IS NOT NULL AND a.to_id IS NOT NULL AND a.from_id <> a.to_id
UNION ALL
SELECT anon_id, user_id, 'identify', ts_utc, line, event_uuid
FROM stg_loaded WHERE event_kind = 'identify' AND anon_id IS NOT NULL AND user_id IS NOT NULL AND anon_id <> user_id
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (anon_id, user_id) anon_id, user_id, 'device_user_pair', ts_utc, line, event_uuid
    FROM stg_loaded
    WHERE event_kind NOT IN ('identify', 'alias') AND anon_id IS NOT NULL AND user_id IS NOT NULL AND anon_id <> user_id
    ORDER BY anon_id, user_id, ts_utc, line)
