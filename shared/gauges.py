"""Gauges of rows counted by one label, read from the database at each scrape.

Every label value the gauge knows is set on each refresh (0 when the count names none), so
no value goes stale when its rows are gone. The numbers come from the shared database, so
they are the same on every replica (aggregate with max, not sum).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from shared.outbox import Connection

Count = Callable[[Connection], Awaitable[Mapping[str, int]]]


class CountGauge:
    """`name{label}`: how many rows `count` finds per label value, for each of `values`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        documentation: str,
        *,
        label: str,
        values: Iterable[str],
        count: Count,
    ) -> None:
        self.gauge = Gauge(name, documentation, [label], registry=registry)
        self.values = tuple(values)
        self.count = count

    async def refresh(self, pool: asyncpg.Pool[Any]) -> None:
        async with pool.acquire() as conn:
            counts = await self.count(conn)
        for value in self.values:
            self.gauge.labels(value).set(counts.get(value, 0))
