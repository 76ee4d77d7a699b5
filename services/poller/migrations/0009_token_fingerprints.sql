-- Which access token AMC refused, by fingerprint (shared.crypto.token_fingerprint), so that a
-- run waits for a token newer than the refused one, and is never retried with that one.
-- The cached token's own fingerprint: a token.refreshed carrying the refused token again
-- (the token service answering an older request) leaves it refused.
ALTER TABLE tokens ADD COLUMN fingerprint text;
-- The refused token an outstanding request names: a request naming a newer refusal is sent
-- even while one is outstanding, and an answer carrying the refused token does not close it.
ALTER TABLE token_requests ADD COLUMN refused_fp text;
-- The token AMC last refused for this run (cleared once AMC accepts a call again): only a
-- refusal of a different, newer token ends the run.
ALTER TABLE executions ADD COLUMN refused_token_fp text;
-- auth_failures (0003) is no longer read or written: refused_token_fp says it. It stays, so
-- that replicas of the previous version keep working during a rolling upgrade.
