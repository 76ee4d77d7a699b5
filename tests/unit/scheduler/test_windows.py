"""Time windows of fired runs: AMC relative types, and lookbacks in the schedule's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.scheduler.timing import (
    AmcWindow,
    ExpressionWindow,
    LookbackWindow,
    WindowRule,
    window_for,
)
from shared.contract.values import TimeWindowType, WorkflowRun

_RULE: TypeAdapter[WindowRule] = TypeAdapter(WindowRule)


@pytest.mark.parametrize(
    "window_type", ["MOST_RECENT_DAY", "MOST_RECENT_WEEK", "CURRENT_MONTH", "PREVIOUS_MONTH"]
)
def test_amc_window_types_pass_through(window_type: str) -> None:
    rule = _RULE.validate_python({"type": window_type})
    fired = datetime(2024, 3, 15, 10, tzinfo=UTC)
    assert window_for(rule, fired, "UTC") == (TimeWindowType(window_type), None, None)


def test_lookback_covers_whole_local_days_ending_lag_days_before_the_fire_date() -> None:
    rule = LookbackWindow(type="LOOKBACK", days=7)
    # 06:00 on 15 March in New York; default lag 2: days 7-13 March.
    fired = datetime(2024, 3, 15, 10, tzinfo=UTC)
    window = window_for(rule, fired, "America/New_York")
    assert window == (
        TimeWindowType.EXPLICIT,
        datetime(2024, 3, 7),
        datetime(2024, 3, 14),
    )


def test_lookback_uses_the_local_fire_date() -> None:
    rule = LookbackWindow(type="LOOKBACK", days=1, lag_days=0)
    # 23:30 UTC on 31 Jan is already 1 Feb in Tokyo, still 31 Jan in New York.
    fired = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)
    assert window_for(rule, fired, "Asia/Tokyo")[1:] == (datetime(2024, 2, 1), datetime(2024, 2, 2))
    assert window_for(rule, fired, "America/New_York")[1:] == (
        datetime(2024, 1, 31),
        datetime(2024, 2, 1),
    )


def test_lookback_across_a_leap_day_and_year_end() -> None:
    rule = LookbackWindow(type="LOOKBACK", days=3, lag_days=1)
    assert window_for(rule, datetime(2024, 3, 2, 12, tzinfo=UTC), "UTC")[1:] == (
        datetime(2024, 2, 28),
        datetime(2024, 3, 2),
    )
    assert window_for(rule, datetime(2025, 1, 1, 12, tzinfo=UTC), "UTC")[1:] == (
        datetime(2024, 12, 29),
        datetime(2025, 1, 1),
    )


def test_lookback_fits_the_event_contract() -> None:
    window = window_for(
        LookbackWindow(type="LOOKBACK", days=30), datetime(2024, 3, 15, tzinfo=UTC), "Europe/London"
    )
    run = WorkflowRun(
        user_id="u",
        instance_id="i",
        advertiser_id="a",
        marketplace_id="m",
        workflow_id="w",
        time_window_type=window.type,
        time_window_start=window.start,
        time_window_end=window.end,
        time_window_time_zone="Europe/London",
    )
    assert run.time_window_end is not None
    assert run.time_window_start is not None
    assert (run.time_window_end - run.time_window_start).days == 30


@pytest.mark.parametrize(
    ("rule", "location"),
    [
        ({"type": "YESTERDAY"}, ()),
        ({"type": "LOOKBACK", "days": 0}, ("LOOKBACK", "days")),
        ({"type": "LOOKBACK", "days": 7, "lag_days": -1}, ("LOOKBACK", "lag_days")),
        ({"type": "LOOKBACK"}, ("LOOKBACK", "days")),
    ],
)
def test_invalid_rules_name_the_field(rule: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as raised:
        _RULE.validate_python(rule)
    assert raised.value.errors()[0]["loc"] == location


def test_window_for_checks_its_arguments() -> None:
    rule = AmcWindow(type="MOST_RECENT_DAY")
    lookback = LookbackWindow(type="LOOKBACK", days=1)
    with pytest.raises(ValueError, match="fire_time must be timezone-aware"):
        window_for(lookback, datetime(2024, 1, 1), "UTC")
    with pytest.raises(ValueError, match="unknown time zone"):
        window_for(lookback, datetime(2024, 1, 1, tzinfo=UTC), "Nowhere/Land")
    assert (
        window_for(rule, datetime(2024, 1, 1, tzinfo=UTC), "UTC").type
        is TimeWindowType.MOST_RECENT_DAY
    )


class TestExpressionWindow:
    def test_previous_calendar_month_in_new_york(self) -> None:
        rule = ExpressionWindow(
            type="EXPRESSION", start="FIRSTDAYOFOFFSETMONTH(-1)", end="FIRSTDAYOFOFFSETMONTH(0)"
        )
        # 1 April 2024 03:00 UTC is still 31 March in New York: the previous month is February.
        fire = datetime(2024, 4, 1, 3, 0, tzinfo=UTC)
        window = window_for(rule, fire, "America/New_York")
        assert window == (TimeWindowType.EXPLICIT, datetime(2024, 2, 1), datetime(2024, 3, 1))
        assert window_for(rule, fire, "Europe/London").start == datetime(2024, 3, 1)

    def test_invalid_bounds_are_refused_naming_the_position(self) -> None:
        with pytest.raises(ValidationError, match=r"position 7"):
            ExpressionWindow(type="EXPRESSION", start="TODAY(x)", end="TODAY()")
        with pytest.raises(ValidationError, match=r"takes no format"):
            ExpressionWindow(type="EXPRESSION", start="TODAY(-1)|DATE", end="TODAY()")

    def test_an_end_not_after_the_start_fails_at_that_fire_time(self) -> None:
        rule = ExpressionWindow(type="EXPRESSION", start="TODAY()", end="TODAY(-1)")
        with pytest.raises(ValueError, match="is not after start"):
            window_for(rule, datetime(2024, 4, 1, tzinfo=UTC), "UTC")
