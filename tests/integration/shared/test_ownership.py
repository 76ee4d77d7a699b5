"""Ownership that dies with the owner's database session, on a real PostgreSQL.

Two owners (each its own dedicated connection, as two replicas have) and a table whose rows
record their owner's key, claimed and written with the rule's SQL the way the poller and the
token service do: an owner alive keeps its row; an owner whose session is terminated loses it
at once (no lease runs out here: the lease is an hour); an owner whose session dropped while
its process lives on cannot write its follow-up, and retakes its own key afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared import ownership
from shared.ownership import OWNER_LOCK_CLASS, Ownership
from tests.integration.token.harness import wait_until
from tests.support.ownership import owners, terminate

HOUR = 3600.0

__all__ = ["owners"]  # the fixture, from tests.support.ownership


@pytest.fixture
async def conn(database_url: str, uid: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    c = await asyncpg.connect(database_url)
    await c.execute(f'CREATE SCHEMA "{uid}"')
    await c.execute(f'SET search_path TO "{uid}"')
    await c.execute(
        """CREATE TABLE items (id int PRIMARY KEY, owner text, owner_key integer,
                               lease_until timestamptz)"""
    )
    await c.execute("INSERT INTO items (id) VALUES (1)")
    try:
        yield c
    finally:
        await c.execute(f'DROP SCHEMA "{uid}" CASCADE')
        await c.close()


async def claim(conn: asyncpg.Connection[Any], who: Ownership) -> bool:
    """The claim every store makes: a free row (lease out, or owner gone), claimer alive."""
    free = f"(lease_until IS NULL OR lease_until < now() OR {ownership.gone('owner_key')})"
    done = await conn.execute(
        f"""UPDATE items SET owner = $1, owner_key = $2,
                             lease_until = now() + make_interval(secs => $3)
            WHERE id = 1 AND {free} AND {ownership.may_act("$2::integer")}""",
        who.name,
        who.key,
        HOUR,
    )
    return done == "UPDATE 1"


async def follow_up(conn: asyncpg.Connection[Any], who: Ownership) -> bool:
    """The owner's write after its outside call: fenced on its name and its lock."""
    done = await conn.execute(
        f"""UPDATE items SET owner = NULL, owner_key = NULL, lease_until = NULL
            WHERE id = 1 AND owner = $1 AND {ownership.may_act("owner_key")}""",
        who.name,
    )
    return done == "UPDATE 1"


async def test_an_owner_alive_keeps_its_row(
    conn: asyncpg.Connection[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    assert await claim(conn, a)
    assert not await claim(conn, b)
    assert await conn.fetchval("SELECT owner FROM items") == "a"
    assert await follow_up(conn, a)
    assert await claim(conn, b)  # released by its owner: free


async def test_a_terminated_owners_row_is_taken_over_at_once(
    conn: asyncpg.Connection[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, b = owners
    assert await claim(conn, a)
    await terminate(conn, a)
    # The lease has an hour to run: only the ended session frees the row.
    assert await claim(conn, b)
    assert (await conn.fetchval("SELECT owner_key FROM items")) == b.key
    # The old owner's follow-up is refused; the new owner's goes through.
    assert not await follow_up(conn, a)
    assert await follow_up(conn, b)


async def test_an_owner_whose_session_dropped_cannot_write_until_it_holds_its_lock_again(
    conn: asyncpg.Connection[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, _ = owners
    assert await claim(conn, a)
    await terminate(conn, a)
    # The process lives on (a partition, not a crash): its write is refused, nobody took over.
    assert not await follow_up(conn, a)
    assert not await claim(conn, a), "an owner without its lock claims nothing"
    stop = asyncio.Event()
    watcher = asyncio.create_task(a.watch(stop))
    try:
        # The watcher notices the loss and retakes the same key: the row is its own again.
        async def retaken() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = $1::oid AND objid = $2::oid AND objsubid = 2",
                    OWNER_LOCK_CLASS,
                    a.key,
                )
            )

        await wait_until(retaken, timeout_s=30, what="the owner to retake its key")
        assert a.held
        assert await follow_up(conn, a)
    finally:
        stop.set()
        await watcher


async def test_the_watcher_notices_a_lost_session(
    conn: asyncpg.Connection[Any], owners: tuple[Ownership, Ownership]
) -> None:
    a, _ = owners
    assert a.held
    stop = asyncio.Event()
    watcher = asyncio.create_task(a.watch(stop))
    old_pid = a.backend_pid
    try:
        await terminate(conn, a)

        async def noticed() -> bool:
            # Lost, or lost and already retaken on a new session.
            return not a.held or a.backend_pid != old_pid

        await wait_until(noticed, timeout_s=30, what="the watcher to notice the loss")
    finally:
        stop.set()
        await watcher


async def test_a_key_held_by_another_session_is_replaced_on_start(database_url: str) -> None:
    squatter = await asyncpg.connect(database_url)
    owner = Ownership(database_url, "a")
    taken = owner.key
    try:
        assert await squatter.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCK_CLASS, taken
        )
        await owner.start()
        assert owner.held
        assert owner.key != taken
    finally:
        await owner.close()
        await squatter.close()
