-- PostHog batch export, persons model (formats.md §1.3): one row per (distinct_id, person),
-- the authoritative distinct_id -> person mapping at export time, with person properties.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"distinct_id":"JSON","person_id":"JSON","properties":"JSON","person_version":"JSON","person_distinct_id_version":"JSON","created_at":"JSON","_inserted_at":"JSON","is_deleted":"JSON"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        CASE json_type(r.properties)
            WHEN 'OBJECT' THEN r.properties
            WHEN 'VARCHAR' THEN TRY_CAST(r.properties ->> '$' AS JSON)
        END AS props,
        coalesce(
            CASE WHEN json_type(r.created_at) = 'VARCHAR' THEN sb_ts(r.created_at ->> '$') END,
            CASE WHEN json_type(r._inserted_at) = 'VARCHAR' THEN sb_ts(r._inserted_at ->> '$') END
        ) AS as_of
    FROM t
)
SELECT
    line,
    sb_id(r.person_id) AS person_key,
    sb_id(r.distinct_id) AS distinct_id,
    props AS properties,
    as_of,
    coalesce(sb_str(r.is_deleted) IN ('true', '1'), false) AS is_deleted,
    concat_ws('|', sb_id(r.person_id), sb_id(r.distinct_id), sb_str(r.person_version), sb_str(r.person_distinct_id_version), sb_str(r.is_deleted)) AS dedupe_key,
    CASE
        WHEN r IS NULL OR (r.person_id IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN sb_id(r.person_id) IS NULL THEN 'missing field "person_id"'
        WHEN sb_id(r.distinct_id) IS NULL THEN 'missing field "distinct_id"'
        WHEN r.properties IS NOT NULL AND json_type(r.properties) NOT IN ('OBJECT', 'VARCHAR', 'NULL') THEN 'field "properties" must be an object, found ' || lower(json_type(r.properties))
        WHEN json_type(r.properties) = 'VARCHAR' AND (props IS NULL OR json_type(props) <> 'OBJECT') THEN 'field "properties" is text that is not a JSON object'
    END AS reject_reason
FROM p
