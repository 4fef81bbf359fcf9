-- Group property snapshots from PostHog $groupidentify events.
SELECT
    properties ->> '$."$group_type"' AS group_type,
    properties ->> '$."$group_key"' AS group_key,
    CASE WHEN json_type(properties, '$."$group_set"') = 'OBJECT' THEN properties -> '$."$group_set"' END AS props,
    ts_utc AS as_of,
    line
FROM stg_loaded
WHERE event_name = '$groupidentify'
  AND nullif(properties ->> '$."$group_type"', '') IS NOT NULL
  AND nullif(properties ->> '$."$group_key"', '') IS NOT NULL
