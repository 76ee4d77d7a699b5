-- When AMC refused the run's token (refused_token_fp), and when LWA issued each cached token:
-- a revocation withdraws all of a user's access tokens, so a token issued before the refusal
-- is no newer than the refused one, and its refusal waits for a newer token again instead of
-- ending the run.
ALTER TABLE executions ADD COLUMN refused_at timestamptz;
ALTER TABLE tokens ADD COLUMN issued_at timestamptz;
