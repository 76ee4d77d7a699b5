-- AMC's documented cap on executions created through the API per instance per day
-- (createWorkflowExecution: "up to 30 times per day, per AMC instance"). An instance whose
-- cap Amazon raised gets its own number; NULL takes the deployment's default.
ALTER TABLE instances ADD COLUMN max_daily_executions integer CHECK (max_daily_executions >= 0);

-- Why a QUEUED run is not being submitted (today: the day's cap is used up), shown by the
-- API and the console; cleared when the run is claimed.
ALTER TABLE executions ADD COLUMN waiting_reason text;

-- Counting the day's submissions per instance reads only today's intents.
CREATE INDEX executions_instance_intent ON executions (instance_id, submit_intent_at)
    WHERE submit_intent_at IS NOT NULL;
