-- A collection's slices: one execution per DAY, WEEK (what every collection so far did) or
-- calendar MONTH. Slices live in collection_weeks whatever their length.
ALTER TABLE collections ADD COLUMN granularity text NOT NULL DEFAULT 'WEEK'
    CHECK (granularity IN ('DAY', 'WEEK', 'MONTH'));
