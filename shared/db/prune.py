"""Deleting what is past its retention: in bounded batches, by one replica at a time.

Every service that keeps history for a while prunes it the same way: a statement deletes at
most `BATCH` rows (read through an index on age, so a pass costs what it deletes, and no
statement holds many row locks or one long transaction), repeated until a batch comes back
short; and a pass runs on one replica at a time, the others skipping their turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.outbox import Connection

# Rows one statement deletes at most.
BATCH = 5000


async def delete_in_batches(delete: Callable[[int], Awaitable[int]]) -> int:
    """Call `delete(BATCH)` (it deletes at most that many rows and returns how many it did)
    until it deletes fewer; returns the rows deleted in all."""
    batch = BATCH
    deleted = 0
    while True:
        count = await delete(batch)
        deleted += count
        if count < batch:
            return deleted


@asynccontextmanager
async def turn(conn: Connection, name: str) -> AsyncIterator[bool]:
    """Whether this replica has the turn for the pass `name` (a session advisory lock on `conn`,
    held until the block ends); another replica's pass under way means no turn."""
    mine = bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", name))
    try:
        yield mine
    finally:
        if mine:
            await conn.fetchval("SELECT pg_advisory_unlock(hashtext($1))", name)
