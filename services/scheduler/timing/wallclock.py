"""The local wall-clock side of a schedule: which naive local times it names.

Cron expressions and presets both reduce to a `WallClockRule`: a set of days and a set of
times of day. `next_wall_time` walks them; mapping wall times to UTC instants (and the DST
rules that takes) is `fire_times`'s job.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta
from typing import Protocol

__all__ = ["WallClockRule", "next_wall_time"]

_MINUTE = timedelta(minutes=1)


class WallClockRule(Protocol):
    """The local days and times of day at which a schedule fires."""

    @property
    def minutes_of_day(self) -> tuple[int, ...]:
        """Times of day as minutes after midnight, ascending, at least one."""
        ...

    @property
    def follows_clock(self) -> bool:
        """True when the rule names more than one time of day (its minute or hour field is
        not a single value): it then follows the clock through a DST change, like cron(8)'s
        wildcard jobs. False for a rule naming one time of day, which keeps its one run."""
        ...

    def next_day(self, on_or_after: date) -> date:
        """The first day on or after `on_or_after` on which the rule fires.

        Raises OverflowError when there is none before the end of year 9999.
        """
        ...


def next_wall_time(rule: WallClockRule, after: datetime) -> datetime | None:
    """The first naive wall time strictly later than `after` that `rule` names, or None when
    there is none before the end of year 9999."""
    try:
        # Arithmetic rather than replace(): this runs for every schedule on every tick.
        start = after + (_MINUTE - timedelta(seconds=after.second, microseconds=after.microsecond))
        day = rule.next_day(start.date())
        minutes = rule.minutes_of_day
        if day == start.date():
            index = bisect_left(minutes, start.hour * 60 + start.minute)
            if index < len(minutes):
                return _at(day, minutes[index])
            day = rule.next_day(day + timedelta(days=1))
        return _at(day, minutes[0])
    except OverflowError:
        return None


def _at(day: date, minute_of_day: int) -> datetime:
    return datetime(day.year, day.month, day.day, minute_of_day // 60, minute_of_day % 60)
