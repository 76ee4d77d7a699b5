-- One row per user: the LWA grant, always encrypted (Fernet, storage key ring).
CREATE TABLE tokens (
    user_id               text        PRIMARY KEY,
    refresh_token_enc     text        NOT NULL,
    access_token_enc      text,
    expires_at            timestamptz,
    -- Fingerprint of the storage key both ciphertexts were written under: key rotation finds
    -- the rows still under an older key without decrypting every row.
    key_fp                text        NOT NULL,
    status                text        NOT NULL DEFAULT 'ACTIVE'
                                      CHECK (status IN ('ACTIVE', 'REAUTH_REQUIRED')),
    last_refreshed_at     timestamptz,
    -- Set when the last stored access token was handed out again instead of refreshed; a
    -- later request then means the requester has seen it and it did not work.
    republished_at        timestamptz,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    last_error            text,
    next_attempt_at       timestamptz,
    -- An on-demand refresh is wanted (token.refresh_requested or a new registration).
    refresh_requested_at  timestamptz,
    -- A replica's claim: the LWA call runs outside any transaction, the lease lets another
    -- replica take over once a crashed one's claim has expired.
    claim_id              uuid,
    claimed_by            text,
    claim_expires_at      timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tokens_due ON tokens (expires_at NULLS FIRST) WHERE status = 'ACTIVE';
CREATE INDEX tokens_requested ON tokens (refresh_requested_at)
    WHERE refresh_requested_at IS NOT NULL;
CREATE INDEX tokens_key_fp ON tokens (key_fp, user_id);
