"""One request rate per AMC instance, shared by every replica through PostgreSQL.

GCRA on one row per instance: each call atomically takes the next slot (`next_slot` moves on
by one spacing) and waits until that slot. A call that could not leave within `tolerance` of
its slot takes a new one. Slots are spaced (1 + 2 * tolerance) / rate apart: a call may leave
up to `tolerance` late, so calls `rate` slots apart still leave at least 1 s + tolerance apart,
and that margin absorbs jitter on the way to AMC (a spacing of (1 + tolerance) / rate left
none, and AMC was seen answering 429 under load). No window of one second sees more than
`rate` calls from all replicas.
AMC's Retry-After pushes the instance's next slot out for everyone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg

_TAKE = """
INSERT INTO rate_slots AS r (instance_id, next_slot)
VALUES ($1, clock_timestamp() + $2::interval)
ON CONFLICT (instance_id) DO UPDATE
    SET next_slot = greatest(r.next_slot, clock_timestamp()) + $2::interval
RETURNING extract(epoch FROM (next_slot - $2::interval) - clock_timestamp())::float8 AS wait
"""

_PUSH = """
INSERT INTO rate_slots AS r (instance_id, next_slot)
VALUES ($1, clock_timestamp() + $2::interval)
ON CONFLICT (instance_id) DO UPDATE
    SET next_slot = greatest(r.next_slot, clock_timestamp() + $2::interval)
"""


_MAX_LATE_RETRIES = 5


class InstanceRateLimiter:
    def __init__(self, pool: asyncpg.Pool[Any], rate: float, tolerance_s: float) -> None:
        self._pool = pool
        self._rate = rate
        self._tolerance = tolerance_s
        # Retry-After seen by this replica, by instance (event-loop time): calls that already
        # hold a later slot must not go before it either.
        self._blocked_until: dict[str, float] = {}
        self.waited_s = 0.0
        self.late_retries = 0

    async def acquire(self, instance_id: str, rate: float | None = None) -> None:
        """Wait for this instance's next free slot; returns when the call may leave. `rate`
        is the instance's own limit (requests a second) when it has one."""
        spacing = timedelta(seconds=(1.0 + 2 * self._tolerance) / (rate or self._rate))
        loop = asyncio.get_running_loop()
        for _ in range(_MAX_LATE_RETRIES):
            # Measured from before the query: the slot cannot be earlier than this, so any
            # lateness (query latency included) is counted in full, never hidden.
            asked = loop.time()
            wait = float(await self._pool.fetchval(_TAKE, instance_id, spacing))
            due = asked + max(wait, 0.0)
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                self.waited_s += wait
            blocked = self._blocked_until.get(instance_id, 0.0) - loop.time()
            if blocked > 0:
                await asyncio.sleep(blocked)
                continue
            if loop.time() - due <= self._tolerance:
                return
            # We woke too late: going now could crowd the calls after us. The slot stays
            # unused (a gap is harmless) and we queue again.
            self.late_retries += 1
        # Always late (a database slower than the tolerance): go rather than starve.

    async def push_back(self, instance_id: str, seconds: float) -> None:
        """AMC said 429 with Retry-After: nobody calls this instance before then."""
        until = asyncio.get_running_loop().time() + seconds
        self._blocked_until[instance_id] = max(self._blocked_until.get(instance_id, 0.0), until)
        await self._pool.execute(_PUSH, instance_id, timedelta(seconds=seconds))
