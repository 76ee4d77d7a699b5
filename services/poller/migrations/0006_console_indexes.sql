-- The console's overview counts executions that ended in a status since a time (FAILED in
-- the last 24 h); without this it read and listed every FAILED execution to count them.
CREATE INDEX executions_status_completed ON executions (status, completed_at);
-- Executions of one instance, newest first (the console's filter, a workflow's page): an
-- instance with few executions otherwise meant scanning every execution by creation time.
CREATE INDEX executions_instance_created ON executions (instance_id, created_at DESC);
