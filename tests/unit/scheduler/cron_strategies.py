"""Hypothesis strategies for valid five-field cron expressions, and their croniter spelling."""

from __future__ import annotations

import re

from hypothesis import strategies as st

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _items(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    def value(number: int, use_name: bool) -> str:
        return (
            names[number - low] if use_name and names and number - low < len(names) else str(number)
        )

    values = st.builds(value, st.integers(low, high), st.booleans())
    bounds = st.tuples(st.integers(low, high), st.integers(low, high)).map(sorted)
    ranges = st.builds(lambda b, n: f"{value(b[0], n)}-{value(b[1], n)}", bounds, st.booleans())
    steps = st.integers(1, max(1, (high - low) // 2))
    stepped = st.builds(lambda r, s: f"{r}/{s}", ranges, steps)
    return st.one_of(values, ranges, stepped)


def _field(
    low: int, high: int, extra: st.SearchStrategy[str], star_steps: bool
) -> st.SearchStrategy[str]:
    items = st.lists(st.one_of(extra, _items(low, high)), min_size=1, max_size=3).map(",".join)
    choices = [st.just("*"), st.just("*"), items]
    if star_steps:
        choices.append(st.integers(1, high - low).map(lambda step: f"*/{step}"))
    return st.one_of(*choices)


def cron_expressions(*, croniter_compatible: bool = False) -> st.SearchStrategy[str]:
    """Valid-looking expressions, biased to fire often: ``*`` is common in every field.

    ``croniter_compatible`` leaves out what croniter 7 reads differently from crontab(5):
    ``*/s`` in a day field (croniter: restricts it; crontab(5): does not) and d#n or dL with a
    restricted day-of-month (croniter ignores the day-of-month; crontab(5): either matches).
    """
    minute = _field(0, 59, _items(0, 59), star_steps=True)
    hour = _field(0, 23, _items(0, 23), star_steps=True)
    day = _field(1, 31, st.just("L"), star_steps=not croniter_compatible)
    month = _field(1, 12, _items(1, 12, _MONTH_NAMES), star_steps=True)
    nth = st.builds(
        lambda d, n: f"{d}#{n}", st.sampled_from((*_DAY_NAMES, "1", "5")), st.integers(1, 5)
    )
    last = st.integers(0, 6).map(lambda d: f"{d}L")
    # croniter refuses to mix plain weekdays with d#n or dL in one field.
    special = st.lists(st.one_of(nth, last), min_size=1, max_size=2).map(",".join)
    plain = _field(0, 6, _items(0, 6, _DAY_NAMES), star_steps=not croniter_compatible)
    return st.one_of(
        st.builds(_join, minute, hour, day, month, plain),
        st.builds(
            _join, minute, hour, st.just("*") if croniter_compatible else day, month, special
        ),
    )


def _join(*fields: str) -> str:
    return " ".join(fields)


def to_croniter(expression: str) -> str:
    """The same expression as croniter 7 reads it: it spells "last weekday d of the month" Ld
    where standard cron has dL, and it reads a one-value range a-a as * (a croniter bug)."""
    single_values = re.sub(r"\b(\w+)-\1(/\d+)?\b", r"\1", expression)
    minute, hour, day, month, weekday = single_values.split()
    weekday = re.sub(r"\b(\d)L\b", r"L\1", weekday)
    return " ".join((minute, hour, day, month, weekday))
