-- The owner lock key of the replica holding the row (shared/ownership.py): a row whose
-- owner's session lock is gone is free at once, not when its lease runs out. NULL: held by
-- the lease alone.
ALTER TABLE executions ADD COLUMN lease_key integer;
