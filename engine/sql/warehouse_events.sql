-- Segment / RudderStack warehouse and data-lake rows (formats.md §4.1, §5.3): flattened
-- snake_case columns, context_* prefixes, times as text or epoch integers (data lakes write
-- microseconds). One table per call type: rows with "event" are tracks, rows with a url or
-- path are pages, other rows keep their "type" column if any.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"id":"VARCHAR","anonymous_id":"VARCHAR","user_id":"VARCHAR","event":"VARCHAR","event_text":"VARCHAR","type":"VARCHAR","name":"VARCHAR","url":"VARCHAR","path":"VARCHAR","timestamp":"VARCHAR","original_timestamp":"VARCHAR","received_at":"VARCHAR","context_session_id":"VARCHAR","context_group_id":"VARCHAR"}')) AS r,
        try(json_transform(raw, '"MAP(VARCHAR, JSON)"')) AS m
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r, m,
        coalesce(sb_any_ts(r.timestamp), sb_any_ts(r.original_timestamp), sb_any_ts(r.received_at)) AS ts,
        sb_idv(r.id) AS mid,
        sb_idv(r.user_id) AS uid,
        sb_idv(r.anonymous_id) AS aid,
        CASE WHEN nullif(trim(r.event), '') IS NOT NULL THEN 'track'
             WHEN nullif(r.url, '') IS NOT NULL OR nullif(r.path, '') IS NOT NULL THEN 'page'
             WHEN lower(r.type) IN ('track', 'page', 'screen', 'identify', 'group', 'alias') THEN lower(r.type)
             ELSE 'track' END AS kind
    FROM t
)
SELECT
    line,
    CASE WHEN mid IS NULL THEN sb_uuid_of(raw) ELSE mid END AS event_uuid,
    CASE WHEN mid IS NULL THEN 'md5:' || md5(raw) ELSE mid END AS dedupe_key,
    CASE WHEN kind = 'track' THEN coalesce(nullif(trim(r.event), ''), nullif(trim(r.event_text), ''), 'track') ELSE kind END AS event_name,
    kind AS event_kind,
    ts AS ts_utc,
    sb_any_ts(r.received_at) AS received_at_utc,
    coalesce(uid, aid) AS distinct_id,
    uid AS user_id,
    aid AS anon_id,
    sb_idv(r.context_session_id) AS session_id,
    NULL AS vendor_person_id,
    json_merge_patch(
        to_json(map_from_entries(list_filter(map_entries(m), lambda e: NOT starts_with(e.key, 'context_')
            AND e.key NOT IN ('id', 'anonymous_id', 'user_id', 'timestamp', 'original_timestamp', 'received_at', 'sent_at', 'uuid_ts', '_timestamp')
            AND json_type(e.value) <> 'NULL' AND e.value <> '""'))),
        json_object('$context', to_json(map_from_entries(list_transform(
            list_filter(map_entries(m), lambda e: starts_with(e.key, 'context_') AND json_type(e.value) <> 'NULL' AND e.value <> '""'),
            lambda e: {'k': substr(e.key, 9), 'v': e.value}))))
    ) AS properties,
    NULL::JSON AS person_properties,
    CASE WHEN sb_idv(r.context_group_id) IS NOT NULL THEN json_object('group', [sb_idv(r.context_group_id)]) END AS groups,
    CASE
        WHEN r IS NULL OR m IS NULL THEN coalesce(sb_json_reason(raw), 'not a flat record')
        WHEN ts IS NULL THEN 'no parseable time (timestamp, original_timestamp or received_at)'
        WHEN uid IS NULL AND aid IS NULL THEN 'neither "user_id" nor "anonymous_id"'
    END AS reject_reason
FROM p
