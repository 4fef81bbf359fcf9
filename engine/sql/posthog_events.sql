-- PostHog batch export, events model (formats.md §1.3, §9.2) -> canonical staging rows.
-- Input: stg_json(line, raw, raw_len, reason); records are not yet known to be JSON. Output columns are those of stg_events.
-- Each record is parsed once by json_transform; fields whose JSON type matters for a reject
-- reason stay JSON, ids are read as text.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"uuid":"VARCHAR","event":"JSON","distinct_id":"VARCHAR","timestamp":"JSON","created_at":"VARCHAR","properties":"JSON","person_properties":"JSON","person_id":"VARCHAR"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        sb_idv(r.uuid) AS uuid,
        sb_idv(r.distinct_id) AS did,
        json_type(r.properties) AS props_type,
        -- properties may arrive as an object or as JSON text (Parquet, CSV, some importers)
        CASE json_type(r.properties)
            WHEN 'OBJECT' THEN r.properties
            WHEN 'VARCHAR' THEN TRY_CAST(r.properties ->> '$' AS JSON)
        END AS props,
        CASE json_type(r.person_properties)
            WHEN 'OBJECT' THEN r.person_properties
            WHEN 'VARCHAR' THEN TRY_CAST(r.person_properties ->> '$' AS JSON)
        END AS pprops,
        CASE WHEN json_type(r.timestamp) = 'VARCHAR' THEN sb_ts(r.timestamp ->> '$') END AS ts,
        CASE WHEN json_type(r.event) = 'VARCHAR' THEN r.event ->> '$' END AS ev
    FROM t
), q AS (
    SELECT *,
        json_transform(props, '{"$session_id":"VARCHAR","$device_id":"VARCHAR","$user_id":"VARCHAR","$anon_distinct_id":"VARCHAR","alias":"VARCHAR","$is_identified":"VARCHAR","$groups":"MAP(VARCHAR, JSON)","$group_type":"VARCHAR","$group_key":"VARCHAR"}') AS pr
    FROM p
)
SELECT
    line,
    -- CASE, not coalesce: the md5 of the record is computed only when there is no uuid
    CASE WHEN uuid IS NULL THEN sb_uuid_of(raw) ELSE uuid END AS event_uuid,
    CASE WHEN uuid IS NULL THEN 'md5:' || md5(raw) ELSE uuid END AS dedupe_key,
    ev AS event_name,
    CASE ev
        WHEN '$identify' THEN 'identify'
        WHEN '$create_alias' THEN 'alias'
        WHEN '$merge_dangerously' THEN 'merge'
        WHEN '$groupidentify' THEN 'group_identify'
        WHEN '$set' THEN 'person_update'
        WHEN '$pageview' THEN 'page'
        WHEN '$screen' THEN 'screen'
        ELSE 'track'
    END AS event_kind,
    ts AS ts_utc,
    sb_ts(r.created_at) AS received_at_utc,
    did AS distinct_id,
    coalesce(
        sb_idv(pr."$user_id"),
        CASE WHEN pr."$is_identified" = 'true' OR ev = '$identify' THEN did END
    ) AS user_id,
    coalesce(
        sb_idv(pr."$device_id"),
        CASE WHEN ev = '$identify' THEN sb_idv(pr."$anon_distinct_id") END
    ) AS anon_id,
    sb_idv(pr."$session_id") AS session_id,
    sb_idv(r.person_id) AS vendor_person_id,
    coalesce(props, '{}'::JSON) AS properties,
    pprops AS person_properties,
    CASE
        WHEN ev = '$groupidentify' AND sb_idv(pr."$group_type") IS NOT NULL AND sb_idv(pr."$group_key") IS NOT NULL
            THEN json_merge_patch(
                coalesce(sb_groups_map(pr."$groups"), '{}'::JSON),
                json_object(sb_idv(pr."$group_type"), [sb_idv(pr."$group_key")]))
        ELSE sb_groups_map(pr."$groups")
    END AS groups,
    CASE
        WHEN r IS NULL OR (r.event IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN r.event IS NULL OR json_type(r.event) = 'NULL' THEN 'missing field "event"'
        WHEN ev IS NULL THEN 'field "event" must be a string, found ' || lower(json_type(r.event))
        WHEN trim(ev) = '' THEN 'field "event" is empty'
        WHEN r.timestamp IS NULL OR json_type(r.timestamp) = 'NULL' THEN 'missing field "timestamp"'
        WHEN json_type(r.timestamp) <> 'VARCHAR' THEN 'field "timestamp" must be an ISO-8601 string, found ' || lower(json_type(r.timestamp)) || ' ' || sb_show(r.timestamp::VARCHAR)
        WHEN ts IS NULL THEN 'unparseable timestamp "' || sb_show(r.timestamp ->> '$') || '"' || coalesce(': ' || sb_ts_why(r.timestamp ->> '$'), '')
        WHEN left(r.distinct_id, 1) IN ('{', '[') THEN 'field "distinct_id" must be a string, found ' || CASE WHEN left(r.distinct_id, 1) = '{' THEN 'object' ELSE 'array' END
        -- the person id: an event without one is never loaded with an empty id
        WHEN r.distinct_id IS NULL THEN 'missing field "distinct_id"'
        WHEN did IS NULL THEN 'field "distinct_id" is empty'
        WHEN props_type IS NOT NULL AND props_type NOT IN ('OBJECT', 'VARCHAR', 'NULL') THEN 'field "properties" must be an object, found ' || lower(props_type)
        WHEN props_type = 'VARCHAR' AND (props IS NULL OR json_type(props) <> 'OBJECT') THEN 'field "properties" is text that is not a JSON object'
    END AS reject_reason
FROM q
