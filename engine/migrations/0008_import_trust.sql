-- Stitchbook workspace schema, version 8: quarantined records carry the md5 of their whole
-- text, so a record an earlier import already quarantined is counted as a duplicate instead
-- of being quarantined again (re-importing a file adds nothing). Rows whose stored text is
-- whole get their key now; older truncated rows keep none and never match.
-- The import log also gains two statuses, written by the engine: 'running' (committed before
-- a file's own transaction starts) and 'interrupted' (a 'running' row found when the
-- workspace is next opened: the process stopped before the file's transaction committed).

ALTER TABLE quarantine ADD COLUMN raw_md5 VARCHAR;
UPDATE quarantine SET raw_md5 = md5(raw) WHERE raw IS NOT NULL AND strlen(raw) = raw_length;
