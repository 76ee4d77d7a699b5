-- 401s in a row for this execution: the first asks for a fresh token, a second one with that
-- fresh token means the user has no access to the instance (the execution fails, no loop).
ALTER TABLE executions ADD COLUMN auth_failures integer NOT NULL DEFAULT 0;
-- Sets of pre-signed result URLs that storage refused as expired in a row (each refused set
-- is replaced by fresh URLs from AMC, a bounded number of times).
ALTER TABLE executions ADD COLUMN url_refreshes integer NOT NULL DEFAULT 0;
