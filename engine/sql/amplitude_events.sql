-- Amplitude Export API / S3 events (formats.md §2, §9.2). Times are naive UTC text.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"uuid":"VARCHAR","$insert_id":"VARCHAR","event_type":"JSON","event_time":"VARCHAR","client_event_time":"VARCHAR","server_received_time":"VARCHAR","user_id":"VARCHAR","device_id":"VARCHAR","amplitude_id":"VARCHAR","session_id":"VARCHAR","event_properties":"JSON","user_properties":"JSON","groups":"MAP(VARCHAR, JSON)","platform":"VARCHAR","os_name":"VARCHAR","os_version":"VARCHAR","device_type":"VARCHAR","device_family":"VARCHAR","country":"VARCHAR","region":"VARCHAR","city":"VARCHAR","language":"VARCHAR","library":"VARCHAR","ip_address":"VARCHAR","version_name":"VARCHAR"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        CASE WHEN json_type(r.event_type) = 'VARCHAR' THEN nullif(trim(r.event_type ->> '$'), '') END AS ev,
        coalesce(sb_ts(r.event_time), sb_ts(r.client_event_time), sb_ts(r.server_received_time)) AS ts,
        sb_idv(r.uuid) AS uid,
        sb_idv(r.user_id) AS usr,
        sb_idv(r.device_id) AS dev,
        sb_idv(r."$insert_id") AS ins
    FROM t
)
SELECT
    line,
    -- CASE, not coalesce: hashes are computed only for rows that need them
    CASE WHEN uid IS NOT NULL THEN uid
         WHEN ins IS NOT NULL AND dev IS NOT NULL THEN sb_uuid_of('amplitude:' || dev || '|' || ins)
         ELSE sb_uuid_of(raw) END AS event_uuid,
    -- $insert_id per device (Amplitude's own rule), else the event uuid
    CASE WHEN ins IS NOT NULL AND dev IS NOT NULL THEN 'insert:' || dev || '|' || ins
         WHEN uid IS NOT NULL THEN uid
         ELSE 'md5:' || md5(raw) END AS dedupe_key,
    ev AS event_name,
    CASE
        WHEN ev = '$identify' THEN 'person_update'
        WHEN ev = '$groupidentify' THEN 'group_identify'
        WHEN ev IN ('session_start', 'session_end', '[Amplitude] Start Session', '[Amplitude] End Session') THEN 'session_marker'
        WHEN ev = '[Amplitude] Page Viewed' THEN 'page'
        ELSE 'track'
    END AS event_kind,
    ts AS ts_utc,
    sb_ts(r.server_received_time) AS received_at_utc,
    coalesce(usr, dev) AS distinct_id,
    usr AS user_id,
    dev AS anon_id,
    CASE WHEN r.session_id IS NULL OR r.session_id IN ('-1', '') THEN NULL ELSE r.session_id END AS session_id,
    sb_idv(r.amplitude_id) AS vendor_person_id,
    json_merge_patch(
        CASE WHEN json_type(r.event_properties) = 'OBJECT' THEN r.event_properties ELSE '{}'::JSON END,
        json_object('$context', json_object('platform', r.platform, 'os_name', r.os_name, 'os_version', r.os_version,
            'device_type', r.device_type, 'device_family', r.device_family, 'country', r.country, 'region', r.region,
            'city', r.city, 'language', r.language, 'library', r.library, 'ip_address', r.ip_address,
            'version_name', r.version_name))
    ) AS properties,
    CASE WHEN json_type(r.user_properties) = 'OBJECT' THEN r.user_properties END AS person_properties,
    sb_groups_map(r.groups) AS groups,
    CASE
        WHEN r IS NULL OR (r.event_type IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN usr IS NULL AND dev IS NULL THEN 'neither "user_id" nor "device_id"'
        WHEN ev IS NULL THEN 'missing or empty "event_type"'
        WHEN ts IS NULL THEN 'no parseable time (event_time, client_event_time or server_received_time)' || coalesce(': ' || coalesce(sb_ts_why(r.event_time), sb_ts_why(r.client_event_time), sb_ts_why(r.server_received_time)), '')
    END AS reject_reason
FROM p
