-- Group calls: the group's traits as a snapshot.
SELECT 'group' AS group_type, l.groups ->> '$.group[0]' AS group_key,
    CASE WHEN json_valid(j.raw) AND json_type(j.raw, '$.traits') = 'OBJECT' THEN json_extract(j.raw, '$.traits') END AS props,
    l.ts_utc AS as_of, l.line
FROM stg_loaded l JOIN stg_json j USING (line)
WHERE l.event_kind = 'group' AND (l.groups ->> '$.group[0]') IS NOT NULL
