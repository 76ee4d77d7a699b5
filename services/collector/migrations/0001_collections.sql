-- Collections: one AMC workflow over a past date range, one execution per week.
CREATE SEQUENCE collection_queue_seq;

CREATE TABLE collections (
    id                  uuid        PRIMARY KEY,
    -- First come, first served: a collection enters the queue with the next number; a
    -- finished collection that is retried enters again at the back.
    queue_seq           bigint      NOT NULL DEFAULT nextval('collection_queue_seq'),
    status              text        NOT NULL CHECK (status IN (
                            'QUEUED', 'ACTIVE', 'PAUSED',
                            'COMPLETED', 'COMPLETED_WITH_FAILURES', 'CANCELLED')),
    -- The workflow run without its time window (each week gets its own).
    run                 jsonb       NOT NULL,
    start_date          date        NOT NULL,
    end_date            date        NOT NULL,
    week_start_day      text        NOT NULL,
    time_zone           text        NOT NULL,
    max_in_flight       int         NOT NULL CHECK (max_in_flight > 0),
    max_attempts        int         NOT NULL CHECK (max_attempts > 0),
    weeks_total         int         NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    -- Set when collection.completed was published (for CANCELLED: once in-flight weeks ended).
    finished_at         timestamptz
);
CREATE INDEX collections_queue ON collections (queue_seq) WHERE status = 'QUEUED';
CREATE INDEX collections_active ON collections (status) WHERE status = 'ACTIVE';
CREATE INDEX collections_created ON collections (created_at DESC);

CREATE TABLE collection_weeks (
    id                  uuid        PRIMARY KEY,
    collection_id       uuid        NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    seq                 int         NOT NULL,
    week_start          date        NOT NULL,
    week_end            date        NOT NULL,
    status              text        NOT NULL CHECK (status IN (
                            'PENDING', 'REQUESTED', 'RUNNING',
                            'SUCCEEDED', 'FAILED', 'CANCELLED')),
    -- Number of the current (or last) attempt; 0 before the first request.
    attempt             int         NOT NULL DEFAULT 0,
    -- Attempts allowed in total; an operator's retry raises it.
    attempt_limit       int         NOT NULL,
    -- A transient failure waits for its backoff before being dispatched again.
    not_before          timestamptz,
    requested_at        timestamptz,
    request_count       int         NOT NULL DEFAULT 0,
    submitted_at        timestamptz,
    finished_at         timestamptz,
    execution_id        uuid,
    amc_execution_id    text,
    error_code          text,
    error_message       text,
    result_uri          text,
    row_count           bigint,
    UNIQUE (collection_id, seq)
);
CREATE INDEX collection_weeks_open ON collection_weeks (collection_id, seq)
    WHERE status IN ('PENDING', 'REQUESTED', 'RUNNING');
CREATE INDEX collection_weeks_requested ON collection_weeks (requested_at)
    WHERE status = 'REQUESTED';
