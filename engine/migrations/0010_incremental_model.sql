-- Stitchbook workspace schema, version 10: the incremental model (issue 18). model_state
-- records the newest import the derived tables have seen, so that importing one more file
-- updates only what that file touches (model::refresh); NULL (a model built before this
-- version) means the next model pass is a full rebuild.
ALTER TABLE model_state ADD COLUMN max_import_id BIGINT;
