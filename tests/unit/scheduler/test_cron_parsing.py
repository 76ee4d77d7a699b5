"""Parsing and validating cron expressions: what each syntax means, and clear errors."""

from __future__ import annotations

import re

import pytest

from services.scheduler.timing.cron import parse_cron


def _minutes(expression: str) -> list[int]:
    return sorted({minute % 60 for minute in parse_cron(expression).minutes_of_day})


def _hours(expression: str) -> list[int]:
    return sorted({minute // 60 for minute in parse_cron(expression).minutes_of_day})


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", list(range(60))),
        ("5", [5]),
        ("1,2,3", [1, 2, 3]),
        ("10-13", [10, 11, 12, 13]),
        ("*/15", [0, 15, 30, 45]),
        ("10-30/10", [10, 20, 30]),
        ("50/5", [50, 55]),
        ("*/59", [0, 59]),
        ("1-3,7,*/30", [0, 1, 2, 3, 7, 30]),
    ],
)
def test_minute_field_forms(field: str, expected: list[int]) -> None:
    assert _minutes(f"{field} * * * *") == expected


def test_hour_steps_and_which_rules_follow_the_clock() -> None:
    assert _hours("0 */6 * * *") == [0, 6, 12, 18]
    # Any minute or hour field naming more than one value follows the clock through DST.
    for following in ("0 * * * *", "0 */2 * * *", "0 1-6 * * *", "0,30 9 * * *", "0 9,17 * * *"):
        assert parse_cron(following).follows_clock, following
    for fixed in ("0 9 * * *", "30 1 * * *", "0-0 1-1 * * MON", "0 9 1,15 * *"):
        assert not parse_cron(fixed).follows_clock, fixed


def test_month_and_weekday_names_are_case_insensitive() -> None:
    assert parse_cron("0 0 * jan-Mar,DEC *").months == (1, 2, 3, 12)
    # Python weekdays: Monday = 0 ... Sunday = 6.
    assert parse_cron("0 0 * * mon-FRI").weekdays == frozenset(range(5))
    assert parse_cron("0 0 * * SUN,sat").weekdays == frozenset({5, 6})


def test_sunday_is_0_and_7() -> None:
    assert parse_cron("0 0 * * 0").weekdays == parse_cron("0 0 * * 7").weekdays == {6}
    assert parse_cron("0 0 * * 5-7").weekdays == {4, 5, 6}
    assert parse_cron("0 0 * * */2").weekdays == {6, 1, 3, 5}  # SUN, TUE, THU, SAT


def test_special_day_items() -> None:
    expression = parse_cron("0 0 15,L * 2#2,5L,TUE#4,7L")
    assert expression.days == {15}
    assert expression.last_day
    assert expression.nth_weekdays == {(1, 2), (1, 4)}
    assert expression.last_weekdays == {4, 6}


def test_day_fields_combine_with_or_only_when_both_are_restricted() -> None:
    assert parse_cron("0 0 1 * MON").either_day_field
    assert parse_cron("0 0 1-31 * 1").either_day_field
    assert not parse_cron("0 0 * * MON").either_day_field
    assert not parse_cron("0 0 */2 * MON").either_day_field
    assert not parse_cron("0 0 1 * *").either_day_field


def test_whitespace_between_fields_is_free() -> None:
    assert parse_cron("  0\t9   * * 1 ").minutes_of_day == (540,)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("* * * 13 *", "month field: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("x * * * *", "minute field: 'x' is not a number"),
        ("* * * FOO *", "month field: 'FOO' is not a number or a name (JAN, FEB"),
        ("* * * * FUN", "day-of-week field: 'FUN' is not a number or a name (SUN, MON"),
        ("30-10 * * * *", "minute field: range 30-10 is backwards"),
        ("* * * * FRI-MON", "day-of-week field: range FRI-MON is backwards"),
        ("*/0 * * * *", "minute field: step 0 is out of range 1-59"),
        ("*/90 * * * *", "minute field: step 90 is out of range 1-59"),
        ("*/x * * * *", "minute field: step 'x' is not a number"),
        ("1,,2 * * * *", "minute field: empty item"),
        ("* * ? * *", "day-of-month field: '?' is not supported: use *"),
        ("* * 15W * *", "day-of-month field: '15W' is not supported"),
        ("* * L-2 * *", "day-of-month field: 'L-2' is not supported"),
        ("* * L/2 * *", "day-of-month field: 'L/2' is not supported"),
        ("* * * * L", "day-of-week field: L needs a weekday before it"),
        ("* * * * 2#6", "day-of-week field: '2#6': the occurrence after # must be 1-5"),
        ("* * * * 2#0", "the occurrence after # must be 1-5"),
        ("* * * * 8#1", "day-of-week field: 8 is out of range 0-7"),
        ("* * * * 2#x", "day-of-week field: occurrence 'x' is not a number"),
        ("0 0 30 2 *", "day-of-month field: 30 never falls in the chosen months (2)"),
        ("0 0 31 4,6,9,11 *", "day-of-month field: 31 never falls in the chosen months"),
        ("0 0 */30 * 1#2", "never match the same day"),
        ("", "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 0"),
        ("* * * *", "needs 5 fields"),
        ("@daily", "got 1"),
        ("0 * * * * *", "has 6 fields: seconds and years are not supported"),
        ("0 0 * * * * 2024", "has 7 fields: seconds and years are not supported"),
        ("* * * * * * * *", "got 8"),
    ],
)
def test_invalid_expressions_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_cron(expression)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "0 0 L 2 *", "0 0 30 2 1", "0 0 * 2 1#5"])
def test_rare_but_possible_expressions_are_accepted(expression: str) -> None:
    parse_cron(expression)
