-- The insight facts after an incremental pass (model_facts.sql says what each table holds).
-- person_index is dense in person_id order, so persons who came or went shift the numbers
-- after them: every untouched person's rows are kept with their pid renumbered, and the
-- touched persons' rows are computed again from their events. Expects temp tables
-- upd_persons and upd_ids (the touched persons and all their ids) and model_params.
-- {PERSON_KEY}, {DAY} and {SCOPE_EVENTS} as in model_facts.sql and model_profiles.sql.
-- The kept rows stay in their order (sorted); the recomputed ones follow, sorted among
-- themselves, so the zone maps still skip most row groups until the next full rebuild.
CREATE OR REPLACE TEMP TABLE upd_old_index AS SELECT pid, person_id FROM person_index;

CREATE OR REPLACE TABLE person_index AS
SELECT CAST(row_number() OVER (ORDER BY person_id) AS INTEGER) AS pid, person_id
FROM persons ORDER BY pid;

-- Old pid → new pid for every untouched person (NULL for the touched and the gone), as a list
-- indexed by the old pid (old pids are 1..n).
SET VARIABLE sb_upd_remap = (
    SELECT coalesce(list(CASE WHEN t.person_id IS NULL THEN n.pid END ORDER BY o.pid), []::INTEGER[])
    FROM upd_old_index o
    LEFT JOIN person_index n ON n.person_id = o.person_id
    LEFT JOIN (SELECT DISTINCT person_id FROM upd_persons) t ON t.person_id = o.person_id);

CREATE OR REPLACE TEMP TABLE upd_pids AS
SELECT pid FROM person_index WHERE person_id IN (SELECT person_id FROM upd_persons);

CREATE OR REPLACE TABLE event_facts_next AS
SELECT event_name, ts_us, event_seq, getvariable('sb_upd_remap')[pid] AS pid, day, browser, os, device_type
FROM event_facts WHERE getvariable('sb_upd_remap')[pid] IS NOT NULL;
INSERT INTO event_facts_next
SELECT e.event_name, epoch_us(e.ts_utc) AS ts_us, e.event_seq, pi.pid, {DAY} AS day,
    sb_browser(e.hot, e.browser, e.properties) AS browser,
    sb_os(e.hot, e.os, e.properties) AS os,
    sb_device_type(e.hot, e.device_type, e.properties) AS device_type
FROM events e
JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
JOIN person_index pi ON pi.person_id = pm.person_id
WHERE {SCOPE_EVENTS}
ORDER BY e.event_name, ts_us, e.event_seq;

CREATE OR REPLACE TABLE person_days_next AS
SELECT event_name, day, getvariable('sb_upd_remap')[pid] AS pid, browser, os, device_type, events
FROM person_days WHERE getvariable('sb_upd_remap')[pid] IS NOT NULL;
INSERT INTO person_days_next
SELECT event_name, day, pid, browser, os, device_type, count(*) AS events
FROM event_facts_next WHERE pid IN (SELECT pid FROM upd_pids)
GROUP BY ALL ORDER BY event_name, day, pid;

CREATE OR REPLACE TABLE active_days_next AS
SELECT day, getvariable('sb_upd_remap')[pid] AS pid
FROM active_days WHERE getvariable('sb_upd_remap')[pid] IS NOT NULL;
INSERT INTO active_days_next
SELECT DISTINCT day, pid FROM person_days_next WHERE pid IN (SELECT pid FROM upd_pids) ORDER BY day, pid;

DROP TABLE event_facts;
ALTER TABLE event_facts_next RENAME TO event_facts;
DROP TABLE person_days;
ALTER TABLE person_days_next RENAME TO person_days;
DROP TABLE active_days;
ALTER TABLE active_days_next RENAME TO active_days;
RESET VARIABLE sb_upd_remap;
DROP TABLE upd_old_index;
DROP TABLE upd_pids;
