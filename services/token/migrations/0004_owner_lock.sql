-- The owner lock key of the replica refreshing the token (shared/ownership.py): a claim
-- whose owner's session lock is gone is free at once, not when it runs out. NULL: held by
-- the claim's expiry alone.
ALTER TABLE tokens ADD COLUMN claim_key integer;
