"""Fire times: a schedule's local wall times mapped to UTC instants, DST rules applied.

Every function returns aware UTC datetimes, strictly increasing, each strictly later than
`after`. The DST rules are those documented on `ScheduleSpec`: a rule that follows the clock
(`WallClockRule.follows_clock`) fires at every wall time the clock shows, both passes of a
repeated hour included, and never for a wall time the clock skips; a rule naming one time of
day fires once per day, at the first instant after a gap or the first pass of a repeat.
A schedule's `start_date` and `end_date` bound the fire times to [first instant of start_date,
first instant of the day after end_date) in the schedule's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from services.scheduler.timing.spec import ScheduleSpec
from services.scheduler.timing.wallclock import WallClockRule, next_wall_time
from services.scheduler.timing.zones import (
    in_gap,
    resolve_wall,
    transition_between,
    utc_offset,
    wall_clock,
)

__all__ = ["iter_fire_times", "next_fire_time", "next_fire_times", "require_aware"]

_TICK = timedelta(microseconds=1)


def require_aware(moment: datetime, name: str) -> datetime:
    """`moment` in UTC; ValueError naming the argument when it has no time zone."""
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. 2024-11-03T00:00:00+00:00")
    return moment.astimezone(UTC)


def iter_fire_times(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """The schedule's fire times strictly after `after`, lazily, until its end date (if any)."""
    cursor = require_aware(after, "after")
    zone, rule = spec.zone, spec.rule
    if spec.start_date is not None:
        cursor = max(cursor, _day_start(spec.start_date, zone) - _TICK)
    stop = None
    if spec.end_date is not None and spec.end_date < date.max:
        stop = _day_start(spec.end_date + timedelta(days=1), zone)
    while (fire := _next_fire(rule, zone, cursor)) is not None:
        if stop is not None and fire >= stop:
            return
        yield fire
        cursor = fire


def next_fire_times(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after` (fewer when the end date comes)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    return list(islice(iter_fire_times(spec, after), count))


def next_fire_time(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, or None when the end date has passed."""
    return next(iter_fire_times(spec, after), None)


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return resolve_wall(datetime.combine(day, time()), zone)[0]


def _next_fire(rule: WallClockRule, zone: ZoneInfo, cursor: datetime) -> datetime | None:
    wall, fold = wall_clock(cursor, zone)
    follows_clock = rule.follows_clock
    if follows_clock and fold == 0:
        repeat = resolve_wall(wall, zone)[1]
        if repeat is not None:
            replayed = _next_in_first_pass(rule, zone, cursor, wall, repeat)
            if replayed is not None:
                return replayed
    candidate = next_wall_time(rule, wall)
    while candidate is not None:
        if follows_clock and in_gap(candidate, zone):
            # The clock skipped this wall time: like cron(8)'s wildcard jobs, not made up.
            candidate = next_wall_time(rule, candidate)
            continue
        first, repeat = resolve_wall(candidate, zone)
        if first > cursor:
            return first
        # The first occurrence is past: the clock is replaying a fall-back hour.
        if repeat is not None and follows_clock and repeat > cursor:
            return repeat
        candidate = next_wall_time(rule, candidate)
    return None


def _next_in_first_pass(
    rule: WallClockRule, zone: ZoneInfo, cursor: datetime, wall: datetime, wall_repeat: datetime
) -> datetime | None:
    """For a rule following the clock, with `cursor` in the first pass of a fall-back hour: the
    next fire in that pass or, failing that, in the replay (which comes before any later time)."""
    candidate = next_wall_time(rule, wall)
    if candidate is not None:
        first, repeat = resolve_wall(candidate, zone)
        if repeat is not None and first > cursor:
            return first
    change = transition_between(zone, cursor, wall_repeat)
    replay_start = wall_clock(change, zone)[0]
    # The clock went back by the change in UTC offset: that much wall time is replayed.
    went_back = utc_offset(cursor.astimezone(zone)) - utc_offset(change.astimezone(zone))
    replay_end = replay_start + went_back
    candidate = next_wall_time(rule, replay_start - _TICK)
    if candidate is not None and candidate < replay_end:
        return resolve_wall(candidate, zone)[1]
    return None
