-- AMC delivers results as CSV only: its API has no output format, and PARQUET was never
-- produced (the field was sent to AMC, which does not define it). Schedules that asked for
-- PARQUET get what they always got.
UPDATE schedules SET output_format = 'CSV' WHERE output_format <> 'CSV';
ALTER TABLE schedules DROP CONSTRAINT IF EXISTS schedules_output_format_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_output_format_check CHECK (output_format = 'CSV');
UPDATE schedule_runs SET run = jsonb_set(run, '{output_format}', '"CSV"')
 WHERE run ? 'output_format' AND run ->> 'output_format' <> 'CSV';
