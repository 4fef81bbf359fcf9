-- Mixpanel Raw Event Export (formats.md §3, §9.2). time is epoch seconds, or milliseconds
-- when above 1e10; sb_mixpanel_offset() (a workspace setting, default 0) corrects projects
-- created before 2023 whose times are in the project time zone.
WITH t AS (
    SELECT line, raw, try(json_transform(raw, '{"event":"JSON","properties":"JSON"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        CASE WHEN json_type(r.event) = 'VARCHAR' THEN nullif(trim(r.event ->> '$'), '') END AS ev,
        CASE WHEN json_type(r.properties) = 'OBJECT' THEN json_transform(r.properties, '{"time":"DOUBLE","distinct_id":"VARCHAR","$insert_id":"VARCHAR","$device_id":"VARCHAR","$user_id":"VARCHAR","$identified_id":"VARCHAR","$anon_id":"VARCHAR","$mp_api_timestamp_ms":"DOUBLE","mp_processing_time_ms":"DOUBLE"}') END AS pr
    FROM t
), q AS (
    SELECT *,
        CASE WHEN pr.time IS NULL THEN NULL
             WHEN pr.time > 1e10 THEN sb_us(round(pr.time * 1000))
             ELSE sb_us(round(pr.time * 1000000)) END AS ts,
        sb_idv(pr.distinct_id) AS did
    FROM p
)
SELECT
    line,
    CASE WHEN sb_idv(pr."$insert_id") IS NOT NULL THEN sb_uuid_of('mixpanel:' || pr."$insert_id") ELSE sb_uuid_of(raw) END AS event_uuid,
    -- Mixpanel's own rule: (event, time, distinct_id, $insert_id)
    concat_ws('|', ev, CAST(pr.time AS VARCHAR), coalesce(did, ''), coalesce(pr."$insert_id", 'md5:' || md5(raw))) AS dedupe_key,
    ev AS event_name,
    CASE ev WHEN '$identify' THEN 'identify' WHEN '$create_alias' THEN 'alias' WHEN '$merge' THEN 'merge'
        WHEN '$mp_web_page_view' THEN 'page' ELSE 'track' END AS event_kind,
    ts - to_seconds(sb_mixpanel_offset()) AS ts_utc,
    sb_us(coalesce(pr."$mp_api_timestamp_ms", pr.mp_processing_time_ms) * 1000) AS received_at_utc,
    did AS distinct_id,
    coalesce(sb_idv(pr."$user_id"), CASE WHEN ev = '$identify' THEN sb_idv(pr."$identified_id") END) AS user_id,
    coalesce(sb_idv(pr."$device_id"),
        CASE WHEN starts_with(did, '$device:') THEN nullif(substr(did, 9), '') END,
        CASE WHEN ev = '$identify' THEN sb_idv(pr."$anon_id") END) AS anon_id,
    NULL AS session_id,
    NULL AS vendor_person_id,
    r.properties AS properties,
    NULL::JSON AS person_properties,
    NULL::JSON AS groups,
    CASE
        WHEN r IS NULL OR (r.event IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN r.event IS NULL THEN 'missing field "event"'
        WHEN ev IS NULL THEN 'field "event" must be non-empty text'
        WHEN r.properties IS NULL OR json_type(r.properties) = 'NULL' THEN 'missing field "properties"'
        WHEN pr IS NULL THEN 'field "properties" must be an object, found ' || lower(json_type(r.properties))
        WHEN pr.time IS NULL THEN 'missing or non-numeric properties.time'
        WHEN ts IS NULL THEN 'properties.time ' || pr.time || ' is out of range'
    END AS reject_reason
FROM q
