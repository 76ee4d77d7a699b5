-- SCHEDULER_RUN_RETENTION_DAYS deletes finished runs by fire time through this index, so a
-- pass costs what it deletes, not the table. Building it blocks writes to schedule_runs while
-- it runs: on a large table, build it beforehand without blocking, and this does nothing:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS schedule_runs_finished ON <schema>.schedule_runs
--       (fire_time) WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED');
CREATE INDEX IF NOT EXISTS schedule_runs_finished ON schedule_runs (fire_time)
    WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED');
