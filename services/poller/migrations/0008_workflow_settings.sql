-- Every other field of a pushed workflow definition (outputColumns, outputFormat, the
-- aggregation threshold columns, ...; by AMC's names): a push sends the whole definition,
-- and a version records all of what it sent.
ALTER TABLE workflow_versions ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';
