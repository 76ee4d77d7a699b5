"""Standard five-field cron expressions: parsing, validation, and matching local wall times.

An expression is ``minute hour day-of-month month day-of-week``, separated by whitespace:

- minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or ``JAN``-``DEC``, day-of-week
  0-7 or ``SUN``-``SAT`` (0 and 7 are both Sunday). Names are case-insensitive.
- Each field is a comma-separated list of items: ``*``, ``a``, ``a-b``, ``*/s``, ``a-b/s``,
  or ``a/s`` (from a to the end of the field's range, every s).
- Day-of-month also takes ``L``: the last day of the month (``15,L`` is the 15th and the last).
- Day-of-week also takes ``d#n``: the n-th weekday d of the month, n 1-5 (``2#2``: the second
  Tuesday), and ``dL``: the last weekday d of the month (``5L``: the last Friday).
- Day matching follows crontab(5): when both day fields are restricted (neither starts with
  ``*``), a day matches if EITHER matches: ``0 9 1 * MON`` fires on the 1st of each month and
  on every Monday. Otherwise a day must match both (``0 9 */2 * MON``: odd-numbered days that
  are Mondays).

Rejected, with a ValueError naming the field and the problem: 6 or 7 fields (seconds and years
are not supported), values out of range, backwards ranges (``FRI-MON``: write ``FRI-SAT,SUN-MON``),
steps of 0 or wider than the field, ``?``, ``W``, ``L-n``, ``@daily``-style macros, and
expressions that can never fire (``0 0 30 2 *``).

Matching and next times are computed here, not with croniter 7: it measured ~110 µs per next
time (over a second for 10,000 schedules), spells "last Friday" ``L5`` rather than ``5L``, reads
a one-value range ``a-a`` as ``*``, ignores the day-of-month when day-of-week has ``d#n``, treats
``*/s`` day fields as restricted (unlike crontab(5)), and its errors do not name the field. The
tests use croniter as an independent oracle wherever the two agree.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

__all__ = ["CronExpression", "parse_cron"]

_DAY = timedelta(days=1)
_FIELD_ORDER = "minute hour day-of-month month day-of-week"


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    # The top of ``*``: day-of-week accepts 7 for Sunday but its ``*`` spans 0-6.
    star_high: int
    names: dict[str, int] = field(default_factory=dict)

    def error(self, problem: str) -> ValueError:
        return ValueError(f"{self.name} field: {problem}")


_MINUTE = _Field("minute", 0, 59, 59)
_HOUR = _Field("hour", 0, 23, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31)
_MONTH = _Field(
    "month",
    1,
    12,
    12,
    {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name},
)
_DAY_OF_WEEK = _Field(
    "day-of-week",
    0,
    7,
    6,
    {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))},
)
# February can have 29 days: a day-of-month up to 29 is reachable in some year.
_LONGEST_MONTH = {
    month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)
}


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A validated cron expression, compiled to sets (weekdays are Python's: Monday = 0)."""

    text: str
    minutes_of_day: tuple[int, ...]
    follows_clock: bool
    months: tuple[int, ...]
    days: frozenset[int]
    last_day: bool
    weekdays: frozenset[int]
    nth_weekdays: frozenset[tuple[int, int]]
    last_weekdays: frozenset[int]
    either_day_field: bool
    _shape_days: dict[tuple[int, int], tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def matches(self, wall: datetime) -> bool:
        """Whether the naive local time `wall` is one the expression names."""
        if wall.second or wall.microsecond or not self.day_matches(wall.date()):
            return False
        minute_of_day = wall.hour * 60 + wall.minute
        index = bisect_left(self.minutes_of_day, minute_of_day)
        return index < len(self.minutes_of_day) and self.minutes_of_day[index] == minute_of_day

    def day_matches(self, day: date) -> bool:
        """Whether the expression fires on `day` (month and both day fields)."""
        return day.month in self.months and day.day in self._days_of(day.year, day.month)

    def next_day(self, on_or_after: date) -> date:
        """The first day on or after `on_or_after` on which the expression fires."""
        day = on_or_after
        while True:
            if day.month in self.months:
                days = self._days_of(day.year, day.month)
                index = bisect_left(days, day.day)
                if index < len(days):
                    return date(day.year, day.month, days[index])
            day = self._next_month_start(day)

    def _days_of(self, year: int, month: int) -> tuple[int, ...]:
        return self._days_of_shape(_month_length(year, month), calendar.weekday(year, month, 1))

    def _days_of_shape(self, length: int, first_weekday: int) -> tuple[int, ...]:
        """The matching days of a month with `length` days starting on `first_weekday`,
        ignoring the month field; memoised, as there are only 28 shapes of month."""
        key = (length, first_weekday)
        days = self._shape_days.get(key)
        if days is None:
            days = tuple(
                day
                for day in range(1, length + 1)
                if self._matches_day(day, (first_weekday + day - 1) % 7, length)
            )
            self._shape_days[key] = days
        return days

    def _matches_day(self, day: int, weekday: int, month_length: int) -> bool:
        by_month_day = day in self.days or (self.last_day and day == month_length)
        by_weekday = (
            weekday in self.weekdays
            or (weekday, (day - 1) // 7 + 1) in self.nth_weekdays
            or (weekday in self.last_weekdays and day + 7 > month_length)
        )
        if self.either_day_field:
            return by_month_day or by_weekday
        return by_month_day and by_weekday

    def _next_month_start(self, day: date) -> date:
        later = [month for month in self.months if month > day.month]
        if later:
            return date(day.year, later[0], 1)
        if day.year == date.max.year:
            raise OverflowError("no fire time before the end of year 9999")
        return date(day.year + 1, self.months[0], 1)


@lru_cache(maxsize=4096)
def parse_cron(text: str) -> CronExpression:
    """Parse and validate a five-field cron expression; ValueError saying what is wrong."""
    fields = text.split()
    if len(fields) in (6, 7):
        raise ValueError(
            f"cron expression has {len(fields)} fields: seconds and years are not supported;"
            f" use 5 fields ({_FIELD_ORDER})"
        )
    if len(fields) != 5:
        raise ValueError(f"cron expression needs 5 fields ({_FIELD_ORDER}), got {len(fields)}")
    minute_text, hour_text, day_text, month_text, weekday_text = fields
    minutes = _parse_list(minute_text, _MINUTE)
    hours = _parse_list(hour_text, _HOUR)
    days, last_day = _parse_days_of_month(day_text)
    months = _parse_list(month_text, _MONTH)
    weekdays, nth_weekdays, last_weekdays = _parse_days_of_week(weekday_text)
    expression = CronExpression(
        text=text,
        minutes_of_day=tuple(sorted(hour * 60 + minute for hour in hours for minute in minutes)),
        # Debian cron(8) lets jobs with a wildcard minute or hour follow the clock through a
        # DST change; we count any minute or hour field naming more than one value (lists,
        # ranges, steps) as following it, so only a schedule of one time a day keeps its run.
        follows_clock=len(minutes) > 1 or len(hours) > 1,
        months=tuple(sorted(months)),
        days=frozenset(days),
        last_day=last_day,
        weekdays=frozenset(weekdays),
        nth_weekdays=frozenset(nth_weekdays),
        last_weekdays=frozenset(last_weekdays),
        either_day_field=not day_text.startswith("*") and not weekday_text.startswith("*"),
    )
    _check_can_fire(expression, day_text, month_text, weekday_text)
    return expression


def _parse_list(text: str, spec: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, spec)
    return values


def _parse_item(item: str, spec: _Field) -> set[int]:
    if not item:
        raise spec.error("empty item in a comma-separated list")
    body, has_step, step_text = item.partition("/")
    if body == "*":
        low, high = spec.low, spec.star_high
    else:
        start, has_range, end = body.partition("-")
        low = _value(start, spec)
        if has_range:
            high = _value(end, spec)
        elif has_step:  # "a/s" runs to the end of the field
            high = spec.star_high
        else:
            high = low
        if low > high:
            raise spec.error(
                f"range {body} is backwards: the start must not be after the end"
                " (split a wrapping range into two, e.g. FRI-SAT,SUN-MON)"
            )
    step = 1
    if has_step:
        step = _number(step_text, spec, "step")
        widest = spec.star_high - spec.low
        if not 1 <= step <= widest:
            raise spec.error(f"step {step} is out of range 1-{widest}")
    return set(range(low, high + 1, step))


def _value(token: str, spec: _Field) -> int:
    if token.upper() in spec.names:
        return spec.names[token.upper()]
    if token == "?":
        raise spec.error("'?' is not supported: use *")
    if not (token.isascii() and token.isdigit()):
        names = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise spec.error(f"{token!r} is not a number{names}")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise spec.error(f"{value} is out of range {spec.low}-{spec.high}")
    return value


def _number(token: str, spec: _Field, what: str) -> int:
    if not (token.isascii() and token.isdigit()):
        raise spec.error(f"{what} {token!r} is not a number")
    return int(token)


def _parse_days_of_month(text: str) -> tuple[set[int], bool]:
    days: set[int] = set()
    last_day = False
    for item in text.split(","):
        if item.upper() == "L":
            last_day = True
        elif "L" in item.upper() or "W" in item.upper():
            raise _DAY_OF_MONTH.error(
                f"{item!r} is not supported: L stands alone (the last day of the month);"
                " W and L-n are not supported"
            )
        else:
            days |= _parse_item(item, _DAY_OF_MONTH)
    return days, last_day


def _parse_days_of_week(text: str) -> tuple[set[int], set[tuple[int, int]], set[int]]:
    weekdays: set[int] = set()
    nth_weekdays: set[tuple[int, int]] = set()
    last_weekdays: set[int] = set()
    for item in text.split(","):
        if "#" in item:
            weekday_text, _, occurrence_text = item.partition("#")
            occurrence = _number(occurrence_text, _DAY_OF_WEEK, "occurrence")
            if not 1 <= occurrence <= 5:
                raise _DAY_OF_WEEK.error(f"{item!r}: the occurrence after # must be 1-5")
            nth_weekdays.add((_python_weekday(_value(weekday_text, _DAY_OF_WEEK)), occurrence))
        elif item.upper() == "L":
            raise _DAY_OF_WEEK.error(
                "L needs a weekday before it, e.g. 5L for the last Friday of the month"
            )
        elif item.upper().endswith("L"):
            last_weekdays.add(_python_weekday(_value(item[:-1], _DAY_OF_WEEK)))
        else:
            weekdays |= {_python_weekday(value) for value in _parse_item(item, _DAY_OF_WEEK)}
    return weekdays, nth_weekdays, last_weekdays


def _python_weekday(cron_weekday: int) -> int:
    # cron counts from Sunday = 0 (and 7); Python from Monday = 0.
    return (cron_weekday - 1) % 7


def _check_can_fire(
    expression: CronExpression, day_text: str, month_text: str, weekday_text: str
) -> None:
    if expression.either_day_field or expression.days.issuperset(range(1, 32)):
        # Every weekday, n-th weekday and last weekday falls in every month in some year.
        return
    if len(expression.weekdays) == 7:
        first_day = min(expression.days, default=32)
        if expression.last_day or any(
            first_day <= _LONGEST_MONTH[month] for month in expression.months
        ):
            return
        raise _DAY_OF_MONTH.error(
            f"{day_text} never falls in the chosen months ({month_text}): it would never fire"
        )
    # Both day fields are partly restricted and must both match: try every shape of month.
    for month in expression.months:
        for length in {_LONGEST_MONTH[month], 28 if month == 2 else _LONGEST_MONTH[month]}:
            if any(expression._days_of_shape(length, weekday) for weekday in range(7)):
                return
    raise ValueError(
        f"day-of-month field {day_text} and day-of-week field {weekday_text} never match"
        f" the same day in the chosen months ({month_text}): it would never fire"
    )


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if calendar.isleap(year) else 28
    return _LONGEST_MONTH[month]
