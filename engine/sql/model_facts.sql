-- Insight facts: what funnels, retention, trends and lifecycle read instead of joining every
-- event to its person on a string id and parsing JSON properties on every query.
-- Expects the persons of this rebuild and temp table model_params(time_zone, week_start).
-- {PERSON_KEY}: the identity mode's person key; {DAY}: the event's local date in the
-- workspace time zone (an expression over e.ts_utc).
--
-- person_index: a dense integer per person, numbered in person_id order, so ordering by pid
-- is ordering by person_id.
CREATE OR REPLACE TABLE person_index AS
SELECT CAST(row_number() OVER (ORDER BY person_id) AS INTEGER) AS pid, person_id
FROM persons ORDER BY pid;

-- event_facts: one row per event that has a person, sorted by (event name, time) so an
-- insight over a few event names and a date range reads a few row groups (zone maps).
-- The columns named after properties hold `properties ->> '$."<key>"'` (see
-- insights::facts::FACT_PROPERTIES, which must list the same keys), read from the events'
-- hot columns where the import wrote them.
CREATE OR REPLACE TABLE event_facts AS
SELECT e.event_name, epoch_us(e.ts_utc) AS ts_us, e.event_seq, pi.pid, {DAY} AS day,
    sb_browser(e.hot, e.browser, e.properties) AS browser,
    sb_os(e.hot, e.os, e.properties) AS os,
    sb_device_type(e.hot, e.device_type, e.properties) AS device_type
FROM events e
JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
JOIN person_index pi ON pi.person_id = pm.person_id
ORDER BY e.event_name, ts_us, e.event_seq;

-- person_days: event_facts rolled up per (event name, local day, person, property
-- columns), with the number of events, for insights that only ask on which days a person
-- was active (and, for breakdowns, which values rank first by events).
CREATE OR REPLACE TABLE person_days AS
SELECT event_name, day, pid, browser, os, device_type, count(*) AS events
FROM event_facts GROUP BY ALL ORDER BY event_name, day, pid;

-- active_days: the distinct (local day, person) with any event.
CREATE OR REPLACE TABLE active_days AS
SELECT DISTINCT day, pid FROM person_days ORDER BY day, pid;
