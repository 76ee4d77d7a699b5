-- One row per requested execution. `status` is the public state; `stage` says which
-- background loop owns the row next, `next_action_at` when, and the lease who has it now.
CREATE TABLE executions (
    execution_id      uuid        PRIMARY KEY,
    origin_kind       text        NOT NULL,
    origin_id         text        NOT NULL,
    -- A collection retries a week under the same origin with a higher attempt.
    attempt           integer     NOT NULL DEFAULT 1,
    request_event_id  uuid        NOT NULL,
    user_id           text        NOT NULL,
    instance_id       text        NOT NULL,
    workflow_id       text        NOT NULL,
    run               jsonb       NOT NULL,
    status            text        NOT NULL,
    stage             text        NOT NULL,
    waiting_token     boolean     NOT NULL DEFAULT false,
    next_action_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_until       timestamptz,
    failures          integer     NOT NULL DEFAULT 0,
    poll_count        integer     NOT NULL DEFAULT 0,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    -- 'user' (the API asked) or 'timeout' (AMC's execution timeout passed).
    cancel_kind       text,
    amc_execution_id  text,
    amc_status        text,
    submit_intent_at  timestamptz,
    submitted_at      timestamptz,
    amc_finished_seen_at timestamptz,
    result_uri        text,
    result_rows       bigint,
    result_bytes      bigint,
    error_code        text,
    error_message     text,
    error_retryable   boolean,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    CONSTRAINT executions_one_per_origin UNIQUE (origin_kind, origin_id, attempt),
    CONSTRAINT executions_amc_id UNIQUE (amc_execution_id)
);

-- What the loops scan: live rows by stage and due time.
CREATE INDEX executions_due ON executions (stage, next_action_at) WHERE stage <> 'done';
-- The per-instance cap counts these.
CREATE INDEX executions_in_flight ON executions (instance_id)
    WHERE status IN ('SUBMITTING', 'PENDING', 'RUNNING');
CREATE INDEX executions_user_live ON executions (user_id) WHERE stage <> 'done';
CREATE INDEX executions_created ON executions (created_at DESC);

-- Access tokens from token.refreshed, kept as the encrypted text the event carried.
CREATE TABLE tokens (
    user_id               text        PRIMARY KEY,
    access_token_encrypted text       NOT NULL,
    expires_at            timestamptz NOT NULL,
    invalid               boolean     NOT NULL DEFAULT false,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- An outstanding token.refresh_requested per user: at most one at a time.
CREATE TABLE token_requests (
    user_id       text        PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    times         integer     NOT NULL DEFAULT 1
);

-- Per-instance request pacing shared by every replica (GCRA): the earliest time the next
-- AMC call for the instance may leave.
CREATE TABLE rate_slots (
    instance_id  text        PRIMARY KEY,
    next_slot    timestamptz NOT NULL
);
