"""Catch-up of missed fire times: latest, all, none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.timing import CatchUpPlan, plan_catch_up

_NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _ago(minutes: int) -> datetime:
    return _NOW - timedelta(minutes=minutes)


def test_latest_fires_the_most_recent_within_the_window() -> None:
    plan = plan_catch_up("latest", [_ago(30), _ago(150), _ago(90)], _NOW)
    assert plan.fire == [_ago(30)]
    assert [moment for moment, _ in plan.skipped] == [_ago(150), _ago(90)]
    assert all("a later fire time was missed too" in reason for _, reason in plan.skipped)


def test_latest_skips_everything_outside_the_window() -> None:
    plan = plan_catch_up("latest", [_ago(61), _ago(120)], _NOW)
    assert plan.fire == []
    assert plan.skipped[-1] == (
        _ago(61),
        "older than the catch-up window of 1:00:00 (policy latest)",
    )


def test_latest_window_edge_is_inclusive_and_configurable() -> None:
    assert plan_catch_up("latest", [_ago(60)], _NOW).fire == [_ago(60)]
    assert plan_catch_up("latest", [_ago(60)], _NOW, window=timedelta(minutes=59)).fire == []
    assert plan_catch_up("latest", [_ago(0)], _NOW, window=timedelta(0)).fire == [_NOW]


def test_all_fires_oldest_first_up_to_the_limit() -> None:
    missed = [_ago(minutes) for minutes in (10, 50, 20, 40, 30)]
    plan = plan_catch_up("all", missed, _NOW, max_runs=3)
    assert plan.fire == [_ago(50), _ago(40), _ago(30)]
    assert plan.skipped == [
        (_ago(20), "over the catch-up limit of 3 runs (policy all)"),
        (_ago(10), "over the catch-up limit of 3 runs (policy all)"),
    ]
    assert plan_catch_up("all", missed, _NOW).fire == sorted(missed)


def test_none_skips_all() -> None:
    plan = plan_catch_up("none", [_ago(5), _ago(1)], _NOW)
    assert plan.fire == []
    assert plan.skipped == [
        (_ago(5), "catch-up policy is none"),
        (_ago(1), "catch-up policy is none"),
    ]


@pytest.mark.parametrize("policy", ["latest", "all", "none"])
def test_nothing_missed_plans_nothing(policy: str) -> None:
    assert plan_catch_up(policy, [], _NOW) == CatchUpPlan()  # type: ignore[arg-type]


def test_duplicates_count_once_and_zones_do_not_matter() -> None:
    same = _ago(5).astimezone(ZoneInfo("America/New_York"))
    plan = plan_catch_up("all", [_ago(5), same], _NOW)
    assert plan.fire == [_ago(5)]
    assert plan.fire[0].tzinfo is UTC


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="is after now"):
        plan_catch_up("latest", [_NOW + timedelta(seconds=1)], _NOW)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        plan_catch_up("latest", [], datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="missed must be timezone-aware"):
        plan_catch_up("latest", [datetime(2024, 1, 1)], _NOW)
    with pytest.raises(ValueError, match="max_runs must be at least 1"):
        plan_catch_up("all", [], _NOW, max_runs=0)
