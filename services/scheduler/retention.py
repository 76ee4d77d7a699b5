"""What the scheduler keeps, kept only as long as asked: finished runs whose fire time is past
SCHEDULER_RUN_RETENTION_DAYS are deleted, by one replica at a time.

Deleting them weakens no promise: the firing loop only ever looks forward from a schedule's
next fire time, and a trigger fires at the moment it is asked, so no fire time a deleted run
held is fired again. What goes with them is history: re-running them, and their place in the
schedule's stats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg

from services.scheduler import store
from services.scheduler.runs import Clock
from services.scheduler.settings import SchedulerSettings
from shared.db.prune import delete_in_batches, turn
from shared.pause import pause

log = logging.getLogger(__name__)

TURN = "amc-scheduler-retention"


def wanted(settings: SchedulerSettings) -> bool:
    return settings.run_retention_days is not None


async def delete_old(pool: asyncpg.Pool[Any], settings: SchedulerSettings, now: Clock) -> int:
    """One retention pass; returns the runs it deleted (none when another replica's pass is
    under way)."""
    assert settings.run_retention_days is not None
    before = now() - timedelta(days=settings.run_retention_days)
    async with pool.acquire() as conn, turn(conn, TURN) as mine:
        if not mine:
            return 0
        deleted = await delete_in_batches(lambda batch: store.delete_finished(conn, before, batch))
    if deleted:
        log.info("retention: deleted %d finished run(s) fired before %s", deleted, before)
    return deleted


async def run(
    pool: Callable[[], asyncpg.Pool[Any]],
    settings: SchedulerSettings,
    now: Clock,
    stop: asyncio.Event,
) -> None:
    """A pass at start, then one every `retention_interval_s`, until `stop`."""
    while not stop.is_set():
        await delete_old(pool(), settings, now)
        await pause(stop, settings.retention_interval_s)
