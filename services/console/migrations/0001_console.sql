-- Sessions: the cookie carries a random id (signed); only its SHA-256 is stored, so a copy
-- of this table cannot be replayed as cookies. csrf is the per-session form token.
CREATE TABLE sessions (
    id_hash     text        PRIMARY KEY,
    principal   text        NOT NULL,
    method      text        NOT NULL CHECK (method IN ('api_key', 'sso')),
    csrf        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Who changed what through the console, and what the service answered.
CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    principal   text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    outcome     text        NOT NULL,
    detail      text
);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- Pending "connect an Amazon account" flows: LWA's redirect comes back cross-site, where the
-- SameSite=Strict session cookie is not sent, so the one-time state itself carries who asked.
CREATE TABLE oauth_states (
    state_hash  text        PRIMARY KEY,
    principal   text        NOT NULL,
    user_id     text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
