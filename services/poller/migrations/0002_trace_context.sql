-- The trace of the request that created a row (W3C carrier: traceparent, tracestate), so
-- every later background job for the row (submit, polls, download, cancel) joins that trace.
-- Rows created before this migration have '{}': their jobs start traces of their own.
ALTER TABLE executions ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}';

-- When the row was parked waiting for an access token (NULL while not waiting): the start of
-- its "token wait" span, ended when token.refreshed (or token.refresh_failed) resumes it.
ALTER TABLE executions ADD COLUMN waiting_token_since timestamptz;
UPDATE executions SET waiting_token_since = updated_at WHERE waiting_token AND stage <> 'done';

-- No new index: amc_executions counts live rows (stage <> 'done'), which the partial indexes
-- of 0001 (executions_due, executions_user_live) already cover: the count reads only those.
