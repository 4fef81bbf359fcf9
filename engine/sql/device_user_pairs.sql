-- Vendors without identify calls link an anonymous/device id to a user id when both appear
-- on one event (Amplitude device_id/user_id, GA4 user_pseudo_id/user_id, warehouse rows):
-- the first occurrence of each pair in the file.
SELECT * FROM (
    SELECT DISTINCT ON (anon_id, user_id) anon_id AS from_id, user_id AS to_id, 'device_user_pair' AS link_kind, ts_utc, line, event_uuid
    FROM stg_loaded WHERE anon_id IS NOT NULL AND user_id IS NOT NULL AND anon_id <> user_id
    ORDER BY anon_id, user_id, ts_utc, line)
