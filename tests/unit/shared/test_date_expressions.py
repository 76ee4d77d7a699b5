"""Date expressions: every function across DST changes in several zones, parsing errors with
positions, parameters, and a property test against an independent computation (dateutil's
zone reading and month arithmetic rather than zoneinfo and our own)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

# dateutil (installed with croniter) ships no type stubs; it is only the tests' oracle here.
from dateutil import tz as dateutil_tz  # type: ignore[import-untyped]
from dateutil.relativedelta import relativedelta  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.dates import (
    FUNCTIONS,
    WEEKDAYS,
    ExpressionError,
    WeekStart,
    check_parameters,
    parse_expression,
    render_parameters,
)


def _value(text: str, at: str, zone: str, week_start: WeekStart = "MONDAY") -> str:
    return parse_expression(text).render(datetime.fromisoformat(at), ZoneInfo(zone), week_start)


# Instants just after a DST change, where the local day differs from the UTC day or the
# clock just jumped: (instant, zone, local day it must be read as).
DST_INSTANTS = [
    # New York springs forward 2024-03-10 02:00 EST -> 03:00 EDT; 03:30 UTC is still the 9th.
    ("2024-03-10T03:30+00:00", "America/New_York", date(2024, 3, 9)),
    ("2024-03-10T07:00+00:00", "America/New_York", date(2024, 3, 10)),
    # New York falls back 2024-11-03: 04:30 UTC is 00:30 EDT on the 3rd.
    ("2024-11-03T04:30+00:00", "America/New_York", date(2024, 11, 3)),
    ("2024-11-03T06:30+00:00", "America/New_York", date(2024, 11, 3)),  # 01:30 EST
    # London springs forward 2024-03-31 01:00 GMT -> 02:00 BST; 23:30 UTC on the 31st is
    # already 1 April in London.
    ("2024-03-31T23:30+00:00", "Europe/London", date(2024, 4, 1)),
    ("2024-10-27T01:30+00:00", "Europe/London", date(2024, 10, 27)),  # 01:30 GMT, 2nd pass
    # Sydney springs forward 2024-10-06 (02:00 AEST -> 03:00 AEDT); 14:30 UTC on the 5th is
    # 00:30 on the 6th; and falls back 2024-04-07.
    ("2024-10-05T14:30+00:00", "Australia/Sydney", date(2024, 10, 6)),
    ("2024-04-06T15:30+00:00", "Australia/Sydney", date(2024, 4, 7)),
    # Santiago's midnight does not exist on 2024-09-08 (00:00 -04 -> 01:00 -03).
    ("2024-09-08T04:00+00:00", "America/Santiago", date(2024, 9, 8)),
]


@pytest.mark.parametrize(("at", "zone", "today"), DST_INSTANTS)
def test_every_function_reads_the_local_day_across_dst(at: str, zone: str, today: date) -> None:
    first_of_month = today.replace(day=1)
    previous_month = (first_of_month - timedelta(days=1)).replace(day=1)
    next_month = (first_of_month + timedelta(days=32)).replace(day=1)
    monday = today - timedelta(days=today.weekday())
    assert _value("TODAY()", at, zone) == today.isoformat()
    assert _value("today(-7)", at, zone) == (today - timedelta(days=7)).isoformat()
    assert _value("FIRSTDAYOFOFFSETMONTH(-1)", at, zone) == previous_month.isoformat()
    assert (
        _value("LASTDAYOFOFFSETMONTH(-1)", at, zone)
        == (first_of_month - timedelta(days=1)).isoformat()
    )
    assert (
        _value("FIFTEENTHDAYOFOFFSETMONTH(-1)", at, zone)
        == previous_month.replace(day=15).isoformat()
    )
    assert (
        _value("LASTDAYOFOFFSETMONTH(0)", at, zone) == (next_month - timedelta(days=1)).isoformat()
    )
    assert _value("FIRSTDAYOFOFFSETWEEK(-1)", at, zone) == (monday - timedelta(7)).isoformat()
    assert _value("LASTDAYOFOFFSETWEEK(0)", at, zone) == (monday + timedelta(6)).isoformat()
    local = datetime.fromisoformat(at).astimezone(ZoneInfo(zone))
    assert _value("NOW()", at, zone) == local.replace(tzinfo=None).isoformat(timespec="seconds")


def test_now_reads_the_wall_clock_in_both_passes_of_a_repeated_hour() -> None:
    # New York 2024-11-03: 05:30 UTC is 01:30 EDT, 06:30 UTC is 01:30 EST.
    assert _value("NOW()", "2024-11-03T05:30Z", "America/New_York") == "2024-11-03T01:30:00"
    assert _value("NOW()", "2024-11-03T06:30Z", "America/New_York") == "2024-11-03T01:30:00"
    assert _value("NOW()|DATE", "2024-11-03T06:30Z", "America/New_York") == "2024-11-03"


def test_utc_would_give_another_day() -> None:
    # Amazon's dynamic dates read the UTC day; ours the zone's: 22:00 in New York on 31 Jan
    # is 1 Feb in UTC.
    at = "2024-02-01T03:00Z"
    assert _value("FIRSTDAYOFOFFSETMONTH(-1)", at, "UTC") == "2024-01-01"
    assert _value("FIRSTDAYOFOFFSETMONTH(-1)", at, "America/New_York") == "2023-12-01"


@pytest.mark.parametrize(
    ("week_start", "first", "last"),
    [
        ("MONDAY", "2024-03-04", "2024-03-10"),
        ("SUNDAY", "2024-03-03", "2024-03-09"),
        ("SATURDAY", "2024-03-02", "2024-03-08"),
    ],
)
def test_previous_week_honours_the_week_start(week_start: WeekStart, first: str, last: str) -> None:
    # Wednesday 13 March 2024, noon in New York.
    at = "2024-03-13T16:00Z"
    assert _value("FIRSTDAYOFOFFSETWEEK(-1)", at, "America/New_York", week_start) == first
    assert _value("LASTDAYOFOFFSETWEEK(-1)", at, "America/New_York", week_start) == last


def test_formats() -> None:
    at = "2024-03-13T16:05:09Z"
    assert _value("TODAY(-1)|DATETIME", at, "Europe/London") == "2024-03-12T00:00:00"
    assert _value("TODAY(-1) | date", at, "Europe/London") == "2024-03-12"
    assert _value("TODAY(-1)|%Y%m%d", at, "Europe/London") == "20240312"
    assert _value("NOW()|%H:%M:%S %%", at, "Europe/London") == "16:05:09 %"
    assert _value("FIRSTDAYOFOFFSETMONTH(+2)", at, "UTC") == "2024-05-01"
    assert _value("LASTDAYOFOFFSETMONTH(-13)", at, "UTC") == "2023-02-28"
    assert _value("FIRSTDAYOFOFFSETMONTH(-3)", "2024-02-10T00:00Z", "UTC") == "2023-11-01"


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("TODAY(x)", 7, "expected ')'"),
        ("TODAY(-1", 9, "expected ')'"),
        ("TODAYS(1)", 1, "unknown date function TODAYS"),
        ("NOW(1)", 5, "NOW() takes no offset"),
        ("TODAY(-)", 8, "expected digits"),
        ("TODAY(1) x", 10, "only '|FORMAT' may follow"),
        ("TODAY(1)|WEEK", 10, "expected a format"),
        ("TODAY(1)|%Y-%j", 13, "%Y %m %d %H %M %S"),
        ("TODAY(9999)", 7, "out of range"),
    ],
)
def test_invalid_expressions_name_the_position(text: str, position: int, problem: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert caught.value.position == position
    assert problem in str(caught.value)


def test_parameters_are_checked_naming_the_field_and_position() -> None:
    with pytest.raises(ValueError, match=r"parameters\.range\[1\]: position 7: expected"):
        check_parameters({"range": ["TODAY(-7)", "TODAY(x)"], "n": 3})
    with pytest.raises(ValueError, match=r"parameters\.start: position 1: unknown"):
        check_parameters({"start": "LASTDAYOFMONTH(-1)"})
    check_parameters({"plain": "today", "sql": "x > 1", "escaped": "\\TODAY(1)"})


def test_parameters_render_at_the_instant_and_leave_the_rest() -> None:
    at = datetime(2024, 3, 10, 7, 30, tzinfo=UTC)  # 03:30 EDT on spring-forward day
    rendered = render_parameters(
        {
            "start": "FIRSTDAYOFOFFSETMONTH(-1)",
            "end": "lastdayofoffsetmonth(-1)",
            "days": ["TODAY(-1)", "TODAY(-2)|%Y%m%d"],
            "nested": {"week": "FIRSTDAYOFOFFSETWEEK(0)"},
            "literal": "\\TODAY(1)",
            "n": 100,
            "flag": True,
            "text": "hello",
        },
        at,
        ZoneInfo("America/New_York"),
        "SUNDAY",
    )
    assert rendered == {
        "start": "2024-02-01",
        "end": "2024-02-29",
        "days": ["2024-03-09", "20240308"],
        "nested": {"week": "2024-03-10"},
        "literal": "TODAY(1)",
        "n": 100,
        "flag": True,
        "text": "hello",
    }


# --- property tests against an independent computation ---------------------------------

_ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "America/Santiago", "UTC"]


def _independent_local_day(at: datetime, zone: str) -> date:
    """The local day by dateutil's own reading of the zone file."""
    zone_info = dateutil_tz.gettz(zone)
    assert zone_info is not None
    local: datetime = datetime.fromtimestamp(at.timestamp(), tz=zone_info)
    return local.date()


