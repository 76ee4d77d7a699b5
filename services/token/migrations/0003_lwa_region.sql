-- The Login with Amazon region a user authorized in: each region has its own token host
-- (Amazon's retrieve-access-token guide), so refreshes go where the grant was made.
ALTER TABLE tokens ADD COLUMN lwa_region text NOT NULL DEFAULT 'NA'
    CHECK (lwa_region IN ('NA', 'EU', 'FE'));
