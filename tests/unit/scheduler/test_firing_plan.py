"""The firing plan of one claimed schedule (services.scheduler.logic): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from services.scheduler.logic import (
    FiringConfig,
    due_fire_times,
    failure_count_after,
    plan_firing,
)
from services.scheduler.timing import ScheduleSpec

CFG = FiringConfig(
    late_grace=timedelta(seconds=60),
    catch_up_window=timedelta(hours=1),
    max_catch_up_runs=3,
    max_enumerated=50,
)
EVERY_10 = ScheduleSpec(timezone="UTC", cron="*/10 * * * *")
NOON = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)


def test_one_on_time_fire_time_fires_and_advances() -> None:
    plan = plan_firing(
        EVERY_10,
        NOON,
        NOON + timedelta(seconds=1),
        catch_up="latest",
        overlap="skip",
        running=False,
        buffered=False,
        cfg=CFG,
    )
    assert [(r.fire_time, r.kind, r.state) for r in plan.runs] == [(NOON, "SCHEDULED", "EMITTED")]
    assert plan.next_fire_at == NOON + timedelta(minutes=10)


def test_unhashable_spec_weekly_preset_still_plans() -> None:
    weekly = ScheduleSpec.model_validate(
        {"timezone": "UTC", "preset": {"kind": "weekly", "weekdays": ["FRI"], "at": "12:00"}}
    )
    plan = plan_firing(
        weekly,
        NOON,
        NOON,
        catch_up="latest",
        overlap="skip",
        running=False,
        buffered=False,
        cfg=CFG,
    )
    assert plan.next_fire_at == NOON + timedelta(days=7)


@pytest.mark.parametrize(
    ("overlap", "states"),
    [("skip", ["SKIPPED"]), ("allow", ["EMITTED"]), ("buffer_one", ["BUFFERED"])],
)
def test_overlap_with_a_run_in_flight(overlap: str, states: list[str]) -> None:
    plan = plan_firing(
        EVERY_10,
        NOON,
        NOON,
        catch_up="latest",
        overlap=overlap,  # type: ignore[arg-type]
        running=True,
        buffered=False,
        cfg=CFG,
    )
    assert [r.state for r in plan.runs] == states


def test_catch_up_all_is_bounded_and_on_time_supersedes_under_latest() -> None:
    now = NOON + timedelta(seconds=30)
    start = NOON - timedelta(minutes=50)
    every = plan_firing(
        EVERY_10,
        start,
        now,
        catch_up="all",
        overlap="skip",
        running=False,
        buffered=False,
        cfg=CFG,
    )
    assert [(r.kind, r.state) for r in every.runs] == [("CATCH_UP", "EMITTED")] * 3 + [
        ("CATCH_UP", "SKIPPED")
    ] * 2 + [("SCHEDULED", "EMITTED")]
    latest = plan_firing(
        EVERY_10,
        start,
        now,
        catch_up="latest",
        overlap="skip",
        running=False,
        buffered=False,
        cfg=CFG,
    )
    assert [r.state for r in latest.runs] == ["SKIPPED"] * 5 + ["EMITTED"]


def test_a_very_long_outage_keeps_the_oldest_and_the_recent_fire_times() -> None:
    now = NOON + timedelta(days=2)
    due, upcoming, unrecorded = due_fire_times(EVERY_10, NOON, now, CFG)
    assert unrecorded
    assert due[0] == NOON
    assert due[-1] == now
    assert all(a < b for a, b in pairwise(due))
    assert upcoming == now + timedelta(minutes=10)


def test_failure_streak() -> None:
    assert failure_count_after("FAILED", 2) == 3
    assert failure_count_after("TIMED_OUT", 2) == 3
    assert failure_count_after("SUCCEEDED", 4) == 0
    assert failure_count_after("CANCELLED", 4) == 4
