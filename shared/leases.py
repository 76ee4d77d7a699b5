"""Short leases kept alive while their owner works: a crash costs one lease, not one call.

A replica claims a row with a lease of a few seconds and, while a job on that row runs,
renews every lease it holds every `every_s`. A replica that dies (kill -9, node lost) stops
renewing, so another replica takes its rows over once the lease runs out, however long the
call the job was making may take. The lease check on the job's final write stays the guard:
a replica whose lease ran out (it stalled longer than the lease) cannot record its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from shared.db.errors import DATABASE_TROUBLE
from shared.pause import pause

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# At most this share of the lease passes between renewals, so two renewals in a row can fail
# (a slow database, a pause of the process) before the lease runs out.
MAX_RENEW_SHARE = 1 / 3
# Without an explicit interval, a lease is renewed four times per lease.
DEFAULT_RENEW_SHARE = 1 / 4


def renewal_interval(
    lease_s: float, renew_s: float | None, *, lease_name: str, renew_name: str
) -> float:
    """The renewal interval for `lease_s`: `renew_s` when given, else a quarter of the lease.

    Raises ValueError naming both settings when `renew_s` is not well below the lease."""
    if renew_s is None:
        return lease_s * DEFAULT_RENEW_SHARE
    if renew_s <= 0:
        raise ValueError(f"{renew_name} must be positive, got {renew_s}")
    if renew_s > lease_s * MAX_RENEW_SHARE:
        raise ValueError(
            f"{renew_name} ({renew_s:g}s) must be at most a third of {lease_name} "
            f"({lease_s:g}s): a lease must survive two missed renewals"
        )
    return renew_s


Renew = Callable[[Sequence[K]], Awaitable[int]]


class LeaseKeeper(Generic[K]):
    """The keys (row ids, claim ids) whose leases this process renews, and the renewal beat.

    `hold` and `release` are counted: two jobs of one process on the same row (one ending as
    the next begins) keep the row renewed until both released it. `renew` gets the held keys
    and must extend only leases still held by this owner (and not yet expired); it returns
    how many it extended. A key whose row was finished or lost is simply not extended.
    """

    def __init__(self, name: str, renew: Renew[K], every_s: float) -> None:
        self.name = name
        self.every_s = every_s
        self._renew = renew
        self._held: Counter[K] = Counter()

    @property
    def held(self) -> list[K]:
        return list(self._held)

    def hold(self, key: K) -> None:
        self._held[key] += 1

    def release(self, key: K) -> None:
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    def release_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self.release(key)

    async def renew_once(self) -> int:
        """Extend every held lease once; 0 when nothing is held (no round trip)."""
        keys = self.held
        if not keys:
            return 0
        return await self._renew(keys)

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every `every_s` until stop is set and nothing is held any more (jobs still
        draining at shutdown keep their leases until they end)."""
        while not stop.is_set() or self._held:
            await self._beat()
            if stop.is_set():
                await asyncio.sleep(self.every_s)
            else:
                await pause(stop, self.every_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LeaseKeeper[K]]:
        """Renew in the background for the duration of the block."""
        stop = asyncio.Event()
        task = asyncio.create_task(self._until(stop), name=f"{self.name}:leases")
        try:
            yield self
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await pause(stop, self.every_s)
            if not stop.is_set():
                await self._beat()

    async def _beat(self) -> None:
        try:
            await self.renew_once()
        except DATABASE_TROUBLE as exc:
            # The next beat tries again; the lease outlives two missed beats.
            log.warning("%s: could not renew leases, retrying: %s", self.name, exc)
