"""The time window a fired run covers: an AMC relative window, or a lookback of whole days.

A lookback of N days with a lag of L days covers the N whole local days (in the schedule's
zone) ending L days before the fire date: days fire_date - L - N + 1 ... fire_date - L. As a
half-open range it runs from local midnight of the first day (inclusive) to local midnight of
the day after the last (exclusive), the contract's `WorkflowRun.time_window_start/end` with
`time_window_time_zone` set to the schedule's zone. The bounds are naive local wall-clock
datetimes, the form AMC takes together with a time zone. The default lag of 2 days leaves AMC
time to finish ingesting a day's data. Example: fired 2024-03-15 06:00 local, N=7, L=2: days
7-13 March, window [2024-03-07T00:00, 2024-03-14T00:00).

An EXPRESSION window gives its bounds as date expressions (`shared.dates`), evaluated at the
fire time in the schedule's zone: ``{"type": "EXPRESSION", "start": "FIRSTDAYOFOFFSETMONTH(-1)",
"end": "FIRSTDAYOFOFFSETMONTH(0)"}`` is the previous calendar month, end exclusive.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.scheduler.timing.fire_times import require_aware
from services.scheduler.timing.zones import load_zone
from shared.contract.values import TimeWindowType
from shared.dates import ExpressionError, WeekStart, parse_expression

__all__ = [
    "AmcWindow",
    "ExpressionWindow",
    "LookbackWindow",
    "TimeWindow",
    "WindowRule",
    "window_for",
]


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


class ExpressionWindow(BaseModel):
    """Bounds given as date expressions, evaluated at each fire time in the schedule's zone:
    `start` inclusive, `end` exclusive (name the first day after the window)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["EXPRESSION"]
    start: str = Field(
        description="Date expression of the first instant, e.g. FIRSTDAYOFOFFSETMONTH(-1)",
        examples=["FIRSTDAYOFOFFSETMONTH(-1)"],
    )
    end: str = Field(
        description="Date expression of the end (exclusive), e.g. FIRSTDAYOFOFFSETMONTH(0)",
        examples=["FIRSTDAYOFOFFSETMONTH(0)"],
    )

    @field_validator("start", "end")
    @classmethod
    def _bound(cls, text: str) -> str:
        try:
            parse_expression(text)
        except ExpressionError as exc:
            raise ValueError(f"{exc} in {text!r}") from None
        if "|" in text:
            raise ValueError(f"position {text.index('|') + 1}: a window bound takes no format")
        return text


WindowRule = Annotated[AmcWindow | LookbackWindow | ExpressionWindow, Field(discriminator="type")]


class TimeWindow(NamedTuple):
    """What goes into `WorkflowRun`: start inclusive, end exclusive, both naive local times
    in the schedule's zone; both None for an AMC relative window type."""

    type: TimeWindowType
    start: datetime | None
    end: datetime | None


def window_for(
    rule: WindowRule, fire_time: datetime, timezone: str, week_start: WeekStart = "MONDAY"
) -> TimeWindow:
    """The window a run fired at `fire_time` (aware) covers, in the IANA zone `timezone`.
    ValueError when an EXPRESSION window's end is not after its start at this fire time."""
    if isinstance(rule, AmcWindow):
        return TimeWindow(TimeWindowType(rule.type), None, None)
    if isinstance(rule, ExpressionWindow):
        zone = load_zone(timezone)
        at = require_aware(fire_time, "fire_time")
        start = parse_expression(rule.start).evaluate(at, zone, week_start)
        end = parse_expression(rule.end).evaluate(at, zone, week_start)
        if end <= start:
            raise ValueError(
                f"window end {rule.end} ({end.isoformat()}) is not after start {rule.start}"
                f" ({start.isoformat()}) at fire time {at.isoformat()}"
            )
        return TimeWindow(TimeWindowType.EXPLICIT, start, end)
    fire_date = require_aware(fire_time, "fire_time").astimezone(load_zone(timezone)).date()
    end = datetime.combine(fire_date - timedelta(days=rule.lag_days - 1), time())
    return TimeWindow(TimeWindowType.EXPLICIT, end - timedelta(days=rule.days), end)
