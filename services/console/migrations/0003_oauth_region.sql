-- The Login with Amazon region a connect flow was started for: its authorization URL sent
-- the browser, and its token host must exchange the code (Amazon's guides name one each).
ALTER TABLE oauth_states ADD COLUMN lwa_region text NOT NULL DEFAULT 'NA'
    CHECK (lwa_region IN ('NA', 'EU', 'FE'));
