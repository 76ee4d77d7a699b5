-- The trace of the first pending token.refresh_requested: the on-demand refresh that answers
-- it continues that trace, so a run that waited for a token shows the refresh in its trace.
ALTER TABLE tokens ADD COLUMN refresh_trace jsonb;
