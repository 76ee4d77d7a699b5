"""Firing on time, and the catch-up policies after a simulated downtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contract import ScheduleDue
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
    wait_until,
)
from tests.support.kafka import TopicReader


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(datetime(2024, 3, 8, 12, 5, tzinfo=UTC))


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap, max_catch_up_runs=5)
    async with running_scheduler(settings, now=clock, consume=False) as running:
        yield running


def dues_of(records: list[Any], schedule_id: str) -> list[ScheduleDue]:
    events = [ScheduleDue.from_bytes(r.value) for r in records]
    return [e for e in events if str(e.schedule_id) == schedule_id]


async def test_fires_at_its_fire_time_with_its_window(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    clock.set(datetime(2024, 3, 15, 8, 59, 59, tzinfo=UTC))
    created = await scheduler.create(
        timezone="Europe/Berlin", cron="0 10 * * *", window={"type": "LOOKBACK", "days": 7}
    )
    assert created["next_fire_at"] == "2024-03-15T09:00:00Z"
    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        records = await reader.wait_for(lambda r: bool(dues_of(r, created["id"])), timeout_s=20)
    [due] = dues_of(records, created["id"])
    assert due.fire_time == datetime(2024, 3, 15, 9, 0, tzinfo=UTC)
    assert due.origin.kind == "schedule"
    assert due.origin.id == str(due.run_id)
    assert due.run.workflow_id == "wf-daily"
    assert due.run.parameters == {"campaign": "c-1"}
    assert due.run.time_window_type == "EXPLICIT"
    # Fired on 15 March local: the 7 days whose last is 2 days before, 7-13 March, Berlin time.
    assert due.run.time_window_start == datetime(2024, 3, 7)
    assert due.run.time_window_end == datetime(2024, 3, 14)
    assert due.run.time_window_time_zone == "Europe/Berlin"
    assert records[0].key == created["id"].encode()

    [run] = await scheduler.runs(created["id"])
    assert (run["id"], run["kind"], run["state"]) == (str(due.run_id), "SCHEDULED", "EMITTED")
    after = await scheduler.get(created["id"])
    assert after["next_fire_at"] == "2024-03-16T09:00:00Z"
    assert after["last_fire_at"] == "2024-03-15T09:00:00Z"


def _at(hour: int, minute: int) -> datetime:
    return datetime(2024, 3, 8, hour, minute, tzinfo=UTC)


# Down from 09:00 to 12:05: the fire times 09:00, 09:10, ..., 12:00 (19) were all missed.
MISSED = [_at(9, 0) + timedelta(minutes=10 * i) for i in range(19)]


@pytest.mark.parametrize(
    ("policy", "fired", "reason"),
    [
        ("latest", [_at(12, 0)], "a later fire time was missed too"),
        ("all", MISSED[:5], "over the catch-up limit of 5 runs"),
        ("none", [], "catch-up policy is none"),
    ],
)
async def test_downtime_follows_the_catch_up_policy(
    scheduler: Scheduler, policy: str, fired: list[datetime], reason: str
) -> None:
    created = await scheduler.create(cron="*/10 * * * *", catch_up_policy=policy)
    assert created["next_fire_at"] == "2024-03-08T12:10:00Z"
    await scheduler.set_next_fire(created["id"], _at(9, 0))

    async def all_recorded() -> bool:
        return len(await scheduler.runs(created["id"])) == len(MISSED)

    await wait_until(all_recorded, what="every missed fire time to be recorded")
    runs = sorted(await scheduler.runs(created["id"]), key=lambda r: r["fire_time"])
    assert [datetime.fromisoformat(r["fire_time"]) for r in runs] == MISSED
    emitted = [r for r in runs if r["state"] == "EMITTED"]
    skipped = [r for r in runs if r["state"] == "SKIPPED"]
    assert [datetime.fromisoformat(r["fire_time"]) for r in emitted] == fired
    assert all(r["kind"] == "CATCH_UP" for r in runs)
    assert len(skipped) == len(MISSED) - len(fired)
    assert all(reason in r["skip_reason"] for r in skipped)
    assert (await scheduler.get(created["id"]))["next_fire_at"] == "2024-03-08T12:10:00Z"

    if fired:
        topic = scheduler.topics.name(ScheduleDue.topic)
        async with TopicReader(scheduler.bootstrap, topic) as reader:
            records = await reader.wait_for(
                lambda r: len(dues_of(r, created["id"])) >= len(fired), timeout_s=20
            )
        dues = dues_of(records, created["id"])
        assert sorted(d.fire_time for d in dues) == fired
        assert {str(d.run_id) for d in dues} == {r["id"] for r in emitted}
    # Nothing is left to fire until 12:10.
    assert await scheduler.runtime.firer.fire_due() == 0


async def test_latest_skips_a_missed_fire_time_older_than_the_window(
    scheduler: Scheduler,
) -> None:
    created = await scheduler.create(cron="0 9 * * *")
    await scheduler.set_next_fire(created["id"], _at(9, 0))

    async def recorded() -> bool:
        return bool(await scheduler.runs(created["id"]))

    await wait_until(recorded, what="the missed fire time to be recorded")
    [run] = await scheduler.runs(created["id"])
    assert run["state"] == "SKIPPED"
    assert "older than the catch-up window" in run["skip_reason"]
    assert (await scheduler.get(created["id"]))["next_fire_at"] == "2024-03-09T09:00:00Z"


async def test_on_time_fire_supersedes_missed_ones_under_latest(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    clock.set(_at(12, 0) + timedelta(seconds=20))
    created = await scheduler.create(cron="*/10 * * * *")
    await scheduler.set_next_fire(created["id"], _at(11, 30))

    async def recorded() -> bool:
        return len(await scheduler.runs(created["id"])) == 4

    await wait_until(recorded, what="four runs")
    runs = sorted(await scheduler.runs(created["id"]), key=lambda r: r["fire_time"])
    assert [(r["kind"], r["state"]) for r in runs] == [
        ("CATCH_UP", "SKIPPED"),
        ("CATCH_UP", "SKIPPED"),
        ("CATCH_UP", "SKIPPED"),
        ("SCHEDULED", "EMITTED"),
    ]
