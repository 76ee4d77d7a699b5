"""The scheduler benchmark's baseline: APScheduler 4 firing the same schedules at the same
instants, on the same PostgreSQL database.

Each schedule is a daily cron schedule (APScheduler's CronTrigger, at the fire time's hour,
minute and second in UTC, like the scheduler's "0 9 * * *" moved to the instant) in
APScheduler's SQLAlchemy data store (asyncpg driver, its own schema), one scheduler
(scheduling and running jobs) in this process with its local event broker: one process
needs no other, and 4.0.0a6's asyncpg event broker fails under anyio 4.16 (its NOTIFY
callback starts a task outside any task, which anyio refuses with NoEventLoopError). A job's
run stands for a `schedule.due` received: the job records when it ran. Fire times are whole
seconds, as cron's are. APScheduler is installed with the `bench` extra (pip install
'.[bench]'); without it the benchmark reports why and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

RAN: dict[str, float] = {}
_EXPECTED = {"count": 0}
_ALL_RAN = asyncio.Event()

# Adding schedules costs APScheduler a transaction each: they are added this many at a time,
# and the fire times leave room for adding them all (at the rate a probe measured) before
# the first is due.
CONCURRENT_ADDS = 8
PROBES = 20


async def fired(key: str) -> None:
    """The job: note when it ran."""
    RAN[key] = time.time()
    if len(RAN) >= _EXPECTED["count"]:
        _ALL_RAN.set()


def _asyncpg_url(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgres", "postgresql") else database_url


async def run_baseline(
    database_url: str,
    schema: str,
    count: int,
    fire_times_of: Callable[[datetime], list[datetime]],
) -> dict[str, Any]:
    """Fire `count` schedules at `fire_times_of(start)`; returns each fire time and when its
    job ran (as Unix times), or `{"unavailable": reason}`."""
    try:
        from apscheduler import AsyncScheduler, ConflictPolicy
        from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
        from apscheduler.eventbrokers.local import LocalEventBroker
        from apscheduler.triggers.cron import CronTrigger
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError as exc:
        return {"unavailable": f"APScheduler 4 is not installed ({exc}); pip install '.[bench]'"}

    RAN.clear()
    _EXPECTED["count"] = count
    _ALL_RAN.clear()
    engine = create_async_engine(_asyncpg_url(database_url), pool_size=CONCURRENT_ADDS + 2)
    try:
        store = SQLAlchemyDataStore(engine, schema=schema)
        broker = LocalEventBroker()
        async with AsyncScheduler(store, broker) as scheduler:
            # How long adding takes here, from a few schedules weeks away (then removed).
            probe_started = time.perf_counter()
            probes = [f"probe{i}" for i in range(PROBES)]
            for key in probes:
                await scheduler.add_schedule(
                    fired,
                    CronTrigger(month=(datetime.now(UTC).month % 12) + 1, day=1, timezone="UTC"),
                    id=key,
                    kwargs={"key": key},
                    conflict_policy=ConflictPolicy.replace,
                )
            per_add = (time.perf_counter() - probe_started) / PROBES
            for key in probes:
                await scheduler.remove_schedule(key)
            # Concurrent adds go at least as fast as one at a time: room for the slower.
            lead = 3.0 + count * per_add
            start = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
            fire_times = [t.replace(microsecond=0) for t in fire_times_of(start)]
            keys = [f"s{i}" for i in range(count)]
            gate = asyncio.Semaphore(CONCURRENT_ADDS)

            async def add(key: str, at: datetime) -> None:
                trigger = CronTrigger(
                    hour=at.hour, minute=at.minute, second=at.second, timezone="UTC"
                )
                async with gate:
                    await scheduler.add_schedule(
                        fired,
                        trigger,
                        id=key,
                        kwargs={"key": key},
                        conflict_policy=ConflictPolicy.replace,
                    )

            await asyncio.gather(*(add(k, t) for k, t in zip(keys, fire_times, strict=True)))
            seeded_ahead_s = (min(fire_times) - datetime.now(UTC)).total_seconds()
            await scheduler.start_in_background()
            wait_s = (max(fire_times) - datetime.now(UTC)).total_seconds() + 1200
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_ALL_RAN.wait(), timeout=wait_s)
            await scheduler.stop()
    finally:
        await engine.dispose()
    return {
        "fire": {k: t.timestamp() for k, t in zip(keys, fire_times, strict=True)},
        "ran": dict(RAN),
        "seeded_ahead_s": round(seeded_ahead_s, 3),
    }
