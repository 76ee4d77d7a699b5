-- Ad hoc runs and the short form: a collection's run names a saved workflow or carries inline
-- SQL (exactly one), may leave advertiser and marketplace to the poller's instance registry
-- (both or neither), and may carry AMC's run options ("options"). The run is JSON already, so
-- only the invariants are new; existing collections name a workflow and both account ids.
ALTER TABLE collections ADD CONSTRAINT collections_workflow_or_sql
    CHECK ((run ->> 'workflow_id' IS NULL) <> (run ->> 'sql_query' IS NULL));
ALTER TABLE collections ADD CONSTRAINT collections_account_together
    CHECK ((run ->> 'advertiser_id' IS NULL) = (run ->> 'marketplace_id' IS NULL));
