-- The W3C trace context of the call that created the collection: each week's dispatch is a
-- trace of its own that links back to it. '{}' (collections created before) links nowhere.
ALTER TABLE collections ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}';
