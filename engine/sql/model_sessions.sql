-- Session rows from the per-session aggregates in sess_base (semantics.md §2.1, §2.6): start/end = min/max time,
-- duration = whole seconds between them, entry/exit URL = first/last non-null URL by time
-- (ties by ingestion order), bounce = PostHog's default formula (NULL without a pageview),
-- the person = the person of the latest event with a user id, else of the first event; referrer, UTM, browser, OS and
-- device type from the session's first event (only those events' properties are read again).
INSERT INTO sessions
WITH s0 AS (
    SELECT * FROM sess_base
), x AS (
    -- the first events' properties: referrer, UTM, browser, OS and device type
    SELECT event_seq, json_extract_string(properties, [
            '$.utm_source', '$.utm_medium', '$.utm_campaign',
            '$."$browser"', '$."$context".os_name', '$.br_name',
            '$."$os"', '$."$context".os.name', '$.os_name',
            '$."$device_type"', '$."$context".device_type', '$.dvce_type',
            '$."$referrer"', '$.referrer', '$.page_referrer', '$.refr_urlhost', '$."$context".page.referrer']) AS p
    FROM events
    WHERE event_seq IN (SELECT first_seq FROM s0)
), u AS (
    -- the entry and exit events' page URLs (the import's column, else the properties)
    SELECT event_seq, sb_page(hot, page_url, properties) AS url FROM events
    WHERE event_seq IN (SELECT entry_seq FROM s0 UNION ALL SELECT exit_seq FROM s0)
), s AS (
    SELECT s0.* EXCLUDE (person_key), pm.person_id, en.url AS entry_url, ex.url AS exit_url
    FROM s0
    LEFT JOIN person_map pm ON pm.distinct_id = s0.person_key
    LEFT JOIN u en ON en.event_seq = s0.entry_seq
    LEFT JOIN u ex ON ex.event_seq = s0.exit_seq
), f AS (
    SELECT s.session_id, x.p FROM s JOIN x ON x.event_seq = s.first_seq
)
SELECT s.session_id, s.person_id, s.device_id, s.source, s.started_at, s.ended_at,
    date_diff('second', s.started_at, s.ended_at) AS duration_s,
    s.events, s.pageviews, s.autocaptures, s.entry_url, s.exit_url,
    CASE WHEN s.pageviews = 0 THEN NULL
         ELSE NOT (s.pageviews > 1 OR s.autocaptures > 0 OR date_diff('second', s.started_at, s.ended_at) >= 10) END AS is_bounce,
    coalesce(f.p[13], f.p[14], f.p[15], f.p[16], f.p[17]) AS referrer,
    f.p[1], f.p[2], f.p[3],
    coalesce(f.p[4], f.p[5], f.p[6]),
    coalesce(f.p[7], f.p[8], f.p[9]),
    coalesce(f.p[10], f.p[11], f.p[12])
FROM s LEFT JOIN f USING (session_id)
