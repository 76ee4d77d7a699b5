"""Date expressions in a schedule's parameters and window: refused when invalid, previewed,
and sent as concrete values that equal the preview."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from shared.contract import ScheduleDue
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    schedule_body,
    settings_for,
)
from tests.integration.scheduler.test_firing import dues_of
from tests.support.kafka import TopicReader

PARAMETERS = {
    "month_start": "FIRSTDAYOFOFFSETMONTH(-1)",
    "month_end": "LASTDAYOFOFFSETMONTH(-1)",
    "mid_month": "FIFTEENTHDAYOFOFFSETMONTH(-1)|%Y%m%d",
    "campaign_start": "TODAY(-7)|DATETIME",
    "week": ["FIRSTDAYOFOFFSETWEEK(-1)", "LASTDAYOFOFFSETWEEK(-1)"],
    "literal": "\\TODAY(1)",
    "limit": 10,
}


# 1 April 2024 03:59:50 UTC is 23:59:50 on 31 March in New York: ten seconds before the fire
# time, so a slow start or create on a busy machine does not carry it past midnight.
BEFORE_FIRE = datetime(2024, 4, 1, 3, 59, 50, tzinfo=UTC)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(BEFORE_FIRE)


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock, consume=False) as running:
        yield running


async def test_a_schedule_sends_the_values_its_preview_showed(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    clock.set(BEFORE_FIRE)  # the start-up took its time; the fire is ten seconds off again
    # Fires at midnight in New York: 00:00 EDT on 1 April is 04:00 UTC; in UTC it would be
    # 1 April already at 00:00 UTC, four hours earlier.
    created = await scheduler.create(
        cron="0 0 * * *",
        timezone="America/New_York",
        parameters=PARAMETERS,
        week_start="SUNDAY",
        window={
            "type": "EXPRESSION",
            "start": "FIRSTDAYOFOFFSETMONTH(-1)",
            "end": "FIRSTDAYOFOFFSETMONTH(0)",
        },
    )
    assert created["week_start"] == "SUNDAY"
    preview = (
        await scheduler.http.get(
            f"/schedules/{created['id']}/preview",
            params={"count": 2, "after": "2024-04-01T03:00:00Z"},
        )
    ).json()["items"]
    first = preview[0]
    assert first["utc"] == "2024-04-01T04:00:00+00:00"
    assert first["time_window_start"] == "2024-03-01T00:00:00"
    assert first["time_window_end"] == "2024-04-01T00:00:00"
    assert first["parameters"] == {
        "month_start": "2024-03-01",
        "month_end": "2024-03-31",
        "mid_month": "20240315",
        "campaign_start": "2024-03-25T00:00:00",
        # Fired Monday 1 April; weeks start on Sunday: the previous week is 24-30 March.
        "week": ["2024-03-24", "2024-03-30"],
        "literal": "TODAY(1)",
        "limit": 10,
    }
    assert preview[1]["parameters"]["campaign_start"] == "2024-03-26T00:00:00"

    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        records = await reader.wait_for(lambda r: bool(dues_of(r, created["id"])), timeout_s=40)
    [due] = dues_of(records, created["id"])
    assert due.fire_time.isoformat() == first["utc"]
    assert due.run.parameters == first["parameters"]
    assert due.run.time_window_start == datetime(2024, 3, 1)
    assert due.run.time_window_end == datetime(2024, 4, 1)
    assert due.run.time_window_time_zone == "America/New_York"

    [run] = await scheduler.runs(created["id"])
    assert run["run"]["parameters"] == first["parameters"]
    assert run["run"]["time_window_start"] == first["time_window_start"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"parameters": {"start": "TODAY(x)"}}, "parameters", "parameters.start: position 7"),
        (
            {"parameters": {"days": ["TODAY(-1)", "LASTDAYOFMONTH(-1)"]}},
            "parameters",
            "parameters.days[1]: position 1: unknown date function LASTDAYOFMONTH",
        ),
        (
            {"window": {"type": "EXPRESSION", "start": "TODAY(-7", "end": "TODAY()"}},
            "window",
            "position 9",
        ),
        (
            {"window": {"type": "EXPRESSION", "start": "TODAY()", "end": "TODAY(-1)"}},
            "window",
            "is not after start",
        ),
    ],
)
async def test_an_invalid_expression_is_refused_naming_the_field_and_position(
    scheduler: Scheduler, changes: dict[str, object], field: str, message: str
) -> None:
    response = await scheduler.http.post("/schedules", json=schedule_body(**changes))
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(field in d["loc"] and message in d["msg"] for d in details), details


async def test_the_spec_preview_evaluates_parameters_and_window(scheduler: Scheduler) -> None:
    response = await scheduler.http.post(
        "/schedules/preview",
        json={
            "cron": "30 1 * * *",
            "timezone": "Europe/London",
            "after": "2024-10-26T12:00:00Z",
            "count": 2,
            "parameters": {"day": "TODAY(-1)", "at": "NOW()"},
            "window": {"type": "EXPRESSION", "start": "TODAY(-1)", "end": "TODAY()"},
        },
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    # 27 October: 01:30 happens twice in London; a one-time-a-day schedule fires in BST only.
    assert [i["local"] for i in items] == [
        "2024-10-27T01:30:00+01:00",
        "2024-10-28T01:30:00+00:00",
    ]
    assert items[0]["parameters"] == {"day": "2024-10-26", "at": "2024-10-27T01:30:00"}
    assert (items[1]["time_window_start"], items[1]["time_window_end"]) == (
        "2024-10-27T00:00:00",
        "2024-10-28T00:00:00",
    )
