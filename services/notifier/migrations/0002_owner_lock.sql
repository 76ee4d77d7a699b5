-- The owner lock key of the replica sending the delivery (shared/ownership.py): a claim
-- whose owner's session lock is gone is due again at once, not when its lease runs out.
-- NULL: held by the lease (next_attempt_at) alone.
ALTER TABLE deliveries ADD COLUMN claim_key integer;
