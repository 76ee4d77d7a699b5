"""Tokens by state, read from the database at each scrape (the same on every replica)."""

from __future__ import annotations

from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from services.token import store

STATES = ("ACTIVE", "EXPIRED", "REAUTH_REQUIRED")


class TokenGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Gauge(
            "amc_tokens",
            "Users' tokens by state: ACTIVE (access token valid), EXPIRED (active grant whose "
            "access token has expired: refreshing is behind), REAUTH_REQUIRED",
            ["state"],
            registry=registry,
        )

    async def refresh(self, pool: asyncpg.Pool[Any]) -> None:
        async with pool.acquire() as conn:
            counts = await store.count_by_state(conn)
        for state in STATES:
            self.tokens.labels(state).set(counts.get(state, 0))
