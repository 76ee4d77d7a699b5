"""Schedule names for the live feed: a small bounded cache with a time to live in front of the
scheduler's `GET /schedules/{id}`.

A schedule's name is not in its events, so the feed asks the scheduler, but never once per
event: a batch of events asks once per distinct schedule not cached, concurrent asks for the
same id share one request, and a failed ask is remembered (for a shorter time) so an
unreachable scheduler is not asked again by every burst. A failure answers None and the feed
shows the id, as it did before names were looked up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from services.console.backends import Backends

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[str | None]]


class ScheduleNames:
    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl_s: float = 300.0,
        failure_ttl_s: float = 30.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or failure_ttl_s <= 0:
            raise ValueError("ttl_s and failure_ttl_s must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._max = max_entries
        self._clock = clock
        # id -> (expires at, name or None for "unnamed or lookup failed"); oldest first.
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self.requests = 0

    def cached(self, schedule_id: str) -> tuple[bool, str | None]:
        entry = self._entries.get(schedule_id)
        if entry is None:
            return False, None
        expires, name = entry
        if self._clock() >= expires:
            del self._entries[schedule_id]
            return False, None
        self._entries.move_to_end(schedule_id)
        return True, name

    async def name(self, schedule_id: str) -> str | None:
        hit, name = self.cached(schedule_id)
        if hit:
            return name
        pending = self._pending.get(schedule_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[schedule_id] = future
        try:
            self.requests += 1
            try:
                name = await self._lookup(schedule_id)
                ttl = self._ttl_s
            except Exception as exc:
                # Whatever went wrong, the feed shows the id, as before names were looked up.
                # The type only: an error's text may quote a URL or a response body.
                log.warning("schedule name lookup failed (%s)", type(exc).__name__)
                name, ttl = None, self._failure_ttl_s
            self._store(schedule_id, name, ttl)
            future.set_result(name)
            return name
        finally:
            if not future.done():
                future.cancel()
            self._pending.pop(schedule_id, None)

    async def names(self, schedule_ids: Iterable[str]) -> dict[str, str]:
        """The names known for these ids (unnamed and failed ones left out), asking once per
        distinct id that is not cached."""
        distinct = list(dict.fromkeys(schedule_ids))
        found = await asyncio.gather(*(self.name(i) for i in distinct))
        return {i: n for i, n in zip(distinct, found, strict=True) if n}

    def _store(self, schedule_id: str, name: str | None, ttl: float) -> None:
        self._entries[schedule_id] = (self._clock() + ttl, name)
        self._entries.move_to_end(schedule_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def scheduler_lookup(backends: Backends) -> Lookup:
    """Ask the scheduler's API (with the console's key and timeout) for a schedule's name."""

    async def lookup(schedule_id: str) -> str | None:
        schedule = await backends.get("scheduler", "/schedules/" + quote(schedule_id, safe=""))
        name = schedule.get("name") if isinstance(schedule, dict) else None
        return name if isinstance(name, str) and name else None

    return lookup
