-- What an incremental model pass recomputes (model::refresh), after identity has been
-- replayed and the shared devices recomputed in full. $1: the newest import the model had
-- seen (bound to every statement that names it, so the new events' row groups are found by
-- their zone maps). Expects temp tables upd_old_pm / upd_old_log / upd_old_shared (the
-- person map, merge log and shared devices before this pass), model_identified and
-- model_props (this pass's identity results). {PERSON_KEY}: the identity mode's person key.
--
-- upd_seed: every id whose person may differ from what the model holds: the ids of the new
-- events, the ids of every link whose outcome is new or changed, every id mapped to another
-- person (or newly mapped, or no longer mapped), every device whose shared-device row changed.
CREATE OR REPLACE TEMP TABLE upd_seed AS
SELECT unnest([distinct_id, anon_id, user_id]) AS id FROM events WHERE import_id > $1
UNION SELECT unnest([from_id, into_id]) FROM (
    SELECT event_uuid, link_kind, from_id, into_id, outcome, reason FROM merge_log
    EXCEPT SELECT event_uuid, link_kind, from_id, into_id, outcome, reason FROM upd_old_log)
UNION SELECT unnest([from_id, into_id]) FROM (
    SELECT event_uuid, link_kind, from_id, into_id, outcome, reason FROM upd_old_log
    EXCEPT SELECT event_uuid, link_kind, from_id, into_id, outcome, reason FROM merge_log)
UNION SELECT distinct_id FROM (SELECT distinct_id, person_id FROM person_map EXCEPT SELECT distinct_id, person_id FROM upd_old_pm)
UNION SELECT distinct_id FROM (SELECT distinct_id, person_id FROM upd_old_pm EXCEPT SELECT distinct_id, person_id FROM person_map)
UNION SELECT device_id FROM (SELECT * FROM shared_devices EXCEPT SELECT * FROM upd_old_shared)
UNION SELECT device_id FROM (SELECT * FROM upd_old_shared EXCEPT SELECT * FROM shared_devices);

-- upd_persons: the persons of those ids, before and after, and every person whose identified
-- flag or properties the replay changed. (The last is a safeguard: such a change should
-- always come with a new event or a changed link of that person, which the seed holds; no
-- test case was found where it alone matters.)
CREATE OR REPLACE TEMP TABLE upd_persons AS
SELECT person_id FROM person_map WHERE distinct_id IN (SELECT id FROM upd_seed)
UNION SELECT person_id FROM upd_old_pm WHERE distinct_id IN (SELECT id FROM upd_seed)
UNION SELECT p.person_id FROM persons p
    LEFT JOIN model_identified mi USING (person_id)
    LEFT JOIN model_props mp USING (person_id)
    WHERE coalesce(mi.is_identified, false) IS DISTINCT FROM p.is_identified
       OR CAST(mp.properties AS VARCHAR) IS DISTINCT FROM CAST(p.properties AS VARCHAR);

-- upd_ids: every id of those persons, before and after (so every event of a touched person).
CREATE OR REPLACE TEMP TABLE upd_ids AS
SELECT distinct_id FROM person_map WHERE person_id IN (SELECT person_id FROM upd_persons)
UNION SELECT distinct_id FROM upd_old_pm WHERE person_id IN (SELECT person_id FROM upd_persons)
UNION SELECT id FROM upd_seed WHERE id IS NOT NULL;

-- Sessions to recompute: the inferred sessions of every device with a new event or an event
-- of a touched person, and every client session with an event on such a device or a new event.
CREATE OR REPLACE TEMP TABLE upd_devices AS
SELECT DISTINCT coalesce(e.anon_id, e.distinct_id) AS device FROM events e
WHERE coalesce(e.anon_id, e.distinct_id) IS NOT NULL
  AND (e.import_id > $1 OR {PERSON_KEY} IN (SELECT distinct_id FROM upd_ids));

CREATE OR REPLACE TEMP TABLE upd_client AS
SELECT DISTINCT {CLIENT_KEY} AS k FROM events e
WHERE e.session_id IS NOT NULL
  AND (e.import_id > $1 OR coalesce(e.anon_id, e.distinct_id) IN (SELECT device FROM upd_devices));

-- upd_events: the events whose session is recomputed (every event of those sessions).
CREATE OR REPLACE TEMP TABLE upd_events AS
SELECT e.event_seq, {PERSON_KEY} AS k FROM events e
WHERE (e.session_id IS NULL AND coalesce(e.anon_id, e.distinct_id) IN (SELECT device FROM upd_devices))
   OR (e.session_id IS NOT NULL AND {CLIENT_KEY} IN (SELECT k FROM upd_client));

-- Their sessions as the model holds them go; so do their persons' rows (a session's person and
-- every event's session show on profiles and timelines).
CREATE OR REPLACE TEMP TABLE upd_old_sessions AS
SELECT DISTINCT session_id FROM event_sessions WHERE event_seq IN (SELECT event_seq FROM upd_events);
INSERT INTO upd_persons
SELECT person_id FROM sessions WHERE person_id IS NOT NULL AND session_id IN (SELECT session_id FROM upd_old_sessions)
UNION SELECT pm.person_id FROM upd_events u JOIN person_map pm ON pm.distinct_id = u.k
UNION SELECT pm.person_id FROM upd_events u JOIN upd_old_pm pm ON pm.distinct_id = u.k;
DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM upd_old_sessions);
DELETE FROM event_sessions WHERE event_seq IN (SELECT event_seq FROM upd_events);