def _independent(function: str, offset: int, today: date, week_start: WeekStart) -> date:
    return date.fromordinal(_independent_any(function, offset, today, week_start).toordinal())


def _independent_any(function: str, offset: int, today: date, week_start: WeekStart) -> Any:
    if function == "TODAY":
        return today + relativedelta(days=offset)
    if function.endswith("WEEK"):
        # Count back day by day to the week start, then move whole weeks.
        start = today
        while start.strftime("%A").upper() != week_start:
            start -= timedelta(days=1)
        start += relativedelta(weeks=offset)
        return start if function.startswith("FIRST") else start + relativedelta(days=6)
    month_start = today.replace(day=1) + relativedelta(months=offset)
    if function.startswith("FIRST"):
        return month_start
    if function.startswith("FIFTEENTH"):
        return month_start + relativedelta(day=15)
    return month_start + relativedelta(months=1, days=-1)


@settings(max_examples=400, deadline=None)
@given(
    function=st.sampled_from([f for f in FUNCTIONS if f != "NOW"]),
    offset=st.integers(-400, 400),
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(_ZONES),
    week_start=st.sampled_from(WEEKDAYS),
)
def test_day_functions_match_an_independent_computation(
    function: str, offset: int, at: datetime, zone: str, week_start: WeekStart
) -> None:
    expected = _independent(function, offset, _independent_local_day(at, zone), week_start)
    got = parse_expression(f"{function}({offset})").render(at, ZoneInfo(zone), week_start)
    assert got == expected.isoformat()


@settings(max_examples=200, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(_ZONES),
)
def test_now_matches_an_independent_computation(at: datetime, zone: str) -> None:
    zone_info = dateutil_tz.gettz(zone)
    expected = datetime.fromtimestamp(at.timestamp(), tz=zone_info).replace(tzinfo=None)
    got = parse_expression("NOW()|DATETIME").render(at, ZoneInfo(zone))
    assert got == expected.replace(microsecond=0).isoformat(timespec="seconds")
