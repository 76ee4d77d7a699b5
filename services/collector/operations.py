"""Operator actions on collections, each one transaction with the collection row locked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from services.collector import store
from services.collector.engine import Engine
from services.collector.logic import CollectionStatus, Granularity, WeekStartDay, split_range
from services.collector.store import CollectionRow
from shared.outbox import Connection
from shared.telemetry import trace_carrier


class NotFoundError(Exception):
    pass


class ConflictError(Exception):
    """The action does not apply to the collection in its current state."""


@dataclass(frozen=True)
class NewCollection:
    run: dict[str, Any]
    start_date: date
    end_date: date
    week_start_day: WeekStartDay
    time_zone: str
    max_in_flight: int
    max_attempts: int
    granularity: Granularity = Granularity.WEEK
    daily_share: int = 0


class Operations:
    def __init__(self, pool: asyncpg.Pool[Any], engine: Engine) -> None:
        self.pool = pool
        self.engine = engine

    async def create(self, new: NewCollection) -> UUID:
        """Stores the creating call's trace context (the API's SERVER span): each week is a
        trace of its own, linked to it."""
        collection_id = uuid.uuid4()
        weeks = split_range(new.start_date, new.end_date, new.granularity, new.week_start_day)
        async with self.pool.acquire() as conn, conn.transaction():
            await store.insert_collection(
                conn,
                collection_id=collection_id,
                run=new.run,
                start_date=new.start_date,
                end_date=new.end_date,
                week_start_day=new.week_start_day.value,
                time_zone=new.time_zone,
                max_in_flight=new.max_in_flight,
                max_attempts=new.max_attempts,
                weeks=[(uuid.uuid4(), w) for w in weeks],
                trace_context=trace_carrier(),
                granularity=new.granularity.value,
                daily_share=new.daily_share,
            )
            await self.engine.admit(conn)
        return collection_id

    async def pause(self, collection_id: UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            c = await self._lock(conn, collection_id)
            if c.status is CollectionStatus.PAUSED:
                return
            if c.status not in (CollectionStatus.QUEUED, CollectionStatus.ACTIVE):
                raise ConflictError(f"cannot pause a {c.status.value} collection")
            await store.set_status(conn, c.id, CollectionStatus.PAUSED)
            if c.status is CollectionStatus.ACTIVE:
                await self.engine.admit(conn)

    async def resume(self, collection_id: UUID) -> None:
        """Back in the queue at its original place; it dispatches once it gets a slot."""
        async with self.pool.acquire() as conn, conn.transaction():
            c = await self._lock(conn, collection_id)
            if c.status in (CollectionStatus.QUEUED, CollectionStatus.ACTIVE):
                return
            if c.status is not CollectionStatus.PAUSED:
                raise ConflictError(f"cannot resume a {c.status.value} collection")
            await store.set_status(conn, c.id, CollectionStatus.QUEUED)
            await self.engine.admit(conn)
            await self._settle(conn, c.id)

    async def cancel(self, collection_id: UUID) -> None:
        """No new weeks; weeks in flight finish and are recorded, then it is CANCELLED."""
        async with self.pool.acquire() as conn, conn.transaction():
            c = await self._lock(conn, collection_id)
            if c.status is CollectionStatus.CANCELLED:
                return
            if c.status.is_finished:
                raise ConflictError(f"cannot cancel a {c.status.value} collection")
            await store.cancel_pending_weeks(conn, c.id)
            await store.set_status(conn, c.id, CollectionStatus.CANCELLED)
            await self._settle(conn, c.id)
            if c.status is CollectionStatus.ACTIVE:
                await self.engine.admit(conn)

    async def retry(self, collection_id: UUID, week_ids: Sequence[UUID] | None) -> int:
        """FAILED weeks (all, or the chosen ones) get the collection's attempts again."""
        async with self.pool.acquire() as conn, conn.transaction():
            c = await self._lock(conn, collection_id)
            if c.status is CollectionStatus.CANCELLED:
                raise ConflictError("cannot retry weeks of a CANCELLED collection")
            if week_ids is not None:
                wrong = await store.weeks_not_failed(conn, c.id, week_ids)
                if wrong:
                    raise ConflictError("only FAILED weeks can be retried: " + ", ".join(wrong))
            n = await store.reset_failed_weeks(conn, c.id, week_ids, c.max_attempts)
            if n == 0:
                raise ConflictError("the collection has no FAILED weeks to retry")
            if c.status.is_finished:
                # A finished collection queues again, behind the collections already waiting.
                await store.set_status(conn, c.id, CollectionStatus.QUEUED, requeue=True)
                await self.engine.admit(conn)
            else:
                await self._settle(conn, c.id)
            return n

    async def _lock(self, conn: Connection, collection_id: UUID) -> CollectionRow:
        c = await store.lock_collection(conn, collection_id)
        if c is None:
            raise NotFoundError(f"collection {collection_id} not found")
        return c

    async def _settle(self, conn: Connection, collection_id: UUID) -> None:
        c = await store.get_collection(conn, collection_id)
        assert c is not None
        await self.engine.settle(conn, c)
