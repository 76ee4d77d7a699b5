"""Which local wall times a cron expression names: day rules, names, steps, month ends."""

from __future__ import annotations

from datetime import date, datetime

from services.scheduler.timing.cron import parse_cron
from services.scheduler.timing.wallclock import next_wall_time


def _next(expression: str, after: datetime, count: int) -> list[datetime]:
    rule, found, cursor = parse_cron(expression), [], after
    for _ in range(count):
        moment = next_wall_time(rule, cursor)
        assert moment is not None
        found.append(moment)
        cursor = moment
    return found


def _days(expression: str, after: datetime, count: int) -> list[date]:
    return [moment.date() for moment in _next(expression, after, count)]


def test_next_wall_time_is_strictly_later_and_minute_aligned() -> None:
    assert _next("* * * * *", datetime(2024, 1, 1, 10, 0), 1) == [datetime(2024, 1, 1, 10, 1)]
    assert _next("* * * * *", datetime(2024, 1, 1, 10, 0, 59, 999), 1) == [
        datetime(2024, 1, 1, 10, 1)
    ]
    assert _next("30 9 * * *", datetime(2024, 1, 1, 9, 30), 1) == [datetime(2024, 1, 2, 9, 30)]
    assert _next("59 23 31 12 *", datetime(2024, 12, 31, 23, 58), 2) == [
        datetime(2024, 12, 31, 23, 59),
        datetime(2025, 12, 31, 23, 59),
    ]


def test_last_day_of_month_across_a_leap_year() -> None:
    assert _days("0 0 L * *", datetime(2024, 1, 1), 4) == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]
    assert _days("0 0 L 2 *", datetime(2024, 3, 1), 2) == [date(2025, 2, 28), date(2026, 2, 28)]


def test_nth_weekday() -> None:
    # Second Tuesdays of 2024.
    assert _days("0 6 * * 2#2", datetime(2024, 1, 1), 3) == [
        date(2024, 1, 9),
        date(2024, 2, 13),
        date(2024, 3, 12),
    ]
    # A fifth Monday exists only in some months.
    assert _days("0 0 * * MON#5", datetime(2024, 1, 1), 3) == [
        date(2024, 1, 29),
        date(2024, 4, 29),
        date(2024, 7, 29),
    ]
    # A fifth Thursday in February needs a leap year starting February on a Thursday.
    assert _days("0 0 * FEB 4#5", datetime(2016, 1, 1), 1) == [date(2024, 2, 29)]


def test_last_weekday_of_month() -> None:
    assert _days("0 0 * * 5L", datetime(2024, 1, 1), 4) == [
        date(2024, 1, 26),
        date(2024, 2, 23),
        date(2024, 3, 29),
        date(2024, 4, 26),
    ]
    # Sunday as 7, and a month ending on the weekday itself.
    assert _days("0 0 * * 7L", datetime(2024, 3, 1), 1) == [date(2024, 3, 31)]


def test_both_day_fields_restricted_means_either() -> None:
    # The 1st and 15th, and every Monday (crontab(5)).
    assert _days("0 9 1,15 * MON", datetime(2024, 1, 1, 10), 6) == [
        date(2024, 1, 8),
        date(2024, 1, 15),
        date(2024, 1, 22),
        date(2024, 1, 29),
        date(2024, 2, 1),
        date(2024, 2, 5),
    ]
    # Last day of the month or the second Tuesday.
    assert _days("0 0 L * 2#2", datetime(2024, 1, 1), 4) == [
        date(2024, 1, 9),
        date(2024, 1, 31),
        date(2024, 2, 13),
        date(2024, 2, 29),
    ]


def test_a_star_day_field_means_both_must_match() -> None:
    # Odd-numbered days that are Mondays: */2 starts with *, so the fields combine with AND.
    assert _days("0 0 */2 * MON", datetime(2024, 1, 1), 4) == [
        date(2024, 1, 15),
        date(2024, 1, 29),
        date(2024, 2, 5),
        date(2024, 2, 19),
    ]
    assert _days("0 0 * * MON-FRI", datetime(2024, 1, 5), 2) == [date(2024, 1, 8), date(2024, 1, 9)]


def test_month_names_and_steps() -> None:
    assert _days("0 8 1 JAN-DEC/3 *", datetime(2024, 1, 1, 9), 4) == [
        date(2024, 4, 1),
        date(2024, 7, 1),
        date(2024, 10, 1),
        date(2025, 1, 1),
    ]


def test_day_31_skips_short_months() -> None:
    assert _days("0 0 31 * *", datetime(2024, 1, 31, 1), 3) == [
        date(2024, 3, 31),
        date(2024, 5, 31),
        date(2024, 7, 31),
    ]


def test_feb_29_waits_for_a_leap_year() -> None:
    assert _days("0 0 29 2 *", datetime(2024, 3, 1), 2) == [date(2028, 2, 29), date(2032, 2, 29)]


def test_minutes_and_hours_within_a_day() -> None:
    assert [
        moment.time().isoformat("minutes")
        for moment in _next("*/20 9-10 * * *", datetime(2024, 1, 1), 7)
    ] == [
        "09:00",
        "09:20",
        "09:40",
        "10:00",
        "10:20",
        "10:40",
        "09:00",
    ]


def test_matches() -> None:
    expression = parse_cron("30 1 * * 5L")
    assert expression.matches(datetime(2024, 1, 26, 1, 30))
    assert not expression.matches(datetime(2024, 1, 26, 1, 30, 1))
    assert not expression.matches(datetime(2024, 1, 19, 1, 30))
    assert not expression.matches(datetime(2024, 1, 26, 1, 31))


def test_nothing_after_year_9999() -> None:
    assert next_wall_time(parse_cron("0 0 1 1 *"), datetime(9999, 1, 1, 0, 0)) is None
    assert next_wall_time(parse_cron("* * * * *"), datetime(9999, 12, 31, 23, 59)) is None
