-- Ad hoc runs and the short form: a schedule names a saved workflow or carries inline SQL
-- (exactly one), may leave advertiser and marketplace to the poller's instance registry (both
-- or neither), and carries AMC's run options (RunOptions as JSON, unset ones left out).
-- Existing schedules name a workflow and both account ids, so they satisfy every check.
ALTER TABLE schedules ALTER COLUMN workflow_id DROP NOT NULL;
ALTER TABLE schedules ALTER COLUMN advertiser_id DROP NOT NULL;
ALTER TABLE schedules ALTER COLUMN marketplace_id DROP NOT NULL;
ALTER TABLE schedules ADD COLUMN sql_query text;
ALTER TABLE schedules ADD COLUMN run_options jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE schedules ADD CONSTRAINT schedules_workflow_or_sql
    CHECK ((workflow_id IS NULL) <> (sql_query IS NULL));
ALTER TABLE schedules ADD CONSTRAINT schedules_account_together
    CHECK ((advertiser_id IS NULL) = (marketplace_id IS NULL));
