-- The second half of an incremental pass's scope (see model_scope.sql), after the sessions
-- were recomputed: the touched persons' ids again (the sessions added persons), their rows
-- removed from the per-person tables, and the accounts any of their events (or a new group
-- snapshot) belongs to. {PERSON_KEY}: the identity mode's person key; $1: the newest import
-- the model had seen.
CREATE OR REPLACE TEMP TABLE upd_touched AS SELECT DISTINCT person_id FROM upd_persons WHERE person_id IS NOT NULL;
DROP TABLE upd_persons;
ALTER TABLE upd_touched RENAME TO upd_persons;

CREATE OR REPLACE TEMP TABLE upd_ids AS
SELECT distinct_id FROM person_map WHERE person_id IN (SELECT person_id FROM upd_persons)
UNION SELECT distinct_id FROM upd_old_pm WHERE person_id IN (SELECT person_id FROM upd_persons)
UNION SELECT id FROM upd_seed WHERE id IS NOT NULL;

DELETE FROM persons WHERE person_id IN (SELECT person_id FROM upd_persons);
DELETE FROM profiles WHERE person_id IN (SELECT person_id FROM upd_persons);
DELETE FROM person_events WHERE person_id IN (SELECT person_id FROM upd_persons);

INSERT INTO event_groups
SELECT event_seq, kv.key, unnest(kv.value) FROM (
    SELECT event_seq, unnest(map_entries(json_transform(groups, '"MAP(VARCHAR, VARCHAR[])"'))) AS kv
    FROM events WHERE groups IS NOT NULL AND import_id > $1);

CREATE OR REPLACE TEMP TABLE upd_accounts AS
SELECT DISTINCT eg.group_type, eg.group_key FROM event_groups eg JOIN events e ON e.event_seq = eg.event_seq
WHERE eg.group_key IS NOT NULL AND {PERSON_KEY} IN (SELECT distinct_id FROM upd_ids)
UNION SELECT group_type, group_key FROM group_snapshots WHERE import_id > $1;

DELETE FROM accounts USING upd_accounts u WHERE accounts.group_type = u.group_type AND accounts.group_key = u.group_key;
DELETE FROM account_activity USING upd_accounts u WHERE account_activity.group_type = u.group_type AND account_activity.group_key = u.group_key;
