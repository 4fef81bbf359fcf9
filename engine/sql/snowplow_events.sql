-- Snowplow atomic events: warehouse CSV/Parquet with the canonical column names, and enriched
-- TSV staged with the 131 documented names (formats.md §6, §9.2). Empty strings are nulls; times are naive UTC text.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"event_id":"VARCHAR","event_fingerprint":"VARCHAR","event_name":"VARCHAR","event":"VARCHAR","se_action":"VARCHAR","derived_tstamp":"VARCHAR","collector_tstamp":"VARCHAR","user_id":"VARCHAR","domain_userid":"VARCHAR","network_userid":"VARCHAR","domain_sessionid":"VARCHAR","contexts":"VARCHAR","derived_contexts":"VARCHAR","unstruct_event":"VARCHAR"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        sb_idv(r.event_id) AS eid,
        coalesce(nullif(trim(r.event_name), ''), nullif(trim(r.event), '')) AS ev,
        coalesce(sb_ts(nullif(r.derived_tstamp, '')), sb_ts(nullif(r.collector_tstamp, ''))) AS ts,
        sb_idv(r.user_id) AS usr,
        coalesce(sb_idv(r.domain_userid), sb_idv(r.network_userid)) AS anon
    FROM t
)
SELECT
    line,
    CASE WHEN eid IS NULL THEN sb_uuid_of(raw) ELSE eid END AS event_uuid,
    -- event_id repeats in real pipelines; with its fingerprint it identifies one event
    CASE WHEN eid IS NULL THEN 'md5:' || md5(raw) ELSE eid || '|' || coalesce(nullif(r.event_fingerprint, ''), '') END AS dedupe_key,
    ev AS event_name,
    CASE r.event WHEN 'page_view' THEN 'page' WHEN 'page_ping' THEN 'session_marker' ELSE 'track' END AS event_kind,
    ts AS ts_utc,
    sb_ts(nullif(r.collector_tstamp, '')) AS received_at_utc,
    coalesce(usr, anon) AS distinct_id,
    usr AS user_id,
    anon AS anon_id,
    sb_idv(r.domain_sessionid) AS session_id,
    NULL AS vendor_person_id,
    -- Self-describing JSON columns (enriched TSV) as JSON, not text; kept as text if invalid.
    CASE WHEN coalesce(r.contexts, r.derived_contexts, r.unstruct_event, '') = '' THEN CASE WHEN contains(raw, '":""') THEN sb_nonempty_object(raw) ELSE raw::JSON END
        ELSE json_merge_patch(CASE WHEN contains(raw, '":""') THEN sb_nonempty_object(raw) ELSE raw::JSON END, json_object(
            'contexts', coalesce(TRY_CAST(nullif(r.contexts, '') AS JSON), to_json(nullif(r.contexts, ''))),
            'derived_contexts', coalesce(TRY_CAST(nullif(r.derived_contexts, '') AS JSON), to_json(nullif(r.derived_contexts, ''))),
            'unstruct_event', coalesce(TRY_CAST(nullif(r.unstruct_event, '') AS JSON), to_json(nullif(r.unstruct_event, '')))))
    END AS properties,
    NULL::JSON AS person_properties,
    NULL::JSON AS groups,
    CASE
        WHEN r IS NULL OR (r.event_id IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN ev IS NULL THEN 'neither "event_name" nor "event"'
        WHEN ts IS NULL THEN 'no parseable time (derived_tstamp or collector_tstamp)' || coalesce(': ' || coalesce(sb_ts_why(r.derived_tstamp), sb_ts_why(r.collector_tstamp)), '')
    END AS reject_reason
FROM p
