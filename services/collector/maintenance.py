"""The periodic pass: admit queued collections, dispatch weeks whose retry backoff passed,
re-request weeks stuck in REQUESTED, finish collections left with nothing open.

Completion events drive almost everything; this loop only covers what has no event to wake
it (a backoff ending, a lost request) and refreshes gauges. Rows are claimed with
SKIP LOCKED, so any number of replicas can run it.
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


class Maintenance:
    def __init__(self, pool: asyncpg.Pool[Any], engine: Engine) -> None:
        self.pool = pool
        self.engine = engine

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.engine.settings.tick_interval_s
        while not stop.is_set():
            try:
                await self.tick()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("collector maintenance pass failed, will retry: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def tick(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.engine.admit(conn)
        async with self.pool.acquire() as conn:
            due = await store.collections_with_due_weeks(conn)
            stale = await store.collections_with_stale_requests(
                conn, self.engine.settings.reconcile_after_s
            )
            unsettled = await store.collections_unsettled(conn)
        for collection_id in dict.fromkeys([*due, *unsettled]):
            await self._with_collection(collection_id, self._settle)
        for collection_id in stale:
            await self._with_collection(collection_id, self._rerequest)
        await self._refresh_gauges()

    async def _settle(self, conn: Connection, c: CollectionRow) -> None:
        await self.engine.settle(conn, c)

    async def _rerequest(self, conn: Connection, c: CollectionRow) -> None:
        await self.engine.rerequest_stale(conn, c)

    async def _with_collection(
        self,
        collection_id: UUID,
        action: Callable[[Connection, CollectionRow], Awaitable[None]],
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # Locked elsewhere means another replica or an event is on it right now.
            c = await store.lock_collection(conn, collection_id, skip_locked=True)
            if c is not None:
                await action(conn, c)

    async def _refresh_gauges(self) -> None:
        metrics = self.engine.metrics
        async with self.pool.acquire() as conn:
            totals = await store.status_totals(conn)
            in_flight = await store.weeks_in_flight_total(conn)
        for status in ("QUEUED", "ACTIVE", "PAUSED"):
            metrics.collections.labels(status).set(totals.get(status, 0))
        metrics.weeks_in_flight.set(in_flight)
