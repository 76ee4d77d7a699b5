-- Retries and re-runs: a fire time may be sent again as a higher attempt (same run row).
ALTER TABLE schedules ADD COLUMN retry_policy jsonb;

ALTER TABLE schedule_runs ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
-- When the next attempt of a RETRYING run is due.
ALTER TABLE schedule_runs ADD COLUMN retry_at timestamptz;
ALTER TABLE schedule_runs DROP CONSTRAINT schedule_runs_state_check;
ALTER TABLE schedule_runs ADD CONSTRAINT schedule_runs_state_check
    CHECK (state IN ('BUFFERED', 'EMITTED', 'SUBMITTED', 'RETRYING', 'SUCCEEDED', 'FAILED',
                     'CANCELLED', 'TIMED_OUT', 'SKIPPED'));
CREATE INDEX schedule_runs_retry ON schedule_runs (retry_at) WHERE state = 'RETRYING';

-- Every execution the poller reported for a run, by attempt. execution.* events echo the run
-- id (origin) but not the attempt: this tells a late event of an earlier attempt (ignored)
-- from one of the current attempt.
CREATE TABLE schedule_run_executions (
    execution_id uuid        PRIMARY KEY,
    run_id       uuid        NOT NULL REFERENCES schedule_runs (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    status       text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedule_run_executions_run ON schedule_run_executions (run_id);
