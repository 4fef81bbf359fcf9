-- PostHog batch export, events model (formats.md §1.3, §9.2) -> canonical staging rows.
-- Input: stg_json(line, raw, raw_len, reason). Output columns are those of stg_events.
WITH t AS (
    SELECT line, raw,
        json_transform(raw, '{"uuid":"JSON","event":"JSON","distinct_id":"JSON","timestamp":"JSON","created_at":"JSON","properties":"JSON","person_properties":"JSON","person_id":"JSON"}') AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
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
        CASE WHEN json_type(r.created_at) = 'VARCHAR' THEN sb_ts(r.created_at ->> '$') END AS created,
        CASE WHEN json_type(r.event) = 'VARCHAR' THEN r.event ->> '$' END AS ev
    FROM t
), q AS (
    SELECT *,
        json_transform(props, '{"$session_id":"JSON","$device_id":"JSON","$user_id":"JSON","$anon_distinct_id":"JSON","alias":"JSON","$is_identified":"JSON","$groups":"JSON","$group_type":"JSON","$group_key":"JSON"}') AS pr
    FROM p
)
SELECT
    line,
    -- CASE, not coalesce: the md5 of the record is computed only when there is no uuid
    CASE WHEN sb_id(r.uuid) IS NULL THEN sb_uuid_of(raw) ELSE sb_id(r.uuid) END AS event_uuid,
    CASE WHEN sb_id(r.uuid) IS NULL THEN 'md5:' || md5(raw) ELSE sb_id(r.uuid) END AS dedupe_key,
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
    created AS received_at_utc,
    sb_id(r.distinct_id) AS distinct_id,
    coalesce(
        sb_id(pr."$user_id"),
        CASE WHEN sb_str(pr."$is_identified") = 'true' OR ev = '$identify' THEN sb_id(r.distinct_id) END
    ) AS user_id,
    coalesce(
        sb_id(pr."$device_id"),
        CASE WHEN ev = '$identify' THEN sb_id(pr."$anon_distinct_id") END
    ) AS anon_id,
    sb_id(pr."$session_id") AS session_id,
    sb_id(r.person_id) AS vendor_person_id,
    coalesce(props, '{}'::JSON) AS properties,
    pprops AS person_properties,
    CASE
        WHEN ev = '$groupidentify' AND sb_id(pr."$group_type") IS NOT NULL AND sb_id(pr."$group_key") IS NOT NULL
            THEN json_merge_patch(
                coalesce(sb_groups_arrays(pr."$groups"), '{}'::JSON),
                json_object(sb_id(pr."$group_type"), [sb_id(pr."$group_key")]))
        ELSE sb_groups_arrays(pr."$groups")
    END AS groups,
    CASE
        WHEN r.event IS NULL OR json_type(r.event) = 'NULL' THEN 'missing field "event"'
        WHEN ev IS NULL THEN 'field "event" must be a string, found ' || lower(json_type(r.event))
        WHEN trim(ev) = '' THEN 'field "event" is empty'
        WHEN r.timestamp IS NULL OR json_type(r.timestamp) = 'NULL' THEN 'missing field "timestamp"'
        WHEN json_type(r.timestamp) <> 'VARCHAR' THEN 'field "timestamp" must be an ISO-8601 string, found ' || lower(json_type(r.timestamp)) || ' ' || sb_show(r.timestamp::VARCHAR)
        WHEN ts IS NULL THEN 'unparseable timestamp "' || sb_show(r.timestamp ->> '$') || '"'
        WHEN r.distinct_id IS NOT NULL AND json_type(r.distinct_id) IN ('OBJECT', 'ARRAY') THEN 'field "distinct_id" must be a string, found ' || lower(json_type(r.distinct_id))
        WHEN props_type IS NOT NULL AND props_type NOT IN ('OBJECT', 'VARCHAR', 'NULL') THEN 'field "properties" must be an object, found ' || lower(props_type)
        WHEN props_type = 'VARCHAR' AND (props IS NULL OR json_type(props) <> 'OBJECT') THEN 'field "properties" is text that is not a JSON object'
    END AS reject_reason
FROM q
