-- Every execution the poller reported for a week, by attempt. execution.* events carry the
-- week id (origin) but not the attempt: this tells a late event of an earlier attempt (to be
-- ignored) from one of the current attempt.
CREATE TABLE week_executions (
    execution_id   uuid        PRIMARY KEY,
    week_id        uuid        NOT NULL REFERENCES collection_weeks (id) ON DELETE CASCADE,
    attempt        int         NOT NULL,
    status         text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX week_executions_week ON week_executions (week_id);
