-- Session rows from event_sessions (semantics.md §2.1, §2.6): start/end = min/max time,
-- duration = whole seconds between them, entry/exit URL = first/last non-null URL by time
-- (ties by ingestion order), bounce = PostHog's default formula (NULL without a pageview),
-- the person = the person of the session's latest event.
INSERT INTO sessions
WITH e AS (
    SELECT es.session_id, e.ts_utc, e.event_seq, e.event_kind, e.event_name,
        coalesce(e.anon_id, e.distinct_id) AS device,
        pm.person_id,
        e.source_vendor,
        e.session_id IS NOT NULL AS client,
        sb_url(e.properties) AS url,
        sb_referrer(e.properties) AS referrer,
        e.properties ->> '$.utm_source' AS utm_source,
        e.properties ->> '$.utm_medium' AS utm_medium,
        e.properties ->> '$.utm_campaign' AS utm_campaign,
        coalesce(e.properties ->> '$."$browser"', e.properties ->> '$."$context".os_name', e.properties ->> '$.br_name') AS browser,
        coalesce(e.properties ->> '$."$os"', e.properties ->> '$."$context".os.name', e.properties ->> '$.os_name') AS os,
        coalesce(e.properties ->> '$."$device_type"', e.properties ->> '$."$context".device_type', e.properties ->> '$.dvce_type') AS device_type
    FROM event_sessions es
    JOIN events e ON e.event_seq = es.event_seq
    LEFT JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
), s AS (
    SELECT session_id,
        arg_max(person_id, (ts_utc, event_seq)) AS person_id,
        arg_min(device, (ts_utc, event_seq)) AS device_id,
        CASE WHEN bool_or(client) THEN 'client' ELSE 'inferred' END AS source,
        min(ts_utc) AS started_at,
        max(ts_utc) AS ended_at,
        count(*) AS events,
        count(*) FILTER (WHERE event_kind = 'page') AS pageviews,
        count(*) FILTER (WHERE event_name = '$autocapture') AS autocaptures,
        arg_min(url, (ts_utc, event_seq)) FILTER (WHERE url IS NOT NULL) AS entry_url,
        arg_max(url, (ts_utc, event_seq)) FILTER (WHERE url IS NOT NULL) AS exit_url,
        arg_min(referrer, (ts_utc, event_seq)) FILTER (WHERE referrer IS NOT NULL) AS referrer,
        arg_min(utm_source, (ts_utc, event_seq)) FILTER (WHERE utm_source IS NOT NULL) AS utm_source,
        arg_min(utm_medium, (ts_utc, event_seq)) FILTER (WHERE utm_medium IS NOT NULL) AS utm_medium,
        arg_min(utm_campaign, (ts_utc, event_seq)) FILTER (WHERE utm_campaign IS NOT NULL) AS utm_campaign,
        arg_min(browser, (ts_utc, event_seq)) FILTER (WHERE browser IS NOT NULL) AS browser,
        arg_min(os, (ts_utc, event_seq)) FILTER (WHERE os IS NOT NULL) AS os,
        arg_min(device_type, (ts_utc, event_seq)) FILTER (WHERE device_type IS NOT NULL) AS device_type
    FROM e
    GROUP BY session_id
)
SELECT session_id, person_id, device_id, source, started_at, ended_at,
    date_diff('second', started_at, ended_at) AS duration_s,
    events, pageviews, autocaptures, entry_url, exit_url,
    CASE WHEN pageviews = 0 THEN NULL
         ELSE NOT (pageviews > 1 OR autocaptures > 0 OR date_diff('second', started_at, ended_at) >= 10) END AS is_bounce,
    referrer, utm_source, utm_medium, utm_campaign, browser, os, device_type
FROM s
