"""IANA time zones, and how a local wall-clock time maps to UTC instants across DST changes.

Wall times are naive datetimes read as local time in a zone. Around a DST change a wall time
maps to zero instants (spring-forward gap), one, or two (fall-back repeat). `resolve_wall`
names them the way the scheduler's rules need: the first instant, and the repeat if any.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "in_gap",
    "load_zone",
    "resolve_wall",
    "transition_between",
    "utc_offset",
    "wall_clock",
]


@cache  # ZoneInfo keeps only 8 zones strongly; a cache miss re-reads the zone file.
def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. ``Europe/London``); ValueError naming it when unknown."""
    # "localtime" is whatever the host is configured to: a schedule must not depend on that.
    if name != "localtime":
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/London")


def utc_offset(moment: datetime) -> timedelta:
    """The UTC offset of an aware datetime."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"{moment!r} is not timezone-aware")
    return offset


# Fire-time computation runs per schedule per tick: plain arithmetic against these epochs is
# about ten times cheaper than datetime.replace(tzinfo=...).
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WALL_EPOCH = datetime(1970, 1, 1)


def wall_clock(instant: datetime, zone: ZoneInfo) -> tuple[datetime, int]:
    """What the clock in `zone` shows at the aware `instant`: a naive wall time, and the fold
    (1 in the second pass of a repeated fall-back hour, else 0)."""
    local = instant.astimezone(zone)
    return _WALL_EPOCH + (instant - _UTC_EPOCH) + utc_offset(local), local.fold


def resolve_wall(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The UTC instants at which the clock in `zone` shows the naive wall time `wall`.

    Returns ``(first, repeat)``: `first` is the only or earlier occurrence, or, for a time that
    does not exist (a spring-forward gap), the first instant after the gap; `repeat` is the
    second occurrence of a time the clock shows twice (fall-back), otherwise None.
    """
    if wall.fold:
        wall = wall.replace(fold=0)
    # PEP 495: fold=0 applies the offset in force before a change, fold=1 the one after.
    before = _zone_offset(zone, wall)
    after = _zone_offset(zone, wall.replace(fold=1))
    first = _UTC_EPOCH + (wall - before - _WALL_EPOCH)
    if before == after:
        return first, None
    if before > after:
        return first, _UTC_EPOCH + (wall - after - _WALL_EPOCH)
    # In a gap, wall - after is an instant before the change and wall - before one after it.
    return transition_between(zone, _UTC_EPOCH + (wall - after - _WALL_EPOCH), first), None


def in_gap(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the clock in `zone` never shows the naive wall time `wall` (a spring-forward
    gap): PEP 495 gives it a smaller offset for fold=0 than for fold=1."""
    return _zone_offset(zone, wall.replace(fold=0)) < _zone_offset(zone, wall.replace(fold=1))


def transition_between(zone: ZoneInfo, earlier: datetime, later: datetime) -> datetime:
    """The first instant in (earlier, later] whose UTC offset in `zone` differs from earlier's.

    The caller guarantees exactly one offset change in the interval. Time zone changes fall on
    whole seconds, so a bisection over whole seconds finds the exact instant.
    """
    offset_before = utc_offset(earlier.astimezone(zone))
    low = math.floor(earlier.timestamp())
    high = math.ceil(later.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if utc_offset(datetime.fromtimestamp(middle, zone)) == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _zone_offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    offset = zone.utcoffset(wall)
    if offset is None:
        raise ValueError(f"time zone {zone.key} has no UTC offset at {wall}")
    return offset
