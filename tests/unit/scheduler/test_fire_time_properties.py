"""Fire times around DST changes, checked against a minute-by-minute walk of the real clock.

The walk states the rules directly: at each UTC minute, fire if the local wall time matches.
A rule that follows the clock (minute or hour field naming more than one value) fires in both
passes of a repeated wall time and never for a skipped one; a rule naming one time of day fires
only in the first pass, and at a spring-forward change if a wall time the clock skipped matches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise, takewhile
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.timing import ScheduleSpec, iter_fire_times, parse_cron
from services.scheduler.timing.cron import CronExpression
from tests.unit.scheduler.cron_strategies import cron_expressions

_ZONES = sorted(available_timezones() - {"localtime"})
_MINUTE = timedelta(minutes=1)
_HORIZON = timedelta(hours=36)


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


@cache
def _changes(zone_name: str, year: int) -> tuple[datetime, ...]:
    """Instants in `year` at which the zone's UTC offset changes (scanned every 6 hours)."""
    zone = ZoneInfo(zone_name)
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        following = moment + timedelta(hours=6)
        if _offset(moment, zone) != _offset(following, zone):
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (
                    (middle, high) if _offset(middle, zone) == _offset(low, zone) else (low, middle)
                )
            found.append(high.replace(microsecond=0))
        moment = following
    return tuple(found)


@st.composite
def _zone_and_instant(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(_ZONES))
    year = draw(st.integers(2000, 2030))
    changes = _changes(zone, year)
    if changes:
        anchor = draw(st.sampled_from(changes))
    else:
        anchor = datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=draw(st.integers(0, 364)))
    seconds = draw(st.one_of(st.integers(-36 * 3600, 12 * 3600), st.sampled_from((0, -60, -1, 1))))
    return zone, anchor + timedelta(seconds=seconds, microseconds=draw(st.sampled_from((0, 1))))


def _walk(
    expression: CronExpression, zone: ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    fires = []
    moment = after.replace(second=0, microsecond=0) + _MINUTE
    previous = (moment - _MINUTE).astimezone(zone)
    while moment <= until:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        fires_now = expression.matches(wall) and (local.fold == 0 or expression.follows_clock)
        if _offset(local, zone) > _offset(previous, zone) and not expression.follows_clock:
            skipped = previous.replace(tzinfo=None) + _MINUTE
            while skipped < wall and not fires_now:
                fires_now = expression.matches(skipped)
                skipped += _MINUTE
        if fires_now:
            fires.append(moment)
        previous, moment = local, moment + _MINUTE
    return fires


@settings(max_examples=120, deadline=None)
@given(expression=cron_expressions(), zone_and_after=_zone_and_instant())
def test_fire_times_follow_the_wall_clock(
    expression: str, zone_and_after: tuple[str, datetime]
) -> None:
    zone_name, after = zone_and_after
    try:
        parsed = parse_cron(expression)
    except ValueError:
        return  # an expression that never fires; parsing is tested elsewhere
    spec = ScheduleSpec(cron=expression, timezone=zone_name)
    until = after + _HORIZON
    fires = list(takewhile(lambda fire: fire <= until, iter_fire_times(spec, after)))

    assert all(fire.tzinfo is UTC for fire in fires)
    assert all(later > earlier for earlier, later in pairwise([after, *fires]))
    for fire in fires:
        local = fire.astimezone(spec.zone)
        just_before = (fire - timedelta(seconds=1)).astimezone(spec.zone)
        after_gap = _offset(fire, spec.zone) > _offset(just_before, spec.zone)
        assert parsed.matches(local.replace(tzinfo=None, fold=0)) or (
            after_gap and not parsed.follows_clock
        )
    assert fires == _walk(parsed, spec.zone, after, until)
