-- Rules: which events go to which channel. The channel URL holds secrets (webhook tokens,
-- SMTP passwords): it is stored Fernet-encrypted under NOTIFIER_ENCRYPTION_KEYS; only its
-- redacted form (scheme and host) and scheme are kept in clear, for listings and metrics.
CREATE TABLE rules (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL,
    channel         text        NOT NULL,
    url_redacted    text        NOT NULL,
    url_encrypted   text        NOT NULL,
    filter          jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A removed rule is kept (its deliveries' history refers to it) with its secret erased.
    removed_at      timestamptz
);
CREATE INDEX rules_active ON rules (created_at) WHERE removed_at IS NULL;

-- The delivery log: one row per (event, rule), written in the consuming transaction, so a
-- redelivered event or a second matching pass can never send twice. Senders claim due rows
-- by moving next_attempt_at forward (a lease) under FOR UPDATE SKIP LOCKED; claim_id makes
-- sure only the claimant records the outcome.
CREATE TABLE deliveries (
    event_id        uuid        NOT NULL,
    rule_id         uuid        NOT NULL REFERENCES rules (id),
    topic           text        NOT NULL,
    event_type      text        NOT NULL,
    channel         text        NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    severity        text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'CANCELLED')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim_id        uuid,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (event_id, rule_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX deliveries_recent ON deliveries (created_at DESC);
