"""Ownership that dies with its owner's database session: takeover at once after a crash.

Each replica holds one session-level advisory lock, (OWNER_LOCK_CLASS, its key), on a
dedicated connection (never one from the pool) for as long as it lives. The rows it works on
record that key beside the owner's name. A row whose owner's lock is no longer held by any
session is free at once: PostgreSQL releases a session's locks the moment it ends the
session, which is at once when the owner process dies (its kernel closes the socket) and
within the keepalive time when the owner's host or network goes (`SERVER_KEEPALIVES`).

The rules, as SQL fragments the stores put into their statements:

- `gone(key)`: the row's owner is gone; it may be claimed now, whatever its lease says.
- `may_act(key)`: the row's owner may still write its outcome. Every follow-up write of an
  owner checks it in the same statement as its owner fence, so a replica whose session
  dropped while it was calling the outside world cannot record what it learnt: the replica
  that took over (or will) decides.
- `alive(key)`: a claimer claims only while its own lock is held.

A row with no key (claimed by code or a test without an ownership) is held by its lease only.
The time-based lease stays beside this: it still frees the rows of an owner that lives but
stalls (its session open, its loop stuck) and carries deliberate deferrals ("retry in 30 s").

PgBouncer (or any pooler) in transaction mode breaks session locks: the DSN given here must
reach PostgreSQL directly or through a session-mode pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from shared.db.errors import DATABASE_TROUBLE
from shared.pause import pause

log = logging.getLogger(__name__)

# The first key of every owner lock ('AMC1' in ASCII); the second is the owner's random key.
# Positive, so pg_locks' oid columns compare with it as plain integers.
OWNER_LOCK_CLASS = 0x414D4331
KEY_MAX = 2**31 - 1

# How often the owner checks its session, and how long a check may take before the session
# counts as lost (this replica then stops claiming and stops recording outcomes).
CHECK_EVERY_S = 1.0
CHECK_TIMEOUT_S = 3.0
# Asked of the server for the owner's session: a host or network that vanishes without
# closing the socket loses its lock after about idle + interval x count seconds, not after the
# kernel's default of two hours. Ignored on a Unix socket (a local client's death closes it).
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}

_LIVE_KEYS = (
    "ARRAY(SELECT l.objid::bigint FROM pg_locks l"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
    f" AND l.classid = {OWNER_LOCK_CLASS}::oid"
    " AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))"
)


def alive(key: str) -> str:
    """SQL: the owner with this key (an expression) holds its lock now. The array of live keys
    is an uncorrelated subquery: read once per statement, however many rows it checks."""
    return f"(({key})::bigint = ANY({_LIVE_KEYS}))"


def gone(key: str) -> str:
    """SQL: the row names an owner key and no session holds that lock any more."""
    return f"(({key}) IS NOT NULL AND NOT {alive(key)})"


def may_act(key: str) -> str:
    """SQL: the row's owner may still write (its lock is held, or it has no key: lease only)."""
    return f"(({key}) IS NULL OR {alive(key)})"


def new_key() -> int:
    return secrets.randbelow(KEY_MAX) + 1


@dataclass(frozen=True)
class Claimant:
    """Who claims rows, as each claim writes it on them: the replica's name (which one holds
    a row), how long a claim lasts unless renewed, and the replica's owner lock (None: its
    claims are held by their lease alone)."""

    name: str
    lease_s: float
    ownership: Ownership | None = None

    @property
    def key(self) -> int | None:
        # Read at each claim, not kept: `Ownership.start` may replace a key already taken.
        return None if self.ownership is None else self.ownership.key

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)


class Ownership:
    """This replica's owner lock: taken on start, checked every `check_every_s`, retaken on the
    same key after the session was lost, released on close.

    `key` never changes: rows claimed before a lost session stay this owner's again once the
    lock is retaken, unless another replica took them over meanwhile (their owner fence then
    names that replica). `held` is this process's view, for skipping outside calls early; the
    database's view (the `alive` rule in each claim and write) is what guarantees."""

    def __init__(
        self,
        dsn: str,
        name: str,
        *,
        check_every_s: float = CHECK_EVERY_S,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        connect: Callable[[], Awaitable[asyncpg.Connection[Any]]] | None = None,
    ) -> None:
        self.name = name
        self.key = new_key()
        self._dsn = dsn
        self._connect = connect or self._dedicated
        self._check_every_s = check_every_s
        self._check_timeout_s = check_timeout_s
        self._conn: asyncpg.Connection[Any] | None = None
        self._held = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The owner session's server process (pg_stat_activity.pid), while connected."""
        return None if self._conn is None else self._conn.get_server_pid()

    async def start(self) -> None:
        """Take the lock; a key another session holds (a chance in 2^31) is replaced first."""
        while not await self._take():
            self.key = new_key()

    async def watch(self, stop: asyncio.Event) -> None:
        """Check the session until stop; after a loss, retake the same key once the server
        has let the old session go."""
        while not stop.is_set():
            await pause(stop, self._check_every_s)
            if stop.is_set():
                return
            if self.held and await self._check():
                continue
            with contextlib.suppress(*DATABASE_TROUBLE):
                if not await self._take():
                    log.warning("%s: lock %d still held by the lost session", self.name, self.key)

    async def close(self) -> None:
        self._lost()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*DATABASE_TROUBLE):
                await conn.close(timeout=self._check_timeout_s)

    async def _check(self) -> bool:
        conn = self._conn
        try:
            if conn is None or conn.is_closed():
                raise ConnectionError("owner connection closed")
            async with asyncio.timeout(self._check_timeout_s):
                await conn.fetchval("SELECT 1")
            return True
        except DATABASE_TROUBLE as exc:
            log.error("%s: owner session lost, no longer claiming or recording: %s", self.name, exc)
            await self._drop()
            return False

    async def _take(self) -> bool:
        """Open the dedicated connection if needed and try the lock; True once held."""
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            self._conn = await self._connect()
            self._conn.add_termination_listener(self._ended)
        taken = await self._conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCK_CLASS, self.key
        )
        if taken:
            self._held.set()
            log.info("%s: holding owner lock %d", self.name, self.key)
        return bool(taken)

    async def _dedicated(self) -> asyncpg.Connection[Any]:
        return await asyncpg.connect(self._dsn, server_settings=SERVER_KEEPALIVES)

    async def _drop(self) -> None:
        self._lost()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def _ended(self, conn: object) -> None:
        # Only the current session's end counts: an old one may report after a retake.
        if conn is self._conn:
            self._lost()

    def _lost(self) -> None:
        self._held.clear()
