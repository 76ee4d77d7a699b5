"""Firing ahead: schedules due a moment later are claimed and written before their fire time,
in a transaction committed at it, so nothing of their runs shows before it, and each fire
time still has exactly one run and one event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

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

FIRE = datetime(2024, 3, 15, 9, 0, tzinfo=UTC)
# Far more than the claim and writes take, so the transaction is still open when checked.
LEAD = timedelta(seconds=10)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(FIRE - timedelta(hours=1))


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    # The loop fires at the fire time itself; the test prepares ahead by hand.
    settings = settings_for(uid, database_url, kafka_bootstrap, fire_ahead_s=0)
    async with running_scheduler(settings, now=clock, consume=False) as running:
        yield running


async def test_a_fire_time_prepared_ahead_shows_at_its_fire_time_once(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await scheduler.create(cron="0 9 * * *")
    schedule_id = UUID(created["id"])
    clock.set(FIRE - LEAD)
    ahead = asyncio.create_task(scheduler.runtime.firer.fire_ahead(FIRE))
    pool = scheduler.runtime.pool

    async def claimed() -> bool:
        # Without taking a lock: the row version a claim locked (and an update replaced, both
        # uncommitted) carries the claiming transaction's id in xmax.
        xmax = await pool.fetchval(
            "SELECT xmax::text::bigint FROM schedules WHERE id = $1", schedule_id
        )
        return bool(xmax)

    async def next_fire_at() -> datetime:
        value: datetime = await pool.fetchval(
            "SELECT next_fire_at FROM schedules WHERE id = $1", schedule_id
        )
        return value

    await wait_until(claimed, what="the schedule to be claimed ahead of its fire time")
    runs_before = await scheduler.runs(created["id"])
    next_before = await next_fire_at()
    # Still claimed after those reads: they saw the open transaction's outside.
    assert await claimed()
    assert runs_before == []
    assert next_before == FIRE

    assert await ahead == 1
    [run] = await scheduler.runs(created["id"])
    assert (run["fire_time"], run["kind"], run["state"]) == (
        "2024-03-15T09:00:00Z",
        "SCHEDULED",
        "EMITTED",
    )
    assert await next_fire_at() == FIRE + timedelta(days=1)
    # Nothing is left for the loop at the fire time.
    assert await scheduler.runtime.firer.fire_due() == 0

    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        records = await reader.wait_for(lambda r: len(r) >= 1, timeout_s=20)
    dues = [ScheduleDue.from_bytes(r.value) for r in records]
    assert [(d.schedule_id, d.fire_time, d.run_id) for d in dues] == [
        (schedule_id, FIRE, UUID(run["id"]))
    ]
