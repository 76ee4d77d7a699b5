-- When AMC refused the run's token (refused_token_fp): a token the poller already held before
-- then is no newer than the refused one, since a revocation withdraws all of a user's access
-- tokens, so its refusal waits for a newer token again instead of ending the run.
ALTER TABLE executions ADD COLUMN refused_at timestamptz;
