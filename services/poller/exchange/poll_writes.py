"""Polls that found an execution where it was are written together, a batch per statement.

Most polls learn nothing new: AMC says PENDING or RUNNING, as it did last time. Such a poll
only moves the row's poll count and next poll time and gives its lease back; no event is due.
Each poll waits for its batch to be written (the row stays leased, and renewed, meanwhile),
so the row is never claimed again before its next poll time is stored. A batch goes out
`window_s` after its first poll joined it; polls arriving while one is written form the
next batch.

Killed before a batch is written, a replica loses only that bookkeeping: the rows keep their
old next poll time under a lease that runs out, and are polled once more by whoever claims
them then (a read at AMC, nothing submitted or announced twice). A change of status never
waits here: it is written with its events in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any
from uuid import UUID

import asyncpg

from services.poller import store
from services.poller.store import PollSeen


class PollWrites:
    def __init__(self, pool: asyncpg.Pool[Any], owner: str, window_s: float) -> None:
        self._pool = pool
        self._owner = owner
        self._window_s = window_s
        self._pending: list[tuple[PollSeen, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, poll: PollSeen) -> bool:
        """Store the poll with the next batch; False when the lease was lost meanwhile (the
        new owner acts on its own view)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((poll, done))
        if self._writer is None:
            # In an empty context: the batch belongs to no single poll's trace (its query is
            # then an orphan call, which the sampler drops).
            self._writer = asyncio.create_task(
                self._write_batches(), name="poller:poll-writes", context=contextvars.Context()
            )
        return await done

    async def _write_batches(self) -> None:
        try:
            await asyncio.sleep(self._window_s)
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write(batch)
        finally:
            self._writer = None
            # Cancelled (shutdown): the waiting polls end unwritten, as on a crash.
            for _, done in self._pending:
                done.cancel()
            self._pending = []

    async def _write(self, batch: list[tuple[PollSeen, asyncio.Future[bool]]]) -> None:
        try:
            async with self._pool.acquire() as conn:
                kept: set[UUID] = await store.record_polls(
                    conn, self._owner, [poll for poll, _ in batch]
                )
        except Exception as exc:
            # Each poll's job fails with the batch (its row is retried when its lease ends).
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:
            for _, done in batch:
                done.cancel()
            raise
        for poll, done in batch:
            if not done.done():
                done.set_result(poll.execution_id in kept)
