-- GA4 BigQuery export rows (formats.md §8, §9.2): INT64 values may be JSON strings;
-- event_params and user_properties are flattened to objects of their one typed value.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"event_date":"VARCHAR","event_timestamp":"VARCHAR","event_name":"JSON","event_params":"JSON","user_properties":"JSON","user_id":"VARCHAR","user_pseudo_id":"VARCHAR","stream_id":"VARCHAR","event_bundle_sequence_id":"VARCHAR","batch_event_index":"VARCHAR","event_server_timestamp_offset":"VARCHAR","platform":"VARCHAR","device":"JSON","geo":"JSON","app_info":"JSON","traffic_source":"JSON","collected_traffic_source":"JSON","ecommerce":"JSON","items":"JSON","privacy_info":"JSON"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), l AS (
    -- each array parsed once, then flattened
    SELECT *, sb_ga4_list(r.event_params) AS ep, sb_ga4_list(r.user_properties) AS up FROM t
), p AS (
    SELECT line, raw, r,
        CASE WHEN json_type(r.event_name) = 'VARCHAR' THEN nullif(trim(r.event_name ->> '$'), '') END AS ev,
        sb_us(TRY_CAST(r.event_timestamp AS BIGINT)) AS ts,
        sb_ga4_kv(ep) AS params,
        sb_ga4_kv(up) AS uprops,
        sb_idv(r.user_id) AS usr,
        sb_idv(r.user_pseudo_id) AS pseudo
    FROM l
), q AS (
    SELECT *, params ->> '$.ga_session_id' AS ga_session FROM p
)
SELECT
    line,
    sb_uuid_of('ga4:' || concat_ws('|', r.stream_id, pseudo, r.event_timestamp, ev, r.event_bundle_sequence_id, r.batch_event_index)) AS event_uuid,
    concat_ws('|', coalesce(r.stream_id, ''), coalesce(pseudo, ''), r.event_timestamp, ev, coalesce(r.event_bundle_sequence_id, ''), coalesce(r.batch_event_index, '')) AS dedupe_key,
    ev AS event_name,
    CASE ev WHEN 'page_view' THEN 'page' WHEN 'screen_view' THEN 'screen' WHEN 'session_start' THEN 'session_marker' ELSE 'track' END AS event_kind,
    ts AS ts_utc,
    NULL::TIMESTAMPTZ AS received_at_utc,
    coalesce(usr, pseudo) AS distinct_id,
    usr AS user_id,
    pseudo AS anon_id,
    CASE WHEN pseudo IS NOT NULL AND ga_session IS NOT NULL THEN pseudo || ':' || ga_session END AS session_id,
    NULL AS vendor_person_id,
    json_merge_patch(coalesce(params, '{}'::JSON), json_object(
        '$event_date', r.event_date, '$platform', r.platform, '$stream_id', r.stream_id,
        '$device', r.device, '$geo', r.geo, '$app_info', r.app_info, '$traffic_source', r.traffic_source,
        '$collected_traffic_source', r.collected_traffic_source, '$ecommerce', r.ecommerce,
        '$items', r.items, '$privacy_info', r.privacy_info)) AS properties,
    uprops AS person_properties,
    NULL::JSON AS groups,
    CASE
        WHEN r IS NULL OR (r.event_name IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN ev IS NULL THEN 'missing or empty "event_name"'
        WHEN r.event_timestamp IS NULL THEN 'missing "event_timestamp"'
        WHEN ts IS NULL THEN 'event_timestamp "' || sb_show(r.event_timestamp) || '" is not an integer of microseconds' || CASE WHEN TRY_CAST(r.event_timestamp AS BIGINT) IS NOT NULL THEN ' within the years 1-9999' ELSE '' END
        WHEN r.event_params IS NOT NULL AND json_type(r.event_params) NOT IN ('ARRAY', 'NULL') THEN 'malformed "event_params": expected an array of {key, value}, found ' || lower(json_type(r.event_params))
        WHEN r.event_params IS NOT NULL AND json_type(r.event_params) = 'ARRAY' AND params IS NULL AND json_array_length(r.event_params) > 0 THEN 'malformed "event_params": entries must be {key, value: {string_value | int_value | float_value | double_value}}'
    END AS reject_reason
FROM q
