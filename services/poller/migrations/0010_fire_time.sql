-- The fire time of a scheduled run (schedule.due's fire_time), kept so a result sink can
-- record it beside the result's rows; NULL for collection weeks and external requests.
ALTER TABLE executions ADD COLUMN fire_time timestamptz;
