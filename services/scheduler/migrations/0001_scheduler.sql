-- Schedules: what to run (the workflow-run fields), when (the spec), and the firing state.
CREATE TABLE schedules (
    id                   uuid        PRIMARY KEY,
    name                 text,
    user_id              text        NOT NULL,
    instance_id          text        NOT NULL,
    advertiser_id        text        NOT NULL,
    marketplace_id       text        NOT NULL,
    workflow_id          text        NOT NULL,
    output_format        text        NOT NULL CHECK (output_format IN ('CSV', 'PARQUET')),
    parameters           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    timezone             text        NOT NULL,
    -- The validated ScheduleSpec (cron or preset, zone, start and end dates) as JSON: the
    -- firing loop rebuilds it without another round of parsing rules in SQL.
    spec                 jsonb       NOT NULL,
    window_rule          jsonb       NOT NULL,
    catch_up_policy      text        NOT NULL DEFAULT 'latest'
                                     CHECK (catch_up_policy IN ('latest', 'all', 'none')),
    overlap_policy       text        NOT NULL DEFAULT 'skip'
                                     CHECK (overlap_policy IN ('skip', 'allow', 'buffer_one')),
    state                text        NOT NULL DEFAULT 'ACTIVE'
                                     CHECK (state IN ('ACTIVE', 'PAUSED')),
    paused_reason        text,
    paused_at            timestamptz,
    consecutive_failures integer     NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    -- NULL once the end date is past: nothing left to fire.
    next_fire_at         timestamptz,
    last_fire_at         timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
-- The claim query and the loop's "earliest next fire time" read only this index.
CREATE INDEX schedules_due ON schedules (next_fire_at)
    WHERE state = 'ACTIVE' AND next_fire_at IS NOT NULL;
CREATE INDEX schedules_user ON schedules (user_id, created_at);
CREATE INDEX schedules_instance ON schedules (instance_id, created_at);

-- One row per (schedule, fire time): scheduled, caught-up, manual and backfill runs alike.
CREATE TABLE schedule_runs (
    id                uuid        PRIMARY KEY,
    schedule_id       uuid        NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time         timestamptz NOT NULL,
    kind              text        NOT NULL
                                  CHECK (kind IN ('SCHEDULED', 'MANUAL', 'CATCH_UP', 'BACKFILL')),
    state             text        NOT NULL
                                  CHECK (state IN ('BUFFERED', 'EMITTED', 'SUBMITTED', 'SUCCEEDED',
                                                   'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED')),
    skip_reason       text,
    -- The workflow run with its AMC time window, as sent (or to be sent, when BUFFERED).
    run               jsonb,
    event_id          uuid,
    execution_id      uuid,
    amc_execution_id  text,
    error_code        text,
    error_message     text,
    result_uri        text,
    row_count         bigint,
    created_at        timestamptz NOT NULL,
    emitted_at        timestamptz,
    submitted_at      timestamptz,
    completed_at      timestamptz,
    CONSTRAINT schedule_runs_once UNIQUE (schedule_id, fire_time),
    CONSTRAINT skipped_has_reason CHECK (state <> 'SKIPPED' OR skip_reason IS NOT NULL)
);
-- Runs without an outcome yet: the overlap policy and buffered-run release read these.
CREATE INDEX schedule_runs_open ON schedule_runs (schedule_id, fire_time)
    WHERE state IN ('BUFFERED', 'EMITTED', 'SUBMITTED');
-- The manual-trigger cool-down looks up the latest manual run.
CREATE INDEX schedule_runs_manual ON schedule_runs (schedule_id, created_at)
    WHERE kind = 'MANUAL';
