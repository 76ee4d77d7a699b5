"""Two replicas firing the same schedules: each fire time yields exactly one schedule.due."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from services.scheduler import store
from services.scheduler.operations import first_fire, values_of
from services.scheduler.schemas import ScheduleCreate
from shared.contract import ScheduleDue
from tests.integration.scheduler.harness import (
    ShiftedClock,
    running_scheduler,
    schedule_body,
    settings_for,
    wait_until,
)
from tests.support.kafka import TopicReader

FIRE = datetime(2024, 3, 8, 9, 0, tzinfo=UTC)

# Different spellings of the same instant, 09:00 UTC on Friday 8 March 2024.
WHENS: list[dict[str, Any]] = [
    {"timezone": "UTC", "cron": "0 9 * * *"},
    {"timezone": "UTC", "cron": None, "preset": {"kind": "daily", "at": "09:00"}},
    {"timezone": "Europe/Berlin", "cron": "0 10 * * MON-FRI"},
    {"timezone": "America/New_York", "cron": "0 4 8 3 *"},
    {
        "timezone": "Asia/Kolkata",
        "cron": None,
        "preset": {"kind": "weekly", "weekdays": ["FRI"], "at": "14:30"},
    },
]


async def test_two_replicas_emit_exactly_one_event_per_fire_time(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    clock = ShiftedClock(datetime(2024, 3, 8, 8, 0, tzinfo=UTC))
    # Small claim batches, so the two replicas take turns within the burst.
    settings = settings_for(uid, database_url, kafka_bootstrap, claim_batch_size=25)
    async with (
        running_scheduler(settings, now=clock) as first,
        running_scheduler(settings, now=clock, consume=False) as second,
    ):
        ids = set()
        now = clock()
        # Written in one transaction (the API's own create is exercised elsewhere).
        async with first.runtime.pool.acquire() as conn, conn.transaction():
            for i in range(500):
                body = ScheduleCreate.model_validate(schedule_body(**WHENS[i % len(WHENS)]))
                row = await store.insert_schedule(
                    conn, uuid4(), values_of(body), first_fire(body.spec(), now), now
                )
                ids.add(str(row.id))
        assert {
            r["next_fire_at"]
            for r in await first.runtime.pool.fetch("SELECT next_fire_at FROM schedules")
        } == {FIRE}

        clock.set(datetime(2024, 3, 8, 8, 59, 59, tzinfo=UTC))
        first.runtime.firer.wake()
        second.runtime.firer.wake()

        async def all_sent() -> bool:
            pending = await first.runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )
            runs = await first.runtime.pool.fetchval("SELECT count(*) FROM schedule_runs")
            return bool(runs == 500 and pending == 0)

        await wait_until(all_sent, timeout_s=60, what="500 runs written and relayed")
        topic = first.topics.name(ScheduleDue.topic)
        async with TopicReader(kafka_bootstrap, topic) as reader:
            await reader.wait_count(500, timeout_s=30)
            # Everything is relayed already: one more poll would show any extra record.
            await asyncio.sleep(0.5)
            await reader.poll()
            records = reader.records

    dues = [ScheduleDue.from_bytes(r.value) for r in records]
    assert len(records) == 500
    assert {str(d.schedule_id) for d in dues} == ids
    assert {d.fire_time for d in dues} == {FIRE}
    assert len({d.run_id for d in dues}) == 500
    assert len({d.event_id for d in dues}) == 500
