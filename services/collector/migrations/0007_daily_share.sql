-- A collection's share of its AMC instance's daily cap on executions: at most this many of its
-- weeks are submitted per UTC day (the poller enforces it; week.requested carries it). 0: no
-- share of its own (existing collections keep what they had): its weeks still come after the
-- instance's scheduled and external runs.
ALTER TABLE collections ADD COLUMN daily_share integer NOT NULL DEFAULT 0 CHECK (daily_share >= 0);
