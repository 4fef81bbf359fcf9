-- Stitchbook workspace schema, version 9: the event properties the model and the insight
-- facts read for every event, as columns written at import, so that a rebuild does not parse
-- every event's JSON again for them (issue 18).
--   page_url     the page URL by the vendors' keys (the macro sb_url)
--   browser      properties ->> '$."$browser"'
--   os           properties ->> '$."$os"'
--   device_type  properties ->> '$."$device_type"'
--   hot          true when the import wrote the four columns above; rows written before this
--                version (or by other means) have NULL, and readers fall back to the JSON, so
--                opening an old workspace rewrites nothing.
ALTER TABLE events ADD COLUMN page_url VARCHAR;
ALTER TABLE events ADD COLUMN browser VARCHAR;
ALTER TABLE events ADD COLUMN os VARCHAR;
ALTER TABLE events ADD COLUMN device_type VARCHAR;
ALTER TABLE events ADD COLUMN hot BOOLEAN;
