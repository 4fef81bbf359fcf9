-- Segment / RudderStack Spec records (raw logs, SDK batches; formats.md §4, §5, §9.2).
WITH t AS (
    SELECT line, raw,
        try(json_transform(raw, '{"type":"VARCHAR","messageId":"VARCHAR","event":"JSON","name":"VARCHAR","category":"VARCHAR","userId":"VARCHAR","anonymousId":"VARCHAR","previousId":"VARCHAR","groupId":"VARCHAR","timestamp":"VARCHAR","originalTimestamp":"VARCHAR","receivedAt":"VARCHAR","sentAt":"VARCHAR","properties":"JSON","traits":"JSON","context":"JSON","channel":"VARCHAR","rudderId":"VARCHAR"}')) AS r
    FROM stg_json
    WHERE reason IS NULL
), p AS (
    SELECT line, raw, r,
        lower(r.type) AS ty,
        coalesce(sb_ts(r.timestamp), sb_ts(r.originalTimestamp), sb_ts(r.receivedAt)) AS ts,
        sb_idv(r.userId) AS uid,
        sb_idv(r.anonymousId) AS aid,
        sb_idv(r.messageId) AS mid,
        CASE WHEN json_type(r.event) = 'VARCHAR' THEN nullif(trim(r.event ->> '$'), '') END AS ev,
        CASE WHEN json_type(r.context) = 'OBJECT'
            THEN json_transform(r.context, '{"sessionId":"VARCHAR","traits":"JSON","groupId":"VARCHAR"}') END AS cx
    FROM t
)
SELECT
    line,
    CASE WHEN mid IS NULL THEN sb_uuid_of(raw) ELSE mid END AS event_uuid,
    CASE WHEN mid IS NULL THEN 'md5:' || md5(raw) ELSE mid END AS dedupe_key,
    CASE WHEN ty = 'track' THEN ev ELSE ty END AS event_name,
    ty AS event_kind,
    ts AS ts_utc,
    sb_ts(r.receivedAt) AS received_at_utc,
    coalesce(uid, aid) AS distinct_id,
    uid AS user_id,
    aid AS anon_id,
    sb_idv(cx.sessionId) AS session_id,
    NULL AS vendor_person_id,
    json_merge_patch(
        CASE WHEN json_type(r.properties) = 'OBJECT' THEN r.properties ELSE '{}'::JSON END,
        json_object('name', r.name, 'category', r.category, '$context', r.context,
            '$rudder', CASE WHEN r.channel IS NOT NULL OR r.rudderId IS NOT NULL
                THEN json_object('channel', r.channel, 'rudderId', r.rudderId) END)
    ) AS properties,
    CASE WHEN ty = 'identify' AND json_type(r.traits) = 'OBJECT' THEN r.traits
         WHEN json_type(cx.traits) = 'OBJECT' THEN cx.traits END AS person_properties,
    CASE WHEN ty = 'group' AND sb_idv(r.groupId) IS NOT NULL THEN json_object('group', [sb_idv(r.groupId)])
         WHEN sb_idv(cx.groupId) IS NOT NULL THEN json_object('group', [sb_idv(cx.groupId)]) END AS groups,
    CASE
        WHEN r IS NULL OR (r.type IS NULL AND json_type(raw) <> 'OBJECT') THEN sb_json_reason(raw)
        WHEN ty IS NULL THEN 'missing field "type"'
        WHEN ty NOT IN ('track', 'page', 'screen', 'identify', 'group', 'alias') THEN 'unknown call type "' || sb_show(r.type) || '"'
        WHEN ty = 'track' AND ev IS NULL THEN 'a track call without an "event" name'
        WHEN ts IS NULL THEN 'no parseable timestamp (timestamp, originalTimestamp or receivedAt)' || coalesce(': ' || coalesce(sb_ts_why(r.timestamp), sb_ts_why(r.originalTimestamp), sb_ts_why(r.receivedAt)), '')
        WHEN uid IS NULL AND aid IS NULL THEN 'neither "userId" nor "anonymousId"'
    END AS reject_reason
FROM p
