-- Helpers defined on every connection (temporary, so any DuckDB client can still open the
-- workspace without them).

-- Whether a date-time text ends with an impossible numeric UTC offset (+HH:MM, +HHMM or +HH):
-- beyond ±18:00 (chrono's and java.time's bound; real zones lie within -12:00..+14:00), or 60
-- minutes and more. Digits compare as text, and "Z" and "+00:00" are settled first: this runs
-- on every time parsed.
CREATE OR REPLACE TEMP MACRO sb_offset_bad(s) AS CASE
    WHEN ends_with(s, 'Z') OR ends_with(s, '+00:00') THEN false
    WHEN substr(s, -6, 1) IN ('+', '-') AND substr(s, -3, 1) = ':' THEN substr(s, -5, 5) > '18:00' OR substr(s, -2, 1) >= '6'
    WHEN substr(s, -5, 1) IN ('+', '-') THEN substr(s, -4, 4) > '1800' OR substr(s, -2, 1) >= '6'
    WHEN substr(s, -3, 1) IN ('+', '-') THEN substr(s, -2, 2) > '18'
    ELSE false
END;

-- Why sb_ts refused a date-time text that has the right shape, when the reason is its offset.
CREATE OR REPLACE TEMP MACRO sb_ts_why(s) AS CASE
    WHEN sb_offset_bad(s) THEN 'the UTC offset ' || regexp_extract(s, '[+-][0-9:]+$') || ' is impossible (offsets lie within -18:00..+18:00)'
END;

-- Parse an ISO-8601 / RFC 3339 date-time with DuckDB's ISO-8601 parser, after checking the
-- shape (YYYY-MM-DD, then T or a space, then a time), so that dates alone, epoch numbers and
-- words are refused rather than guessed. An offset or Z is honoured (an impossible offset,
-- which DuckDB would apply, is refused); a string without one is UTC (every connection runs
-- with TimeZone = UTC).
CREATE OR REPLACE TEMP MACRO sb_ts(s) AS CASE
    WHEN length(s) >= 19 AND substr(s, 5, 1) = '-' AND substr(s, 8, 1) = '-' AND substr(s, 11, 1) IN ('T', ' ') AND substr(s, 14, 1) = ':'
        AND NOT sb_offset_bad(s)
        THEN TRY_CAST(s AS TIMESTAMPTZ)
END;

-- Microseconds since the epoch as a time; NULL when not a finite number within the years
-- 1..9999, so that an out-of-range number in a time field (infinity, 1e22, the largest
-- 64-bit integer) makes its row quarantined instead of failing the whole file.
CREATE OR REPLACE TEMP MACRO sb_us(us) AS CASE
    WHEN us BETWEEN -62135596800000000 AND 253402300799999999 THEN make_timestamptz(TRY_CAST(us AS BIGINT))
END;

-- Epoch numbers with a declared unit.
CREATE OR REPLACE TEMP MACRO sb_epoch(v, unit) AS CASE unit
    WHEN 's' THEN sb_us(round(TRY_CAST(v AS DOUBLE) * 1000000))
    WHEN 'ms' THEN sb_us(TRY_CAST(v AS HUGEINT) * 1000)
    WHEN 'us' THEN sb_us(TRY_CAST(v AS HUGEINT))
END;

-- Text of a JSON scalar: strings unquoted, numbers and booleans as written, NULL for
-- null/absent, objects/arrays as NULL (callers check types separately).
CREATE OR REPLACE TEMP MACRO sb_str(j) AS CASE
    WHEN j IS NULL THEN NULL
    WHEN json_type(j) IN ('OBJECT', 'ARRAY', 'NULL') THEN NULL
    ELSE j ->> '$'
END;

-- An id: non-empty text after trimming, else NULL.
CREATE OR REPLACE TEMP MACRO sb_id(j) AS nullif(trim(sb_str(j)), '');

-- An id read as VARCHAR by json_transform: objects/arrays (their JSON text) and blanks are NULL.
CREATE OR REPLACE TEMP MACRO sb_idv(s) AS CASE WHEN left(s, 1) IN ('{', '[') THEN NULL ELSE nullif(trim(s), '') END;

