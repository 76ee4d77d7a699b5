"""Sleep until notified or timed out: a loop's wake-up signal, rung in process or by a
PostgreSQL NOTIFY on one channel.

The outbox relay, the scheduler's firing loop and the token service's on-demand refreshers
each sleep between rounds of work and want to wake at once when work arrives, possibly from
another replica. A NOTIFY reaches them through a dedicated LISTEN connection (LISTEN must
outlive any pooled transaction); without one (no DSN given, or the database refused it) they
still wake on their timeout, so LISTEN only makes them prompt, never correct.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


class Doorbell:
    """`ring()` or a NOTIFY on `channel` ends the current `sleep`; `clear()` before each round
    of work, so a ring during the work is not lost and one before it is not counted twice."""

    def __init__(self, channel: str, *, dsn: str | None, what: str) -> None:
        self.channel = channel
        self._dsn = dsn
        self._what = what
        self._rung = asyncio.Event()
        self._conn: asyncpg.Connection[Any] | None = None

    def ring(self) -> None:
        self._rung.set()

    def clear(self) -> None:
        self._rung.clear()

    async def listen(self) -> None:
        """Open the LISTEN connection unless it is open: called at start, and again after a
        round to reconnect one the database closed."""
        if self._dsn is None or (self._conn is not None and not self._conn.is_closed()):
            return
        self._conn = None
        conn: asyncpg.Connection[Any] | None = None
        try:
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(self.channel, lambda *_: self._rung.set())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("%s LISTEN unavailable, polling only: %s", self._what, exc)
            if conn is not None:
                conn.terminate()
            return
        self._conn = conn

    async def sleep(self, stop: asyncio.Event, seconds: float, *, wakeable: bool = True) -> None:
        """Until `stop` is set, `seconds` pass, or (if `wakeable`) the bell rings. A backoff
        after an error is not wakeable: a burst of NOTIFYs must not turn it into a spin."""
        waiters = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._rung.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        """Close the LISTEN connection; a failure is logged (the loop is ending anyway)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close()
        except Exception as exc:  # shutdown goes on whatever the connection's state
            log.warning("could not close the %s LISTEN connection: %r", self._what, exc)
