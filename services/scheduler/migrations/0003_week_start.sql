-- The first day of a week for the week-relative date expressions of a schedule's parameters
-- and window (FIRSTDAYOFOFFSETWEEK, LASTDAYOFOFFSETWEEK). Existing schedules: Monday.
ALTER TABLE schedules ADD COLUMN week_start text NOT NULL DEFAULT 'MONDAY'
    CHECK (week_start IN ('MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY',
                          'SUNDAY'));
