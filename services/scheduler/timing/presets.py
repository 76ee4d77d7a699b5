"""Presets: the common schedules, without cron syntax.

Every preset fires once a day it names, at one local time ``at`` (``HH:MM``, 24-hour). Presets
name one time of day, so they keep their one run through DST changes: on a fall-back day a
repeated ``at`` fires once, at its first occurrence; an ``at`` inside a spring-forward gap fires
at the first instant after the gap.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.scheduler.timing.wallclock import WallClockRule

__all__ = [
    "DailyPreset",
    "EveryNDaysPreset",
    "MonthlyPreset",
    "Preset",
    "Weekday",
    "WeeklyPreset",
]

_DAY = timedelta(days=1)
_CLOCK_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _check_clock_time(text: str) -> str:
    if not _CLOCK_TIME.fullmatch(text):
        raise ValueError(f"expected a 24-hour time HH:MM (00:00-23:59), got {text!r}")
    return text


ClockTime = Annotated[
    str,
    AfterValidator(_check_clock_time),
    Field(description="Local time of day, 24-hour HH:MM (e.g. 06:30).", examples=["06:30"]),
]

Weekday = Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
_WEEKDAYS: tuple[Weekday, ...] = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


class _PresetBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: ClockTime

    @property
    def minute_of_day(self) -> int:
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


class DailyPreset(_PresetBase):
    """Every day at ``at``."""

    kind: Literal["daily"] = "daily"

    def rule(self, start_date: date | None) -> WallClockRule:
        return _Rule((self.minute_of_day,), lambda day: day)


class EveryNDaysPreset(_PresetBase):
    """Every ``days`` days at ``at``, counted from the schedule's start date (which it needs):
    the start date, start + N, start + 2N, ... so every 3 days stays every 3 days across month
    and year ends, unlike a cron day-of-month step."""

    kind: Literal["every_n_days"] = "every_n_days"
    days: int = Field(ge=1, description="The interval N in days, at least 1.")

    def rule(self, start_date: date | None) -> WallClockRule:
        if start_date is None:
            raise ValueError("the every_n_days preset needs a start date")
        anchor, interval = start_date, self.days

        def next_day(day: date) -> date:
            if day <= anchor:
                return anchor
            return day + _DAY * (-(day - anchor).days % interval)

        return _Rule((self.minute_of_day,), next_day)


class WeeklyPreset(_PresetBase):
    """On each of ``weekdays`` at ``at``."""

    kind: Literal["weekly"] = "weekly"
    weekdays: list[Weekday] = Field(
        min_length=1, description="Days of the week to fire on (MON-SUN), at least one."
    )

    def rule(self, start_date: date | None) -> WallClockRule:
        chosen = {_WEEKDAYS.index(weekday) for weekday in self.weekdays}

        def next_day(day: date) -> date:
            return day + _DAY * min((weekday - day.weekday()) % 7 for weekday in chosen)

        return _Rule((self.minute_of_day,), next_day)


MonthDay = Literal["last", "first_business_day", "last_business_day"]


class MonthlyPreset(_PresetBase):
    """Once a month at ``at``, on ``day``: a day number 1-31, ``last`` (the month's last day),
    ``first_business_day`` or ``last_business_day`` (business days are Monday-Friday; public
    holidays are not considered). A day number past the end of a month fires on that month's
    last day: 31 fires on 30 April and on 28 or 29 February."""

    kind: Literal["monthly"] = "monthly"
    day: Annotated[int, Field(ge=1, le=31)] | MonthDay = Field(
        description="1-31 (clipped to the month's length), last, first_business_day,"
        " or last_business_day."
    )

    def rule(self, start_date: date | None) -> WallClockRule:
        def next_day(day: date) -> date:
            chosen = self._day_in(day.year, day.month)
            if chosen >= day:
                return chosen
            following = day.replace(day=1) + _DAY * 32
            return self._day_in(following.year, following.month)

        return _Rule((self.minute_of_day,), next_day)

    def _day_in(self, year: int, month: int) -> date:
        length = calendar.monthrange(year, month)[1]
        if self.day == "first_business_day":
            first = date(year, month, 1)
            # Saturday (5) moves on 2 days, Sunday (6) 1 day.
            return first + _DAY * (7 - first.weekday()) if first.weekday() >= 5 else first
        if self.day == "last_business_day":
            last = date(year, month, length)
            return last - _DAY * max(0, last.weekday() - 4)
        if self.day == "last":
            return date(year, month, length)
        return date(year, month, min(self.day, length))


Preset = Annotated[
    DailyPreset | EveryNDaysPreset | WeeklyPreset | MonthlyPreset,
    Field(discriminator="kind"),
]


@dataclass(frozen=True, slots=True)
class _Rule:
    minutes_of_day: tuple[int, ...]
    days_from: Callable[[date], date]
    # A preset names one time of day: it keeps its one run through a DST change.
    follows_clock: bool = False

    def next_day(self, on_or_after: date) -> date:
        return self.days_from(on_or_after)
