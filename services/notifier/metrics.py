"""The notifier's own metrics: deliveries by channel and outcome, and what waits."""

from __future__ import annotations

from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from services.notifier import store
from shared.metrics import MetricSet


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.deliveries = metric.counter(
            "amc_notifier_deliveries",
            "Delivery attempts by channel (URL scheme) and outcome: sent, retry (failed, "
            "tried again later), failed (given up)",
            "channel",
            "outcome",
        )
        self.pending = metric.gauge(
            "amc_notifier_deliveries_pending", "Deliveries not yet sent, by channel", "channel"
        )
        self.failing = metric.gauge(
            "amc_notifier_deliveries_failing",
            "Pending deliveries whose last try failed, by channel",
            "channel",
        )

    async def refresh(self, pool: asyncpg.Pool[Any]) -> None:
        async with pool.acquire() as conn:
            rows = await store.waiting_by_channel(conn)
        # Channels with nothing waiting drop to 0 rather than keeping their last value.
        self.pending.clear()
        self.failing.clear()
        for row in rows:
            self.pending.labels(row["channel"]).set(row["pending"])
            self.failing.labels(row["channel"]).set(row["failing"])
