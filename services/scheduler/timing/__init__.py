"""Pure time rules of the scheduler (no I/O): when schedules fire, across time zones and DST,
which time window a run covers, and the catch-up, overlap and auto-pause policies."""

from services.scheduler.timing.autopause import (
    DEFAULT_PAUSE_THRESHOLD,
    failure_streak,
    should_pause,
)
from services.scheduler.timing.catchup import CatchUpPlan, CatchUpPolicy, plan_catch_up
from services.scheduler.timing.cron import CronExpression, parse_cron
from services.scheduler.timing.fire_times import (
    iter_fire_times,
    next_fire_time,
    next_fire_times,
)
from services.scheduler.timing.overlap import OverlapDecision, OverlapPolicy, decide_overlap
from services.scheduler.timing.presets import (
    DailyPreset,
    EveryNDaysPreset,
    MonthlyPreset,
    Preset,
    Weekday,
    WeeklyPreset,
)
from services.scheduler.timing.preview import preview, preview_json
from services.scheduler.timing.spec import ScheduleSpec
from services.scheduler.timing.windows import (
    AmcWindow,
    ExpressionWindow,
    LookbackWindow,
    TimeWindow,
    WindowRule,
    window_for,
)
from services.scheduler.timing.zones import load_zone

__all__ = [
    "DEFAULT_PAUSE_THRESHOLD",
    "AmcWindow",
    "CatchUpPlan",
    "CatchUpPolicy",
    "CronExpression",
    "DailyPreset",
    "EveryNDaysPreset",
    "ExpressionWindow",
    "LookbackWindow",
    "MonthlyPreset",
    "OverlapDecision",
    "OverlapPolicy",
    "Preset",
    "ScheduleSpec",
    "TimeWindow",
    "Weekday",
    "WeeklyPreset",
    "WindowRule",
    "decide_overlap",
    "failure_streak",
    "iter_fire_times",
    "load_zone",
    "next_fire_time",
    "next_fire_times",
    "parse_cron",
    "plan_catch_up",
    "preview",
    "preview_json",
    "should_pause",
    "window_for",
]
