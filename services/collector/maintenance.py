"""The periodic pass: admit queued collections, dispatch weeks whose retry backoff passed,
re-request weeks stuck in REQUESTED, finish collections left with nothing open.

Completion events drive almost everything; this loop only covers what has no event to wake
it (a backoff ending, a lost request) and refreshes gauges. Rows are claimed with
SKIP LOCKED, so any number of replicas can run it. A collection skipped because another
transaction held it is tried again every `LOCKED_RETRY_S` until the next pass: when that
transaction was a replica that died, its work is taken over as soon as PostgreSQL drops its
locks, not one pass later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from services.collector import store
from services.collector.engine import Engine
from services.collector.store import CollectionRow
from shared.outbox import Connection

log = logging.getLogger(__name__)

LOCKED_RETRY_S = 0.05

Action = Callable[[Connection, CollectionRow], Awaitable[None]]


class Maintenance:
    def __init__(self, pool: asyncpg.Pool[Any], engine: Engine) -> None:
        self.pool = pool
        self.engine = engine

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.engine.settings.tick_interval_s
        clock = asyncio.get_running_loop()
        while not stop.is_set():
            next_pass = clock.time() + interval
            try:
                skipped = await self.tick()
                next_pass = clock.time() + interval  # the pause is between passes
                while skipped and clock.time() + LOCKED_RETRY_S < next_pass:
                    if await _stopped(stop, LOCKED_RETRY_S):
                        return
                    skipped = [s for s in skipped if not await self._with_collection(*s)]
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("collector maintenance pass failed, will retry: %s", exc)
            await _stopped(stop, max(next_pass - clock.time(), 0.0))

    async def tick(self) -> list[tuple[UUID, Action]]:
        """One pass; returns the collections it skipped because they were locked."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.engine.admit(conn)
        async with self.pool.acquire() as conn:
            due = await store.collections_with_due_weeks(conn)
            stale = await store.collections_with_stale_requests(
                conn, self.engine.settings.reconcile_after_s
            )
            unsettled = await store.collections_unsettled(conn)
        work: list[tuple[UUID, Action]] = [
            (c, self._settle) for c in dict.fromkeys([*due, *unsettled])
        ]
        work += [(c, self._rerequest) for c in stale]
        skipped = [(c, action) for c, action in work if not await self._with_collection(c, action)]
        await self._refresh_gauges()
        return skipped

    async def _settle(self, conn: Connection, c: CollectionRow) -> None:
        await self.engine.settle(conn, c)

    async def _rerequest(self, conn: Connection, c: CollectionRow) -> None:
        await self.engine.rerequest_stale(conn, c)

    async def _with_collection(self, collection_id: UUID, action: Action) -> bool:
        """Run `action` on the collection under its lock; False when it was locked elsewhere
        (another replica or an event is on it right now) or is gone."""
        async with self.pool.acquire() as conn, conn.transaction():
            c = await store.lock_collection(conn, collection_id, skip_locked=True)
            if c is None:
                return False
            await action(conn, c)
            return True

    async def _refresh_gauges(self) -> None:
        metrics = self.engine.metrics
        async with self.pool.acquire() as conn:
            totals = await store.status_totals(conn)
            in_flight = await store.weeks_in_flight_total(conn)
        for status in ("QUEUED", "ACTIVE", "PAUSED"):
            metrics.collections.labels(status).set(totals.get(status, 0))
        metrics.weeks_in_flight.set(in_flight)


async def _stopped(stop: asyncio.Event, wait_s: float) -> bool:
    """Wait up to `wait_s` for stop; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), wait_s)
    return stop.is_set()
