-- AMC's daily cap is a budget shared by every run at the instance: scheduled and external runs
-- are claimed before collection weeks, and a collection may be given a daily share of its own
-- (week.requested's daily_share). share_group names the collection a week belongs to, so that
-- the poller counts its weeks submitted today; NULL for runs that are not collection weeks.
ALTER TABLE executions ADD COLUMN share_group text;
ALTER TABLE executions ADD COLUMN daily_share integer CHECK (daily_share > 0);
