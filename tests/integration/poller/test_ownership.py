"""The poller's claims and writes under the owner lock (shared/ownership.py), on a real
PostgreSQL with two owners, each on its own dedicated connection as two replicas have.

A submission intent taken by replica A stays A's while A's session lives; once A's session
ends (pg_terminate_backend: what a crash or a dropped connection does) replica B takes it
over at once, though A's lease has an hour to run, and learns that A may have died with its
POST on the way; A's follow-up write (AMC's answer) is refused, whether or not B took over.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from services.poller import claims, store
from services.poller.rows import ExecRow
from shared.contract import ExecutionStatus
from shared.ownership import Claimant, Ownership
from tests.integration.poller.test_store import pool, queue
from tests.support.ownership import owners, terminate

__all__ = ["owners", "pool"]  # fixtures, from test_store and tests.support.ownership

HOUR_S = 3600.0


def claimant(who: Ownership) -> Claimant:
    return Claimant(who.name, HOUR_S, who)


async def submit_claim(pool: asyncpg.Pool[Any], who: Ownership) -> list[ExecRow]:
    async with pool.acquire() as conn, conn.transaction():
        claim = await claims.claim_submissions(conn, "amc-1", 10, claimant(who))
    return claim.rows


async def unresolved(pool: asyncpg.Pool[Any], who: Ownership) -> list[tuple[ExecRow, bool]]:
    async with pool.acquire() as conn, conn.transaction():
        return await store.claim_unresolved_submissions(conn, claimant(who), 10)


async def answer(pool: asyncpg.Pool[Any], who: Ownership, row: ExecRow) -> bool:
    """The follow-up write after AMC accepted the POST (as Submitter._accepted fences it)."""
    async with pool.acquire() as conn:
        return await store.update(
            conn,
            row.execution_id,
            who.name,
            {"amc_execution_id": "amc-exec-1", "status": ExecutionStatus.PENDING.value},
        )


async def test_a_live_owners_intent_is_not_taken(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    await queue(pool, "u", 1)
    [row] = await submit_claim(pool, a)
    assert await unresolved(pool, b) == []
    assert await answer(pool, a, row)


async def test_a_dead_owners_intent_is_taken_over_at_once_and_its_answer_refused(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    await queue(pool, "u", 1)
    [row] = await submit_claim(pool, a)
    await terminate(pool, a)
    [(taken, orphaned)] = await unresolved(pool, b)
    assert taken.execution_id == row.execution_id
    assert orphaned, "B must know A may have died with its POST on the way"
    assert not await answer(pool, a, row)
    assert await answer(pool, b, taken)


async def test_an_owner_whose_session_dropped_cannot_record_nor_claim(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, _ = owners
    await queue(pool, "u", 2)
    async with pool.acquire() as conn, conn.transaction():
        # One row only: the other stays QUEUED for the claim below.
        [row] = (await claims.claim_submissions(conn, "amc-1", 1, claimant(a))).rows
    await terminate(pool, a)
    # The process lives on: nobody took the row yet, still its answer is not recorded...
    assert not await answer(pool, a, row)
    # ...and it takes no new work while it has no lock.
    assert await submit_claim(pool, a) == []
    stored = await pool.fetchrow(
        "SELECT status, amc_execution_id FROM executions WHERE execution_id = $1",
        row.execution_id,
    )
    assert stored is not None
    assert (stored["status"], stored["amc_execution_id"]) == ("SUBMITTING", None)


async def test_a_reconciler_whose_owner_lived_is_not_told_to_wait(
    pool: asyncpg.Pool[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    await queue(pool, "u", 1)
    [row] = await submit_claim(pool, a)
    # A's POST failed ambiguously; A deferred the row to the reconciler (lease ended).
    async with pool.acquire() as conn:
        await store.defer(conn, row.execution_id, a.name, timedelta(0))
    [(taken, orphaned)] = await unresolved(pool, b)
    assert taken.execution_id == row.execution_id
    assert not orphaned
