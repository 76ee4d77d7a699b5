"""The owner's side of the owner lock: take it, notice its loss, retake the same key.

A fake server stands in for PostgreSQL's advisory locks (the database's side of the rule,
the SQL, is tested on a real PostgreSQL in tests/integration/shared/test_ownership.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg

from shared.ownership import OWNER_LOCK_CLASS, Ownership


class FakeServer:
    """Advisory locks by key, each held by one session; a session's locks go when the
    server notices the session ended (at once, or later for a partition)."""

    def __init__(self) -> None:
        self.locks: dict[int, FakeSession] = {}
        self.sessions: list[FakeSession] = []
        self.tries = 0

    async def connect(self) -> asyncpg.Connection[Any]:
        session = FakeSession(self)
        self.sessions.append(session)
        return cast("asyncpg.Connection[Any]", session)

    def end(self, session: FakeSession) -> None:
        self.locks = {k: s for k, s in self.locks.items() if s is not session}


class FakeSession:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.closed = False

    async def fetchval(self, sql: str, *args: Any) -> object:
        if self.closed:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        if "pg_try_advisory_lock" in sql:
            lock_class, key = args
            assert lock_class == OWNER_LOCK_CLASS
            self.server.tries += 1
            holder = self.server.locks.setdefault(key, self)
            return holder is self
        return 1

    def drop(self, *, server_notices: bool) -> None:
        """The connection breaks; the server may not have noticed yet (a partition)."""
        self.closed = True
        if server_notices:
            self.server.end(self)

    def is_closed(self) -> bool:
        return self.closed

    def get_server_pid(self) -> int:
        return id(self)

    def add_termination_listener(self, callback: object) -> None:
        pass

    def terminate(self) -> None:
        self.closed = True

    async def close(self, **_: Any) -> None:
        self.closed = True
        self.server.end(self)


def owner(server: FakeServer) -> Ownership:
    return Ownership("unused", "test", check_every_s=0.01, connect=server.connect)


@contextlib.asynccontextmanager
async def watched(server: FakeServer) -> AsyncIterator[Ownership]:
    """A started owner whose session watcher runs until the block ends."""
    o = owner(server)
    await o.start()
    stop = asyncio.Event()
    watcher = asyncio.create_task(o.watch(stop))
    try:
        yield o
    finally:
        stop.set()
        await watcher


async def settle(condition: Any) -> None:
    """Let the watcher run until `condition()` holds (it checks every 10 ms)."""
    deadline = asyncio.get_running_loop().time() + 5
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the watcher never got there"
        await asyncio.sleep(0.01)


async def test_start_takes_the_lock_and_close_releases_it() -> None:
    server = FakeServer()
    o = owner(server)
    await o.start()
    assert o.held
    assert server.locks[o.key] is server.sessions[0]
    await o.close()
    assert not o.held
    assert server.locks == {}


async def test_a_key_another_session_holds_is_replaced_on_start() -> None:
    server = FakeServer()
    o = owner(server)
    squatter = FakeSession(server)
    first = o.key
    server.locks[first] = squatter
    await o.start()
    assert o.held
    assert o.key != first
    assert server.locks[o.key] is not squatter


async def test_a_lost_session_is_noticed_and_the_same_key_retaken() -> None:
    server = FakeServer()
    async with watched(server) as o:
        key = o.key
        server.sessions[0].drop(server_notices=True)
        await settle(lambda: len(server.sessions) == 2 and o.held)
        # The same key: rows nobody took over meanwhile are this owner's again.
        assert o.key == key
        assert server.locks[key] is server.sessions[1]


async def test_the_key_is_not_retaken_while_the_server_keeps_the_lost_session() -> None:
    server = FakeServer()
    async with watched(server) as o:
        key = o.key
        old = server.sessions[0]
        tries = server.tries
        old.drop(server_notices=False)  # partitioned: the server still holds the lock
        await settle(lambda: server.tries >= tries + 3)  # tried again, and again
        assert not o.held
        assert server.locks[key] is old
        server.end(old)  # the server's keepalives let the old session go
        await settle(lambda: o.held)
        assert o.key == key
        assert server.locks[key] is server.sessions[-1]
