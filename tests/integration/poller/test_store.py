"""The submission claim against a real database: the caps, and fairness between users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from services.poller import claims, store
from services.poller.rows import ExecRow
from shared.contract import ExecutionStatus, Origin, OriginKind
from shared.db import apply_migrations, create_pool
from shared.ownership import Claimant
from tests.integration.poller.conftest import eventually, plain_run

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "poller" / "migrations"


@pytest.fixture
async def pool(database_url: str, uid: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    schema = f"{uid}_pollerstore"
    await apply_migrations(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema, max_size=4)
    yield pool
    await pool.close()


async def queue(pool: asyncpg.Pool[Any], user_id: str, n: int) -> None:
    for _ in range(n):
        async with pool.acquire() as conn:
            await store.insert_execution(
                conn,
                execution_id=uuid4(),
                origin=Origin(kind=OriginKind.EXTERNAL, id=uuid4().hex),
                attempt=1,
                request_event_id=uuid4(),
                run=plain_run(user_id),
                status=ExecutionStatus.QUEUED,
                waiting_token=False,
            )


async def claim(pool: asyncpg.Pool[Any], cap: int, daily_cap: int = 0) -> list[ExecRow]:
    return (await claim_all(pool, cap, daily_cap)).rows


async def claim_all(pool: asyncpg.Pool[Any], cap: int, daily_cap: int = 0) -> claims.Claim:
    async with pool.acquire() as conn, conn.transaction():
        return await claims.claim_submissions(
            conn, "amc-1", cap, Claimant("me", 30.0), daily_cap=daily_cap
        )


async def test_claims_respect_the_cap_and_take_users_in_turn(pool: asyncpg.Pool[Any]) -> None:
    await queue(pool, "heavy", 8)
    await queue(pool, "light", 2)
    first = await claim(pool, 4)
    # One user's backlog does not starve another: turns alternate, oldest first.
    assert [r.user_id for r in first] == ["heavy", "light", "heavy", "light"]
    assert all(r.status is ExecutionStatus.SUBMITTING for r in first)
    assert all(r.submit_intent_at is not None for r in first)
    assert await claim(pool, 4) == []  # 4 in flight: the cap is reached
    await pool.execute(
        "UPDATE executions SET status = 'SUCCEEDED', stage = 'done' WHERE execution_id = $1",
        first[0].execution_id,
    )
    [next_one] = await claim(pool, 4)
    assert next_one.user_id == "heavy"


async def test_a_second_claimer_waits_for_the_instance_lock(pool: asyncpg.Pool[Any]) -> None:
    await queue(pool, "u", 6)
    async with pool.acquire() as conn, conn.transaction():
        mine = (await claims.claim_submissions(conn, "amc-1", 3, Claimant("a", 30.0))).rows
        theirs = asyncio.create_task(claim(pool, 3))

        async def blocked_by_us() -> bool:
            waiting: int = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                conn.get_server_pid(),
            )
            return waiting == 1

        await eventually(blocked_by_us, 30, "the second claimer to wait for our instance lock")
        assert not theirs.done()  # blocked on the per-instance lock until we commit
    assert len(mine) == 3
    assert await theirs == []  # once it had the lock, it counted our 3 as in flight


async def finish_all(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute(
        "UPDATE executions SET status = 'SUCCEEDED', stage = 'done' WHERE status = 'SUBMITTING'"
    )


async def test_the_daily_cap_counts_every_submission_since_midnight_utc(
    pool: asyncpg.Pool[Any],
) -> None:
    await queue(pool, "u", 5)
    assert len(await claim(pool, 10, daily_cap=3)) == 3
    await finish_all(pool)  # finished runs still count: the cap is on creations, not on slots
    left = await claim_all(pool, 10, daily_cap=3)
    assert left.rows == []
    assert left.day_full
    # Yesterday's submissions do not count.
    await pool.execute(
        "UPDATE executions SET submit_intent_at = date_trunc('day', now(), 'UTC') - interval '1 s'"
        " WHERE submit_intent_at IS NOT NULL"
    )
    assert len(await claim(pool, 10, daily_cap=3)) == 2
    # 0 is no cap at all.
    await queue(pool, "u", 4)
    assert len(await claim(pool, 10, daily_cap=0)) == 4


async def test_runs_over_the_daily_cap_wait_for_the_next_utc_day_with_a_reason(
    pool: asyncpg.Pool[Any],
) -> None:
    await queue(pool, "u", 3)
    assert len(await claim(pool, 10, daily_cap=1)) == 1
    async with pool.acquire() as conn:
        held = await claims.hold_until_tomorrow(conn, "amc-1", "cap used up")
    assert held == 2
    rows = await pool.fetch(
        "SELECT next_action_at, waiting_reason, status FROM executions WHERE status = 'QUEUED'"
    )
    tomorrow = await pool.fetchval("SELECT date_trunc('day', now(), 'UTC') + interval '1 day'")
    assert {(r["next_action_at"], r["waiting_reason"], r["status"]) for r in rows} == {
        (tomorrow, "cap used up", "QUEUED")
    }
    # Not due any more: a later claim neither takes nor re-holds them.
    async with pool.acquire() as conn:
        assert await claims.hold_until_tomorrow(conn, "amc-1", "cap used up") == 0
    # The next day: due again, claimed, and the reason is gone.
    await pool.execute(
        "UPDATE executions SET submit_intent_at = submit_intent_at - interval '1 day',"
        " next_action_at = now() WHERE true"
    )
    taken = await claim(pool, 10, daily_cap=1)
    assert len(taken) == 1
    assert taken[0].waiting_reason is None
