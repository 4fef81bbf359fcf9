-- Amplitude merged-ids file (formats.md §2.1): each line says merged_amplitude_id was merged
-- into amplitude_id. Ids are 64-bit integers, read as text so they never pass through a float.
-- merge_time's unit is unconfirmed (probably epoch ms); sb_any_ts decides by magnitude.
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"scope":"VARCHAR","merge_time":"VARCHAR","merge_server_time":"VARCHAR","amplitude_id":"VARCHAR","merged_amplitude_id":"VARCHAR"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r, sb_idv(r.merged_amplitude_id) AS merged, sb_idv(r.amplitude_id) AS kept
    FROM t
)
SELECT
    line,
    merged AS from_id,
    kept AS to_id,
    'merged_vendor_id' AS link_kind,
    coalesce(sb_any_ts(r.merge_time), sb_any_ts(r.merge_server_time)) AS ts_utc,
    'merged_vendor_id:' || merged || '>' || kept AS dedupe_key,
    CASE
        WHEN r IS NULL OR (r.amplitude_id IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN merged IS NULL THEN 'missing "merged_amplitude_id"'
        WHEN kept IS NULL THEN 'missing "amplitude_id"'
        WHEN merged = kept THEN 'an id merged into itself (' || sb_show(kept) || ')'
    END AS reject_reason
FROM p
