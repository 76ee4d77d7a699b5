"""The time window a fired run covers: an AMC relative window, or a lookback of whole days.

A lookback of N days with a lag of L days covers the N whole local days (in the schedule's
zone) ending L days before the fire date: days fire_date - L - N + 1 ... fire_date - L. As a
half-open range it runs from local midnight of the first day (inclusive) to local midnight of
the day after the last (exclusive), the contract's `WorkflowRun.time_window_start/end` with
`time_window_time_zone` set to the schedule's zone. The bounds are naive local wall-clock
datetimes, the form AMC takes together with a time zone. The default lag of 2 days leaves AMC
time to finish ingesting a day's data. Example: fired 2024-03-15 06:00 local, N=7, L=2: days
7-13 March, window [2024-03-07T00:00, 2024-03-14T00:00).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from services.scheduler.timing.fire_times import require_aware
from services.scheduler.timing.zones import load_zone
from shared.contract.events import TimeWindowType

__all__ = ["AmcWindow", "LookbackWindow", "TimeWindow", "WindowRule", "window_for"]


class AmcWindow(BaseModel):
    """A window type AMC computes itself, passed through unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["MOST_RECENT_DAY", "MOST_RECENT_WEEK", "CURRENT_MONTH", "PREVIOUS_MONTH"]


class LookbackWindow(BaseModel):
    """The `days` whole local days ending `lag_days` days before the fire date (see module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["LOOKBACK"]
    days: int = Field(ge=1, description="Number of whole days the window covers (N).")
    lag_days: int = Field(
        default=2, ge=0, description="Days between the window's last day and the fire date (L)."
    )


WindowRule = Annotated[AmcWindow | LookbackWindow, Field(discriminator="type")]


class TimeWindow(NamedTuple):
    """What goes into `WorkflowRun`: start inclusive, end exclusive, both naive local times
    in the schedule's zone; both None for an AMC relative window type."""

    type: TimeWindowType
    start: datetime | None
    end: datetime | None


def window_for(rule: WindowRule, fire_time: datetime, timezone: str) -> TimeWindow:
    """The window a run fired at `fire_time` (aware) covers, in the IANA zone `timezone`."""
    if isinstance(rule, AmcWindow):
        return TimeWindow(TimeWindowType(rule.type), None, None)
    fire_date = require_aware(fire_time, "fire_time").astimezone(load_zone(timezone)).date()
    end = datetime.combine(fire_date - timedelta(days=rule.lag_days - 1), time())
    return TimeWindow(TimeWindowType.EXPLICIT, end - timedelta(days=rule.days), end)
