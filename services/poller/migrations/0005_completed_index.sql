-- The console's overview counts executions that ended in a status since a time (FAILED in
-- the last 24 h); without this it read and listed every FAILED execution to count them.
CREATE INDEX executions_status_completed ON executions (status, completed_at);