-- Why a staged record is not a JSON object (NULL when it is one). Vendor SQL parses records
-- with try(json_transform(...)) and calls this only for the rare rows that fail.
CREATE OR REPLACE TEMP MACRO sb_json_reason(raw) AS CASE
    WHEN NOT json_valid(raw) THEN 'invalid JSON'
    WHEN json_type(raw) <> 'OBJECT' THEN 'expected a JSON object, found ' || lower(json_type(raw))
END;

-- A value quoted for a reason message, cut to 80 characters.
CREATE OR REPLACE TEMP MACRO sb_show(s) AS CASE WHEN length(s) > 80 THEN left(s, 77) || '...' ELSE s END;

-- A deterministic UUID-shaped id from text (md5 based), for records without an event id.
CREATE OR REPLACE TEMP MACRO sb_uuid_of(s) AS regexp_replace(md5(s), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5');

-- MAP(VARCHAR, JSON) of {type: key or [keys]} -> JSON {type: [keys]} (keys as strings).
CREATE OR REPLACE TEMP MACRO sb_groups_map(m) AS CASE
    WHEN m IS NULL OR cardinality(m) = 0 THEN NULL
    ELSE to_json(map_from_entries(list_transform(map_entries(m), lambda e: {
        'k': e.key,
        'v': CASE WHEN json_type(e.value) = 'ARRAY'
            THEN list_filter(list_transform(CAST(e.value AS JSON[]), lambda x: sb_id(x)), lambda x: x IS NOT NULL)
            ELSE list_filter([sb_id(e.value)], lambda x: x IS NOT NULL)
        END
    })))
END;

-- Mixpanel projects created before 2023 store event times in the project time zone; the
-- workspace setting mixpanel.tz_offset_seconds (the zone's UTC offset, e.g. -28800) undoes it.
CREATE OR REPLACE TEMP MACRO sb_mixpanel_offset() AS (
    SELECT coalesce(max(TRY_CAST(value AS BIGINT)), 0) FROM workspace_settings WHERE key = 'mixpanel.tz_offset_seconds'
);

-- GA4 event_params / user_properties: the JSON array [{key, value: {string_value, int_value,
-- float_value, double_value}}] parsed to a list of structs (NULL when it is not that shape).
CREATE OR REPLACE TEMP MACRO sb_ga4_list(a) AS CASE
    WHEN a IS NULL OR json_type(a) <> 'ARRAY' OR json_array_length(a) = 0 THEN NULL
    ELSE try(json_transform(a, '[{"key":"VARCHAR","value":{"string_value":"VARCHAR","int_value":"VARCHAR","float_value":"DOUBLE","double_value":"DOUBLE"}}]'))
END;

-- That list -> {key: the one typed value}, int_value as a number (BigQuery extracts write
-- INT64 as strings). NULL when an entry has no key; a repeated key keeps its first value.
CREATE OR REPLACE TEMP MACRO sb_ga4_kv(l) AS CASE
    WHEN l IS NULL OR len(l) = 0 OR NOT list_bool_and(list_transform(l, lambda e: e.key IS NOT NULL)) THEN NULL
    ELSE to_json(map_from_entries(list_transform(
        list_filter(l, lambda e, i: list_position(list_transform(l, lambda x: x.key), e.key) = i),
        lambda e: {'k': e.key, 'v': coalesce(to_json(e.value.string_value), to_json(TRY_CAST(e.value.int_value AS BIGINT)),
                                             to_json(e.value.double_value), to_json(e.value.float_value))})))
END;

-- A flat JSON object without its empty-string and null members (CSV-born records).
CREATE OR REPLACE TEMP MACRO sb_nonempty_object(raw) AS to_json(map_from_entries(list_filter(
    map_entries(json_transform(raw, '"MAP(VARCHAR, VARCHAR)"')),
    lambda e: e.value IS NOT NULL AND e.value <> '')));

-- A time given either as date-time text or as an epoch number whose unit follows from its
-- size (seconds < 1e11 <= milliseconds < 1e14 <= microseconds), as warehouse and data-lake
-- exports write them.
CREATE OR REPLACE TEMP MACRO sb_any_ts(s) AS coalesce(
    sb_ts(s),
    CASE
        WHEN TRY_CAST(s AS DOUBLE) IS NULL THEN NULL
        WHEN abs(TRY_CAST(s AS DOUBLE)) >= 1e14 THEN sb_us(TRY_CAST(s AS HUGEINT))
        WHEN abs(TRY_CAST(s AS DOUBLE)) >= 1e11 THEN sb_us(TRY_CAST(s AS DOUBLE) * 1000)
        ELSE sb_us(TRY_CAST(s AS DOUBLE) * 1000000)
    END
);

-- Where vendors put an event's page URL (PostHog/Mixpanel $current_url, Segment page url,
-- Amplitude's page URL property, GA4 page_location, Snowplow page_url).
CREATE OR REPLACE TEMP MACRO sb_url_paths() AS [
    '$."$current_url"', '$.url', '$."[Amplitude] Page URL"', '$.page_location', '$.page_url',
    '$."$context".page.url'];

-- The page URL of an event: the first of those present, with one parse of the properties.
CREATE OR REPLACE TEMP MACRO sb_url(p) AS list_filter(json_extract_string(p, sb_url_paths()), lambda x: x IS NOT NULL)[1];

-- The hot columns of an event (schema version 9): the column when the import wrote it
-- (`hot`), else read from the properties (rows written before, or staged by a vendor's SQL).
-- The page URL by the vendors' keys; `$browser`, `$os` and `$device_type` as text.
-- (Parameters named apart from the columns they are given.)
CREATE OR REPLACE TEMP MACRO sb_page(h, v, p) AS CASE WHEN h THEN v ELSE sb_url(p) END;
CREATE OR REPLACE TEMP MACRO sb_browser(h, v, p) AS CASE WHEN h THEN v ELSE p ->> '$."$browser"' END;
CREATE OR REPLACE TEMP MACRO sb_os(h, v, p) AS CASE WHEN h THEN v ELSE p ->> '$."$os"' END;
CREATE OR REPLACE TEMP MACRO sb_device_type(h, v, p) AS CASE WHEN h THEN v ELSE p ->> '$."$device_type"' END;

-- The referrer of an event, by the same vendor keys.
CREATE OR REPLACE TEMP MACRO sb_referrer(p) AS list_filter(json_extract_string(p, [
    '$."$referrer"', '$.referrer', '$.page_referrer', '$.refr_urlhost', '$."$context".page.referrer']),
    lambda x: x IS NOT NULL)[1];

-- Whether an id is a placeholder that must not identify anyone (PostHog's illegal distinct
-- ids, semantics.md §1.1; the same list as the engine's identity module), after trimming and
-- one pair of surrounding quotes. Evaluated per event by the rebuild, so without a subquery,
-- and anything longer than the longest quoted placeholder (19 characters) is settled first.
CREATE OR REPLACE TEMP MACRO sb_unquote(t) AS CASE
    WHEN length(t) >= 2 AND ((starts_with(t, '"') AND ends_with(t, '"')) OR (starts_with(t, '''') AND ends_with(t, '''')))
        THEN substr(t, 2, length(t) - 2)
    ELSE t
END;
CREATE OR REPLACE TEMP MACRO sb_placeholder_word(u) AS
    lower(u) IN ('anonymous', 'guest', 'distinctid', 'distinct_id', 'id', 'not_authenticated', 'email', 'undefined', 'true', 'false')
    OR u IN ('[object Object]', 'NaN', 'None', 'none', 'null', '0', 'undefined');
CREATE OR REPLACE TEMP MACRO sb_placeholder_id(s) AS s IS NULL OR CASE
    WHEN length(s) <= 19 OR length(trim(s)) <= 19 THEN trim(s) = '' OR sb_placeholder_word(sb_unquote(trim(s)))
    ELSE false
END;
