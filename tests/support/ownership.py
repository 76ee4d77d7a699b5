"""Two owner locks (shared/ownership.py), as two replicas hold them, for the tests of claims
under ownership; and the end of an owner's session, as a crash ends it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared.ownership import Ownership


@pytest.fixture
async def owners(database_url: str) -> AsyncIterator[tuple[Ownership, Ownership]]:
    """Replicas "a" and "b", each holding its lock on a dedicated connection."""
    a, b = Ownership(database_url, "a"), Ownership(database_url, "b")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def terminate(db: asyncpg.Pool[Any] | asyncpg.Connection[Any], who: Ownership) -> None:
    """End the owner's session; returns once its backend has exited (PostgreSQL released its
    locks by then): what a crash or a dropped connection does."""
    pid = who.backend_pid
    assert pid is not None
    assert await db.fetchval("SELECT pg_terminate_backend($1, 30000)", pid)
