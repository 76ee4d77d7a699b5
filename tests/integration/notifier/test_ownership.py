"""The sender's claims under the owner lock (shared/ownership.py), on a real PostgreSQL with
two owners, each on its own dedicated connection as two replicas have.

A delivery claimed by replica A stays A's for its lease while A's session lives; once A's
session ends (pg_terminate_backend: what a crash or a dropped connection does), replica B
claims it at once, though A's lease has an hour to run, and A's outcome is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

import services.notifier
from services.notifier import store
from services.notifier.logic import Message, RuleFilter, Severity
from shared.db import apply_migrations, create_pool
from shared.ownership import Ownership
from tests.support.ownership import owners, terminate

__all__ = ["owners"]  # the fixture, from tests.support.ownership

MIGRATIONS = Path(services.notifier.__file__).with_name("migrations")
HOUR_S = 3600.0


@pytest.fixture
async def pool(database_url: str, uid: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    schema = f"{uid}_notifierstore"
    await apply_migrations(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema, max_size=4)
    yield pool
    await pool.close()


async def pending(pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn:
        rule = await store.add_rule(
            conn,
            name="ops",
            channel="json",
            url_redacted="json://example.invalid/***",
            url_encrypted="ciphertext",
            rule_filter=RuleFilter(),
        )
        assert await store.record_delivery(
            conn,
            event_id=uuid4(),
            rule=rule,
            topic="execution.completed",
            event_type="ExecutionCompleted",
            message=Message("run failed", "details", Severity.FAILURE),
        )


async def claim(pool: asyncpg.Pool[Any], who: Ownership) -> list[store.Claimed]:
    async with pool.acquire() as conn, conn.transaction():
        return await store.claim_due(conn, limit=10, lease_s=HOUR_S, owner_key=who.key)


async def test_a_live_owners_delivery_is_not_claimed_again(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    await pending(pool)
    [mine] = await claim(pool, a)
    assert await claim(pool, b) == []
    async with pool.acquire() as conn:
        assert await store.mark_sent(conn, mine)


async def test_a_dead_owners_delivery_is_claimed_at_once_and_its_outcome_refused(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    await pending(pool)
    [lost] = await claim(pool, a)
    await terminate(pool, a)
    [taken] = await claim(pool, b)
    assert (taken.event_id, taken.attempts) == (lost.event_id, 2)
    async with pool.acquire() as conn:
        assert not await store.mark_sent(conn, lost)
        assert not await store.mark_failed(conn, lost, error="late", retry_in_s=1.0)
        assert await store.mark_sent(conn, taken)
    # A's session is gone, and it claims nothing until it holds its lock again.
    await pending(pool)
    assert await claim(pool, a) == []
